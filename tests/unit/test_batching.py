"""The batcher: concurrent requests for single ids become one call with the union of the ids.

The merging tests close their batch by ``max_ids`` (idle and max_wait a minute away), so which
requests share a call is decided by the test, not by timing.
"""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

from launchprov.providers import deadline
from launchprov.providers.batching import OFF, Batcher, BatchSettings
from launchprov.providers.interface import ProviderError
from tests.support import threads

DEADLINE = 10.0
NEVER = 60.0


class Recorder:
    """An ``execute`` that records its calls and knows the ids in ``known``."""

    def __init__(self, known=None, error: Exception | None = None):
        self.calls: list[tuple[str, list[str]]] = []
        self.known = known
        self.error = error
        self.lock = threading.Lock()

    def __call__(self, key, ids):
        with self.lock:
            self.calls.append((key, list(ids)))
        if self.error is not None:
            raise self.error
        return {item: f"{key}/{item}" for item in ids if self.known is None or item in self.known}


def wait_for(check, what: str):
    end = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < end, what
        time.sleep(0.005)  # polling interval: the check decides


def open_requests(batcher: Batcher, key) -> int:
    batch = batcher._open.get(key)
    return batch.requests if batch is not None else 0


def submit_all(batcher: Batcher, requests: list[tuple[str, str]]):
    """Submit every (key, id) from its own thread; the results (or exceptions) in order."""

    def one(request):
        try:
            return batcher.submit(*request)
        except Exception as exc:  # the test looks at what each request got
            return exc

    with threads(len(requests)) as pool:
        return list(pool.map(one, requests, timeout=DEADLINE))


def test_concurrent_requests_make_one_call_with_the_union_of_ids():
    execute = Recorder(known={"i-1", "i-2", "i-3"})
    batcher = Batcher("describe", execute, BatchSettings(idle=NEVER, max_wait=NEVER, max_ids=4))
    results = submit_all(batcher, [("r", "i-1"), ("r", "i-2"), ("r", "i-3"), ("r", "i-4")])
    assert results == ["r/i-1", "r/i-2", "r/i-3", None]  # i-4: not returned, the caller decides
    assert len(execute.calls) == 1
    assert sorted(execute.calls[0][1]) == ["i-1", "i-2", "i-3", "i-4"]


def test_two_requests_for_one_id_share_it():
    execute = Recorder()
    batcher = Batcher("describe", execute, BatchSettings(idle=NEVER, max_wait=NEVER, max_ids=2))
    with threads(3) as pool:
        first = [pool.submit(batcher.submit, "r", "i-1") for _ in range(2)]
        wait_for(lambda: open_requests(batcher, "r") == 2, "two requests joined")
        last = pool.submit(batcher.submit, "r", "i-2")  # the second id closes it
        assert [f.result(DEADLINE) for f in [*first, last]] == ["r/i-1", "r/i-1", "r/i-2"]
    assert execute.calls == [("r", ["i-1", "i-2"])]


def test_an_error_of_the_call_reaches_every_request():
    error = ProviderError("ec2", "RequestLimitExceeded", "slow down", retryable=True)
    batcher = Batcher(
        "describe", Recorder(error=error), BatchSettings(idle=NEVER, max_wait=NEVER, max_ids=3)
    )
    results = submit_all(batcher, [("r", "i-1"), ("r", "i-2"), ("r", "i-3")])
    assert all(result is error for result in results)


def test_max_ids_splits_a_crowd_into_several_calls():
    execute = Recorder()
    batcher = Batcher("describe", execute, BatchSettings(idle=NEVER, max_wait=NEVER, max_ids=3))
    results = submit_all(batcher, [("r", f"i-{n}") for n in range(6)])
    assert results == [f"r/i-{n}" for n in range(6)]
    assert sorted(len(ids) for _, ids in execute.calls) == [3, 3]


