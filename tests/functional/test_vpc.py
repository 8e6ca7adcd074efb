"""Launching as a real AWS account does: into a subnet, with an instance profile, a sized root
volume, IMDSv2 and spot; and the policy rules for each. Checked where it lands: at EC2."""

from __future__ import annotations

import contextlib
import hashlib
import json

import boto3
import pytest

from tests.support import GOOD_AMI, MISSING_AMI, assert_error_body, detail_names, make_app

LAUNCH = {"ami": GOOD_AMI, "instance_type": "t3.micro"}


def put(app, body, status="*", path="/v1/launch", method="put"):
    return getattr(app, method)(
        path, json.dumps(body), content_type="application/json", status=status
    )


def provider_calls(app) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in app.get("/metrics").text.splitlines()
        if line.startswith("launchprov_provider_calls_total{")
    )


def subnet_of(client, zone: str) -> str:
    subnets = client.describe_subnets(Filters=[{"Name": "availability-zone", "Values": [zone]}])
    return subnets["Subnets"][0]["SubnetId"]


def describe(client, instance_id: str) -> dict:
    return client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def root_volume(client, instance: dict) -> dict:
    (mapping,) = [
        item
        for item in instance["BlockDeviceMappings"]
        if item["DeviceName"] == instance["RootDeviceName"]
    ]
    return client.describe_volumes(VolumeIds=[mapping["Ebs"]["VolumeId"]])["Volumes"][0]


@pytest.fixture
def account(moto_ec2):
    """The in-process moto account, with the instance profile ``sandbox`` besides."""
    boto3.client("iam", region_name="us-east-1").create_instance_profile(
        InstanceProfileName="sandbox"
    )
    return moto_ec2


@pytest.fixture
def app(account):
    return make_app(**{"launchprov.provider": "ec2"})


#: An EC2 endpoint where nothing listens: for requests that must be answered before any call.
NOWHERE = {"launchprov.ec2.endpoint_url": "http://127.0.0.1:9", "launchprov.ec2.max_attempts": "1"}


@pytest.fixture(scope="module")
def offline_app():
    """An app whose provider cannot be reached: what it answers, it answers without a call."""
    return make_app(**NOWHERE)


def test_every_new_parameter_arrives_at_ec2(app, account):
    subnet = subnet_of(account, "us-east-1c")
    body = {
        **LAUNCH,
        "subnet_id": subnet,
        "iam_instance_profile": "sandbox",
        "root_volume_size": 30,
        "root_volume_type": "gp3",
        "metadata_tokens": "optional",
        "spot": True,
    }
    (instance_id,) = put(app, body, status=200).json
    instance = describe(account, instance_id)
    assert instance["SubnetId"] == subnet
    # The zone is the subnet's, not the deployment's default placement (us-east-1b).
    assert instance["Placement"]["AvailabilityZone"] == "us-east-1c"
    assert instance["IamInstanceProfile"]["Arn"].endswith(":instance-profile/sandbox")
    assert instance["MetadataOptions"]["HttpTokens"] == "optional"
    assert instance["InstanceLifecycle"] == "spot"
    volume = root_volume(account, instance)
    assert (volume["Size"], volume["VolumeType"]) == (30, "gp3")

    shown = app.get(f"/v1/instances/{instance_id}", status=200).json
    assert shown["subnet_id"] == subnet
    assert shown["iam_instance_profile"] == instance["IamInstanceProfile"]["Arn"]
    assert (shown["spot"], shown["metadata_tokens"]) == (True, "optional")


def test_an_instance_profile_by_arn(app, account):
    arn = "arn:aws:iam::123456789012:instance-profile/sandbox"
    (instance_id,) = put(app, {**LAUNCH, "iam_instance_profile": arn}, status=200).json
    assert describe(account, instance_id)["IamInstanceProfile"]["Arn"] == arn


