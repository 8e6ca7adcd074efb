"""Hostile input: generated junk at every route never gets a 5xx, always gets the error body,
and an invalid request never reaches the provider. Secrets never reach the logs."""

from __future__ import annotations

import base64
import json
import logging
import types
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from launchprov.auth import digest
from launchprov.providers.interface import Instance, InstancePage
from launchprov.schemas import InstanceQuerySchema, LaunchSchema
from tests.support import GOOD_AMI, StubProvider, assert_error_body, make_app


class RecordingProvider(StubProvider):
    """Answers every call at once, and records them (one request at a time: provider calls run
    in a thread of the bulkhead, not of the request)."""

    name = "recording"
    calls = types.SimpleNamespace(made=[])

    def _record(self, operation):
        RecordingProvider.calls.made = [*getattr(RecordingProvider.calls, "made", []), operation]

    def _instance(self, instance_id="i-1"):
        return Instance(id=instance_id, state="running", launch_time=datetime.now(UTC))

    def ping(self, timeout):
        self._record("ping")

    def launch(self, request):
        self._record("launch")
        return ["i-1"]

    def describe(self, instance_id, region):
        self._record("describe")
        return self._instance(instance_id)

    def list_instances(self, query):
        self._record("list_instances")
        return InstancePage([self._instance()], None)

    def terminate(self, instance_id, region):
        self._record("terminate")
        return self._instance(instance_id)

    def stop(self, instance_id, region):
        self._record("stop")
        return self._instance(instance_id)

    def start(self, instance_id, region):
        self._record("start")
        return self._instance(instance_id)

    def reboot(self, instance_id, region):
        self._record("reboot")
        return self._instance(instance_id)


@pytest.fixture
def recording_app():
    """Made inside the test, in its isolated environment: never the shell's provider."""
    return make_app(**{"launchprov.provider": f"{__name__}:RecordingProvider"})


PATHS = [
    "/v1/launch",
    "/v1/instances",
    "/v1/instances/{id}",
    "/v1/instances/{id}/stop",
    "/v1/instances/{id}/start",
    "/v1/instances/{id}/reboot",
    "/healthz",
    "/v1/nothing/{id}",
]
PARAMETERS = [
    *(child.name for child in LaunchSchema().children),
    *(child.name for child in InstanceQuerySchema().children),
    "tag:role",
    "junk",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
json_bodies = st.one_of(
    st.dictionaries(st.sampled_from(PARAMETERS), json_values, max_size=6),
    json_values,
).map(lambda value: json.dumps(value).encode())
form_bodies = st.lists(
    st.tuples(st.sampled_from(PARAMETERS) | st.text(max_size=6), st.text(max_size=20)),
    max_size=6,
).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass"))
raw_bodies = st.binary(max_size=200) | st.just(b"[" * 5000) | st.just(b'{"ami": "\xff\xfe"}')

requests = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["GET", "PUT", "POST", "DELETE", "PATCH"]),
        "path": st.sampled_from(PATHS),
        "id": st.text(max_size=30) | st.sampled_from(["i-0123456789abcdef0", "1", "..", "%00"]),
        "query": st.lists(st.tuples(st.sampled_from(PARAMETERS), st.text(max_size=12)), max_size=4),
        "content_type": st.sampled_from(
            [
                "application/json",
                "application/x-www-form-urlencoded",
                "text/plain",
                "application/json; charset=latin-1",
                "",
                "multipart/form-data",
            ]
        ),
        "body": json_bodies | form_bodies | raw_bodies,
        "request_id": st.none() | st.text(max_size=140),
    }
)


def send(app, spec):
    from urllib.parse import quote, urlencode

    path = spec["path"].replace("{id}", quote(spec["id"], safe=""))
    if spec["query"]:
        path += "?" + urlencode(spec["query"])
    headers = {}
    if spec["content_type"]:
        headers["Content-Type"] = spec["content_type"]
    if spec["request_id"] is not None:
        headers["X-Request-ID"] = spec["request_id"].encode("utf-8", "replace").decode("latin-1")
    RecordingProvider.calls.made = []
    response = app.request(
        path, method=spec["method"], body=spec["body"], headers=headers, expect_errors=True
    )
    return response, RecordingProvider.calls.made


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        # One app for every example: the app keeps no state between requests.
        HealthCheck.function_scoped_fixture,
    ],
    derandomize=True,
)
@given(spec=requests)
def test_junk_never_breaks_the_contract(recording_app, spec):
    response, calls = send(recording_app, spec)
    assert response.status_int < 500, response.text
    assert "Traceback" not in response.text
    if response.status_int >= 400:
        assert_error_body(response, response.status_int)
        assert calls == [], (response.status_int, calls)


