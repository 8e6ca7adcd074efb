"""End to end: ownership with authentication on, a real service and a real moto server process.

The moto server also holds an instance launched directly with boto3, which launchprov never
launched. Every cell of the (see, act_on) matrix is tried on every adapter, and every refused
action is checked at EC2 itself: the instance's state did not change.
"""

from __future__ import annotations

import uuid

import pytest

from launchprov.auth import digest
from tests.e2e.conftest import ADAPTERS, CREDENTIALS_ENV, running
from tests.functional.test_ownership import ACTIONS, COMBOS, REACH, matrix_caller
from tests.support import GOOD_AMI

pytestmark = pytest.mark.e2e

GONE = ("shutting-down", "terminated")


def ec2_state(client, instance_id: str) -> str:
    reply = client.describe_instances(InstanceIds=[instance_id])
    return reply["Reservations"][0]["Instances"][0]["State"]["Name"]


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_every_cell_of_the_matrix_over_http(adapter, moto_process, moto_client):
    run = uuid.uuid4().hex[:8]
    callers = {matrix_caller(*combo): combo for combo in COMBOS}
    tokens = {caller: f"{caller}-{run}-secret" for caller in [*callers, "other"]}
    settings = {
        "launchprov.auth.enabled": "true",
        "launchprov.auth.tokens": "\n  ".join(f"{c} {digest(t)}" for c, t in tokens.items()),
    }
    for caller, (see, act_on) in callers.items():
        settings[f"launchprov.policy.{caller}.see"] = see
        settings[f"launchprov.policy.{caller}.act_on"] = act_on
    launch = {"ami": GOOD_AMI, "instance_type": "t2.micro"}

    with running(ADAPTERS[adapter](moto_process, **settings), CREDENTIALS_ENV) as service:

        def call(caller, method, path, body=None):
            headers = {"Authorization": f"Bearer {tokens[caller]}"}
            return service.request(method, path, body, headers=headers)

        for caller, (see, act_on) in callers.items():
            status, _, own = call(caller, "PUT", "/v1/launch", launch)
            assert status == 200, own
            status, _, others = call("other", "PUT", "/v1/launch", launch)
            assert status == 200, others
            foreign = moto_client.run_instances(
                ImageId=GOOD_AMI, InstanceType="t2.micro", MinCount=1, MaxCount=1
            )["Instances"][0]["InstanceId"]
            targets = {"own": own[0], "other": others[0], "foreign": foreign}

            ids = "&".join(f"id={instance_id}" for instance_id in targets.values())
            status, _, page = call(caller, "GET", f"/v1/instances?{ids}")
            assert status == 200
            listed = sorted(item["id"] for item in page["instances"])
            assert listed == sorted(targets[target] for target in REACH[see]), caller

            for target, instance_id in targets.items():
                visible = target in REACH[see]
                status, _, body = call(caller, "GET", f"/v1/instances/{instance_id}")
                assert status == (200 if visible else 404), (caller, target, body)
                for action in ACTIONS:
                    before = ec2_state(moto_client, instance_id)
                    if action == "terminate":
                        status, _, body = call(caller, "DELETE", f"/v1/instances/{instance_id}")
                    else:
                        path = f"/v1/instances/{instance_id}/{action}"
                        status, _, body = call(caller, "POST", path)
                    if not visible:
                        expected = 404
                    elif target not in REACH[act_on]:
                        expected = 403
                        assert f"launchprov.policy.{caller}.act_on" in body["message"]
                    else:
                        expected = 200
                    assert status == expected, (caller, target, action, body)
                    if status != 200:
                        assert ec2_state(moto_client, instance_id) == before, (caller, action)
                    elif action == "terminate":
                        assert ec2_state(moto_client, instance_id) in GONE
        # Acting on others' instances was logged, with the owner, by the service process.
        assert "caller c-all-all did terminate on instance" in service.output