def test_a_launch_without_them_gets_imdsv2_and_nothing_else(app, account):
    (instance_id,) = put(app, LAUNCH, status=200).json
    instance = describe(account, instance_id)
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert instance["Placement"]["AvailabilityZone"] == "us-east-1b"
    assert "InstanceLifecycle" not in instance and "IamInstanceProfile" not in instance
    shown = app.get(f"/v1/instances/{instance_id}", status=200).json
    assert (shown["spot"], shown["metadata_tokens"]) == (False, "required")
    assert shown["iam_instance_profile"] is None


def test_the_deployment_may_default_to_imdsv1(account):
    app = make_app(**{"launchprov.defaults.metadata_tokens": "optional"})
    (instance_id,) = put(app, LAUNCH, status=200).json
    assert describe(account, instance_id)["MetadataOptions"]["HttpTokens"] == "optional"


def test_an_unknown_instance_profile_is_the_providers_error(app, account):
    response = put(app, {**LAUNCH, "iam_instance_profile": "nobody"})
    assert assert_error_body(response, 408)["provider"]["code"] == "NoSuchEntity"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("subnet_id", "subnet-xyz"),
        ("subnet_id", "sg-0123456789abcdef0"),
        ("iam_instance_profile", "arn:aws:iam::123456789012:role/web"),
        ("iam_instance_profile", "has space"),
        ("root_volume_size", 0),
        ("root_volume_size", 16385),
        ("root_volume_size", "30"),
        ("root_volume_type", "gp4"),
        ("metadata_tokens", "no"),
        ("spot", "yes"),
        ("spot", None),
        ("fallback", []),
        ("fallback", [{}]),
        ("fallback", [{"instance_type": "t3.small", "ami": GOOD_AMI}]),
        ("fallback", [{"placement": "nowhere"}]),
        ("fallback", [{"subnet_id": "subnet-1"}]),
        ("fallback", [{"instance_type": 3}]),
        ("fallback", [{"instance_type": "t3.small"}] * 11),
        ("fallback", {"instance_type": "t3.small"}),
        ("fallback", [{"placement": "eu-west-1a"}]),
    ],
)
@pytest.mark.parametrize("path", ["/v1/launch", "/v1/launch/preflight"])
def test_bad_values_are_400s_naming_the_parameter(offline_app, name, value, path):
    method = "put" if path == "/v1/launch" else "post"
    body = assert_error_body(
        put(offline_app, {**LAUNCH, name: value}, path=path, method=method), 400
    )
    assert detail_names(body) == [name]
    assert provider_calls(offline_app) == 0


def test_fallback_in_a_form_is_json_text(app, account):
    form = {**LAUNCH, "fallback": json.dumps([{"instance_type": "t3.small"}])}
    response = app.put("/v1/launch", form, status=200)
    tags = describe(account, response.json[0])["Tags"]
    assert {"Key": "launchprov:alternative", "Value": "0"} in tags


POLICY_CASES = [
    ({"launchprov.policy.subnets": "subnet-0aaa*"}, {"subnet_id": "subnet-12345678"}, "subnet_id"),
    (
        {"launchprov.policy.iam_instance_profiles": "web-*"},
        {"iam_instance_profile": "sandbox"},
        "iam_instance_profile",
    ),
    (
        {"launchprov.policy.max_root_volume_size": "100"},
        {"root_volume_size": 101},
        "root_volume_size",
    ),
    (
        {"launchprov.policy.metadata_tokens": "required"},
        {"metadata_tokens": "optional"},
        "metadata_tokens",
    ),
    ({"launchprov.policy.spot": "required"}, {}, "spot"),
    ({"launchprov.policy.spot": "forbidden"}, {"spot": True}, "spot"),
    (
        {"launchprov.policy.instance_types": "t3.*"},
        {"fallback": [{"instance_type": "t3.small"}, {"instance_type": "m5.large"}]},
        "fallback[1].instance_type",
    ),
    (
        {"launchprov.policy.placements": "us-east-1b"},
        {"fallback": [{"placement": "us-east-1c"}]},
        "fallback[0].placement",
    ),
    (
        {"launchprov.policy.subnets": "subnet-0aaa*"},
        {"fallback": [{"subnet_id": "subnet-12345678"}]},
        "fallback[0].subnet_id",
    ),
]


