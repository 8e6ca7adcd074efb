"""What ``/readyz`` says about the cloud: what it last answered, asked at most once a period.

``/readyz`` is open to every caller, so it must not turn probes into provider calls: any client
that reaches the port would spend the account's API budget (issue 24: 1,166 probes in 10 s made
146 DescribeAvailabilityZones calls). So the cloud's reachability is remembered for
``launchprov.readiness_cache`` seconds, and learnt two ways:

* any provider call that succeeds (a caller's launch, describe, listing...) proves the cloud
  answers: it renews the view at no cost (:meth:`Readiness.answered`);
* when the view is older than the period, the next probe makes the one cheap readiness call
  (``ping``) and waits for it at most ``launchprov.readiness_timeout``; probes arriving
  meanwhile get the view it is renewing, at once. One refresh at a time, so at most one
  readiness call per period whatever the probes' number.

A cloud that stops answering is seen within ``readiness_cache + readiness_timeout`` seconds of
its last answer (the first probe after the period waits for the call, which fails or times out),
and a probe is never held longer than ``readiness_timeout``. Nothing here knows Pyramid.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

from launchprov.providers.interface import ProviderError


@dataclasses.dataclass(frozen=True)
class Seen:
    """What the cloud did at ``at`` (the clock's time): answered (``error`` None), or failed."""

    at: float
    error: ProviderError | None


class Readiness:
    """The cloud's reachability, renewed by successful provider calls or, at most once every
    ``period`` seconds, by one readiness call (``probe(timeout)``, which raises ProviderError
    when the cloud cannot be reached)."""

    def __init__(
        self,
        probe: Callable[[float], object],
        period: float,
        timeout: float,
        provider: str = "provider",
        clock: Callable[[], float] = time.monotonic,
    ):
        self.probe = probe
        self.period = period
        self.timeout = timeout
        self.provider = provider
        self.clock = clock
        self._condition = threading.Condition()
        self._seen: Seen | None = None
        self._refreshing = False
        #: The server's loop thread (:meth:`answer_from_memory_in`): it never makes the call.
        self._lane_thread: int | None = None

    def answered(self) -> None:
        """A provider call succeeded just now: the cloud answers (no call made for it)."""
        self._record(Seen(self.clock(), None))

    def _record(self, seen: Seen) -> None:
        with self._condition:
            # A readiness call that began before a success must not hide that success.
            if self._seen is None or seen.at >= self._seen.at:
                self._seen = seen
            self._condition.notify_all()

    def check(self) -> ProviderError | None:
        """None when the cloud answers, else the error that says why it cannot be reached.

        Makes the readiness call only when what is known is older than ``period`` and no other
        thread is making it; waits for it at most ``timeout`` seconds.
        """
        with self._condition:
            seen = self._seen
            if seen is not None and self.clock() - seen.at < self.period:
                return seen.error
            if threading.get_ident() == self._lane_thread:
                # The server's loop thread (the probe lane) never makes the call nor waits for
                # it: it answers with what is known while a thread of its own renews it.
                if not self._refreshing:
                    self._refreshing = True
                    self._refresh_in_background()
                return seen.error if seen is not None else self._not_yet()
            if self._refreshing:
                if seen is not None:
                    return seen.error  # another probe is renewing it: the view so far
                # Nothing known yet (the first probes after startup): wait for the first call.
                self._condition.wait_for(lambda: self._seen is not None, self.timeout)
                if self._seen is None:
                    return self._no_answer()
                return self._seen.error
            self._refreshing = True
        return self._refresh()

    def answer_from_memory_in(self, thread: int) -> None:
        """From now on, :meth:`check` called in ``thread`` (the server's loop thread, which
        serves /readyz in :mod:`launchprov.serving`'s probe lane) answers at once with what is
        known, and has a thread of its own renew what is older than the period: nothing known
        yet is a 503 "not answered yet", not a wait."""
        with self._condition:
            self._lane_thread = thread

    def _refresh_in_background(self) -> None:
        threading.Thread(target=self._refresh, name="launchprov-readiness", daemon=True).start()

    def _refresh(self) -> ProviderError | None:
        """Make the readiness call (``_refreshing`` is set) and remember what it found."""
        try:
            try:
                self.probe(self.timeout)
                error = None
            except ProviderError as exc:
                error = exc
            self._record(Seen(self.clock(), error))
            return error
        finally:
            with self._condition:
                self._refreshing = False
                self._condition.notify_all()

    def _not_yet(self) -> ProviderError:
        return ProviderError(
            self.provider,
            ProviderError.TIMEOUT,
            "the readiness call has not answered yet",
            retryable=True,
        )

    def _no_answer(self) -> ProviderError:
        return ProviderError(
            self.provider,
            ProviderError.TIMEOUT,
            f"no answer to the readiness call within {self.timeout:g} s",
            retryable=True,
        )
