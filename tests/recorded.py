"""Apache Libcloud's recorded clouds: each driver's MockHttp and replies, as libcloud's own
tests use them (``libcloud.test.compute.test_<driver>``, ``.../fixtures/<driver>/``).

A :class:`RecordedCloud` says how launchprov is configured for a driver and how the driver's
connection classes are pointed at libcloud's MockHttp. Where a recording lacks a reply that a
call needs, launchprov adds one in ``tests/fixtures/libcloud/<driver>/``, shaped like the
driver's real API, served by a subclass of the driver's MockHttp:

* ``gce/zones_us_central1_a_instances_node_name_start.json``: starting the recorded node
  ``node-name`` (GCE answers an operation, as libcloud records for ``stopped-node``);
* ``azure_arm/..._test_node_1_{restart,deallocate,start}.json``: Azure's 202 Accepted with no
  body (and a 404 for the VM once it is deleted, which destroy_node polls for);
* ``digitalocean/create_node.json``: the API's 202 with the new droplet (libcloud records no
  successful create for DigitalOcean v2).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures" / "libcloud"


def install_libcloud_test_secrets() -> None:
    """Make ``libcloud.test.secrets`` importable: libcloud ships it as ``secrets.py-dist``.

    Loaded from that file into sys.modules (site-packages is left alone), once.
    """
    if "libcloud.test.secrets" in sys.modules:
        return
    import libcloud.test

    path = os.path.join(os.path.dirname(libcloud.test.__file__), "secrets.py-dist")
    loader = importlib.machinery.SourceFileLoader("libcloud.test.secrets", path)
    spec = importlib.util.spec_from_loader("libcloud.test.secrets", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules["libcloud.test.secrets"] = module


def libcloud_test_module(name: str):
    """``libcloud.test.compute.<name>``, with its secrets in place."""
    install_libcloud_test_secrets()
    return importlib.import_module(f"libcloud.test.compute.{name}")


@dataclasses.dataclass
class RecordedCloud:
    """One driver on libcloud's recorded replies."""

    driver: str
    #: launchprov.* settings besides provider and driver.
    settings: dict[str, str]
    #: patch(monkeypatch): point the driver's connection classes at libcloud's MockHttp.
    patch: Callable[[Any], None]
    #: The id of a node the recorded list_nodes answers, and its launchprov state.
    known_id: str
    known_state: str
    #: What describe must read back for it (launchprov field -> value).
    known_fields: dict[str, Any]
    #: A launch body the recording accepts (ami, instance_type, placement where needed).
    launch: dict[str, Any]
    #: Values for every explicitly set parameter the recording accepts.
    explicit: dict[str, Any]


def record_wire(monkeypatch) -> list[tuple[str, str, str]]:
    """Every request a recorded driver sends from now on: (method, URL, body), URL-decoded,
    read where it lands (libcloud's MockHttp, which every recording's mock extends)."""
    import urllib.parse

    install_libcloud_test_secrets()
    from libcloud.test import MockHttp

    sent: list[tuple[str, str, str]] = []
    original = MockHttp._get_request

    def recording(self, method, url, body=None, headers=None):
        text = body.decode() if isinstance(body, bytes) else str(body or "")
        sent.append((method, urllib.parse.unquote_plus(url), text))
        return original(self, method, url, body, headers)

    monkeypatch.setattr(MockHttp, "_get_request", recording)
    return sent


# -- the recorded clouds ----------------------------------------------------------------------


def _mock(monkeypatch, driver_cls, mock, **attributes) -> None:
    """Point a driver's connection class at a MockHttp, as libcloud's own tests' setUp does."""
    monkeypatch.setattr(driver_cls.connectionCls, "conn_class", mock)
    monkeypatch.setattr(mock, "type", None)
    for name, value in attributes.items():
        monkeypatch.setattr(mock, name, value)


def _node_name(monkeypatch, name: str) -> None:
    """libcloud's recordings answer for the node names their tests created."""
    import launchprov.providers.libcloud.provider as provider

    monkeypatch.setattr(provider, "node_name", lambda profile: name)


