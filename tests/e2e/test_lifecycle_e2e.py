"""End to end: the whole life of instances, on a waitress process and a moto server process."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.e2e.conftest import running
from tests.support import GOOD_AMI

pytestmark = pytest.mark.e2e


def poll_state(service, instance_id, wanted: set[str], deadline: float = 30.0) -> dict:
    """Describe until the state is one of ``wanted``, or fail at the deadline."""
    end = time.monotonic() + deadline
    while True:
        status, _, instance = service.request("GET", f"/v1/instances/{instance_id}")
        assert status == 200, instance
        if instance["state"] in wanted:
            return instance
        assert time.monotonic() < end, f"{instance_id} still {instance['state']}"
        time.sleep(0.1)  # polling interval; the deadline decides


def list_all(service, query: str, limit: int) -> list[str]:
    ids, token = [], None
    for _ in range(1000):
        path = f"/v1/instances?{query}&limit={limit}" + (f"&next={token}" if token else "")
        status, _, page = service.request("GET", path)
        assert status == 200, page
        assert len(page["instances"]) <= limit
        ids += [instance["id"] for instance in page["instances"]]
        token = page["next"]
        if token is None:
            return ids
    raise AssertionError("the listing never ended")


def test_the_life_of_an_instance(service, moto_client):
    tag = uuid.uuid4().hex[:10]
    status, _, ids = service.launch(
        {"ami": GOOD_AMI, "instance_type": "t2.micro", "tags": {"role": "web", "run": tag}}
    )
    assert status == 200 and len(ids) == 1
    (instance_id,) = ids
    instance = poll_state(service, instance_id, {"running"})
    caller_tags = {k: v for k, v in instance["tags"].items() if not k.startswith("launchprov:")}
    assert caller_tags == {"role": "web", "run": tag}
    assert instance["tags"]["launchprov:caller"] == "anonymous"
    assert instance["ami"] == GOOD_AMI and instance["placement"] == "us-east-1b"
    # What EC2 itself holds agrees.
    raw = moto_client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]
    assert {t["Key"]: t["Value"] for t in raw["Instances"][0]["Tags"]} == instance["tags"]

    assert list_all(service, f"tag:run={tag}", 10) == [instance_id]
    assert list_all(service, f"tag:run={tag}&tag:role=web&state=running", 10) == [instance_id]
    assert list_all(service, f"id={instance_id}", 10) == [instance_id]
    assert list_all(service, f"tag:run={tag}&state=stopped", 10) == []

    status, _, stopped = service.request("POST", f"/v1/instances/{instance_id}/stop")
    assert status == 200 and stopped["state"] in ("stopping", "stopped")
    poll_state(service, instance_id, {"stopped"})
    status, _, body = service.request("POST", f"/v1/instances/{instance_id}/reboot")
    assert status == 409, body
    status, _, started = service.request("POST", f"/v1/instances/{instance_id}/start")
    assert status == 200 and started["state"] in ("pending", "running")
    poll_state(service, instance_id, {"running"})
    status, _, rebooted = service.request("POST", f"/v1/instances/{instance_id}/reboot")
    assert status == 200 and rebooted["state"] in ("pending", "running")

    status, _, ended = service.request("DELETE", f"/v1/instances/{instance_id}")
    assert status == 200 and ended["state"] in ("shutting-down", "terminated")
    status, _, again = service.request("DELETE", f"/v1/instances/{instance_id}")
    assert status == 200 and again["id"] == instance_id
    status, _, body = service.request("POST", f"/v1/instances/{instance_id}/start")
    assert status == 409 and body["status"] == 409
    assert moto_client.describe_instances(InstanceIds=[instance_id])["Reservations"][0][
        "Instances"
    ][0]["State"]["Name"] in ("shutting-down", "terminated")

    status, _, body = service.request("GET", "/v1/instances/i-0123456789abcdef0")
    assert status == 404 and body["status"] == 404


def test_paging_through_more_than_100_instances(service, moto_client):
    """105 launches are 105 reservations: more than one of moto's pages of 100."""
    tag = uuid.uuid4().hex[:10]
    launched = []
    for _ in range(105):
        status, _, ids = service.launch(
            {"ami": GOOD_AMI, "instance_type": "t2.micro", "tags": {"page-run": tag}}
        )
        assert status == 200, ids
        launched += ids
    for limit in (1000, 100, 40):
        seen = list_all(service, f"tag:page-run={tag}", limit)
        assert len(seen) == len(set(seen)) == 105, limit
        assert set(seen) == set(launched)


def test_an_action_the_driver_cannot_do_is_501():
    settings = {"launchprov.provider": "libcloud", "launchprov.libcloud.driver": "dummy"}
    with running(settings) as service:
        status, _, ids = service.launch({"ami": "1", "instance_type": "small"})
        assert status == 200
        for action in ("stop", "start"):
            status, _, body = service.request("POST", f"/v1/instances/{ids[0]}/{action}")
            assert status == 501 and action in body["message"], body
        status, _, body = service.request("POST", f"/v1/instances/{ids[0]}/reboot")
        assert status == 200 and body["state"] == "running"
