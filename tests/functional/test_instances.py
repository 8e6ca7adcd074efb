"""The life of an instance through the app, once per adapter: one contract on every provider."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from launchprov.providers import paging
from tests.functional.conftest import BACKENDS
from tests.support import GOOD_AMI, assert_error_body, detail_names, seed_account

INSTANCE_KEYS = {
    "id",
    "state",
    "instance_type",
    "ami",
    "placement",
    "key_name",
    "security_groups",
    "private_ip",
    "public_ip",
    "private_dns",
    "public_dns",
    "launch_time",
    "subnet_id",
    "iam_instance_profile",
    "spot",
    "metadata_tokens",
    "expires_at",
    "tags",
}
STATES = {"pending", "running", "stopping", "stopped", "shutting-down", "terminated", "unknown"}


def launch(backend, count=1, **extra) -> list[str]:
    body = {"ami": GOOD_AMI, "instance_type": "t2.micro", "min_count": count, "max_count": count}
    body.update(extra)
    response = backend.app.put(
        "/v1/launch", json.dumps(body), content_type="application/json", status=200
    )
    assert isinstance(response.json, list) and len(response.json) == count
    return response.json


def caller_tags(instance: dict) -> dict:
    """The tags a caller set: without launchprov's own (launchprov:*)."""
    return {k: v for k, v in instance["tags"].items() if not k.startswith("launchprov:")}


def check_instance(instance: dict) -> dict:
    assert set(instance) == INSTANCE_KEYS
    assert instance["state"] in STATES
    assert isinstance(instance["tags"], dict)
    assert isinstance(instance["security_groups"], list)
    if instance["launch_time"] is not None:
        assert instance["launch_time"].endswith("Z")
    return instance


def describe(backend, instance_id, status=200):
    return backend.app.get(f"/v1/instances/{instance_id}", status=status)


def list_all(backend, query: str, limit: int) -> list[dict]:
    seen, token = [], None
    for _ in range(100):
        url = f"/v1/instances?{query}&limit={limit}" + (f"&next={token}" if token else "")
        body = backend.app.get(url, status=200).json
        assert set(body) == {"instances", "next"}
        assert len(body["instances"]) <= limit
        seen += [check_instance(item) for item in body["instances"]]
        token = body["next"]
        if token is None:
            return seen
    raise AssertionError("the listing never ended")


def unique_tag() -> str:
    return uuid.uuid4().hex[:12]


# -- describe ---------------------------------------------------------------------------------


def test_launch_with_tags_then_describe(backend):
    tags = {"role": "web", "team": "infra", "Name": "web-1"}
    (instance_id,) = launch(backend, tags=tags)
    instance = check_instance(describe(backend, instance_id).json)
    assert instance["id"] == instance_id
    assert caller_tags(instance) == tags
    assert instance["ami"] in (GOOD_AMI, None)
    assert instance["instance_type"] in ("t2.micro", None)


def test_every_instance_is_traced_to_its_caller_and_request(backend):
    body = {"ami": GOOD_AMI, "instance_type": "t2.micro"}
    response = backend.app.put(
        "/v1/launch",
        json.dumps(body),
        content_type="application/json",
        headers={"X-Request-ID": "trace-me-1"},
        status=200,
    )
    instance = describe(backend, response.json[0]).json
    assert caller_tags(instance) == {}
    assert instance["tags"] == {
        "launchprov:caller": "anonymous",
        "launchprov:request-id": "trace-me-1",
    }


def test_tags_in_form_input(backend):
    response = backend.app.put(
        "/v1/launch",
        {"ami": GOOD_AMI, "instance_type": "t2.micro", "tag:role": "db", "tag:tier": "2"},
        status=200,
    )
    (instance_id,) = response.json
    assert caller_tags(describe(backend, instance_id).json) == {"role": "db", "tier": "2"}


