"""Per-caller request limits, counted by the ``limits`` library in memory or in Redis.

Every route but the probes, the metrics and the OpenAPI document counts against the caller's
``launchprov.ratelimit.<caller>`` (or ``.default``) limits; a launch also counts against its
``launchprov.ratelimit.launch.<caller>`` (or ``.launch.default``) ones. A request over a limit is
answered 429 before its view runs, so it costs the cloud nothing. Counters live in
``launchprov.ratelimit.storage_uri``: ``memory://`` for one process, ``redis://`` to share them
between every process behind the load balancer.

A rate limiter must not take the launch service down: when the storage cannot be reached the
limits fail open (the request goes through), a warning is logged at most once a minute, a metric
counts every such request and ``/readyz`` says so -- while still answering 200, so that a load
balancer keeps sending traffic.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from limits import RateLimitItem
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from launchprov.errors import error_response
from launchprov.routes import OPEN_ROUTES

log = logging.getLogger(__name__)

#: Routes never limited: probes, scrapers and client generators must always get through.
UNLIMITED_ROUTES = OPEN_ROUTES
#: Routes that also count against the launch limits.
LAUNCH_ROUTES = frozenset({"launch"})

#: Seconds between two warnings about an unreachable storage.
WARNING_INTERVAL = 60.0
#: Seconds the limits fail open without asking the storage again after it failed: a Redis that
#: hangs costs one time-out a second, not one per request.
STORAGE_RETRY_INTERVAL = 1.0
#: Seconds to wait for Redis to accept a connection or answer: far under a request's budget.
REDIS_TIMEOUT = 0.25

REQUESTS, LAUNCHES = "requests", "launches"
#: The counters of failed authentications, by client address (launchprov.auth.failure_limit).
AUTH_FAILURES = "auth-failures"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the limits say about one request, and the figures of its RateLimit-* headers."""

    allowed: bool
    #: "requests" or "launches": which of the caller's limits these figures are about.
    scope: str
    #: The limit these figures are about: the one exceeded, or the one closest to it.
    item: RateLimitItem
    remaining: int
    #: Seconds until the window lets one more request through.
    reset_after: float

    def headers(self) -> dict[str, str]:
        """The IETF draft's RateLimit-* headers (and Retry-After on a refusal)."""
        reset = str(max(0, math.ceil(self.reset_after)))
        headers = {
            "RateLimit-Limit": str(self.item.amount),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": reset,
            "RateLimit-Policy": f"{self.item.amount};w={self.item.get_expiry()}",
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.reset_after)))
        return headers


