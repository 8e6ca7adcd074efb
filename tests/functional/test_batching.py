"""Batched provider calls through the app: a failure of the one call that answers a batch is
each request's 408, with the provider's code, on both EC2 adapters and for every batched
operation; never a 500.

The app reaches the (threaded) moto server through a recording proxy that fails only the
batched call: with EC2's error reply, or by dropping the connection once the call is in.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from launchprov.launching import CLIENT_TOKEN_TAG
from launchprov.providers.interface import ProviderError
from tests.standins import Faults, Recorded, RecordingProxy
from tests.support import (
    GOOD_AMI,
    assert_error_body,
    libcloud_ec2_settings,
    make_app,
    run_instances,
)

#: Every adapter with an EC2 behind it, made on an endpoint: one attempt a call.
ADAPTERS = {
    "ec2": lambda url: {
        "launchprov.provider": "ec2",
        "launchprov.ec2.endpoint_url": url,
        "launchprov.ec2.max_attempts": "1",
    },
    "libcloud-ec2": lambda url: libcloud_ec2_settings(url),
}


def filters(recorded: Recorded) -> set[str]:
    """The names of the DescribeInstances filters of a call."""
    return {
        values[0]
        for name, values in recorded.params.items()
        if name.startswith("Filter.") and name.endswith(".Name")
    }


def describes_by_id(recorded: Recorded) -> bool:
    """The batched describe: one DescribeInstances by an instance-id filter for many ids."""
    return recorded.action == "DescribeInstances" and "instance-id" in filters(recorded)


def terminates(recorded: Recorded) -> bool:
    return recorded.action == "TerminateInstances"


def looks_up_tokens(recorded: Recorded) -> bool:
    """The batched client-token lookup of concurrent launches."""
    return recorded.action == "DescribeInstances" and f"tag:{CLIENT_TOKEN_TAG}" in filters(recorded)


class Failing:
    """Faults that fail the calls ``batched`` picks: ``how`` is ``error-reply`` (EC2 refuses,
    403 UnauthorizedOperation) or ``dropped`` (the connection closes with no answer)."""

    def __init__(self, how: str, batched: Callable[[Recorded], bool]):
        self.failed: list[Recorded] = []

        def refuse(recorded):
            if how == "error-reply" and batched(recorded):
                self.failed.append(recorded)
                return 403, "UnauthorizedOperation"
            return None

        def drop(recorded):
            if how == "dropped" and batched(recorded):
                self.failed.append(recorded)
                return True
            return False

        self.faults = Faults(drop_reply=drop, refuse=refuse)
        self.code = "UnauthorizedOperation" if how == "error-reply" else None


@pytest.fixture(params=list(ADAPTERS))
def adapter(request):
    return request.param


@pytest.fixture(params=["error-reply", "dropped"])
def how(request):
    return request.param


def proxied_app(moto_server_endpoint, adapter: str, failing: Failing):
    proxy = RecordingProxy(moto_server_endpoint, failing.faults)
    return proxy, make_app(**ADAPTERS[adapter](proxy.url))


def assert_provider_failure(response, failing: Failing) -> dict:
    """The 408 of the batch's failure: EC2's code, or the transport's."""
    provider = assert_error_body(response, 408)["provider"]
    if failing.code is not None:
        assert provider["code"] == failing.code, provider
    else:
        # The connection closed after the call went out: the endpoint is gone, as SDKs say.
        assert provider["code"] == ProviderError.UNREACHABLE, provider
    return provider


def test_a_failed_batched_describe_is_a_408(moto_server_ec2, moto_server_endpoint, adapter, how):
    (instance_id,) = run_instances(moto_server_ec2, 1)
    failing = Failing(how, describes_by_id)
    proxy, app = proxied_app(moto_server_endpoint, adapter, failing)
    try:
        response = app.get(f"/v1/instances/{instance_id}", status="*")
    finally:
        proxy.close()
    assert_provider_failure(response, failing)
    # On the wire: the describe that failed was the batch's, asking for this id.
    assert failing.failed, "no batched describe was sent"
    assert [instance_id] in [
        values for name, values in failing.failed[0].params.items() if name.endswith(".Value.1")
    ]


def test_a_failed_batched_termination_is_a_408(moto_server_ec2, moto_server_endpoint, adapter, how):
    (instance_id,) = run_instances(moto_server_ec2, 1)
    failing = Failing(how, terminates)
    proxy, app = proxied_app(moto_server_endpoint, adapter, failing)
    try:
        response = app.delete(f"/v1/instances/{instance_id}", status="*")
    finally:
        proxy.close()
    assert_provider_failure(response, failing)
    (failed,) = failing.failed
    assert failed.params["InstanceId.1"] == [instance_id]
    if how == "error-reply":  # refused: the instance runs on
        reply = moto_server_ec2.describe_instances(InstanceIds=[instance_id])
        assert reply["Reservations"][0]["Instances"][0]["State"]["Name"] == "running"


def test_a_failed_batched_client_token_lookup_is_a_408_and_launches_nothing(
    moto_server_ec2, moto_server_endpoint, how
):
    # Only the boto3 adapter batches the lookups of concurrent client-token launches.
    failing = Failing(how, looks_up_tokens)
    proxy, app = proxied_app(moto_server_endpoint, "ec2", failing)
    body = {"ami": GOOD_AMI, "instance_type": "t2.micro", "client_token": "batch-lookup"}
    try:
        response = app.put(
            "/v1/launch", json.dumps(body), content_type="application/json", status="*"
        )
    finally:
        proxy.close()
    assert_provider_failure(response, failing)
    assert failing.failed, "no batched lookup was sent"
    assert proxy.actions("RunInstances") == []
