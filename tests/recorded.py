"""Apache Libcloud's recorded clouds: each driver's MockHttp and replies, as libcloud's own
tests use them (``libcloud.test.compute.test_<driver>``, ``.../fixtures/<driver>/``).

A :class:`RecordedCloud` says how launchprov is configured for a driver and how the driver's
connection classes are pointed at libcloud's MockHttp. Where a recording lacks a reply that a
call needs, launchprov adds one in ``tests/fixtures/libcloud/<driver>/``, shaped like the
driver's real API, served by a subclass of the driver's MockHttp:

* ``gce/zones_us_central1_a_instances_node_name_start.json``: starting the recorded node
  ``node-name`` (GCE answers an operation, as libcloud records for ``stopped-node``);
* ``gce/zones_europe_west1_a_instances_post.json``: creating a node in europe-west1-a, the
  zone's node of the recorded aggregated list (libcloud records only a failed insert there);
* ``azure_arm/..._test_node_1_{restart,deallocate,start}.json``: Azure's 202 Accepted with no
  body (and a 404 for the VM once it is deleted, which destroy_node polls for); West US's
  sizes are the recorded East US ones;
* ``digitalocean/create_node.json``: the API's 202 with the new droplet (libcloud records no
  successful create for DigitalOcean v2);
* ``openstack/os_availability_zone.json``: Nova's availability zones (``nova`` and ``testaz``
  available, ``az-down`` not), which libcloud records none of;
* ``cloudstack/listZones.json``: the recorded zone (Sydney) and a second one (Melbourne).

:class:`Traffic` records what every driver's connection sends, as the cloud receives it, and
can make the cloud refuse a request: the conformance matrix checks each cell of the driver
matrix there.
"""

from __future__ import annotations

import dataclasses
import http.client
import importlib
import importlib.machinery
import importlib.util
import json
import os
import re
import sys
import urllib.parse
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
    #: Values for every explicitly set parameter the recording accepts (placement, and the
    #: fallback's alternative: another size of the catalog).
    explicit: dict[str, Any]
    #: What the given value of a parameter is on the wire where the cloud names it otherwise
    #: (the key pair's id, the image's full name): parameter -> wire value.
    on_the_wire: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: How the requests of the actions name the known node (its id, or its name).
    node_on_the_wire: str | None = None
    #: parameter -> the node name a launch giving it must create (the recording answers for
    #: that node only).
    node_names: dict[str, str] = dataclasses.field(default_factory=dict)

    def app_settings(self) -> dict[str, str]:
        """The settings of an app on this recording (with :meth:`patch` applied first)."""
        return {
            "launchprov.provider": "libcloud",
            "launchprov.libcloud.driver": self.driver,
            **self.settings,
        }


# -- the wire ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Sent:
    """One request as the cloud received it."""

    method: str
    url: str
    body: Any

    @property
    def path(self) -> str:
        return urllib.parse.urlsplit(self.url).path

    @property
    def query(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.url).query))

    @property
    def text(self) -> str:
        body = self.body.decode() if isinstance(self.body, bytes) else self.body
        return body if isinstance(body, str) else ""

    @property
    def json(self) -> Any:
        return json.loads(self.text)

    def matches(self, method: str, pattern: str) -> bool:
        """The request is ``method`` and ``pattern`` is found in its path (in its query string
        if the pattern holds ``=``)."""
        where = urllib.parse.urlsplit(self.url).query if "=" in pattern else self.path
        return self.method == method and re.search(pattern, where) is not None


