"""The generic profile end to end: drivers launchprov has no profile for, behind the app, on
the recorded replies Apache Libcloud ships for its own tests (tests/recorded.py's
GENERIC_RECORDED). Each launches, lists and destroys on its recorded cloud, checked on the
wire (the request the driver's MockHttp answered), or is refused at startup in one line.
"""

from __future__ import annotations

import json

import pytest
from libcloud.compute.providers import get_driver

from launchprov.settings import ConfigurationError
from tests.recorded import GENERIC_RECORDED, GenericCloud, libcloud_test_module
from tests.support import make_app


def wire(monkeypatch, driver: str) -> list[tuple[str, str, object]]:
    """(method, path, body) of every request the driver's MockHttp answers from now on."""
    mock = get_driver(driver).connectionCls.conn_class
    sent: list[tuple[str, str, object]] = []
    answer = mock._get_request

    def recording(self, method, url, body=None, headers=None):
        sent.append((method, url.split("?")[0], body))
        return answer(self, method, url, body, headers)

    monkeypatch.setattr(mock, "_get_request", recording)
    return sent


def generic_app(cloud: GenericCloud, **settings):
    return make_app(
        **{
            "launchprov.provider": "libcloud",
            "launchprov.libcloud.driver": cloud.driver,
            **cloud.settings,
            **settings,
        }
    )


@pytest.fixture(params=list(GENERIC_RECORDED))
def cloud(request, monkeypatch) -> GenericCloud:
    recorded = GENERIC_RECORDED[request.param]
    recorded.patch(monkeypatch)
    return recorded


def test_launches_lists_and_destroys_on_the_recorded_cloud(cloud, monkeypatch):
    app = generic_app(cloud)
    sent = wire(monkeypatch, cloud.driver)

    launched = app.put_json("/v1/launch", cloud.launch).json
    created = [body for method, _, body in sent if method == "POST"]
    listed = app.get("/v1/instances").json["instances"]
    destroyed = app.delete(f"/v1/instances/{cloud.known_id}").json

    assert launched == [cloud.launched_id]
    # The create carried the catalog's image and size, not bare ids the driver cannot use.
    assert any(cloud.launch["ami"] in str(body) for body in created)
    assert {"id": cloud.known_id, "state": cloud.known_state}.items() <= next(
        i for i in listed if i["id"] == cloud.known_id
    ).items()
    assert destroyed["id"] == cloud.known_id
    assert cloud.destroy in [(method, path) for method, path, _ in sent]


def test_a_launch_goes_to_the_configured_location(monkeypatch):
    cloud = GENERIC_RECORDED["upcloud"]
    cloud.patch(monkeypatch)
    app = generic_app(cloud)
    sent = wire(monkeypatch, cloud.driver)

    app.put_json("/v1/launch", cloud.launch)

    (create,) = [json.loads(body) for method, _, body in sent if method == "POST"]
    assert create["server"]["zone"] == "fi-hel1"


def test_a_destroyed_node_the_cloud_no_longer_lists_is_terminated(monkeypatch):
    cloud = GENERIC_RECORDED["upcloud"]  # UpCloud forgets a deleted server
    cloud.patch(monkeypatch)
    app = generic_app(cloud)

    destroyed = app.delete(f"/v1/instances/{cloud.known_id}").json
    listed = app.get("/v1/instances").json["instances"]

    assert (destroyed["id"], destroyed["state"]) == (cloud.known_id, "terminated")
    assert cloud.known_id not in [instance["id"] for instance in listed]


def test_equinix_metal_lists_the_project_it_launches_in(monkeypatch):
    cloud = GENERIC_RECORDED["equinixmetal"]
    cloud.patch(monkeypatch)
    app = generic_app(cloud)
    sent = wire(monkeypatch, cloud.driver)

    app.get("/v1/instances")

    assert [path for _, path, _ in sent] == ["/metal/v1/projects/project-id/devices"]


def test_gridscale_is_refused_at_startup_in_one_line(monkeypatch):
    from libcloud.compute.drivers.gridscale import GridscaleNodeDriver

    mock = libcloud_test_module("test_gridscale").GridscaleMockHttp
    monkeypatch.setattr(GridscaleNodeDriver.connectionCls, "conn_class", mock)
    sent = wire(monkeypatch, "gridscale")

    with pytest.raises(ConfigurationError) as caught:
        make_app(
            **{
                "launchprov.provider": "libcloud",
                "launchprov.libcloud.driver": "gridscale",
                "launchprov.libcloud.key": "user uuid",
                "launchprov.libcloud.secret": "api token",
            }
        )

    message = str(caught.value)
    assert "\n" not in message
    assert "gridscale" in message and "list_sizes" in message and "instance_type" in message
    assert sent == []


def test_readiness_lists_where_launches_go(cloud, monkeypatch):
    app = generic_app(cloud)
    sent = wire(monkeypatch, cloud.driver)

    assert app.get("/readyz").json["status"] == "ready"
    if cloud.driver == "equinixmetal":  # libcloud's listing of every project fails on 3.11
        assert [path for _, path, _ in sent] == ["/metal/v1/projects/project-id/devices"]
