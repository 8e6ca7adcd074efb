"""launchprov.client against a real service process (waitress, authentication and a policy on)
and a real moto server process; every effect is checked at EC2 with boto3."""

from __future__ import annotations

import base64
import re
import uuid

import pytest

from launchprov.auth import digest
from launchprov.client import (
    BadRequest,
    Client,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    ProviderFailed,
    Unauthorized,
)
from tests.e2e.conftest import CREDENTIALS_ENV, ec2_settings, running
from tests.e2e.standin import FlakyProxy
from tests.support import GOOD_AMI, MISSING_AMI

pytestmark = pytest.mark.e2e

TOKEN = "ops-token-0123456789abcdef"
BURST_TOKEN = "burst-token-0123456789abcdef"
#: Authentication on, two callers, a policy rule to break, and one launch a second for "burst".
SETTINGS = {
    "launchprov.auth.enabled": "true",
    # The indented line continues the value in the .ini: one token line per caller.
    "launchprov.auth.tokens": f"ops {digest(TOKEN)}\n    burst {digest(BURST_TOKEN)}",
    "launchprov.policy.instance_types": "t2.*",
    "launchprov.ratelimit.launch.burst": "1/second",
}
FAST = {"interval": 0.05, "timeout": 30}


@pytest.fixture(scope="module")
def client_service(moto_process):
    with running(ec2_settings(moto_process, **SETTINGS), CREDENTIALS_ENV) as service:
        yield service


@pytest.fixture
def client(client_service):
    with Client(client_service.url, TOKEN, retries=2, backoff=0.05) as client:
        yield client


@pytest.fixture
def run() -> str:
    """A tag value of this test's own: its instances, and only them, at EC2."""
    return uuid.uuid4().hex


def at_ec2(moto_client, run: str) -> list[dict]:
    """The instances EC2 holds with tag run=``run``."""
    reservations = moto_client.describe_instances(Filters=[{"Name": "tag:run", "Values": [run]}])[
        "Reservations"
    ]
    return [instance for r in reservations for instance in r["Instances"]]


def test_launch_sends_every_parameter_to_ec2(client, moto_client, run):
    ids = client.launch(
        GOOD_AMI,
        "t2.micro",
        min_count=2,
        max_count=2,
        key_name="scalacity_dev1",
        security_groups=["SSH"],
        placement="us-east-1c",
        user_data="#!/bin/sh\necho hello\n",
        tags={"run": run, "role": "web"},
    )
    assert len(ids) == 2
    instances = at_ec2(moto_client, run)
    assert sorted(i["InstanceId"] for i in instances) == sorted(ids)
    for instance in instances:
        assert instance["ImageId"] == GOOD_AMI and instance["InstanceType"] == "t2.micro"
        assert instance["KeyName"] == "scalacity_dev1"
        assert instance["Placement"]["AvailabilityZone"] == "us-east-1c"
        assert [g["GroupName"] for g in instance["SecurityGroups"]] == ["SSH"]
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["role"] == "web" and tags["launchprov:caller"] == "ops"
        user_data = moto_client.describe_instance_attribute(
            InstanceId=instance["InstanceId"], Attribute="userData"
        )["UserData"]["Value"]
        assert base64.b64decode(user_data).decode() == "#!/bin/sh\necho hello\n"

    running_ = client.wait(ids, "running", **FAST)
    assert [item["id"] for item in running_] == ids
    assert all(item["state"] == "running" for item in running_)
    described = client.describe(ids[0])
    assert described["id"] == ids[0] and described["placement"] == "us-east-1c"
    assert described["tags"]["run"] == run


def test_instances_walks_every_page(client, moto_client, run):
    ids = client.launch(GOOD_AMI, "t2.micro", min_count=5, max_count=5, tags={"run": run})
    pages = list(client.pages(tags={"run": run}, limit=2))
    assert [len(page["instances"]) for page in pages] == [2, 2, 1]
    assert pages[-1]["next"] is None
    listed = [item["id"] for item in client.instances(tags={"run": run}, limit=2)]
    assert (
        sorted(listed) == sorted(ids) == sorted(i["InstanceId"] for i in at_ec2(moto_client, run))
    )
    assert [item["id"] for item in client.instances(id=ids[:2], state="running")] in (
        ids[:2],
        ids[1::-1],
    )
    assert list(client.instances(tags={"run": run}, state="stopped")) == []


def test_stop_start_reboot_terminate_and_wait(client, moto_client, run):
    (instance_id,) = client.launch(GOOD_AMI, "t2.micro", tags={"run": run})
    client.wait([instance_id], **FAST)

    def state_at_ec2() -> str:
        return at_ec2(moto_client, run)[0]["State"]["Name"]

    assert client.stop(instance_id)["state"] in ("stopping", "stopped")
    assert client.wait(instance_id, "stopped", **FAST)[0]["state"] == "stopped"
    assert state_at_ec2() == "stopped"
    with pytest.raises(Conflict) as caught:
        client.reboot(instance_id)  # EC2 cannot reboot a stopped instance
    assert caught.value.details[0]["name"] == "id"

    assert client.start(instance_id)["state"] in ("pending", "running")
    client.wait(instance_id, **FAST)
    assert state_at_ec2() == "running"
    assert client.reboot(instance_id)["state"] in ("pending", "running")

    assert client.terminate(instance_id)["state"] in ("shutting-down", "terminated")
    assert client.wait(instance_id, "terminated", **FAST)[0]["state"] == "terminated"
    assert state_at_ec2() == "terminated"


