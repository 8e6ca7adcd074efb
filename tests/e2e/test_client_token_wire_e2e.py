"""End to end, at the wire: every attempt of a client-token launch is the same request to EC2.

launchprov (a waitress process) reaches moto (a process) through a recording proxy (a thread
of this test, on 127.0.0.1). The proxy plays the two things that make a retry dangerous:

* the first RunInstances reaches moto and launches, and then its connection is dropped: the
  caller gets a 408 whose outcome is unknown;
* the tag lookup of the retry finds nothing yet (DescribeInstances is eventually consistent).

so the retry's only protection is EC2's own ClientToken rule, which the proxy keeps as EC2 does
(moto does not): the same ClientToken with the same parameters is answered with the first
launch, other parameters are refused. The retry must therefore send byte for byte the same
RunInstances, and get the first launch's instances.
"""

from __future__ import annotations

import time

import pytest

from launchprov import launching
from tests.e2e.conftest import ADAPTERS, CREDENTIALS_ENV, running
from tests.standins import Faults, Recorded, RecordingProxy
from tests.support import GOOD_AMI

pytestmark = pytest.mark.e2e

#: Headers that sign a request, or count its attempts: the only ones that may differ.
SIGNING_HEADERS = frozenset(
    {"authorization", "x-amz-date", "amz-sdk-invocation-id", "amz-sdk-request"}
)
ONE_ATTEMPT = {
    "ec2": {"launchprov.ec2.max_attempts": "1"},
    "libcloud": {},
}


def is_token_lookup(recorded: Recorded) -> bool:
    return any(
        name.startswith("Filter.") and values == [f"tag:{launching.CLIENT_TOKEN_TAG}"]
        for name, values in recorded.params.items()
    )


def launched_with(moto_client, token: str) -> set[str]:
    reply = moto_client.describe_instances(
        Filters=[{"Name": f"tag:{launching.CLIENT_TOKEN_TAG}", "Values": [token]}]
    )
    return {i["InstanceId"] for r in reply["Reservations"] for i in r["Instances"]}


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_a_retry_sends_the_same_run_instances_and_gets_the_first_launch(
    adapter, moto_process, moto_client
):
    runs = []

    def first_run_instances(recorded: Recorded) -> bool:
        if recorded.action != "RunInstances":  # the startup checks' calls, say
            return False
        runs.append(recorded)
        return len(runs) == 1

    faults = Faults(drop_reply=first_run_instances, hide=is_token_lookup)
    proxy = RecordingProxy(moto_process, faults)
    token = f"wire-{adapter}"
    body = {
        "ami": GOOD_AMI,
        "instance_type": "t2.micro",
        "min_count": 2,
        "max_count": 2,
        "tags": {"role": "web", "team": "infra"},
        "client_token": token,
    }
    try:
        settings = ADAPTERS[adapter](proxy.url, **ONE_ATTEMPT[adapter])
        with running(settings, CREDENTIALS_ENV) as service:
            first = service.request("PUT", "/v1/launch", body)
            again = service.request("PUT", "/v1/launch", body)
    finally:
        proxy.close()

    status, _, error = first
    assert status == 408, error
    assert error["provider"]["outcome"] == "unknown"
    assert error["provider"]["retryable"] is True  # a client token makes the retry safe
    status, _, ids = again
    assert status == 200, ids

    # At the wire: two RunInstances, the same apart from their signatures.
    first_run, second_run = proxy.actions("RunInstances")
    assert faults.dropped == [first_run]
    assert first_run.method == second_run.method
    assert first_run.path == second_run.path
    assert first_run.body == second_run.body
    unsigned = {
        name.lower(): value
        for name, value in first_run.headers.items()
        if name.lower() not in SIGNING_HEADERS
    }
    assert unsigned == {
        name.lower(): value
        for name, value in second_run.headers.items()
        if name.lower() not in SIGNING_HEADERS
    }
    # The two HTTP requests had their own ids; the launch carries one id, and a ClientToken
    # that is not the caller's token as such.
    params = proxy.meaning(first_run)
    tags = {
        params[name][0]: params[name.replace(".Key", ".Value")][0]
        for name in params
        if name.startswith("TagSpecification.1.Tag.") and name.endswith(".Key")
    }
    request_id = tags[launching.REQUEST_ID_TAG]
    assert request_id == launching.launch_id("anonymous", token)
    assert params["ClientToken"] == [launching.idempotency_key("anonymous", token)]
    assert error["request_id"] not in params["ClientToken"][0] + request_id

    # Where it lands: one launch at the cloud, and the retry answered its instances.
    assert set(ids) == launched_with(moto_client, token)
    assert len(ids) == 2


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_a_leased_retry_that_ec2_refuses_looks_again_and_gets_the_first_launch(
    adapter, moto_process, moto_client
):
    """A lease's end is the one thing a retry sends otherwise (exact, never rounded up past
    max_expires_in): EC2 refuses that RunInstances, and the retry looks again."""
    lookups = []

    def first_lookup_of_the_retry(recorded: Recorded) -> bool:
        if is_token_lookup(recorded):
            lookups.append(recorded)
            return len(lookups) == 2  # the first attempt's look, then the retry's first
        return False

    runs = []

    def first_run_instances(recorded: Recorded) -> bool:
        if recorded.action == "RunInstances":
            runs.append(recorded)
        return len(runs) == 1 and runs[0] is recorded

    faults = Faults(drop_reply=first_run_instances, hide=first_lookup_of_the_retry)
    proxy = RecordingProxy(moto_process, faults)
    token = f"leased-{adapter}"
    body = {"ami": GOOD_AMI, "instance_type": "t2.micro", "expires_in": 60, "client_token": token}
    settings = ADAPTERS[adapter](proxy.url, **ONE_ATTEMPT[adapter])
    settings["launchprov.policy.max_expires_in"] = "60"
    try:
        with running(settings, CREDENTIALS_ENV) as service:
            first = service.request("PUT", "/v1/launch", body)
            # The lease's end is to the second: the retry must come in a later second for its
            # RunInstances to differ (the condition under test is time passing: polled).
            started = int(time.time())
            while int(time.time()) == started:
                time.sleep(0.01)
            again = service.request("PUT", "/v1/launch", body)
    finally:
        proxy.close()

    assert first[0] == 408, first[2]
    status, _, ids = again
    assert status == 200, ids
    # At the wire: the retry's RunInstances was refused (another lease end), and a second
    # lookup found the first launch.
    assert len(proxy.actions("RunInstances")) == 2
    assert len(lookups) == 3
    assert set(ids) == launched_with(moto_client, token) and len(ids) == 1
    reply = moto_client.describe_instances(InstanceIds=ids)
    tags = {t["Key"]: t["Value"] for t in reply["Reservations"][0]["Instances"][0]["Tags"]}
    first_params = proxy.meaning(proxy.actions("RunInstances")[0])
    sent = {
        first_params[name][0]: first_params[name.replace(".Key", ".Value")][0]
        for name in first_params
        if name.startswith("TagSpecification.1.Tag.") and name.endswith(".Key")
    }
    assert tags[launching.EXPIRES_AT_TAG] == sent[launching.EXPIRES_AT_TAG]  # the first's lease
