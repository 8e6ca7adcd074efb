"""Capacity fallback: when an offering is out of capacity, try the caller's alternatives.

A launch may carry ``fallback``, an ordered list of alternatives, each replacing the request's
instance type, placement or subnet. A launch that fails with a capacity error
(:data:`~launchprov.providers.interface.CAPACITY_CODES`) is tried again as the next alternative,
in order, until one launches; any other error ends the launch at once, as without a fallback.

An offering -- (instance type, zone), or (instance type, subnet) when the subnet decides the
zone -- that answered a capacity error is remembered for ``launchprov.capacity.unavailable_ttl``
seconds, per process, as Karpenter does: a launch with a fallback passes over it without a
call. A launch without a fallback is still sent (it behaves as before this module existed),
but its capacity errors are remembered for the launches that have alternatives.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable

from launchprov.providers.interface import (
    CAPACITY_CODES,
    LaunchRequest,
    ProviderError,
    UnsupportedParameters,
)

log = logging.getLogger(__name__)

#: The tag naming which alternative launched an instance: 0 for the request itself, n for
#: fallback[n - 1]. Set on every launch that has a fallback.
ALTERNATIVE_TAG = "launchprov:alternative"

#: The code of the 408 when every alternative is out of capacity.
EXHAUSTED_CODE = "InsufficientInstanceCapacity"

Offering = tuple[str, str]


class OfferingMemory:
    """Offerings that answered a capacity error, each until its time-to-live has passed.

    Shared by every thread of the process; ``clock`` is monotonic seconds.
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self._clock = clock
        self._until: dict[Offering, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def remember(self, offering: Offering, code: str) -> None:
        now = self._clock()
        with self._lock:
            # Forget what has expired, so the memory holds only what is out now.
            for key in [key for key, (until, _) in self._until.items() if until <= now]:
                del self._until[key]
            self._until[offering] = (now + self.ttl, code)

    def out(self, offering: Offering) -> tuple[float, str] | None:
        """(seconds it stays out, the code it answered), or None if it is not known out."""
        entry = self._until.get(offering)
        if entry is None:
            return None
        left = entry[0] - self._clock()
        return (left, entry[1]) if left > 0 else None


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One alternative of a launch that did not launch."""

    index: int
    offering: Offering
    code: str
    #: False: passed over from memory, without a call.
    called: bool
    #: Seconds the offering stays out (from memory).
    left: float


class CapacityExhausted(ProviderError):
    """Every alternative of a launch is out of capacity: a 408 listing each attempt."""

    def __init__(self, provider: str, attempts: list[Attempt]):
        self.attempts = attempts
        #: Whole seconds until the first of these offerings is no longer remembered as out.
        self.retry_after = max(1, math.ceil(min(attempt.left for attempt in attempts)))
        asked = sum(attempt.called for attempt in attempts)
        message = (
            f"every alternative is out of capacity ({asked} answered so, "
            f"{len(attempts) - asked} known to be out and not asked); "
            f"retry in {self.retry_after} s"
        )
        super().__init__(
            provider, EXHAUSTED_CODE, message, retryable=True, retry_after=self.retry_after
        )

    def describe(self, attempt: Attempt) -> str:
        instance_type, where = attempt.offering
        how = "answered" if attempt.called else "known out, not asked:"
        return f"{instance_type} in {where}: {how} {attempt.code}"


def refuse_untried_fallback(provider, request: LaunchRequest) -> None:
    """UnsupportedParameters naming ``fallback`` when the provider cannot tell a capacity
    failure apart: its alternatives would never be tried, and the caller must know."""
    if request.fallback and not provider.reports_capacity:
        raise UnsupportedParameters(
            provider.name,
            {
                "fallback": "this backend's driver has no known out-of-capacity error, so no "
                "alternative would ever be tried; leave fallback out"
            },
        )


def alternative_token(client_token: str, index: int) -> str:
    """EC2's ClientToken of alternative ``index``: the caller's token for the request itself,
    a token of its own for each alternative (EC2 would refuse the same token with other
    parameters). launchprov's own tag keeps the caller's token on every alternative."""
    if index == 0:
        return client_token
    return hashlib.sha256(f"{client_token}\0{index}".encode()).hexdigest()


def alternatives(request: LaunchRequest) -> list[LaunchRequest]:
    """The request itself, then each fallback alternative as a request of its own.

    An alternative replaces the fields it names. One naming a subnet but no placement
    launches in the subnet's zone (the request's placement is no longer sent).
    """
    tagged = []
    for index, alternative in enumerate((None, *request.fallback)):
        changes: dict = {"fallback": ()}
        explicit = set(request.explicit) - {"fallback"}
        if alternative is not None:
            for name in ("instance_type", "placement", "subnet_id"):
                value = getattr(alternative, name)
                if value is not None:
                    changes[name] = value
                    explicit.add(name)
            if alternative.subnet_id is not None and alternative.placement is None:
                explicit.discard("placement")
        if request.client_token is not None:
            changes["client_token"] = alternative_token(request.client_token, index)
        tags = {**request.system_tags, ALTERNATIVE_TAG: str(index)}
        tagged.append(
            dataclasses.replace(request, **changes, explicit=frozenset(explicit), system_tags=tags)
        )
    return tagged


class Capacity:
    """Launches through the alternatives of a request, with the process's offering memory.

    ``count(provider, outcome)`` is told of every fallback event (the metric).
    """

    def __init__(self, memory: OfferingMemory, count: Callable[[str, str], None]):
        self.memory = memory
        self.count = count

    def launch(self, provider, request: LaunchRequest) -> tuple[list[str], int | None]:
        """(ids, index of the alternative that launched them; None without a fallback)."""
        if not request.fallback:
            try:
                return provider.launch(request), None
            except ProviderError as exc:
                if exc.code in CAPACITY_CODES:
                    self.memory.remember(request.offering, exc.code)
                raise
        attempts: list[Attempt] = []
        for index, candidate in enumerate(alternatives(request)):
            offering = candidate.offering
            out = self.memory.out(offering)
            if out is not None:
                attempts.append(Attempt(index, offering, out[1], False, out[0]))
                self.count(provider.name, "skipped")
                continue
            try:
                ids = provider.launch(candidate)
            except ProviderError as exc:
                if exc.code not in CAPACITY_CODES:
                    raise
                self.memory.remember(offering, exc.code)
                attempts.append(Attempt(index, offering, exc.code, True, self.memory.ttl))
                self.count(provider.name, "capacity_error")
                log.info("alternative %d (%s in %s): %s", index, *offering, exc.code)
                continue
            if index:
                self.count(provider.name, "fallback")
            return ids, index
        self.count(provider.name, "exhausted")
        raise CapacityExhausted(provider.name, attempts)
