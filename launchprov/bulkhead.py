"""The bulkhead: a bounded number of provider calls at once, and an answer by the deadline.

A slow cloud must not take every waitress thread: health checks, metrics scrapes and requests
that make no provider call share those threads. So:

* at most ``launchprov.provider_concurrency`` provider calls are in progress in a process
  (the *slots*); a request that finds them all taken waits for one at most
  ``launchprov.provider_queue_timeout`` seconds, then is refused at once with
  :class:`ProviderBusy` (a 503 with ``Retry-After``). While the slots have stayed full for the
  whole queue time-out (no call finished: the provider is not answering) a request is refused
  without waiting at all, so that waiting requests do not take the threads that health checks
  need;
* the call runs in a thread of the bulkhead's own pool, and the request's thread waits for it
  until ``launchprov.request_deadline`` seconds after the request first asked for a slot: one
  deadline for all the provider calls of a request (:func:`one_deadline_per_request`; an
  action on an instance is a describe for the ownership check, then the action), and none
  starts after it. At the
  deadline the request is answered 408 ``Timeout`` and its waitress thread is free again; the
  call keeps its slot until the SDK gives up (the boto3 adapter makes no new attempt after the
  deadline, see :mod:`launchprov.providers.deadline`), so the slots bound the calls really in
  progress, answered or not;
* ``ping`` (``/readyz``) takes no slot: one ping at a time, and every probe waits for it at
  most its own time-out.

Nothing here knows Pyramid: the views and the error views turn these outcomes into HTTP.
"""

from __future__ import annotations

import configparser
import contextlib
import contextvars
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from zope.interface import implementer

from launchprov.providers import deadline
from launchprov.providers.interface import (
    CHANGING_OPERATIONS,
    OUTCOME_NONE,
    OUTCOME_PARTIAL,
    OUTCOME_UNKNOWN,
    IProvider,
    ProviderError,
)
from launchprov.settings import ConfigurationError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: waitress's own default number of threads, assumed when the server's cannot be read.
WAITRESS_DEFAULT_THREADS = 4

# True in the bulkhead's threads: provider work nested in a unit of work takes no new slot.
_in_slot: contextvars.ContextVar[bool] = contextvars.ContextVar("launchprov_in_slot", default=False)
#: The deadline of the request in progress in this thread: empty until its first provider
#: call; None outside :func:`one_deadline_per_request` (each call then has its own).
_request_deadline: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar(
    "launchprov_request_deadline", default=None
)


@contextlib.contextmanager
def one_deadline_per_request():
    """Every provider call made in the block shares one deadline: ``request_deadline`` seconds
    after the first of them asked for a slot. The tween puts every request in one."""
    token = _request_deadline.set([])
    try:
        yield
    finally:
        _request_deadline.reset(token)


class ProviderBusy(Exception):
    """No provider slot became free in time: the request was not sent to the provider."""

    def __init__(self, provider: str, limit: int, message: str):
        super().__init__(message)
        self.provider = provider
        self.limit = limit
        self.message = message


