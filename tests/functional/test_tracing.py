"""Tracing (launchprov.tracing = true): the spans of a launch, as the SDK's in-memory exporter
receives them, under the caller's W3C traceparent; and nothing at all with tracing off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from launchprov.auth import digest
from tests.functional.conftest import BACKENDS
from tests.support import GOOD_AMI, MISSING_AMI, assert_error_body, make_app

ROOT = Path(__file__).resolve().parents[2]
TRACED = {"launchprov.tracing": "true"}
#: The caller's span: W3C Trace Context's own example.
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
TOKEN = "tracing-token-0123456789"
AUTH = {"launchprov.auth.enabled": "true", "launchprov.auth.tokens": f"deployer {digest(TOKEN)}"}


def launch(app, ami=GOOD_AMI, status=200, **headers):
    body = json.dumps({"ami": ami, "instance_type": "t2.micro"})
    return app.put(
        "/v1/launch", body, content_type="application/json", headers=headers, status=status
    )


def hex_id(number: int, digits: int) -> str:
    return format(number, f"0{digits}x")


def by_name(exporter) -> dict:
    finished = exporter.get_finished_spans()
    named = {span.name: span for span in finished}
    assert len(named) == len(finished), [span.name for span in finished]
    return named


def test_a_traced_launch_is_a_tree_under_the_callers_span(moto_ec2, spans):
    app = make_app(**TRACED, **AUTH)
    response = launch(
        app, traceparent=TRACEPARENT, Authorization=f"Bearer {TOKEN}", **{"X-Request-ID": "t-1"}
    )
    named = by_name(spans)
    request, provider, cloud = (
        named["PUT /v1/launch"],
        named["ec2.launch"],
        named["EC2.RunInstances"],
    )
    # One trace, the caller's; each span the child of the one above it.
    for span in (request, provider, cloud):
        assert hex_id(span.context.trace_id, 32) == TRACE_ID, span.name
    assert hex_id(request.parent.span_id, 16) == CALLER_SPAN and request.parent.is_remote
    assert provider.parent.span_id == request.context.span_id
    assert cloud.parent.span_id == provider.context.span_id
    # The request's own attributes: who asked, under which id, what was answered.
    assert request.attributes["launchprov.request_id"] == "t-1"
    assert request.attributes["launchprov.caller"] == "deployer"
    assert request.attributes["http.route"] == "/v1/launch"
    assert request.attributes["http.response.status_code"] == 200
    assert provider.attributes["cloud.region"] == "us-east-1"
    assert list(provider.attributes["launchprov.instance_ids"]) == response.json
    assert cloud.attributes["rpc.method"] == "RunInstances"
    assert cloud.attributes["aws.request_id"]  # what moto answered as EC2's requestId


def test_without_a_traceparent_the_request_span_begins_a_trace(moto_ec2, spans):
    launch(make_app(**TRACED))
    request = by_name(spans)["PUT /v1/launch"]
    assert request.parent is None
    assert hex_id(request.context.trace_id, 32) != TRACE_ID


def test_a_failed_launch_marks_its_spans_with_the_clouds_error(moto_ec2, spans):
    response = launch(make_app(**TRACED), ami=MISSING_AMI, status=408, traceparent=TRACEPARENT)
    named = by_name(spans)
    request, provider, cloud = (
        named["PUT /v1/launch"],
        named["ec2.launch"],
        named["EC2.RunInstances"],
    )
    assert provider.attributes["launchprov.provider.error_code"] == "InvalidAMIID.NotFound"
    assert not provider.status.is_ok and not cloud.status.is_ok
    assert cloud.attributes["aws.request_id"]
    # The error body is still made below the request span (the exception views), by the tween
    # that gives the request its id.
    body = assert_error_body(response, 408)
    assert request.attributes["http.response.status_code"] == 408
    assert request.attributes["launchprov.request_id"] == body["request_id"]


def test_an_answer_no_route_gives_has_a_span_too(moto_ec2, spans):
    """launchprov's own 400 for a bad X-Request-ID, made before routing."""
    response = make_app(**TRACED).get(
        "/healthz", headers={"X-Request-ID": "has space", "traceparent": TRACEPARENT}, status=400
    )
    (request,) = spans.get_finished_spans()
    assert request.name == "GET" and hex_id(request.parent.span_id, 16) == CALLER_SPAN
    assert request.attributes["http.response.status_code"] == 400
    assert request.attributes["launchprov.request_id"] == response.headers["X-Request-ID"]


@pytest.mark.parametrize("name", ["libcloud-ec2", "libcloud-dummy"])
def test_each_libcloud_call_is_a_span_of_the_provider_interface(name, request, spans):
    backend = BACKENDS[name](request, **TRACED)
    ids = launch(backend.app, traceparent=TRACEPARENT).json
    backend.app.get(f"/v1/instances/{ids[0]}", headers={"traceparent": TRACEPARENT})
    finished = spans.get_finished_spans()
    requests = {s.context.span_id: s for s in finished if s.name.startswith(("PUT ", "GET "))}
    calls = [s for s in finished if s.name.startswith("libcloud.")]
    assert {s.name for s in requests.values()} == {"PUT /v1/launch", "GET /v1/instances/{id}"}
    assert {"libcloud.launch", "libcloud.describe"} <= {s.name for s in calls}
    for call in calls:
        assert call.parent.span_id in requests, call.name
        assert hex_id(call.context.trace_id, 32) == TRACE_ID
    (launched,) = [s for s in calls if s.name == "libcloud.launch"]
    assert list(launched.attributes["launchprov.instance_ids"]) == ids


def test_tracing_off_makes_no_span(moto_ec2, spans):
    launch(make_app(), traceparent=TRACEPARENT)
    assert spans.get_finished_spans() == ()


def test_tracing_off_loads_no_opentelemetry_module():
    """A process serving with tracing off (the default) never imports OpenTelemetry: the
    request path pays nothing for it."""
    script = f"""
import json, sys
from moto import mock_aws
from tests.support import GOOD_AMI, ec2_client, make_app, seed_account
with mock_aws():
    seed_account(ec2_client())
    app = make_app()
    app.put("/v1/launch", json.dumps({{"ami": GOOD_AMI, "instance_type": "t2.micro"}}),
            content_type="application/json", headers={{"traceparent": "{TRACEPARENT}"}},
            status=200)
print(json.dumps(sorted(name for name in sys.modules if name.startswith("opentelemetry"))))
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []
