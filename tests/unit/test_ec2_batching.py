"""The boto3 adapter batches concurrent describes and terminations (moto in-process).

Each test closes its batches by ``max_ids`` (idle and max_wait a minute away): which requests
share a call is decided by the test, not by timing. Calls are counted where they leave boto3.
"""

from __future__ import annotations

import collections
import threading
import time

import pytest

from launchprov import launching
from launchprov.launching import CALLER_TAG, CLIENT_TOKEN_TAG
from launchprov.metrics import MeteredProvider, Metrics
from launchprov.providers import deadline
from launchprov.providers.ec2 import EC2Provider
from launchprov.providers.interface import (
    InstanceNotFound,
    InstanceQuery,
    InvalidState,
    ProviderError,
)
from launchprov.settings import load
from tests.support import (
    GOOD_AMI,
    REGION,
    batches_of,
    concurrently,
    free_port,
    instance_states,
    launch_request,
    run_instances,
    threads,
)

MISSING = "i-0123456789abcdef0"


def provider(max_ids: int, **settings) -> EC2Provider:
    values = {**batches_of(max_ids), **settings}
    return EC2Provider.from_settings(load(values, environ={}))


def count_calls(adapter: EC2Provider) -> collections.Counter:
    """Operation name -> calls that boto3 sends, from the client's own events."""
    counted: collections.Counter = collections.Counter()
    adapter.client(REGION).meta.events.register(
        "before-call.ec2.*", lambda model, **_: counted.update([model.name])
    )
    return counted


@pytest.mark.parametrize(
    ("count", "settings", "describe_calls"),
    [
        pytest.param(8, {}, 1, id="one-call"),
        pytest.param(4, {"launchprov.batch.idle_ms": "0"}, 4, id="zero-idle-each-alone"),
    ],
)
def test_concurrent_describes_each_get_their_own_instance(
    moto_ec2, count, settings, describe_calls
):
    ids = run_instances(moto_ec2, count)
    adapter = provider(max_ids=count, **settings)
    calls = count_calls(adapter)
    instances = concurrently(lambda item: adapter.describe(item, REGION), ids)
    assert [instance.id for instance in instances] == ids
    assert calls == {"DescribeInstances": describe_calls}


def test_an_id_the_batch_did_not_return_is_asked_alone_once_then_404(moto_ec2):
    ids = run_instances(moto_ec2, 3)
    adapter = provider(max_ids=4)
    calls = count_calls(adapter)
    results = concurrently(lambda item: adapter.describe(item, REGION), [*ids, MISSING])
    assert [result.id for result in results[:3]] == ids
    assert isinstance(results[3], InstanceNotFound) and results[3].instance_id == MISSING
    assert calls == {"DescribeInstances": 2}  # the batch, and the missing id alone


def test_an_error_of_the_batched_call_reaches_every_request(moto_ec2):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    adapter = provider(
        max_ids=3, **{"launchprov.ec2.endpoint_url": endpoint, "launchprov.ec2.max_attempts": "1"}
    )
    results = concurrently(
        lambda item: adapter.describe(item, REGION), ids := [f"i-{n:017x}" for n in range(3)]
    )
    assert len(ids) == 3
    assert all(isinstance(result, ProviderError) for result in results), results
    assert all(result.code == ProviderError.UNREACHABLE for result in results)


def test_concurrent_terminations_are_one_terminate_call(moto_ec2):
    ids = run_instances(moto_ec2, 4)
    adapter = provider(max_ids=4)
    calls = count_calls(adapter)
    results = concurrently(lambda item: adapter.terminate(item, REGION), ids)
    assert [result.id for result in results] == ids
    assert calls["TerminateInstances"] == 1
    # Where it lands: EC2 holds them terminating or terminated.
    assert set(instance_states(moto_ec2, ids).values()) <= {"shutting-down", "terminated"}


def test_a_termination_ec2_refuses_for_one_id_is_retried_alone_for_each(moto_ec2):
    ids = run_instances(moto_ec2, 3)
    # One of them becomes an instance EC2 cannot terminate: its id is refused, the call fails.
    moto_ec2.modify_instance_attribute(InstanceId=ids[0], DisableApiTermination={"Value": True})
    # Two describes follow the two terminations: their batch closes by its age (2 s).
    adapter = provider(max_ids=3, **{"launchprov.batch.max_ms": "2000"})
    calls = count_calls(adapter)
    results = concurrently(lambda item: adapter.terminate(item, REGION), ids)
    assert [result.id for result in results[1:]] == ids[1:]
    assert isinstance(results[0], ProviderError | InvalidState), results[0]
    assert calls["TerminateInstances"] == 1 + 3  # the batch, then each alone
    states = instance_states(moto_ec2, ids)
    assert states[ids[0]] == "running"
    assert {states[ids[1]], states[ids[2]]} <= {"shutting-down", "terminated"}


