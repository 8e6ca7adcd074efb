"""The boto3 adapter: what it sends, how it fails, and how it shares clients."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError
from botocore.stub import Stubber
from zope.interface.verify import verifyClass, verifyObject

from launchprov.providers.ec2 import EC2Provider, provider_error, run_instances_params
from launchprov.providers.interface import (
    IdempotencyConflict,
    InstanceNotFound,
    InvalidState,
    IProvider,
    LaunchRequest,
    ProviderError,
)
from launchprov.settings import load
from tests.support import launch_request

FULL = LaunchRequest(
    ami="ami-760aaa0f",
    instance_type="m5.large",
    min_count=2,
    max_count=5,
    key_name="ops",
    security_groups=("web", "sg-0123456789abcdef0"),
    user_data="#!/bin/sh\n",
    placement="us-west-2b",
    placement_group="cluster-1",
    instance_initiated_shutdown_behavior="stop",
    ebs_optimized=True,
)


def make_provider(**settings) -> EC2Provider:
    return EC2Provider.from_settings(load(settings, environ={}))


def test_implements_the_interface():
    assert verifyClass(IProvider, EC2Provider)
    assert verifyObject(IProvider, make_provider())


def test_every_parameter_is_mapped():
    assert run_instances_params(FULL) == {
        "ImageId": "ami-760aaa0f",
        "InstanceType": "m5.large",
        "MinCount": 2,
        "MaxCount": 5,
        "KeyName": "ops",
        "SecurityGroups": ["web"],
        "SecurityGroupIds": ["sg-0123456789abcdef0"],
        "UserData": "#!/bin/sh\n",
        "Placement": {"AvailabilityZone": "us-west-2b", "GroupName": "cluster-1"},
        "InstanceInitiatedShutdownBehavior": "stop",
        "EbsOptimized": True,
        "MetadataOptions": {"HttpTokens": "required"},
    }


VPC = dataclasses.replace(
    FULL,
    subnet_id="subnet-0123456789abcdef0",
    iam_instance_profile="web-role",
    root_volume_size=40,
    root_volume_type="gp3",
    metadata_tokens="optional",
    spot=True,
    explicit=frozenset({"subnet_id"}),
)


def test_every_vpc_parameter_is_mapped():
    params = run_instances_params(VPC, root_device="/dev/sda1")
    assert params["SubnetId"] == "subnet-0123456789abcdef0"
    assert params["IamInstanceProfile"] == {"Name": "web-role"}
    assert params["BlockDeviceMappings"] == [
        {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 40, "VolumeType": "gp3"}}
    ]
    assert params["MetadataOptions"] == {"HttpTokens": "optional"}
    assert params["InstanceMarketOptions"] == {"MarketType": "spot"}
    # The zone is the subnet's: the placement the caller did not give is not sent.
    assert params["Placement"] == {"GroupName": "cluster-1"}


def test_an_explicit_placement_goes_with_the_subnet():
    request = dataclasses.replace(VPC, explicit=frozenset({"subnet_id", "placement"}))
    assert run_instances_params(request, "/dev/sda1")["Placement"]["AvailabilityZone"] == (
        "us-west-2b"
    )


def test_an_instance_profile_arn_goes_as_an_arn_and_one_volume_field_alone():
    arn = "arn:aws:iam::123456789012:instance-profile/web"
    request = dataclasses.replace(
        FULL, iam_instance_profile=arn, root_volume_type="io2", placement_group=None
    )
    params = run_instances_params(request, "/dev/xvda")
    assert params["IamInstanceProfile"] == {"Arn": arn}
    assert params["BlockDeviceMappings"] == [
        {"DeviceName": "/dev/xvda", "Ebs": {"VolumeType": "io2"}}
    ]
    assert "InstanceMarketOptions" not in params and "SubnetId" not in params


def test_the_root_device_is_looked_up_once_per_image():
    provider = make_provider()
    request = launch_request(ami="ami-760aaa0f", instance_type="t3.micro", root_volume_size=30)
    with Stubber(provider.client("us-east-1b"[:-1])) as stubber:
        stubber.add_response(
            "describe_images",
            {"Images": [{"ImageId": "ami-760aaa0f", "RootDeviceName": "/dev/sda1"}]},
            {"ImageIds": ["ami-760aaa0f"]},
        )
        for _ in range(2):
            expected = run_instances_params(request, "/dev/sda1")
            stubber.add_response(
                "run_instances", {"Instances": [{"InstanceId": "i-0aaa"}]}, expected
            )
        assert provider.launch(request) == ["i-0aaa"]
        assert provider.launch(request) == ["i-0aaa"]
        stubber.assert_no_pending_responses()


def test_defaults_send_no_empty_optional_parameters():
    params = run_instances_params(launch_request(ami="ami-760aaa0f", instance_type="t2.micro"))
    assert "UserData" not in params and "SecurityGroupIds" not in params
    assert params["Placement"] == {"AvailabilityZone": "us-east-1b"}
    assert params["SecurityGroups"] == ["SSH"]


def test_what_is_sent_to_ec2_in_the_region_of_the_placement():
    """moto launches MinCount and drops MaxCount: check the request itself with a Stubber."""
    provider = make_provider()
    client = provider.client("us-west-2")
    with Stubber(client) as stubber:
        expected = dict(run_instances_params(FULL), UserData="#!/bin/sh\n")
        stubber.add_response(
            "run_instances",
            {"Instances": [{"InstanceId": "i-0aaa"}, {"InstanceId": "i-0bbb"}]},
            expected,
        )
        assert provider.launch(FULL) == ["i-0aaa", "i-0bbb"]
        stubber.assert_no_pending_responses()
    assert client.meta.region_name == "us-west-2"


def test_an_error_reply_becomes_a_provider_error():
    provider = make_provider()
    with Stubber(provider.client("us-west-2")) as stubber:
        stubber.add_client_error(
            "run_instances",
            service_error_code="InsufficientInstanceCapacity",
            service_message="no capacity",
            http_status_code=500,
        )
        with pytest.raises(ProviderError) as raised:
            provider.launch(FULL)
    assert (raised.value.provider, raised.value.code) == ("ec2", "InsufficientInstanceCapacity")
    assert raised.value.message == "no capacity"
    assert raised.value.retryable is True


def test_an_unknown_key_pair_is_named_as_the_caller_wrote_it():
    """moto names it as a Python set (``'{'ops'}'``): the message says ``'ops'``, as EC2 does,
    for the launch and for the pre-flight's key pair check."""
    provider = make_provider()
    moto_message = "The keypair '{'ops'}' does not exist."
    with Stubber(provider.client("us-west-2")) as stubber:
        stubber.add_client_error(
            "run_instances",
            service_error_code="InvalidKeyPair.NotFound",
            service_message=moto_message,
        )
        with pytest.raises(ProviderError) as raised:
            provider.launch(FULL)
    assert raised.value.message == "The key pair 'ops' does not exist"
    assert str(raised.value) == "ec2: InvalidKeyPair.NotFound: The key pair 'ops' does not exist"


