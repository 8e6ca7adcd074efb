"""The libcloud adapter: the EC2 driver against a moto server, the dummy driver in memory."""

from __future__ import annotations

import ast
import base64
import contextlib
import dataclasses
import pathlib
import socket
import threading
import time
import types
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
import requests.exceptions
import urllib3.exceptions
from botocore.exceptions import ClientError
from libcloud.common.exceptions import BaseHTTPError
from libcloud.common.types import InvalidCredsError
from libcloud.compute.drivers.dummy import DummyNodeDriver
from libcloud.compute.types import NodeState
from zope.interface.verify import verifyObject

from launchprov import settings as launchprov_settings
from launchprov.providers import paging
from launchprov.providers.ec2_common import IMAGE_ID, INSTANCE_ID
from launchprov.providers.interface import (
    STATES,
    ActionNotSupported,
    InstanceNotFound,
    InstanceQuery,
    InvalidPageToken,
    InvalidState,
    IProvider,
    LaunchRequest,
    ProviderError,
    UnsupportedParameters,
)
from launchprov.providers.libcloud import LibcloudProvider
from launchprov.providers.libcloud.drivers import (
    UNNAMED,
    CloudlikeDummyNodeDriver,
    EC2ErrorReply,
    TolerantEC2Response,
    without_unnamed_tag,
)
from launchprov.providers.libcloud.ec2 import PARAMETERS as EC2_PARAMETERS
from launchprov.providers.libcloud.errors import PARTIAL_LAUNCH, provider_error
from launchprov.providers.libcloud.instances import NODE_STATES
from launchprov.providers.libcloud.profile import LaunchContext
from launchprov.providers.libcloud.profiles import GENERIC, profile_of
from launchprov.settings import ConfigurationError
from tests.support import launch_request

AMI = "ami-1e749f67"  # known to moto
REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
#: Every parameter a caller can set (system_tags are launchprov's own, never explicit).
#: Every launch parameter but the fallback (which the capacity fallback above any adapter
#: turns into launches of their own).
EVERY_FIELD = frozenset(f.name for f in dataclasses.fields(LaunchRequest)) - {
    "explicit",
    "system_tags",
    "fallback",
}


def load_settings(**libcloud) -> dict:
    """The parsed settings, with ``launchprov.libcloud.<name>`` = value for each keyword."""
    raw = {"launchprov.provider": "libcloud"}
    raw.update({f"launchprov.libcloud.{name}": value for name, value in libcloud.items()})
    return launchprov_settings.load(raw, environ={})


def ec2_settings(port: int, timeout: str = "5", **extra) -> dict:
    return load_settings(
        driver="ec2",
        key="testing",
        secret="testing",
        host="127.0.0.1",
        port=str(port),
        secure="false",
        timeout=timeout,
        **extra,
    )


def free_port() -> int:
    """A port nobody listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def record_requests(monkeypatch, provider: LibcloudProvider, region: str = REGION) -> list[dict]:
    """Record the query parameters of every request this thread's driver sends, on the wire."""
    connection = provider.driver(region).connection
    send = connection._retryable_request
    sent: list[dict] = []

    def recording(url, *args, **kwargs):
        sent.append(dict(parse_qsl(urlsplit(url).query, keep_blank_values=True)))
        return send(url, *args, **kwargs)

    monkeypatch.setattr(connection, "_retryable_request", recording)
    return sent


def actions(sent: list[dict]) -> list[str]:
    return [params["Action"] for params in sent]


def launch_on_the_wire(
    monkeypatch, provider: LibcloudProvider, request: LaunchRequest
) -> tuple[list[str], dict]:
    """Launch ``request``: the ids, and the query parameters of the one RunInstances sent."""
    sent = record_requests(monkeypatch, provider)
    ids = provider.launch(request)
    (run,) = [params for params in sent if params.get("Action") == "RunInstances"]
    return ids, run


# -- a moto server ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_port():
    """A moto server on 127.0.0.1 validating AMIs, types and key pairs as EC2 does."""
    import moto.settings
    from moto.server import ThreadedMotoServer

    flags = (
        "ENABLE_AMI_VALIDATION",
        "EC2_ENABLE_INSTANCE_TYPE_VALIDATION",
        "ENABLE_KEYPAIR_VALIDATION",
    )
    saved = {flag: getattr(moto.settings, flag) for flag in flags}
    for flag in flags:  # the server runs in this process: moto reads these at each call
        setattr(moto.settings, flag, True)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        _, port = server.get_host_and_port()
        client = boto3.client(
            "ec2", region_name=REGION, endpoint_url=f"http://127.0.0.1:{port}", **CREDENTIALS
        )
        # moto's backends are global to the process: another test's in-process moto may
        # have created these already.
        with contextlib.suppress(ClientError):
            client.create_key_pair(KeyName="scalacity_dev1")
        with contextlib.suppress(ClientError):
            client.create_security_group(GroupName="SSH", Description="launchprov tests")
        client.describe_key_pairs(KeyNames=["scalacity_dev1"])  # raises when missing
        client.describe_security_groups(GroupNames=["SSH"])
        yield port
    finally:
        server.stop()
        for flag, value in saved.items():
            setattr(moto.settings, flag, value)


@pytest.fixture(scope="module")
def ec2_client(moto_port):
    return boto3.client(
        "ec2", region_name=REGION, endpoint_url=f"http://127.0.0.1:{moto_port}", **CREDENTIALS
    )


@pytest.fixture
def ec2_provider(moto_port) -> LibcloudProvider:
    return LibcloudProvider.from_settings(ec2_settings(moto_port))


def describe(ec2_client, ids: list[str]) -> dict[str, dict]:
    reply = ec2_client.describe_instances(InstanceIds=ids)
    instances = [i for reservation in reply["Reservations"] for i in reservation["Instances"]]
    return {instance["InstanceId"]: instance for instance in instances}


