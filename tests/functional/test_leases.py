"""Leases on every adapter: launching with expires_in, changing a lease, the expired filter,
the policy rules that bound leases, and the reaper's work (in process; the console command
itself runs in the e2e suite)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from launchprov import leases, signing
from launchprov.auth import digest
from launchprov.launching import CALLER_TAG, EXPIRES_AT_TAG, REQUEST_ID_TAG
from launchprov.leases import stamp
from launchprov.providers.interface import IProvider, ProviderError
from launchprov.scripts.reap import reap
from launchprov.signing import SIGNATURE_TAG
from tests.functional.conftest import BACKENDS, EC2_BACKENDS
from tests.support import (
    GOOD_AMI,
    REGION,
    StubProvider,
    assert_error_body,
    detail_names,
    make_app,
    seed_account,
)

LAUNCH = {"ami": GOOD_AMI, "instance_type": "t2.micro"}
#: The deployment's tag-signing key: every Cloud's app signs with it, and the reaper checks it.
KEY = "functional-test-key-0123456789"


class Cloud:
    """One backend's app, the provider behind it, and what the provider itself keeps."""

    def __init__(self, request, backend_name: str, **settings):
        settings = {"launchprov.tag_signing_key": KEY, **settings}
        self.backend = BACKENDS[backend_name](request, **settings)
        self.app = self.backend.app

    @property
    def provider(self):
        provider = self.app.app.registry.getUtility(IProvider)
        while hasattr(provider, "provider"):  # under the app's wrappers: bulkhead, metrics
            provider = provider.provider
        return provider

    def launch(self, status=200, headers=None, **body):
        return self.app.put(
            "/v1/launch",
            json.dumps({**LAUNCH, **body}),
            content_type="application/json",
            headers=headers or {},
            status=status,
        )

    def tags(self, instance_id: str) -> dict[str, str]:
        """The instance's tags as the provider keeps them."""
        if self.backend.ec2 is not None:
            reply = self.backend.ec2.describe_instances(InstanceIds=[instance_id])
            raw = reply["Reservations"][0]["Instances"][0].get("Tags", [])
            return {tag["Key"]: tag["Value"] for tag in raw}
        return dict(self.node(instance_id).extra["tags"])

    def state(self, instance_id: str) -> str:
        if self.backend.ec2 is not None:
            reply = self.backend.ec2.describe_instances(InstanceIds=[instance_id])
            return reply["Reservations"][0]["Instances"][0]["State"]["Name"]
        return str(self.node(instance_id).state)

    def node(self, instance_id: str):
        return next(n for n in self.provider.driver(None).list_nodes() if n.id == instance_id)

    def expire(self, instance_id: str, at: str) -> None:
        """Move a lease's end to ``at`` behind launchprov's back, as time passing would."""
        if self.backend.ec2 is not None:
            pairs = [{"Key": EXPIRES_AT_TAG, "Value": at}]
            self.backend.ec2.create_tags(Resources=[instance_id], Tags=pairs)
        else:
            self.node(instance_id).extra["tags"][EXPIRES_AT_TAG] = at

    def foreign(self, **tags: str) -> str:
        """An instance launchprov did not launch, with ``tags``."""
        if self.backend.ec2 is not None:
            spec = [{"Key": k, "Value": v} for k, v in {"team": "prod", **tags}.items()]
            reply = self.backend.ec2.run_instances(
                ImageId=GOOD_AMI,
                InstanceType="t2.micro",
                MinCount=1,
                MaxCount=1,
                TagSpecifications=[{"ResourceType": "instance", "Tags": spec}],
            )
            return reply["Instances"][0]["InstanceId"]
        driver = self.provider.driver(None)
        node = driver.create_node("x", driver.list_sizes()[0], driver.list_images()[0], tags)
        return str(node.id)

    def expiry(self, instance_id: str, expires_in=None, status=200, headers=None, body=None):
        path = f"/v1/instances/{instance_id}/expiry"
        if expires_in is None and body is None:
            return self.app.delete(path, headers=headers or {}, status=status)
        body = {"expires_in": expires_in} if body is None else body
        return self.app.put(
            path,
            json.dumps(body),
            content_type="application/json",
            headers=headers or {},
            status=status,
        )

    def listed(self, query: str, limit: int = 100) -> list[str]:
        ids, token = [], None
        for _ in range(100):
            url = f"/v1/instances?limit={limit}&{query}" + (f"&next={token}" if token else "")
            body = self.app.get(url, status=200).json
            ids += [item["id"] for item in body["instances"]]
            token = body["next"]
            if token is None:
                return ids
        raise AssertionError("the listing never ended")

    def provider_calls(self) -> float:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in self.app.get("/metrics").text.splitlines()
            if line.startswith("launchprov_provider_calls_total{")
        )


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(params=list(BACKENDS))
def cloud(request) -> Cloud:
    return Cloud(request, request.param)


