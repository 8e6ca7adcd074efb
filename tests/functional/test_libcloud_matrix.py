"""The libcloud conformance matrix: every profiled driver through launchprov's public surface.

Each driver runs behind the app that ``launchprov.main`` builds from ``launchprov.provider =
libcloud`` settings, over webtest, with its connection class pointed at the MockHttp and the
recorded replies that Apache Libcloud ships for its own driver tests (``tests/recorded.py``);
``ec2`` runs against a moto server and ``dummy`` in memory. The same checks run on each: launch
one and two, describe, list with a state filter, terminate, reboot, stop and start (or 501), an
unknown image, and every launch parameter set explicitly, honoured as the docs' driver matrix
says (the create_node argument it names arrives at the driver) or refused by name (400, before
any call): the generated table cannot drift from behaviour.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

import boto3
import pytest
import requests

from launchprov.providers.libcloud.profiles import (
    ABOVE_THE_ADAPTER,
    BY_THE_ADAPTER,
    PROFILES,
    action_matrix,
    parameter_matrix,
)
from launchprov.schemas import LaunchSchema
from tests.recorded import RECORDED, RecordedCloud
from tests.support import (
    GOOD_AMI,
    assert_error_body,
    detail_names,
    libcloud_ec2_settings,
    make_app,
)

#: Every launch parameter, in the API's order.
PARAMETERS = [node.name for node in LaunchSchema().children]

#: An explicit value of each parameter that every recording accepts (placement: per driver).
EXPLICIT = {
    "min_count": 1,
    "max_count": 1,
    "key_name": "scalacity_dev1",
    "security_groups": ["SSH"],
    "user_data": "#cloud-config\n",
    "placement_group": "cluster-1",
    "instance_initiated_shutdown_behavior": "stop",
    "ebs_optimized": True,
    "tags": {"role": "web"},
    "client_token": "matrix-token-1",
    "subnet_id": "subnet-12345678",  # EC2's: one of moto's, below
    "iam_instance_profile": "sandbox",
    "root_volume_size": 20,
    "root_volume_type": "gp3",
    "metadata_tokens": "optional",
    "spot": True,
    "fallback": [{"instance_type": "t3.micro"}],
    "expires_in": 3600,
}

DRIVERS = ["ec2", *RECORDED, "dummy"]


@dataclasses.dataclass
class Cloud:
    name: str
    app: object
    launch: dict
    explicit: dict
    known_id: str
    known_state: str
    known_fields: dict
    spy: Callable[[str], list]


def spy_on(monkeypatch, cls) -> Callable[[str], list]:
    """spy(method) -> the keyword arguments of every call of the driver's method."""
    spied: dict[str, list] = {}

    def spy(method: str) -> list:
        if method not in spied:
            calls = spied[method] = []
            original = getattr(cls, method)

            def recording(self, *args, **kwargs):
                calls.append(kwargs)
                return original(self, *args, **kwargs)

            monkeypatch.setattr(cls, method, recording)
        return spied[method]

    return spy


def _recorded_cloud(name: str, monkeypatch) -> Cloud:
    recorded: RecordedCloud = RECORDED[name]
    recorded.patch(monkeypatch)
    app = make_app(
        **{
            "launchprov.provider": "libcloud",
            "launchprov.libcloud.driver": recorded.driver,
            **recorded.settings,
        }
    )
    return Cloud(
        name,
        app,
        dict(recorded.launch),
        {**EXPLICIT, **recorded.explicit},
        recorded.known_id,
        recorded.known_state,
        recorded.known_fields,
        spy_on(monkeypatch, PROFILES[name].driver_class()),
    )


def _launched(app, launch) -> str:
    return app.put_json("/v1/launch", launch).json[0]


@pytest.fixture(params=DRIVERS)
def cloud(request, monkeypatch) -> Cloud:
    name = request.param
    if name in RECORDED:
        return _recorded_cloud(name, monkeypatch)
    if name == "dummy":
        app = make_app(**{"launchprov.provider": "libcloud", "launchprov.libcloud.driver": "dummy"})
        launch = {"ami": "img-1", "instance_type": "small"}
        known = _launched(app, launch)
        fields = {"instance_type": "small", "ami": "img-1"}
        explicit = {**EXPLICIT, "placement": "us-east-1b"}
    else:
        client = request.getfixturevalue("moto_server_ec2")
        app = make_app(**libcloud_ec2_settings(client.meta.endpoint_url))
        launch = {"ami": GOOD_AMI, "instance_type": "t2.micro"}
        known = _launched(app, launch)
        fields = {"instance_type": "t2.micro", "ami": GOOD_AMI, "placement": "us-east-1b"}
        subnet = client.describe_subnets(
            Filters=[{"Name": "availability-zone", "Values": ["us-east-1b"]}]
        )["Subnets"][0]["SubnetId"]
        iam = boto3.client("iam", region_name="us-east-1", endpoint_url=client.meta.endpoint_url)
        with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
            iam.create_instance_profile(InstanceProfileName="sandbox")
        explicit = {**EXPLICIT, "placement": "us-east-1b", "subnet_id": subnet}
    profile = PROFILES[name]
    return Cloud(
        name,
        app,
        launch,
        explicit,
        known,
        "running",
        fields,
        spy_on(monkeypatch, profile.driver_class()),
    )


def launch_body(cloud: Cloud, **extra) -> dict:
    return {**cloud.launch, **extra}


