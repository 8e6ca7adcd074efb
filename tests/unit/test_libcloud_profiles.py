"""The libcloud package's parts, each alone: construction from settings, launch_kwargs, the
catalog and its TTL, reading nodes back, error translation, EC2's shared rules."""

from __future__ import annotations

import json
import types
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError
from libcloud.common.types import MalformedResponseError
from libcloud.compute.base import Node, NodeImage, NodeSize
from libcloud.compute.types import NodeState

from launchprov import settings as launchprov_settings
from launchprov.providers import ec2 as boto3_adapter
from launchprov.providers import ec2_common
from launchprov.providers.interface import InstanceQuery, ProviderError
from launchprov.providers.libcloud import LibcloudProvider
from launchprov.providers.libcloud.catalog import Catalog
from launchprov.providers.libcloud.drivers import EC2ErrorReply
from launchprov.providers.libcloud.errors import provider_error
from launchprov.providers.libcloud.instances import node_instance
from launchprov.providers.libcloud.profiles import GENERIC, PROFILES, profile_of
from launchprov.settings import ConfigurationError
from tests import recorded
from tests.support import launch_request


def settings(driver: str, **libcloud) -> dict:
    raw = {"launchprov.provider": "libcloud", "launchprov.libcloud.driver": driver}
    for name, value in libcloud.items():
        raw[f"launchprov.libcloud.{name}"] = value if isinstance(value, str) else json.dumps(value)
    return launchprov_settings.load(raw, environ={})


def build(driver: str, **libcloud) -> LibcloudProvider:
    return LibcloudProvider.from_settings(settings(driver, **libcloud))


# -- construction ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("driver", "libcloud", "named"),
    [
        # A required setting, a required constructor argument.
        ("digitalocean", {}, "launchprov.libcloud.key"),
        ("gce", {"key": "sa@example.org", "driver_kwargs": {"datacenter": "x"}}, "project"),
        ("azure_arm", {"key": "k", "secret": "s"}, "tenant_id"),
        ("openstack", {"key": "u", "secret": "p"}, "ex_force_auth_url"),
        # Settings the driver's constructor cannot take.
        ("digitalocean", {"key": "t", "secret": "s"}, "launchprov.libcloud.secret"),
        ("digitalocean", {"key": "t", "secure": "false"}, "launchprov.libcloud.secure"),
        ("digitalocean", {"key": "t", "host": "127.0.0.1"}, "launchprov.libcloud.host"),
        ("vultr", {"key": "t", "region": "ewr"}, "launchprov.libcloud.region"),
        ("dummy", {"host": "example.org"}, "launchprov.libcloud.host"),
        # A driver_kwargs entry that is a setting of its own (GCE's key is the secret).
        ("gce", {"key": "sa", "driver_kwargs": {"key": "x"}}, "launchprov.libcloud.secret"),
    ],
)
def test_misconfiguration_stops_startup_naming_it(driver, libcloud, named):
    with pytest.raises(ConfigurationError) as caught:
        build(driver, **libcloud)

    assert named in str(caught.value)


def test_a_timeout_reaches_drivers_whose_constructor_drops_it():
    provider = build("digitalocean", key="token", timeout="7.5")

    assert provider.driver(None).connection.timeout == 7.5


def test_key_and_secret_go_where_the_driver_wants_them(monkeypatch):
    recorded.gce(monkeypatch)
    provider = build(
        "gce",
        key="sa@example.org",
        secret="the-key",
        driver_kwargs={"project": "project_name", "datacenter": "us-central1-a", "auth_type": "IA"},
    )

    driver = provider.driver(None)
    assert (driver.key, driver.secret, driver.project) == (
        "sa@example.org",
        "the-key",
        "project_name",
    )


@pytest.mark.parametrize(
    ("launch_kwargs", "named"),
    [
        ({"colour": "blue"}, "colour"),  # create_node takes no such argument
        ({"ex_metadata": {}}, "tags"),  # the launch parameter tags sets it
        ({"name": "x"}, "name"),  # every launch gives it
    ],
)
def test_launch_kwargs_are_checked_against_create_node(launch_kwargs, named):
    with pytest.raises(ConfigurationError) as caught:
        build("dummy", launch_kwargs=launch_kwargs)

    assert "launchprov.libcloud.launch_kwargs" in str(caught.value)
    assert named in str(caught.value)


def recorded_azure(monkeypatch, without: tuple[str, ...] = (), **launch_kwargs) -> dict:
    """build()'s settings of the Azure driver on its recorded replies: the recording's
    launch_kwargs less ``without``, with ``launch_kwargs``."""
    recorded.azure_arm(monkeypatch)
    azure = recorded.RECORDED["azure_arm"].settings
    recording = json.loads(azure["launchprov.libcloud.launch_kwargs"])
    for name in without:
        del recording[name]
    return {
        "key": "k",
        "secret": "s",
        "driver_kwargs": azure["launchprov.libcloud.driver_kwargs"],
        "launch_kwargs": {**recording, **launch_kwargs},
    }