def test_regions_are_batched_apart():
    execute = Recorder()
    batcher = Batcher("describe", execute, BatchSettings(idle=NEVER, max_wait=NEVER, max_ids=2))
    results = submit_all(batcher, [("a", "i-1"), ("b", "i-1"), ("a", "i-2"), ("b", "i-2")])
    assert results == ["a/i-1", "b/i-1", "a/i-2", "b/i-2"]
    assert sorted(execute.calls) == [("a", ["i-1", "i-2"]), ("b", ["i-1", "i-2"])]


@pytest.mark.parametrize(
    "settings",
    [
        BatchSettings(idle=0.005, max_wait=NEVER, max_ids=500),  # closed by the idle window
        BatchSettings(idle=NEVER, max_wait=0.005, max_ids=500),  # closed by its age
    ],
    ids=["idle", "max_wait"],
)
def test_a_lone_request_is_answered_when_the_window_closes(settings):
    execute = Recorder()
    batcher = Batcher("describe", execute, settings)
    with threads(1) as pool:
        assert pool.submit(batcher.submit, "r", "i-1").result(DEADLINE) == "r/i-1"
    assert execute.calls == [("r", ["i-1"])]


def test_observers_hear_the_size_of_each_batch():
    heard = []
    batcher = Batcher("terminate", Recorder(), BatchSettings(idle=NEVER, max_wait=NEVER, max_ids=3))
    batcher.observers.append(lambda operation, size: heard.append((operation, size)))
    submit_all(batcher, [("r", "i-1"), ("r", "i-2"), ("r", "i-3")])
    assert heard == [("terminate", 3)]


def test_zero_idle_turns_batching_off():
    assert not OFF.enabled
    assert not BatchSettings.from_settings(
        {
            "launchprov.batch.idle_ms": 0,
            "launchprov.batch.max_ms": 100,
            "launchprov.batch.max_ids": 5,
        }
    ).enabled
    # Each setting read, in milliseconds (values other than the defaults).
    on = BatchSettings.from_settings(
        {
            "launchprov.batch.idle_ms": 20,
            "launchprov.batch.max_ms": 250,
            "launchprov.batch.max_ids": 5,
        }
    )
    assert on == BatchSettings(idle=0.020, max_wait=0.250, max_ids=5)


# -- the window, on a clock the test moves ----------------------------------------------------


class SteppedClock:
    """The batcher's clock, moved only by the test; it counts the readings of the thread that
    opened the batch (the leader), so that the test knows when the leader has looked at the
    time it was set to and decided whether to close."""

    def __init__(self):
        self.now = 0.0
        self.leader: int | None = None
        self.leader_readings = 0
        self.read = threading.Condition()

    def __call__(self) -> float:
        with self.read:
            if self.leader is None:
                self.leader = threading.get_ident()
            if threading.get_ident() == self.leader:
                self.leader_readings += 1
                self.read.notify_all()
            return self.now

    def move_to(self, now: float) -> None:
        """Set the time, and return once the leader has read it (and closed or not)."""
        with self.read:
            self.now = now
            seen = self.leader_readings
            # The leader reads the clock at least every ``idle`` seconds while it waits.
            assert self.read.wait_for(lambda: self.leader_readings > seen, DEADLINE), now


#: The window, in the seconds of the stepped clock (the leader also waits these, in real
#: seconds, before it reads the clock again: short).
IDLE = 0.05
MAX_WAIT = 0.12


@contextlib.contextmanager
def window():
    """(batcher, its calls, its clock, a thread pool); whatever the test found, every batch
    is closed at the end (the clock jumps far ahead), so that no leader is left waiting."""
    execute = Recorder()
    clock = SteppedClock()
    settings = BatchSettings(idle=IDLE, max_wait=MAX_WAIT, max_ids=500)
    batcher = Batcher("describe", execute, settings, clock=clock)
    with threads(4) as pool:
        try:
            yield batcher, execute, clock, pool
        finally:
            with clock.read:
                clock.now = float("inf")