# -- launching with a lease -------------------------------------------------------------------


def test_a_lease_is_a_tag_computed_once_per_launch(cloud):
    before = datetime.now(UTC).replace(microsecond=0)
    ids = cloud.launch(expires_in=3600, min_count=3, max_count=3).json
    after = datetime.now(UTC)
    stamps = {cloud.tags(instance_id)[EXPIRES_AT_TAG] for instance_id in ids}
    assert len(stamps) == 1, "the instances of one launch expire together"
    (value,) = stamps
    assert value.endswith("Z") and len(value) == len("2026-12-01T22:10:56Z")
    assert before + timedelta(seconds=3600) <= parse(value) <= after + timedelta(seconds=3600)
    shown = cloud.app.get(f"/v1/instances/{ids[0]}").json
    assert shown["expires_at"] == value


def test_without_a_lease_expires_at_is_null(cloud):
    (instance_id,) = cloud.launch().json
    assert EXPIRES_AT_TAG not in cloud.tags(instance_id)
    assert cloud.app.get(f"/v1/instances/{instance_id}").json["expires_at"] is None


@pytest.mark.parametrize("bad", [0, -5, 31_536_001, 2.5, "60", True, None])
def test_expires_in_is_whole_seconds_from_1_to_a_year(cloud, bad):
    body = assert_error_body(cloud.launch(status=400, expires_in=bad), 400)
    assert detail_names(body) == ["expires_in"]


def test_a_year_is_the_longest_lease(cloud):
    (instance_id,) = cloud.launch(expires_in=31_536_000).json
    assert EXPIRES_AT_TAG in cloud.tags(instance_id)


def test_expires_in_is_part_of_a_client_tokens_launch(cloud):
    token = f"lease-{uuid.uuid4().hex[:8]}"
    first = cloud.launch(expires_in=600, client_token=token).json
    assert cloud.launch(expires_in=600, client_token=token).json == first
    body = assert_error_body(cloud.launch(status=409, expires_in=601, client_token=token), 409)
    assert detail_names(body) == ["client_token"]
    assert_error_body(cloud.launch(status=409, client_token=token), 409)


def test_a_client_token_lease_is_never_longer_than_the_policy_allows(request):
    cloud = Cloud(request, "ec2", **{"launchprov.policy.max_expires_in": "60"})
    token = f"lease-{uuid.uuid4().hex[:8]}"
    before = datetime.now(UTC).replace(microsecond=0)
    ids = cloud.launch(expires_in=60, client_token=token, min_count=2, max_count=2).json
    after = datetime.now(UTC)
    stamps = {cloud.tags(instance_id)[EXPIRES_AT_TAG] for instance_id in ids}
    assert len(stamps) == 1
    (lease,) = stamps
    assert before + timedelta(seconds=59) <= parse(lease) <= after + timedelta(seconds=60)
    # A retry answers the first launch, whose lease stays counted from the first attempt.
    assert cloud.launch(expires_in=60, client_token=token, min_count=2, max_count=2).json == ids
    assert {cloud.tags(instance_id)[EXPIRES_AT_TAG] for instance_id in ids} == {lease}


