"""Every recorded cloud's real error replies, through launchprov's public API.

Each cloud runs on Apache Libcloud's recorded replies (``tests/recorded.py``), with the error
replies its API documents served in place of a recording (``CAPACITY_FAULTS``,
``THROTTLING_FAULTS``, ...). What reached the wire is checked where it lands: after a capacity
error, the second create request asks for the fallback alternative's size; after a throttled
one, the caller's 408 carries the cloud's own Retry-After.
"""

from __future__ import annotations

import copy
import json
import logging

import pytest

from launchprov.providers.libcloud import instances
from tests.recorded import (
    AUTHENTICATION_FAULTS,
    CAPACITY_FAULTS,
    OTHER_SIZES,
    RECORDED,
    THROTTLING_FAULTS,
    libcloud_test_module,
    wire,
)
from tests.support import assert_error_body, make_app


def _cloud(name: str, monkeypatch):
    """(app, wire) of a recorded cloud."""
    recorded = RECORDED[name]
    recorded.patch(monkeypatch)
    seen = wire(monkeypatch, name)
    app = make_app(**recorded.app_settings())
    return app, seen


# -- capacity: the fallback ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CAPACITY_FAULTS))
def test_a_capacity_error_launches_the_fallback_alternative(name, monkeypatch):
    app, seen = _cloud(name, monkeypatch)
    launch = RECORDED[name].launch
    seen.fail_create(CAPACITY_FAULTS[name])

    other = OTHER_SIZES[name]
    response = app.put_json("/v1/launch", {**launch, "fallback": [{"instance_type": other}]})

    assert response.status_int == 200, response.text
    assert len(response.json) == 1
    # On the wire: the request's size, refused for capacity, then the alternative's.
    assert seen.created_sizes() == [launch["instance_type"], other]


@pytest.mark.parametrize("name", sorted(CAPACITY_FAULTS))
def test_a_capacity_error_is_remembered_and_passed_over(name, monkeypatch):
    """The offering memory: the refused offering is not asked again by the next launch with
    a fallback, which goes straight to the alternative."""
    app, seen = _cloud(name, monkeypatch)
    launch = RECORDED[name].launch
    seen.fail_create(CAPACITY_FAULTS[name])
    app.put_json("/v1/launch", launch, status=408)

    other = OTHER_SIZES[name]
    response = app.put_json("/v1/launch", {**launch, "fallback": [{"instance_type": other}]})

    assert response.status_int == 200, response.text
    assert seen.created_sizes() == [launch["instance_type"], other]


@pytest.mark.parametrize("name", sorted(CAPACITY_FAULTS))
def test_a_capacity_error_without_fallback_is_ec2s_code(name, monkeypatch):
    app, seen = _cloud(name, monkeypatch)
    seen.fail_create(CAPACITY_FAULTS[name])

    response = app.put_json("/v1/launch", RECORDED[name].launch, expect_errors=True)

    provider = assert_error_body(response, 408)["provider"]
    assert provider["code"] == "InsufficientInstanceCapacity"
    assert provider["retryable"] is True
    assert provider["outcome"] == "none"
    assert len(seen.created_sizes()) == 1


def test_capacity_fallbacks_are_counted(monkeypatch):
    app, seen = _cloud("digitalocean", monkeypatch)
    seen.fail_create(CAPACITY_FAULTS["digitalocean"])
    launch = {**RECORDED["digitalocean"].launch, "fallback": [{"instance_type": "1gb"}]}
    app.put_json("/v1/launch", launch, status=200)

    metrics = app.get("/metrics").text
    assert 'launchprov_capacity_fallbacks_total{outcome="fallback",provider="libcloud"} 1.0' in (
        metrics
    )


# -- throttling: the cloud's Retry-After --------------------------------------------------------


@pytest.mark.parametrize("name", sorted(THROTTLING_FAULTS))
def test_throttling_is_retryable_with_the_clouds_retry_after(name, monkeypatch):
    app, seen = _cloud(name, monkeypatch)
    fault = THROTTLING_FAULTS[name]
    seen.fail_create(fault)

    response = app.put_json("/v1/launch", RECORDED[name].launch, expect_errors=True)

    provider = assert_error_body(response, 408)["provider"]
    assert provider["code"] == "RequestLimitExceeded"
    assert provider["retryable"] is True
    assert provider["outcome"] == "none"  # refused: nothing was launched
    # The cloud's Retry-After where it sent one (never launchprov's shorter 2), else 2.
    assert response.headers["Retry-After"] == fault.headers.get("Retry-After", "2")


#: A cloud's list_nodes request, which readiness makes.
LIST_NODES = {
    "digitalocean": lambda method, url: method == "GET" and url.startswith("/v2/droplets?"),
    "linode": lambda method, url: method == "GET" and url.startswith("/v4/linode/instances?"),
    "vultr": lambda method, url: method == "GET" and url.startswith("/v2/instances?"),
}


@pytest.mark.parametrize("name", sorted(LIST_NODES))
def test_a_throttled_readiness_check_carries_the_clouds_retry_after(name, monkeypatch):
    app, seen = _cloud(name, monkeypatch)
    seen.replace(LIST_NODES[name], THROTTLING_FAULTS[name].answer)

    response = app.get("/readyz", expect_errors=True)

    assert_error_body(response, 503)
    assert "RequestLimitExceeded" in response.json["message"]
    assert response.headers["Retry-After"] == "7"
    assert any(LIST_NODES[name](method, url) for method, url, _ in seen.sent)


