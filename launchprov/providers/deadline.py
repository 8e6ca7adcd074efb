"""The deadline of the provider work in progress, for adapters to stop retrying after it.

launchprov answers a request by its deadline whatever the provider does (see
:mod:`launchprov.bulkhead`); the provider call itself goes on in its own thread until the SDK
gives up. An adapter reads :func:`remaining` to make no new attempt once nobody waits for the
answer, so that a sick cloud holds a provider slot for one attempt, not for every retry.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "launchprov_deadline", default=None
)


class DeadlinePassed(Exception):
    """Raised by an adapter that will not start another attempt: the deadline has passed."""


def remaining() -> float | None:
    """Seconds left before the current deadline (<= 0 when passed); None when there is none."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def passed() -> bool:
    left = remaining()
    return left is not None and left <= 0


@contextlib.contextmanager
def until(deadline: float) -> Iterator[None]:
    """Run the block with ``deadline`` (a ``time.monotonic()`` value) as the current one."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)
