"""End to end: concurrent describes and terminations through waitress are batched at EC2."""

from __future__ import annotations

import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.conftest import CREDENTIALS_ENV, ec2_settings, running
from tests.support import GOOD_AMI, instance_states

pytestmark = pytest.mark.e2e

#: Batches close at 4 ids (4 provider slots of 6 threads): which requests share a call is decided by
#: the count, not by timing; the age limit only ends a batch nobody else can join.
BATCHING = {
    "launchprov.batch.idle_ms": "2000",
    "launchprov.batch.max_ms": "2000",
    "launchprov.batch.max_ids": "4",
    # Every thread may call the provider, and a request waits for a slot as long as a batch.
    "launchprov.provider_concurrency": "4",
    "launchprov.provider_queue_timeout": "30",
}


def metric(service, name: str, **labels) -> float:
    with urllib.request.urlopen(service.url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") and all(label in line for label in wanted)
    )


def test_concurrent_describes_and_terminations_share_calls(moto_process, moto_client):
    reply = moto_client.run_instances(
        ImageId=GOOD_AMI, InstanceType="t2.micro", MinCount=16, MaxCount=16
    )
    ids = [instance["InstanceId"] for instance in reply["Instances"]]
    with running(ec2_settings(moto_process, **BATCHING), CREDENTIALS_ENV, threads=6) as service:
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda i: service.request("GET", f"/v1/instances/{i}"), ids))
        assert [status for status, _, _ in answers] == [200] * 16
        assert [body["id"] for _, _, body in answers] == ids
        labels = {"provider": "ec2", "operation": "describe"}
        assert metric(service, "launchprov_provider_batch_size_sum", **labels) == 16
        assert metric(service, "launchprov_provider_calls_saved_total", **labels) >= 8

        doomed = ids[:8]
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(lambda i: service.request("DELETE", f"/v1/instances/{i}"), doomed)
            )
        assert [status for status, _, _ in answers] == [200] * 8, answers
        terminate = {"provider": "ec2", "operation": "terminate"}
        assert metric(service, "launchprov_provider_batch_size_sum", **terminate) == 8
        assert metric(service, "launchprov_provider_calls_saved_total", **terminate) >= 4
    # Where it lands: EC2 terminated those eight and no other.
    states = instance_states(moto_client, ids)
    assert all(states[i] in ("shutting-down", "terminated") for i in doomed)
    assert all(states[i] == "running" for i in ids[8:])