def test_ec2_launch_sends_every_parameter(ec2_provider, ec2_client, monkeypatch):
    request = launch_request(
        ami=AMI,
        instance_type="t2.micro",
        key_name="scalacity_dev1",
        security_groups=("SSH",),
        user_data="#!/bin/sh\necho launched\n",
        placement="us-east-1c",
        instance_initiated_shutdown_behavior="terminate",
        tags={"team": "infra"},
        explicit=EVERY_FIELD,
    )

    ids, run = launch_on_the_wire(monkeypatch, ec2_provider, request)

    assert len(ids) == 1 and all(isinstance(i, str) and i.startswith("i-") for i in ids)
    instance = describe(ec2_client, ids)[ids[0]]
    assert instance["InstanceType"] == "t2.micro"
    assert instance["ImageId"] == AMI
    assert instance["KeyName"] == "scalacity_dev1"
    assert [group["GroupName"] for group in instance["SecurityGroups"]] == ["SSH"]
    assert instance["Placement"]["AvailabilityZone"] == "us-east-1c"
    assert instance["Tags"] == [{"Key": "team", "Value": "infra"}]
    shutdown = ec2_client.describe_instance_attribute(
        InstanceId=ids[0], Attribute="instanceInitiatedShutdownBehavior"
    )
    assert shutdown["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
    user_data = ec2_client.describe_instance_attribute(InstanceId=ids[0], Attribute="userData")
    assert base64.b64decode(user_data["UserData"]["Value"]).decode() == request.user_data
    assert run["Placement.AvailabilityZone"] == "us-east-1c"
    assert "EbsOptimized" not in run


def test_ec2_launch_stop_on_shutdown_placement_group_and_ebs(ec2_provider, ec2_client, monkeypatch):
    request = launch_request(
        ami=AMI,
        instance_type="t2.micro",
        placement_group="launchprov-pg",
        instance_initiated_shutdown_behavior="stop",
        ebs_optimized=True,
        explicit=frozenset(
            {"ami", "instance_type", "placement_group", "ebs_optimized"}
            | {"instance_initiated_shutdown_behavior"}
        ),
    )

    ids, run = launch_on_the_wire(monkeypatch, ec2_provider, request)

    assert "InstanceInitiatedShutdownBehavior" not in run  # EC2's default is stop
    assert run["Placement.GroupName"] == "launchprov-pg"  # moto does not keep it: check the wire
    assert run["EbsOptimized"] == "true"
    assert describe(ec2_client, ids)[ids[0]]["EbsOptimized"] is True
    shutdown = ec2_client.describe_instance_attribute(
        InstanceId=ids[0], Attribute="instanceInitiatedShutdownBehavior"
    )
    assert shutdown["InstanceInitiatedShutdownBehavior"]["Value"] == "stop"


def test_ec2_launch_sends_min_and_max_count(ec2_provider, ec2_client, monkeypatch):
    request = launch_request(
        ami=AMI,
        instance_type="t2.micro",
        min_count=2,
        max_count=3,
        explicit=frozenset({"ami", "instance_type", "min_count", "max_count"}),
    )

    ids, run = launch_on_the_wire(monkeypatch, ec2_provider, request)

    assert (run["MinCount"], run["MaxCount"]) == ("2", "3")
    assert 2 <= len(ids) <= 3
    assert len(set(ids)) == len(ids)
    assert set(describe(ec2_client, ids)) == set(ids)


def test_ec2_unknown_ami_is_an_ec2_error(ec2_provider):
    request = launch_request(ami="ami-12345678", instance_type="t2.micro")

    with pytest.raises(ProviderError) as caught:
        ec2_provider.launch(request)

    assert caught.value.provider == "libcloud"
    assert caught.value.code == "InvalidAMIID.NotFound"
    assert "ami-12345678" in caught.value.message
    assert caught.value.retryable is False


def test_ec2_html_error_page_is_a_short_malformed_response(ec2_provider):
    # moto answers a RunInstances naming an unknown security group with an HTML 500 page.
    request = launch_request(ami=AMI, instance_type="t2.micro", security_groups=("nowhere",))

    with pytest.raises(ProviderError) as caught:
        ec2_provider.launch(request)

    assert caught.value.code == ProviderError.MALFORMED_RESPONSE
    # A server error that repeats: retrying cannot help (see launchprov.providers.libcloud.errors).
    assert caught.value.retryable is False
    assert caught.value.message
    assert "\n" not in caught.value.message and len(caught.value.message) < 300
    assert "<html" not in caught.value.message.lower()


def test_ec2_security_group_id_is_refused_before_any_call(ec2_provider, monkeypatch):
    sent = record_requests(monkeypatch, ec2_provider)
    request = launch_request(
        ami=AMI,
        instance_type="t2.micro",
        security_groups=("SSH", "sg-0123456789abcdef0"),
        explicit=frozenset({"ami", "instance_type", "security_groups"}),
    )

    with pytest.raises(UnsupportedParameters) as caught:
        ec2_provider.launch(request)

    assert set(caught.value.reasons) == {"security_groups"}
    assert caught.value.provider == "libcloud"
    assert sent == []


def test_ec2_region_unknown_to_libcloud_is_refused(ec2_provider):
    request = launch_request(
        ami=AMI, instance_type="t2.micro", placement="xx-nowhere-1a", explicit=frozenset({"ami"})
    )

    with pytest.raises(UnsupportedParameters) as caught:
        ec2_provider.launch(request)

    assert set(caught.value.reasons) == {"placement"}


def test_ec2_refused_connection_is_unreachable():
    provider = LibcloudProvider.from_settings(ec2_settings(free_port()))

    with pytest.raises(ProviderError) as caught:
        provider.launch(launch_request(ami=AMI, instance_type="t2.micro", user_data="secret"))

    assert caught.value.code == ProviderError.UNREACHABLE
    assert caught.value.retryable is True
    # requests' own message repeats the URL, with every parameter: not in an error body.
    assert "RunInstances" not in caught.value.message
    assert "refused" in caught.value.message.lower()


@pytest.fixture
def silent_port():
    """A port whose connections are accepted by the kernel and never answered."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_ec2_endpoint_that_never_answers_is_a_timeout(silent_port):
    provider = LibcloudProvider.from_settings(ec2_settings(silent_port, timeout="0.5"))

    with pytest.raises(ProviderError) as caught:
        provider.launch(launch_request(ami=AMI, instance_type="t2.micro"))

    assert caught.value.code == ProviderError.TIMEOUT
    assert caught.value.retryable is True
    assert "timed out" in caught.value.message


@pytest.fixture
def slamming_port():
    """A port that accepts each connection and closes it at once; yields (port, accepted)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[int] = []
    stopping = threading.Event()

    def serve():
        while True:
            connection, _ = listener.accept()
            if stopping.is_set():
                connection.close()
                return
            accepted.append(1)  # counted before the client can see the connection close
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        stopping.set()
        socket.create_connection(listener.getsockname()).close()  # wakes accept()
        thread.join()
        listener.close()


def test_ec2_requests_are_never_retried(slamming_port, monkeypatch):
    # With this variable libcloud would retry a dropped connection for `timeout` seconds,
    # once a second: three attempts here.
    monkeypatch.setenv("LIBCLOUD_RETRY_FAILED_HTTP_REQUESTS", "1")
    port, accepted = slamming_port
    provider = LibcloudProvider.from_settings(ec2_settings(port, timeout="3"))

    with pytest.raises(ProviderError) as caught:
        provider.launch(launch_request(ami=AMI, instance_type="t2.micro"))

    assert caught.value.code == ProviderError.UNREACHABLE
    assert len(accepted) == 1


def test_ec2_driver_per_thread_and_per_region(ec2_provider):
    mine = ec2_provider.driver(REGION)
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(ec2_provider.driver(REGION)))
    thread.start()
    thread.join()

    assert ec2_provider.driver(REGION) is mine
    assert theirs[0] is not mine
    assert theirs[0].connection is not mine.connection
    west = ec2_provider.driver("us-west-2")
    assert west is not mine and west.region_name == "us-west-2"


