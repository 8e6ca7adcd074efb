"""A provider that does not answer, through the app: 503 when busy, 408 at the deadline, and
what a 408 says about the launch."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.parser import text_string_to_metric_families

from launchprov.auth import digest
from launchprov.launching import CALLER_TAG
from launchprov.providers.interface import Instance
from tests.support import GOOD_AMI, StubProvider, assert_error_body, make_app

PATIENCE = 10.0
LAUNCH = {"ami": GOOD_AMI, "instance_type": "t2.micro"}
TOKEN = "ops-token-0123456789"


class Stuck(StubProvider):
    """Every call blocks until the test lets it go; ``started`` counts calls that began."""

    name = "stuck"
    release = threading.Event()
    started = threading.Semaphore(0)

    def _block(self):
        Stuck.started.release()
        assert Stuck.release.wait(PATIENCE)

    def launch(self, request):
        self._block()
        return ["i-12345678"]

    def describe(self, instance_id, region):
        self._block()
        raise NotImplementedError

    def list_instances(self, query):
        self._block()
        raise NotImplementedError


@pytest.fixture
def stuck():
    Stuck.release = threading.Event()
    Stuck.started = threading.Semaphore(0)
    yield Stuck
    Stuck.release.set()


def stuck_app(**settings):
    return make_app(
        **{
            "launchprov.provider": f"{__name__}:Stuck",
            "launchprov.provider_concurrency": "1",
            "launchprov.provider_queue_timeout": "0.2",
            **settings,
        }
    )


def put(app, body, **headers):
    return app.put(
        "/v1/launch", json.dumps(body), content_type="application/json", headers=headers, status="*"
    )


def metric(app, name: str, **labels) -> float:
    text = app.get("/metrics", status=200).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def test_a_request_that_finds_no_slot_is_a_503_with_retry_after(stuck):
    app = stuck_app(**{"launchprov.retry_after": "3"})
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(put, app, LAUNCH)
        assert stuck.started.acquire(timeout=PATIENCE)
        response = app.get("/v1/instances", status="*")
        body = assert_error_body(response, 503)
        assert response.headers["Retry-After"] == "3"
        assert "nothing was sent" in body["message"]
        assert body["details"] == [
            {
                "location": "provider",
                "name": "stuck",
                "description": "all 1 provider slots are taken",
            }
        ]
        # Health, metrics, the document and readiness take no slot.
        assert app.get("/healthz", status=200).json == {"status": "ok"}
        assert app.get("/v1/openapi.json", status=200)
        ready = app.get("/readyz", status=200).json
        assert ready["slots"]["in_use"] == 1 and ready["slots"]["limit"] == 1
        assert metric(app, "launchprov_provider_rejected_total", provider="stuck") == 1
        assert metric(app, "launchprov_provider_slots_in_use") == 1
        assert metric(app, "launchprov_provider_slots") == 1
        stuck.release.set()
        assert first.result(PATIENCE).json == ["i-12345678"]


def test_a_launch_past_the_deadline_without_a_token_must_not_be_retried(stuck):
    # A third-party adapter has no defaults of its own: the deployment gives the zone.
    app = stuck_app(
        **{"launchprov.request_deadline": "0.3", "launchprov.defaults.placement": "us-east-1b"}
    )
    response = put(app, LAUNCH, **{"X-Request-ID": "slow-1"})
    body = assert_error_body(response, 408)
    provider = body["provider"]
    assert (provider["code"], provider["outcome"], provider["retryable"]) == (
        "Timeout",
        "unknown",
        False,
    )
    assert "Retry-After" not in response.headers
    assert (
        "GET /v1/instances?tag:launchprov:request-id=slow-1&region=us-east-1"
        in (provider["message"])
    )
    assert "may have started instances" in body["message"]
    labels = {"provider": "stuck", "operation": "launch"}
    assert metric(app, "launchprov_provider_deadline_exceeded_total", **labels) == 1


def test_a_launch_past_the_deadline_with_a_token_may_be_retried(stuck):
    app = stuck_app(**{"launchprov.request_deadline": "0.3"})
    response = put(app, {**LAUNCH, "client_token": "deploy-1"})
    provider = assert_error_body(response, 408)["provider"]
    assert (provider["outcome"], provider["retryable"]) == ("unknown", True)
    assert response.headers["Retry-After"] == "2"


class Slow(StubProvider):
    """Every call answers after 0.6 s, as a slow cloud; ``calls`` is what it was asked."""

    name = "slow"
    calls: list[str] = []

    def _answer(self, operation: str, instance_id: str):
        Slow.calls.append(operation)
        threading.Event().wait(0.6)  # the cloud's answer time
        return Instance(instance_id, "running", tags={CALLER_TAG: "ops"})

    def describe(self, instance_id, region):
        return self._answer("describe", instance_id)

    def terminate(self, instance_id, region):
        return self._answer("terminate", instance_id)


def test_an_action_and_its_ownership_check_share_one_deadline():
    """With ownership on, a DELETE is a describe (the check), then the termination: both
    within one request_deadline, not one each (0.6 + 0.6 s would fit in two of 1 s)."""
    Slow.calls = []
    app = make_app(
        **{
            "launchprov.provider": f"{__name__}:Slow",
            "launchprov.request_deadline": "1",
            "launchprov.auth.enabled": "true",
            "launchprov.auth.tokens": f"ops {digest(TOKEN)}",
        }
    )
    response = app.delete(
        "/v1/instances/i-12345678", headers={"Authorization": f"Bearer {TOKEN}"}, status="*"
    )
    provider = assert_error_body(response, 408)["provider"]
    assert provider["code"] == "Timeout"
    assert Slow.calls == ["describe", "terminate"]


def test_a_read_past_the_deadline_launched_nothing(stuck):
    app = stuck_app(**{"launchprov.request_deadline": "0.3"})
    response = app.get("/v1/instances", status="*")
    provider = assert_error_body(response, 408)["provider"]
    assert (provider["code"], provider["outcome"], provider["retryable"]) == (
        "Timeout",
        "none",
        True,
    )