class Traffic:
    """Every request the drivers' connections send, in order: for a recorded cloud what
    reaches its MockHttp, for a real endpoint (moto's server) what goes out.

    ``refuse`` makes the recorded cloud answer an error instead of its recording.
    """

    def __init__(self):
        self.sent: list[Sent] = []
        self._refusals: list[tuple[str, str, tuple[int, str], int, int | None]] = []

    def install(self, monkeypatch) -> Traffic:
        from libcloud.http import LibcloudConnection
        from libcloud.test import MockHttp

        recorded_request = MockHttp._get_request
        sent_request = LibcloudConnection.request
        wire = self

        def received(mock, method, url, body=None, headers=None):
            wire.sent.append(Sent(method, url, body))
            refusal = wire._refusal(method, url)
            if refusal is not None:
                status, text = refusal
                headers = {"content-type": "application/json"}
                return (status, text, headers, http.client.responses[status])
            return recorded_request(mock, method, url, body, headers)

        def sending(connection, method, url, body=None, headers=None, *args, **kwargs):
            if not isinstance(connection, MockHttp):  # a MockHttp's requests are received above
                wire.sent.append(Sent(method, urllib.parse.urljoin(connection.host, url), body))
            return sent_request(connection, method, url, body, headers, *args, **kwargs)

        monkeypatch.setattr(MockHttp, "_get_request", received)
        monkeypatch.setattr(LibcloudConnection, "request", sending)
        return self

    def clear(self) -> None:
        """Forget what was sent and every refusal."""
        self.sent.clear()
        self._refusals.clear()

    def matching(self, method: str, pattern: str) -> list[Sent]:
        return [sent for sent in self.sent if sent.matches(method, pattern)]

    def refuse(
        self,
        method: str,
        pattern: str,
        reply: tuple[int, str],
        after: int = 0,
        times: int | None = None,
    ) -> None:
        """Answer ``reply`` (status, body) to the requests matching ``method`` and ``pattern``
        once ``after`` of them have been answered by the recording, ``times`` of them (None:
        every one)."""
        self._refusals.append((method, pattern, reply, after, times))

    def _refusal(self, method: str, url: str) -> tuple[int, str] | None:
        for wanted, pattern, reply, after, times in self._refusals:
            if not Sent(method, url, None).matches(wanted, pattern):
                continue
            number = len(self.matching(wanted, pattern))  # this request's, counted from 1
            if number > after and (times is None or number <= after + times):
                return reply
        return None


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
    mock = type(
        "LaunchprovOpenStackMockHttp",
        (recorded.OpenStack_2_0_MockHttp,),
        {"_v2_1337_os_availability_zone": _reply("openstack", "os_availability_zone.json")},
    )
    _mock(monkeypatch, OpenStack_1_1_NodeDriver, mock)
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


#: A node of the recorded aggregated list outside the driver's datacenter (us-central1-a).
GCE_EUROPE_NODE = "libcloud-demo-europe-persist-node"


def _gce_europe_node(self, method, url, body, headers):
    """GCE_EUROPE_NODE as its zone's URL answers: the instance of the recorded aggregated list
    for a GET, and for a DELETE the operation libcloud records for deleting node-name."""
    import json

    if method == "DELETE":
        return self._zones_us_central1_a_instances_node_name(method, url, body, headers)
    listed = json.loads(self.fixtures.load("aggregated_instances.json"))
    zone = listed["items"]["zones/europe-west1-a"]["instances"]
    node = next(instance for instance in zone if instance["name"] == GCE_EUROPE_NODE)
    return (200, json.dumps(node), self.json_hdr, "OK")