def openstack(monkeypatch) -> None:
    from libcloud.compute.drivers.openstack import OpenStack_1_1_NodeDriver

    recorded = libcloud_test_module("test_openstack")
    _mock(monkeypatch, OpenStack_1_1_NodeDriver, recorded.OpenStack_2_0_MockHttp)
    monkeypatch.setattr(
        OpenStack_1_1_NodeDriver.connectionCls, "auth_url", "https://auth.api.example.com"
    )
    monkeypatch.setattr(recorded.OpenStackMockHttp, "type", None)
    monkeypatch.setattr(recorded.OpenStack_1_1_MockHttp, "type", None)


class _NoTestCase:
    """GCEMockHttp asks its test case for nothing launchprov's calls reach."""


def _reply(driver: str, name: str, status: int = 200):
    """A MockHttp method that answers ``status`` with launchprov's added reply ``name``."""
    import http.client

    def answer(self, method, url, body, headers):
        text = (FIXTURES / driver / name).read_text()
        headers = {"content-type": "application/json"}
        return (status, text, headers, http.client.responses[status])

    return answer


def _gce_mock():
    recorded = libcloud_test_module("test_gce")
    return type(
        "LaunchprovGCEMockHttp",
        (recorded.GCEMockHttp,),
        {
            # Starting the recorded node-name: GCE's reply is an operation, as for stopped-node.
            "_zones_us_central1_a_instances_node_name_start": _reply(
                "gce", "zones_us_central1_a_instances_node_name_start.json"
            ),
        },
    )


def gce(monkeypatch) -> None:
    import libcloud.common.google as google
    from libcloud.compute.drivers.gce import GCENodeDriver

    google_recorded = importlib.import_module("libcloud.test.common.test_google")
    _mock(monkeypatch, GCENodeDriver, _gce_mock(), test=_NoTestCase())
    # What libcloud's GoogleTestCase patches: the clock, the token cache, the GCE probe.
    monkeypatch.setattr(
        google.GoogleBaseAuthConnection, "conn_class", google_recorded.GoogleAuthMockHttp
    )
    monkeypatch.setattr(google, "_utcnow", lambda: google_recorded.STUB_UTCNOW)
    monkeypatch.setattr(google.GoogleAuthType, "_is_gce", staticmethod(lambda: False))
    monkeypatch.setattr(
        google.GoogleOAuth2Credential,
        "_get_token_from_file",
        lambda self: google_recorded.STUB_TOKEN_FROM_FILE,
    )
    monkeypatch.setattr(google.GoogleOAuth2Credential, "_write_token_to_file", lambda self: None)
    _node_name(monkeypatch, "lcnode-000")


def azure_arm(monkeypatch) -> None:
    import time
    import types

    from libcloud.compute.drivers import azure_arm as azure_driver
    from libcloud.compute.drivers.azure_arm import AzureNodeDriver

    recorded = libcloud_test_module("test_azure_arm")
    vm = (
        "_subscriptions_99999999_9999_9999_9999_999999999999_resourceGroups_000000_providers_"
        "Microsoft_Compute_virtualMachines_test_node_1"
    )
    fixture = (
        "_subscriptions_99999999_resourceGroups_000000_providers_Microsoft_Compute_"
        "virtualMachines_test_node_1_{}.json"
    )
    # Restart, deallocate and start of test-node-1: Azure answers 202 Accepted, no body.
    actions = {
        f"{vm}_{action}": _reply("azure_arm", fixture.format(action), 202)
        for action in ("restart", "deallocate", "start")
    }
    deleted: set[str] = set()

    def machine(self, method, url, body, headers):
        # DELETE is 202 Accepted; once it is done, Azure answers the VM's URL 404.
        if method == "DELETE":
            deleted.add(url)
            return (202, "", {}, "Accepted")
        if url in deleted:
            gone = '{"error": {"code": "ResourceNotFound", "message": "not found"}}'
            return (404, gone, {}, "Not Found")
        return recorded.AzureMockHttp.__getattr__(self, vm)(method, url, body, headers)

    actions[vm] = machine
    mock = type("LaunchprovAzureMockHttp", (recorded.AzureMockHttp,), actions)
    _mock(monkeypatch, AzureNodeDriver, mock)
    # destroy_node polls until the VM is gone, sleeping between polls: libcloud's own tests
    # make that sleep return at once, and so does this (for the Azure driver only).
    monkeypatch.setattr(
        azure_driver, "time", types.SimpleNamespace(**{**vars(time), "sleep": lambda _: None})
    )
    _node_name(monkeypatch, "test-node-1")


