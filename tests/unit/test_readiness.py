"""/readyz's view of the cloud: one readiness call per period at most, one caller at a time,
renewed by the calls that succeed, and a cloud that stops answering seen within the period and
the time-out. A fake clock says how much time passed; events say when a call is in progress."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from launchprov.providers.interface import ProviderError
from launchprov.readiness import Readiness

PERIOD = 5.0
TIMEOUT = 2.0
PATIENCE = 10.0


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Cloud:
    """The readiness call: counts calls; answers, fails, or holds until released."""

    def __init__(self):
        self.calls = 0
        self.error: ProviderError | None = None
        self.hold: threading.Event | None = None
        self.started = threading.Event()

    def ping(self, timeout: float) -> None:
        self.calls += 1
        self.started.set()
        if self.hold is not None:
            assert self.hold.wait(PATIENCE)
        if self.error is not None:
            raise self.error


@pytest.fixture
def cloud():
    return Cloud()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def readiness(cloud, clock):
    return Readiness(cloud.ping, PERIOD, TIMEOUT, "ec2", clock)


def test_many_probes_make_one_call_per_period(readiness, cloud, clock):
    start = clock.now
    for number in range(100):  # 100 probes spread over one period
        clock.now = start + number * PERIOD / 100
        assert readiness.check() is None
    assert cloud.calls == 1
    clock.now = start + PERIOD
    assert readiness.check() is None  # the period has passed: the next probe asks again
    assert cloud.calls == 2


def test_a_call_that_succeeded_renews_the_view_without_a_readiness_call(readiness, cloud, clock):
    readiness.check()
    for _ in range(10):
        clock.now += PERIOD - 1
        readiness.answered()  # a caller's describe, launch, listing...
        assert readiness.check() is None
    assert cloud.calls == 1


def test_a_cloud_that_stops_answering_is_seen_after_the_period(readiness, cloud, clock):
    assert readiness.check() is None
    cloud.error = ProviderError("ec2", ProviderError.TIMEOUT, "no answer", retryable=True)
    clock.now += PERIOD - 0.1
    assert readiness.check() is None  # still within the period: what was seen
    clock.now += 0.1
    assert readiness.check() is cloud.error
    # And it stays seen failing, without a call per probe, until the cloud answers again.
    assert readiness.check() is cloud.error
    assert cloud.calls == 2
    readiness.answered()
    assert readiness.check() is None


def test_probes_while_one_asks_get_the_last_answer_at_once(readiness, cloud, clock):
    readiness.check()
    clock.now += PERIOD
    cloud.hold, cloud.started = threading.Event(), threading.Event()
    cloud.error = ProviderError("ec2", "AuthFailure", "no", retryable=False)
    with ThreadPoolExecutor(1) as pool:
        asking = pool.submit(readiness.check)
        assert cloud.started.wait(PATIENCE)
        # The cloud holds the one call: other probes are answered from what was seen.
        assert [readiness.check() for _ in range(20)] == [None] * 20
        cloud.hold.set()
        assert asking.result(PATIENCE) is cloud.error
    assert cloud.calls == 2
    assert readiness.check() is cloud.error


def test_the_first_probes_wait_for_the_first_call(readiness, cloud):
    cloud.hold = threading.Event()
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(readiness.check)
        assert cloud.started.wait(PATIENCE)
        others = [pool.submit(readiness.check) for _ in range(3)]
        cloud.hold.set()
        assert first.result(PATIENCE) is None
        assert [other.result(PATIENCE) for other in others] == [None] * 3
    assert cloud.calls == 1


# -- the probe lane: the server's loop thread never makes the call nor waits for it ---------------


def test_the_loop_thread_answers_from_memory_while_a_thread_of_its_own_renews(
    readiness, cloud, clock
):
    readiness.answer_from_memory_in(threading.get_ident())
    cloud.hold = threading.Event()
    # Nothing known yet: said at once, and the first call starts in another thread.
    error = readiness.check()
    assert error is not None and error.message == "the readiness call has not answered yet"
    assert cloud.started.wait(PATIENCE)
    assert readiness.check().message == "the readiness call has not answered yet"
    assert cloud.calls == 1  # one call in progress: no second one
    cloud.hold.set()
    with ThreadPoolExecutor(1) as pool:  # a worker thread waits for the view, the loop never
        assert pool.submit(readiness.check).result(PATIENCE) is None
    assert readiness.check() is None
    # Older than the period: the loop answers with the view so far, the renewal runs beside.
    cloud.started.clear()
    cloud.hold = threading.Event()
    cloud.error = ProviderError("ec2", ProviderError.UNREACHABLE, "down")
    clock.now += PERIOD
    assert readiness.check() is None
    assert cloud.started.wait(PATIENCE) and cloud.calls == 2
    cloud.hold.set()
    until = time.monotonic() + PATIENCE
    while readiness.check() is None and time.monotonic() < until:
        time.sleep(0.01)  # polling interval: the view decides
    assert readiness.check() is cloud.error
    assert cloud.calls == 2


# -- the rate-limit storage in the probe lane: asked by a thread of its own, never by the loop ----


class Storage:
    """The rate-limit storage's check: counts calls and the threads that made them; answers
    ``reachable``, or holds until released."""

    def __init__(self):
        self.threads: list[int] = []
        self.reachable = True
        self.hold: threading.Event | None = None
        self.answered = threading.Event()

    def check(self) -> bool:
        self.threads.append(threading.get_ident())
        if self.hold is not None:
            assert self.hold.wait(PATIENCE)
        self.answered.set()
        return self.reachable


def test_the_loop_thread_answers_the_storages_view_from_memory(clock):
    from limits import parse

    from launchprov.ratelimit import RateLimits

    limits = RateLimits({"default": (parse("10/second"),)}, {}, "memory://", clock=clock)
    limits.storage = storage = Storage()
    limits.answer_from_memory_in(threading.get_ident())
    storage.hold = threading.Event()
    # Nothing known yet: said at once; the storage is asked in another thread, once.
    assert limits.readiness() == {"enabled": True, "storage": "not checked yet"}
    assert limits.readiness() == {"enabled": True, "storage": "not checked yet"}
    storage.hold.set()
    assert storage.answered.wait(PATIENCE)
    until = time.monotonic() + PATIENCE
    while limits.readiness()["storage"] != "ok" and time.monotonic() < until:
        time.sleep(0.01)  # polling interval: the view decides
    assert limits.readiness() == {"enabled": True, "storage": "ok"}
    assert len(storage.threads) == 1 and storage.threads[0] != threading.get_ident()
    # Older than the period: the view so far, while another check runs beside.
    storage.answered.clear()
    storage.reachable = False
    clock.now += PERIOD
    assert limits.readiness()["storage"] == "ok"
    assert storage.answered.wait(PATIENCE)
    until = time.monotonic() + PATIENCE
    while limits.readiness()["storage"] == "ok" and time.monotonic() < until:
        time.sleep(0.01)  # polling interval: the view decides
    assert limits.readiness() == {"enabled": True, "storage": "unreachable", "failing_open": True}
    assert threading.get_ident() not in storage.threads and len(storage.threads) == 2
    # Any other thread (a worker's /readyz under another server) asks the storage itself.
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(limits.readiness).result(PATIENCE)["storage"] == "unreachable"
    assert len(storage.threads) == 3


def test_what_the_loop_thread_answers_asks_nothing_over_the_network(cloud, clock):
    """The probe lane takes /healthz, /readyz (from memory) and /metrics -- unless scrapers'
    tokens are checked against failures counted in Redis, a network call."""
    from types import SimpleNamespace

    from limits import parse

    from launchprov.ratelimit import RateLimits
    from launchprov.views.health import in_probe_lane

    def registry(tokens, storage_uri):
        return SimpleNamespace(
            launchprov_settings={"launchprov.metrics.tokens": tokens},
            launchprov_ratelimits=RateLimits(
                {}, {}, storage_uri, auth_failures=(parse("10/minute"),), clock=clock
            ),
            launchprov_readiness=Readiness(cloud.ping, PERIOD, TIMEOUT, "ec2", clock),
        )

    scraper = {"digest": "prometheus"}
    for tokens, storage_uri in (({}, "redis://127.0.0.1:1/0"), (scraper, "memory://")):
        lane = registry(tokens, storage_uri)
        assert [in_probe_lane(lane, path) for path in ("/healthz", "/readyz", "/metrics")] == [
            True,
            True,
            True,
        ], (tokens, storage_uri)
        assert not in_probe_lane(lane, "/v1/instances")
    remote = registry(scraper, "redis://127.0.0.1:1/0")
    assert not in_probe_lane(remote, "/metrics")
    # /readyz in the lane: this thread now answers from memory, asking neither the cloud nor
    # the storage (nothing is listening on port 1: asking it would say "unreachable").
    assert in_probe_lane(remote, "/readyz")
    assert remote.launchprov_readiness.check().message == "the readiness call has not answered yet"
    assert remote.launchprov_ratelimits.readiness()["storage"] == "not checked yet"
