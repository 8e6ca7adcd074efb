"""/readyz through the app costs the cloud at most one readiness call per
launchprov.readiness_cache, whoever asks, and still turns 503 when the cloud stops answering.

The cloud is a counting stand-in behind the real guards (metrics, bulkhead); a fake clock says
how much time passed, so no test waits for the period."""

from __future__ import annotations

import threading
import time

import pytest

from launchprov.providers.interface import InstancePage
from tests.support import StubProvider, assert_error_body, make_app

PERIOD = 5.0
PATIENCE = 10.0


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Counting(StubProvider):
    """Counts its readiness calls; once ``down`` is set they hold until ``release``."""

    name = "counting"
    pings = 0
    down = threading.Event()
    release = threading.Event()

    def ping(self, timeout):
        Counting.pings += 1
        if Counting.down.is_set():
            Counting.release.wait(PATIENCE)

    def list_instances(self, query):
        return InstancePage([], None)


@pytest.fixture
def cloud():
    Counting.pings = 0
    Counting.down, Counting.release = threading.Event(), threading.Event()
    yield Counting
    Counting.release.set()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def app(cloud, clock):
    app = make_app(
        **{
            "launchprov.provider": f"{__name__}:Counting",
            "launchprov.readiness_cache": str(PERIOD),
            "launchprov.readiness_timeout": "0.3",
        }
    )
    app.app.registry.launchprov_readiness.clock = clock
    return app


def test_many_probes_make_one_provider_call_per_period(app, cloud, clock):
    start = clock.now
    for number in range(50):  # 50 probes from anyone, spread over one period
        clock.now = start + number * PERIOD / 50
        assert app.get("/readyz", status=200).json["status"] == "ready"
    assert cloud.pings == 1
    clock.now = start + PERIOD
    app.get("/readyz", status=200)
    assert cloud.pings == 2


def test_a_callers_successful_call_spares_the_readiness_call(app, cloud, clock):
    app.get("/readyz", status=200)
    for _ in range(3):
        clock.now += PERIOD - 1
        app.get("/v1/instances", status=200)  # the cloud answered a caller
        app.get("/readyz", status=200)
    assert cloud.pings == 1


def test_readiness_turns_503_when_the_cloud_stops_answering(app, cloud, clock):
    app.get("/readyz", status=200)
    cloud.down.set()
    clock.now += PERIOD - 0.1
    app.get("/readyz", status=200)  # what the cloud did 4.9 s ago
    clock.now += 0.1
    body = assert_error_body(app.get("/readyz", status="*"), 503)
    assert "Timeout" in body["message"]
    assert "no answer to the readiness call within 0.3 s" in body["message"]
    # Seen failing: the next probes are 503 at once, without another call.
    assert_error_body(app.get("/readyz", status="*"), 503)
    assert cloud.pings == 2


def test_a_readiness_call_that_answers_late_makes_the_process_ready(app, cloud, clock):
    """The call that timed out goes on; when the cloud answers it, the process is ready again
    at once, without another call (a cold start's first call, a cloud that recovers)."""
    cloud.down.set()
    assert_error_body(app.get("/readyz", status="*"), 503)
    cloud.release.set()
    deadline = time.monotonic() + PATIENCE  # the fake clock stands still: within the period
    pace = threading.Event()  # never set: the poll's pace
    while app.get("/readyz", status="*").status_int != 200:
        assert time.monotonic() < deadline, "the late answer never made the process ready"
        pace.wait(0.01)
    assert cloud.pings == 1
