"""Coalescing concurrent provider calls: many requests, one call with the union of their ids.

A cloud account's API budget is the scarce resource (EC2 throttles DescribeInstances and
TerminateInstances per account), so, as Karpenter does, concurrent requests about single
instances of one region are merged: the first request opens a batch, the requests that arrive
while it is open join it, and it closes ``idle`` seconds after the last one joined, ``max_wait``
seconds after it opened, or at ``max_ids`` ids, whichever comes first. One provider call then
answers every request in it. A lone request pays at most ``idle``.

Nothing here knows a cloud: an adapter gives the function that makes the batched call
(ids in, a mapping of id to result out) and asks :meth:`Batcher.submit` for one id.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from launchprov.providers import deadline


@dataclasses.dataclass(frozen=True)
class BatchSettings:
    """``launchprov.batch.*``: seconds rather than milliseconds; ``idle = 0`` turns it off."""

    idle: float = 0.010
    max_wait: float = 0.100
    max_ids: int = 500

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> BatchSettings:
        return cls(
            idle=settings["launchprov.batch.idle_ms"] / 1000,
            max_wait=settings["launchprov.batch.max_ms"] / 1000,
            max_ids=settings["launchprov.batch.max_ids"],
        )

    @property
    def enabled(self) -> bool:
        return self.idle > 0


OFF = BatchSettings(idle=0)


class _Batch:
    def __init__(self, now: float):
        self.opened = self.last_joined = now
        self.ids: dict[str, None] = {}  # an ordered set: two requests for one id share it
        self.requests = 0
        self.closed = False
        self.done = threading.Event()
        self.results: Mapping[str, Any] = {}
        self.error: BaseException | None = None


#: Called after each batched call with the operation and the number of requests it answered.
Observer = Callable[[str, int], None]


class Batcher:
    """Merges concurrent :meth:`submit` calls with the same key (a region) into one call of
    ``execute(key, ids)``, which returns a mapping of id to result (ids it does not know left
    out) or raises; its exception reaches every request of the batch."""

    def __init__(
        self,
        operation: str,
        execute: Callable[[Hashable, list[str]], Mapping[str, Any]],
        settings: BatchSettings,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.operation = operation
        self.execute = execute
        self.settings = settings
        self.observers: list[Observer] = []
        self._clock = clock
        self._lock = threading.Lock()
        self._joined = threading.Condition(self._lock)
        self._open: dict[Hashable, _Batch] = {}

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def submit(self, key: Hashable, item_id: str) -> Any | None:
        """The result for ``item_id`` from the batch it joins; None if the call did not return it.

        The first request of a batch waits for it to close and makes the call; the others wait
        for its answer.
        """
        with self._lock:
            now = self._clock()
            batch = self._open.get(key)
            leader = batch is None
            if leader:
                batch = self._open[key] = _Batch(now)
            batch.ids.setdefault(item_id)
            batch.requests += 1
            batch.last_joined = now
            if len(batch.ids) >= self.settings.max_ids:
                self._close(key, batch)
                self._joined.notify_all()
        if leader:
            self._lead(key, batch)
        elif not batch.done.wait(deadline.wait_limit()):
            # In the request's own thread: its answer is due by the deadline, whenever the
            # batch's call (made under another request's deadline) ends.
            raise deadline.DeadlinePassed(
                f"the request's deadline passed while waiting for a batched {self.operation}"
            )
        if batch.error is not None:
            raise batch.error
        return batch.results.get(item_id)

    def _close(self, key: Hashable, batch: _Batch) -> None:
        batch.closed = True
        if self._open.get(key) is batch:
            del self._open[key]

    def _lead(self, key: Hashable, batch: _Batch) -> None:
        settings = self.settings
        with self._lock:
            while not batch.closed:
                deadline = min(batch.last_joined + settings.idle, batch.opened + settings.max_wait)
                remaining = deadline - self._clock()
                if remaining <= 0:
                    self._close(key, batch)
                    break
                self._joined.wait(remaining)
        try:
            batch.results = self.execute(key, list(batch.ids))
        except BaseException as exc:  # every request of the batch gets the call's failure
            batch.error = exc
        finally:
            batch.done.set()
            for observe in self.observers:
                observe(self.operation, batch.requests)