def test_ec2_driver_configuration(moto_port):
    driver = LibcloudProvider.from_settings(ec2_settings(moto_port, timeout="7")).driver(REGION)

    assert driver.signature_version == "4"
    assert driver.connection.timeout == 7
    assert (driver.connection.host, driver.connection.port) == ("127.0.0.1", moto_port)
    assert driver.connection.secure == 0


def test_ec2_driver_kwargs_reach_the_driver(moto_port):
    settings = ec2_settings(moto_port, driver_kwargs='{"signature_version": "2"}')

    driver = LibcloudProvider.from_settings(settings).driver(REGION)

    assert driver.signature_version == "2"


def test_ec2_image_id_pattern(ec2_provider):
    assert ec2_provider.image_id_pattern is IMAGE_ID


def test_ec2_honours_every_parameter():
    assert set(EC2_PARAMETERS) == EVERY_FIELD


# -- EC2: tags --------------------------------------------------------------------------------


def tagged(**tags) -> LaunchRequest:
    """A t2.micro launch request with ``tags``."""
    return launch_request(ami=AMI, instance_type="t2.micro", tags=tags)


def tag_params(run: dict) -> dict[str, str]:
    return {key: value for key, value in run.items() if key.startswith("TagSpecification")}


def test_ec2_launch_without_tags_sends_no_tag(ec2_provider, ec2_client, monkeypatch):
    (instance_id,), run = launch_on_the_wire(monkeypatch, ec2_provider, tagged())

    assert tag_params(run) == {}
    assert describe(ec2_client, [instance_id])[instance_id].get("Tags", []) == []
    assert ec2_provider.describe(instance_id, REGION).tags == {}


def test_ec2_launch_carries_exactly_the_callers_tags(ec2_provider, ec2_client, monkeypatch):
    (instance_id,), run = launch_on_the_wire(
        monkeypatch, ec2_provider, tagged(role="web", team="infra")
    )

    assert tag_params(run) == {
        "TagSpecification.1.ResourceType": "instance",
        "TagSpecification.1.Tag.1.Key": "role",
        "TagSpecification.1.Tag.1.Value": "web",
        "TagSpecification.1.Tag.2.Key": "team",
        "TagSpecification.1.Tag.2.Value": "infra",
    }
    tags = describe(ec2_client, [instance_id])[instance_id]["Tags"]
    assert {tag["Key"]: tag["Value"] for tag in tags} == {"role": "web", "team": "infra"}
    assert len(tags) == 2
    assert ec2_provider.describe(instance_id, REGION).tags == {"role": "web", "team": "infra"}


def test_ec2_launch_sends_the_callers_name_tag(ec2_provider, ec2_client):
    (instance_id,) = ec2_provider.launch(tagged(Name="web-1", role="web"))

    tags = describe(ec2_client, [instance_id])[instance_id]["Tags"]
    assert sorted((tag["Key"], tag["Value"]) for tag in tags) == [
        ("Name", "web-1"),
        ("role", "web"),
    ]
    assert ec2_provider.describe(instance_id, REGION).tags == {"Name": "web-1", "role": "web"}


def test_ec2_create_node_without_name_leaks_no_sentinel(ec2_provider):
    driver = ec2_provider.driver(REGION)
    request = launch_request(ami=AMI, instance_type="t2.micro", min_count=2, max_count=2)
    arguments = {
        mapped.argument: mapped.convert(LaunchContext(request, driver, None))
        for mapped in EC2_PARAMETERS.values()
        if mapped.argument is not None  # a lease goes among launchprov's own tags
    }

    nodes = driver.create_node(**{**arguments, "ex_metadata": {"role": "web"}})

    assert len(nodes) == 2
    for node in nodes:
        assert node.name == node.id
        assert node.extra["tags"] == {"role": "web"}
        assert UNNAMED not in repr(node.__dict__)


def spec(*pairs) -> dict[str, str]:
    """RunInstances tag parameters as libcloud writes them, for (key, value) pairs."""
    params = {"Action": "RunInstances", "TagSpecification.1.ResourceType": "instance"}
    for number, (key, value) in enumerate(pairs, start=1):
        params[f"TagSpecification.1.Tag.{number}.Key"] = key
        params[f"TagSpecification.1.Tag.{number}.Value"] = value
    return params


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (spec(("Name", UNNAMED)), {"Action": "RunInstances"}),
        (spec(("Name", UNNAMED), ("a", "1"), ("b", "2")), spec(("a", "1"), ("b", "2"))),
        (spec(("a", "1"), ("Name", UNNAMED), ("b", "2")), spec(("a", "1"), ("b", "2"))),
        (spec(("Name", "mine"), ("a", "1")), spec(("Name", "mine"), ("a", "1"))),
        ({"Action": "RunInstances"}, {"Action": "RunInstances"}),
    ],
    ids=["only-the-sentinel", "sentinel-first", "sentinel-between", "a-real-name", "no-tags"],
)
def test_without_unnamed_tag(params, expected):
    assert without_unnamed_tag(params) == expected


def test_ec2_tags_are_honoured_and_other_drivers_refuse_them():
    assert EC2_PARAMETERS["tags"].argument == "ex_metadata"
    assert "tags" not in GENERIC.parameters


# -- EC2: describe and list -------------------------------------------------------------------


