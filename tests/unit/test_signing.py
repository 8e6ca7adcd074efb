"""Signed tags: exactly what is signed, what breaks a signature, and who needs a key."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac

import pytest

from launchprov import launching, signing
from launchprov.scripts import reap
from launchprov.settings import ConfigurationError, load
from tests.support import GOOD_AMI, launch_request

KEY = "unit-test-key-0123456789"
TAGS = {
    launching.CALLER_TAG: "web",
    launching.REQUEST_ID_TAG: "req-1",
    launching.EXPIRES_AT_TAG: "2026-12-01T22:10:56Z",
}


def test_the_signature_is_an_hmac_of_the_canonical_provenance_tags():
    message = b'launchprov-tags-v1\n{"launchprov:caller":"web","launchprov:request-id":"req-1"}'
    expected = hmac.new(KEY.encode(), message, hashlib.sha256).hexdigest()
    assert signing.signature(TAGS, KEY) == f"v1:{expected}"
    # Key order and the tags it does not cover change nothing.
    reordered = dict(reversed(list({**TAGS, "role": "web"}.items())))
    assert signing.signature(reordered, KEY) == signing.signature(TAGS, KEY)


def test_the_lease_is_not_signed_and_the_provenance_is():
    tags = signing.signed(TAGS, KEY)
    assert signing.is_signed(tags, KEY)
    assert signing.is_signed({**tags, launching.EXPIRES_AT_TAG: "2020-01-01T00:00:00Z"}, KEY)
    for key in signing.SIGNED_TAGS:
        assert not signing.is_signed({**tags, key: "other"}, KEY), key
    assert not signing.is_signed(tags, "another-key-0123456789")
    assert not signing.is_signed(TAGS, KEY)  # no signature
    caller_less = {k: v for k, v in tags.items() if k != launching.CALLER_TAG}
    assert not signing.is_signed(caller_less, KEY)
    assert not signing.is_signed({**tags, signing.SIGNATURE_TAG: "v1:" + "0" * 64}, KEY)


@pytest.mark.parametrize("client_token", [None, "deploy-1"])
def test_a_launch_signs_its_tags_with_the_deployments_key(client_token):
    request = launch_request(
        ami=GOOD_AMI, instance_type="t2.micro", client_token=client_token, expires_in=60
    )
    tags = launching.traced(request, "web", "req-1", sign=signing.signer(KEY)).system_tags
    assert signing.is_signed(tags, KEY)
    if client_token:
        assert {launching.CLIENT_TOKEN_TAG, launching.REQUEST_HASH_TAG} <= set(tags)
        other = dataclasses.replace(request, user_data="other")
        forged = {
            **tags,
            launching.REQUEST_HASH_TAG: launching.fingerprint(other),
        }
        assert not signing.is_signed(forged, KEY)
    unsigned = launching.traced(request, "web", "req-1", sign=signing.signer(None)).system_tags
    assert signing.SIGNATURE_TAG not in unsigned


def test_a_short_key_stops_startup_naming_the_setting():
    with pytest.raises(ConfigurationError, match=r"launchprov\.tag_signing_key"):
        load({"launchprov.tag_signing_key": "short"}, environ={})
    assert load({}, environ={})["launchprov.tag_signing_key"] is None
    assert (
        load({}, environ={"LAUNCHPROV_TAG_SIGNING_KEY": KEY})["launchprov.tag_signing_key"] == KEY
    )


def test_the_reaper_refuses_to_run_without_a_key_unless_told(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LAUNCHPROV_TAG_SIGNING_KEY", raising=False)
    ini = tmp_path / "keyless.ini"
    ini.write_text("[app:main]\nuse = egg:launchprov\nlaunchprov.provider = no.such.Provider\n")
    assert reap.main([str(ini)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "launchprov.tag_signing_key" in err[0], err
    assert "LAUNCHPROV_TAG_SIGNING_KEY" in err[0] and "--trust-unsigned" in err[0]
    # With --trust-unsigned it goes on, and stops at the next problem: the provider.
    assert reap.main([str(ini), "--trust-unsigned"]) == 2
    assert "no.such.Provider" in capsys.readouterr().err
