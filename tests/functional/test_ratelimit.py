"""Per-caller rate limits: 429 with the RateLimit-* headers, no provider call, memory or Redis."""

from __future__ import annotations

import json
import logging

import pytest

from launchprov.app import create_app
from launchprov.auth import digest
from launchprov.settings import ConfigurationError
from tests.redis_server import running_redis
from tests.support import GOOD_AMI, assert_error_body, make_app

WEB_TOKEN = "web-token-0123456789"
BATCH_TOKEN = "batch-token-9876543210"
TOKENS = f"web {digest(WEB_TOKEN)}\nbatch {digest(BATCH_TOKEN)}"
AUTH = {"launchprov.auth.enabled": "true", "launchprov.auth.tokens": TOKENS}
WEB = {"Authorization": f"Bearer {WEB_TOKEN}"}
BATCH = {"Authorization": f"Bearer {BATCH_TOKEN}"}
LAUNCH = {"ami": GOOD_AMI, "instance_type": "t2.micro"}


def metric(app, name: str) -> float:
    """The sum of every sample of ``name`` in /metrics."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in app.get("/metrics").text.splitlines()
        if line.startswith((name + "{", name + " "))
    )


def launch(app, headers, status="*"):
    body = json.dumps(LAUNCH)
    return app.put(
        "/v1/launch", body, content_type="application/json", headers=headers, status=status
    )


def assert_refused(
    response, limit: int, window: int, caller: str = "anonymous", scope: str = "requests"
):
    body = assert_error_body(response, 429)
    retry_after = response.headers["Retry-After"]
    assert 1 <= int(retry_after) <= window
    described = f"{limit} {scope} per {window} s"
    assert body["message"] == (
        f"rate limit of caller {caller} exceeded: {described}; retry after {retry_after} s"
    )
    assert body["details"] == [{"location": "caller", "name": caller, "description": described}]
    assert response.headers["RateLimit-Limit"] == str(limit)
    assert response.headers["RateLimit-Remaining"] == "0"
    assert 0 <= int(response.headers["RateLimit-Reset"]) <= window
    assert response.headers["RateLimit-Policy"] == f"{limit};w={window}"


@pytest.fixture
def limited(moto_ec2):
    """web: 3 requests a minute of its own; batch: the default 5; launches: 1 a minute."""
    return make_app(
        **AUTH,
        **{
            "launchprov.ratelimit.default": "5/minute",
            "launchprov.ratelimit.web": "3/minute",
            "launchprov.ratelimit.launch.default": "1/minute",
        },
    )


def test_over_the_limit_is_a_429_with_headers_and_no_provider_call(limited):
    remaining = []
    for _ in range(3):
        response = limited.get("/v1/instances", headers=WEB, status=200)
        assert response.headers["RateLimit-Limit"] == "3"
        assert response.headers["RateLimit-Policy"] == "3;w=60"
        assert 0 < int(response.headers["RateLimit-Reset"]) <= 60
        remaining.append(int(response.headers["RateLimit-Remaining"]))
    assert remaining == [2, 1, 0]
    calls = metric(limited, "launchprov_provider_calls_total")
    assert_refused(limited.get("/v1/instances", headers=WEB, status="*"), 3, 60, "web")
    assert_refused(
        limited.get("/v1/instances/i-0123456789abcdef0", headers=WEB, status="*"), 3, 60, "web"
    )
    assert metric(limited, "launchprov_provider_calls_total") == calls
    assert metric(limited, "launchprov_ratelimit_refused_total") == 2


def test_each_caller_has_its_own_counter_and_limit(limited):
    for _ in range(3):
        limited.get("/v1/instances", headers=WEB, status=200)
    limited.get("/v1/instances", headers=WEB, status=429)
    # batch has the default, 5 a minute, untouched by web's requests.
    for _ in range(5):
        limited.get("/v1/instances", headers=BATCH, status=200)
    assert_refused(limited.get("/v1/instances", headers=BATCH, status="*"), 5, 60, "batch")


def test_launches_have_their_own_lower_limit(limited, moto_ec2):
    assert launch(limited, BATCH).status_int == 200
    assert_refused(launch(limited, BATCH), 1, 60, "batch", "launches")
    # Only the first launch reached EC2.
    reservations = moto_ec2.describe_instances()["Reservations"]
    assert sum(len(item["Instances"]) for item in reservations) == 1
    # Other requests of the caller still go through.
    assert limited.get("/v1/instances", headers=BATCH, status=200).headers["RateLimit-Limit"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/v1/openapi.json"])
def test_probes_metrics_and_the_document_are_never_limited(moto_ec2, path):
    app = make_app(**{"launchprov.ratelimit.default": "1/minute"})
    for _ in range(4):
        response = app.get(path, status=200)
        assert "RateLimit-Limit" not in response.headers
    app.get("/v1/instances", status=200)
    app.get("/v1/instances", status=429)


def test_a_request_answered_with_an_error_counts_once(limited):
    """The error view of a refused or failed request is no second request."""
    for _ in range(3):
        limited.get("/v1/instances/i-0123456789abcdef0", headers=WEB, status=404)
    assert_refused(limited.get("/v1/instances", headers=WEB, status="*"), 3, 60, "web")


def test_a_request_without_a_caller_counts_against_no_callers_limits(limited):
    """A route's 405 needs no token; without one there is no caller to count it against."""
    for _ in range(6):  # more than the default limit of 5
        assert_error_body(limited.patch("/v1/instances", status="*"), 405)
    limited.get("/v1/instances", headers=WEB, status=200)


