"""Leases: the tag's format, the policy rules that bound a lease, and which providers hold one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from launchprov.launching import EXPIRES_AT_TAG, expiry_after, fingerprint, traced
from launchprov.leases import expires_at, expires_at_text, is_expired
from launchprov.policy import Policy, PolicyViolation, Rules
from launchprov.providers.interface import (
    ActionNotSupported,
    Instance,
    LaunchRequest,
    UnsupportedParameters,
)
from launchprov.providers.libcloud.drivers import CloudlikeDummyNodeDriver
from launchprov.providers.libcloud.profiles import profile_of
from launchprov.providers.libcloud.provider import LibcloudProvider

#: The deployment's defaults, which a LaunchRequest is given by keyword.
DEFAULTS = {"key_name": "scalacity_dev1", "security_groups": ("SSH",), "placement": "us-east-1b"}
NOW = datetime(2026, 12, 1, 22, 10, 56, 700000, tzinfo=UTC)


def test_the_tag_is_rfc_3339_utc_to_the_second():
    assert expiry_after(60, NOW) == "2026-12-01T22:11:56Z"


def test_a_launch_computes_its_expiry_once_and_its_fingerprint_holds_expires_in():
    request = LaunchRequest(**DEFAULTS, ami="ami-12345678", instance_type="t2.micro", expires_in=60)
    tags = traced(request, "ci", "req-1").system_tags
    stamped = datetime.fromisoformat(tags[EXPIRES_AT_TAG].replace("Z", "+00:00"))
    assert 59 <= (stamped - datetime.now(UTC)).total_seconds() <= 60
    other = LaunchRequest(**DEFAULTS, ami="ami-12345678", instance_type="t2.micro", expires_in=61)
    assert fingerprint(request) != fingerprint(other)
    unleased = LaunchRequest(**DEFAULTS, ami="ami-12345678", instance_type="t2.micro")
    assert EXPIRES_AT_TAG not in traced(unleased, "ci", "req-1").system_tags


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("2026-12-01T22:10:56Z", "2026-12-01T22:10:56Z"),
        ("2026-12-01T23:10:56+01:00", "2026-12-01T22:10:56Z"),
        ("tomorrow", None),
        ("2026-12-01T22:10:56", None),  # no zone: not a time launchprov wrote
        ("", None),
    ],
)
def test_expires_at_reads_only_real_times(value, shown):
    instance = Instance("i-1", "running", tags={EXPIRES_AT_TAG: value})
    assert expires_at_text(instance) == shown


def test_expired_means_a_lease_that_has_ended():
    ended = Instance("i-1", "running", tags={EXPIRES_AT_TAG: "2026-12-01T22:10:56Z"})
    assert is_expired(ended, NOW)
    assert not is_expired(ended, datetime(2026, 12, 1, 22, 10, 55, tzinfo=UTC))
    assert not is_expired(Instance("i-2", "running"), NOW)
    assert expires_at(Instance("i-2", "running")) is None


def test_policy_bounds_leases_per_caller():
    policy = Policy(Rules(max_expires_in=3600), {"ci": {"require_expiry": True}})
    policy.check_expiry("web", None)
    policy.check_expiry("web", 3600)
    with pytest.raises(PolicyViolation, match=r"launchprov\.policy\.max_expires_in"):
        policy.check_expiry("web", 3601)
    with pytest.raises(PolicyViolation, match=r"launchprov\.policy\.ci\.require_expiry"):
        policy.check_expiry("ci", None)


def untagged_provider() -> LibcloudProvider:
    """A libcloud driver whose profile has no tags (DigitalOcean's)."""
    return LibcloudProvider(profile_of("digitalocean"), lambda region: CloudlikeDummyNodeDriver(0))


def test_a_driver_without_tags_refuses_a_lease_by_name():
    provider = untagged_provider()
    assert provider.can_tag is False
    request = LaunchRequest(
        **DEFAULTS,
        ami="ami-1",
        instance_type="small",
        expires_in=60,
        explicit=frozenset({"ami", "instance_type", "expires_in"}),
    )
    with pytest.raises(UnsupportedParameters) as refused:
        provider.launch(request)
    assert set(refused.value.reasons) == {"expires_in"}
    with pytest.raises(ActionNotSupported):
        provider.tag("1", "us-east-1", {EXPIRES_AT_TAG: "2026-12-01T22:10:56Z"})


def test_the_dummy_driver_keeps_leases():
    provider = LibcloudProvider(profile_of("dummy"), lambda region: CloudlikeDummyNodeDriver(0))
    assert provider.can_tag is True
    request = LaunchRequest(
        **DEFAULTS,
        ami="ami-1",
        instance_type="small",
        expires_in=60,
        explicit=frozenset({"expires_in"}),
    )
    (node_id,) = provider.launch(traced(request, "ci", "req-1"))
    assert EXPIRES_AT_TAG in provider.describe(node_id, "us-east-1").tags
    provider.untag(node_id, "us-east-1", (EXPIRES_AT_TAG,))
    assert EXPIRES_AT_TAG not in provider.describe(node_id, "us-east-1").tags
