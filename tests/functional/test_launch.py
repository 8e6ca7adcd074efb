"""PUT /v1/launch through the app that launchprov.main builds, once per adapter."""

from __future__ import annotations

import base64
import json

import boto3
import pytest

from launchprov.launching import CLIENT_TOKEN_TAG
from tests.standins import Faults, RecordingProxy
from tests.support import (
    GOOD_AMI,
    MISSING_AMI,
    assert_error_body,
    detail_names,
    libcloud_ec2_settings,
    make_app,
    seed_account,
)

JSON = "application/json"


def put_json(app, body, status="*", **kw):
    return app.put("/v1/launch", json.dumps(body), content_type=JSON, status=status, **kw)


# -- 200 --------------------------------------------------------------------------------------


def test_launch_answers_a_json_list_of_instance_ids(backend):
    response = put_json(backend.app, {"ami": GOOD_AMI, "instance_type": "t2.micro"}, status=200)
    assert response.content_type == JSON
    ids = response.json
    assert isinstance(ids, list) and len(ids) == 1
    assert isinstance(ids[0], str) and ids[0]


def test_launch_several(backend):
    body = {"ami": GOOD_AMI, "instance_type": "t2.micro", "min_count": 3, "max_count": 3}
    ids = put_json(backend.app, body, status=200).json
    assert len(ids) == 3 and len(set(ids)) == 3


def test_form_body(backend):
    response = backend.app.put(
        "/v1/launch",
        {"ami": GOOD_AMI, "instance_type": "t2.micro", "min_count": "2", "max_count": "2"},
        status=200,
    )
    assert len(response.json) == 2


def test_query_string(backend):
    response = backend.app.put(f"/v1/launch?ami={GOOD_AMI}&instance_type=t2.micro", status=200)
    assert len(response.json) == 1


# -- 4xx: one error body shape ----------------------------------------------------------------


def test_missing_required_parameters(backend):
    body = assert_error_body(put_json(backend.app, {}), 400)
    assert detail_names(body) == ["ami", "instance_type"]
    assert {item["location"] for item in body["details"]} == {"body"}


def test_every_invalid_parameter_is_named(backend):
    body = assert_error_body(
        put_json(
            backend.app,
            {"ami": GOOD_AMI, "instancetype": "t2.micro", "min_count": "2", "max_count": None},
        ),
        400,
    )
    assert set(detail_names(body)) == {"instancetype", "instance_type", "min_count", "max_count"}


def test_query_string_errors_say_so(backend):
    body = assert_error_body(backend.app.put("/v1/launch?ami=", status="*"), 400)
    assert {item["location"] for item in body["details"]} == {"querystring"}


def test_malformed_json(backend):
    body = assert_error_body(
        backend.app.put("/v1/launch", b'{"ami": ', content_type=JSON, status="*"), 400
    )
    assert "not valid JSON" in body["message"]


def test_unsupported_media_type(backend):
    response = backend.app.put("/v1/launch", b"ami", content_type="text/plain", status="*")
    assert_error_body(response, 415)


def test_body_too_large(backend):
    big = {"ami": GOOD_AMI, "instance_type": "t2.micro", "user_data": "x" * 70000}
    assert_error_body(put_json(backend.app, big), 413)


def test_wrong_method_is_405_with_allow(backend):
    response = backend.app.get("/v1/launch", status="*")
    body = assert_error_body(response, 405)
    assert response.headers["Allow"] == "PUT"
    assert body["message"] == "GET is not allowed on /v1/launch; use PUT"


def test_unknown_path_is_404(backend):
    assert_error_body(backend.app.get("/v1/nothing", status="*"), 404)


# -- what arrived at EC2 ----------------------------------------------------------------------


def describe(client, instance_id):
    reservations = client.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservations[0]["Instances"][0]


def attribute(client, instance_id, name):
    reply = client.describe_instance_attribute(InstanceId=instance_id, Attribute=name)
    return reply[name[0].upper() + name[1:]]["Value"]


def test_every_parameter_arrives_at_ec2(ec2_backed):
    client = ec2_backed.ec2
    client.create_security_group(GroupName="web", Description="web")
    user_data = "#!/bin/sh\necho 'héllo'\n"
    body = {
        "ami": GOOD_AMI,
        "instance_type": "m5.large",
        "key_name": "scalacity_dev1",
        "security_groups": ["SSH", "web"],
        "user_data": user_data,
        "placement": "us-east-1c",
        "instance_initiated_shutdown_behavior": "stop",
    }
    (instance_id,) = put_json(ec2_backed.app, body, status=200).json
    instance = describe(client, instance_id)
    assert instance["ImageId"] == GOOD_AMI
    assert instance["InstanceType"] == "m5.large"
    assert instance["KeyName"] == "scalacity_dev1"
    assert sorted(group["GroupName"] for group in instance["SecurityGroups"]) == ["SSH", "web"]
    assert instance["Placement"]["AvailabilityZone"] == "us-east-1c"
    behaviour = attribute(client, instance_id, "instanceInitiatedShutdownBehavior")
    assert behaviour == "stop"
    encoded = client.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    assert base64.b64decode(encoded["UserData"]["Value"]).decode() == user_data


def test_the_seed_defaults_arrive_at_ec2(ec2_backed):
    body = {"ami": GOOD_AMI, "instance_type": "t2.micro"}
    (instance_id,) = put_json(ec2_backed.app, body, status=200).json
    instance = describe(ec2_backed.ec2, instance_id)
    assert instance["KeyName"] == "scalacity_dev1"
    assert [group["GroupName"] for group in instance["SecurityGroups"]] == ["SSH"]
    assert instance["Placement"]["AvailabilityZone"] == "us-east-1b"
    behaviour = attribute(ec2_backed.ec2, instance_id, "instanceInitiatedShutdownBehavior")
    assert behaviour == "terminate"


