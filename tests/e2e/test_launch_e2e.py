"""End to end: PUT /v1/launch on a waitress process, to a moto server process, per adapter."""

from __future__ import annotations

import base64
import http.client
import json
import urllib.parse

import pytest

from tests.e2e.conftest import ADAPTERS, CREDENTIALS_ENV, running
from tests.support import ERROR_KEYS, GOOD_AMI, MISSING_AMI

pytestmark = pytest.mark.e2e


def check_error(status, body, expected):
    assert status == expected, body
    assert set(body) == ERROR_KEYS | ({"provider"} if expected == 408 else set())
    assert body["status"] == expected and body["message"]
    return body


def describe(client, instance_id):
    reply = client.describe_instances(InstanceIds=[instance_id])
    return reply["Reservations"][0]["Instances"][0]


def test_every_parameter_arrives(service, moto_client):
    groups = moto_client.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["web"]}]
    )["SecurityGroups"]
    if not groups:
        moto_client.create_security_group(GroupName="web", Description="web")
    user_data = "#!/bin/sh\necho launched by e2e\n"
    status, headers, ids = service.launch(
        {
            "ami": GOOD_AMI,
            "instance_type": "c5.large",
            "key_name": "scalacity_dev1",
            "security_groups": ["SSH", "web"],
            "user_data": user_data,
            "placement": "us-east-1d",
            "instance_initiated_shutdown_behavior": "stop",
            "ebs_optimized": True,
        }
    )
    assert status == 200, ids
    assert headers["Content-Type"].startswith("application/json")
    assert len(ids) == 1
    instance = describe(moto_client, ids[0])
    assert instance["ImageId"] == GOOD_AMI
    assert instance["InstanceType"] == "c5.large"
    assert instance["KeyName"] == "scalacity_dev1"
    assert sorted(group["GroupName"] for group in instance["SecurityGroups"]) == ["SSH", "web"]
    assert instance["Placement"]["AvailabilityZone"] == "us-east-1d"
    assert instance["EbsOptimized"] is True
    behaviour = moto_client.describe_instance_attribute(
        InstanceId=ids[0], Attribute="instanceInitiatedShutdownBehavior"
    )["InstanceInitiatedShutdownBehavior"]["Value"]
    assert behaviour == "stop"
    encoded = moto_client.describe_instance_attribute(InstanceId=ids[0], Attribute="userData")
    assert base64.b64decode(encoded["UserData"]["Value"]).decode() == user_data


def test_form_input_and_several_instances(service, moto_client):
    form = urllib.parse.urlencode(
        {"ami": GOOD_AMI, "instance_type": "t2.micro", "min_count": "2", "max_count": "2"}
    ).encode()
    status, _, ids = service.request(
        "PUT", "/v1/launch", form, content_type="application/x-www-form-urlencoded"
    )
    assert status == 200 and len(set(ids)) == 2
    for instance_id in ids:
        assert describe(moto_client, instance_id)["InstanceType"] == "t2.micro"


def test_an_unknown_ami_is_a_408_naming_the_providers_error(service, moto_client):
    status, _, body = service.launch({"ami": MISSING_AMI, "instance_type": "t2.micro"})
    check_error(status, body, 408)
    assert body["provider"]["name"] == service.adapter
    assert body["provider"]["code"] == "InvalidAMIID.NotFound"
    assert MISSING_AMI in body["provider"]["message"]


def test_moto_html_500_page_is_a_408(service, moto_client):
    """moto answers RunInstances naming a group that does not exist with an HTML 500 page."""
    status, _, body = service.launch(
        {"ami": GOOD_AMI, "instance_type": "t2.micro", "security_groups": ["no-such-group"]}
    )
    check_error(status, body, 408)
    assert body["provider"]["code"] == "MalformedResponse"
    assert "<html" not in body["provider"]["message"].lower()
    # A server error that repeats for this request: retrying cannot help.
    assert body["provider"]["retryable"] is False


def test_invalid_requests_are_400s(service, moto_client):
    status, _, body = service.launch({"ami": GOOD_AMI, "instancetype": "t2.micro"})
    check_error(status, body, 400)
    assert [item["name"] for item in body["details"]] == ["instancetype", "instance_type"]


