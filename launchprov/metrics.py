"""Prometheus metrics: HTTP requests, provider calls, launched instances.

Each app has its own registry (tests build many apps in one process). prometheus_client's
metrics are thread-safe, so every waitress thread records into the same ones.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from launchprov.providers.wrappers import LAUNCHING, ProviderWrapper, launched_ids

#: Seconds: from a fast validation failure to a slow cloud call.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
#: Requests in one batched provider call: from a lone request to launchprov.batch.max_ids.
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 500)


def caller_digest(caller: str) -> str:
    """A caller's ``hash`` label: the first 8 hex digits of the SHA-256 of its name. Stable
    across processes and restarts; a pseudonym, not a secret (a guessed name can be checked)."""
    return hashlib.sha256(caller.encode("utf-8")).hexdigest()[:8]


class Metrics:
    def __init__(self, caller_labels: str = "name"):
        self.registry = CollectorRegistry()
        self.caller_labels = caller_labels
        # "drop": the metrics by caller have no caller label at all.
        by_caller = [] if caller_labels == "drop" else ["caller"]
        self.http_requests = Counter(
            "launchprov_http_requests",
            "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "launchprov_http_request_duration_seconds",
            "Time to answer an HTTP request, by route and method.",
            ["route", "method"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.provider_calls = Counter(
            "launchprov_provider_calls",
            "Calls of the provider interface, by provider, operation and outcome "
            "(ok, or the launchprov exception that ended it).",
            ["provider", "operation", "outcome"],
            registry=self.registry,
        )
        self.provider_duration = Histogram(
            "launchprov_provider_call_duration_seconds",
            "Time spent in the provider, by provider and operation.",
            ["provider", "operation"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.provider_rejected = Counter(
            "launchprov_provider_rejected",
            "Requests answered 503 because the provider stalled, or no provider slot became "
            "free within launchprov.provider_queue_timeout (nothing was sent to the provider).",
            ["provider"],
            registry=self.registry,
        )
        self.provider_deadline_exceeded = Counter(
            "launchprov_provider_deadline_exceeded",
            "Requests answered 408 Timeout at launchprov.request_deadline while their "
            "provider call went on, by provider and operation.",
            ["provider", "operation"],
            registry=self.registry,
        )
        self.provider_slots = Gauge(
            "launchprov_provider_slots",
            "Provider calls this process may have in progress at once now: every waitress "
            "thread (but one, unless served by egg:launchprov#waitress) while the provider "
            "answers, launchprov.provider_concurrency while "
            "it stalls.",
            registry=self.registry,
        )
        self.provider_slots_in_use = Gauge(
            "launchprov_provider_slots_in_use",
            "Provider calls in progress, including those whose request was answered at the "
            "deadline.",
            registry=self.registry,
        )
        self.provider_slot_waiters = Gauge(
            "launchprov_provider_slot_waiters",
            "Requests waiting for a provider slot.",
            registry=self.registry,
        )
        self.waitress_queued = Counter(
            "launchprov_waitress_queued_requests",
            "Requests that found every waitress thread busy and waited in waitress's task "
            "queue (waitress's 'Task queue depth' warnings).",
            registry=self.registry,
        )
        self.waitress_queue_depth = Histogram(
            "launchprov_waitress_queue_depth",
            "waitress's task queue depth when a request had to wait for a thread.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.capacity_fallbacks = Counter(
            "launchprov_capacity_fallbacks",
            "Launches with a fallback, by provider and outcome: 'fallback' (launched by an "
            "alternative after the request itself), 'exhausted' (every alternative failed for "
            "want of capacity), and per offering passed over, 'capacity_error' (it answered a "
            "capacity error) or 'skipped' (known to be out: no call made).",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.foreign_actions = Counter(
            "launchprov_foreign_actions",
            "Actions on instances the caller did not launch (granted by launchprov.policy."
            "act_on), by caller and action.",
            [*by_caller, "action"],
            registry=self.registry,
        )
        self.instances_launched = Counter(
            "launchprov_instances_launched",
            "Instances launched, by provider.",
            ["provider"],
            registry=self.registry,
        )
        self.ratelimit_refused = Counter(
            "launchprov_ratelimit_refused",
            "Requests answered 429, by caller and by the limit they exceeded (requests or "
            "launches).",
            [*by_caller, "scope"],
            registry=self.registry,
        )
        self.auth_refused = Counter(
            "launchprov_auth_refused",
            "Requests answered 429 because their client address failed to authenticate more "
            "often than launchprov.auth.failure_limit allows (a correct token included).",
            registry=self.registry,
        )
        self.ratelimit_storage_errors = Counter(
            "launchprov_ratelimit_storage_errors",
            "Requests let through unlimited because the rate-limit storage (Redis) could not "
            "be reached.",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "launchprov_provider_batch_size",
            "Requests answered by one batched provider call, by provider and operation.",
            ["provider", "operation"],
            buckets=BATCH_SIZES,
            registry=self.registry,
        )
        self.calls_saved = Counter(
            "launchprov_provider_calls_saved",
            "Provider calls that batching spared: requests answered by a batch, less one per "
            "batch.",
            ["provider", "operation"],
            registry=self.registry,
        )

    def caller(self, caller: str) -> tuple[str, ...]:
        """The caller label's value of the metrics by caller, as launchprov.metrics.caller_labels
        says: ``(name,)``, ``(digest,)``, or none at all."""
        if self.caller_labels == "name":
            return (caller,)
        if self.caller_labels == "hash":
            return (caller_digest(caller),)
        return ()

    def observe_batch(self, provider: str, operation: str, size: int) -> None:
        """Record one batched provider call that answered ``size`` requests."""
        self.batch_size.labels(provider, operation).observe(size)
        self.calls_saved.labels(provider, operation).inc(size - 1)

    def watch(self, bulkhead) -> None:
        """Read the bulkhead's slots whenever the metrics are scraped."""
        self.provider_slots.set_function(lambda: bulkhead.state().limit)
        self.provider_slots_in_use.set_function(lambda: bulkhead.state().in_use)
        self.provider_slot_waiters.set_function(lambda: bulkhead.state().waiting)

    def waitress_queue_depth_seen(self, depth: int) -> None:
        self.waitress_queued.inc()
        self.waitress_queue_depth.observe(depth)


