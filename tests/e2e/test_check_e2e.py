"""launchprov-check CONFIG.ini as an operator runs it against a moto server process, and the same
checks at the service's startup (pserve).

The installed command runs as a process of its own once (every check passing); the other cases
run its ``main`` in the test's process, with the .ini, environment and output the command would
have (a process costs about a second of CPU: the imports and botocore's models again).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from launchprov.scripts.check import main as check_main
from tests.e2e.conftest import (
    BIN,
    CREDENTIALS_ENV,
    ec2_settings,
    libcloud_settings,
    running,
    service_ini,
)
from tests.redis_server import running_redis
from tests.support import (
    DEFAULT_GROUP,
    DEFAULT_KEY,
    DEFAULT_PLACEMENT,
    GOOD_AMI,
    MISSING_AMI,
    free_port,
)

pytestmark = pytest.mark.e2e

CHECK = str(BIN / "launchprov-check")
#: A bound against a hung test, not a timing under test.
RUN_BOUND = 120
#: Polling the service's log for its startup checks: a bound, not a timing under test.
LOG_DEADLINE = 30.0


def rows_of(stdout: str) -> dict[str, tuple[str, str]]:
    """launchprov-check's table as {check: (status, why)}."""
    lines = stdout.splitlines()
    rows = {}
    if lines:
        assert re.split(r"\s{2,}", lines[0]) == ["CHECK", "STATUS", "WHY"], stdout
        for line in lines[1:]:
            name, status, *why = re.split(r"\s{2,}", line, maxsplit=2)
            rows[name] = (status, why[0] if why else "")
    return rows


def check_command(tmp_path: Path, settings: dict[str, str]):
    """Run the installed launchprov-check, a process of its own, on an .ini of ``settings``:
    (exit status, rows, stdout, stderr)."""
    ini = tmp_path / "service.ini"
    ini.write_text(service_ini(settings, free_port()))
    result = subprocess.run(
        [CHECK, str(ini), "--timeout", "10"],
        env=dict(os.environ, **CREDENTIALS_ENV),
        capture_output=True,
        text=True,
        timeout=RUN_BOUND,
    )
    return result.returncode, rows_of(result.stdout), result.stdout, result.stderr


@contextlib.contextmanager
def logging_kept() -> Iterator[None]:
    """The test process's logging as it was, after a block that configures it from an .ini
    (launchprov-check sets up the .ini's logging, as pserve does)."""
    root = logging.getLogger()
    loggers = [root, *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict))]
    kept = [
        (logger, logger.level, list(logger.handlers), logger.propagate, logger.disabled)
        for logger in loggers
    ]
    try:
        yield
    finally:
        for logger, level, handlers, propagate, disabled in kept:
            logger.setLevel(level)
            logger.handlers[:] = handlers
            logger.propagate, logger.disabled = propagate, disabled


def check(tmp_path: Path, capsys, settings: dict[str, str], env: dict[str, str] | None = None):
    """launchprov-check's main on an .ini of ``settings``, in this process (the installed
    command runs it in :func:`check_command`), with the environment ``env`` (default: this
    one, with :data:`CREDENTIALS_ENV`): (exit status, rows, stdout, stderr)."""
    ini = tmp_path / "service.ini"
    ini.write_text(service_ini(settings, free_port()))
    environ = dict(os.environ, **CREDENTIALS_ENV) if env is None else env
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as patch, logging_kept():
        for name in set(os.environ) - set(environ):
            patch.delenv(name)
        for name, value in environ.items():
            patch.setenv(name, value)
        code = check_main([str(ini), "--timeout", "10"])
    out, err = capsys.readouterr()
    return code, rows_of(out), out, err


def instance_count(client) -> int:
    reply = client.describe_instances()
    return sum(len(reservation["Instances"]) for reservation in reply["Reservations"])


def test_a_complete_configuration_is_all_ok_and_launches_nothing(
    tmp_path, moto_process, moto_client
):
    before = instance_count(moto_client)
    with running_redis() as redis:
        settings = ec2_settings(
            moto_process,
            **{
                "launchprov.policy.amis": f"{GOOD_AMI} ami-*",
                "launchprov.ratelimit.storage_uri": redis.uri,
            },
        )
        code, rows, out, err = check_command(tmp_path, settings)
    assert code == 0, out + err
    region = DEFAULT_PLACEMENT[:-1]
    assert set(rows) == {
        "credentials",
        f"region {region}",
        f"zone {DEFAULT_PLACEMENT}",
        f"key pair {DEFAULT_KEY}",
        f"security group {DEFAULT_GROUP}",
        f"image {GOOD_AMI}",
        f"dry-run launch {GOOD_AMI} t3.micro",
        f"rate-limit redis 127.0.0.1:{redis.port}/0",
    }, out
    assert {status for status, _ in rows.values()} == {"ok"}, out
    assert rows["credentials"][1] == "arn:aws:sts::123456789012:user/moto"
    assert instance_count(moto_client) == before, "a check launched an instance"