def reserve(threads: int) -> int:
    """The waitress threads kept out of provider work by default: max(2, threads // 4)."""
    return max(2, threads // 4)


def server_threads(global_config: dict[str, Any] | None) -> int | None:
    """waitress's ``threads`` in the [server:main] section of the .ini the app is served from,
    or None when that cannot be known (the app was not made from an .ini, or not waitress)."""
    path = (global_config or {}).get("__file__")
    if not path:
        return None
    ini = configparser.RawConfigParser(strict=False)
    try:
        if not ini.read(path, encoding="utf-8") or not ini.has_section("server:main"):
            return None
        if "waitress" not in ini.get("server:main", "use", fallback=""):
            return None
        return ini.getint("server:main", "threads", fallback=WAITRESS_DEFAULT_THREADS)
    except (configparser.Error, ValueError):
        return None


def concurrency(configured: int | None, threads: int | None) -> int:
    """The number of provider slots: ``configured``, or waitress's threads minus the reserve.

    Raises ConfigurationError when the slots would leave no thread for health checks.
    """
    known = threads is not None
    threads = threads if known else WAITRESS_DEFAULT_THREADS
    if configured is None:
        if threads < 2:
            raise ConfigurationError(
                f"waitress serves with threads = {threads}: launchprov needs at least 2, one "
                "for provider calls and one for health checks"
            )
        return max(1, threads - reserve(threads))
    if known and configured >= threads:
        raise ConfigurationError(
            f"launchprov.provider_concurrency = {configured} leaves none of waitress's "
            f"{threads} threads for health checks and metrics: set it below {threads} "
            f"(or leave it empty: {max(1, threads - reserve(threads))})"
        )
    return configured


@dataclasses.dataclass(frozen=True)
class BulkheadState:
    """The slots as /readyz and the metrics report them."""

    limit: int
    in_use: int
    waiting: int
    #: Seconds since every slot has been taken with none freed; 0 when a slot is free.
    saturated_for: float

    def as_json(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "in_use": self.in_use,
            "waiting": self.waiting,
            "saturated_for": round(self.saturated_for, 3),
        }


class Bulkhead:
    """``limit`` slots for provider work, each taken for the whole of one unit of work."""

    def __init__(self, limit: int, queue_timeout: float):
        self.limit = limit
        self.queue_timeout = queue_timeout
        self._condition = threading.Condition()
        self._in_use = 0
        self._waiting = 0
        # When the slots last turned over (one was freed) or became all taken.
        self._last_turnover = time.monotonic()
        self._executor = ThreadPoolExecutor(
            max_workers=limit, thread_name_prefix="launchprov-provider"
        )

    def state(self) -> BulkheadState:
        with self._condition:
            saturated = self._in_use >= self.limit
            since = time.monotonic() - self._last_turnover if saturated else 0.0
            return BulkheadState(self.limit, self._in_use, self._waiting, since)

    def _acquire(self, until: float) -> bool:
        with self._condition:
            if self._in_use < self.limit:
                self._take()
                return True
            now = time.monotonic()
            if now - self._last_turnover >= self.queue_timeout:
                return False  # no call has finished for a whole queue time-out: do not wait
            wait = min(self.queue_timeout, until - now)
            self._waiting += 1
            try:
                free = self._condition.wait_for(lambda: self._in_use < self.limit, wait)
            finally:
                self._waiting -= 1
            if not free:
                return False
            self._take()
            return True

    def _take(self) -> None:
        self._in_use += 1
        if self._in_use == self.limit:
            self._last_turnover = time.monotonic()

    def _release(self, _future: Future | None = None) -> None:
        with self._condition:
            self._in_use -= 1
            self._last_turnover = time.monotonic()
            self._condition.notify()

    def submit(self, until: float, function: Callable[..., T], *args) -> Future[T] | None:
        """Run ``function(*args)`` in a slot, with ``until`` as its deadline; None when no
        slot became free in time. The slot is freed when the function returns, whenever
        that is."""
        if not self._acquire(until):
            return None
        context = contextvars.copy_context()

        def in_slot():
            _in_slot.set(True)
            with deadline.until(until):
                return function(*args)

        try:
            future = self._executor.submit(context.run, in_slot)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(self._release)
        return future

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


#: The provider operation whose instances are counted as they come (``partial`` at the deadline).
#: The others that change something (CHANGING_OPERATIONS) are ``unknown`` at the deadline: the
#: call may have reached the provider and be carried out after the 408.
_LAUNCHING = frozenset({"launch"})


@implementer(IProvider)
class GuardedProvider:
    """An IProvider whose every call takes a slot of a :class:`Bulkhead` and is answered by
    the request deadline.

    ``run`` puts a whole unit of work (a launch with its client-token lookup) in one slot;
    provider calls made inside it take no second slot.
    """

    def __init__(
        self,
        provider,
        bulkhead: Bulkhead,
        request_deadline: float,
        on_rejected: Callable[[], None] = lambda: None,
        on_deadline: Callable[[str], None] = lambda operation: None,
    ):
        self.provider = provider
        self.bulkhead = bulkhead
        self.request_deadline = request_deadline
        self.name = provider.name
        self.image_id_pattern = provider.image_id_pattern
        self.instance_id_pattern = provider.instance_id_pattern
        self.placement_is_zone = getattr(provider, "placement_is_zone", True)
        self._on_rejected = on_rejected
        self._on_deadline = on_deadline
        self._ping_lock = threading.Lock()
        self._ping: Future | None = None
        self._ping_executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="launchprov-ping"
        )

    def __getattr__(self, name: str):
        # Any other attribute an adapter describes itself with (what the schemas read) is the
        # wrapped provider's: a new one needs no change here.
        if name == "provider":  # not set yet (copying, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.provider, name)

    def run(self, operation: str, function: Callable[..., T], *args) -> T:
        """``function(*args)`` in one provider slot, answered by the deadline.

        Raises :class:`ProviderBusy` when no slot became free in time, and a ProviderError
        ``Timeout`` when the deadline passed first (``outcome`` unknown for an operation that
        changes something: a launch may have started instances, a terminate, stop, start,
        reboot or tag change may be carried out; ``none`` for one that only reads). Whatever
        ``function`` raises is raised here.
        """
        if _in_slot.get():
            return function(*args)
        until = self._deadline()
        if until <= time.monotonic():
            # An earlier call of this request used up its time: this one is never sent.
            self._on_deadline(operation)
            raise ProviderError(
                self.name,
                ProviderError.TIMEOUT,
                f"launchprov.request_deadline = {self.request_deadline:g} s passed before the "
                f"{operation} call; nothing was sent to the {self.name} provider",
                retryable=True,
                outcome=OUTCOME_NONE,
            )
        launching = operation in _LAUNCHING
        created = deadline.Created()
        with deadline.recording(created) if launching else contextlib.nullcontext():
            future = self.bulkhead.submit(until, function, *args)
        if future is None:
            self._on_rejected()
            state = self.bulkhead.state()
            raise ProviderBusy(
                self.name,
                state.limit,
                f"the {self.name} provider is busy: all {state.limit} provider slots of this "
                "process are taken; nothing was sent to the provider, retry later",
            )
        try:
            return future.result(timeout=max(0.0, until - time.monotonic()))
        except FutureTimeout:
            answered = created.ids  # what the 408 names; the late log names the rest
            future.add_done_callback(
                _log_late(operation, self.name, contextvars.copy_context(), answered)
            )
            self._on_deadline(operation)
            if launching:
                outcome = OUTCOME_PARTIAL if answered else OUTCOME_UNKNOWN
            else:
                outcome = OUTCOME_UNKNOWN if operation in CHANGING_OPERATIONS else OUTCOME_NONE
            raise ProviderError(
                self.name,
                ProviderError.TIMEOUT,
                f"no answer from the {self.name} provider within launchprov.request_deadline "
                f"= {self.request_deadline:g} s"
                + (_launch_state(answered) if launching else _change_state(operation)),
                retryable=True,
                outcome=outcome,
                instances=answered,
                operation=None if launching or outcome == OUTCOME_NONE else operation,
            ) from None

    def _deadline(self) -> float:
        """When the current call must be answered: the request's deadline (set by its first
        call), or ``request_deadline`` from now outside a request."""
        shared = _request_deadline.get()
        if shared is None:
            return time.monotonic() + self.request_deadline
        if not shared:
            shared.append(time.monotonic() + self.request_deadline)
        return shared[0]

    def launch(self, request):
        return self.run("launch", self.provider.launch, request)

    def describe(self, instance_id, region):
        return self.run("describe", self.provider.describe, instance_id, region)

    def list_instances(self, query):
        return self.run("list_instances", self.provider.list_instances, query)

    def terminate(self, instance_id, region):
        return self.run("terminate", self.provider.terminate, instance_id, region)

    def stop(self, instance_id, region):
        return self.run("stop", self.provider.stop, instance_id, region)

    def start(self, instance_id, region):
        return self.run("start", self.provider.start, instance_id, region)

    def reboot(self, instance_id, region):
        return self.run("reboot", self.provider.reboot, instance_id, region)

    def preflight(self, request):
        return self.run("preflight", self.provider.preflight, request)

    def terminate_many(self, instance_ids, region):
        return self.run("terminate_many", self.provider.terminate_many, instance_ids, region)

    def tag(self, instance_id, region, tags):
        return self.run("tag", self.provider.tag, instance_id, region, tags)

    def untag(self, instance_id, region, keys):
        return self.run("untag", self.provider.untag, instance_id, region, keys)

    def ping(self, timeout):
        """One ping at a time, outside the slots; every caller waits for it at most
        ``timeout`` seconds, whatever the provider does."""
        with self._ping_lock:
            if self._ping is None or self._ping.done():
                self._ping = self._ping_executor.submit(self.provider.ping, timeout)
            ping = self._ping
        try:
            return ping.result(timeout=timeout)
        except FutureTimeout:
            raise ProviderError(
                self.name,
                ProviderError.TIMEOUT,
                f"no answer to the readiness call within {timeout:g} s",
                retryable=True,
            ) from None