# -- changing a lease -------------------------------------------------------------------------


def test_set_then_remove_a_lease(cloud):
    (instance_id,) = cloud.launch().json
    before = datetime.now(UTC).replace(microsecond=0)
    shown = cloud.expiry(instance_id, 120).json
    assert shown["id"] == instance_id
    value = cloud.tags(instance_id)[EXPIRES_AT_TAG]
    assert shown["expires_at"] == value
    assert before + timedelta(seconds=120) <= parse(value)
    assert parse(value) <= datetime.now(UTC) + timedelta(seconds=120)

    shown = cloud.expiry(instance_id).json
    assert shown["expires_at"] is None
    assert EXPIRES_AT_TAG not in cloud.tags(instance_id)
    assert CALLER_TAG in cloud.tags(instance_id), "only the lease goes"
    # Removing a lease that is not there is not an error either.
    assert cloud.expiry(instance_id).json["expires_at"] is None


def test_a_lease_is_changed_from_now(cloud):
    (instance_id,) = cloud.launch(expires_in=31_536_000).json
    shown = cloud.expiry(instance_id, 60).json
    assert parse(shown["expires_at"]) <= datetime.now(UTC) + timedelta(seconds=60)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({}, ["expires_in"]),
        ({"expires_in": 0}, ["expires_in"]),
        ({"expires_in": "soon"}, ["expires_in"]),
        ({"expires_in": 60, "extra": 1}, ["extra"]),
    ],
)
def test_a_bad_expiry_body_is_a_400_naming_it(cloud, body, named):
    (instance_id,) = cloud.launch().json
    response = cloud.expiry(instance_id, body=body, status=400)
    assert detail_names(assert_error_body(response, 400)) == named
    assert EXPIRES_AT_TAG not in cloud.tags(instance_id)


def test_only_launchprovs_instances_have_leases(cloud):
    foreign = cloud.foreign(team="prod")
    body = assert_error_body(cloud.expiry(foreign, 60, status=409), 409)
    assert "not launched through launchprov" in body["message"]
    assert CALLER_TAG in body["message"]
    assert EXPIRES_AT_TAG not in cloud.tags(foreign)
    assert_error_body(cloud.expiry(foreign, status=409), 409)


def test_the_lease_of_an_unknown_instance_is_a_404(cloud):
    assert_error_body(cloud.expiry(cloud.backend.missing_id, 60, status=404), 404)


# -- the expired filter -----------------------------------------------------------------------


def test_the_expired_filter(cloud):
    run = uuid.uuid4().hex[:8]
    past = stamp(datetime.now(UTC) - timedelta(minutes=5))
    expired = cloud.launch(expires_in=3600, min_count=3, max_count=3, tags={"run": run}).json
    for instance_id in expired:
        cloud.expire(instance_id, past)  # as if an hour had passed
    leased = cloud.launch(expires_in=3600, tags={"run": run}).json
    unleased = cloud.launch(tags={"run": run}).json
    assert sorted(cloud.listed(f"tag:run={run}&expired=true", limit=2)) == sorted(expired)
    assert sorted(cloud.listed(f"tag:run={run}&expired=false", limit=1)) == sorted(
        leased + unleased
    )
    assert len(cloud.listed(f"tag:run={run}", limit=2)) == 5
    body = cloud.app.get("/v1/instances?expired=maybe", status=400).json
    assert detail_names(body) == ["expired"]


@pytest.mark.parametrize("backend_name", EC2_BACKENDS)
def test_listing_the_expired_asks_ec2_for_leased_instances_only(request, backend_name):
    cloud = Cloud(request, backend_name)
    run = uuid.uuid4().hex[:8]
    past = stamp(datetime.now(UTC) - timedelta(minutes=5))
    expired = cloud.launch(expires_in=3600, min_count=3, max_count=3, tags={"run": run}).json
    for instance_id in expired:
        cloud.expire(instance_id, past)
    cloud.launch(min_count=12, max_count=12, tags={"run": run})  # no lease: never fetched
    calls = cloud.provider_calls()
    assert sorted(cloud.listed(f"tag:run={run}&expired=true", limit=5)) == sorted(expired)
    assert cloud.provider_calls() - calls == 1, "the unleased instances were fetched too"