def _gce_europe_insert(self, method, url, body, headers):
    """europe-west1-a's instances: a POST creates GCE_EUROPE_NODE (launchprov's added reply,
    an insert operation done), a GET lists as recorded."""
    if method == "POST":
        return _reply("gce", "zones_europe_west1_a_instances_post.json")(
            self, method, url, body, headers
        )
    return type(self).__mro__[1]._zones_europe_west1_a_instances(self, method, url, body, headers)


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
            "_zones_europe_west1_a_instances_libcloud_demo_europe_persist_node": _gce_europe_node,
            # Creating it: libcloud records only a failed insert in europe-west1-a.
            "_zones_europe_west1_a_instances": _gce_europe_insert,
            "_zones_europe_west1_a_operations_operation_launchprov_europe_insert": _reply(
                "gce", "zones_europe_west1_a_instances_post.json"
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
        if method == "PUT":  # created again
            deleted.discard(url)
        if url in deleted:
            gone = '{"error": {"code": "ResourceNotFound", "message": "not found"}}'
            return (404, gone, {}, "Not Found")
        return recorded.AzureMockHttp.__getattr__(self, vm)(method, url, body, headers)

    actions[vm] = machine
    # West US's sizes: the recorded East US ones (a second location, for a placement that
    # differs from launch_kwargs' location).
    sizes = (
        "_subscriptions_99999999_9999_9999_9999_999999999999_providers_Microsoft_Compute_"
        "locations_{}_vmSizes"
    )

    def westus_sizes(self, method, url, body, headers):
        return recorded.AzureMockHttp.__getattr__(self, sizes.format("eastus"))(
            method, url, body, headers
        )

    actions[sizes.format("westus")] = westus_sizes
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


def _cloudstack_mock():
    """libcloud's CloudStack recordings, with launchprov's added listZones reply: a second
    zone (Melbourne), so that a placement that reaches the wire differs from the default."""
    recorded = libcloud_test_module("test_cloudstack").CloudStackMockHttp

    class LaunchprovCloudStackMockHttp(recorded):
        def _cmd_listZones(self, **query):
            reply = (FIXTURES / "cloudstack" / "listZones.json").read_text()
            return (http.client.OK, reply, {}, "OK")

    return LaunchprovCloudStackMockHttp


def cloudstack(monkeypatch) -> None:
    from launchprov.providers.libcloud.profiles import PROFILES

    driver_class = PROFILES["cloudstack"].driver_class()
    _mock(monkeypatch, driver_class, _cloudstack_mock(), fixture_tag="default")


def _json(value) -> str:
    import json

    return json.dumps(value)


def _token_cloud(
    driver: str,
    *,
    token: str,
    location: str,
    key_name: str,
    placement: str,
    launch: dict[str, Any],
    alternative: str,
    **recorded,
) -> RecordedCloud:
    """A cloud of one API token (DigitalOcean, Vultr, Linode): create_node's location from
    launch_kwargs, and in every launch the key pair the recorded account has (the only one:
    given explicitly, it differs from the deployment's default)."""
    return RecordedCloud(
        driver=driver,
        settings={
            "launchprov.libcloud.key": token,
            "launchprov.libcloud.launch_kwargs": _json({"location": location}),
        },
        launch={**launch, "key_name": key_name},
        explicit={
            "placement": placement,
            "key_name": key_name,
            "fallback": [{"instance_type": alternative}],
        },
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
        explicit={"placement": "nova", "fallback": [{"instance_type": "2"}]},
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
        # Another zone than the driver's datacenter (us-central1-a), where launches go without.
        explicit={"placement": "europe-west1-a", "fallback": [{"instance_type": "g1-small"}]},
        on_the_wire={
            "ami": "debian-7-wheezy-v20131120",
            # Labels allow no ':': launchprov's own keys as launchprov-*.
            "client_token": {"launchprov-client-token": "matrix-token-1"},
        },
        node_on_the_wire="node-name",
        node_names={"placement": GCE_EUROPE_NODE},
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
        explicit={"placement": "westus", "fallback": [{"instance_type": "Standard_A2"}]},
        on_the_wire={
            "ami": {
                "publisher": "Canonical",
                "offer": "UbuntuServer",
                "sku": "16.04.0-LTS",
                "version": "latest",
            }
        },
        node_on_the_wire="test-node-1",
    ),
    "digitalocean": _token_cloud(
        "digitalocean",
        token="token",
        location="nyc1",
        key_name="test1",
        placement="sfo1",
        alternative="1gb",
        patch=digitalocean,
        known_id="3164444",
        known_state="running",
        known_fields={"instance_type": "s-1vcpu-1gb", "ami": "69463186"},
        launch={"ami": "119192817", "instance_type": "512mb"},
        on_the_wire={"key_name": [7717]},
    ),
    "vultr": _token_cloud(
        "vultr",
        token="foo",
        location="ams",
        key_name="tester",
        placement="ewr",
        alternative="vc2-1c-2gb",
        patch=vultr,
        known_id="123",
        known_state="running",
        known_fields={"instance_type": "vc2-1c-2gb", "ami": "477", "placement": "fra"},
        launch={"ami": "167", "instance_type": "vc2-1c-1gb"},
        on_the_wire={"key_name": ["123"]},
    ),
    "linode": _token_cloud(
        "linode",
        token="foo",
        location="us-east",
        key_name="My SSH Key",
        placement="us-west",
        alternative="g6-standard-1",
        patch=linode,
        known_id="22344420",
        known_state="running",
        known_fields={
            "instance_type": "g6-nanode-1",
            "ami": "linode/centos7",
            "placement": "eu-west",
        },
        launch={"ami": "linode/alpine3.10", "instance_type": "g6-nanode-1"},
        on_the_wire={
            "key_name": ["ssh-rsa AAAA_valid_public_ssh_key_123456785== user@their-computer"]
        },
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
        explicit={"placement": "Melbourne", "fallback": [{"instance_type": "70"}]},
        on_the_wire={"placement": "2"},  # its zone id
    ),
}