class RateLimits:
    """The limits of every caller, and the moving windows that count their requests."""

    def __init__(
        self,
        limits: dict[str, tuple[RateLimitItem, ...]],
        launch_limits: dict[str, tuple[RateLimitItem, ...]],
        storage_uri: str,
        metrics=None,
        clock: Callable[[], float] = time.monotonic,
        auth_failures: tuple[RateLimitItem, ...] = (),
        readiness_period: float = 5.0,
    ):
        #: caller (or "default") -> its limits; an explicit empty tuple exempts a caller.
        self.limits = limits
        self.launch_limits = launch_limits
        #: Failed authentications allowed per client address.
        self.auth_failures = auth_failures
        self.storage_uri = storage_uri
        self.metrics = metrics
        self._clock = clock
        options: dict[str, Any] = {}
        if storage_uri.startswith("redis"):
            options = {
                "key_prefix": "launchprov",
                "socket_connect_timeout": REDIS_TIMEOUT,
                "socket_timeout": REDIS_TIMEOUT,
            }
        self.storage = storage_from_string(storage_uri, wrap_exceptions=True, **options)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self._lock = threading.Lock()
        self._failed_at: float | None = None
        self._warned_at: float | None = None
        #: /readyz's view of the storage in the server's loop thread (answer_from_memory_in):
        #: (when, reachable), renewed by a thread of its own at most once a period.
        self.readiness_period = readiness_period
        self._seen: tuple[float, bool] | None = None
        self._renewing = False
        self._lane_thread: int | None = None

    @classmethod
    def from_settings(cls, settings: dict[str, Any], metrics=None) -> RateLimits:
        limits, launch_limits = {}, {}
        for key, value in settings.items():
            if not key.startswith("launchprov.ratelimit.") or key.endswith(".storage_uri"):
                continue
            name = key.removeprefix("launchprov.ratelimit.")
            if name.startswith("launch."):
                launch_limits[name.removeprefix("launch.")] = value
            else:
                limits[name] = value
        return cls(
            limits,
            launch_limits,
            settings["launchprov.ratelimit.storage_uri"],
            metrics,
            auth_failures=settings.get("launchprov.auth.failure_limit", ()),
            readiness_period=settings.get("launchprov.readiness_cache", 5.0),
        )

    @property
    def configured(self) -> bool:
        """Whether any caller has any limit at all."""
        return any(self.limits.values()) or any(self.launch_limits.values())

    def limits_of(self, caller: str, launch: bool) -> list[tuple[str, RateLimitItem]]:
        """(scope, limit) pairs a request of ``caller`` counts against, the launches' first."""
        launches = ()
        if launch:
            launches = self.launch_limits.get(caller, self.launch_limits.get("default", ()))
        requests = self.limits.get(caller, self.limits.get("default", ()))
        return [(LAUNCHES, item) for item in launches] + [(REQUESTS, item) for item in requests]

    def check(self, caller: str, launch: bool) -> Verdict | None:
        """Count one request of ``caller``; None when no limit applies or the storage is down.

        Limits are hit in order and the first one exceeded refuses the request (the ones before
        it have counted it, as Flask-Limiter does), so a refused request is counted at most once
        per window it did not exceed.
        """
        scoped = self.limits_of(caller, launch)
        if not scoped or self._failing_open():
            return None
        try:
            closest = None
            for scope, item in scoped:
                if not self.limiter.hit(item, scope, caller):
                    stats = self.limiter.get_window_stats(item, scope, caller)
                    if self.metrics is not None:
                        self.metrics.ratelimit_refused.labels(
                            *self.metrics.caller(caller), scope
                        ).inc()
                    return Verdict(False, scope, item, 0, stats.reset_time - time.time())
                stats = self.limiter.get_window_stats(item, scope, caller)
                if closest is None or stats.remaining < closest[2].remaining:
                    closest = (scope, item, stats)
        except StorageError as exc:
            self._storage_failed(exc)
            return None
        scope, item, stats = closest
        return Verdict(True, scope, item, stats.remaining, stats.reset_time - time.time())

    def authentication(self, address: str, failed: bool) -> Verdict | None:
        """A refusing Verdict when client ``address`` is past launchprov.auth.failure_limit;
        ``failed``: this request failed to authenticate, and is counted (else only looked at).
        None when it may go on, when no limit is set, or while the storage is unreachable
        (failing open, as the request limits do)."""
        if not self.auth_failures or self._failing_open():
            return None
        try:
            for item in self.auth_failures:
                if failed:
                    allowed = self.limiter.hit(item, AUTH_FAILURES, address)
                else:
                    allowed = self.limiter.test(item, AUTH_FAILURES, address)
                if not allowed:
                    stats = self.limiter.get_window_stats(item, AUTH_FAILURES, address)
                    if self.metrics is not None:
                        self.metrics.auth_refused.inc()
                    return Verdict(False, AUTH_FAILURES, item, 0, stats.reset_time - time.time())
        except StorageError as exc:
            self._storage_failed(exc)
        return None

    def _failing_open(self) -> bool:
        with self._lock:
            if self._failed_at is None:
                return False
            if self._clock() - self._failed_at < STORAGE_RETRY_INTERVAL:
                self._count_storage_error()
                return True
            self._failed_at = None  # time to ask the storage again
            return False

    def _storage_failed(self, exc: Exception) -> None:
        with self._lock:
            now = self._clock()
            self._failed_at = now
            # /readyz's view in the probe lane learns it now, not at its next renewal.
            self._seen = (now, False)
            self._count_storage_error()
            if self._warned_at is None or now - self._warned_at >= WARNING_INTERVAL:
                self._warned_at = now
                log.warning(
                    "rate-limit storage %s unreachable (%s): requests are let through "
                    "unlimited until it answers",
                    self.storage_uri.split("@")[-1],  # never a password from the URI
                    exc,
                )

    def _count_storage_error(self) -> None:
        if self.metrics is not None:
            self.metrics.ratelimit_storage_errors.inc()

    def storage_reachable(self) -> bool:
        """Ask the storage whether it answers (for /readyz)."""
        try:
            return bool(self.storage.check())
        except Exception:  # a probe: any failure means "not reachable"
            return False

    def counts_failures_remotely(self) -> bool:
        """Whether checking a token asks the storage over the network: failed authentications
        are limited (launchprov.auth.failure_limit) in a storage not in this process."""
        return bool(self.auth_failures) and type(self.storage).__name__ != "MemoryStorage"

    def answer_from_memory_in(self, thread: int) -> None:
        """From now on, :meth:`readiness` called in ``thread`` (the server's loop thread, which
        serves /readyz in :mod:`launchprov.serving`'s probe lane) never asks the storage: it
        answers with what was last seen, and a thread of its own asks again when that is older
        than ``readiness_period`` -- one check at a time, at most one a period."""
        with self._lock:
            self._lane_thread = thread

    def _storage_seen(self) -> bool | None:
        """Whether the storage answered when last asked (None: not asked yet); asking it again
        in a thread of its own when that is older than the period."""
        with self._lock:
            seen = self._seen
            stale = seen is None or self._clock() - seen[0] >= self.readiness_period
            if stale and not self._renewing:
                self._renewing = True
                threading.Thread(
                    target=self._renew, name="launchprov-ratelimit-readiness", daemon=True
                ).start()
        return None if seen is None else seen[1]

    def _renew(self) -> None:
        try:
            reachable = self.storage_reachable()
            with self._lock:
                self._seen = (self._clock(), reachable)
        finally:
            with self._lock:
                self._renewing = False

    def readiness(self) -> dict[str, Any]:
        """What /readyz says about the limits."""
        if not self.configured and not self.auth_failures:
            return {"enabled": False}
        if threading.get_ident() == self._lane_thread:
            reachable = self._storage_seen()
            if reachable is None:
                return {"enabled": True, "storage": "not checked yet"}
        else:
            reachable = self.storage_reachable()
        if reachable:
            return {"enabled": True, "storage": "ok"}
        return {"enabled": True, "storage": "unreachable", "failing_open": True}


