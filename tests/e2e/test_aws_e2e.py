"""End to end, as a real AWS account is used: VPC parameters, the pre-flight and the capacity
fallback, through a waitress process, a fault-injecting EC2 process and a moto server process.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.e2e.conftest import (
    CREDENTIALS_ENV,
    accepts_connections,
    ec2_settings,
    running,
    stop,
    wait_until,
)
from tests.faulty_ec2 import FaultControl
from tests.support import GOOD_AMI, free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def faulty_process(moto_process) -> Iterator[FaultControl]:
    """The fault-injecting EC2 endpoint as a process of its own, in front of moto's."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.faulty_ec2", "--upstream", moto_process, "--port", str(port)],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: accepts_connections(port), "fault-injecting EC2", process)
        yield FaultControl(f"http://127.0.0.1:{port}")
    finally:
        stop(process)


@pytest.fixture(scope="module")
def account(moto_process):
    """The moto account with an instance profile ``sandbox``, as the sandbox holds."""
    iam = boto3.client(
        "iam",
        region_name="us-east-1",
        endpoint_url=moto_process,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_instance_profile(InstanceProfileName="sandbox")


@pytest.fixture(scope="module")
def service(faulty_process, account):
    settings = ec2_settings(faulty_process.url, **{"launchprov.ec2.max_attempts": "3"})
    with running(settings, CREDENTIALS_ENV) as service:
        yield service


def describe(client, instance_id: str) -> dict:
    return client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def count_instances(client) -> int:
    reservations = client.describe_instances()["Reservations"]
    return sum(len(reservation["Instances"]) for reservation in reservations)


def test_every_new_parameter_arrives_at_ec2(service, moto_client, faulty_process):
    faulty_process.refuse()
    subnet = moto_client.describe_subnets(
        Filters=[{"Name": "availability-zone", "Values": ["us-east-1d"]}]
    )["Subnets"][0]["SubnetId"]
    status, _, ids = service.launch(
        {
            "ami": GOOD_AMI,
            "instance_type": "t3.micro",
            "subnet_id": subnet,
            "iam_instance_profile": "sandbox",
            "root_volume_size": 25,
            "root_volume_type": "gp2",
            "metadata_tokens": "required",
            "spot": True,
        }
    )
    assert status == 200, ids
    instance = describe(moto_client, ids[0])
    assert (instance["SubnetId"], instance["Placement"]["AvailabilityZone"]) == (
        subnet,
        "us-east-1d",
    )
    assert instance["IamInstanceProfile"]["Arn"].endswith(":instance-profile/sandbox")
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert instance["InstanceLifecycle"] == "spot"
    (root,) = [
        mapping
        for mapping in instance["BlockDeviceMappings"]
        if mapping["DeviceName"] == instance["RootDeviceName"]
    ]
    volume = moto_client.describe_volumes(VolumeIds=[root["Ebs"]["VolumeId"]])["Volumes"][0]
    assert (volume["Size"], volume["VolumeType"]) == (25, "gp2")
    status, _, shown = service.request("GET", f"/v1/instances/{ids[0]}")
    assert status == 200
    assert (shown["subnet_id"], shown["spot"], shown["metadata_tokens"]) == (
        subnet,
        True,
        "required",
    )


def test_capacity_fallback_and_the_memory_of_what_is_out(service, moto_client, faulty_process):
    faulty_process.refuse({"instance_type": "c5.xlarge"})
    body = {
        "ami": GOOD_AMI,
        "instance_type": "c5.xlarge",
        "placement": "us-east-1a",
        "fallback": [{"placement": "us-east-1c"}, {"instance_type": "c5.large"}],
    }
    status, _, ids = service.launch(body)
    assert status == 200, ids
    instance = describe(moto_client, ids[0])
    assert instance["InstanceType"] == "c5.large"
    tags = {tag["Key"]: tag["Value"] for tag in instance["Tags"]}
    assert tags["launchprov:alternative"] == "2"
    calls = [(call["instance_type"], call["zone"]) for call in faulty_process.calls()]
    assert calls == [
        ("c5.xlarge", "us-east-1a"),
        ("c5.xlarge", "us-east-1c"),
        ("c5.large", "us-east-1a"),
    ]

    # The same launch again: the two offerings that were out are passed over without a call.
    faulty_process.refuse({"instance_type": "c5.xlarge"})
    status, _, again = service.launch(body)
    assert status == 200 and again != ids
    assert [call["instance_type"] for call in faulty_process.calls()] == ["c5.large"]

    metrics = _metrics(service)
    assert 'launchprov_capacity_fallbacks_total{outcome="fallback",provider="ec2"} 2.0' in metrics
    assert 'launchprov_capacity_fallbacks_total{outcome="skipped",provider="ec2"} 2.0' in metrics
    deadline = time.monotonic() + 10
    while "PUT launch 200" not in service.output or " alternative=2" not in service.output:
        assert time.monotonic() < deadline, service.output[-2000:]
        time.sleep(0.05)  # polling the log reader, not synchronisation


def _metrics(service) -> str:
    with urllib.request.urlopen(service.url + "/metrics", timeout=10) as response:
        return response.read().decode()


def test_every_alternative_out_is_a_408_at_once_the_second_time(
    service, moto_client, faulty_process
):
    faulty_process.refuse({"zone": "us-east-1e"})
    before = count_instances(moto_client)
    body = {
        "ami": GOOD_AMI,
        "instance_type": "m5.large",
        "placement": "us-east-1e",
        "fallback": [{"instance_type": "m5.xlarge"}],
    }
    status, headers, error = service.launch(body)
    assert status == 408, error
    assert error["provider"]["code"] == "InsufficientInstanceCapacity"
    assert error["provider"]["retryable"] is True
    assert [item["name"] for item in error["details"]] == ["alternative 0", "alternative 1"]
    assert 1 <= int(headers["Retry-After"]) <= 180
    assert len(faulty_process.calls()) == 2

    faulty_process.refuse({"zone": "us-east-1e"})
    status, headers, error = service.launch(body)
    assert status == 408 and faulty_process.calls() == []
    assert all("known out, not asked" in item["description"] for item in error["details"])
    assert count_instances(moto_client) == before


def test_preflight_launches_nothing(service, moto_client, faulty_process):
    faulty_process.refuse()
    before = count_instances(moto_client)
    body = {"ami": GOOD_AMI, "instance_type": "t3.micro", "iam_instance_profile": "sandbox"}
    status, _, answer = service.request("POST", "/v1/launch/preflight", body)
    assert status == 200, answer
    assert answer["would_launch"] is True
    assert {check["name"] for check in answer["checks"]} >= {
        "image",
        "dry_run",
        "instance_type_offered",
    }
    status, _, answer = service.request(
        "POST", "/v1/launch/preflight", {**body, "key_name": "nobody"}
    )
    assert status == 200 and answer["would_launch"] is False
    (failed,) = [check for check in answer["checks"] if not check["ok"]]
    assert (failed["name"], failed["code"]) == ("key_pair", "InvalidKeyPair.NotFound")
    assert len(faulty_process.calls(dry_run=True)) == 2 and faulty_process.calls() == []
    assert count_instances(moto_client) == before