# -- the clouds' error replies ----------------------------------------------------------------
#
# libcloud records few error replies, and none of capacity or throttling. These are shaped as
# each cloud's API documents them (the source is beside each); :func:`wire` serves them in place
# of the recorded reply of the request they answer.


@dataclasses.dataclass(frozen=True)
class CloudFault:
    """An error reply of a cloud: what MockHttp answers (status, body, headers)."""

    status: int
    body: Any
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    #: True: it answers the first request after the create (the cloud's operation or job that
    #: the driver polls), not the create itself.
    after_create: bool = False

    def answer(self) -> tuple:
        import http.client

        text = self.body if isinstance(self.body, str) else _json(self.body)
        headers = {"content-type": "application/json", **self.headers}
        return (self.status, text, headers, http.client.responses.get(self.status, "Error"))


@dataclasses.dataclass(frozen=True)
class CreateCall:
    """A cloud's create request on the wire, and the size it asks for."""

    method: str
    #: A fragment of the create request's URL (of its path, or CloudStack's command).
    marks: str
    #: (url, body) -> the size (flavor, machine type, plan, ...) the request asks for.
    size: Callable[[str, str], str]

    def matches(self, method: str, url: str) -> bool:
        return method == self.method and self.marks in url


def _body_at(*path: str) -> Callable[[str, str], str]:
    def size(url: str, body: str) -> str:
        import json

        value: Any = json.loads(body)
        for key in path:
            value = value[key]
        return str(value).rstrip("/").rpartition("/")[2]

    return size


def _query(name: str) -> Callable[[str, str], str]:
    def size(url: str, body: str) -> str:
        from urllib.parse import parse_qs, urlparse

        return parse_qs(urlparse(url).query)[name][0]

    return size


#: Each recorded cloud's create request.
CREATE_CALLS: dict[str, CreateCall] = {
    "openstack": CreateCall("POST", "/servers", _body_at("server", "flavorRef")),
    "gce": CreateCall("POST", "/zones/us-central1-a/instances", _body_at("machineType")),
    "azure_arm": CreateCall(
        "PUT",
        "/virtualMachines/test-node-1?",
        _body_at("properties", "hardwareProfile", "vmSize"),
    ),
    "digitalocean": CreateCall("POST", "/v2/droplets", _body_at("size")),
    "vultr": CreateCall("POST", "/v2/instances", _body_at("plan")),
    "linode": CreateCall("POST", "/v4/linode/instances", _body_at("type")),
    "cloudstack": CreateCall("GET", "command=deployVirtualMachine", _query("serviceofferingid")),
}