# -- policy -----------------------------------------------------------------------------------


CI_TOKEN, WEB_TOKEN = "ci-token-0123456789", "web-token-0123456789"
POLICY = {
    "launchprov.auth.enabled": "true",
    "launchprov.auth.tokens": f"ci {digest(CI_TOKEN)}\nweb {digest(WEB_TOKEN)}",
    "launchprov.policy.max_expires_in": "3600",
    "launchprov.policy.ci.require_expiry": "true",
    "launchprov.policy.ci.max_expires_in": "600",
}
CI = {"Authorization": f"Bearer {CI_TOKEN}"}
WEB = {"Authorization": f"Bearer {WEB_TOKEN}"}


@pytest.fixture(params=list(BACKENDS))
def guarded(request) -> Cloud:
    return Cloud(request, request.param, **POLICY)


def test_policy_bounds_a_launchs_lease_before_any_call(guarded):
    calls = guarded.provider_calls()
    body = assert_error_body(guarded.launch(status=403, headers=CI), 403)
    assert "launchprov.policy.ci.require_expiry" in body["message"]
    assert detail_names(body) == ["expires_in"]
    body = assert_error_body(guarded.launch(status=403, headers=CI, expires_in=601), 403)
    assert "launchprov.policy.ci.max_expires_in" in body["message"]
    body = assert_error_body(guarded.launch(status=403, headers=WEB, expires_in=3601), 403)
    assert "launchprov.policy.max_expires_in" in body["message"]
    assert guarded.provider_calls() == calls, "a refused launch reached the provider"
    assert guarded.launch(headers=CI, expires_in=600).json
    assert guarded.launch(headers=WEB).json


def test_policy_bounds_a_lease_change(guarded):
    (instance_id,) = guarded.launch(headers=CI, expires_in=600).json
    before = guarded.tags(instance_id)[EXPIRES_AT_TAG]
    body = assert_error_body(guarded.expiry(instance_id, 601, status=403, headers=CI), 403)
    assert "launchprov.policy.ci.max_expires_in" in body["message"]
    body = assert_error_body(guarded.expiry(instance_id, status=403, headers=CI), 403)
    assert "launchprov.policy.ci.require_expiry" in body["message"]
    assert guarded.tags(instance_id)[EXPIRES_AT_TAG] == before


def test_a_lease_is_changed_only_by_who_may_act_on_the_instance(guarded):
    (instance_id,) = guarded.launch(headers=CI, expires_in=600).json
    before = guarded.tags(instance_id)[EXPIRES_AT_TAG]
    # web sees only its own: the instance does not exist for it.
    assert_error_body(guarded.expiry(instance_id, 60, status=404, headers=WEB), 404)
    assert_error_body(guarded.expiry(instance_id, status=404, headers=WEB), 404)
    assert guarded.tags(instance_id)[EXPIRES_AT_TAG] == before
    assert guarded.expiry(instance_id, 60, headers=CI).json["expires_at"] != before


