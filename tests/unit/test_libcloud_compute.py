"""The libcloud adapter: the EC2 driver against a moto server, the dummy driver in memory."""

from __future__ import annotations

import ast
import base64
import contextlib
import dataclasses
import inspect
import socket
import threading
import types

import boto3
import pytest
import requests.exceptions
import urllib3.exceptions
from botocore.exceptions import ClientError
from libcloud.common.exceptions import BaseHTTPError
from libcloud.common.types import InvalidCredsError
from zope.interface.verify import verifyObject

from launchprov import settings as launchprov_settings
from launchprov.providers import libcloud_compute
from launchprov.providers.ec2_common import IMAGE_ID
from launchprov.providers.interface import (
    IProvider,
    LaunchRequest,
    ProviderError,
    UnsupportedParameters,
)
from launchprov.providers.libcloud_compute import (
    EC2_PARAMETERS,
    PARTIAL_LAUNCH,
    EC2ErrorReply,
    LibcloudProvider,
    TolerantEC2Response,
    provider_error,
)
from launchprov.settings import ConfigurationError

AMI = "ami-1e749f67"  # known to moto
REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
EVERY_FIELD = frozenset(f.name for f in dataclasses.fields(LaunchRequest)) - {"explicit"}


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
    """Record the query parameters of every request this thread's driver sends."""
    connection = provider.driver(region).connection
    send = connection.request
    sent: list[dict] = []

    def recording(action, params=None, *args, **kwargs):
        sent.append(dict(params or {}))
        return send(action, params, *args, **kwargs)

    monkeypatch.setattr(connection, "request", recording)
    return sent


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
    sent = record_requests(monkeypatch, ec2_provider)
    request = LaunchRequest(
        ami=AMI,
        instance_type="t2.micro",
        key_name="scalacity_dev1",
        security_groups=("SSH",),
        user_data="#!/bin/sh\necho launched\n",
        placement="us-east-1c",
        instance_initiated_shutdown_behavior="terminate",
        explicit=EVERY_FIELD,
    )

    ids = ec2_provider.launch(request)

    assert len(ids) == 1 and all(isinstance(i, str) and i.startswith("i-") for i in ids)
    instance = describe(ec2_client, ids)[ids[0]]
    assert instance["InstanceType"] == "t2.micro"
    assert instance["ImageId"] == AMI
    assert instance["KeyName"] == "scalacity_dev1"
    assert [group["GroupName"] for group in instance["SecurityGroups"]] == ["SSH"]
    assert instance["Placement"]["AvailabilityZone"] == "us-east-1c"
    assert {"Key": "Name", "Value": "launchprov"} in instance["Tags"]
    shutdown = ec2_client.describe_instance_attribute(
        InstanceId=ids[0], Attribute="instanceInitiatedShutdownBehavior"
    )
    assert shutdown["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
    user_data = ec2_client.describe_instance_attribute(InstanceId=ids[0], Attribute="userData")
    assert base64.b64decode(user_data["UserData"]["Value"]).decode() == request.user_data
    (run,) = [params for params in sent if params.get("Action") == "RunInstances"]
    assert run["Placement.AvailabilityZone"] == "us-east-1c"
    assert "EbsOptimized" not in run


def test_ec2_launch_stop_on_shutdown_placement_group_and_ebs(ec2_provider, ec2_client, monkeypatch):
    sent = record_requests(monkeypatch, ec2_provider)
    request = LaunchRequest(
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

    ids = ec2_provider.launch(request)

    (run,) = [params for params in sent if params.get("Action") == "RunInstances"]
    assert "InstanceInitiatedShutdownBehavior" not in run  # EC2's default is stop
    assert run["Placement.GroupName"] == "launchprov-pg"  # moto does not keep it: check the wire
    assert run["EbsOptimized"] == "true"
    assert describe(ec2_client, ids)[ids[0]]["EbsOptimized"] is True
    shutdown = ec2_client.describe_instance_attribute(
        InstanceId=ids[0], Attribute="instanceInitiatedShutdownBehavior"
    )
    assert shutdown["InstanceInitiatedShutdownBehavior"]["Value"] == "stop"


def test_ec2_launch_sends_min_and_max_count(ec2_provider, ec2_client, monkeypatch):
    sent = record_requests(monkeypatch, ec2_provider)
    request = LaunchRequest(
        ami=AMI,
        instance_type="t2.micro",
        min_count=2,
        max_count=3,
        explicit=frozenset({"ami", "instance_type", "min_count", "max_count"}),
    )

    ids = ec2_provider.launch(request)

    (run,) = [params for params in sent if params.get("Action") == "RunInstances"]
    assert (run["MinCount"], run["MaxCount"]) == ("2", "3")
    assert 2 <= len(ids) <= 3
    assert len(set(ids)) == len(ids)
    assert set(describe(ec2_client, ids)) == set(ids)


def test_ec2_unknown_ami_is_an_ec2_error(ec2_provider):
    request = LaunchRequest(ami="ami-12345678", instance_type="t2.micro")

    with pytest.raises(ProviderError) as caught:
        ec2_provider.launch(request)

    assert caught.value.provider == "libcloud"
    assert caught.value.code == "InvalidAMIID.NotFound"
    assert "ami-12345678" in caught.value.message
    assert caught.value.retryable is False


def test_ec2_html_error_page_is_a_short_malformed_response(ec2_provider):
    # moto answers a RunInstances naming an unknown security group with an HTML 500 page.
    request = LaunchRequest(ami=AMI, instance_type="t2.micro", security_groups=("nowhere",))

    with pytest.raises(ProviderError) as caught:
        ec2_provider.launch(request)

    assert caught.value.code == ProviderError.MALFORMED_RESPONSE
    assert caught.value.retryable is True
    assert caught.value.message
    assert "\n" not in caught.value.message and len(caught.value.message) < 300
    assert "<html" not in caught.value.message.lower()


def test_ec2_security_group_id_is_refused_before_any_call(ec2_provider, monkeypatch):
    sent = record_requests(monkeypatch, ec2_provider)
    request = LaunchRequest(
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
    request = LaunchRequest(
        ami=AMI, instance_type="t2.micro", placement="xx-nowhere-1a", explicit=frozenset({"ami"})
    )

    with pytest.raises(UnsupportedParameters) as caught:
        ec2_provider.launch(request)

    assert set(caught.value.reasons) == {"placement"}


def test_ec2_refused_connection_is_unreachable():
    provider = LibcloudProvider.from_settings(ec2_settings(free_port()))

    with pytest.raises(ProviderError) as caught:
        provider.launch(LaunchRequest(ami=AMI, instance_type="t2.micro", user_data="secret"))

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
        provider.launch(LaunchRequest(ami=AMI, instance_type="t2.micro"))

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
        provider.launch(LaunchRequest(ami=AMI, instance_type="t2.micro"))

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
    return {str(node.id) for node in provider.driver(None).list_nodes()}


def test_dummy_launch_gives_distinct_ids(dummy_provider):
    request = LaunchRequest(
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
    request = LaunchRequest(
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
    request = LaunchRequest(ami="1", instance_type="1", explicit=frozenset({"ami"}))

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
    request = LaunchRequest(ami="1", instance_type="1", min_count=2, max_count=3)

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
        dummy_provider.launch(LaunchRequest(ami="1", instance_type="1", min_count=2, max_count=2))

    (left,) = node_ids_of(dummy_provider) - before
    assert caught.value.code == PARTIAL_LAUNCH
    assert f"failed for {left}" in caught.value.message


def test_dummy_keeps_enough_nodes_after_a_failure(dummy_provider, monkeypatch):
    fail_on_call(monkeypatch, dummy_provider, 2, RuntimeError("boom"))

    ids = dummy_provider.launch(LaunchRequest(ami="1", instance_type="1", min_count=1, max_count=3))

    assert len(ids) == 1
    assert set(ids) <= node_ids_of(dummy_provider)


def test_dummy_first_failure_keeps_its_own_code(dummy_provider, monkeypatch):
    fail_on_call(monkeypatch, dummy_provider, 1, requests.exceptions.ReadTimeout("slow"))

    with pytest.raises(ProviderError) as caught:
        dummy_provider.launch(LaunchRequest(ami="1", instance_type="1"))

    assert caught.value.code == ProviderError.TIMEOUT


def test_dummy_driver_is_shared_by_every_thread(dummy_provider):
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(dummy_provider.driver(None)))
    thread.start()
    thread.join()

    assert theirs[0] is dummy_provider.driver(None)


def test_dummy_has_no_image_id_pattern(dummy_provider):
    assert dummy_provider.image_id_pattern is None


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
    tree = ast.parse(inspect.getsource(libcloud_compute))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported and not any(name.split(".")[0] == "pyramid" for name in imported if name)
