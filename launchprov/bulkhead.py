"""The bulkhead: a bounded number of provider calls at once, and an answer by the deadline.

A slow cloud must not take every waitress thread: health checks, metrics scrapes and requests
that make no provider call share those threads. So:

* provider calls run in *slots*. While the cloud answers, a process may have
  ``threads`` calls in progress (the *ceiling*: every waitress thread is lent to provider work)
  when served by ``egg:launchprov#waitress``, whose probe lane answers /healthz, /metrics and
  /readyz in its loop thread (:mod:`launchprov.serving`); ``threads - 1`` under another server
  (the thread never lent answers the probes); once the cloud *stalls* -- calls in
  progress and none answered for ``launchprov.provider_stall_timeout`` seconds -- only the
  *base* slots may be taken, ``launchprov.provider_concurrency`` (by default the threads minus a
  reserve of max(2, threads // 4)), so that the threads of the stuck calls come back to health
  checks as those calls are answered at the deadline (:class:`Lending`). With
  ``launchprov.provider_lend_reserve = false`` the ceiling is the base: the reserve is never
  lent;
* a request that finds the slots it may take all in use waits for one while calls keep
  answering, at most ``launchprov.provider_queue_timeout`` seconds (by default a share of the
  request deadline): a busy cloud queues. When no call has answered for
  :data:`WAIT_WITHOUT_ANSWER` seconds it is refused with :class:`ProviderBusy` (a 503 with
  ``Retry-After``), and while the cloud is stalled a request beyond the base slots is refused
  at once: no request holds a thread -- with every lent slot taken, the one kept for health
  checks -- waiting on a sick cloud. (A process behind HAProxy is sent no more requests than
  its lent slots: none waits there.) A request that waits for a worker thread instead -- every
  thread lent under ``egg:launchprov#waitress`` -- is refused by the server's loop thread on
  the stall or the silence, at once (:meth:`Bulkhead.refuses_waiting`, :mod:`launchprov.serving`);
* a call that cannot outlive the deadline (the adapter's ``attempt_seconds``, its first
  attempt's longest, is less than what is left of it; no later attempt starts unless it fits)
  runs in the request's own thread (:meth:`Bulkhead.run_here`); any other call runs in a
  thread of the bulkhead's own pool, and the request's thread waits for it
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
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from types import MappingProxyType
from typing import Any, TypeVar

from launchprov.providers import deadline
from launchprov.providers.interface import (
    OUTCOME_NONE,
    OUTCOME_PARTIAL,
    OUTCOME_UNKNOWN,
    READING_OPERATIONS,
    ProviderError,
)
from launchprov.providers.wrappers import LAUNCHING, ProviderWrapper, launched_ids, operations
from launchprov.settings import ConfigurationError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: waitress's own default number of threads, assumed when the server's cannot be read.
WAITRESS_DEFAULT_THREADS = 4

#: The share of launchprov.request_deadline a request may wait for a slot by default: a
#: queued request keeps most of its deadline for its call.
QUEUE_SHARE = 0.4

#: Health checks answer within 1 s while the cloud hangs. A request waiting for a slot holds a
#: thread -- with every lent slot taken, the one kept for them -- so it waits only while calls
#: keep answering: when none has answered for this long, it is answered 503 and the thread is
#: free again. (Behind HAProxy no request waits: maxconn is what a process serves at once.)
WAIT_WITHOUT_ANSWER = 0.5

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


class Refused(Exception):
    """No slot may be taken now (:meth:`Bulkhead.run_here`); ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ProviderBusy(Exception):
    """No provider slot became free in time: the request was not sent to the provider.

    ``reason`` says why, in the words of the 503's ``details``: the slots stayed taken for the
    whole queue time-out, or the cloud has stalled.
    """

    def __init__(self, provider: str, limit: int, message: str, reason: str | None = None):
        super().__init__(message)
        self.provider = provider
        self.limit = limit
        self.message = message
        self.reason = reason or f"all {limit} provider slots are taken"