def test_the_generator_reaches_the_provider_too(recording_app):
    """The property above would hold vacuously if nothing valid were ever sent: it is not."""
    response, calls = send(
        recording_app,
        {
            "method": "PUT",
            "path": "/v1/launch",
            "id": "",
            "query": [],
            "content_type": "application/json",
            "body": json.dumps({"ami": "x", "instance_type": "y"}).encode(),
            "request_id": None,
        },
    )
    assert response.status_int == 200 and calls == ["launch"]


# -- what cannot be seen, and digits of other scripts, are refused before any call ------------


def test_a_fallback_instance_type_with_an_invisible_character_never_reaches_the_provider():
    app = make_app(
        **{
            "launchprov.provider": f"{__name__}:RecordingProvider",
            "launchprov.policy.instance_types": "t2.* t3.*",  # t3.micro\u202e matches t3.*
        }
    )
    body = {
        "ami": "x",
        "instance_type": "t2.micro",
        "fallback": [{"instance_type": "t3.micro\u202e"}],
    }
    response = app.put("/v1/launch", json.dumps(body), content_type="application/json", status=400)
    error = assert_error_body(response, 400)
    assert [item["name"] for item in error["details"]] == ["fallback"]
    assert "U+202E" in error["details"][0]["description"]
    assert RecordingProvider.calls.made == []


def test_digits_of_other_scripts_are_no_numbers_in_a_form_or_a_query(recording_app):
    # min_count=\u0662 is Arabic-Indic two: int() reads it as 2, and it launched two.
    response = recording_app.put(
        "/v1/launch",
        "ami=x&instance_type=y&min_count=%D9%A2&max_count=2",
        content_type="application/x-www-form-urlencoded",
        status=400,
    )
    error = assert_error_body(response, 400)
    assert [(item["location"], item["name"]) for item in error["details"]] == [
        ("body", "min_count")
    ]
    response = recording_app.get("/v1/instances?limit=%D9%A2", status=400)
    assert [item["name"] for item in assert_error_body(response, 400)["details"]] == ["limit"]
    assert RecordingProvider.calls.made == []


# -- secrets never reach the logs -------------------------------------------------------------

TOKEN = "tok-SECRET-7f3a9c0b1d2e"
USER_DATA = "#!/bin/sh\nexport DB_PASSWORD=USERDATA-SECRET-5b6c\n"


def test_logs_hold_no_token_credentials_or_user_data(moto_ec2, caplog, monkeypatch):
    aws_secret = "AWS-SECRET-KEY-31d4"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws_secret)
    app = make_app(
        **{
            "launchprov.auth.enabled": "true",
            "launchprov.auth.tokens": f"deployer {digest(TOKEN)}",
        }
    )
    caplog.set_level(logging.INFO)  # production.ini: the root at WARN, launchprov at INFO
    caplog.set_level(logging.DEBUG, logger="launchprov")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = {"ami": GOOD_AMI, "instance_type": "t2.micro", "user_data": USER_DATA}
    app.put("/v1/launch", json.dumps(body), content_type="application/json", headers=headers)
    missing = {**body, "ami": "ami-12345678"}  # a 408: the provider's failure is logged
    app.put(
        "/v1/launch",
        json.dumps(missing),
        content_type="application/json",
        headers=headers,
        status=408,
    )
    app.put(
        "/v1/launch",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {TOKEN}x"},
        status=401,
    )
    too_big = {**body, "user_data": USER_DATA * 400}  # over 16 KiB: a 400 naming user_data
    app.put(
        "/v1/launch",
        json.dumps(too_big),
        content_type="application/json",
        headers=headers,
        status=400,
    )
    logged = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
    assert "PUT launch 200" in logged  # the capture did capture
    secrets = [
        TOKEN,
        aws_secret,
        "USERDATA-SECRET-5b6c",
        base64.b64encode(USER_DATA.encode()).decode(),
    ]
    for secret in secrets:
        assert secret not in logged


@pytest.fixture(autouse=True)
def _fresh_calls():
    RecordingProvider.calls.made = []