# -- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(AUTHENTICATION_FAULTS))
def test_refused_credentials_are_not_retryable_and_launched_nothing(name, monkeypatch):
    app, seen = _cloud(name, monkeypatch)
    seen.fail_create(AUTHENTICATION_FAULTS[name])

    response = app.put_json("/v1/launch", RECORDED[name].launch, expect_errors=True)

    provider = assert_error_body(response, 408)["provider"]
    assert provider["code"] == "AuthFailure"
    assert provider["retryable"] is False
    assert provider["outcome"] == "none"
    assert "Retry-After" not in response.headers


# -- nodes in a status the driver's table does not name -----------------------------------------


def _listing(driver: str, fixture: str, edit):
    """A reply of libcloud's recorded ``fixture`` of ``driver``, its JSON edited by ``edit``."""
    fixtures = libcloud_test_module("test_linode_v4").ComputeFileFixtures(driver)
    recorded = json.loads(fixtures.load(fixture))

    def reply():
        body = copy.deepcopy(recorded)
        edit(body)
        return (200, json.dumps(body), {"content-type": "application/json"}, "OK")

    return reply


def _linode_status(status: str):
    def edit(body):
        body["data"][0]["status"] = status

    return edit


def _cloudstack_state(state: str):
    def edit(body):
        body["listvirtualmachinesresponse"]["virtualmachine"][0]["state"] = state

    return edit


ODD_NODES = {
    # Linode API v4's Linode statuses include billing_suspension; libcloud's table lacks it.
    "linode billing_suspension": (
        "linode",
        lambda method, url: method == "GET" and url.startswith("/v4/linode/instances?"),
        _listing("linode_v4", "list_nodes.json", _linode_status("billing_suspension")),
        "22344420",
    ),
    # CloudStack's VirtualMachine.State has Unknown and Shutdowned; libcloud's table lacks both.
    "cloudstack Unknown": (
        "cloudstack",
        lambda method, url: "command=listVirtualMachines" in url,
        _listing("cloudstack", "listVirtualMachines_default.json", _cloudstack_state("Unknown")),
        "2600",
    ),
    "cloudstack Shutdowned": (
        "cloudstack",
        lambda method, url: "command=listVirtualMachines" in url,
        _listing("cloudstack", "listVirtualMachines_default.json", _cloudstack_state("Shutdowned")),
        "2600",
    ),
}


#: What only reads, on each of these clouds: Linode's GETs, CloudStack's list commands.
READS = {
    "linode": lambda method, url: method == "GET",
    "cloudstack": lambda method, url: "command=list" in url,
}


@pytest.fixture(params=sorted(ODD_NODES))
def odd_node(request, monkeypatch, caplog):
    name, listing, reply, node_id = ODD_NODES[request.param]
    app, seen = _cloud(name, monkeypatch)
    seen.replace(listing, reply)
    # Each unnamed status is logged once per process: a fresh process, as far as that goes.
    monkeypatch.setattr(instances, "_UNNAMED", set())
    caplog.set_level(logging.WARNING, instances.__name__)
    return app, seen, node_id, request.param.split()[1], READS[name]


def test_a_node_in_an_unnamed_status_is_listed_and_described_as_unknown(odd_node, caplog):
    app, _, node_id, raw, _ = odd_node

    listed = app.get("/v1/instances").json["instances"]
    described = app.get(f"/v1/instances/{node_id}").json

    assert {instance["id"]: instance["state"] for instance in listed}[node_id] == "unknown"
    assert described["state"] == "unknown"
    # Logged once, with the raw status, however often it is read.
    logged = [record for record in caplog.records if repr(raw) in record.getMessage()]
    assert len(logged) == 1, [record.getMessage() for record in caplog.records]


@pytest.mark.parametrize("action", ["stop", "start", "reboot"])
def test_no_action_but_terminate_from_unknown(odd_node, action):
    app, seen, node_id, _, reads = odd_node
    before = len(seen.sent)

    response = app.post(f"/v1/instances/{node_id}/{action}", expect_errors=True)

    assert_error_body(response, 409)
    assert "unknown" in response.json["message"]
    # Nothing but reads reached the cloud.
    assert seen.sent[before:]
    assert all(reads(method, url) for method, url, _ in seen.sent[before:]), seen.sent[before:]


def test_an_unknown_node_can_be_terminated(odd_node):
    app, seen, node_id, _, _ = odd_node

    response = app.delete(f"/v1/instances/{node_id}")

    assert response.status_int == 200, response.text
    assert any(
        (method == "DELETE" and node_id in url) or "command=destroyVirtualMachine" in url
        for method, url, _ in seen.sent
    )


def test_an_error_reply_without_a_message_is_the_408_naming_its_status(monkeypatch):
    """DigitalOcean's driver hands a reply without ``message`` on as the body itself (a dict),
    which libcloud's error cannot print: still the 408, never a 500."""
    from tests.recorded import CloudFault

    app, seen = _cloud("digitalocean", monkeypatch)
    seen.fail_create(CloudFault(500, {"id": "server_error"}))

    body = assert_error_body(
        app.put_json("/v1/launch", RECORDED["digitalocean"].launch, status="*"), 408
    )

    assert body["provider"]["code"] == "server_error"
    assert body["provider"]["retryable"] is True
    assert seen.created_sizes() == [RECORDED["digitalocean"].launch["instance_type"]]