def test_ec2_backends_describe_every_field(ec2_backed):
    (instance_id,) = launch(ec2_backed, placement="us-east-1c")
    instance = check_instance(describe(ec2_backed, instance_id).json)
    assert instance["ami"] == GOOD_AMI
    assert instance["instance_type"] == "t2.micro"
    assert instance["placement"] == "us-east-1c"
    assert instance["key_name"] == "scalacity_dev1"
    assert instance["security_groups"] == ["SSH"]
    assert instance["private_ip"] and instance["private_dns"]
    assert instance["launch_time"].endswith("Z")


@pytest.mark.parametrize(
    ("tags", "fragment"),
    [
        ({"aws:x": "1"}, "reserved"),
        ({"launchprov:caller": "me"}, "reserved"),
        ({"": "1"}, "1 to 128"),
        ({"k" * 129: "1"}, "1 to 128"),
        ({"k": "v" * 257}, "at most 256"),
        ({f"k{i}": "v" for i in range(51)}, "at most 50"),
        ({"k": 1}, "expected a string value"),
        (["k"], "expected an object"),
    ],
)
def test_invalid_tags_are_400(backend, tags, fragment):
    body = {"ami": GOOD_AMI, "instance_type": "t2.micro", "tags": tags}
    response = backend.app.put(
        "/v1/launch", json.dumps(body), content_type="application/json", status="*"
    )
    error = assert_error_body(response, 400)
    assert detail_names(error) == ["tags"]
    assert fragment in error["details"][0]["description"]


def test_an_unknown_instance_is_404(backend):
    error = assert_error_body(describe(backend, backend.missing_id, status="*"), 404)
    assert backend.missing_id in error["message"]


@pytest.mark.parametrize("bad", ["i-zz", "bad%20id", "x" * 200, "%C3%A9"])
def test_a_malformed_id_is_400(backend, bad):
    if backend.name == "libcloud-dummy" and bad == "i-zz":
        pytest.skip("i-zz is a well-formed id for a driver without an id format")
    error = assert_error_body(describe(backend, bad, status="*"), 400)
    assert error["details"][0]["location"] == "path"


def test_an_unknown_query_parameter_is_400(backend):
    (instance_id,) = launch(backend)
    response = backend.app.get(f"/v1/instances/{instance_id}?regoin=us-east-1", status="*")
    assert detail_names(assert_error_body(response, 400)) == ["regoin"]


# -- list -------------------------------------------------------------------------------------


def test_list_by_tag_id_and_state(backend):
    tag = unique_tag()
    first, second = launch(backend, count=2, tags={"batch": tag})
    (other,) = launch(backend, tags={"batch": tag, "role": "odd"})
    by_tag = list_all(backend, f"tag:batch={tag}", limit=100)
    assert sorted(item["id"] for item in by_tag) == sorted([first, second, other])
    by_two_tags = list_all(backend, f"tag:batch={tag}&tag:role=odd", limit=100)
    assert [item["id"] for item in by_two_tags] == [other]
    by_id = list_all(backend, f"id={first}&id={other}", limit=100)
    assert sorted(item["id"] for item in by_id) == sorted([first, other])
    backend.app.delete(f"/v1/instances/{second}", status=200)
    terminated = list_all(backend, f"tag:batch={tag}&state=terminated&state=shutting-down", 100)
    assert [item["id"] for item in terminated] == [second]


def test_pages_hold_every_instance_once(backend, monkeypatch):
    """EC2 pages of 5 reservations or more, tokens carrying 2 ids: single launches make a
    provider page each per few instances; a batch of 12 is one reservation, larger than a
    page: the provider's pages, the ids carried and cuts read again are all used."""
    monkeypatch.setattr(paging, "CARRIED_IDS", 2)
    tag = unique_tag()
    ids = [instance_id for _ in range(20) for instance_id in launch(backend, tags={"b": tag})]
    ids += launch(backend, count=12, tags={"b": tag})
    for limit in (5, 7, 100):
        seen = [item["id"] for item in list_all(backend, f"tag:b={tag}", limit)]
        assert len(seen) == len(set(seen)) == 32, limit
        assert set(seen) == set(ids)


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("state=sleeping", "state"),
        ("next=garbage", "next"),
        ("region=mars", "region"),
        ("colour=red", "colour"),
        ("tag:aws:x=1", "tags"),
    ],
)
def test_bad_list_queries_are_400(backend, query, name):
    error = assert_error_body(backend.app.get(f"/v1/instances?{query}", status="*"), 400)
    assert detail_names(error) == [name]
    assert error["details"][0]["location"] == "querystring"


