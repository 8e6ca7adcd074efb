"""deploy/iam-policy.json (the service, and launchprov-check run with its credentials) and
deploy/iam-policy-reaper.json (launchprov-reap) are complete and minimal.

The service (pserve), launchprov-check and launchprov-reap reach a moto server process through a
recording proxy (tests/standins.py), which sees every call botocore sends: its service (the
SigV4 credential scope) and action. Every API the service offers is called once, as the
README's examples do. Then each policy must allow every permission those calls need (the
call's own action, and what EC2 authorizes besides: :data:`IMPLIED`), with its conditions
holding for launchprov's own calls, and allow nothing that was never needed.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from launchprov.launching import EXPIRES_AT_TAG
from launchprov.leases import stamp
from tests.e2e.conftest import BIN, CREDENTIALS_ENV, ec2_settings, running, service_ini
from tests.standins import Recorded, RecordingProxy
from tests.support import GOOD_AMI, free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SERVICE_POLICY = ROOT / "deploy" / "iam-policy.json"
REAPER_POLICY = ROOT / "deploy" / "iam-policy-reaper.json"

#: Permissions that a call needs besides its own action: (permission, does this call need it,
#: why). IAM authorizes them on the same request; no call of their own goes on the wire.
IMPLIED: tuple[tuple[str, Callable[[Recorded], bool], str], ...] = (
    (
        "ec2:CreateTags",
        lambda call: (
            call.action == "RunInstances"
            and any(key.startswith("TagSpecification.") for key in call.params)
        ),
        "tags given at launch (TagSpecifications) are authorized as ec2:CreateTags with "
        "ec2:CreateAction = RunInstances",
    ),
    (
        "iam:PassRole",
        lambda call: (
            call.action == "RunInstances"
            and any(key.startswith("IamInstanceProfile.") for key in call.params)
        ),
        "a launch with an instance profile passes the profile's role to EC2",
    ),
)

#: Sent, and allowed by no policy on purpose: each with the reason.
NEEDS_NO_PERMISSION = {
    "sts:GetCallerIdentity": "launchprov-check's (and the startup checks') credentials check: "
    "AWS answers it for any credentials, whatever the policies say",
}

LAUNCH = {"ami": GOOD_AMI, "instance_type": "t3.micro"}
SIGNED = {"launchprov.tag_signing_key": "iam-policy-test-key-0123456789"}
#: Bounds against a hung test, not timings under test.
RUN_BOUND = 120
LOG_DEADLINE = 30.0

_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/(?P<service>[^/]+)/aws4_request")


def service_of(call: Recorded) -> str:
    """The AWS service a call was signed for (its SigV4 credential scope): ec2, sts, iam."""
    header = call.headers.get("Authorization", "")
    match = _SCOPE.search(header)
    assert match, f"an unsigned call: {call.action} {header!r}"
    return match["service"]


def needed(calls: list[Recorded]) -> dict[str, list[Recorded]]:
    """permission -> the calls that needed it: each call's own action, and the implied ones."""
    permissions: dict[str, list[Recorded]] = {}
    for call in calls:
        permissions.setdefault(f"{service_of(call)}:{call.action}", []).append(call)
        for permission, applies, _ in IMPLIED:
            if applies(call):
                permissions.setdefault(permission, []).append(call)
    return permissions


def statements(policy: Path) -> list[dict]:
    document = json.loads(policy.read_text())
    assert document["Version"] == "2012-10-17"
    return document["Statement"]


def listed(value) -> list:
    return value if isinstance(value, list) else [value]


def allowed(policy: Path) -> set[str]:
    """Every action an Allow statement of ``policy`` names (no wildcard is expected)."""
    actions = set()
    for statement in statements(policy):
        assert statement["Effect"] == "Allow"
        actions.update(listed(statement["Action"]))
    return actions


# -- the conditions, evaluated for launchprov's own calls ------------------------------------


def request_tags(call: Recorded) -> dict[str, str]:
    """The tags a call gives: TagSpecification.N.Tag.M (a launch) or Tag.N (CreateTags)."""
    params = {key: values[0] for key, values in call.params.items()}
    tags = {}
    for key, value in params.items():
        match = re.fullmatch(r"((?:TagSpecification\.\d+\.)?Tag\.\d+\.)Key", key)
        if match:
            tags[value] = params.get(f"{match[1]}Value", "")
    return tags


def instance_ids(call: Recorded) -> list[str]:
    return [
        values[0]
        for key, values in call.params.items()
        if re.fullmatch(r"(InstanceId|ResourceId)\.\d+", key)
    ]