def test_without_credentials_the_credentials_check_fails_and_says_why(
    tmp_path, capsys, moto_process
):
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        AWS_CONFIG_FILE="/nonexistent",
        AWS_EC2_METADATA_DISABLED="true",
    )
    code, rows, out, err = check(tmp_path, capsys, ec2_settings(moto_process), env)
    assert code == 1, out + err
    assert rows["credentials"] == ("failed", "AuthFailure: Unable to locate credentials"), out


def test_a_missing_key_pair_fails_naming_it(tmp_path, capsys, moto_process):
    settings = ec2_settings(moto_process, **{"launchprov.defaults.key_name": "nobody-s-key"})
    code, rows, out, err = check(tmp_path, capsys, settings)
    assert code == 1, out + err
    assert rows["key pair nobody-s-key"] == (
        "failed",
        "InvalidKeyPair.NotFound: The key pair 'nobody-s-key' does not exist",
    ), out
    failed = [name for name, (status, _) in rows.items() if status == "failed"]
    assert failed == ["key pair nobody-s-key"], out


@pytest.mark.parametrize(
    ("setting", "value", "row", "why"),
    [
        (
            "launchprov.defaults.placement",
            "us-east-1z",
            "zone us-east-1z",
            "InvalidZone: us-east-1z is not a zone of us-east-1",
        ),
        (
            "launchprov.defaults.security_groups",
            "SSH nobody-s-group",
            "security group nobody-s-group",
            "InvalidGroup.NotFound: The security group 'nobody-s-group' does not exist",
        ),
    ],
    ids=["zone", "security-group"],
)
def test_a_missing_default_fails_naming_it(
    tmp_path, capsys, moto_process, setting, value, row, why
):
    code, rows, out, err = check(tmp_path, capsys, ec2_settings(moto_process, **{setting: value}))
    assert code == 1, out + err
    assert rows[row] == ("failed", why), out
    assert [name for name, (status, _) in rows.items() if status == "failed"] == [row], out


def test_a_settings_error_is_one_line_naming_it_and_exit_2(tmp_path, capsys, moto_process):
    settings = ec2_settings(moto_process, **{"launchprov.retry_after": "soon"})
    code, _, out, err = check(tmp_path, capsys, settings)
    assert code == 2, out + err
    assert out == "" and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("launchprov-check: configuration error: launchprov.retry_after = 'soon'")


def logged(service, text: str) -> list[str]:
    """The service's log lines holding ``text``, once one does (polled with a deadline)."""
    end = time.monotonic() + LOG_DEADLINE
    while time.monotonic() < end:
        lines = [line for line in service.output.splitlines() if text in line]
        if lines:
            return lines
        time.sleep(0.05)  # polling interval: the log decides
    raise AssertionError(f"{text!r} never logged:\n{service.output}")


def test_the_service_warns_of_each_failed_check_at_startup_and_still_serves(moto_process):
    settings = ec2_settings(moto_process, **{"launchprov.defaults.key_name": "nobody-s-key"})
    with running(settings, CREDENTIALS_ENV) as service:
        (line,) = logged(service, "startup check failed")
        assert line.startswith("WARNING [launchprov.checks]"), line
        assert line.endswith(
            "startup check failed: key pair nobody-s-key: InvalidKeyPair.NotFound: "
            "The key pair 'nobody-s-key' does not exist"
        ), line
        status, _, body = service.request("GET", "/healthz")
        assert status == 200 and body == {"status": "ok"}
        # /readyz names the failure (the checks ended before the warning was logged).
        status, _, body = service.readyz()
        assert status == 200, body
        assert body["startup_checks"] == {
            "state": "failed",
            "failed": [
                {
                    "check": "key pair nobody-s-key",
                    "why": "InvalidKeyPair.NotFound: The key pair 'nobody-s-key' does not exist",
                }
            ],
        }, body


def test_a_service_whose_checks_pass_says_so_without_a_warning(moto_process):
    with running(ec2_settings(moto_process), CREDENTIALS_ENV) as service:
        (line,) = logged(service, "startup checks:")
        assert line.endswith("startup checks: 5 ok, 1 skipped"), line
        assert "WARNING" not in service.output, service.output
        status, _, body = service.readyz()
        assert status == 200 and body["startup_checks"] == {"state": "ok", "failed": []}, body


def test_with_libcloud_the_driver_is_asked_and_a_missing_image_named(
    tmp_path, capsys, moto_process
):
    settings = libcloud_settings(
        moto_process, **{"launchprov.policy.amis": f"{GOOD_AMI} {MISSING_AMI}"}
    )
    code, rows, out, err = check(tmp_path, capsys, settings)
    assert code == 1, out + err
    assert rows["credentials"] == ("ok", "the libcloud provider answered"), out
    assert rows[f"image {GOOD_AMI}"] == ("ok", ""), out
    assert rows[f"image {MISSING_AMI}"] == (
        "failed",
        f"InvalidAMIID.NotFound: The image id '[{MISSING_AMI}]' does not exist",
    ), out
    failed = [name for name, (status, _) in rows.items() if status == "failed"]
    assert failed == [f"image {MISSING_AMI}"], out
