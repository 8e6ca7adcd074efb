"""Load generation: closed loops of worker threads, each with its own keep-alive connection.

Every loop is bounded twice, by a count and by a deadline. Latencies are measured with
``time.perf_counter`` around one call, client overhead included (a few tens of microseconds
for ``http.client``; the same for every target behind HTTP).
"""

from __future__ import annotations

import http.client
import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks.processes import LAUNCH_BODY, LAUNCH_HEADERS

#: A call: does one request, returns whether it succeeded. A factory makes one per thread.
Call = Callable[[], bool]
CallFactory = Callable[[], Call]


def http_launch(port: int, timeout: float = 30.0) -> CallFactory:
    """Per thread: a keep-alive connection that sends ``PUT /v1/launch`` with the same body."""

    def factory() -> Call:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        connection.connect()

        def call() -> bool:
            connection.request("PUT", "/v1/launch", LAUNCH_BODY, LAUNCH_HEADERS)
            response = connection.getresponse()
            return response.status == 200 and response.read().startswith(b'["i-')

        call.connection = connection
        return call

    return factory


def boto3_launch(client, params: Callable[[], dict]) -> CallFactory:
    """Every thread shares ``client`` (boto3 clients are thread-safe); ``params()`` per call."""

    def factory() -> Call:
        def call() -> bool:
            return bool(client.run_instances(**params())["Instances"])

        return call

    return factory


@dataclass
class Run:
    """The outcome of one closed loop."""

    concurrency: int
    latencies: list[float] = field(default_factory=list)  # seconds, successful calls
    failures: int = 0
    wall: float = 0.0  # seconds from the first call's start to the last call's end

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0


def closed_loop(
    factory: CallFactory, concurrency: int, count: int, seconds: float, warmup: int = 0
) -> Run:
    """``concurrency`` threads call until ``count`` calls were made or ``seconds`` passed.

    Each thread first makes ``warmup`` calls of its own, not measured; then all start together.
    """
    run = Run(concurrency)
    tickets = itertools.count()
    start_line = threading.Barrier(concurrency + 1)
    lock = threading.Lock()
    spans: list[tuple[float, float]] = []
    errors: list[BaseException] = []
    deadline = [math.inf]

    def worker() -> None:
        call = None
        try:
            call = factory()
            for _ in range(warmup):
                call()
        except BaseException as exc:  # reported below, after the barrier
            errors.append(exc)
        start_line.wait()
        if call is None:
            return
        mine: list[float] = []
        failures = 0
        first = last = None
        while next(tickets) < count and time.perf_counter() < deadline[0]:
            started = time.perf_counter()
            try:
                ok = call()
            except (OSError, http.client.HTTPException, RuntimeError):
                ok = False
            ended = time.perf_counter()
            first = first or started
            last = ended
            if ok:
                mine.append(ended - started)
            else:
                failures += 1
        connection = getattr(call, "connection", None)
        if connection is not None:
            connection.close()
        with lock:
            run.latencies.extend(mine)
            run.failures += failures
            if first is not None:
                spans.append((first, last))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds + 60.0  # until the barrier opens: warm-up
    start_line.wait(timeout=120)
    deadline[0] = time.perf_counter() + seconds
    for thread in threads:
        thread.join(timeout=seconds + 60)
    if errors:
        raise RuntimeError(f"a worker could not start: {errors[0]!r}") from errors[0]
    if spans:
        run.wall = max(end for _, end in spans) - min(start for start, _ in spans)
    return run


def burst(factory: CallFactory, size: int, rounds: int) -> tuple[list[float], int]:
    """``size`` calls at once, ``rounds`` times: (the wall time of each burst, failed calls).

    Every call has its own thread and connection, connected and warmed before the first burst,
    so that a burst measures only the service.
    """
    calls = [None] * size
    with_calls = threading.Barrier(size + 1)
    go = threading.Barrier(size + 1)
    done = threading.Barrier(size + 1)
    failures: list[int] = []

    def worker(index: int) -> None:
        calls[index] = factory()
        calls[index]()  # warm: connection open, server thread seen
        with_calls.wait(timeout=60)
        for _ in range(rounds):
            go.wait(timeout=60)
            try:
                if not calls[index]():
                    failures.append(index)
            except (OSError, http.client.HTTPException):
                failures.append(index)
            done.wait(timeout=60)
        connection = getattr(calls[index], "connection", None)
        if connection is not None:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(size)]
    for thread in threads:
        thread.start()
    with_calls.wait(timeout=60)
    walls = []
    for _ in range(rounds):
        time.sleep(0.05)  # let the previous burst's connections settle back in their pools
        started = time.perf_counter()
        go.wait(timeout=60)
        done.wait(timeout=60)
        walls.append(time.perf_counter() - started)
    for thread in threads:
        thread.join(timeout=60)
    return walls, len(failures)