def context(call: Recorded, permission: str, tags_of: Callable[[str], dict[str, str]]):
    """(the instance, the condition keys) of ``permission`` on ``call``, for each instance it
    names (a launch: one): what IAM would evaluate."""
    implied = permission != f"{service_of(call)}:{call.action}"
    keys = {f"aws:RequestTag/{key}": value for key, value in request_tags(call).items()}
    if call.action == "RunInstances":
        return [("a launch", {**keys, "ec2:CreateAction": "RunInstances" if implied else None})]
    keys["aws:TagKeys"] = list(request_tags(call)) or [
        values[0] for key, values in call.params.items() if re.fullmatch(r"Tag\.\d+\.Key", key)
    ]
    return [
        (id_, {**keys, **{f"aws:ResourceTag/{key}": value for key, value in tags_of(id_).items()}})
        for id_ in instance_ids(call)
    ]


def holds(condition: dict, keys: dict) -> bool:
    """Whether a statement's Condition block holds: the operators these policies use."""
    for operator, tests in condition.items():
        for key, expected in tests.items():
            value = keys.get(key)
            if operator == "Null":
                if (value is None) != (expected == "true"):
                    return False
            elif operator == "StringEquals":
                if value not in listed(expected):
                    return False
            elif operator == "ForAllValues:StringEquals":
                if not set(value or ()) <= set(listed(expected)):
                    return False
            else:
                raise AssertionError(f"an operator this test cannot evaluate: {operator}")
    return True


def on_instances(statement: dict) -> bool:
    return any(
        fnmatch.fnmatchcase("arn:aws:ec2:us-east-1:123456789012:instance/i-0", resource)
        for resource in listed(statement["Resource"])
    )


def refused(policy: Path, permissions: dict, tags_of) -> list[str]:
    """The calls on instances that no statement of ``policy`` allows once its conditions are
    evaluated, each named: the permission, the call, its instance and the tags it gives."""
    found = []
    for permission, calls in permissions.items():
        granting = [
            statement
            for statement in statements(policy)
            if permission in listed(statement["Action"]) and on_instances(statement)
        ]
        if not granting:
            continue  # not on instances (Describe*, iam:PassRole): the Action lists decide
        for call in calls:
            for target, keys in context(call, permission, tags_of):
                if not any(holds(s.get("Condition", {}), keys) for s in granting):
                    tags = sorted(request_tags(call))
                    found.append(f"{permission} by {call.action} on {target}, tags {tags}")
    return found


# -- the calls -------------------------------------------------------------------------------


@dataclass
class Recording:
    service: list[Recorded]
    reaper: list[Recorded]
    tags_of: Callable[[str], dict[str, str]]


def logged(service, text: str) -> None:
    end = time.monotonic() + LOG_DEADLINE
    while text not in service.output:
        assert time.monotonic() < end, f"{text!r} never logged:\n{service.output}"
        time.sleep(0.05)  # polling interval: the log decides