def test_a_region_the_provider_does_not_know_is_a_400_naming_the_query_string(request):
    """Well formed, so past the schema: libcloud's EC2 driver is the one to refuse it."""
    backend = BACKENDS["libcloud-ec2"](request)
    for path in ("/v1/instances", f"/v1/instances/{backend.missing_id}"):
        response = backend.app.get(f"{path}?region=xx-nowhere-9", status="*")
        assert assert_error_body(response, 400)["details"] == [
            {
                "location": "querystring",
                "name": "region",
                "description": "libcloud's EC2 driver does not know region xx-nowhere-9",
            }
        ]


# -- actions ----------------------------------------------------------------------------------


def test_terminate_then_terminate_again(backend):
    (instance_id,) = launch(backend)
    first = check_instance(backend.app.delete(f"/v1/instances/{instance_id}", status=200).json)
    assert first["state"] in ("shutting-down", "terminated")
    again = check_instance(backend.app.delete(f"/v1/instances/{instance_id}", status=200).json)
    assert again["id"] == instance_id and again["state"] in ("shutting-down", "terminated")


def test_stop_start_reboot(backend):
    (instance_id,) = launch(backend)
    url = f"/v1/instances/{instance_id}"
    if not backend.can_stop:
        for action in ("stop", "start"):
            error = assert_error_body(backend.app.post(f"{url}/{action}", status="*"), 501)
            assert action in error["message"] and "libcloud" in error["message"]
    else:
        stopped = backend.app.post(f"{url}/stop", status=200).json
        assert stopped["state"] in ("stopping", "stopped")
        started = backend.app.post(f"{url}/start", status=200).json
        assert started["state"] in ("pending", "running")
    rebooted = check_instance(backend.app.post(f"{url}/reboot", status=200).json)
    assert rebooted["state"] in ("pending", "running")


def test_actions_the_state_forbids_are_409(backend):
    (instance_id,) = launch(backend)
    url = f"/v1/instances/{instance_id}"
    backend.app.delete(url, status=200)
    actions = ("start", "stop", "reboot") if backend.can_stop else ("reboot",)
    for action in actions:
        error = assert_error_body(backend.app.post(f"{url}/{action}", status="*"), 409)
        assert "terminated" in error["message"] or "shutting-down" in error["message"]
    assert describe(backend, instance_id).json["state"] in ("shutting-down", "terminated")


def test_actions_on_an_unknown_instance_are_404(backend):
    url = f"/v1/instances/{backend.missing_id}"
    assert_error_body(backend.app.delete(url, status="*"), 404)
    assert_error_body(backend.app.post(f"{url}/reboot", status="*"), 404)


def test_unknown_actions_and_methods(backend):
    (instance_id,) = launch(backend)
    assert_error_body(backend.app.post(f"/v1/instances/{instance_id}/explode", status="*"), 404)
    response = backend.app.put(f"/v1/instances/{instance_id}", status="*")
    assert_error_body(response, 405)
    assert response.headers["Allow"] == "GET, DELETE"
    response = backend.app.get(f"/v1/instances/{instance_id}/stop", status="*")
    assert_error_body(response, 405)
    assert response.headers["Allow"] == "POST"


def test_instances_of_another_region_are_found_with_region(ec2_backed):
    other = boto3.client("ec2", region_name="eu-west-1", endpoint_url=ec2_backed.endpoint_url)
    seed_account(other)
    (instance_id,) = launch(ec2_backed, placement="eu-west-1a")
    assert_error_body(describe(ec2_backed, instance_id, status="*"), 404)
    found = describe(ec2_backed, f"{instance_id}?region=eu-west-1").json
    assert found["placement"] == "eu-west-1a"
    listed = list_all(ec2_backed, f"id={instance_id}&region=eu-west-1", limit=10)
    assert [item["id"] for item in listed] == [instance_id]