def reserve(threads: int) -> int:
    """The waitress threads kept out of provider work while the cloud stalls, by default:
    max(2, threads // 4)."""
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
    """The base slots (what the provider may hold while it stalls): ``configured``, or
    waitress's threads minus the reserve.

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


def probe_lane(global_config: dict[str, Any] | None) -> bool:
    """Whether the app is served by launchprov's own waitress runner (``use =
    egg:launchprov#waitress``), which answers /healthz and /metrics in its loop thread
    (:mod:`launchprov.serving`): no worker thread need be kept for them."""
    path = (global_config or {}).get("__file__")
    if not path:
        return False
    ini = configparser.RawConfigParser(strict=False)
    try:
        if not ini.read(path, encoding="utf-8"):
            return False
        use = ini.get("server:main", "use", fallback="")
    except configparser.Error:
        return False
    return use.replace(" ", "") == "egg:launchprov#waitress"


def ceiling(
    base: int, threads: int | None, configured: int | None, lend: bool, lane: bool = False
) -> int:
    """The slots while the cloud answers: when the reserve is lent, every waitress thread
    served by the probe lane (``lane``: launchprov's runner answers /healthz and /metrics in
    its loop thread), else every thread but one; the ``base`` when it is not lent. When the
    threads are not known (the app is not served by waitress from an .ini) only the assumed
    default of 4 is lent, and nothing above a configured base."""
    if not lend:
        return base
    if threads is None:
        return base if configured is not None else max(base, WAITRESS_DEFAULT_THREADS - 1)
    return max(base, threads if lane else threads - 1)


#: The codes of a call that ended without the cloud's answer (a transport failure or time-out):
#: it does not show the cloud answering.
_NO_ANSWER = frozenset({ProviderError.TIMEOUT, ProviderError.UNREACHABLE})


class Lending:
    """How many slots may be taken now: ``ceiling`` while the cloud answers, ``base`` while it
    stalls. Only the decision, with the time given: :class:`Bulkhead` holds the lock and the
    clock.

    The cloud *stalls* when calls are in progress and none has answered for ``stall_timeout``
    seconds (counted from the last answer, or from when the first of the calls in progress
    started after an idle time). A busy cloud keeps answering -- some call ends every moment --
    and a burst of calls started together is all in its slots before the stall could count; a
    hanging one answers nothing, and the slots it may hold shrink to the base.
    """

    def __init__(self, base: int, ceiling: int, stall_timeout: float):
        self.base = base
        self.ceiling = max(base, ceiling)
        self.stall_timeout = stall_timeout
        self.in_use = 0
        self._answered_at = 0.0  # the last answer, or the start of the calls now in progress

    def stalled(self, now: float) -> bool:
        return self.in_use > 0 and now - self._answered_at >= self.stall_timeout

    def stalled_for(self, now: float) -> float:
        """Seconds the cloud has been stalled; 0 while it answers (or has nothing to answer)."""
        return max(0.0, now - self.stalls_at()) if self.stalled(now) else 0.0

    def stalls_at(self) -> float:
        """When the calls in progress make a stall if none answers first."""
        return self._answered_at + self.stall_timeout

    def silent_since(self) -> float:
        """The last answer, or when the calls in progress started after an idle time."""
        return self._answered_at

    def limit(self, now: float) -> int:
        return self.base if self.stalled(now) else self.ceiling

    def may_take(self, now: float) -> bool:
        return self.in_use < self.limit(now)

    def take(self, now: float) -> None:
        if self.in_use == 0:
            self._answered_at = now  # an idle cloud owes no answer: the count starts now
        self.in_use += 1

    def release(self, now: float, answered: bool) -> None:
        """A call ended; ``answered``: with the cloud's answer (a result or an error reply),
        not a transport failure or a time-out."""
        self.in_use -= 1
        if answered:
            self._answered_at = now


def _stalls(lending: Lending) -> str:
    """The reason of a refusal while the cloud stalls."""
    return (
        f"{lending.in_use} provider calls in progress and none answered for "
        f"{lending.stall_timeout:g} s: the provider stalls"
    )


def _silent(limit: int, patience: float) -> str:
    """The reason of a refusal when every slot is taken and no call answers."""
    return f"all {limit} provider slots are taken and none answered for {patience:g} s"


def answered(future: Future) -> bool:
    """Whether a finished call shows the cloud answering (see :class:`Lending`)."""
    if future.cancelled():
        return False
    error = future.exception()
    return not (isinstance(error, ProviderError) and error.code in _NO_ANSWER)


@dataclasses.dataclass(frozen=True)
class BulkheadState:
    """The slots as /readyz and the metrics report them."""

    #: The slots that may be taken now: the ceiling while the cloud answers, else the base.
    limit: int
    in_use: int
    waiting: int
    #: Seconds since the cloud stalled (calls in progress, none answered); 0 while it answers.
    stalled_for: float
    #: The slots kept while the cloud stalls.
    base: int

    def as_json(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "base": self.base,
            "in_use": self.in_use,
            "waiting": self.waiting,
            "stalled_for": round(self.stalled_for, 3),
        }


class Bulkhead:
    """Slots for provider work, each taken for the whole of one unit of work: ``limit`` (the
    base) while the cloud stalls, up to ``ceiling`` while it answers (see :class:`Lending`)."""

    def __init__(
        self,
        limit: int,
        queue_timeout: float,
        ceiling: int | None = None,
        stall_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        patience: float | None = None,
    ):
        self.limit = limit
        self.queue_timeout = queue_timeout
        #: How long a waiting request waits with no call answering (WAIT_WITHOUT_ANSWER).
        self.patience = min(WAIT_WITHOUT_ANSWER, stall_timeout) if patience is None else patience
        self._lending = Lending(limit, limit if ceiling is None else ceiling, stall_timeout)
        self.ceiling = self._lending.ceiling
        self._clock = clock
        self._condition = threading.Condition()
        self._waiting = 0
        self._executor = ThreadPoolExecutor(
            max_workers=self.ceiling, thread_name_prefix="launchprov-provider"
        )

    def state(self) -> BulkheadState:
        with self._condition:
            now = self._clock()
            lending = self._lending
            return BulkheadState(
                lending.limit(now),
                lending.in_use,
                self._waiting,
                lending.stalled_for(now),
                lending.base,
            )

    def refuses_waiting(self) -> str | None:
        """Why a request that would have to wait for a slot is refused now, else None: the cloud
        stalls, or every slot it may take is in use and none has answered for ``patience``
        seconds -- what :meth:`_acquire` refuses a waiting request for (the server's probe lane
        asks it for a request no worker thread can take: launchprov.serving)."""
        with self._condition:
            lending = self._lending
            now = self._clock()
            if lending.stalled(now):
                return _stalls(lending)
            if lending.may_take(now) or now < lending.silent_since() + self.patience:
                return None
            return _silent(lending.limit(now), self.patience)

    def _acquire(self, until: float) -> str | None:
        """Take a slot: None when taken, else why not (the 503's reason)."""
        lending = self._lending
        with self._condition:
            now = self._clock()
            queue_end = min(now + self.queue_timeout, until)
            while True:
                if lending.may_take(now):
                    lending.take(now)
                    return None
                if lending.stalled(now):
                    return _stalls(lending)
                if now >= queue_end:
                    return f"all {lending.limit(now)} provider slots are taken"
                silent_until = lending.silent_since() + self.patience
                if now >= silent_until:
                    return _silent(lending.limit(now), self.patience)
                # Wait for a slot, for the queue's end, or until the calls have been silent
                # too long: a waiting request then gives its thread back.
                self._waiting += 1
                try:
                    self._condition.wait(min(queue_end, silent_until, lending.stalls_at()) - now)
                finally:
                    self._waiting -= 1
                now = self._clock()

    def _release(self, answered_now: bool) -> None:
        with self._condition:
            self._lending.release(self._clock(), answered_now)
            # An answer may lift the stall (the ceiling again): every waiter looks.
            self._condition.notify_all()

    def _released(self, future: Future) -> None:
        self._release(answered(future))

    def run_here(self, until: float, function: Callable[..., T], *args) -> T:
        """Run ``function(*args)`` in a slot, in the calling thread, with ``until`` as a deadline
        it must keep by itself (``deadline.until(..., inline=True)``: the adapter starts no
        attempt that could end after it). No hand-off to the bulkhead's threads: for a call
        that cannot outlive the deadline, the waitress thread may as well make it.

        Raises :class:`Refused` when no slot may be taken; whatever ``function`` raises."""
        refused = self._acquire(until)
        if refused is not None:
            raise Refused(refused)
        got_answer = True
        token = _in_slot.set(True)
        try:
            with deadline.until(until, inline=True):
                return function(*args)
        except ProviderError as error:
            got_answer = error.code not in _NO_ANSWER
            raise
        finally:
            _in_slot.reset(token)
            self._release(got_answer)

    def submit(self, until: float, function: Callable[..., T], *args) -> Future[T] | str:
        """Run ``function(*args)`` in a slot, with ``until`` as its deadline; when no slot may
        be taken, why not. The slot is freed when the function returns, whenever that is."""
        refused = self._acquire(until)
        if refused is not None:
            return refused
        context = contextvars.copy_context()

        def in_slot():
            _in_slot.set(True)
            with deadline.until(until):
                return function(*args)

        try:
            future = self._executor.submit(context.run, in_slot)
        except BaseException:
            self._release(False)
            raise
        future.add_done_callback(self._released)
        return future

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclasses.dataclass(frozen=True)
class OutsideSlots:
    """How an operation that takes no slot is bounded instead: one call at a time, in a thread
    of its own, and each caller waits for it at most its argument ``bound`` seconds, whatever
    the provider does; ``called``: what the message of its time-out calls it."""

    bound: str
    called: str


#: The operations that take no slot: ``ping`` (``/readyz``) answers in its own time while
#: every slot is taken. Every other operation takes a slot and the request's deadline.
OUTSIDE_SLOTS: Mapping[str, OutsideSlots] = MappingProxyType(
    {"ping": OutsideSlots(bound="timeout", called="readiness call")}
)


class OneAtATime:
    """One call at a time, in a thread of its own: a caller that comes while it runs waits for
    that same call."""

    def __init__(self, operation: str):
        self._lock = threading.Lock()
        self._call: Future | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"launchprov-{operation}"
        )

    def call(self, function: Callable[..., T], args: tuple, timeout: float) -> T:
        """``function(*args)``, or the call of it in progress, answered within ``timeout``
        seconds; FutureTimeout when it is not."""
        with self._lock:
            if self._call is None or self._call.done():
                self._call = self._executor.submit(function, *args)
            call = self._call
        return call.result(timeout=timeout)

    def done(self) -> bool:
        """Whether no call is in progress."""
        return self._call is None or self._call.done()