#: A size each recorded catalog knows besides its launch's: a fallback alternative.
OTHER_SIZES = {
    "openstack": "3",
    "gce": "g1-small",
    "azure_arm": "Standard_A2",
    "digitalocean": "1gb",
    "vultr": "vc2-1c-2gb",
    "linode": "g6-standard-1",
    "cloudstack": "70",
}

_RETRY_AFTER = {"Retry-After": "7"}

#: Each cloud's reply when the offering is out of capacity.
CAPACITY_FAULTS: dict[str, CloudFault] = {
    # Nova's fault body (api-ref "Faults": {"<fault name>": {"code", "message"}}) with
    # NoValidHost's message, which nova gives the server's fault with code 500.
    "openstack": CloudFault(
        500,
        {
            "computeFault": {
                "code": 500,
                "message": "No valid host was found. There are not enough hosts available.",
            }
        },
    ),
    # GCE's insert operation, done with an error (compute#operation: status DONE, error.errors
    # [{code, message}], httpErrorStatusCode): the reply to the driver's poll of the operation.
    "gce": CloudFault(
        200,
        {
            "kind": "compute#operation",
            "id": "3681664092089171723",
            "name": "operation-zones_us-central1-a_instances_post",
            "zone": "https://www.googleapis.com/compute/v1/projects/project_name/zones/us-central1-a",
            "operationType": "insert",
            "targetLink": "https://www.googleapis.com/compute/v1/projects/project_name/zones/"
            "us-central1-a/instances/lcnode-000",
            "status": "DONE",
            "progress": 100,
            "httpErrorStatusCode": 503,
            "httpErrorMessage": "SERVICE UNAVAILABLE",
            "error": {
                "errors": [
                    {
                        "code": "ZONE_RESOURCE_POOL_EXHAUSTED",
                        "message": "The zone 'projects/project_name/zones/us-central1-a' does "
                        "not have enough resources available to fulfill the request.  Try a "
                        "different zone, or try again later.",
                    }
                ]
            },
            "selfLink": "https://www.googleapis.com/compute/v1/projects/project_name/zones/"
            "us-central1-a/operations/operation-zones_us-central1-a_instances_post",
        },
        after_create=True,
    ),
    # Azure Resource Manager's error body ({"error": {"code", "message"}}), 409 Conflict, with
    # the message of "Resolve errors for SKU not available".
    "azure_arm": CloudFault(
        409,
        {
            "error": {
                "code": "SkuNotAvailable",
                "message": "The requested size for resource '/subscriptions/99999999-9999-9999-"
                "9999-999999999999/resourceGroups/000000/providers/Microsoft.Compute/"
                "virtualMachines/test-node-1' is currently not available in location 'eastus' "
                "zones '' for subscription '99999999-9999-9999-9999-999999999999'. Please try "
                "another size or deploy to a different location or zones. See "
                "https://aka.ms/azureskunotavailable for details.",
            }
        },
    ),
    # DigitalOcean API v2's error body ({"id", "message", "request_id"}), 422.
    "digitalocean": CloudFault(
        422,
        {
            "id": "unprocessable_entity",
            "message": "Size is not available in this region.",
            "request_id": "4d9d8375-3c56-4925-a3e7-eb137fed17e9",
        },
    ),
    # CloudStack's queryAsyncJobResult of a failed deployVirtualMachine (jobstatus 2,
    # jobresultcode 530, jobresult {errorcode 533 INSUFFICIENT_CAPACITY_ERROR, errortext}).
    "cloudstack": CloudFault(
        200,
        {
            "queryasyncjobresultresponse": {
                "accountid": "02c9bf08-6f36-44b1-a57f-df0708f90de4",
                "userid": "6ef2b921-4ecf-4651-8188-f9868db73e0d",
                "cmd": "org.apache.cloudstack.api.command.user.vm.DeployVMCmd",
                "jobstatus": 2,
                "jobprocstatus": 0,
                "jobresultcode": 530,
                "jobresulttype": "object",
                "jobresult": {
                    "errorcode": 533,
                    "errortext": "Unable to create a deployment for VM[User|i-2-26-VM]",
                },
                "jobid": "17164",
            }
        },
        after_create=True,
    ),
}

