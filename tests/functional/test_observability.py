"""Request ids, access logs, metrics and health, through the app."""

from __future__ import annotations

import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from launchprov.logs import JSONFormatter
from tests.support import GOOD_AMI, assert_error_body, free_port, make_app


@pytest.fixture
def app(moto_ec2):
    return make_app()


def launch(app, status=200, **headers):
    body = json.dumps({"ami": GOOD_AMI, "instance_type": "t2.micro"})
    return app.put(
        "/v1/launch", body, content_type="application/json", headers=headers, status=status
    )


def samples(app) -> dict[tuple[str, tuple], float]:
    response = app.get("/metrics", status=200)
    assert response.headers["Content-Type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


# -- request ids ------------------------------------------------------------------------------


def test_the_callers_request_id_is_echoed(app):
    response = launch(app, **{"X-Request-ID": "deploy-42/step:1"})
    assert response.headers["X-Request-ID"] == "deploy-42/step:1"


def test_a_request_id_is_made_when_none_is_given(app):
    first, second = launch(app), launch(app)
    assert len(first.headers["X-Request-ID"]) == 32
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


def test_error_bodies_carry_the_request_id(app):
    response = app.get("/v1/nowhere", headers={"X-Request-ID": "abc"}, status=404)
    assert assert_error_body(response, 404)["request_id"] == "abc"


@pytest.mark.parametrize("bad", ["", "x" * 129, "has space", "new\u00e9", "a;b"])
def test_an_unsafe_request_id_is_refused(app, bad):
    header = bad.encode("utf-8").decode("latin-1")  # as WSGI hands a header over
    response = app.get("/healthz", headers={"X-Request-ID": header}, status="*")
    body = assert_error_body(response, 400)
    assert body["details"][0]["name"] == "X-Request-ID"


# -- logs -------------------------------------------------------------------------------------


def test_one_access_line_per_request_with_the_request_id(app, caplog):
    caplog.set_level(logging.INFO, logger="launchprov.access")
    launch(app, **{"X-Request-ID": "trace-1"})
    app.put("/v1/launch", "{}", content_type="application/json", status=400)
    lines = [record for record in caplog.records if record.name == "launchprov.access"]
    assert len(lines) == 2
    first = lines[0]
    assert (first.method, first.route, first.status) == ("PUT", "launch", 200)
    assert first.request_id == "trace-1" and first.duration_ms >= 0
    assert "PUT launch 200" in first.getMessage() and "request_id=trace-1" in first.getMessage()
    assert lines[1].status == 400


def test_every_line_logged_during_a_request_carries_its_id(app, caplog):
    caplog.set_level(logging.WARNING, logger="launchprov")
    body = json.dumps({"ami": "ami-12345678", "instance_type": "t2.micro"})
    app.put(
        "/v1/launch",
        body,
        content_type="application/json",
        headers={"X-Request-ID": "trace-2"},
        status=408,
    )
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all(record.request_id == "trace-2" for record in warnings)


def test_json_lines():
    record = logging.LogRecord(
        "launchprov.access", logging.INFO, __file__, 1, "hi %s", ("x",), None
    )
    record.request_id, record.caller, record.status = "r-1", "svc", 200
    line = json.loads(JSONFormatter().format(record))
    assert line["message"] == "hi x" and line["level"] == "INFO"
    assert (line["request_id"], line["caller"], line["status"]) == ("r-1", "svc", 200)
    assert line["time"].endswith("+00:00")


def test_log_format_json_switches_the_root_handlers(moto_ec2):
    handler = logging.StreamHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        make_app(**{"launchprov.log_format": "json"})
        assert isinstance(handler.formatter, JSONFormatter)
    finally:
        root.removeHandler(handler)


# -- metrics ----------------------------------------------------------------------------------


def test_metrics_count_requests_provider_calls_and_launches(app):
    launch(app)
    launch(app)
    app.put("/v1/launch", "{}", content_type="application/json", status=400)
    body = json.dumps({"ami": "ami-12345678", "instance_type": "t2.micro"})
    app.put("/v1/launch", body, content_type="application/json", status=408)
    found = samples(app)

    def value(name, **labels):
        return found[(name, tuple(sorted(labels.items())))]

    assert value("launchprov_http_requests_total", route="launch", method="PUT", status="200") == 2
    assert value("launchprov_http_requests_total", route="launch", method="PUT", status="400") == 1
    assert value("launchprov_http_requests_total", route="launch", method="PUT", status="408") == 1
    calls = "launchprov_provider_calls_total"
    assert value(calls, provider="ec2", operation="launch", outcome="ok") == 2
    assert value(calls, provider="ec2", operation="launch", outcome="ProviderError") == 1
    assert value("launchprov_instances_launched_total", provider="ec2") == 2
    count = "launchprov_http_request_duration_seconds_count"
    assert value(count, route="launch", method="PUT") == 4
    count = "launchprov_provider_call_duration_seconds_count"
    assert value(count, provider="ec2", operation="launch") == 3


# -- health -----------------------------------------------------------------------------------


def test_liveness_makes_no_provider_call(app):
    assert app.get("/healthz", status=200).json == {"status": "ok"}
    assert not any(name == "launchprov_provider_calls_total" for name, _ in samples(app))


def test_readiness_asks_the_provider(app):
    assert app.get("/readyz", status=200).json == {
        "status": "ready",
        "provider": "ec2",
        # Not served by waitress from an .ini: waitress's default 4 threads are assumed, 3 of
        # them lent to provider calls while the provider answers, 2 while it stalls.
        "slots": {"limit": 3, "base": 2, "in_use": 0, "waiting": 0, "stalled_for": 0},
        "ratelimit": {"enabled": False},
        "startup_checks": {"state": "off", "failed": []},  # make_app turns them off
    }
    found = samples(app)
    key = (
        "launchprov_provider_calls_total",
        (("operation", "ping"), ("outcome", "ok"), ("provider", "ec2")),
    )
    assert found[key] == 1


def test_not_ready_when_the_provider_cannot_be_reached():
    app = make_app(
        **{
            "launchprov.ec2.endpoint_url": f"http://127.0.0.1:{free_port()}",
            "launchprov.readiness_timeout": "0.5",
        }
    )
    body = assert_error_body(app.get("/readyz", status="*"), 503)
    assert "EndpointUnreachable" in body["message"]


def test_a_draining_process_fails_both_probes_and_serves_the_rest(app):
    """After SIGTERM (launchprov.serving starts the drain) the load balancer's checks fail at
    once, without a provider call, while every other request is still served."""
    app.app.registry.launchprov_drain.begin()
    for path in ("/healthz", "/readyz"):
        body = assert_error_body(app.get(path, status="*"), 503)
        assert body["details"] == [
            {"location": "process", "name": "state", "description": "draining"}
        ]
        assert body["message"].startswith("draining: the process is stopping (SIGTERM)")
    assert not any(name == "launchprov_provider_calls_total" for name, _ in samples(app))
    launch(app)
