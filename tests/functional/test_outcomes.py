"""What a failed or repeated call is known to have done, at the cloud (moto over HTTP, behind a
recording proxy that can hold an answer past the deadline or refuse a call).

* an action whose answer comes after the request deadline may have happened: its 408 says
  ``outcome: unknown``, and sending it again is safe;
* a client-token retry that finds more instances than the launch asked for (an endpoint that
  ignores ClientToken launched again on an SDK retry) answers the first ``max_count`` and tags
  the others ``launchprov:duplicate-of``, which the ``duplicate`` filter lists;
* every RunInstances carries a ClientToken, a new one for every request without a token.
"""

from __future__ import annotations

import json
import logging

import pytest

from launchprov.launching import CLIENT_TOKEN_TAG, DUPLICATE_OF_TAG
from tests.standins import Faults, RecordingProxy
from tests.support import GOOD_AMI, assert_error_body, libcloud_ec2_settings, make_app

JSON = "application/json"
ADAPTERS = ["ec2", "libcloud-ec2"]


def settings_of(adapter: str, endpoint: str, **extra: str) -> dict[str, str]:
    """The app's settings for ``adapter`` on the EC2 at ``endpoint``: one attempt a call."""
    if adapter == "ec2":
        return {
            "launchprov.provider": "ec2",
            "launchprov.ec2.endpoint_url": endpoint,
            "launchprov.ec2.max_attempts": "1",
            **extra,
        }
    return libcloud_ec2_settings(endpoint, **extra)


def put(app, body, status="*", **kw):
    return app.put("/v1/launch", json.dumps(body), content_type=JSON, status=status, **kw)


def tags_at(client, instance_id: str) -> dict[str, str]:
    reply = client.describe_instances(InstanceIds=[instance_id])
    raw = reply["Reservations"][0]["Instances"][0]
    return {tag["Key"]: tag["Value"] for tag in raw.get("Tags", [])}


def state_at(client, instance_id: str) -> str:
    reply = client.describe_instances(InstanceIds=[instance_id])
    return reply["Reservations"][0]["Instances"][0]["State"]["Name"]


# -- an action answered after the deadline ----------------------------------------------------

#: (EC2 call, HTTP method, path after the instance's, the state it leaves the instance in)
ACTIONS = {
    "terminate": ("TerminateInstances", "DELETE", "", {"shutting-down", "terminated"}),
    "stop": ("StopInstances", "POST", "/stop", {"stopping", "stopped"}),
}


@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_an_action_answered_after_the_deadline_is_unknown_and_safe_to_send_again(
    adapter, action, moto_server_ec2, moto_server_endpoint
):
    call, method, path, done = ACTIONS[action]
    held = []

    def first_call(recorded) -> bool:
        if recorded.action == call:
            held.append(recorded)
        return recorded.action == call and len(held) == 1

    faults = Faults(hold_reply=first_call)
    proxy = RecordingProxy(moto_server_endpoint, faults)
    # The launch is not what is timed: it has the default deadline, the action two seconds.
    [instance_id] = put(
        make_app(**settings_of(adapter, moto_server_endpoint)),
        {"ami": GOOD_AMI, "instance_type": "t2.micro"},
        200,
    ).json
    app = make_app(**settings_of(adapter, proxy.url, **{"launchprov.request_deadline": "2"}))
    try:
        first = app.request(f"/v1/instances/{instance_id}{path}", method=method, status="*")
        again = app.request(f"/v1/instances/{instance_id}{path}", method=method, status="*")
    finally:
        proxy.close()

    error = assert_error_body(first, 408)
    assert error["provider"]["code"] == "Timeout"
    assert error["provider"]["outcome"] == "unknown"  # and it did happen:
    assert state_at(moto_server_ec2, instance_id) in done | {"terminated", "stopped"}
    assert error["provider"]["retryable"] is True
    assert f"the {action} may have been carried out" in error["message"]
    # Sent again: answered with the instance as the first call left it, not an error.
    assert again.status_int == 200, again.text
    assert again.json["id"] == instance_id and again.json["state"] in done
    assert faults.held == held[:1]


def test_a_describe_answered_after_the_deadline_changed_nothing(
    moto_server_ec2, moto_server_endpoint
):
    """A call that only reads stays ``none``: nothing it sent can have changed the cloud."""
    faults = Faults(hold_reply=lambda recorded: recorded.action == "DescribeInstances")
    proxy = RecordingProxy(moto_server_endpoint, faults)
    app = make_app(**settings_of("ec2", proxy.url, **{"launchprov.request_deadline": "1"}))
    try:
        response = app.get("/v1/instances/i-0123456789abcdef0", status="*")
    finally:
        proxy.close()
    assert assert_error_body(response, 408)["provider"]["outcome"] == "none"


# -- a client-token lookup that finds more than max_count --------------------------------------