class GuardedProvider(ProviderWrapper):
    """An IProvider whose every call takes a slot of a :class:`Bulkhead` and is answered by
    the request deadline, but those of :data:`OUTSIDE_SLOTS`; its methods are generated from
    the interface (:class:`~launchprov.providers.wrappers.ProviderWrapper`).

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
        super().__init__(provider)
        self.bulkhead = bulkhead
        self.request_deadline = request_deadline
        self._on_rejected = on_rejected
        self._on_deadline = on_deadline
        # One OneAtATime per operation outside the slots, as ``_<operation>``.
        for operation in OUTSIDE_SLOTS.keys() & set(operations(self.interface)):
            setattr(self, f"_{operation}", OneAtATime(operation))

    @classmethod
    def wrap(cls, operation: str) -> Callable[..., Any]:  # pragma: no mutate block
        # Called while the class is made: only the choice of method, whose work is done per
        # call by _in_a_slot or _one_at_a_time (mutmut cannot mutate what runs before its
        # trampolines exist, and what runs then is out of any test's reach).
        if operation not in OUTSIDE_SLOTS:

            def in_a_slot(self, *args):
                return self._in_a_slot(operation, args)

            return in_a_slot

        def one_at_a_time(self, *args):
            return self._one_at_a_time(operation, args)

        return one_at_a_time

    def _in_a_slot(self, operation: str, args: tuple) -> Any:
        return self.run(operation, getattr(self.provider, operation), *args)

    def _one_at_a_time(self, operation: str, args: tuple) -> Any:
        outside = OUTSIDE_SLOTS[operation]
        timeout = args[self.interface[operation].positional.index(outside.bound)]
        try:
            calls = getattr(self, f"_{operation}")
            return calls.call(getattr(self.provider, operation), args, timeout)
        except FutureTimeout:
            raise ProviderError(
                self.name,
                ProviderError.TIMEOUT,
                f"no answer to the {outside.called} within {timeout:g} s",
                retryable=True,
            ) from None

    def run(self, operation: str, function: Callable[..., T], *args) -> T:
        """``function(*args)`` in one provider slot, answered by the deadline.

        Raises :class:`ProviderBusy` when no slot became free in time, and a ProviderError
        ``Timeout`` when the deadline passed first (``outcome`` unknown for an operation that
        may change something: a launch may have started instances, a terminate, stop, start,
        reboot or tag change may be carried out; ``none`` for one of READING_OPERATIONS).
        Whatever ``function`` raises is raised here.
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
        if self.attempt_seconds is not None and until - time.monotonic() > self.attempt_seconds:
            # The call cannot outlive the deadline (each attempt starts only if it fits): no
            # hand-off to the bulkhead's threads and back.
            try:
                return self.bulkhead.run_here(until, function, *args)
            except Refused as refused:
                raise self.busy(refused.reason) from None
        launching = operation in LAUNCHING
        created = deadline.Created()
        with deadline.recording(created) if launching else contextlib.nullcontext():
            future = self.bulkhead.submit(until, function, *args)
        if isinstance(future, str):
            raise self.busy(future)
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
                outcome = OUTCOME_NONE if operation in READING_OPERATIONS else OUTCOME_UNKNOWN
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

    def busy(self, reason: str) -> ProviderBusy:
        """The refusal of a request that sends the provider nothing (``reason``: why), counted
        as rejected: raised here when no slot may be taken, answered by the server's probe lane
        when it sheds a request (:mod:`launchprov.serving`)."""
        self._on_rejected()
        return ProviderBusy(
            self.name,
            self.bulkhead.state().limit,
            f"the {self.name} provider is busy: {reason}; nothing was sent to the provider, "
            "retry later",
            reason,
        )

    def _deadline(self) -> float:
        """When the current call must be answered: the request's deadline (set by its first
        call), or ``request_deadline`` from now outside a request."""
        shared = _request_deadline.get()
        if shared is None:
            return time.monotonic() + self.request_deadline
        if not shared:
            shared.append(time.monotonic() + self.request_deadline)
        return shared[0]


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
    if operation in READING_OPERATIONS:
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
        launching = operation in LAUNCHING
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