def test_the_metrics_count_batch_sizes_and_calls_saved(moto_ec2):
    ids = run_instances(moto_ec2, 5)
    metrics = Metrics()
    metered = MeteredProvider(provider(max_ids=5), metrics)
    concurrently(lambda item: metered.describe(item, REGION), ids)
    registry = metrics.registry
    labels = {"provider": "ec2", "operation": "describe"}
    assert registry.get_sample_value("launchprov_provider_batch_size_count", labels) == 1
    assert registry.get_sample_value("launchprov_provider_batch_size_sum", labels) == 5
    assert registry.get_sample_value("launchprov_provider_calls_saved_total", labels) == 4


@pytest.mark.parametrize("key", ["launchprov.batch.max_ms", "launchprov.batch.max_ids"])
def test_batch_settings_are_checked(key):
    from launchprov.settings import ConfigurationError

    with pytest.raises(ConfigurationError, match=key.replace(".", r"\.")):
        load({key: "0"}, environ={})


def tagged(ec2, count: int, **tags) -> list[str]:
    specification = [{"Key": key, "Value": value} for key, value in tags.items()]
    reply = ec2.run_instances(
        ImageId=GOOD_AMI,
        InstanceType="t2.micro",
        MinCount=count,
        MaxCount=count,
        TagSpecifications=[{"ResourceType": "instance", "Tags": specification}],
    )
    return sorted(instance["InstanceId"] for instance in reply["Instances"])


def test_client_token_lookups_of_concurrent_launches_are_one_call(moto_ec2):
    first = tagged(moto_ec2, 2, **{CLIENT_TOKEN_TAG: "t-1", CALLER_TAG: "web"})
    second = tagged(moto_ec2, 1, **{CLIENT_TOKEN_TAG: "t-2", CALLER_TAG: "web"})
    tagged(moto_ec2, 1, **{CLIENT_TOKEN_TAG: "t-3", CALLER_TAG: "other"})  # not web's
    adapter = provider(max_ids=4)
    calls = count_calls(adapter)
    queries = [
        InstanceQuery(
            region=REGION,
            tags={CLIENT_TOKEN_TAG: (token,), CALLER_TAG: ("web",)},
            limit=1000,
            batch_by=CLIENT_TOKEN_TAG,
        )
        for token in ("t-1", "t-2", "t-3", "t-4")
    ]
    pages = concurrently(adapter.list_instances, queries)
    assert [sorted(item.id for item in page.instances) for page in pages] == [first, second, [], []]
    assert all(page.next_token is None for page in pages)
    assert calls == {"DescribeInstances": 1}


def test_concurrent_client_token_launches_send_one_lookup_for_all_their_tokens(moto_ec2):
    """What the test above checks of the adapter, through the launch use case: its lookups."""
    adapter = provider(max_ids=3)
    calls = count_calls(adapter)
    requests = [
        launch_request(ami=GOOD_AMI, instance_type="t2.micro", client_token=f"t-{n}")
        for n in range(3)
    ]
    answers = concurrently(lambda request: launching.launch(adapter, request, "web", "r"), requests)
    assert all(isinstance(ids, list) and len(ids) == 1 for ids in answers), answers
    assert calls == {"DescribeInstances": 1, "RunInstances": 3}


def test_a_listing_without_batch_by_is_never_batched(moto_ec2):
    ids = tagged(moto_ec2, 1, role="web")
    adapter = provider(max_ids=2)
    calls = count_calls(adapter)
    page = adapter.list_instances(InstanceQuery(region=REGION, tags={"role": ("web",)}))
    assert [item.id for item in page.instances] == ids
    assert calls == {"DescribeInstances": 1}


def test_a_request_whose_deadline_passes_in_a_batch_gets_the_timeout_not_a_500(moto_ec2):
    """A describe answered in its request's own thread (inline) that joins a batch whose call
    is still at EC2 when its deadline comes: the provider's time-out (the 408), not a bare
    exception (the 500)."""
    ids = run_instances(moto_ec2, 2)
    adapter = provider(max_ids=2)
    release = threading.Event()

    def held(**_):  # the batch's DescribeInstances stays at EC2 until the test is done
        release.wait(10)

    adapter.client(REGION).meta.events.register("before-call.ec2.DescribeInstances", held)
    batches = adapter._describe_batcher._open
    with threads(1) as pool:
        leader = pool.submit(adapter.describe, ids[0], REGION)
        end = time.monotonic() + 10
        while REGION not in batches:  # the first describe opened the batch
            assert time.monotonic() < end, "the batch never opened"
            time.sleep(0.005)  # polling interval: the check decides
        try:
            with (
                deadline.until(time.monotonic() + 0.2, inline=True),
                pytest.raises(ProviderError) as caught,
            ):
                adapter.describe(ids[1], REGION)  # fills the batch: its call starts
        finally:
            release.set()
        assert leader.result(10).id == ids[0]
    assert caught.value.code == ProviderError.TIMEOUT
    assert caught.value.retryable
    assert "batched describe" in caught.value.message
