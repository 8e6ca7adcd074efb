"""The libcloud adapter batches where its driver can: the EC2 profile (against a moto server).

Batches close by ``max_ids`` (idle a minute away): the test decides which requests share a
call. Calls are counted on the drivers' connection, whichever thread's driver sends them.
"""

from __future__ import annotations

import collections

import pytest

from launchprov.providers.interface import InstanceNotFound
from launchprov.providers.libcloud.provider import LibcloudProvider
from launchprov.settings import load
from tests.support import (
    REGION,
    batches_of,
    concurrently,
    instance_states,
    libcloud_ec2_settings,
    run_instances,
)

MISSING = "i-0123456789abcdef0"


def provider(endpoint: str, max_ids: int, **settings) -> LibcloudProvider:
    values = libcloud_ec2_settings(endpoint, **batches_of(max_ids), **settings)
    return LibcloudProvider.from_settings(load(values, environ={}))


@pytest.fixture
def counted(monkeypatch, moto_server_ec2) -> collections.Counter:
    """EC2 actions sent by every libcloud EC2 driver, by name."""
    adapter = provider(moto_server_ec2.meta.endpoint_url, 1)
    connection_class = type(adapter.driver(REGION).connection)
    send = connection_class.request
    actions: collections.Counter = collections.Counter()

    def counting(self, action, params=None, *args, **kwargs):
        actions.update([(params or {}).get("Action", "?")])
        return send(self, action, params, *args, **kwargs)

    monkeypatch.setattr(connection_class, "request", counting)
    return actions


def test_ec2_describes_share_one_call_and_a_missing_id_is_a_404(moto_server_ec2, counted):
    ids = run_instances(moto_server_ec2, 3)
    adapter = provider(moto_server_ec2.meta.endpoint_url, max_ids=4)
    counted.clear()
    results = concurrently(lambda item: adapter.describe(item, REGION), [*ids, MISSING])
    assert [result.id for result in results[:3]] == ids
    assert isinstance(results[3], InstanceNotFound)
    assert counted == {"DescribeInstances": 2}  # the batch, and the missing id alone


def test_ec2_terminations_share_one_call(moto_server_ec2, counted):
    ids = run_instances(moto_server_ec2, 4)
    adapter = provider(moto_server_ec2.meta.endpoint_url, max_ids=4)
    counted.clear()
    results = concurrently(lambda item: adapter.terminate(item, REGION), ids)
    assert [result.id for result in results] == ids
    assert counted["TerminateInstances"] == 1
    states = instance_states(moto_server_ec2, ids)
    assert set(states.values()) <= {"shutting-down", "terminated"}


def test_a_driver_without_a_call_for_many_nodes_is_asked_one_by_one():
    values = {
        "launchprov.provider": "libcloud",
        "launchprov.libcloud.driver": "dummy",
        "launchprov.batch.idle_ms": "10",
    }
    adapter = LibcloudProvider.from_settings(load(values, environ={}))
    assert not any(batcher.enabled for batcher in adapter.batchers)
    with pytest.raises(InstanceNotFound):
        adapter.describe("987654", REGION)