def test_an_operator_granted_act_on_launchprov_changes_anyones_lease(request):
    ops = "ops-token-0123456789"
    settings = {
        **POLICY,
        "launchprov.auth.tokens": POLICY["launchprov.auth.tokens"] + f"\nops {digest(ops)}",
        "launchprov.policy.ops.see": "all",
        "launchprov.policy.ops.act_on": "launchprov",
    }
    cloud = Cloud(request, "ec2", **settings)
    (instance_id,) = cloud.launch(headers=CI, expires_in=600).json
    shown = cloud.expiry(instance_id, 60, headers={"Authorization": f"Bearer {ops}"}).json
    assert shown["expires_at"] == cloud.tags(instance_id)[EXPIRES_AT_TAG]
    counted = [
        line
        for line in cloud.app.get("/metrics").text.splitlines()
        if line.startswith('launchprov_foreign_actions_total{action="expiry",caller="ops"}')
    ]
    assert counted and counted[0].endswith(" 1.0")
    foreign = cloud.foreign()
    headers = {"Authorization": f"Bearer {ops}"}
    body = assert_error_body(cloud.expiry(foreign, 60, status=403, headers=headers), 403)
    assert "launchprov.policy.ops.act_on = launchprov" in body["message"]
    assert f"caller ops may not expiry instance {foreign}:" in body["message"]


@pytest.mark.parametrize("backend_name", EC2_BACKENDS)
def test_a_lease_is_changed_in_the_region_named(request, backend_name):
    guarded = Cloud(request, backend_name, **POLICY)
    other = boto3.client("ec2", region_name="eu-west-1", endpoint_url=guarded.backend.endpoint_url)
    seed_account(other)
    (instance_id,) = guarded.launch(headers=WEB, expires_in=600, placement="eu-west-1a").json

    def tags() -> dict[str, str]:
        reply = other.describe_instances(InstanceIds=[instance_id])
        return {t["Key"]: t["Value"] for t in reply["Reservations"][0]["Instances"][0]["Tags"]}

    before = tags()[EXPIRES_AT_TAG]
    body = {"expires_in": 60, "region": "eu-west-1"}
    shown = guarded.expiry(instance_id, body=body, headers=WEB).json
    assert shown["expires_at"] == tags()[EXPIRES_AT_TAG] != before
    path = f"/v1/instances/{instance_id}/expiry?region=eu-west-1"
    assert guarded.app.delete(path, headers=WEB, status=200).json["expires_at"] is None
    assert EXPIRES_AT_TAG not in tags() and tags()[CALLER_TAG] == "web"


class UntaggedProvider(StubProvider):
    """A provider that keeps no tags: no leases."""

    can_tag = False

    def describe(self, instance_id, region):
        raise AssertionError("a lease on an untagged provider must be refused before any call")


def test_a_provider_without_tags_refuses_leases_by_name():
    app = make_app(**{"launchprov.provider": f"{__name__}.UntaggedProvider"})
    body = assert_error_body(
        app.put_json("/v1/instances/i-1/expiry", {"expires_in": 60}, status=400), 400
    )
    assert detail_names(body) == ["expires_in"]
    assert body["message"] == "the stub provider cannot honour: expires_in"
    assert body["details"][0]["description"] == "the stub provider cannot tag instances: no leases"
    assert_error_body(app.delete("/v1/instances/i-1/expiry", status=400), 400)


# -- the reaper's work ------------------------------------------------------------------------


def test_the_reaper_terminates_only_expired_instances_launchprov_launched(cloud):
    run = uuid.uuid4().hex[:8]
    past = stamp(datetime.now(UTC) - timedelta(minutes=5))
    expired = cloud.launch(expires_in=3600, min_count=2, max_count=2, tags={"run": run}).json
    for instance_id in expired:
        cloud.expire(instance_id, past)
    (leased,) = cloud.launch(expires_in=3600, tags={"run": run}).json
    (unleased,) = cloud.launch(tags={"run": run}).json
    outsider = cloud.foreign(**{EXPIRES_AT_TAG: past, "run": run})
    keep = [leased, unleased, outsider]

    records = []
    summary = reap(cloud.provider, [REGION], True, records.append, signing_key=KEY)
    mine = [record for record in records if record["id"] in expired]
    assert {record["action"] for record in mine} == {"would-terminate"}
    assert all(cloud.state(i) == "running" for i in expired + keep), "a dry run terminated"
    assert summary["failed"] == 0

    records = []
    summary = reap(cloud.provider, [REGION], False, records.append, signing_key=KEY)
    mine = {record["id"]: record for record in records if record["id"] in expired}
    assert set(mine) == set(expired)
    for record in mine.values():
        assert record["action"] == "terminated" and record["region"] == REGION
        assert record["caller"] == "anonymous" and record["expires_at"] == past
    assert not {record["id"] for record in records} & set(keep)
    assert all(cloud.state(i) in ("shutting-down", "terminated") for i in expired)
    assert all(cloud.state(i) == "running" for i in keep)
    assert summary["failed"] == 0 and summary["terminated"] >= 2

    records = []
    reap(cloud.provider, [REGION], False, records.append, signing_key=KEY)
    assert not {record["id"] for record in records} & set(expired), "reaped twice"