def joined(pool, batcher, clock, item_id: str, requests: int):
    """Submit ``item_id`` at the clock's time; return once it is in the open batch of
    ``requests`` requests (or has opened a new one: then its thread is the leader)."""
    if requests == 1:
        with clock.read:
            clock.leader = None
    future = pool.submit(batcher.submit, "r", item_id)
    wait_for(lambda: open_requests(batcher, "r") == requests, f"{item_id} joined")
    return future


def test_the_idle_window_slides_while_requests_keep_arriving():
    with window() as (batcher, execute, clock, pool):
        first = joined(pool, batcher, clock, "i-1", 1)
        clock.move_to(0.04)
        second = joined(pool, batcher, clock, "i-2", 2)
        # Past the first request's idle window, within the second's: still open.
        clock.move_to(0.08)
        third = joined(pool, batcher, clock, "i-3", 3)
        clock.move_to(0.11)  # within the third's window (0.08 + 0.05)
        assert execute.calls == []
        clock.move_to(0.08 + IDLE)  # idle after the last one joined: closed, one call
        assert [f.result(DEADLINE) for f in (first, second, third)] == ["r/i-1", "r/i-2", "r/i-3"]
    assert execute.calls == [("r", ["i-1", "i-2", "i-3"])]


def test_max_wait_closes_a_batch_that_requests_keep_open():
    with window() as (batcher, execute, clock, pool):
        futures = [joined(pool, batcher, clock, "i-1", 1)]
        for n, now in enumerate((0.04, 0.08), start=2):
            clock.move_to(now)
            futures.append(joined(pool, batcher, clock, f"i-{n}", n))
        clock.move_to(0.11)
        assert execute.calls == []
        clock.move_to(MAX_WAIT)  # the idle window runs to 0.13, but the batch is 0.12 old
        assert [f.result(DEADLINE) for f in futures] == ["r/i-1", "r/i-2", "r/i-3"]
        # Who comes now opens the next batch.
        late = joined(pool, batcher, clock, "i-4", 1)
        clock.move_to(MAX_WAIT + IDLE)
        assert late.result(DEADLINE) == "r/i-4"
    assert execute.calls == [("r", ["i-1", "i-2", "i-3"]), ("r", ["i-4"])]


def test_a_lone_request_waits_exactly_the_idle_window():
    with window() as (batcher, execute, clock, pool):
        alone = joined(pool, batcher, clock, "i-1", 1)
        clock.move_to(IDLE - 0.001)
        assert execute.calls == [] and not alone.done()
        clock.move_to(IDLE)
        assert alone.result(DEADLINE) == "r/i-1"
    assert execute.calls == [("r", ["i-1"])]


def test_a_request_answered_by_its_own_thread_waits_for_a_batch_no_longer_than_its_deadline():
    release = threading.Event()

    def slow(key, ids):  # the batch's call, made by the request that opened it
        assert release.wait(DEADLINE)
        return {item: item for item in ids}

    # The batch stays open for company (idle NEVER) until the second id fills it (max_ids 2):
    # with a short idle it could close before the check below ever saw it open.
    batcher = Batcher("describe", slow, BatchSettings(idle=NEVER, max_wait=NEVER, max_ids=2))
    with threads(1) as pool:
        leader = pool.submit(batcher.submit, "us-east-1", "i-1")
        wait_for(lambda: open_requests(batcher, "us-east-1") == 1, "the batch is open")
        started = time.monotonic()
        # Joins (max_ids 2: the batch closes and its call starts), then gives up at its deadline.
        with (
            deadline.until(started + 0.3, inline=True),
            pytest.raises(deadline.DeadlinePassed),
        ):
            batcher.submit("us-east-1", "i-2")
        assert time.monotonic() - started < DEADLINE / 2
        release.set()
        assert leader.result(DEADLINE) == "i-1"