def test_a_client_token_launches_once(client, moto_client, run):
    token = f"deploy-{run}"
    first = client.launch(GOOD_AMI, "t2.micro", client_token=token, tags={"run": run})
    again = client.launch(GOOD_AMI, "t2.micro", client_token=token, tags={"run": run})
    assert first == again and [i["InstanceId"] for i in at_ec2(moto_client, run)] == first
    with pytest.raises(Conflict):
        client.launch(GOOD_AMI, "t2.nano", client_token=token, tags={"run": run})
    assert len(at_ec2(moto_client, run)) == 1


def test_each_error_of_the_service_raises_its_exception(client, client_service, moto_client, run):
    with pytest.raises(BadRequest) as caught:
        client.launch(GOOD_AMI, "t2.micro", instancetype="t2.micro", min_count="2")
    assert {d["name"] for d in caught.value.details} == {"instancetype", "min_count"}
    assert caught.value.request_id

    with pytest.raises(ProviderFailed) as caught:
        client.launch(MISSING_AMI, "t2.micro", tags={"run": run})
    assert caught.value.code == "InvalidAMIID.NotFound" and caught.value.retryable is False

    with pytest.raises(Forbidden) as caught:
        client.launch(GOOD_AMI, "m5.large", tags={"run": run})
    assert "instance_types" in caught.value.message
    assert at_ec2(moto_client, run) == []

    with pytest.raises(NotFound):
        client.describe("i-0123456789abcdef0")

    with Client(client_service.url, token="") as anonymous, pytest.raises(Unauthorized):
        anonymous.describe("i-0123456789abcdef0")
    stranger = Client(client_service.url, token="not-a-token")
    with stranger, pytest.raises(Unauthorized):
        list(stranger.instances())


@pytest.mark.parametrize("forward_failed", [False, True], ids=["refused", "answer-lost"])
def test_a_retryable_408_is_retried_and_ec2_launches_once(
    client_service, moto_client, run, forward_failed
):
    """The stand-in answers the first launch 408 (Retry-After: 1) -- without forwarding it, or
    after the service launched and the answer was lost -- then forwards the retry."""
    proxy = FlakyProxy(client_service.url, failures=1, forward_failed=forward_failed)
    try:
        with Client(proxy.url, TOKEN, retries=2, backoff=0.05) as client:
            ids = client.launch(GOOD_AMI, "t2.micro", tags={"run": run})
    finally:
        proxy.close()
    launches = [seen for seen in proxy.seen if seen.path == "/v1/launch"]
    assert [seen.answered_408 for seen in launches] == [True, False]
    keys = {seen.headers["Idempotency-Key"] for seen in launches}
    assert len(keys) == 1
    assert launches[1].at - launches[0].at >= 1.0  # Retry-After was honoured
    instances = at_ec2(moto_client, run)
    assert [instance["InstanceId"] for instance in instances] == ids and len(ids) == 1
    tags = {t["Key"]: t["Value"] for t in instances[0]["Tags"]}
    assert tags["launchprov:client-token"] == keys.pop()


def test_a_rate_limited_launch_is_retried_after_retry_after(client_service, moto_client, run):
    """The service's own 429: the second launch within a second waits and goes through."""
    with Client(client_service.url, BURST_TOKEN, retries=2, backoff=0.05) as client:
        first = client.launch(GOOD_AMI, "t2.micro", tags={"run": run})
        second = client.launch(GOOD_AMI, "t2.micro", tags={"run": run})
    assert sorted(i["InstanceId"] for i in at_ec2(moto_client, run)) == sorted(first + second)
    assert len(first + second) == 2
    # The access line of the refused attempt: the service did say 429.
    assert re.search(r"PUT launch 429 .*caller=burst", client_service.output)


def test_no_service_is_a_connection_failure(refusing_endpoint):
    client = Client(refusing_endpoint, retries=1, backoff=0.01)
    with client, pytest.raises(ConnectionFailed, match="no answer"):
        client.describe("i-0123456789abcdef0")


def instance_count(moto_client) -> int:
    reservations = moto_client.describe_instances()["Reservations"]
    return sum(len(reservation["Instances"]) for reservation in reservations)


def test_preflight_says_whether_a_launch_would_succeed_launching_nothing(client, moto_client):
    before = instance_count(moto_client)
    answer = client.preflight(GOOD_AMI, "t2.micro", min_count=2, max_count=2, tags={"k": "v"})
    assert answer["would_launch"] is True
    assert answer["checks"] and all(check["ok"] for check in answer["checks"])
    answer = client.preflight(MISSING_AMI, "t2.micro", key_name="no-such-key")
    assert answer["would_launch"] is False
    failed = {check["code"] for check in answer["checks"] if not check["ok"]}
    assert {"InvalidAMIID.NotFound", "InvalidKeyPair.NotFound"} <= failed
    with pytest.raises(Forbidden):
        client.preflight(GOOD_AMI, "m5.large")
    with pytest.raises(BadRequest):
        client.preflight("not-an-ami", "t2.micro")
    assert instance_count(moto_client) == before