#: Each cloud's reply when it throttles the caller.
THROTTLING_FAULTS: dict[str, CloudFault] = {
    # Nova's rate limits (the limits middleware): 413 overLimit, Retry-After.
    "openstack": CloudFault(
        413,
        {
            "overLimit": {
                "code": 413,
                "message": "This request was rate-limited.",
                "retryAfter": "7",
                "details": "Only 10 POST request(s) can be made to * every minute.",
            }
        },
        _RETRY_AFTER,
    ),
    # Google APIs' error body (error.errors[{domain, reason, message}], code, message).
    "gce": CloudFault(
        429,
        {
            "error": {
                "errors": [
                    {
                        "domain": "usageLimits",
                        "reason": "rateLimitExceeded",
                        "message": "Rate Limit Exceeded",
                    }
                ],
                "code": 429,
                "message": "Rate Limit Exceeded",
            }
        },
        _RETRY_AFTER,
    ),
    # "Throttling Resource Manager requests": 429, Retry-After.
    "azure_arm": CloudFault(
        429,
        {
            "error": {
                "code": "TooManyRequests",
                "message": "The request is being throttled as the limit has been reached for "
                "operation type - Write_1Min.",
            }
        },
        _RETRY_AFTER,
    ),
    "digitalocean": CloudFault(
        429,
        {"id": "too_many_requests", "message": "API Rate limit exceeded."},
        _RETRY_AFTER,
    ),
    # Vultr API v2's error body ({"error", "status"}).
    "vultr": CloudFault(429, {"error": "Rate limit reached", "status": 429}, _RETRY_AFTER),
    # Linode API v4's error body ({"errors": [{"reason"}]}).
    "linode": CloudFault(429, {"errors": [{"reason": "Too Many Requests"}]}, _RETRY_AFTER),
    # CloudStack's api.throttling: 429, errorcode 429, no Retry-After.
    "cloudstack": CloudFault(
        429,
        {
            "deployvirtualmachineresponse": {
                "uuidList": [],
                "errorcode": 429,
                "errortext": "There are too many api calls. Please try again later.",
            }
        },
    ),
}

#: Each cloud's reply when it refuses the credentials (where its driver does not say so).
AUTHENTICATION_FAULTS: dict[str, CloudFault] = {
    "vultr": CloudFault(401, {"error": "Invalid API token.", "status": 401}),  # Vultr API v2: 401
    "gce": CloudFault(
        401,
        {
            "error": {
                "errors": [
                    {
                        "domain": "global",
                        "reason": "authError",
                        "message": "Invalid Credentials",
                        "locationType": "header",
                        "location": "Authorization",
                    }
                ],
                "code": 401,
                "message": "Invalid Credentials",
            }
        },
    ),
    "azure_arm": CloudFault(
        401,
        {
            "error": {
                "code": "InvalidAuthenticationToken",
                "message": "The access token is invalid.",
            }
        },
    ),
}


def wire(monkeypatch, driver: str) -> Wire:
    """What the recorded ``driver`` is sent, and faults to answer in place of its recordings.

    Call after ``RECORDED[driver].patch(monkeypatch)``.
    """
    from launchprov.providers.libcloud.profiles import PROFILES

    connection = PROFILES[driver].driver_class().connectionCls
    seen = Wire(CREATE_CALLS[driver])
    recorded = connection.conn_class

    class Wired(recorded):
        def _get_request(self, method, url, body=None, headers=None):
            return seen.answer(
                method,
                url,
                body,
                lambda: super(Wired, self)._get_request(method, url, body, headers),
            )

    monkeypatch.setattr(connection, "conn_class", Wired)
    return seen


