"""The tween around every request: its id, its access-log line, its metrics."""

from __future__ import annotations

import logging

import pytest
from pyramid import testing
from pyramid.response import Response

from launchprov.metrics import Metrics
from launchprov.schemas import REQUEST_ID_HEADER
from launchprov.tweens import observe_factory


@pytest.fixture
def tween():
    registry = testing.setUp().registry
    registry.launchprov_metrics = Metrics()
    seen = []

    def handler(request):
        seen.append(request.request_id)
        return Response(json_body={"ok": True})

    yield observe_factory(handler, registry), seen, registry.launchprov_metrics
    testing.tearDown()


class Request(testing.DummyRequest):
    identity = "deployer"  # what the security policy would have said


def request(**headers):
    made = Request(headers=headers)
    made.matched_route = None
    made.response = Response()
    return made


def counted(metrics, status: str) -> float:
    value = metrics.registry.get_sample_value(
        "launchprov_http_requests_total",
        {"route": "unmatched", "method": "GET", "status": status},
    )
    return value or 0.0


def test_a_callers_request_id_is_kept_and_echoed(tween):
    observe, seen, _ = tween
    response = observe(request(**{REQUEST_ID_HEADER: "deploy-42"}))
    assert seen == ["deploy-42"] and response.headers[REQUEST_ID_HEADER] == "deploy-42"


def test_a_request_id_is_made_when_none_is_given(tween):
    observe, seen, _ = tween
    response = observe(request())
    assert len(seen[0]) == 32 and response.headers[REQUEST_ID_HEADER] == seen[0]


@pytest.mark.parametrize("given", ["a;b", "x" * 129, "", "caf\u00e9"])
def test_an_unsafe_request_id_is_a_400_through_the_error_body(tween, given):
    observe, seen, metrics = tween
    response = observe(request(**{REQUEST_ID_HEADER: given}))
    assert seen == []  # the view never ran
    assert response.status_int == 400
    body = response.json_body
    assert body["details"] == [
        {"location": "header", "name": REQUEST_ID_HEADER, "description": "invalid"}
    ]
    assert body["request_id"] == response.headers[REQUEST_ID_HEADER] != given
    assert counted(metrics, "400") == 1


def test_every_request_is_counted_and_logged_once(tween, caplog):
    observe, _, metrics = tween
    caplog.set_level(logging.INFO, logger="launchprov.access")
    observe(request(**{REQUEST_ID_HEADER: "r-1"}))
    assert counted(metrics, "200") == 1
    (line,) = [record.getMessage() for record in caplog.records]
    assert line.startswith("GET unmatched 200 ") and "caller=deployer request_id=r-1" in line