def rate_limited_view(view, info):
    """View deriver: count the request against its caller's limits before the view runs."""
    route = info.options.get("route_name")
    limits: RateLimits = info.registry.launchprov_ratelimits
    # Exception views have no route: the error view of a request is no second request.
    if route is None or route in UNLIMITED_ROUTES or not limits.configured:
        return view
    launch = route in LAUNCH_ROUTES

    def limited(context, request):
        caller = request.identity
        verdict = limits.check(caller, launch) if caller is not None else None
        if verdict is None:
            return view(context, request)
        headers = verdict.headers()
        if not verdict.allowed:
            limit = f"{verdict.item.amount} {verdict.scope} per {verdict.item.get_expiry()} s"
            message = (
                f"rate limit of caller {caller} exceeded: {limit}; "
                f"retry after {headers['Retry-After']} s"
            )
            details = [{"location": "caller", "name": caller, "description": limit}]
            return error_response(request, 429, message, details, headers)

        def add_headers(request, response):
            response.headers.update(headers)

        request.add_response_callback(add_headers)
        return view(context, request)

    return limited


def includeme(config):
    settings = config.registry.launchprov_settings
    config.registry.launchprov_ratelimits = RateLimits.from_settings(
        settings, config.registry.launchprov_metrics
    )
    config.add_view_deriver(rate_limited_view)