def test_a_failed_batch_is_retried_one_by_one_and_each_failure_named(cloud, monkeypatch):
    past = stamp(datetime.now(UTC) - timedelta(minutes=5))
    ids = cloud.launch(expires_in=3600, min_count=3, max_count=3).json
    for instance_id in ids:
        cloud.expire(instance_id, past)
    provider = cloud.provider
    real_terminate = provider.terminate

    def refuse_batch(instance_ids, region):
        raise ProviderError(provider.name, "InternalError", "no batch today", retryable=True)

    def refuse_one(instance_id, region):
        if instance_id == ids[1]:
            raise ProviderError(provider.name, "UnauthorizedOperation", "protected")
        return real_terminate(instance_id, region)

    monkeypatch.setattr(provider, "terminate_many", refuse_batch)
    monkeypatch.setattr(provider, "terminate", refuse_one)
    records = []
    summary = reap(provider, [REGION], False, records.append, signing_key=KEY)
    outcome = {record["id"]: record["action"] for record in records if record["id"] in ids}
    assert outcome == {ids[0]: "terminated", ids[1]: "failed", ids[2]: "terminated"}
    assert {"id": ids[1], "region": REGION} in summary["failures"]
    assert cloud.state(ids[1]) == "running"


#: moto keeps an instance's state where its DescribeInstances filter reads it.
MOTO_STATES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48}
MOTO_STATES |= {"stopping": 64, "stopped": 80}


def put_in_state(cloud: Cloud, instance_id: str, state: str) -> None:
    """Put an instance in ``state`` at the provider, as time (or an operator) would."""
    if cloud.backend.ec2 is not None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ec2.models import ec2_backends

        backend = ec2_backends[DEFAULT_ACCOUNT_ID][REGION]
        moto_state = backend.get_instance(instance_id)._state
        moto_state.name, moto_state.code = state, MOTO_STATES[state]
    else:
        from libcloud.compute.types import NodeState

        node_states = {"pending": NodeState.PENDING, "stopping": NodeState.STOPPING}
        node_states |= {"stopped": NodeState.STOPPED, "terminated": NodeState.TERMINATED}
        node_states |= {"running": NodeState.RUNNING}
        cloud.node(instance_id).state = node_states[state]
    assert cloud.provider.describe(instance_id, REGION).state == state


def test_the_reaper_terminates_expired_instances_in_every_live_state_and_no_other(
    cloud, monkeypatch
):
    live = ["pending", "running", "stopping", "stopped"]
    # The libcloud drivers but EC2's have no shutting-down: a node is running or terminated.
    gone = ["shutting-down", "terminated"] if cloud.backend.ec2 is not None else ["terminated"]
    past = stamp(datetime.now(UTC) - timedelta(minutes=5))
    count = len(live) + len(gone)
    ids = cloud.launch(expires_in=3600, min_count=count, max_count=count).json
    states = dict(zip(ids, live + gone, strict=True))
    for instance_id, state in states.items():
        cloud.expire(instance_id, past)
        put_in_state(cloud, instance_id, state)

    provider = cloud.provider
    asked: list[str] = []
    real_terminate_many = provider.terminate_many

    def terminate_many(instance_ids, region):
        asked.extend(instance_ids)
        return real_terminate_many(instance_ids, region)

    monkeypatch.setattr(provider, "terminate_many", terminate_many)
    records = []
    summary = reap(provider, [REGION], False, records.append, signing_key=KEY)
    reaped = {record["id"]: state for record in records if (state := states.get(record["id"]))}
    assert sorted(reaped.values()) == sorted(live), reaped
    assert sorted(states[instance_id] for instance_id in asked) == sorted(live)
    assert summary["terminated"] == len(live) and summary["failed"] == 0
    for instance_id, state in states.items():
        if state in live:  # where it lands: the provider is terminating it
            assert cloud.state(instance_id) in ("shutting-down", "terminated"), state


