"""The OpenAPI document: valid, generated from the schemas, and kept by the running app.

schemathesis generates requests from the document alone, valid and invalid, and runs all of
its checks on the answers (status codes documented, bodies matching their schemas, invalid
data rejected, valid data accepted -- with 404 and the seed's 408 expected for valid data that
the cloud refuses, see schemathesis.toml).
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.core import NotSet

from launchprov.auth import digest
from launchprov.openapi import build_document
from launchprov.providers.ec2 import EC2Provider
from launchprov.routes import ROUTES
from launchprov.schemas import Validators
from launchprov.settings import launch_defaults, load
from tests.support import GOOD_AMI, make_app

# As production runs it: authentication on, one caller.
TOKEN = "schemathesis-token-0123456789"
SECURED = {"launchprov.auth.enabled": "true", "launchprov.auth.tokens": f"st {digest(TOKEN)}"}


@pytest.fixture
def secured_app(moto_ec2):
    """The app as production runs it, made inside the test (the isolated environment: fake
    credentials only, its calls go to moto's EC2)."""
    return make_app(**SECURED)


def _number(value):
    """A count as JSON or as query-string text gives it; None for anything else."""
    if type(value) in (int, float):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def filter_case(context, case):
    """Leave out what JSON Schema cannot say, and the document says in words instead:
    min_count above max_count and an Idempotency-Key that differs from client_token (rules
    across two fields), a fallback placement outside the request's region, a launch with both
    a body and a query string, or with neither a body nor ami and instance_type in its query
    string (rules across two places), and ``next``
    tokens that this service did not make (an opaque token has no schema beyond "a string")."""
    has_body = case.body is not None and not isinstance(case.body, NotSet)
    query = case.query or {}
    if case.operation.path in ("/v1/launch", "/v1/launch/preflight"):  # the same parameters
        if has_body and query:
            return False  # parameters come from the body or the query string, never both
        if not has_body and not {"ami", "instance_type"} <= set(query):
            return False  # without a body, the query string carries the required ones
    # A launch's parameters: in its body, or in its query string.
    params = case.body if isinstance(case.body, dict) else {} if has_body else query
    key = (case.headers or {}).get("Idempotency-Key")
    if key is not None and params.get("client_token") not in (None, key):
        return False
    counts = [_number(params.get(name, 1)) for name in ("min_count", "max_count")]  # 1: default
    if None not in counts and counts[0] > counts[1]:
        return False
    if "fallback" in query:
        return False  # in a query string, fallback is JSON text: the document says it in words
    if isinstance(params.get("fallback"), list) and any(
        isinstance(item, dict) and "placement" in item for item in params["fallback"]
    ):
        return False  # a fallback placement in another region than the request's
    return "next" not in (case.query or {})


def secured_document() -> dict:
    """The document of a secured EC2 deployment with the default settings, made without an app
    and without reading the environment: schemathesis makes its tests from it when the module
    is collected, and :func:`test_the_app_serves_the_document_tested` holds the app to it."""
    parsed = load(SECURED, environ={})
    defaults = launch_defaults(parsed, EC2Provider.cloud_defaults)
    document = build_document(Validators(defaults, EC2Provider), EC2Provider.name, True)
    return json.loads(json.dumps(document))


SECURED_DOCUMENT = secured_document()
schema = schemathesis.openapi.from_dict(SECURED_DOCUMENT)
schema.hook(filter_case)


def test_the_app_serves_the_document_tested(secured_app):
    assert secured_app.get("/v1/openapi.json", status=200).json == SECURED_DOCUMENT


@pytest.fixture
def document(moto_ec2):
    return make_app().get("/v1/openapi.json", status=200).json


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_route_and_method_is_documented(document):
    for name, route in ROUTES.items():
        paths = [route.pattern]
        if "{action:" in route.pattern:
            prefix, _, rest = route.pattern.partition("{action:")
            paths = [prefix + action for action in rest.rstrip("}").split("|")]
        for path in paths:
            for method in route.methods:
                assert method.lower() in document["paths"][path], (name, path, method)


def test_the_launch_body_is_the_seeds_table(document):
    body = document["paths"]["/v1/launch"]["put"]["requestBody"]["content"]["application/json"]
    properties = body["schema"]["properties"]
    assert body["schema"]["required"] == ["ami", "instance_type"]
    assert body["schema"]["additionalProperties"] is False
    assert properties["min_count"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 1000,
        "default": 1,
    }
    # The deployment's defaults, in words and in an extension, never as "default".
    for name, value in [
        ("key_name", "scalacity_dev1"),
        ("security_groups", ["SSH"]),
        ("placement", "us-east-1b"),
    ]:
        assert "default" not in properties[name]
        assert properties[name]["x-deployment-default"] == {
            "setting": f"launchprov.defaults.{name}",
            "value": value,
        }
        assert f"launchprov.defaults.{name}" in properties[name]["description"]
    assert properties["instance_initiated_shutdown_behavior"]["enum"] == ["stop", "terminate"]
    assert properties["instance_initiated_shutdown_behavior"]["default"] == "terminate"
    assert properties["ebs_optimized"] == {"type": "boolean", "default": False}
    assert properties["ami"]["pattern"] == "^ami-(?:[0-9a-f]{8}|[0-9a-f]{17})$"
    assert properties["user_data"]["maxLength"] == 16384
    assert properties["tags"]["maxProperties"] == 50


def test_the_document_follows_the_deployments_defaults(moto_ec2):
    app = make_app(
        **{"launchprov.defaults.key_name": "ops", "launchprov.defaults.placement": "eu-west-1a"}
    )
    document = app.get("/v1/openapi.json").json
    properties = document["paths"]["/v1/launch"]["put"]["requestBody"]["content"][
        "application/json"
    ]["schema"]["properties"]
    assert properties["key_name"]["x-deployment-default"]["value"] == "ops"
    assert "(here ops)" in properties["key_name"]["description"]
    assert properties["placement"]["x-deployment-default"]["value"] == "eu-west-1a"
    region = next(
        parameter
        for parameter in document["paths"]["/v1/instances"]["get"]["parameters"]
        if parameter["name"] == "region"
    )
    assert "default" not in region["schema"]
    assert "(here eu-west-1)" in region["schema"]["description"]


def test_no_deployment_default_is_a_default_anywhere(document):
    """A generated client sends a parameter's default on every call: one deployment's default
    must never reach another (its key pair, its zone, its region)."""
    found = []

    def walk(value, path):
        if isinstance(value, dict):
            if "x-deployment-default" in value and "default" in value:
                found.append(path)
            for key, item in value.items():
                walk(item, f"{path}/{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}/{index}")

    walk(document, "")
    assert found == []
    text = json.dumps(document)
    assert text.count("x-deployment-default") >= 4  # launch: 3; every region parameter


def test_without_authentication_the_document_asks_for_no_token(document):
    assert "security" not in document
    assert not any(
        "401" in op["responses"] for ops in document["paths"].values() for op in ops.values()
    )


def test_with_authentication_every_api_route_asks_for_a_token(secured_app):
    served = secured_app.get("/v1/openapi.json").json
    launch = served["paths"]["/v1/launch"]["put"]
    assert served["security"] == [{"bearer": []}] and "401" in launch["responses"]
    for path in ("/healthz", "/readyz", "/metrics", "/v1/openapi.json"):
        assert served["paths"][path]["get"]["security"] == []


def test_every_408_is_documented_with_the_provider_error(document):
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if "408" in operation["responses"]:
                content = operation["responses"]["408"]["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/ProviderError"}, path


def test_a_launch_answers_as_documented(moto_ec2, document):
    """One positive launch, so the 200 path is always exercised, whatever hypothesis draws."""
    app = make_app()
    ids = app.put(
        "/v1/launch",
        json.dumps({"ami": GOOD_AMI, "instance_type": "t2.micro"}),
        content_type="application/json",
    ).json
    instance = app.get(f"/v1/instances/{ids[0]}").json
    assert set(instance) == set(document["components"]["schemas"]["Instance"]["required"])


@schema.parametrize()
@settings(
    # Beyond schemathesis's coverage phase (every boundary and every kind of invalid value of
    # each parameter, made when the module is collected), 12 generated examples per operation:
    # drawing a launch body is most of the cost (with 25, this module took 40 s of the suite's
    # time; with 12, 25 s). The examples are derandomized: the same ones every run.
    max_examples=12,
    deadline=None,
    # moto's EC2 holds one account for the whole run of examples, which is what is wanted.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
    derandomize=True,
)
def test_the_app_keeps_its_document(case, secured_app, monkeypatch):
    # schemathesis's own probes (a request without the token, for one) go to the schema's app.
    monkeypatch.setattr(case.operation, "app", secured_app.app)
    monkeypatch.setattr(case.operation.schema, "app", secured_app.app)
    case.call_and_validate(
        base_url="http://localhost",
        app=secured_app.app,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