#: What sending an action again does, said in the message of its 408 (``unknown``).
_AGAIN = {
    "terminate": "safe: an instance terminated already is answered as it is",
    "stop": "safe: an instance stopped already is answered as it is",
    "start": "safe: EC2 accepts the start of a running instance",
    "reboot": "a reboot done already is not seen: a second one reboots again",
}


def _change_state(operation: str) -> str:
    """What the message of a 408 adds for an operation that changes something: it may be
    carried out, and sending it again is safe (an adapter makes no call for an action that is
    done already)."""
    if operation not in CHANGING_OPERATIONS:
        return ""
    again = _AGAIN.get(operation, "safe: the same change again changes nothing more")
    return (
        f"; the {operation} may have reached the provider and be carried out: look at the "
        f"instance, or send the same {operation} again ({again})"
    )


def _launch_state(answered: tuple[str, ...]) -> str:
    """What the message of a launch's 408 adds: what it created, what it may still start."""
    if not answered:
        return "; the launch may still start instances"
    return (
        f"; the launch created {len(answered)} instance(s) (details) and sends no more "
        "creates; one sent before the deadline may still add an instance"
    )


def launched_ids(result) -> list[str]:
    """The ids a launch returned: a list of ids, or what has them as ``ids`` (``Launched``)."""
    return list(getattr(result, "ids", result))


def _log_late(
    operation: str,
    provider: str,
    context: contextvars.Context,
    answered: tuple[str, ...] = (),
) -> Callable[[Future], None]:
    """Log how a call answered after its request was answered 408 at the deadline (for a
    launch, the instances it started that the 408 did not name), with the request's id and
    caller on the line."""

    def done(future: Future) -> None:
        context.run(_report, future)

    def _report(future: Future) -> None:
        error = future.exception()
        launching = operation in _LAUNCHING
        if error is None and launching:
            ids = launched_ids(future.result())
        elif launching:
            ids = list(getattr(error, "instances", ()))
        if launching and (late := [i for i in ids if i not in answered]):
            log.warning(
                "a launch answered 408 at the deadline has since launched %s on %s%s",
                ", ".join(late),
                provider,
                f" (the 408 named {', '.join(answered)})" if answered else "",
            )
        if error is None:
            log.info("%s answered 408 at the deadline has since succeeded", operation)
        else:
            log.info("%s answered 408 at the deadline has since failed: %s", operation, error)

    return done
