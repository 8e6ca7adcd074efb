"""Capacity fallback and the pre-flight, against moto behind a fault-injecting EC2 endpoint
(in a thread here; the e2e suite runs it as a process)."""

from __future__ import annotations

import json
import logging

import pytest

from tests.faulty_ec2 import FaultControl, serve
from tests.standins import Faults, RecordingProxy
from tests.support import (
    GOOD_AMI,
    MISSING_AMI,
    assert_error_body,
    libcloud_ec2_settings,
    make_app,
    serve_in_thread,
)

LAUNCH = {"ami": GOOD_AMI, "instance_type": "t3.large", "placement": "us-east-1a"}
OUT = {"instance_type": "t3.large"}


@pytest.fixture
def faulty(moto_server_ec2, moto_server_endpoint):
    """A fault-injecting endpoint in front of the threaded moto server: (control, url)."""
    server = serve(moto_server_endpoint)
    serve_in_thread(server)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield FaultControl(url)
    finally:
        server.shutdown()
        server.server_close()


def app_for(faulty: FaultControl, **settings):
    # Three attempts per call, as in production: a capacity error must still be asked once.
    return make_app(
        **{
            "launchprov.ec2.endpoint_url": faulty.url,
            "launchprov.ec2.max_attempts": "3",
            **settings,
        }
    )


def put(app, body, status="*", headers=None):
    return app.put(
        "/v1/launch",
        json.dumps(body),
        content_type="application/json",
        headers=headers or {},
        status=status,
    )