def test_ec2_describe_gives_every_field(ec2_provider, ec2_client):
    request = launch_request(
        ami=AMI,
        instance_type="t2.micro",
        key_name="scalacity_dev1",
        security_groups=("SSH",),
        placement="us-east-1c",
        tags={"role": "web"},
    )
    (instance_id,) = ec2_provider.launch(request)

    instance = ec2_provider.describe(instance_id, REGION)

    seen = describe(ec2_client, [instance_id])[instance_id]
    assert instance.id == instance_id
    assert instance.state in {"pending", "running"}
    assert instance.state == seen["State"]["Name"]
    assert (instance.instance_type, instance.ami) == ("t2.micro", AMI)
    assert instance.placement == "us-east-1c"
    assert instance.key_name == "scalacity_dev1"
    assert instance.security_groups == ("SSH",)
    assert instance.private_ip == seen["PrivateIpAddress"]
    assert instance.public_ip == seen["PublicIpAddress"]
    assert instance.private_dns == seen["PrivateDnsName"]
    assert instance.public_dns == seen["PublicDnsName"]
    assert all(
        isinstance(value, str)
        for value in (instance.private_ip, instance.public_ip, instance.private_dns)
    )
    assert instance.launch_time == seen["LaunchTime"]
    assert instance.launch_time.tzinfo is UTC
    assert instance.tags == {"role": "web"}


def test_ec2_describe_unknown_id_is_not_found(ec2_provider):
    with pytest.raises(InstanceNotFound) as caught:
        ec2_provider.describe("i-0123456789abcdef0", REGION)

    assert (caught.value.provider, caught.value.instance_id) == ("libcloud", "i-0123456789abcdef0")


def test_ec2_describe_in_a_region_libcloud_does_not_know_is_refused(ec2_provider, monkeypatch):
    sent = record_requests(monkeypatch, ec2_provider)

    with pytest.raises(UnsupportedParameters) as caught:
        ec2_provider.describe("i-0123456789abcdef0", "xx-nowhere-1")

    assert set(caught.value.reasons) == {"region"}
    assert sent == []


def test_ec2_describe_does_not_call_describe_addresses(ec2_provider, monkeypatch):
    (instance_id,) = ec2_provider.launch(tagged())
    sent = record_requests(monkeypatch, ec2_provider)

    ec2_provider.describe(instance_id, REGION)

    assert actions(sent) == ["DescribeInstances"]


def launch_tagged(provider, count: int = 1, **tags) -> list[str]:
    """Launch ``count`` instances in one reservation (one RunInstances), tagged ``tags``."""
    request = launch_request(
        ami=AMI, instance_type="t2.micro", min_count=count, max_count=count, tags=tags
    )
    return provider.launch(request)


def listed(provider, **query) -> list[str]:
    """The ids of a one-page listing, which is in id order."""
    page = provider.list_instances(InstanceQuery(REGION, **query))
    assert page.next_token is None
    ids = [instance.id for instance in page.instances]
    assert ids == sorted(ids)
    return ids


def test_ec2_list_by_id(ec2_provider):
    ids = launch_tagged(ec2_provider, 3, run=uuid.uuid4().hex)

    assert sorted(listed(ec2_provider, ids=(ids[2], ids[0]))) == sorted([ids[0], ids[2]])


def test_ec2_list_by_tag_and_across_filters(ec2_provider):
    run = uuid.uuid4().hex
    (web,) = launch_tagged(ec2_provider, run=run, role="web")
    (db,) = launch_tagged(ec2_provider, run=run, role="db")

    assert listed(ec2_provider, tags={"run": (run,)}) == sorted([web, db])
    assert listed(ec2_provider, tags={"run": (run,), "role": ("web",)}) == [web]
    assert listed(ec2_provider, tags={"run": (run,), "role": ("web", "db")}) == sorted([web, db])
    assert listed(ec2_provider, ids=(web, db), tags={"role": ("db",)}) == [db]
    assert listed(ec2_provider, ids=(web,), tags={"role": ("db",)}) == []


def test_ec2_list_by_state(ec2_provider):
    run = uuid.uuid4().hex
    (kept,) = launch_tagged(ec2_provider, run=run)
    (stopped,) = launch_tagged(ec2_provider, run=run)
    ec2_provider.stop(stopped, REGION)
    by_run = {"run": (run,)}

    assert listed(ec2_provider, tags=by_run, states=("running", "pending")) == [kept]
    assert listed(ec2_provider, tags=by_run, states=("stopped", "stopping")) == [stopped]
    assert listed(ec2_provider, tags=by_run, states=("terminated",)) == []
    assert listed(ec2_provider, tags=by_run, states=("running", "stopped")) == sorted(
        [kept, stopped]
    )


def read_every_page(provider, limit: int, **query) -> list[list[str]]:
    """The ids of every page of a listing, following ``next`` to the end."""
    pages, token = [], None
    while True:
        page = provider.list_instances(
            InstanceQuery(REGION, limit=limit, page_token=token, **query)
        )
        pages.append([instance.id for instance in page.instances])
        token = page.next_token
        if token is None:
            return pages
        assert len(pages) < 50, "the listing never ends"


@pytest.fixture(scope="module")
def hundred_and_twenty(moto_port) -> tuple[str, list[str]]:
    """120 instances launched at once (one reservation), tagged run=<unique>: (run, ids)."""
    provider = LibcloudProvider.from_settings(ec2_settings(moto_port))
    run = uuid.uuid4().hex
    ids = launch_tagged(provider, 120, run=run)
    assert len(ids) == 120
    return run, ids


@pytest.mark.parametrize(("limit", "sizes"), [(50, [50, 50, 20]), (100, [100, 20])])
def test_ec2_list_pages_over_120_instances(ec2_provider, hundred_and_twenty, limit, sizes):
    run, ids = hundred_and_twenty

    pages = read_every_page(ec2_provider, limit, tags={"run": (run,)})

    assert [len(page) for page in pages] == sizes
    every = [instance_id for page in pages for instance_id in page]
    assert len(every) == len(set(every)) == 120
    assert set(every) == set(ids)


def test_ec2_list_follows_ec2_pages(ec2_provider, monkeypatch):
    # Seven reservations, read two instances at a time, tokens carrying 2 ids: EC2 pages of
    # MaxResults 5 (its least) are cut, each in id order; the rest of a cut page is read by
    # its ids (an instance-id filter, not InstanceId.N), and the second EC2 page is fetched
    # with EC2's NextToken.
    monkeypatch.setattr(paging, "CARRIED_IDS", 2)
    run = uuid.uuid4().hex
    ids = [launch_tagged(ec2_provider, run=run)[0] for _ in range(7)]
    sent = record_requests(monkeypatch, ec2_provider)

    pages = read_every_page(ec2_provider, 2, tags={"run": (run,)})

    every = [instance_id for page in pages for instance_id in page]
    assert len(every) == len(set(every)) == 7
    assert every[:5] == sorted(ids[:5]) and sorted(every[5:]) == sorted(ids[5:])
    describes = [params for params in sent if params["Action"] == "DescribeInstances"]
    by_page = [params for params in describes if "Filter.2.Name" not in params]
    by_id = [params for params in describes if "Filter.2.Name" in params]
    assert {params["MaxResults"] for params in by_page} == {"5"}
    assert any("NextToken" in params for params in by_page)
    assert by_id and all(params["Filter.1.Name"] == "instance-id" for params in by_id)
    assert all("InstanceId.1" not in params for params in describes)


