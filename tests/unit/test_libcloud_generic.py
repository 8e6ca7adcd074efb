"""The generic profile over every libcloud compute driver that has recorded replies: startup
either refuses in one line, naming what it cannot do, or yields a profile whose create_node
call the driver can take (so that no launch fails with a TypeError). No request is sent."""

from __future__ import annotations

import inspect
import json
import os
import socket

import libcloud
import pytest
from libcloud.compute.base import NodeImage, NodeLocation, NodeSize
from libcloud.compute.providers import DRIVERS

from launchprov import settings as launchprov_settings
from launchprov.providers.interface import ProviderError
from launchprov.providers.libcloud import LibcloudProvider
from launchprov.providers.libcloud.generic import GENERIC, construction, profile_for
from launchprov.providers.libcloud.profile import LaunchContext
from launchprov.providers.libcloud.profiles import PROFILES, profile_of
from launchprov.settings import ConfigurationError
from tests.support import launch_request


def _recorded_drivers() -> list[str]:
    """libcloud provider names without a profile whose driver module has recorded replies."""
    fixtures = os.listdir(os.path.join(os.path.dirname(libcloud.__file__), "test/compute/fixtures"))
    return sorted(
        name
        for name, (module, _) in DRIVERS.items()
        if name not in PROFILES and any(f == module.rpartition(".")[2] for f in fixtures)
    )


RECORDED_DRIVERS = _recorded_drivers()


def startup(driver: str):
    profile = profile_of(driver)
    raw = {
        "launchprov.provider": "libcloud",
        "launchprov.libcloud.driver": driver,
        "launchprov.libcloud.key": "key",
    }
    if profile.construction.secret_to is not None:
        raw["launchprov.libcloud.secret"] = "secret"
    if "location" in inspect.signature(profile.driver_class().create_node).parameters:
        # As a deployment whose launches name no placement does.
        raw["launchprov.libcloud.launch_kwargs"] = json.dumps({"location": "loc"})
    return LibcloudProvider.from_settings(launchprov_settings.load(raw, environ={}))


def test_every_recorded_driver_is_tried():
    assert {"scaleway", "upcloud", "gridscale", "equinixmetal", "kubevirt"} <= set(RECORDED_DRIVERS)
    assert len(RECORDED_DRIVERS) >= 25


@pytest.mark.parametrize("driver", RECORDED_DRIVERS)
def test_launches_or_refuses_at_startup_in_one_line(driver, monkeypatch):
    def refuse(self, address):
        raise ConnectionRefusedError(f"no network in tests: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    try:
        provider = startup(driver)
    except ConfigurationError as exc:
        message = str(exc)
        assert "\n" not in message and "launchprov.libcloud." in message
        return
    driver_object = provider.driver(None)
    found = {
        "image": NodeImage("img", "img", driver_object),
        "size": NodeSize("size", "size", 1024, 10, None, None, driver_object, extra={}),
        "location": NodeLocation("loc", "loc", "XX", driver_object),
    }
    context = LaunchContext(
        launch_request(ami="img", instance_type="size", placement="loc"),
        driver_object,
        lambda kind, wanted, **scope: found[kind],
        lambda: found["location"],
    )
    arguments = provider._arguments(context)

    inspect.signature(type(driver_object).create_node).bind(
        driver_object, name="launchprov-1", **arguments
    )


def test_keys_go_where_the_constructor_wants_them():
    from libcloud.compute.drivers.equinixmetal import EquinixMetalNodeDriver
    from libcloud.compute.drivers.gridscale import GridscaleNodeDriver
    from libcloud.compute.drivers.upcloud import UpcloudDriver

    assert (construction(UpcloudDriver).key_to, construction(UpcloudDriver).secret_to) == (
        "username",
        "password",
    )
    assert construction(GridscaleNodeDriver).secret_to == "key"
    # Equinix Metal's second argument is a project (driver_kwargs), not a secret.
    assert construction(EquinixMetalNodeDriver).secret_to is None
    assert construction(EquinixMetalNodeDriver).timeout == "connection"


def test_a_required_location_is_the_placement():
    from libcloud.compute.drivers.upcloud import UpcloudDriver

    profile = profile_for("upcloud", UpcloudDriver)

    assert profile.parameters["placement"].argument == "location" and profile.needs_location
    assert "placement" in GENERIC.parameters


def test_a_create_node_call_the_driver_cannot_take_sends_nothing_and_launched_nothing():
    """A TypeError from calling create_node wrongly is never outcome "unknown"."""
    import dataclasses

    from launchprov.providers.libcloud.drivers import CloudlikeDummyNodeDriver

    called = []

    class Narrow(CloudlikeDummyNodeDriver):
        def create_node(self, name, size, image):  # no ex_metadata
            called.append(name)
            return super().create_node(name, size, image)

    profile = dataclasses.replace(PROFILES["dummy"], shared=True)
    provider = LibcloudProvider(profile, lambda region: Narrow(0))

    with pytest.raises(ProviderError) as caught:
        provider.launch(launch_request(ami="img-1", instance_type="small"))

    assert caught.value.outcome == "none" and caught.value.retryable is False
    assert "create_node" in caught.value.message and "ex_metadata" in caught.value.message
    assert called == []


def test_startup_refuses_a_create_node_that_takes_no_size():
    raw = {
        "launchprov.provider": "libcloud",
        "launchprov.libcloud.driver": "vcl",
        "launchprov.libcloud.key": "key",
        "launchprov.libcloud.secret": "secret",
        "launchprov.libcloud.host": "vcl.example.org",
    }

    with pytest.raises(ConfigurationError) as caught:
        LibcloudProvider.from_settings(launchprov_settings.load(raw, environ={}))

    message = str(caught.value)
    assert "\n" not in message and "create_node takes no name, size" in message


def test_list_nodes_gets_the_launch_kwargs_it_names_but_a_location():
    from libcloud.compute.drivers.equinixmetal import EquinixMetalNodeDriver
    from libcloud.compute.drivers.ktucloud import KTUCloudNodeDriver

    from launchprov.providers.libcloud.generic import listing

    given = {"ex_project_id": "p", "location": "KOR-Central A", "ip_addresses": []}

    assert listing(EquinixMetalNodeDriver, given) == {"ex_project_id": "p"}
    assert listing(KTUCloudNodeDriver, given) == {}  # its list_nodes wants a NodeLocation
