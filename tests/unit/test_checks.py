"""launchprov.checks: the parts that need no cloud (the cloud's are tested end to end, in
tests/e2e/test_check_e2e.py)."""

from __future__ import annotations

from launchprov.checks import FAILED, OK, SKIPPED, Result, named, ratelimit_storage, table
from tests.support import free_port


def test_globs_name_no_image_to_ask_for():
    assert named(("ami-760aaa0f", "ami-*", "ami-0123456[0-9]", "ami-?", "ami-12345678")) == [
        "ami-760aaa0f",
        "ami-12345678",
    ]


def test_the_redis_row_never_shows_its_password():
    port = free_port()  # nothing listens there
    (result,) = ratelimit_storage(f"redis://:hunter2-secret@127.0.0.1:{port}/0", 1.0)
    assert result.check == f"rate-limit redis 127.0.0.1:{port}/0"
    assert result.status == FAILED and "Connection refused" in result.why
    assert "hunter2" not in result.check + result.why


def test_memory_storage_has_no_row():
    assert ratelimit_storage("memory://", 1.0) == []


def test_the_table_has_three_aligned_columns():
    text = table(
        [
            Result("credentials", OK, "arn:aws:sts::1:user/x"),
            Result("key pair nobody", FAILED, "InvalidKeyPair.NotFound: no"),
            Result("dry-run launch", SKIPPED, "no image"),
        ]
    )
    assert text.splitlines() == [
        "CHECK            STATUS   WHY",
        "credentials      ok       arn:aws:sts::1:user/x",
        "key pair nobody  failed   InvalidKeyPair.NotFound: no",
        "dry-run launch   skipped  no image",
    ]