def test_ec2_invalid_page_token(ec2_provider):
    with pytest.raises(InvalidPageToken):
        ec2_provider.list_instances(InstanceQuery(REGION, page_token="not-a-token"))


# -- EC2: the life of an instance -------------------------------------------------------------


def test_ec2_stop_start_reboot_terminate(ec2_provider, ec2_client, monkeypatch):
    (instance_id,) = ec2_provider.launch(tagged())
    sent = record_requests(monkeypatch, ec2_provider)

    # moto changes state at once; EC2 would pass through stopping, pending, shutting-down.
    stopped = ec2_provider.stop(instance_id, REGION)
    assert stopped.id == instance_id
    assert stopped.state in {"stopping", "stopped"}
    assert ec2_provider.start(instance_id, REGION).state in {"pending", "running"}
    assert ec2_provider.reboot(instance_id, REGION).state in {"pending", "running"}
    terminated = ec2_provider.terminate(instance_id, REGION)
    assert terminated.state in {"shutting-down", "terminated"}

    calls = [name for name in actions(sent) if name != "DescribeInstances"]
    assert calls == ["StopInstances", "StartInstances", "RebootInstances", "TerminateInstances"]
    seen = describe(ec2_client, [instance_id])[instance_id]
    assert seen["State"]["Name"] == terminated.state


def test_ec2_terminate_twice_makes_one_call(ec2_provider, monkeypatch):
    (instance_id,) = ec2_provider.launch(tagged())
    ec2_provider.terminate(instance_id, REGION)
    assert ec2_provider.describe(instance_id, REGION).state == "terminated"  # moto: at once
    sent = record_requests(monkeypatch, ec2_provider)

    again = ec2_provider.terminate(instance_id, REGION)

    assert (again.id, again.state) == (instance_id, "terminated")
    assert "TerminateInstances" not in actions(sent)


@pytest.mark.parametrize(
    ("action", "call"),
    [("start", "StartInstances"), ("stop", "StopInstances"), ("reboot", "RebootInstances")],
)
def test_ec2_action_on_a_terminated_instance_is_refused_before_any_call(
    ec2_provider, monkeypatch, action, call
):
    (instance_id,) = ec2_provider.launch(tagged())
    ec2_provider.terminate(instance_id, REGION)
    sent = record_requests(monkeypatch, ec2_provider)

    with pytest.raises(InvalidState) as caught:
        getattr(ec2_provider, action)(instance_id, REGION)

    assert (caught.value.instance_id, caught.value.action) == (instance_id, action)
    assert "terminated" in caught.value.message
    assert call not in actions(sent)
    assert ec2_provider.describe(instance_id, REGION).state == "terminated"


def test_ec2_action_on_an_unknown_instance_is_not_found(ec2_provider, monkeypatch):
    sent = record_requests(monkeypatch, ec2_provider)

    with pytest.raises(InstanceNotFound):
        ec2_provider.stop("i-0123456789abcdef0", REGION)

    # The batched describe did not return it, and it is asked once more alone before the 404.
    assert actions(sent) == ["DescribeInstances", "DescribeInstances"]


def answer(monkeypatch, provider, call: str, *, body: str | None = None, error=None) -> None:
    """Answer this thread's driver's ``call`` requests with a 200 ``body`` or ``error``."""
    connection = provider.driver(REGION).connection
    send = connection.request

    def answering(path, params=None, *args, **kwargs):
        if (params or {}).get("Action") != call:
            return send(path, params, *args, **kwargs)
        if error is not None:
            raise error
        return parse_reply(200, body)

    monkeypatch.setattr(connection, "request", answering)


MOTO_NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15"


def test_ec2_reboot_reply_without_return_is_success(ec2_provider, monkeypatch):
    # moto's RebootInstances reply has no <return>; libcloud's reboot_node reads it as False.
    (instance_id,) = ec2_provider.launch(tagged())
    body = f'<RebootInstancesResponse xmlns="{MOTO_NAMESPACE}"><requestId>r</requestId>'
    answer(monkeypatch, ec2_provider, "RebootInstances", body=body + "</RebootInstancesResponse>")

    assert ec2_provider.reboot(instance_id, REGION).state == "running"


def test_ec2_reboot_return_false_is_refused(ec2_provider, monkeypatch):
    (instance_id,) = ec2_provider.launch(tagged())
    body = f'<RebootInstancesResponse xmlns="{MOTO_NAMESPACE}"><return>false</return>'
    answer(monkeypatch, ec2_provider, "RebootInstances", body=body + "</RebootInstancesResponse>")

    with pytest.raises(ProviderError) as caught:
        ec2_provider.reboot(instance_id, REGION)

    assert (caught.value.code, caught.value.retryable) == ("ActionRefused", False)
    assert "RebootInstances" in caught.value.message and instance_id in caught.value.message


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (EC2ErrorReply(400, "IncorrectInstanceState", "it is pending"), InvalidState),
        (EC2ErrorReply(400, "IncorrectState", "it is busy"), InvalidState),
        (EC2ErrorReply(400, "InvalidInstanceID.NotFound", "gone"), InstanceNotFound),
        (EC2ErrorReply(503, "RequestLimitExceeded", "slow down"), ProviderError),
        (requests.exceptions.ConnectionError("lost"), ProviderError),
    ],
    ids=["IncorrectInstanceState", "IncorrectState", "NotFound", "throttled", "connection"],
)
def test_ec2_stop_errors(ec2_provider, monkeypatch, error, expected):
    (instance_id,) = ec2_provider.launch(tagged())
    answer(monkeypatch, ec2_provider, "StopInstances", error=error)

    with pytest.raises(expected) as caught:
        ec2_provider.stop(instance_id, REGION)

    if expected is ProviderError:
        assert caught.value.retryable is True
    else:
        assert caught.value.instance_id == instance_id
    if expected is InvalidState:
        assert caught.value.action == "stop" and caught.value.message == error.message


def test_ec2_ping(ec2_provider):
    assert ec2_provider.ping(2) is None