def client_error(code: str, status: int) -> ClientError:
    reply = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(reply, "RunInstances")


@pytest.mark.parametrize(
    ("exc", "code", "retryable"),
    [
        (client_error("InvalidAMIID.NotFound", 400), "InvalidAMIID.NotFound", False),
        (client_error("RequestLimitExceeded", 503), "RequestLimitExceeded", True),
        (client_error("InstanceLimitExceeded", 400), "InstanceLimitExceeded", False),
        (client_error("", 502), "HTTP502", True),
        (ConnectTimeoutError(endpoint_url="http://x"), ProviderError.TIMEOUT, True),
        (ReadTimeoutError(endpoint_url="http://x"), ProviderError.TIMEOUT, True),
        (EndpointConnectionError(endpoint_url="http://x"), ProviderError.UNREACHABLE, True),
        (ResponseParserError("bad\n<html>"), ProviderError.MALFORMED_RESPONSE, False),
        (NoCredentialsError(), ProviderError.AUTH_FAILURE, False),
        (AttributeError("moto choked"), ProviderError.UNEXPECTED, False),
    ],
)
def test_failures_are_classified(exc, code, retryable):
    error = provider_error(exc)
    assert (error.provider, error.code, error.retryable) == ("ec2", code, retryable)
    assert error.message


def test_a_malformed_reply_keeps_only_the_first_line():
    error = provider_error(ResponseParserError("Unable to parse\n<!doctype html>\n<p>boom</p>"))
    assert error.message == "Unable to parse"