def test_an_empty_limit_exempts_a_caller(moto_ec2):
    app = make_app(
        **AUTH, **{"launchprov.ratelimit.default": "1/minute", "launchprov.ratelimit.batch": ""}
    )
    for _ in range(3):
        response = app.get("/v1/instances", headers=BATCH, status=200)
        assert "RateLimit-Limit" not in response.headers
    app.get("/v1/instances", headers=WEB, status=200)
    app.get("/v1/instances", headers=WEB, status=429)


def test_without_limits_no_headers(moto_ec2):
    response = make_app().get("/v1/instances", status=200)
    assert "RateLimit-Limit" not in response.headers


def test_several_limits_answer_the_closest(moto_ec2):
    app = make_app(**{"launchprov.ratelimit.default": "10/second;2/minute"})
    first = app.get("/v1/instances", status=200)
    assert (first.headers["RateLimit-Limit"], first.headers["RateLimit-Remaining"]) == ("2", "1")
    app.get("/v1/instances", status=200)
    assert_refused(app.get("/v1/instances", status="*"), 2, 60)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("launchprov.ratelimit.default", "ten a minute"),
        ("launchprov.ratelimit.launch.default", "5/fortnight"),
        ("launchprov.ratelimit.web", "0/"),
        ("launchprov.ratelimit.storage_uri", "memcached://127.0.0.1:11211"),
    ],
)
def test_a_bad_limit_stops_startup_naming_the_key(key, value):
    with pytest.raises(ConfigurationError, match=key.replace(".", r"\.")):
        create_app({"launchprov.auth.enabled": "false", key: value})


def test_the_environment_sets_the_default_limits(moto_ec2, monkeypatch):
    monkeypatch.setenv("LAUNCHPROV_RATELIMIT_DEFAULT", "1/hour")
    app = make_app()
    app.get("/v1/instances", status=200)
    assert_refused(app.get("/v1/instances", status="*"), 1, 3600)


# -- Redis: counters shared by several processes ---------------------------------------------


@pytest.fixture
def redis_server():
    with running_redis() as server:
        yield server


def test_redis_shares_the_counters_between_apps(moto_ec2, redis_server):
    settings = {
        **AUTH,
        "launchprov.ratelimit.default": "4/minute",
        "launchprov.ratelimit.storage_uri": redis_server.uri,
    }
    apps = [make_app(**settings), make_app(**settings)]  # two processes behind one balancer
    statuses = [
        apps[n % 2].get("/v1/instances", headers=WEB, status="*").status_int for n in range(6)
    ]
    assert statuses == [200, 200, 200, 200, 429, 429]
    assert apps[0].get("/readyz").json["ratelimit"] == {"enabled": True, "storage": "ok"}


def test_redis_down_fails_open(moto_ec2, redis_server, caplog):
    app = make_app(
        **{
            "launchprov.ratelimit.default": "1/minute",
            "launchprov.ratelimit.storage_uri": redis_server.uri,
        }
    )
    app.get("/v1/instances", status=200)
    app.get("/v1/instances", status=429)
    redis_server.stop()
    caplog.set_level(logging.WARNING, logger="launchprov.ratelimit")
    for _ in range(3):
        response = app.get("/v1/instances", status=200)
        assert "RateLimit-Limit" not in response.headers
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1, "one warning a minute, not one per request"
    assert metric(app, "launchprov_ratelimit_storage_errors_total") == 3
    ready = app.get("/readyz", status=200).json
    assert ready["ratelimit"] == {"enabled": True, "storage": "unreachable", "failing_open": True}
    # Redis back (with empty counters): the limit holds again once the retry interval passed.
    redis_server.start()
    assert app.get("/readyz", status=200).json["ratelimit"]["storage"] == "ok"