def test_a_required_create_node_argument_nothing_gives_stops_startup(monkeypatch):
    azure = recorded_azure(monkeypatch, without=("ex_resource_group",))

    with pytest.raises(ConfigurationError) as caught:
        build("azure_arm", **azure)

    assert "ex_resource_group" in str(caught.value)


def test_bad_auth_in_launch_kwargs_stops_startup(monkeypatch):
    azure = recorded_azure(monkeypatch, auth="hunter2")

    with pytest.raises(ConfigurationError, match=r"auth must be"):
        build("azure_arm", **azure)


def test_cloudstack_launches_running_vms(monkeypatch):
    recorded.cloudstack(monkeypatch)
    cloud = recorded.RECORDED["cloudstack"]
    provider = LibcloudProvider.from_settings(
        launchprov_settings.load(
            {
                "launchprov.provider": "libcloud",
                "launchprov.libcloud.driver": "cloudstack",
                **cloud.settings,
            },
            environ={},
        )
    )
    sent = []
    driver = provider.driver(None)
    original = driver.create_node
    monkeypatch.setattr(driver, "create_node", lambda **kw: sent.append(kw) or original(**kw))

    # No deployment default: what a plain launch on CloudStack carries.
    unset = {"key_name": None, "security_groups": None, "placement": None}
    provider.launch(launch_request(ami="576", instance_type="105", **unset))

    assert sent[0]["ex_start_vm"] is True  # libcloud's default, False, creates it stopped


def test_linode_gets_a_fresh_root_password_each_launch(monkeypatch):
    recorded.linode(monkeypatch)
    provider = build("linode", key="foo", launch_kwargs={"location": "us-east"})
    sent = []
    driver = provider.driver(None)
    original = driver.create_node
    monkeypatch.setattr(driver, "create_node", lambda **kw: sent.append(kw) or original(**kw))
    request = launch_request(
        ami="linode/alpine3.10", instance_type="g6-nanode-1", key_name="My SSH Key"
    )

    provider.launch(request)
    provider.launch(request)

    passwords = [call["root_pass"] for call in sent]
    assert len(set(passwords)) == 2 and all(len(word) >= 20 for word in passwords)


def test_the_generic_profile_serves_any_other_driver():
    profile = profile_of("kubevirt")

    assert (profile.name, profile.derived) == ("kubevirt", True)
    assert profile.driver_class().__name__ == "KubeVirtNodeDriver"
    assert set(profile.parameters) <= set(GENERIC.parameters)
    assert set(PROFILES) >= {
        "ec2",
        "openstack",
        "gce",
        "azure_arm",
        "digitalocean",
        "vultr",
        "linode",
        "cloudstack",
        "dummy",
    }


# -- the catalog ---------------------------------------------------------------------------------


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


def test_catalog_finds_by_id_then_name_and_remembers_for_its_ttl():
    listed = []
    images = [NodeImage("img-1", "debian", None), NodeImage("img-2", "img-1-but-a-name", None)]
    driver = types.SimpleNamespace(list_images=lambda: listed.append(1) or images)
    clock = Clock()
    catalog = Catalog("test", ttl=300, clock=clock)

    assert catalog.listed("image", driver, "r1", "img-1").id == "img-1"
    assert catalog.listed("image", driver, "r1", "debian").id == "img-1"
    assert len(listed) == 1
    catalog.listed("image", driver, "r2", "debian")  # another region: asked again
    assert len(listed) == 2
    clock.now += 301
    catalog.listed("image", driver, "r1", "debian")
    assert len(listed) == 3


def test_catalog_forgets_exactly_at_its_ttl():
    listed = []
    driver = types.SimpleNamespace(
        list_sizes=lambda: listed.append(1) or [NodeSize("s-1", "small", 1, 1, 1, 0, None)]
    )
    clock = Clock()
    catalog = Catalog("test", ttl=300, clock=clock)
    catalog.listed("size", driver, "r1", "small")
    clock.now += 299.999
    catalog.listed("size", driver, "r1", "small")
    assert len(listed) == 1
    clock.now = 1300.0  # the ttl's own second: asked again
    catalog.listed("size", driver, "r1", "s-1")
    assert len(listed) == 2


@pytest.mark.parametrize(
    ("kind", "code"),
    [("image", "ImageNotFound"), ("size", "SizeNotFound"), ("location", "LocationNotFound")],
)
def test_catalog_unknown_name_is_a_provider_error_not_retryable(kind, code):
    driver = types.SimpleNamespace(list_images=list, list_sizes=list, list_locations=list)

    with pytest.raises(ProviderError) as caught:
        Catalog("test", ttl=300).listed(kind, driver, None, "nowhere")

    assert (caught.value.code, caught.value.retryable) == (code, False)
    assert "nowhere" in caught.value.message