def test_settings_reach_botocore():
    provider = make_provider(
        **{
            "launchprov.ec2.connect_timeout": "1.5",
            "launchprov.ec2.read_timeout": "7",
            "launchprov.ec2.max_attempts": "2",
            "launchprov.ec2.retry_mode": "adaptive",
            "launchprov.ec2.endpoint_url": "http://127.0.0.1:9",
            "launchprov.ec2.max_pool_connections": "32",
        }
    )
    config: Config = provider.client("us-east-1").meta.config
    assert (config.connect_timeout, config.read_timeout) == (1.5, 7.0)
    assert config.max_pool_connections == 32
    assert config.retries == {"total_max_attempts": 2, "mode": "adaptive"}
    assert provider.client("us-east-1").meta.endpoint_url == "http://127.0.0.1:9"


def test_one_client_per_region_shared_by_every_thread():
    provider = make_provider()
    barrier = threading.Barrier(8)
    seen = []

    def get_client():
        barrier.wait()
        seen.append(provider.client("eu-west-1"))

    threads = [threading.Thread(target=get_client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8 and len({id(client) for client in seen}) == 1
    assert provider.client("us-east-1") is provider.client("us-east-1")
    assert provider.client("us-east-1") is not provider.client("eu-west-1")


def test_an_id_ec2_does_not_know_is_the_404_naming_the_provider_and_the_id():
    provider = make_provider(**{"launchprov.batch.idle_ms": "0"})
    with Stubber(provider.client("us-east-1")) as stubber:
        stubber.add_client_error(
            "describe_instances",
            service_error_code="InvalidInstanceID.NotFound",
            service_message="The instance ID 'i-0123456789abcdef0' does not exist",
            expected_params={"InstanceIds": ["i-0123456789abcdef0"]},
        )
        with pytest.raises(InstanceNotFound) as raised:
            provider.describe("i-0123456789abcdef0", "us-east-1")
    assert raised.value.message == "the ec2 provider knows no instance i-0123456789abcdef0"


@pytest.mark.parametrize(
    ("ec2_message", "message"),
    [
        ("Arguments on this idempotent request are inconsistent", None),
        ("", "IdempotentParameterMismatch"),  # no words from EC2: its code says it
    ],
    ids=["ec2s-words", "no-words"],
)
def test_a_client_token_reused_with_other_parameters_is_the_409_in_ec2s_words(ec2_message, message):
    provider = make_provider()
    with Stubber(provider.client("us-west-2")) as stubber:
        stubber.add_client_error(
            "run_instances",
            service_error_code="IdempotentParameterMismatch",
            service_message=ec2_message,
        )
        with pytest.raises(IdempotencyConflict) as raised:
            provider.launch(FULL)
    assert raised.value.message == (message or ec2_message)


@pytest.mark.parametrize(
    ("ec2_message", "message"),
    [
        ("The instance 'i-0123456789abcdef0' is not in a state from which it can be stopped", None),
        ("", "IncorrectInstanceState"),  # no words from EC2: its code says it
    ],
    ids=["ec2s-words", "no-words"],
)
def test_a_state_ec2_refuses_the_action_in_is_the_409_in_ec2s_words(ec2_message, message):
    instance_id = "i-0123456789abcdef0"
    provider = make_provider(**{"launchprov.batch.idle_ms": "0"})
    running = {
        "Reservations": [{"Instances": [{"InstanceId": instance_id, "State": {"Name": "running"}}]}]
    }
    with Stubber(provider.client("us-east-1")) as stubber:
        stubber.add_response("describe_instances", running, {"InstanceIds": [instance_id]})
        stubber.add_client_error(
            "stop_instances",
            service_error_code="IncorrectInstanceState",
            service_message=ec2_message,
            expected_params={"InstanceIds": [instance_id]},
        )
        with pytest.raises(InvalidState) as raised:
            provider.stop(instance_id, "us-east-1")
    assert raised.value.message == (message or ec2_message)


@pytest.mark.parametrize(
    "state", [{"Name": "hibernating"}, None], ids=["new-to-launchprov", "none"]
)
def test_a_state_launchprov_does_not_know_is_unknown(state):
    instance_id = "i-0123456789abcdef0"
    provider = make_provider(**{"launchprov.batch.idle_ms": "0"})
    raw = {"InstanceId": instance_id, **({"State": state} if state else {})}
    with Stubber(provider.client("us-east-1")) as stubber:
        stubber.add_response("describe_instances", {"Reservations": [{"Instances": [raw]}]})
        assert provider.describe(instance_id, "us-east-1").state == "unknown"
