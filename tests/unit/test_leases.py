"""Leases: the tag's format, the policy rules that bound a lease, and which providers hold one."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from launchprov.launching import CALLER_TAG, EXPIRES_AT_TAG, expiry_after, fingerprint, traced
from launchprov.leases import expired_instances, expires_at, expires_at_text, is_expired
from launchprov.policy import Policy, PolicyViolation, Rules
from launchprov.providers.interface import (
    ActionNotSupported,
    Instance,
    InstancePage,
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


@pytest.fixture
def host_in_paris(monkeypatch):
    """The process's local time zone is not UTC (a server set to Paris time)."""
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_expires_at_is_shown_in_utc_whatever_the_hosts_zone(host_in_paris):
    assert datetime(2026, 12, 1, 12, 0).astimezone().utcoffset().total_seconds() == 3600
    instance = Instance("i-1", "running", tags={EXPIRES_AT_TAG: "2026-12-01T23:10:56+01:00"})
    assert expires_at_text(instance) == "2026-12-01T22:10:56Z"


def test_expired_means_a_lease_that_has_ended():
    ended = Instance("i-1", "running", tags={EXPIRES_AT_TAG: "2026-12-01T22:10:56Z"})
    assert is_expired(ended, NOW)
    assert is_expired(ended, datetime(2026, 12, 1, 22, 10, 56, tzinfo=UTC)), "ends at its moment"
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


class PagedCloud:
    """A cloud that applies the listing's filters and answers at most ``page_cap`` instances a
    call (fewer than asked, as clouds may), counting its calls; a page read twice is a bug."""

    name = "paged"

    def __init__(self, instances: list[Instance], page_cap: int):
        self.instances = instances
        self.page_cap = page_cap
        self.calls: list[str | None] = []

    def list_instances(self, query):
        assert query.page_token not in self.calls, f"page {query.page_token} read twice"
        self.calls.append(query.page_token)
        matching = [
            instance
            for instance in self.instances
            if instance.state in query.states and all(k in instance.tags for k in query.tag_keys)
        ]
        start = int(query.page_token or 0)
        end = start + min(query.limit, self.page_cap)
        return InstancePage(matching[start:end], str(end) if end < len(matching) else None)


def test_the_reaper_finds_the_expired_on_every_page_at_the_cost_of_the_leased_ones():
    ended = {CALLER_TAG: "ci", EXPIRES_AT_TAG: "2026-12-01T22:10:56Z"}
    leased = [Instance(f"i-l{n:04}", "stopped", tags=dict(ended)) for n in range(900)]
    # The rest of the account: many instances launchprov never leased cost no listing calls.
    others = [Instance(f"i-o{n:04}", "running", tags={"team": "prod"}) for n in range(3000)]
    cloud = PagedCloud(others[:1500] + leased + others[1500:], page_cap=400)
    found = expired_instances(cloud, "us-east-1", NOW)
    assert sorted(instance.id for instance in found) == sorted(i.id for i in leased)
    assert len(cloud.calls) == 3, "one call per 400 leased instances"