@pytest.mark.parametrize(("settings", "body", "parameter"), POLICY_CASES)
def test_a_request_breaking_a_rule_is_a_403_before_any_provider_call(settings, body, parameter):
    app = make_app(**NOWHERE, **settings)
    for path, method in (("/v1/launch", "put"), ("/v1/launch/preflight", "post")):
        error = assert_error_body(put(app, {**LAUNCH, **body}, path=path, method=method), 403)
        assert detail_names(error) == [parameter]
        assert next(iter(settings)) in error["message"]
    assert provider_calls(app) == 0


def test_requests_within_the_new_rules_launch(account):
    subnet = subnet_of(account, "us-east-1b")
    app = make_app(
        **{
            "launchprov.policy.subnets": "subnet-*",
            "launchprov.policy.iam_instance_profiles": "sand*",
            "launchprov.policy.max_root_volume_size": "100",
            "launchprov.policy.metadata_tokens": "required",
            "launchprov.policy.spot": "required",
        }
    )
    body = {
        **LAUNCH,
        "subnet_id": subnet,
        "iam_instance_profile": "sandbox",
        "root_volume_size": 100,
        "spot": True,
    }
    (instance_id,) = put(app, body, status=200).json
    assert describe(account, instance_id)["InstanceLifecycle"] == "spot"


def test_a_callers_own_rule_for_spot(account):
    token = "batch-secret-token"
    digest = hashlib.sha256(token.encode()).hexdigest()
    app = make_app(
        **{
            "launchprov.auth.enabled": "true",
            "launchprov.auth.tokens": f"batch {digest}",
            "launchprov.policy.spot": "forbidden",
            "launchprov.policy.batch.spot": "allowed",
        }
    )
    response = app.put(
        "/v1/launch",
        json.dumps({**LAUNCH, "spot": True}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
        status=200,
    )
    assert describe(account, response.json[0])["InstanceLifecycle"] == "spot"


@pytest.fixture
def sandbox():
    from launchprov.providers.sandbox import stop_sandbox

    try:
        yield make_app(**{"launchprov.ec2.sandbox": "true"})
    finally:
        stop_sandbox()


def test_the_sandbox_has_a_subnet_per_zone_an_instance_profile_and_a_type_out_of_capacity(sandbox):
    (plain,) = put(sandbox, LAUNCH, status=200).json
    subnet = sandbox.get(f"/v1/instances/{plain}").json["subnet_id"]
    body = {**LAUNCH, "subnet_id": subnet, "iam_instance_profile": "sandbox", "spot": True}
    assert put(sandbox, body, path="/v1/launch/preflight", method="post", status=200).json[
        "would_launch"
    ]
    (instance_id,) = put(sandbox, body, status=200).json
    shown = sandbox.get(f"/v1/instances/{instance_id}").json
    assert (shown["subnet_id"], shown["spot"]) == (subnet, True)
    assert shown["iam_instance_profile"].endswith(":instance-profile/sandbox")

    out = {**LAUNCH, "instance_type": "p4d.24xlarge"}
    error = assert_error_body(put(sandbox, out), 408)
    assert error["provider"]["code"] == "InsufficientInstanceCapacity"
    (fell_back,) = put(
        sandbox, {**out, "fallback": [{"instance_type": "t3.large"}]}, status=200
    ).json
    shown = sandbox.get(f"/v1/instances/{fell_back}").json
    assert shown["instance_type"] == "t3.large"
    assert shown["tags"]["launchprov:alternative"] == "1"


# -- every adapter with an EC2 behind it ------------------------------------------------------


def test_the_new_parameters_arrive_through_every_ec2_adapter(ec2_backed):
    client = ec2_backed.ec2
    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=ec2_backed.endpoint_url)
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_instance_profile(InstanceProfileName="sandbox")
    subnet = subnet_of(client, "us-east-1c")
    body = {
        **LAUNCH,
        "subnet_id": subnet,
        "iam_instance_profile": "sandbox",
        "root_volume_size": 12,
        "root_volume_type": "gp3",
        "metadata_tokens": "optional",
        "spot": True,
    }
    (instance_id,) = put(ec2_backed.app, body, status=200).json
    instance = describe(client, instance_id)
    assert (instance["SubnetId"], instance["Placement"]["AvailabilityZone"]) == (
        subnet,
        "us-east-1c",
    )
    assert instance["IamInstanceProfile"]["Arn"].endswith(":instance-profile/sandbox")
    assert instance["MetadataOptions"]["HttpTokens"] == "optional"
    assert instance["InstanceLifecycle"] == "spot"
    volume = root_volume(client, instance)
    assert (volume["Size"], volume["VolumeType"]) == (12, "gp3")
    shown = ec2_backed.app.get(f"/v1/instances/{instance_id}", status=200).json
    assert (shown["subnet_id"], shown["spot"]) == (subnet, True)
    # Without them: IMDSv2, the seed's placement.
    (plain,) = put(ec2_backed.app, LAUNCH, status=200).json
    assert describe(client, plain)["MetadataOptions"]["HttpTokens"] == "required"