def run(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command,
        env=dict(os.environ, **CREDENTIALS_ENV),
        capture_output=True,
        text=True,
        timeout=RUN_BOUND,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def every_api(service, moto_client) -> None:
    """Each route of the service that reaches the cloud, with each launch parameter that
    changes what is sent: as the README's examples call them."""

    def ok(method: str, path: str, body=None) -> dict | list:
        status, _, answer = service.request(method, path, body)
        assert status == 200, (method, path, answer)
        return answer

    subnet = moto_client.describe_subnets(
        Filters=[{"Name": "availability-zone", "Values": ["us-east-1b"]}]
    )["Subnets"][0]["SubnetId"]
    (plain,) = ok("PUT", "/v1/launch", LAUNCH)
    full = {
        **LAUNCH,
        "subnet_id": subnet,
        "iam_instance_profile": "launchprov-instance-web",
        "root_volume_size": 30,
        "root_volume_type": "gp3",
        "spot": True,
        "tags": {"role": "web"},
        "expires_in": 3600,
        "client_token": "iam-policy-test",
    }
    ok("PUT", "/v1/launch", full)
    ok("PUT", "/v1/launch", full)  # the retry: found by its client token
    preflight = ok("POST", "/v1/launch/preflight", {**LAUNCH, "subnet_id": subnet})
    assert preflight["would_launch"], preflight
    ok("GET", f"/v1/instances/{plain}")
    ok("GET", "/v1/instances?tag:role=web")
    ok("PUT", f"/v1/instances/{plain}/expiry", {"expires_in": 600})
    ok("DELETE", f"/v1/instances/{plain}/expiry")
    for action in ("stop", "start", "reboot"):
        ok("POST", f"/v1/instances/{plain}/{action}")
    ok("DELETE", f"/v1/instances/{plain}")
    ok("GET", "/readyz")


@pytest.fixture(scope="module")
def recording(moto_process) -> Iterator[Recording]:
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    moto_client = boto3.client(
        "ec2", region_name="us-east-1", endpoint_url=moto_process, **credentials
    )
    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=moto_process, **credentials)
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_instance_profile(InstanceProfileName="launchprov-instance-web")
    service_proxy, reaper_proxy = RecordingProxy(moto_process), RecordingProxy(moto_process)
    settings = {"launchprov.policy.amis": GOOD_AMI, **SIGNED}
    try:
        with running(ec2_settings(service_proxy.url, **settings), CREDENTIALS_ENV) as service:
            logged(service, "startup checks:")
            every_api(service, moto_client)
            run([str(BIN / "launchprov-check"), str(service.ini)])
            # A lease that has run out, for the reaper: the tag rewritten at EC2 (the lease is
            # not signed, so the instance is still the service's).
            _, _, (leased,) = service.launch({**LAUNCH, "expires_in": 3600})
            past = stamp(datetime.now(UTC) - timedelta(hours=1))
            moto_client.create_tags(
                Resources=[leased], Tags=[{"Key": EXPIRES_AT_TAG, "Value": past}]
            )
            reaper_ini = Path(service.ini.parent, "reaper.ini")
            reaper_settings = ec2_settings(reaper_proxy.url, **SIGNED)
            reaper_ini.write_text(service_ini(reaper_settings, free_port()))
            reaped = run([str(BIN / "launchprov-reap"), str(reaper_ini)]).stdout
            assert f'"id": "{leased}"' in reaped and '"action": "terminated"' in reaped, reaped

        def tags_of(instance_id: str) -> dict[str, str]:
            reply = moto_client.describe_instances(InstanceIds=[instance_id])
            raw = reply["Reservations"][0]["Instances"][0]
            return {tag["Key"]: tag["Value"] for tag in raw.get("Tags", [])}

        yield Recording(list(service_proxy.recorded), list(reaper_proxy.recorded), tags_of)
    finally:
        service_proxy.close()
        reaper_proxy.close()


POLICIES = {"service": SERVICE_POLICY, "reaper": REAPER_POLICY}


@pytest.mark.parametrize("who", list(POLICIES))
def test_the_policy_allows_every_permission_the_calls_need(recording, who):
    permissions = needed(getattr(recording, who))
    missing = set(permissions) - allowed(POLICIES[who]) - set(NEEDS_NO_PERMISSION)
    assert not missing, f"{POLICIES[who].name} does not allow {sorted(missing)}"


@pytest.mark.parametrize("who", list(POLICIES))
def test_the_policy_allows_nothing_never_needed(recording, who):
    unused = allowed(POLICIES[who]) - set(needed(getattr(recording, who)))
    assert not unused, f"{POLICIES[who].name} allows {sorted(unused)}, never needed"


@pytest.mark.parametrize("who", list(POLICIES))
def test_the_conditions_hold_for_every_call_on_an_instance(recording, who):
    permissions = needed(getattr(recording, who))
    assert not refused(POLICIES[who], permissions, recording.tags_of)


def test_the_permissions_needing_none_are_sent_indeed(recording):
    """The exceptions stay true: each is sent (else it is no exception) and no policy names it."""
    sent = set(needed(recording.service))
    for permission in NEEDS_NO_PERMISSION:
        assert permission in sent
        assert all(permission not in allowed(policy) for policy in POLICIES.values())


def test_the_conditions_refuse_what_launchprov_never_does(recording):
    """The evaluation above can refuse: an instance without launchprov:caller, a tag other than
    the lease's, a launch without launchprov's tags."""
    terminate = next(call for call in recording.reaper if call.action == "TerminateInstances")
    foreign = refused(
        SERVICE_POLICY, {"ec2:TerminateInstances": [terminate]}, lambda instance_id: {}
    )
    assert foreign, "an instance launchprov did not launch would be terminated"
    tagging = [call for call in recording.service if call.action == "CreateTags"]
    assert tagging
    renamed = Recorded(
        tagging[0].method,
        tagging[0].path,
        tagging[0].headers,
        tagging[0].body.replace(b"launchprov%3Aexpires-at", b"launchprov%3Acaller"),
    )
    assert refused(SERVICE_POLICY, {"ec2:CreateTags": [renamed]}, recording.tags_of)
