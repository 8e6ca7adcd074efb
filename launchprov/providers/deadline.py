"""The deadline of the provider work in progress, for adapters to stop retrying after it.

launchprov answers a request by its deadline whatever the provider does (see
:mod:`launchprov.bulkhead`); the provider call itself goes on in its own thread until the SDK
gives up. An adapter reads :func:`remaining` to make no new attempt once nobody waits for the
answer, so that a sick cloud holds a provider slot for one attempt, not for every retry.

A launch that creates its instances one call at a time tells :func:`created` each id as it
comes: what the request answered at the deadline names them (``outcome`` ``partial``).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Iterator

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "launchprov_deadline", default=None
)
#: True while the work runs in the thread that answers the request (see :func:`until`).
_inline: contextvars.ContextVar[bool] = contextvars.ContextVar("launchprov_inline", default=False)


class DeadlinePassed(Exception):
    """Raised by an adapter that will not start another attempt: the deadline has passed."""


def remaining() -> float | None:
    """Seconds left before the current deadline (<= 0 when passed); None when there is none."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def passed() -> bool:
    left = remaining()
    return left is not None and left <= 0


def inline() -> bool:
    """Whether the work in progress runs in the thread that answers its request: it must then
    end by the deadline by itself, so an adapter starts no attempt that could end after it."""
    return _inline.get()


def wait_limit() -> float | None:
    """How long the work may wait for another thread's call (a batch it joined): what is left
    of the deadline when the work runs in the request's own thread, else None (no limit: the
    request is answered at the deadline by the thread that waits for this one)."""
    left = remaining()
    if left is None or not _inline.get():
        return None
    return max(0.0, left)


@contextlib.contextmanager
def until(deadline: float, inline: bool = False) -> Iterator[None]:
    """Run the block with ``deadline`` (a ``time.monotonic()`` value) as the current one.

    ``inline``: the block runs in the thread that answers the request, not in a thread the
    request waits for at most until the deadline, so its work must end by the deadline by
    itself: an adapter starts no attempt that could end after it (:func:`inline`), and no wait
    for another thread's call outlasts it (:func:`wait_limit`).
    """
    token = _deadline.set(deadline)
    inline_token = _inline.set(inline)
    try:
        yield
    finally:
        _inline.reset(inline_token)
        _deadline.reset(token)


class Created:
    """The ids a launch in progress has created so far, shared by the thread that makes it and
    the one that answers the request at the deadline."""

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._lock = threading.Lock()

    def add(self, ids) -> None:
        with self._lock:
            self._ids.extend(ids)

    @property
    def ids(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._ids)


_created: contextvars.ContextVar[Created | None] = contextvars.ContextVar(
    "launchprov_created", default=None
)


def created(ids) -> None:
    """Record instance ids the launch in progress has just created (nothing outside one)."""
    record = _created.get()
    if record is not None:
        record.add(ids)


@contextlib.contextmanager
def recording(record: Created) -> Iterator[None]:
    """Provider work started in the block (its context copied) records its ids in ``record``."""
    token = _created.set(record)
    try:
        yield
    finally:
        _created.reset(token)