def test_security_group_ids_go_with_a_subnet_on_every_ec2_adapter(ec2_backed):
    client = ec2_backed.ec2
    subnet = client.describe_subnets(
        Filters=[{"Name": "availability-zone", "Values": ["us-east-1a"]}]
    )["Subnets"][0]
    group = client.create_security_group(
        GroupName=f"web-{subnet['SubnetId']}", Description="web", VpcId=subnet["VpcId"]
    )["GroupId"]
    body = {**LAUNCH, "subnet_id": subnet["SubnetId"], "security_groups": [group]}
    (instance_id,) = put(ec2_backed.app, body, status=200).json
    assert [item["GroupId"] for item in describe(client, instance_id)["SecurityGroups"]] == [group]


def test_the_preflight_of_every_ec2_adapter_names_its_checks(ec2_backed):
    before = len(ec2_backed.ec2.describe_instances()["Reservations"])
    answer = put(
        ec2_backed.app, LAUNCH, path="/v1/launch/preflight", method="post", status=200
    ).json
    assert answer["would_launch"] is True, answer
    assert {"image", "instance_type_offered"} <= {check["name"] for check in answer["checks"]}
    body = {**LAUNCH, "ami": MISSING_AMI, "instance_type": "t9.nothing"}
    answer = put(ec2_backed.app, body, path="/v1/launch/preflight", method="post", status=200).json
    failed = {check["name"]: check["code"] for check in answer["checks"] if not check["ok"]}
    assert failed["image"] == "InvalidAMIID.NotFound"
    assert failed["instance_type_offered"] == "Unsupported"
    assert len(ec2_backed.ec2.describe_instances()["Reservations"]) == before


def test_a_driver_that_cannot_honour_them_refuses_each_by_name():
    app = make_app(**{"launchprov.provider": "libcloud", "launchprov.libcloud.driver": "dummy"})
    body = {"ami": "1", "instance_type": "1", "subnet_id": "subnet-12345678", "spot": True}
    for path, method in (("/v1/launch", "put"), ("/v1/launch/preflight", "post")):
        error = assert_error_body(put(app, body, path=path, method=method), 400)
        assert detail_names(error) == ["spot", "subnet_id"]
    # What it can do, it checks: its catalog lookups (none for the dummy) and the parameters.
    answer = put(
        app,
        {"ami": "1", "instance_type": "1"},
        path="/v1/launch/preflight",
        method="post",
        status=200,
    ).json
    assert answer == {
        "would_launch": True,
        "checks": [{"name": "parameters", "ok": True, "code": None, "message": None}],
    }


def test_a_root_volume_type_alone_keeps_the_images_size(app, account):
    image = account.describe_images(ImageIds=[GOOD_AMI])["Images"][0]
    (size,) = [
        mapping["Ebs"]["VolumeSize"]
        for mapping in image["BlockDeviceMappings"]
        if mapping["DeviceName"] == image["RootDeviceName"]
    ]
    (instance_id,) = put(app, {**LAUNCH, "root_volume_type": "gp3"}, status=200).json
    volume = root_volume(account, describe(account, instance_id))
    assert (volume["Size"], volume["VolumeType"]) == (size, "gp3")