def duplicate_launch(client, first_id: str, count: int) -> list[str]:
    """``count`` more instances launched as the first was, with its tags and ClientToken: what
    an endpoint that ignores ClientToken does when the SDK sends a RunInstances again."""
    tags = tags_at(client, first_id)
    reply = client.run_instances(
        ImageId=GOOD_AMI,
        InstanceType="t2.micro",
        MinCount=count,
        MaxCount=count,
        ClientToken="ignored-by-moto",
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
    )
    return [instance["InstanceId"] for instance in reply["Instances"]]


def launch_order(client, ids: list[str]) -> list[str]:
    """``ids`` by launch time, then id, as EC2 (moto) reports them."""
    reply = client.describe_instances(InstanceIds=ids)
    raw = [i for r in reply["Reservations"] for i in r["Instances"]]
    ordered = sorted(raw, key=lambda i: (i["LaunchTime"], len(i["InstanceId"]), i["InstanceId"]))
    return [i["InstanceId"] for i in ordered]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_retry_that_finds_duplicates_answers_max_count_and_tags_the_others(
    adapter, moto_server_ec2, moto_server_endpoint, caplog
):
    app = make_app(**settings_of(adapter, moto_server_endpoint))
    body = {"ami": GOOD_AMI, "instance_type": "t2.micro", "client_token": f"dup-{adapter}"}
    [first_id] = put(app, body, 200).json
    everything = [first_id, *duplicate_launch(moto_server_ec2, first_id, 2)]
    kept, *duplicates = launch_order(moto_server_ec2, everything)

    with caplog.at_level(logging.WARNING, logger="launchprov.launching"):
        retry = put(app, body, "*")

    assert retry.status_int == 200, retry.text
    assert retry.json == [kept]
    # At the provider: the others carry the first kept id; the kept one does not.
    assert {i: tags_at(moto_server_ec2, i).get(DUPLICATE_OF_TAG) for i in everything} == {
        kept: None,
        **dict.fromkeys(duplicates, kept),
    }
    # One WARNING line names them.
    lines = [r.getMessage() for r in caplog.records if "duplicate instance(s)" in r.getMessage()]
    assert len(lines) == 1 and all(i in lines[0] for i in duplicates) and kept in lines[0]
    # The listing finds them, and only them, with duplicate=true; the others with false.
    token_filter = f"tag:{CLIENT_TOKEN_TAG}={body['client_token']}"
    found = app.get(f"/v1/instances?duplicate=true&{token_filter}", status=200).json
    assert sorted(i["id"] for i in found["instances"]) == sorted(duplicates)
    others = app.get(f"/v1/instances?duplicate=false&{token_filter}", status=200).json
    assert [i["id"] for i in others["instances"]] == [kept]
    # Asked again, the same answer (the duplicates are tagged once).
    assert put(app, body, 200).json == [kept]


def test_duplicates_that_cannot_be_tagged_do_not_fail_the_answer(
    moto_server_ec2, moto_server_endpoint, caplog
):
    faults = Faults(
        refuse=lambda recorded: (503, "Unavailable") if recorded.action == "CreateTags" else None
    )
    proxy = RecordingProxy(moto_server_endpoint, faults)
    app = make_app(**settings_of("ec2", proxy.url))
    body = {"ami": GOOD_AMI, "instance_type": "t2.micro", "client_token": "dup-untaggable"}
    try:
        [first_id] = put(app, body, 200).json
        everything = [first_id, *duplicate_launch(moto_server_ec2, first_id, 2)]
        kept, *duplicates = launch_order(moto_server_ec2, everything)
        with caplog.at_level(logging.WARNING, logger="launchprov.launching"):
            retry = put(app, body, "*")
    finally:
        proxy.close()

    assert retry.status_int == 200, retry.text
    assert retry.json == [kept]
    assert len(proxy.actions("CreateTags")) == 2  # one per duplicate, each refused
    assert all(DUPLICATE_OF_TAG not in tags_at(moto_server_ec2, i) for i in duplicates)
    refused = [r.getMessage() for r in caplog.records if "could not tag" in r.getMessage()]
    assert sorted(line.split()[4] for line in refused) == sorted(duplicates)


# -- every RunInstances carries a ClientToken --------------------------------------------------


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_every_run_instances_carries_a_client_token_of_its_own(
    adapter, moto_server_ec2, moto_server_endpoint
):
    """The SDK's own retries of a send are safe only with a ClientToken; a caller's retry
    without a client_token launches anew, even with the same X-Request-ID."""
    proxy = RecordingProxy(moto_server_endpoint)
    app = make_app(**settings_of(adapter, proxy.url))
    body = {"ami": GOOD_AMI, "instance_type": "t2.micro"}
    headers = {"X-Request-ID": f"same-request-{adapter}"}
    try:
        first = put(app, body, 200, headers=headers).json
        again = put(app, body, 200, headers=headers).json
    finally:
        proxy.close()

    tokens = [(run.params.get("ClientToken") or [None])[0] for run in proxy.actions("RunInstances")]
    assert len(tokens) == 2 and None not in tokens
    assert tokens[0] != tokens[1]
    assert all(1 <= len(token) <= 64 for token in tokens)  # EC2's rule
    assert set(first).isdisjoint(again)  # two launches
