"""The batcher: concurrent requests for single ids become one call with the union of the ids.

The merging tests close their batch by ``max_ids`` (idle and max_wait a minute away), so which
requests share a call is decided by the test, not by timing.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from launchprov.providers.batching import OFF, Batcher, BatchSettings
from launchprov.providers.interface import ProviderError

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

    with ThreadPoolExecutor(len(requests)) as pool:
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
    with ThreadPoolExecutor(3) as pool:
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
    with ThreadPoolExecutor(1) as pool:
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
    on = BatchSettings.from_settings(
        {
            "launchprov.batch.idle_ms": 10,
            "launchprov.batch.max_ms": 100,
            "launchprov.batch.max_ids": 5,
        }
    )
    assert on == BatchSettings(idle=0.010, max_wait=0.100, max_ids=5)