def test_another_region_from_the_placement(ec2_backed):
    other = boto3.client("ec2", region_name="eu-west-1", endpoint_url=ec2_backed.endpoint_url)
    seed_account(other)
    body = {"ami": GOOD_AMI, "instance_type": "t2.micro", "placement": "eu-west-1a"}
    (instance_id,) = put_json(ec2_backed.app, body, status=200).json
    assert describe(other, instance_id)["Placement"]["AvailabilityZone"] == "eu-west-1a"


# -- 408: the provider refused ----------------------------------------------------------------


def test_an_unknown_ami_is_a_408_with_the_providers_error(ec2_backed):
    response = put_json(ec2_backed.app, {"ami": MISSING_AMI, "instance_type": "t2.micro"})
    body = assert_error_body(response, 408)
    assert body["provider"]["name"] in ("ec2", "libcloud")
    assert body["provider"]["code"] == "InvalidAMIID.NotFound"
    assert MISSING_AMI in body["provider"]["message"]
    assert body["provider"]["retryable"] is False


def test_an_unknown_instance_type_is_a_408(ec2_backed):
    response = put_json(ec2_backed.app, {"ami": GOOD_AMI, "instance_type": "t9.enormous"})
    body = assert_error_body(response, 408)
    assert body["provider"]["code"] == "InvalidInstanceType.NotFound"


def test_an_unknown_key_pair_is_a_408(ec2_backed):
    body = {"ami": GOOD_AMI, "instance_type": "t2.micro", "key_name": "nobody"}
    error = assert_error_body(put_json(ec2_backed.app, body), 408)
    assert error["provider"]["code"] == "InvalidKeyPair.NotFound"
    assert error["provider"]["message"] == "The key pair 'nobody' does not exist"


def test_a_malformed_ami_never_reaches_ec2(ec2_backed):
    body = assert_error_body(put_json(ec2_backed.app, {"ami": "ami-1", "instance_type": "x"}), 400)
    assert detail_names(body) == ["ami"]


# -- what a driver cannot honour --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("key_name", "k"),
        ("security_groups", ["web"]),
        ("user_data", "x"),
        ("placement", "us-east-1b"),
        ("placement_group", "pg"),
        ("instance_initiated_shutdown_behavior", "terminate"),
        ("ebs_optimized", False),
    ],
)
def test_the_dummy_driver_refuses_what_it_cannot_honour(request, name, value):
    from tests.functional.conftest import libcloud_dummy_backend

    app = libcloud_dummy_backend(request).app
    body = assert_error_body(
        put_json(app, {"ami": "1", "instance_type": "small", name: value}), 400
    )
    assert detail_names(body) == [name]
    assert "dummy" in body["details"][0]["description"]


# -- a client-token retry that lists its tags and groups in another order ---------------------


def is_token_lookup(recorded) -> bool:
    return any(
        name.startswith("Filter.") and values == [f"tag:{CLIENT_TOKEN_TAG}"]
        for name, values in recorded.params.items()
    )


@pytest.mark.parametrize("adapter", ["ec2", "libcloud-ec2"])
@pytest.mark.parametrize("tags_visible", [True, False], ids=["by-tags", "by-client-token"])
def test_a_retry_naming_tags_and_groups_in_another_order_gets_the_first_launch(
    moto_server_ec2, moto_server_endpoint, adapter, tags_visible
):
    """Tags are a map and security groups a set: a retry that lists them in another order is
    the same launch. Found by the tag lookup (``by-tags``), or, when the first launch's tags
    are not visible yet, by EC2's ClientToken rule (``by-client-token``: the proxy keeps it as
    EC2 does, refusing the same token with other parameters), which needs the same request."""
    moto_server_ec2.create_security_group(GroupName="web", Description="web")
    runs = []

    def first_run_instances(recorded) -> bool:
        """The first launch reaches EC2, and its answer is lost."""
        if recorded.action == "RunInstances":
            runs.append(recorded)
        return recorded.action == "RunInstances" and len(runs) == 1

    faults = Faults(
        drop_reply=first_run_instances,
        hide=lambda recorded: not tags_visible and is_token_lookup(recorded),
    )
    proxy = RecordingProxy(moto_server_endpoint, faults)
    settings = {
        "ec2": {"launchprov.ec2.endpoint_url": proxy.url, "launchprov.ec2.max_attempts": "1"},
        "libcloud-ec2": libcloud_ec2_settings(proxy.url),
    }[adapter]
    app = make_app(**settings)
    body = {
        "ami": GOOD_AMI,
        "instance_type": "t2.micro",
        "tags": {"role": "web", "team": "infra", "cost": "ci"},
        "security_groups": ["SSH", "web"],
        "client_token": f"reordered-{adapter}",
    }
    retry = {
        **body,
        "tags": {"team": "infra", "cost": "ci", "role": "web"},
        "security_groups": ["web", "SSH"],
    }
    try:
        first = put_json(app, body)
        again = put_json(app, retry)
    finally:
        proxy.close()
    assert assert_error_body(first, 408)["provider"]["outcome"] == "unknown"
    assert again.status_int == 200, again.text
    # Where it lands: one launch at the cloud, whose instance the retry answered.
    reply = moto_server_ec2.describe_instances(
        Filters=[{"Name": f"tag:{CLIENT_TOKEN_TAG}", "Values": [body["client_token"]]}]
    )
    launched = [i["InstanceId"] for r in reply["Reservations"] for i in r["Instances"]]
    assert again.json == launched