def test_ec2_ping_of_an_endpoint_that_never_answers_times_out_in_its_own_time(silent_port):
    provider = LibcloudProvider.from_settings(ec2_settings(silent_port, timeout="30"))
    started = time.monotonic()

    with pytest.raises(ProviderError) as caught:
        provider.ping(0.5)

    assert caught.value.code == ProviderError.TIMEOUT
    assert time.monotonic() - started < 10  # the ping's time-out, not the launch setting's
    assert provider.driver(REGION).connection.timeout == 30


def test_ec2_ping_of_a_refused_connection_is_unreachable():
    provider = LibcloudProvider.from_settings(ec2_settings(free_port()))

    with pytest.raises(ProviderError) as caught:
        provider.ping(2)

    assert caught.value.code == ProviderError.UNREACHABLE


def test_ec2_instance_id_pattern(ec2_provider):
    assert ec2_provider.instance_id_pattern is INSTANCE_ID


# -- the EC2 reply fix, without a server --------------------------------------------------------


def parse_reply(status: int, body: str) -> TolerantEC2Response:
    http_reply = types.SimpleNamespace(
        headers={}, reason="", status_code=status, request=None, iter_content=None, text=body
    )
    connection = types.SimpleNamespace(driver=None, context={})
    return TolerantEC2Response(http_reply, connection)


RUN_REPLY = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<RunInstancesResponse xmlns="{namespace}"><instancesSet><item>'
    "<instanceId>i-0123456789abcdef0</instanceId></item></instancesSet></RunInstancesResponse>"
)


@pytest.mark.parametrize(
    "namespace",
    ["http://ec2.amazonaws.com/doc/2016-11-15/", "http://ec2.amazonaws.com/doc/2016-11-15"],
    ids=["ec2", "moto"],
)
def test_success_reply_parses_whichever_way_the_namespace_is_spelt(namespace):
    from libcloud.compute.drivers.ec2 import NAMESPACE
    from libcloud.utils.xml import findall

    root = parse_reply(200, RUN_REPLY.format(namespace=namespace)).object

    items = findall(root, "instancesSet/item/instanceId", NAMESPACE)
    assert [item.text for item in items] == ["i-0123456789abcdef0"]


@pytest.mark.parametrize(
    ("wrapper", "status"),
    [
        ('<Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15">{}</Response>', 400),
        ("<Response>{}</Response>", 400),
        ("<Response>{}</Response>", 503),
    ],
    ids=["moto-namespace", "no-namespace", "server-error"],
)
def test_error_reply_gives_code_message_and_status(wrapper, status):
    error = (
        "<Errors><Error><Code>Some.Code</Code><Message>what went wrong</Message></Error></Errors>"
    )

    with pytest.raises(EC2ErrorReply) as caught:
        parse_reply(status, wrapper.format(error))

    assert (caught.value.error_code, caught.value.message) == ("Some.Code", "what went wrong")
    assert caught.value.status == status


# -- error translation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "code", "retryable"),
    [
        (
            EC2ErrorReply(400, "InvalidAMIID.NotFound", "no such AMI"),
            "InvalidAMIID.NotFound",
            False,
        ),
        (EC2ErrorReply(503, "RequestLimitExceeded", "slow down"), "RequestLimitExceeded", True),
        (EC2ErrorReply(500, "Odd", "server trouble"), "Odd", True),
        (InvalidCredsError("bad key"), ProviderError.AUTH_FAILURE, False),
        (requests.exceptions.ConnectTimeout("connect"), ProviderError.TIMEOUT, True),
        (requests.exceptions.ReadTimeout("read"), ProviderError.TIMEOUT, True),
        (TimeoutError("timed out"), ProviderError.TIMEOUT, True),
        (
            requests.exceptions.ConnectionError(
                urllib3.exceptions.MaxRetryError(
                    None, "/", urllib3.exceptions.NewConnectionError(None, "refused")
                )
            ),
            ProviderError.UNREACHABLE,
            True,
        ),
        (
            requests.exceptions.ConnectionError(
                urllib3.exceptions.ReadTimeoutError(None, "/", "Read timed out.")
            ),
            ProviderError.TIMEOUT,
            True,
        ),
        (requests.exceptions.ConnectionError("refused"), ProviderError.UNREACHABLE, True),
        (ConnectionResetError("reset"), ProviderError.UNREACHABLE, True),
        (socket.gaierror("no such host"), ProviderError.UNREACHABLE, True),
        (BaseHTTPError(503, "busy"), "HTTP503", True),
        (BaseHTTPError(404, "gone"), "HTTP404", False),
        (ValueError("odd"), ProviderError.UNEXPECTED, False),
    ],
)
def test_provider_error(exc, code, retryable):
    error = provider_error(exc)

    assert (error.provider, error.code, error.retryable) == ("libcloud", code, retryable)
    assert error.message


def test_unexpected_error_names_its_type():
    assert provider_error(KeyError("x")).message == "KeyError: 'x'"


# -- the dummy driver ----------------------------------------------------------------------------


@pytest.fixture
def dummy_provider() -> LibcloudProvider:
    return LibcloudProvider.from_settings(load_settings(driver="dummy"))


def node_ids_of(provider: LibcloudProvider) -> set[str]:
    """The ids of the nodes that are not terminated."""
    nodes = provider.driver(None).list_nodes()
    return {str(node.id) for node in nodes if node.state != NodeState.TERMINATED}


def test_dummy_launch_gives_distinct_ids(dummy_provider):
    request = launch_request(
        ami="1",
        instance_type="1",
        min_count=3,
        max_count=3,
        explicit=frozenset({"ami", "instance_type", "min_count", "max_count"}),
    )

    ids = dummy_provider.launch(request)

    assert len(ids) == 3 and len(set(ids)) == 3
    assert all(isinstance(i, str) for i in ids)
    assert set(ids) <= node_ids_of(dummy_provider)


def test_dummy_refuses_explicit_parameters_before_any_call(dummy_provider):
    before = node_ids_of(dummy_provider)
    request = launch_request(
        ami="1",
        instance_type="1",
        key_name="mine",
        placement="us-east-1c",
        explicit=frozenset({"ami", "instance_type", "key_name", "placement"}),
    )

    with pytest.raises(UnsupportedParameters) as caught:
        dummy_provider.launch(request)

    assert caught.value.reasons == {
        "key_name": "the dummy driver cannot honour key_name",
        "placement": "the dummy driver cannot honour placement",
    }
    assert node_ids_of(dummy_provider) == before


def test_dummy_ignores_defaults_the_caller_did_not_set(dummy_provider):
    request = launch_request(ami="1", instance_type="1", explicit=frozenset({"ami"}))

    assert len(dummy_provider.launch(request)) == 1