def test_launch_one(cloud):
    created = cloud.spy("create_node")

    ids = cloud.app.put_json("/v1/launch", launch_body(cloud)).json

    assert len(ids) == 1 and all(isinstance(i, str) and i for i in ids)
    assert len(created) == 1


def test_launch_two(cloud):
    created = cloud.spy("create_node")

    ids = cloud.app.put_json("/v1/launch", launch_body(cloud, min_count=2, max_count=2)).json

    assert len(ids) == 2
    # One RunInstances for both on EC2; one create_node per node elsewhere.
    assert len(created) == (1 if cloud.name == "ec2" else 2)


def test_describe(cloud):
    instance = cloud.app.get(f"/v1/instances/{cloud.known_id}").json

    assert instance["id"] == cloud.known_id
    assert instance["state"] == cloud.known_state
    for field, value in cloud.known_fields.items():
        assert instance[field] == value, field


def test_describe_unknown_is_404(cloud):
    missing = "i-0123456789abcdef0" if cloud.name == "ec2" else "no-such-node"
    assert_error_body(cloud.app.get(f"/v1/instances/{missing}", status=404), 404)


def test_list_with_a_state_filter(cloud):
    listed = cloud.app.get("/v1/instances", {"state": cloud.known_state}).json["instances"]
    others = [state for state in ("running", "pending") if state != cloud.known_state]
    unlisted = cloud.app.get("/v1/instances", {"state": others[0]}).json["instances"]

    assert cloud.known_id in [instance["id"] for instance in listed]
    assert {instance["state"] for instance in listed} == {cloud.known_state}
    assert cloud.known_id not in [instance["id"] for instance in unlisted]


@pytest.mark.parametrize("action", ["terminate", "reboot", "stop", "start"])
def test_action(cloud, action):
    method = action_matrix()[cloud.name][action]
    if cloud.name == "ec2":
        if action == "start":
            cloud.app.post(f"/v1/instances/{cloud.known_id}/stop")
        response = _act(cloud, action)
        assert response.status_int == 200, response.text
        assert response.json["id"] == cloud.known_id
        return
    calls = cloud.spy(method) if method else []
    response = _act(cloud, action)
    if method is None:
        body = assert_error_body(response, 501)
        assert action in body["message"]
        return
    assert response.status_int == 200, response.text
    assert response.json["id"] == cloud.known_id
    assert len(calls) == 1


def _act(cloud: Cloud, action: str):
    path = f"/v1/instances/{cloud.known_id}"
    if action == "terminate":
        return cloud.app.delete(path, status="*")
    return cloud.app.post(f"{path}/{action}", status="*")


@pytest.mark.parametrize("parameter", PARAMETERS)
def test_every_explicit_parameter_is_honoured_or_refused_as_the_docs_say(cloud, parameter):
    """The docs' driver matrix (parameter_matrix) against what the driver receives."""
    argument = parameter_matrix(PARAMETERS)[cloud.name][parameter]
    created = cloud.spy("create_node")
    body = launch_body(cloud)
    if parameter not in body:
        body[parameter] = cloud.explicit[parameter]

    response = cloud.app.put_json("/v1/launch", body, status="*")

    if argument is None:
        error = assert_error_body(response, 400)
        assert detail_names(error) == [parameter]
        assert created == []
        return
    assert response.status_int == 200, response.text
    assert created, "create_node was not called"
    if argument != BY_THE_ADAPTER and argument not in ABOVE_THE_ADAPTER.values():
        assert created[0].get(argument) is not None, (argument, created[0])


@pytest.mark.parametrize(
    ("looked_up", "parameter", "value", "code"),
    [
        ("images", "ami", "no-such-image-anywhere", "ImageNotFound"),
        ("sizes", "instance_type", "no-such-size", "SizeNotFound"),
    ],
)
def test_an_unknown_image_or_size_is_said_before_any_node_is_created(
    cloud, looked_up, parameter, value, code
):
    if cloud.name in ("ec2", "dummy"):
        pytest.skip(f"the {cloud.name} driver does not look {looked_up} up")
    created = cloud.spy("create_node")

    response = cloud.app.put_json(
        "/v1/launch", launch_body(cloud, **{parameter: value}), status="*"
    )

    body = assert_error_body(response, 408)
    assert body["provider"]["code"] == code
    assert body["provider"]["retryable"] is False
    assert created == []


@pytest.mark.parametrize(
    "lookup", ["list_images", "ex_get_image", "get_image", "list_sizes", "list_locations"]
)
def test_a_transport_failure_of_a_preflight_lookup_is_a_408_not_a_failed_check(
    cloud, lookup, monkeypatch
):
    if cloud.name in ("ec2", "dummy"):
        pytest.skip(f"the {cloud.name} driver has no catalog lookups (EC2: test_capacity)")
    driver_class = PROFILES[cloud.name].driver_class()
    if not hasattr(driver_class, lookup):
        pytest.skip(f"the {cloud.name} driver has no {lookup}")
    refused = []

    def refuse(self, *args, **kwargs):
        refused.append(lookup)
        raise requests.exceptions.ConnectionError("[Errno 111] Connection refused")

    monkeypatch.setattr(driver_class, lookup, refuse)
    response = cloud.app.post_json("/v1/launch/preflight", launch_body(cloud), status="*")
    if not refused:  # the launch needs no such lookup: the pre-flight passes without it
        assert response.json["would_launch"] is True, response.json
        return
    body = assert_error_body(response, 408)
    assert body["provider"]["code"] == "EndpointUnreachable", body
