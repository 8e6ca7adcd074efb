"""What callers in other languages do: generate a client from the served document, and check
what goes over the wire against that document.

openapi-python-client generates a typed client (once for the module) from the
``/v1/openapi.json`` that the running sandbox serves; the client then drives the sandbox:
launch, list by tag, describe, a 400 and a 408 parsed into their models. Every request and
response it exchanged, and the form and query-string launches it cannot send, are validated
with openapi-core against the same document.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator

import httpx
import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS31Validator

from tests.e2e.conftest import BIN, Service
from tests.support import FAKE_CREDENTIALS, GOOD_AMI, MISSING_AMI

pytestmark = pytest.mark.e2e

PACKAGE = "launchprov_generated"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Service]:
    """The sandbox of development.ini under pserve, in an environment of fake credentials only."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("LAUNCHPROV_", "AWS_")):
                patch.delenv(name)
        for name, value in FAKE_CREDENTIALS.items():
            patch.setenv(name, value)
        service = Service({"launchprov.ec2.sandbox": "true"})
    try:
        yield service
    finally:
        service.close()


@pytest.fixture(scope="module")
def document(sandbox) -> dict:
    with urllib.request.urlopen(f"{sandbox.url}/v1/openapi.json", timeout=10) as answer:
        return json.load(answer)


@pytest.fixture(scope="module")
def generated(document, tmp_path_factory):
    """The client package openapi-python-client makes from the served document."""
    directory = tmp_path_factory.mktemp("generated")
    spec = directory / "openapi.json"
    spec.write_text(json.dumps(document))
    config = directory / "config.yml"
    config.write_text("post_hooks: []\n")  # no formatter run: nothing outside this directory
    result = subprocess.run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--path",
            str(spec),
            "--meta",
            "none",
            "--output-path",
            str(directory / PACKAGE),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # A warning means a part of the document the generator could not turn into code.
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    sys.path.insert(0, str(directory))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(directory))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


class Exchanges:
    """Every request the generated client sent, with the response it got."""

    def __init__(self):
        self.pairs: list[tuple[httpx.Request, httpx.Response]] = []

    def record(self, response: httpx.Response) -> None:
        response.read()
        self.pairs.append((response.request, response))


@pytest.fixture
def client(sandbox, generated):
    exchanges = Exchanges()
    made = generated.Client(
        base_url=sandbox.url,
        raise_on_unexpected_status=True,
        httpx_args={"event_hooks": {"response": [exchanges.record]}},
    )
    return made, exchanges


def api(generated, operation: str):
    return importlib.import_module(f"{PACKAGE}.api.default.{operation}")


def models(generated):
    return importlib.import_module(f"{PACKAGE}.models")


# -- openapi-core: what went over the wire is what the document says -----------------------------


def mock_request(request: httpx.Request) -> MockRequest:
    query = urllib.parse.parse_qs(request.url.query.decode(), keep_blank_values=True)
    args = {key: values if len(values) > 1 else values[0] for key, values in query.items()}
    return MockRequest(
        host_url=f"{request.url.scheme}://{request.url.netloc.decode()}",
        method=request.method.lower(),
        path=request.url.path,
        args=args,
        data=request.content or None,
        headers=dict(request.headers),
        content_type=request.headers.get("Content-Type", "application/json").split(";")[0],
    )


def mock_response(response: httpx.Response) -> MockResponse:
    return MockResponse(
        data=response.content,
        status_code=response.status_code,
        headers=dict(response.headers),
        content_type=response.headers.get("Content-Type", "application/json").split(";")[0],
    )


def validate(document: dict, pairs) -> None:
    checker = OpenAPI.from_dict(document)
    for request, response in pairs:
        checker.validate_request(mock_request(request))
        checker.validate_response(mock_request(request), mock_response(response))


# -- the generated client drives the sandbox ------------------------------------------------------


def test_the_generated_client_launches_lists_by_tag_and_describes(document, generated, client):
    client, exchanges = client
    body = models(generated).LaunchJsonBody.from_dict(
        {"ami": GOOD_AMI, "instance_type": "t2.micro", "tags": {"team": "generated"}}
    )
    ids = api(generated, "launch").sync(client=client, body=body)
    assert isinstance(ids, list) and len(ids) == 1

    tags = models(generated).ListInstancesTags.from_dict({"tag:team": "generated"})
    page = api(generated, "list_instances").sync(client=client, tags=tags)
    assert [instance.id for instance in page.instances] == ids

    instance = api(generated, "describe_instance").sync(ids[0], client=client)
    assert isinstance(instance, models(generated).Instance)
    assert instance.id == ids[0] and instance.ami == GOOD_AMI
    assert instance.tags.additional_properties["team"] == "generated"
    assert instance.state.value in ("pending", "running")

    validate(document, exchanges.pairs)
    assert len(exchanges.pairs) == 3


def test_a_400_and_a_408_parse_into_their_models(document, generated, client):
    client, exchanges = client
    launch = api(generated, "launch")
    bad = launch.sync(
        client=client,
        body=models(generated).LaunchJsonBody.from_dict(
            {"ami": GOOD_AMI, "instance_type": "t2.micro", "min_count": 3, "max_count": 2}
        ),
    )
    assert isinstance(bad, models(generated).Error) and bad.status == 400
    assert [detail.name for detail in bad.details] == ["min_count"]

    failed = launch.sync(
        client=client,
        body=models(generated).LaunchJsonBody.from_dict(
            {"ami": MISSING_AMI, "instance_type": "t2.micro"}
        ),
    )
    assert isinstance(failed, models(generated).ProviderError) and failed.status == 408
    assert failed.provider.code == "InvalidAMIID.NotFound" and failed.provider.retryable is False

    validate(document, exchanges.pairs)


def test_the_generated_client_sends_no_deployment_default(generated, client):
    """Left out, key_name, security_groups, placement and region are the deployment's to fill."""
    client, exchanges = client
    body = models(generated).LaunchJsonBody.from_dict(
        {"ami": GOOD_AMI, "instance_type": "t2.micro"}
    )
    api(generated, "launch").sync(client=client, body=body)
    api(generated, "list_instances").sync(client=client)
    launch_request, list_request = (request for request, _ in exchanges.pairs)
    assert set(json.loads(launch_request.content)) == {"ami", "instance_type"}
    assert launch_request.url.query == b""
    assert "region" not in urllib.parse.parse_qs(list_request.url.query.decode())


# -- what the generated client does not send, the document still describes ------------------------


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        (
            "/v1/launch",
            "application/x-www-form-urlencoded",
            "ami=ami-760aaa0f&instance_type=t2.micro&security_groups=SSH&tag:team=form",
        ),
        ("/v1/launch?ami=ami-760aaa0f&instance_type=t2.micro&min_count=1&tag:team=query", None, ""),
    ],
    ids=["form", "query-string"],
)
def test_form_and_query_string_launches_are_documented(document, sandbox, path, content_type, body):
    headers = {"Content-Type": content_type} if content_type else {}
    with httpx.Client(base_url=sandbox.url) as http:
        response = http.put(path, content=body.encode(), headers=headers)
    assert response.status_code == 200, response.text
    validate(document, [(response.request, response)])


def test_a_405_is_documented(document, sandbox):
    with httpx.Client(base_url=sandbox.url) as http:
        response = http.get("/v1/launch")
    assert response.status_code == 405 and response.headers["Allow"] == "PUT"
    described = document["components"]["responses"]["MethodNotAllowed"]
    assert "Allow" in described["headers"]
    schema = {
        **described["content"]["application/json"]["schema"],
        "components": document["components"],
    }
    OAS31Validator(schema).validate(response.json())