def fail_on_call(monkeypatch, provider, number: int, exc: Exception) -> None:
    """Make the shared driver's create_node raise ``exc`` on call ``number``."""
    driver = provider.driver(None)
    create = driver.create_node
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == number:
            raise exc
        return create(*args, **kwargs)

    monkeypatch.setattr(driver, "create_node", flaky)


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [(RuntimeError("boom"), False), (requests.exceptions.ConnectionError("lost"), True)],
)
def test_dummy_partial_launch_destroys_what_it_created(dummy_provider, monkeypatch, exc, retryable):
    before = node_ids_of(dummy_provider)
    fail_on_call(monkeypatch, dummy_provider, 2, exc)
    request = launch_request(ami="1", instance_type="1", min_count=2, max_count=3)

    with pytest.raises(ProviderError) as caught:
        dummy_provider.launch(request)

    assert caught.value.code == PARTIAL_LAUNCH
    assert caught.value.retryable is retryable
    assert "1 of the 2" in caught.value.message and "destroyed" in caught.value.message
    assert node_ids_of(dummy_provider) == before


def test_dummy_partial_launch_reports_nodes_it_could_not_destroy(dummy_provider, monkeypatch):
    fail_on_call(monkeypatch, dummy_provider, 2, RuntimeError("boom"))
    driver = dummy_provider.driver(None)

    def refuse(node):
        raise RuntimeError("cannot")

    monkeypatch.setattr(driver, "destroy_node", refuse)
    before = node_ids_of(dummy_provider)

    with pytest.raises(ProviderError) as caught:
        dummy_provider.launch(launch_request(ami="1", instance_type="1", min_count=2, max_count=2))

    (left,) = node_ids_of(dummy_provider) - before
    assert caught.value.code == PARTIAL_LAUNCH
    assert f"failed for {left}" in caught.value.message


def test_dummy_keeps_enough_nodes_after_a_failure(dummy_provider, monkeypatch):
    fail_on_call(monkeypatch, dummy_provider, 2, RuntimeError("boom"))

    ids = dummy_provider.launch(
        launch_request(ami="1", instance_type="1", min_count=1, max_count=3)
    )

    assert len(ids) == 1
    assert set(ids) <= node_ids_of(dummy_provider)


def test_dummy_first_failure_keeps_its_own_code(dummy_provider, monkeypatch):
    fail_on_call(monkeypatch, dummy_provider, 1, requests.exceptions.ReadTimeout("slow"))

    with pytest.raises(ProviderError) as caught:
        dummy_provider.launch(launch_request(ami="1", instance_type="1"))

    assert caught.value.code == ProviderError.TIMEOUT


def test_dummy_driver_is_shared_by_every_thread(dummy_provider):
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(dummy_provider.driver(None)))
    thread.start()
    thread.join()

    assert theirs[0] is dummy_provider.driver(None)


def test_dummy_has_no_image_id_pattern(dummy_provider):
    assert dummy_provider.image_id_pattern is None


# -- the dummy driver: the life of an instance ------------------------------------------------


def launch_one(provider, ami: str = "img-1", instance_type: str = "small") -> str:
    (instance_id,) = provider.launch(launch_request(ami=ami, instance_type=instance_type))
    return instance_id


def test_dummy_is_libclouds_dummy_driver_made_cloudlike(dummy_provider):
    assert isinstance(dummy_provider.driver(None), CloudlikeDummyNodeDriver)
    assert isinstance(dummy_provider.driver(None), DummyNodeDriver)


def test_dummy_describe_gives_what_the_node_was_created_with(dummy_provider):
    before = datetime.now(UTC)
    instance_id = launch_one(dummy_provider, "img-7", "large")

    instance = dummy_provider.describe(instance_id, REGION)

    assert (instance.id, instance.state) == (instance_id, "running")
    assert (instance.ami, instance.instance_type) == ("img-7", "large")
    assert instance.launch_time.tzinfo is UTC
    assert before <= instance.launch_time <= datetime.now(UTC) + timedelta(seconds=1)
    assert instance.tags == {}


def test_dummy_describe_unknown_id_is_not_found(dummy_provider):
    with pytest.raises(InstanceNotFound) as caught:
        dummy_provider.describe("no-such-node", REGION)

    assert caught.value.instance_id == "no-such-node"


def test_dummy_keeps_tags(dummy_provider):
    request = launch_request(
        ami="1", instance_type="1", tags={"role": "web"}, explicit=frozenset({"tags"})
    )
    (node_id,) = dummy_provider.launch(request)
    assert dummy_provider.describe(node_id, None).tags == {"role": "web"}
    query = InstanceQuery(region="us-east-1", tags={"role": ("web",)})
    assert [item.id for item in dummy_provider.list_instances(query).instances] == [node_id]


def test_drivers_without_tags_refuse_them():
    assert "tags" not in profile_of("digitalocean").parameters
    assert "tags" in profile_of("dummy").parameters and "tags" in profile_of("ec2").parameters


@pytest.mark.parametrize("action", ["stop", "start"])
def test_dummy_cannot_stop_or_start(dummy_provider, action):
    instance_id = launch_one(dummy_provider)

    with pytest.raises(ActionNotSupported) as caught:
        getattr(dummy_provider, action)(instance_id, REGION)

    assert (caught.value.provider, caught.value.action) == ("libcloud", action)
    assert caught.value.reason == f"the dummy driver cannot {action}"
    assert dummy_provider.describe(instance_id, REGION).state == "running"


def test_dummy_cannot_stop_is_answered_before_any_lookup(dummy_provider, monkeypatch):
    def no_lookup():
        raise AssertionError("list_nodes called")

    monkeypatch.setattr(dummy_provider.driver(None), "list_nodes", no_lookup)

    with pytest.raises(ActionNotSupported):
        dummy_provider.stop("no-such-node", REGION)


def test_dummy_reboot(dummy_provider, monkeypatch):
    instance_id = launch_one(dummy_provider)
    driver = dummy_provider.driver(None)
    rebooted = []
    reboot = driver.reboot_node
    monkeypatch.setattr(
        driver, "reboot_node", lambda node: rebooted.append(node.id) or reboot(node)
    )

    instance = dummy_provider.reboot(instance_id, REGION)

    assert rebooted == [instance_id]
    assert (instance.id, instance.state) == (instance_id, "running")