class Wire:
    """The requests a recorded cloud was sent (method, url, body), and faults to inject."""

    def __init__(self, create: CreateCall):
        self.create = create
        self.sent: list[tuple[str, str, str]] = []
        #: [when(method, url, after_create), reply, kept]: a reply not kept is used once.
        self._faults: list[tuple[Callable[[str, str, bool], bool], Callable[[], tuple], bool]] = []
        self._after_create = False

    def clear(self) -> None:
        """Forget what was sent and every fault still to answer."""
        self.sent.clear()
        self._faults.clear()
        self._after_create = False

    def fail_create(self, fault: CloudFault) -> None:
        """Answer the next create (or the request after it) with ``fault``."""
        if fault.after_create:
            self._faults.append((lambda method, url, after: after, fault.answer, False))
        else:
            matches = self.create.matches
            self._faults.append(
                (lambda method, url, after: matches(method, url), fault.answer, False)
            )

    def replace(self, when: Callable[[str, str], bool], reply: Callable[[], tuple]) -> None:
        """Answer every request ``when(method, url)`` holds for with ``reply()``."""
        self._faults.append((lambda method, url, after: when(method, url), reply, True))

    def answer(self, method, url, body, recorded) -> tuple:
        text = body.decode() if isinstance(body, bytes) else body or ""
        self.sent.append((method, url, text))
        after_create, self._after_create = self._after_create, self.create.matches(method, url)
        for index, (when, reply, kept) in enumerate(self._faults):
            if when(method, url, after_create):
                if not kept:
                    del self._faults[index]
                return reply()
        return recorded()

    def created_sizes(self) -> list[str]:
        """The size each create request on the wire asked for, in order."""
        return [
            self.create.size(url, body)
            for method, url, body in self.sent
            if self.create.matches(method, url)
        ]


# -- drivers served by the generic profile ------------------------------------------------------


def _scaleway_mock():
    """libcloud's Scaleway recordings routed by what a call sends: a POST to /servers is the
    recorded create, a POST to the recorded server's action is a power-on or a terminate."""
    import http.client

    recorded = libcloud_test_module("test_scaleway").ScalewayMockHttp

    class LaunchprovScalewayMockHttp(recorded):
        def _servers(self, method, url, body, headers):
            if method == "POST":
                return super()._servers_POST(method, url, body, headers)
            return super()._servers(method, url, body, headers)

        def _servers_741db378_action(self, method, url, body, headers):
            return (http.client.NO_CONTENT, "", {}, "No Content")

    return LaunchprovScalewayMockHttp


def _upcloud_mock():
    """libcloud's UpCloud recordings, with a server that stops when asked and is gone once
    deleted (destroy_node stops the server, polls its state, then deletes it)."""
    import http.client
    import json

    recorded = libcloud_test_module("test_upcloud").UpcloudMockHttp
    server = "00f8c525-7e62-4108-8115-3958df5b43dc"
    path = "_1_2_server_" + server.replace("-", "_")

    class LaunchprovUpcloudMockHttp(recorded):
        stopped: set[str] = set()
        deleted: set[str] = set()

        def _1_2_server(self, method, url, body, headers):
            status, text, head, reason = super()._1_2_server(method, url, body, headers)
            if method == "GET":
                listed = json.loads(text)
                listed["servers"]["server"] = [
                    s for s in listed["servers"]["server"] if s["uuid"] not in self.deleted
                ]
                text = json.dumps(listed)
            return status, text, head, reason

        def _server(self, method, url, body, headers):
            if method == "DELETE":
                self.deleted.add(server)
                return (http.client.NO_CONTENT, "", {}, "No Content")
            if server in self.deleted:
                return (http.client.NOT_FOUND, '{"error": {}}', {}, "Not Found")
            status, text, head, reason = getattr(recorded, path)(self, method, url, body, headers)
            reply = json.loads(text)
            if server in self.stopped:
                reply["server"]["state"] = "stopped"
            return status, json.dumps(reply), head, reason

        def _stop(self, method, url, body, headers):
            self.stopped.add(server)
            return self._server("GET", url, None, headers)

    setattr(LaunchprovUpcloudMockHttp, path, LaunchprovUpcloudMockHttp._server)
    setattr(LaunchprovUpcloudMockHttp, path + "_stop", LaunchprovUpcloudMockHttp._stop)
    return LaunchprovUpcloudMockHttp