def test_catalog_failure_is_a_provider_error():
    def refuse():
        raise ConnectionRefusedError("refused")

    driver = types.SimpleNamespace(list_sizes=refuse)

    with pytest.raises(ProviderError) as caught:
        Catalog("test", ttl=300).listed("size", driver, None, "small")

    assert (caught.value.code, caught.value.retryable) == (ProviderError.UNREACHABLE, True)


# -- reading nodes back --------------------------------------------------------------------------


def node(**fields) -> Node:
    values = {
        "id": "n-1",
        "name": "n",
        "state": NodeState.RUNNING,
        "public_ips": [],
        "private_ips": [],
        "driver": None,
    }
    values.update(fields)
    return Node(**values)


def test_sizes_and_images_as_plain_strings_or_in_extra():
    from_strings = node(size="vc2-1c-1gb", image="477")
    from_extra = node(
        extra={
            "machineType": "https://www.googleapis.com/compute/v1/projects/p/zones/z/machineTypes/n1-standard-1",
            "image": "debian-7",
        }
    )

    gce = PROFILES["gce"].reading
    first = node_instance(from_strings, GENERIC.reading)
    second = node_instance(from_extra, gce)
    assert (first.instance_type, first.ami) == ("vc2-1c-1gb", "477")
    assert (second.instance_type, second.ami) == ("n1-standard-1", "debian-7")


def test_nothing_a_driver_returns_breaks_reading():
    odd = node(
        size=object(),
        image=42,
        extra={"flavorId": {"nested": True}, "metadata": ["not", "a", "dict"], "zone": 3.5},
        created_at="yesterday",
    )
    odd.extra["tags"] = None

    for profile in [*PROFILES.values(), GENERIC]:
        instance = node_instance(odd, profile.reading)
        assert instance.id == "n-1" and instance.state == "running"
        assert instance.launch_time is None


def test_launch_time_is_utc():
    moment = datetime(2026, 1, 2, 3, 4, 5)

    assert node_instance(node(created_at=moment), GENERIC.reading).launch_time == moment.replace(
        tzinfo=UTC
    )


# -- errors: whether a retry can help, per cause -------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, False), (200, False), (502, True), (503, True), (504, True), (429, True)],
)
def test_an_unparseable_reply_is_retryable_only_when_its_status_says_it_passes(status, retryable):
    error = provider_error(MalformedResponseError(f"HTTP {status} reply is not XML", body="<html>"))

    assert (error.code, error.retryable) == (ProviderError.MALFORMED_RESPONSE, retryable)


def test_an_unparseable_reply_without_a_status_is_not_retryable():
    error = provider_error(MalformedResponseError("Failed to parse JSON", body="{oops"))

    assert error.retryable is False


def test_a_bare_429_is_retryable_on_both_ec2_adapters():
    reply = {"Error": {"Code": "", "Message": ""}, "ResponseMetadata": {"HTTPStatusCode": 429}}

    assert boto3_adapter.provider_error(ClientError(reply, "RunInstances")).retryable is True
    assert provider_error(EC2ErrorReply(429, "HTTP429", "slow down")).retryable is True


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (499, False), (400, False)])
def test_a_code_of_its_own_is_retryable_on_both_ec2_adapters_when_the_server_failed(
    status, retryable
):
    reply = {
        "Error": {"Code": "SomethingBroke", "Message": "?"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }

    assert boto3_adapter.provider_error(ClientError(reply, "RunInstances")).retryable is retryable
    assert provider_error(EC2ErrorReply(status, "SomethingBroke", "?")).retryable is retryable


# -- EC2's rules, once -------------------------------------------------------------------------


def test_ec2_filters_page_sizes_and_tags_are_shared():
    query = InstanceQuery("us-east-1", ids=("i-1",), states=("running",), tags={"role": ("web",)})
    request = launch_request(
        ami="ami-12345678", instance_type="t2.micro", tags={"a": "1"}, system_tags={"a": "2"}
    )

    assert ec2_common.describe_filters(query) == {
        "tag:role": ["web"],
        "instance-id": ["i-1"],
        "instance-state-name": ["running"],
    }
    assert boto3_adapter.describe_filters(query) == [
        {"Name": name, "Values": values}
        for name, values in ec2_common.describe_filters(query).items()
    ]
    assert [ec2_common.page_size(n) for n in (1, 5, 100, 5000)] == [5, 5, 100, 1000]
    assert ec2_common.launch_tags(request) == {"a": "2"}  # launchprov's own win a clash


def test_a_key_name_the_cloud_does_not_know_is_said_before_any_node_is_created(monkeypatch):
    recorded.digitalocean(monkeypatch)
    provider = build("digitalocean", key="token", launch_kwargs={"location": "nyc1"})
    driver = provider.driver(None)
    monkeypatch.setattr(driver, "create_node", lambda **kw: pytest.fail("create_node called"))

    with pytest.raises(ProviderError) as caught:
        provider.launch(launch_request(ami="119192817", instance_type="512mb", key_name="nope"))

    assert (caught.value.code, caught.value.retryable) == ("KeyPairNotFound", False)