def test_dummy_terminate_keeps_the_instance_visible(dummy_provider, monkeypatch):
    instance_id = launch_one(dummy_provider)

    assert dummy_provider.terminate(instance_id, REGION).state == "terminated"
    assert dummy_provider.describe(instance_id, REGION).state == "terminated"
    driver = dummy_provider.driver(None)
    destroyed = []
    monkeypatch.setattr(driver, "destroy_node", lambda node: destroyed.append(node) or True)
    assert dummy_provider.terminate(instance_id, REGION).state == "terminated"
    assert destroyed == []
    with pytest.raises(InvalidState):
        dummy_provider.reboot(instance_id, REGION)


def test_dummy_ids_never_repeat_after_a_destroy(dummy_provider):
    first = launch_one(dummy_provider)
    dummy_provider.terminate(first, REGION)
    driver = dummy_provider.driver(None)
    driver.nl[:] = [node for node in driver.nl if node.id != first]  # even when it is gone

    second = launch_one(dummy_provider)
    third = launch_one(dummy_provider)

    every = [str(node.id) for node in driver.list_nodes()]
    assert len({first, second, third}) == 3
    assert len(every) == len(set(every))


def test_dummy_action_refused_by_the_driver(dummy_provider, monkeypatch):
    instance_id = launch_one(dummy_provider)
    monkeypatch.setattr(dummy_provider.driver(None), "reboot_node", lambda node: False)

    with pytest.raises(ProviderError) as caught:
        dummy_provider.reboot(instance_id, REGION)

    assert (caught.value.code, caught.value.retryable) == ("ActionRefused", True)
    assert "dummy" in caught.value.message and "reboot" in caught.value.message


@pytest.mark.parametrize(
    ("error", "expected", "code"),
    [
        (NotImplementedError("not for this node"), ActionNotSupported, None),
        (requests.exceptions.ConnectionError("lost"), ProviderError, ProviderError.UNREACHABLE),
    ],
)
def test_dummy_driver_failures(dummy_provider, monkeypatch, error, expected, code):
    instance_id = launch_one(dummy_provider)

    def failing(node):
        raise error

    monkeypatch.setattr(dummy_provider.driver(None), "reboot_node", failing)

    with pytest.raises(expected) as caught:
        dummy_provider.reboot(instance_id, REGION)

    assert getattr(caught.value, "code", None) == code


def test_dummy_list_in_id_order_filtered_and_paged(dummy_provider):
    ids = [launch_one(dummy_provider) for _ in range(5)]
    dummy_provider.terminate(ids[1], REGION)
    every = [node.id for node in dummy_provider.driver(None).list_nodes()]

    pages = []
    token = None
    while True:
        page = dummy_provider.list_instances(InstanceQuery(REGION, limit=2, page_token=token))
        pages.append([instance.id for instance in page.instances])
        token = page.next_token
        if token is None:
            break

    assert [instance_id for page in pages for instance_id in page] == sorted(every)
    assert all(len(page) == 2 for page in pages[:-1])
    assert listed(dummy_provider, ids=(ids[3], ids[0])) == sorted([ids[0], ids[3]])
    assert listed(dummy_provider, ids=tuple(ids), states=("terminated",)) == [ids[1]]
    assert listed(dummy_provider, tags={"role": ("web",)}) == []
    with pytest.raises(InvalidPageToken):
        dummy_provider.list_instances(InstanceQuery(REGION, page_token="not-a-token"))


def test_dummy_ping(dummy_provider, monkeypatch):
    assert dummy_provider.ping(1) is None

    def failing():
        raise requests.exceptions.ConnectionError("lost")

    monkeypatch.setattr(dummy_provider.driver(None), "list_nodes", failing)
    with pytest.raises(ProviderError) as caught:
        dummy_provider.ping(1)
    assert caught.value.code == ProviderError.UNREACHABLE


def test_dummy_has_no_instance_id_pattern(dummy_provider):
    assert dummy_provider.instance_id_pattern is None


def test_every_libcloud_node_state_is_mapped():
    node_states = {value for name, value in vars(NodeState).items() if name.isupper()}

    assert set(NODE_STATES) == node_states
    assert set(NODE_STATES.values()) <= set(STATES)


# -- the contract and the settings ----------------------------------------------------------------


def test_both_drivers_implement_iprovider(dummy_provider, ec2_provider):
    assert verifyObject(IProvider, dummy_provider)
    assert verifyObject(IProvider, ec2_provider)
    assert dummy_provider.name == ec2_provider.name == "libcloud"


def test_registry_builds_the_adapter():
    from launchprov.providers import create_provider

    provider = create_provider(load_settings(driver="dummy"))

    assert isinstance(provider, LibcloudProvider) and provider.driver_name == "dummy"


def test_unknown_driver_stops_startup():
    with pytest.raises(ConfigurationError, match=r"launchprov\.libcloud\.driver"):
        LibcloudProvider.from_settings(load_settings(driver="no-such-cloud"))


def test_ec2_without_credentials_stops_startup():
    with pytest.raises(ConfigurationError) as caught:
        LibcloudProvider.from_settings(load_settings(driver="ec2"))

    assert "launchprov.libcloud.key" in str(caught.value)
    assert "launchprov.libcloud.secret" in str(caught.value)


def test_ec2_security_group_ids_in_defaults_stop_startup():
    settings = ec2_settings(free_port())
    settings["launchprov.defaults.security_groups"] = ("sg-0123456789abcdef0",)

    with pytest.raises(ConfigurationError, match=r"launchprov\.defaults\.security_groups"):
        LibcloudProvider.from_settings(settings)


def test_driver_kwargs_that_repeat_a_setting_stop_startup():
    settings = load_settings(driver="dummy", driver_kwargs='{"host": "elsewhere"}')

    with pytest.raises(ConfigurationError, match=r"launchprov\.libcloud\.host"):
        LibcloudProvider.from_settings(settings)


def test_driver_kwargs_the_driver_refuses_stop_startup():
    settings = load_settings(driver="dummy", driver_kwargs='{"colour": "blue"}')

    with pytest.raises(ConfigurationError, match=r"driver_kwargs"):
        LibcloudProvider.from_settings(settings)


def test_setting_a_driver_cannot_take_stops_startup():
    with pytest.raises(ConfigurationError, match=r"launchprov\.libcloud\.host"):
        LibcloudProvider.from_settings(load_settings(driver="dummy", host="example.org"))


def test_adapter_never_imports_pyramid():
    import launchprov.providers.libcloud as package

    modules = sorted(pathlib.Path(package.__file__).parent.glob("*.py"))
    imported = set()
    for module in modules:
        tree = ast.parse(module.read_text())
        imported |= {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert len(modules) >= 8
    assert imported and not any(
        name.split(".")[0] in ("pyramid", "webob") for name in imported if name
    )