def metric(app, name: str, **labels) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in app.get("/metrics").text.splitlines():
        if line.startswith(f"{name}{{{wanted}}}"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def instance(client, instance_id: str) -> dict:
    return client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def tag(instance: dict, key: str) -> str | None:
    return next((item["Value"] for item in instance.get("Tags", []) if item["Key"] == key), None)


def test_a_capacity_error_falls_back_to_the_next_alternative(faulty, moto_server_ec2, caplog):
    faulty.refuse(OUT)
    app = app_for(faulty)
    fallback = [
        {"instance_type": "t3.large", "placement": "us-east-1c"},
        {"instance_type": "m5.large"},
    ]
    with caplog.at_level(logging.INFO, logger="launchprov.access"):
        response = put(app, {**LAUNCH, "fallback": fallback}, status=200)
    (instance_id,) = response.json
    launched = instance(moto_server_ec2, instance_id)
    assert launched["InstanceType"] == "m5.large"
    assert launched["Placement"]["AvailabilityZone"] == "us-east-1a"
    assert tag(launched, "launchprov:alternative") == "2"
    # Asked once each (botocore's retries do not repeat a capacity error): t3.large twice.
    calls = faulty.calls()
    assert [(call["instance_type"], call["zone"], call["faulted"]) for call in calls] == [
        ("t3.large", "us-east-1a", True),
        ("t3.large", "us-east-1c", True),
        ("m5.large", "us-east-1a", False),
    ]
    assert (
        metric(app, "launchprov_capacity_fallbacks_total", provider="ec2", outcome="fallback") == 1
    )
    assert (
        metric(app, "launchprov_capacity_fallbacks_total", provider="ec2", outcome="capacity_error")
        == 2
    )
    (line,) = [
        record.getMessage() for record in caplog.records if record.name == "launchprov.access"
    ]
    assert line.endswith("alternative=2")

    # What answered a capacity error is remembered: passed over without a call.
    faulty.refuse(OUT)  # forget the calls so far
    (second,) = put(app, {**LAUNCH, "fallback": fallback}, status=200).json
    assert instance(moto_server_ec2, second)["InstanceType"] == "m5.large"
    assert [call["instance_type"] for call in faulty.calls()] == ["m5.large"]
    assert (
        metric(app, "launchprov_capacity_fallbacks_total", provider="ec2", outcome="skipped") == 2
    )


def test_every_alternative_out_is_a_408_listing_each_attempt(faulty, moto_server_ec2):
    faulty.refuse(OUT, {"zone": "us-east-1c", "code": "InsufficientHostCapacity"})
    app = app_for(faulty, **{"launchprov.capacity.unavailable_ttl": "120"})
    before = len(moto_server_ec2.describe_instances()["Reservations"])
    body = {**LAUNCH, "fallback": [{"placement": "us-east-1c", "instance_type": "c5.large"}]}
    response = put(app, body)
    error = assert_error_body(response, 408)
    assert error["provider"]["code"] == "InsufficientInstanceCapacity"
    assert error["provider"]["retryable"] is True
    assert [item["name"] for item in error["details"]] == ["alternative 0", "alternative 1"]
    assert (
        "t3.large in us-east-1a: answered InsufficientInstanceCapacity"
        in error["details"][0]["description"]
    )
    assert (
        "c5.large in us-east-1c: answered InsufficientHostCapacity"
        in error["details"][1]["description"]
    )
    assert 1 <= int(response.headers["Retry-After"]) <= 120
    assert len(faulty.calls()) == 2
    assert len(moto_server_ec2.describe_instances()["Reservations"]) == before

    # Again at once: every offering is known out, so no call at all, and the same answer.
    faulty.refuse(OUT)
    again = put(app, body)
    error = assert_error_body(again, 408)
    assert "known out, not asked: InsufficientHostCapacity" in error["details"][1]["description"]
    assert int(again.headers["Retry-After"]) <= int(response.headers["Retry-After"])
    assert faulty.calls() == []
    assert (
        metric(app, "launchprov_capacity_fallbacks_total", provider="ec2", outcome="exhausted") == 2
    )


def test_another_error_ends_the_launch_at_once(faulty):
    faulty.refuse({"instance_type": "t3.large", "code": "InstanceLimitExceeded", "status": 400})
    app = app_for(faulty)
    response = put(app, {**LAUNCH, "fallback": [{"instance_type": "m5.large"}]})
    assert assert_error_body(response, 408)["provider"]["code"] == "InstanceLimitExceeded"
    assert [call["instance_type"] for call in faulty.calls()] == ["t3.large"]


def test_a_launch_without_fallback_is_still_asked_and_answered_as_before(faulty):
    faulty.refuse(OUT)
    app = app_for(faulty)
    for _ in range(2):
        response = put(app, LAUNCH)
        error = assert_error_body(response, 408)
        assert error["provider"]["code"] == "InsufficientInstanceCapacity"
        assert error["details"] == []
        assert response.headers["Retry-After"] == "2"
    assert len(faulty.calls()) == 2  # no memory for the caller who gave no alternative
    # ... but what it learnt serves the launches that have alternatives.
    faulty.refuse(OUT)
    put(app, {**LAUNCH, "fallback": [{"instance_type": "m5.large"}]}, status=200)
    assert [call["instance_type"] for call in faulty.calls()] == ["m5.large"]


def test_a_subnet_alternative_launches_in_the_subnets_zone(faulty, moto_server_ec2):
    faulty.refuse({"zone": "us-east-1a"})
    subnets = moto_server_ec2.describe_subnets(
        Filters=[{"Name": "availability-zone", "Values": ["us-east-1d"]}]
    )["Subnets"]
    subnet = subnets[0]["SubnetId"]
    app = app_for(faulty)
    (instance_id,) = put(app, {**LAUNCH, "fallback": [{"subnet_id": subnet}]}, status=200).json
    launched = instance(moto_server_ec2, instance_id)
    assert (launched["SubnetId"], launched["Placement"]["AvailabilityZone"]) == (
        subnet,
        "us-east-1d",
    )
    assert [(call["zone"], call["subnet_id"]) for call in faulty.calls()] == [
        ("us-east-1a", None),
        (None, subnet),
    ]


def test_a_retry_by_client_token_answers_the_winning_alternatives_ids(faulty, moto_server_ec2):
    faulty.refuse(OUT)
    app = app_for(faulty)
    body = {**LAUNCH, "client_token": "deploy-42", "fallback": [{"instance_type": "m5.large"}]}
    first = put(app, body, status=200).json
    faulty.refuse()  # capacity is back; the retry must still answer the first launch
    assert put(app, body, status=200).json == first
    assert faulty.calls() == []
    launched = instance(moto_server_ec2, first[0])
    assert tag(launched, "launchprov:client-token") == "deploy-42"
    assert tag(launched, "launchprov:alternative") == "1"
    # The same token with another fallback is another launch: a 409.
    other = {**body, "fallback": [{"instance_type": "c5.large"}]}
    assert_error_body(put(app, other), 409)


# -- pre-flight ---------------------------------------------------------------------------


def preflight(app, body, status="*"):
    return app.post(
        "/v1/launch/preflight", json.dumps(body), content_type="application/json", status=status
    )


def checks_of(answer: dict) -> dict[str, dict]:
    return {check["name"]: check for check in answer["checks"]}


def test_preflight_of_a_good_launch_launches_nothing(faulty, moto_server_ec2):
    app = app_for(faulty)
    before = len(moto_server_ec2.describe_instances()["Reservations"])
    subnet = moto_server_ec2.describe_subnets(
        Filters=[{"Name": "availability-zone", "Values": ["us-east-1c"]}]
    )["Subnets"][0]["SubnetId"]
    answer = preflight(
        app, {**LAUNCH, "subnet_id": subnet, "root_volume_size": 20}, status=200
    ).json
    assert answer["would_launch"] is True, answer
    assert set(checks_of(answer)) == {
        "image",
        "key_pair",
        "security_group:SSH",
        "subnet",
        "instance_type_offered",
        "dry_run",
    }
    for check in answer["checks"]:
        assert set(check) == {"name", "ok", "code", "message"}
        assert check["ok"] is True and check["code"] is None
    (dry_run,) = faulty.calls(dry_run=True)
    assert dry_run["subnet_id"] == subnet
    assert faulty.calls() == []  # no RunInstances without DryRun
    assert len(moto_server_ec2.describe_instances()["Reservations"]) == before


def test_preflight_names_every_failed_check(faulty, moto_server_ec2):
    app = app_for(faulty)
    before = len(moto_server_ec2.describe_instances()["Reservations"])
    body = {
        "ami": MISSING_AMI,
        "instance_type": "t3.large",
        "key_name": "nobody",
        "security_groups": ["SSH", "no-such-group"],
        "subnet_id": "subnet-12345678",
    }
    answer = preflight(app, body, status=200).json
    assert answer["would_launch"] is False
    checks = checks_of(answer)
    assert (checks["image"]["ok"], checks["image"]["code"]) == (False, "InvalidAMIID.NotFound")
    assert (checks["key_pair"]["ok"], checks["key_pair"]["code"]) == (
        False,
        "InvalidKeyPair.NotFound",
    )
    assert checks["key_pair"]["message"] == "The key pair 'nobody' does not exist"
    assert checks["security_group:SSH"]["ok"] is True
    assert checks["security_group:no-such-group"]["code"] == "InvalidGroup.NotFound"
    assert checks["subnet"]["code"] == "InvalidSubnetID.NotFound"
    assert all(check["message"] for check in answer["checks"] if not check["ok"])
    assert len(moto_server_ec2.describe_instances()["Reservations"]) == before


def test_preflight_of_a_type_not_offered_in_the_zone(moto_ec2):
    app = make_app()
    answer = preflight(app, {**LAUNCH, "instance_type": "t9.nothing"}, status=200).json
    # moto's dry run passes it: the named check is what catches it.
    assert answer["would_launch"] is False
    checks = checks_of(answer)
    assert checks["instance_type_offered"]["code"] == "Unsupported"
    assert "t9.nothing is not offered in us-east-1a" in checks["instance_type_offered"]["message"]


def test_preflight_of_an_unreachable_provider_is_a_408(refusing_app):
    response = preflight(refusing_app, LAUNCH)
    assert assert_error_body(response, 408)["provider"]["code"] == "EndpointUnreachable"


@pytest.fixture
def refusing_app():
    from tests.support import free_port

    return make_app(
        **{
            "launchprov.ec2.endpoint_url": f"http://127.0.0.1:{free_port()}",
            "launchprov.ec2.max_attempts": "1",
        }
    )


#: The calls of each EC2 adapter's pre-flight, one per check.
PREFLIGHT_CALLS = {
    "ec2": [
        "DescribeImages",
        "DescribeKeyPairs",
        "DescribeSecurityGroups",
        "DescribeSubnets",
        "DescribeInstanceTypeOfferings",
        "RunInstances",  # the dry run
    ],
    "libcloud-ec2": [
        "DescribeImages",
        "DescribeSubnets",
        "DescribeAvailabilityZones",
        "DescribeInstanceTypeOfferings",
    ],
}


@pytest.mark.parametrize(
    ("adapter", "action"),
    [(adapter, action) for adapter, actions in PREFLIGHT_CALLS.items() for action in actions],
)
def test_a_transport_failure_of_any_one_preflight_check_is_a_408_not_a_failed_check(
    moto_server_ec2, moto_server_endpoint, adapter, action
):
    faults = Faults(drop_reply=lambda recorded: recorded.action == action)
    proxy = RecordingProxy(moto_server_endpoint, faults)
    settings = {
        "ec2": {"launchprov.ec2.endpoint_url": proxy.url, "launchprov.ec2.max_attempts": "1"},
        "libcloud-ec2": libcloud_ec2_settings(proxy.url),
    }[adapter]
    subnet = moto_server_ec2.describe_subnets(
        Filters=[{"Name": "availability-zone", "Values": ["us-east-1a"]}]
    )["Subnets"][0]["SubnetId"]
    body = {**LAUNCH, "instance_type": "t2.micro", "subnet_id": subnet}
    try:
        response = preflight(make_app(**settings), body)
    finally:
        proxy.close()
    # The check could not be made: the provider failed, which no check answers.
    body = assert_error_body(response, 408)
    assert body["provider"]["code"] == "EndpointUnreachable", body
    assert [recorded.action for recorded in faults.dropped] == [action]
    launched = [
        run for run in proxy.actions("RunInstances") if run.params.get("DryRun") != ["true"]
    ]
    assert launched == []