def _digitalocean_mock():
    """libcloud's DigitalOcean recordings, routed by what a call sends rather than by the
    ``type`` each of libcloud's tests sets: 204 for a DELETE of the droplet, the recorded
    reply of each droplet action, and for a POST to /v2/droplets launchprov's added reply
    (tests/fixtures/libcloud/digitalocean/create_node.json, the API's 202 with the new
    droplet: libcloud records no successful create)."""
    import http.client
    import json

    recorded = libcloud_test_module("test_digitalocean_v2").DigitalOceanComputeMockHttp
    actions = {
        "reboot": "reboot_node.json",
        "power_on": "ex_power_on_node.json",
        "shutdown": "ex_shutdown_node.json",
    }

    class LaunchprovDigitalOceanMockHttp(recorded):
        def _v2_droplets(self, method, url, body, headers):
            if method == "POST":  # launchprov's added reply: libcloud records none
                reply = (FIXTURES / "digitalocean" / "create_node.json").read_text()
                return (http.client.ACCEPTED, reply, {}, "Accepted")
            return super()._v2_droplets(method, url, body, headers)

        def _v2_droplets_3164444(self, method, url, body, headers):
            if method == "DELETE":
                return (http.client.NO_CONTENT, "", {}, "No Content")
            return super()._v2_droplets_3164444(method, url, body, headers)

        def _v2_droplets_3164444_actions(self, method, url, body, headers):
            reply = self.fixtures.load(actions[json.loads(body)["type"]])
            return (http.client.CREATED, reply, {}, "Created")

    return LaunchprovDigitalOceanMockHttp


def digitalocean(monkeypatch) -> None:
    from libcloud.compute.drivers.digitalocean import DigitalOcean_v2_NodeDriver

    _mock(monkeypatch, DigitalOcean_v2_NodeDriver, _digitalocean_mock())


def _as_shipped(driver: str, test_module: str, mock: str, **attributes):
    """patch(monkeypatch) for a driver whose recorded MockHttp answers launchprov's calls as
    libcloud ships it: the class of ``driver``'s profile on ``test_module``'s ``mock``."""

    def patch(monkeypatch) -> None:
        from launchprov.providers.libcloud.profiles import PROFILES

        recorded = getattr(libcloud_test_module(test_module), mock)
        _mock(monkeypatch, PROFILES[driver].driver_class(), recorded, **attributes)

    return patch


vultr = _as_shipped("vultr", "test_vultr_v2", "VultrMockHttpV2")
linode = _as_shipped("linode", "test_linode_v4", "LinodeMockHttpV4")
cloudstack = _as_shipped(
    "cloudstack", "test_cloudstack", "CloudStackMockHttp", fixture_tag="default"
)


def _json(value) -> str:
    import json

    return json.dumps(value)


def _token_cloud(
    driver: str, *, token: str, location: str, key_name: str, placement: str, **recorded
) -> RecordedCloud:
    """A cloud of one API token (DigitalOcean, Vultr, Linode): create_node's location from
    launch_kwargs, and as the deployment's default key pair one the recorded account has."""
    return RecordedCloud(
        driver=driver,
        settings={
            "launchprov.libcloud.key": token,
            "launchprov.libcloud.launch_kwargs": _json({"location": location}),
            "launchprov.defaults.key_name": key_name,
        },
        explicit={"placement": placement, "key_name": key_name},
        **recorded,
    )