def test_the_reaper_never_terminates_what_someone_else_tagged_as_launchprovs(cloud):
    run = uuid.uuid4().hex[:8]
    past = stamp(datetime.now(UTC) - timedelta(minutes=5))
    (signed,) = cloud.launch(expires_in=3600, tags={"run": run}).json
    cloud.expire(signed, past)
    tags = cloud.tags(signed)
    assert tags[SIGNATURE_TAG] == signing.signature(tags, KEY)
    # Made outside launchprov with launchprov's tags: the caller, a past lease, the signed
    # instance's request id and a signature made with another key.
    forged = cloud.foreign(
        **{
            CALLER_TAG: "anonymous",
            EXPIRES_AT_TAG: past,
            REQUEST_ID_TAG: tags[REQUEST_ID_TAG] + "x",
            SIGNATURE_TAG: signing.signature(tags, "another-key-0123456789"),
            "run": run,
        }
    )
    bare = cloud.foreign(**{CALLER_TAG: "anonymous", EXPIRES_AT_TAG: past, "run": run})

    records = []
    summary = reap(cloud.provider, [REGION], False, records.append, signing_key=KEY)
    actions = {record["id"]: record["action"] for record in records if "id" in record}
    assert actions[signed] == "terminated"
    assert actions[forged] == actions[bare] == "skipped-unsigned"
    assert cloud.state(signed) in ("shutting-down", "terminated")
    assert cloud.state(forged) == cloud.state(bare) == "running"
    assert summary["unsigned"] >= 2 and summary["failed"] == 0

    # Without a key nothing is trusted; --trust-unsigned takes launchprov:caller alone.
    records = []
    reap(cloud.provider, [REGION], True, records.append)
    assert {r["id"]: r["action"] for r in records if "id" in r}[bare] == "skipped-unsigned"
    records = []
    reap(cloud.provider, [REGION], False, records.append, trust_unsigned=True)
    assert {r["id"]: r["action"] for r in records if "id" in r}[bare] == "terminated"
    assert cloud.state(bare) in ("shutting-down", "terminated")


def test_two_reapers_at_once_report_each_termination_once(cloud, monkeypatch):
    past = stamp(datetime.now(UTC) - timedelta(minutes=5))
    ids = cloud.launch(expires_in=3600, min_count=3, max_count=3).json
    for instance_id in ids:
        cloud.expire(instance_id, past)
    # Both list before either terminates: the second works from the same listing.
    listing = leases.expired_instances(cloud.provider, REGION, datetime.now(UTC))
    assert set(ids) <= {instance.id for instance in listing}
    monkeypatch.setattr(leases, "expired_instances", lambda provider, region, now: listing)

    first, second = [], []
    summary = reap(cloud.provider, [REGION], False, first.append, signing_key=KEY)
    assert {r["id"]: r["action"] for r in first if r.get("id") in ids} == dict.fromkeys(
        ids, "terminated"
    )
    assert summary["terminated"] >= 3
    summary = reap(cloud.provider, [REGION], False, second.append, signing_key=KEY)
    assert {r["id"]: r["action"] for r in second if r.get("id") in ids} == dict.fromkeys(
        ids, "already-terminated"
    )
    assert summary["terminated"] == 0 and summary["failed"] == 0
    assert summary["already_terminated"] == len(listing)
    assert all(cloud.state(i) in ("shutting-down", "terminated") for i in ids)