def test_a_chunked_body_over_the_limit_is_a_413(service, moto_client):
    """A body sent in chunks (no Content-Length) is held to launchprov.max_body_size too."""
    from launchprov.settings import load

    limit = load({}, environ={})["launchprov.max_body_size"]
    body = json.dumps({"ami": GOOD_AMI, "instance_type": "t2.micro", "user_data": "x" * limit})
    chunks = [body[start : start + 4096].encode() for start in range(0, len(body), 4096)]
    before = len(moto_client.describe_instances()["Reservations"])
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=60)
    try:
        connection.request(
            "PUT",
            "/v1/launch",
            body=iter(chunks),
            headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        answer = json.loads(response.read())
    finally:
        connection.close()
    check_error(response.status, answer, 413)
    assert len(moto_client.describe_instances()["Reservations"]) == before


#: Requests whose answers must not depend on the adapter.
SAME_ANSWERS = [
    {"ami": GOOD_AMI, "instance_type": "t2.micro"},
    {"ami": GOOD_AMI, "instance_type": "t2.micro", "min_count": 2, "max_count": 2},
    {},
    {"ami": "ami-1", "instance_type": "t2.micro"},
    {"ami": GOOD_AMI, "instance_type": "t2.micro", "min_count": 3, "max_count": 2},
    {"ami": GOOD_AMI, "instance_type": "t2.micro", "bogus": 1},
    {"ami": MISSING_AMI, "instance_type": "t2.micro"},
    {"ami": GOOD_AMI, "instance_type": "t9.nothing"},
    {"ami": GOOD_AMI, "instance_type": "t2.micro", "key_name": "nobody"},
    {"ami": GOOD_AMI, "instance_type": "t2.micro", "security_groups": ["no-such-group"]},
]


def shape(value):
    """The shape of a JSON value: types and keys, not the values themselves."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in sorted(value.items()) if key != "message"}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def test_both_adapters_answer_alike(moto_process, moto_client):
    answers = {}
    for adapter, settings in ADAPTERS.items():
        with running(settings(moto_process), CREDENTIALS_ENV) as service:
            answers[adapter] = [service.launch(body) for body in SAME_ANSWERS]
    for body, ec2, libcloud in zip(SAME_ANSWERS, answers["ec2"], answers["libcloud"], strict=True):
        assert ec2[0] == libcloud[0], (body, ec2, libcloud)
        ec2_shape, libcloud_shape = shape(ec2[2]), shape(libcloud[2])
        if ec2[0] == 408:
            assert ec2[2]["provider"]["code"] == libcloud[2]["provider"]["code"], body
            ec2_shape["provider"].pop("name"), libcloud_shape["provider"].pop("name")
        assert ec2_shape == libcloud_shape, body


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_a_refused_connection_is_a_408(adapter, refusing_endpoint):
    with running(ADAPTERS[adapter](refusing_endpoint), CREDENTIALS_ENV) as service:
        status, _, body = service.launch({"ami": GOOD_AMI, "instance_type": "t2.micro"})
    check_error(status, body, 408)
    assert body["provider"]["code"] == "EndpointUnreachable"
    assert body["provider"]["retryable"] is True
    assert body["provider"]["outcome"] == "none"


SHORT_TIMEOUTS = {
    "ec2": {
        "launchprov.ec2.connect_timeout": "0.25",
        "launchprov.ec2.read_timeout": "0.25",
        "launchprov.ec2.max_attempts": "1",
    },
    "libcloud": {"launchprov.libcloud.timeout": "0.25"},
}


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_a_hanging_endpoint_is_a_408_and_frees_the_worker(adapter, hanging_endpoint):
    settings = ADAPTERS[adapter](hanging_endpoint, **SHORT_TIMEOUTS[adapter])
    with running(settings, CREDENTIALS_ENV) as service:
        # More requests than the service has threads: each must be answered, so every worker
        # that waited on the hanging endpoint was given back.
        for _ in range(6):
            status, _, body = service.launch({"ami": GOOD_AMI, "instance_type": "t2.micro"})
            check_error(status, body, 408)
            assert body["provider"]["code"] == "Timeout"
            # It may have launched, and without a client token a retry may launch again.
            assert body["provider"]["outcome"] == "unknown"
            assert body["provider"]["retryable"] is False