#: Every driver of the matrix but ec2 (moto) and dummy (in memory), on libcloud's recordings.
RECORDED: dict[str, RecordedCloud] = {
    "openstack": RecordedCloud(
        driver="openstack",
        settings={
            "launchprov.libcloud.key": "user_name",
            "launchprov.libcloud.secret": "api_key",
            "launchprov.libcloud.driver_kwargs": _json(
                {
                    "ex_force_auth_url": "https://auth.api.example.com",
                    "ex_force_auth_version": "2.0",
                }
            ),
        },
        patch=openstack,
        known_id="12064",
        known_state="running",
        known_fields={"instance_type": "2", "ami": "7"},
        launch={"ami": "13", "instance_type": "1"},
        explicit={"placement": "nova"},
    ),
    "gce": RecordedCloud(
        driver="gce",
        settings={
            "launchprov.libcloud.key": "email@developer.gserviceaccount.com",
            "launchprov.libcloud.secret": "key",
            "launchprov.libcloud.driver_kwargs": _json(
                {"project": "project_name", "datacenter": "us-central1-a", "auth_type": "IA"}
            ),
        },
        patch=gce,
        known_id="4006034190819017667",
        known_state="running",
        known_fields={
            "instance_type": "n1-standard-1",
            "ami": "debian-7-wheezy-v20131120",
            "placement": "us-central1-a",
        },
        launch={"ami": "debian-7", "instance_type": "n1-standard-1"},
        explicit={"placement": "us-central1-a"},
    ),
    "azure_arm": RecordedCloud(
        driver="azure_arm",
        settings={
            "launchprov.libcloud.key": "application-id",
            "launchprov.libcloud.secret": "application-secret",
            "launchprov.libcloud.driver_kwargs": _json(
                {
                    "tenant_id": "77777777-7777-7777-7777-777777777777",
                    "subscription_id": "99999999-9999-9999-9999-999999999999",
                }
            ),
            "launchprov.libcloud.launch_kwargs": _json(
                {
                    "location": "eastus",
                    "ex_resource_group": "000000",
                    "ex_network": "000000",
                    "ex_subnet": "000000",
                    "ex_use_managed_disks": True,
                    "auth": {"ssh_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHh0 launchprov"},
                }
            ),
        },
        patch=azure_arm,
        known_id="000000:test-node-1",
        known_state="pending",
        known_fields={"instance_type": "Standard_A1", "placement": "eastus"},
        launch={"ami": "Canonical:UbuntuServer:16.04.0-LTS:latest", "instance_type": "Standard_A1"},
        explicit={"placement": "eastus"},
    ),
    "digitalocean": _token_cloud(
        "digitalocean",
        token="token",
        location="nyc1",
        key_name="test1",
        placement="nyc1",
        patch=digitalocean,
        known_id="3164444",
        known_state="running",
        known_fields={"instance_type": "s-1vcpu-1gb", "ami": "69463186"},
        launch={"ami": "119192817", "instance_type": "512mb"},
    ),
    "vultr": _token_cloud(
        "vultr",
        token="foo",
        location="ams",
        key_name="tester",
        placement="ewr",
        patch=vultr,
        known_id="123",
        known_state="running",
        known_fields={"instance_type": "vc2-1c-2gb", "ami": "477", "placement": "fra"},
        launch={"ami": "167", "instance_type": "vc2-1c-1gb"},
    ),
    "linode": _token_cloud(
        "linode",
        token="foo",
        location="us-east",
        key_name="My SSH Key",
        placement="us-west",
        patch=linode,
        known_id="22344420",
        known_state="running",
        known_fields={
            "instance_type": "g6-nanode-1",
            "ami": "linode/centos7",
            "placement": "eu-west",
        },
        launch={"ami": "linode/alpine3.10", "instance_type": "g6-nanode-1"},
    ),
    "cloudstack": RecordedCloud(
        driver="cloudstack",
        settings={
            "launchprov.libcloud.key": "apikey",
            "launchprov.libcloud.secret": "secret",
            "launchprov.libcloud.host": "api.dummy.com",
            "launchprov.libcloud.driver_kwargs": _json({"path": "/test/path"}),
        },
        patch=cloudstack,
        known_id="2600",
        known_state="running",
        known_fields={"instance_type": "105", "ami": "421", "placement": "Sydney"},
        launch={"ami": "576", "instance_type": "105"},
        explicit={"placement": "Sydney"},
    ),
}