class MeteredProvider(ProviderWrapper):
    """An IProvider that records every call of the one it wraps (its methods are generated
    from the interface: :class:`~launchprov.providers.wrappers.ProviderWrapper`): by provider,
    operation and outcome, its duration, and the instances of :data:`LAUNCHING` calls."""

    def __init__(self, provider, metrics: Metrics):
        super().__init__(provider)
        self.metrics = metrics
        #: Called after each call that succeeded: the cloud answered (launchprov.readiness).
        self.on_answer: Callable[[], None] = lambda: None
        # Adapters that batch calls (launchprov.providers.batching) report each batch.
        for batcher in self.batchers:
            batcher.observers.append(functools.partial(metrics.observe_batch, self.name))

    @classmethod
    def wrap(cls, operation: str) -> Callable[..., Any]:
        if operation not in LAUNCHING:

            def metered(self, *args):
                return self._call(operation, args)

            return metered

        def counted(self, *args):
            result = self._call(operation, args)
            self.metrics.instances_launched.labels(self.name).inc(len(launched_ids(result)))
            return result

        return counted

    def _call(self, operation: str, args: tuple):
        start = time.perf_counter()
        outcome = "ok"
        try:
            result = getattr(self.provider, operation)(*args)
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            self.metrics.provider_calls.labels(self.name, operation, outcome).inc()
            self.metrics.provider_duration.labels(self.name, operation).observe(
                time.perf_counter() - start
            )
        self.on_answer()
        return result
