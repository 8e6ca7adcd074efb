"""Zones on the recorded wire: GCE manages instances in every zone of the project, wherever a
launch placed them; OpenStack's pre-flight knows which availability zones exist; a GCE reply
that is not a GCE document is a MalformedResponse."""

from __future__ import annotations

import pytest

from tests import recorded
from tests.recorded import GCE_EUROPE_NODE, RECORDED
from tests.support import assert_error_body, make_app

EUROPE_ID = "517678477070693411"  # GCE_EUROPE_NODE's id


def wire(monkeypatch, mock) -> list[tuple[str, str]]:
    """(method, path) of every request ``mock`` answers from now on."""
    sent: list[tuple[str, str]] = []
    answer = mock._get_request

    def recording(self, method, url, body=None, headers=None):
        sent.append((method, url.split("?")[0]))
        return answer(self, method, url, body, headers)

    monkeypatch.setattr(mock, "_get_request", recording)
    return sent


def recorded_app(name: str, monkeypatch, **settings):
    cloud = RECORDED[name]
    cloud.patch(monkeypatch)
    return make_app(
        **{
            "launchprov.provider": "libcloud",
            "launchprov.libcloud.driver": cloud.driver,
            **cloud.settings,
            **settings,
        }
    )


@pytest.fixture
def gce(monkeypatch):
    from libcloud.compute.drivers.gce import GCENodeDriver

    app = recorded_app("gce", monkeypatch)
    return app, wire(monkeypatch, GCENodeDriver.connectionCls.conn_class)


def test_gce_lists_every_zone_of_the_project(gce):
    app, sent = gce

    listed = app.get("/v1/instances").json["instances"]

    zones = {instance["placement"] for instance in listed}
    assert {"us-central1-a", "europe-west1-a", "us-central2-a"} <= zones
    assert ("GET", "/compute/v1/projects/project_name/aggregated/instances") in sent


def test_gce_manages_an_instance_outside_the_datacenter_zone(gce):
    app, sent = gce

    described = app.get(f"/v1/instances/{EUROPE_ID}").json
    terminated = app.delete(f"/v1/instances/{EUROPE_ID}").json

    assert described["placement"] == "europe-west1-a"
    assert terminated["id"] == EUROPE_ID
    path = f"/compute/v1/projects/project_name/zones/europe-west1-a/instances/{GCE_EUROPE_NODE}"
    assert ("DELETE", path) in sent


def test_gce_a_launch_in_another_zone_is_managed_there(gce, monkeypatch):
    app, sent = gce
    recorded._node_name(monkeypatch, GCE_EUROPE_NODE)

    launched = app.put_json(
        "/v1/launch", {**RECORDED["gce"].launch, "placement": "europe-west1-a"}
    ).json
    described = app.get(f"/v1/instances/{launched[0]}").json
    app.delete(f"/v1/instances/{launched[0]}")

    assert ("POST", "/compute/v1/projects/project_name/zones/europe-west1-a/instances") in sent
    assert launched == [EUROPE_ID] and described["placement"] == "europe-west1-a"
    path = f"/compute/v1/projects/project_name/zones/europe-west1-a/instances/{GCE_EUROPE_NODE}"
    assert ("DELETE", path) in sent


@pytest.mark.parametrize("reply", ["", "<html><title>Bad gateway</title></html>"])
def test_gce_a_listing_reply_that_is_no_json_is_malformed_not_zero_instances(
    gce, monkeypatch, reply
):
    from libcloud.compute.drivers.gce import GCENodeDriver

    app, _ = gce
    mock = GCENodeDriver.connectionCls.conn_class
    monkeypatch.setattr(
        mock, "_aggregated_instances", lambda self, *a: (200, reply, self.json_hdr, "OK")
    )

    body = assert_error_body(app.get("/v1/instances", status=408), 408)

    assert body["provider"]["code"] == "MalformedResponse"
    assert body["provider"]["retryable"] is False  # a 200 that does not parse will not next time


@pytest.fixture
def openstack(monkeypatch):
    from libcloud.compute.drivers.openstack import OpenStack_1_1_NodeDriver

    app = recorded_app("openstack", monkeypatch)
    return app, wire(monkeypatch, OpenStack_1_1_NodeDriver.connectionCls.conn_class)


@pytest.mark.parametrize(
    ("zone", "exists"), [("nova", True), ("nowhere", False), ("az-down", False)]
)
def test_openstack_preflight_knows_which_zones_exist(openstack, zone, exists):
    app, sent = openstack

    answer = app.post_json(
        "/v1/launch/preflight", {**RECORDED["openstack"].launch, "placement": zone}
    ).json

    assert answer["would_launch"] is exists
    (check,) = [check for check in answer["checks"] if check["name"] == "location"]
    assert check["ok"] is exists
    if not exists:
        assert check["code"] == "LocationNotFound"
        assert "placement" in check["message"] and zone in check["message"]
    assert ("GET", "/v2/1337/os-availability-zone") in sent
    assert ("POST", "/v2/1337/servers") not in sent


def test_openstack_launches_in_the_zone_it_was_given(openstack, monkeypatch):
    from libcloud.compute.drivers.openstack import OpenStack_1_1_NodeDriver

    app, _ = openstack
    created = []
    original = OpenStack_1_1_NodeDriver.create_node

    def spy(self, **kwargs):
        created.append(kwargs)
        return original(self, **kwargs)

    monkeypatch.setattr(OpenStack_1_1_NodeDriver, "create_node", spy)

    app.put_json("/v1/launch", {**RECORDED["openstack"].launch, "placement": "testaz"})
    refused = app.put_json(
        "/v1/launch", {**RECORDED["openstack"].launch, "placement": "nowhere"}, status=408
    ).json

    assert [call["ex_availability_zone"] for call in created] == ["testaz"]
    assert (refused["provider"]["code"], refused["provider"]["outcome"]) == (
        "LocationNotFound",
        "none",
    )