def _generic_patch(driver: str, mock: Callable[[], type]):
    def patch(monkeypatch) -> None:
        from libcloud.compute.providers import get_driver

        _mock(monkeypatch, get_driver(driver), mock())

    return patch


@dataclasses.dataclass
class GenericCloud:
    """A driver without a profile of its own, on libcloud's recorded replies."""

    driver: str
    #: launchprov.* settings besides provider and driver.
    settings: dict[str, str]
    patch: Callable[[Any], None]
    #: A launch body the recording accepts, and the id its create answers.
    launch: dict[str, Any]
    launched_id: str
    #: The recorded node list_nodes answers, its launchprov state, and destroy's request
    #: (method, path) for it.
    known_id: str
    known_state: str
    destroy: tuple[str, str]


#: Drivers the generic profile serves, on libcloud's recordings (the matrix covers profiles).
GENERIC_RECORDED: dict[str, GenericCloud] = {
    "scaleway": GenericCloud(
        driver="scaleway",
        settings={"launchprov.libcloud.key": "access_key", "launchprov.libcloud.secret": "token"},
        patch=_generic_patch("scaleway", _scaleway_mock),
        launch={"ami": "12345", "instance_type": "X64-120GB"},
        launched_id="741db378",
        known_id="741db378",
        known_state="running",
        destroy=("POST", "/servers/741db378/action"),
    ),
    "upcloud": GenericCloud(
        driver="upcloud",
        settings={
            "launchprov.libcloud.key": "user",
            "launchprov.libcloud.secret": "secret",
            "launchprov.libcloud.launch_kwargs": _json({"location": "fi-hel1"}),
        },
        patch=_generic_patch("upcloud", _upcloud_mock),
        launch={"ami": "01000000-0000-4000-8000-000030060200", "instance_type": "1xCPU-1GB"},
        launched_id="00814aac-240f-4f08-9139-9697c9ffc0b7",
        known_id="00f8c525-7e62-4108-8115-3958df5b43dc",
        known_state="running",
        destroy=("DELETE", "/1.2/server/00f8c525-7e62-4108-8115-3958df5b43dc"),
    ),
    "equinixmetal": GenericCloud(
        driver="equinixmetal",
        settings={
            "launchprov.libcloud.key": "foo",
            "launchprov.libcloud.launch_kwargs": _json(
                {"location": "Dallas", "ex_project_id": "project-id"}
            ),
        },
        patch=_generic_patch(
            "equinixmetal",
            lambda: libcloud_test_module("test_equinixmetal").EquinixMetalMockHttp,
        ),
        launch={"ami": "ubuntu_14_04", "instance_type": "baremetal_1"},
        launched_id="9f7eafab-6f6b-4ae4-988d-c2a686367791",
        known_id="1e52437e-bbbb-cccc-dddd-74a9dfd3d3bb",
        known_state="running",
        destroy=("DELETE", "/metal/v1/devices/1e52437e-bbbb-cccc-dddd-74a9dfd3d3bb"),
    ),
}
