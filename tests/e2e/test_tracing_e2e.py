"""Tracing as production sets it up: pserve with launchprov.tracing = true and the standard
OTEL_* variables (here the console exporter), a launch under the caller's traceparent, and the
spans the process exports."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import CREDENTIALS_ENV, ec2_settings, running, wait_until
from tests.support import GOOD_AMI

pytestmark = pytest.mark.e2e

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
OTEL_ENV = {
    "OTEL_TRACES_EXPORTER": "console",
    "OTEL_SERVICE_NAME": "launchprov-e2e",
    "OTEL_BSP_SCHEDULE_DELAY": "50",  # milliseconds: export soon after the request
}


def console_spans(output: str) -> list[dict]:
    """The spans the console exporter printed (indented JSON objects) among the log lines."""
    decoder = json.JSONDecoder()
    spans, position = [], output.find("\n{\n")
    while position != -1:
        span, end = decoder.raw_decode(output, position + 1)
        spans.append(span)
        position = output.find("\n{\n", end)
    return spans


def test_a_launch_exports_its_spans_under_the_callers_trace(moto_process):
    settings = ec2_settings(moto_process, **{"launchprov.tracing": "true"})
    with running(settings, {**CREDENTIALS_ENV, **OTEL_ENV}) as service:
        status, headers, ids = service.request(
            "PUT",
            "/v1/launch",
            {"ami": GOOD_AMI, "instance_type": "t2.micro"},
            headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"},
        )
        assert status == 200, ids

        def exported() -> dict[str, dict]:
            return {
                span["name"]: span
                for span in console_spans(service.output)
                if span["context"]["trace_id"] == f"0x{TRACE_ID}"
            }

        names = {"PUT /v1/launch", "ec2.launch", "EC2.RunInstances"}
        wait_until(lambda: names <= set(exported()), "the spans' export", service.process)
        spans = exported()
    request, provider, cloud = (
        spans["PUT /v1/launch"],
        spans["ec2.launch"],
        spans["EC2.RunInstances"],
    )
    assert request["parent_id"] == f"0x{CALLER_SPAN}" and request["kind"] == "SpanKind.SERVER"
    assert request["attributes"]["launchprov.request_id"] == headers["X-Request-ID"]
    assert provider["parent_id"] == request["context"]["span_id"]
    assert provider["attributes"]["launchprov.instance_ids"] == ids
    assert cloud["parent_id"] == provider["context"]["span_id"]
    assert cloud["attributes"]["aws.request_id"]
    assert cloud["attributes"]["server.address"] == "127.0.0.1"  # the moto process, reached
    assert request["resource"]["attributes"]["service.name"] == "launchprov-e2e"
