"""The sandbox of development.ini: one account holding the deployment's defaults in every region
moto knows, validating launches the way EC2 does."""

from __future__ import annotations

import os

import boto3
import pytest

from launchprov.providers.sandbox import stop_sandbox
from tests.support import (
    DEFAULT_GROUP,
    DEFAULT_KEY,
    FAKE_CREDENTIALS,
    GOOD_AMI,
    assert_error_body,
    make_app,
)


@pytest.fixture(scope="module")
def sandbox():
    """One sandbox app for the module (starting one costs seconds), in an environment as
    isolated as every test's."""
    with pytest.MonkeyPatch.context() as env:
        for name in list(os.environ):
            if name.startswith(("LAUNCHPROV_", "AWS_")):
                env.delenv(name)
        for name, value in FAKE_CREDENTIALS.items():
            env.setenv(name, value)
        try:
            yield make_app(**{"launchprov.ec2.sandbox": "true"})
        finally:
            stop_sandbox()


def launch(app, **params):
    return app.put_json("/v1/launch", {"ami": GOOD_AMI, "instance_type": "t2.micro", **params},
                        status="*")  # fmt: skip


def instances_in(region: str) -> list[dict]:
    """Every instance of ``region``, as EC2 (here: the sandbox's moto) describes it."""
    reply = boto3.client("ec2", region_name=region).describe_instances()
    return [instance for r in reply["Reservations"] for instance in r["Instances"]]


# A sample of moto's regions: each region's first use costs moto a few hundred milliseconds.
@pytest.mark.parametrize("placement", ["us-west-2a", "eu-west-1b", "ap-southeast-2c"])
def test_the_defaults_exist_in_every_region(sandbox, placement):
    response = launch(sandbox, placement=placement)
    assert response.status_int == 200, response.text
    [instance_id] = response.json
    [instance] = [i for i in instances_in(placement[:-1]) if i["InstanceId"] == instance_id]
    assert instance["Placement"]["AvailabilityZone"] == placement
    assert instance["KeyName"] == DEFAULT_KEY
    assert [group["GroupName"] for group in instance["SecurityGroups"]] == [DEFAULT_GROUP]


def test_a_region_is_seeded_again_after_moto_resets(sandbox):
    # moto rebuilds a region's backend when it resets: the rebuilt one holds the defaults too.
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    ec2_backends[DEFAULT_ACCOUNT_ID]["sa-east-1"].reset()
    client = boto3.client("ec2", region_name="sa-east-1")
    assert client.describe_key_pairs(KeyNames=[DEFAULT_KEY])["KeyPairs"]
    groups = client.describe_security_groups(GroupNames=[DEFAULT_GROUP])["SecurityGroups"]
    assert [group["GroupName"] for group in groups] == [DEFAULT_GROUP]


@pytest.mark.parametrize("placement", ["us-east-1b", "us-west-2a"])
def test_an_unknown_security_group_is_invalid_group_not_found(sandbox, placement):
    before = len(instances_in(placement[:-1]))
    response = launch(sandbox, placement=placement, security_groups=[DEFAULT_GROUP, "nosuch"])
    provider = assert_error_body(response, 408)["provider"]
    assert provider["code"] == "InvalidGroup.NotFound"
    assert "'nosuch'" in provider["message"]
    assert provider["retryable"] is False
    assert "Retry-After" not in response.headers
    assert len(instances_in(placement[:-1])) == before  # nothing launched


def test_a_group_of_another_region_is_not_found(sandbox):
    boto3.client("ec2", region_name="eu-central-1").create_security_group(
        GroupName="web", Description="only in eu-central-1"
    )
    assert launch(sandbox, placement="eu-central-1a", security_groups=["web"]).status_int == 200
    response = launch(sandbox, placement="eu-west-2a", security_groups=["web"])
    assert assert_error_body(response, 408)["provider"]["code"] == "InvalidGroup.NotFound"
