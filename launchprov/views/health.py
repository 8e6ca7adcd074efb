"""The index, liveness, readiness, metrics and the OpenAPI document: open to every caller
(/metrics needs a token of launchprov.metrics.tokens when that is set)."""

from __future__ import annotations

import functools
import math
import threading

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED

from launchprov.auth import READ_METRICS
from launchprov.errors import error_response
from launchprov.exceptions import detail
from launchprov.providers.interface import IProvider
from launchprov.routes import OPEN_ROUTES, ROUTES


def index(request):
    """GET /: where a newcomer goes next."""
    return {
        "service": "launchprov",
        "openapi": request.route_path("openapi"),
        "docs": "the Sphinx documentation in docs/ of the source tree (make docs builds it); "
        "README.md for a quick start",
    }


def healthz(request):
    """The process answers: no provider call. 503 while it drains (SIGTERM)."""
    if request.registry.launchprov_drain.draining:
        return draining(request)
    return {"status": "ok"}


def draining(request):
    """503 for the load balancer's health checks while the process drains (launchprov.serving):
    every request is still served, until the process stops accepting."""
    delay = request.registry.launchprov_drain.delay
    return error_response(
        request,
        503,
        "draining: the process is stopping (SIGTERM); it serves what it is sent for "
        f"{delay:g} s after the signal, then accepts no new connection",
        [detail("process", "state", "draining")],
    )


def readyz(request):
    """The provider answers (and the process is not draining: see :func:`healthz`): what it
    last did, renewed by one cheap call within launchprov.readiness_timeout at most every
    launchprov.readiness_cache seconds (launchprov.readiness), so that probes cost the cloud
    nothing more.

    The state of the provider slots is reported either way (readiness takes no slot, and waits
    for none). An unreachable rate-limit storage is reported but keeps the process ready: the
    limits fail open, and a load balancer must not take every process out because Redis is down.
    """
    if request.registry.launchprov_drain.draining:
        return draining(request)
    slots = request.provider.bulkhead.state()
    exc = request.registry.launchprov_readiness.check()
    if exc is not None:
        message = f"the {exc.provider} provider cannot be reached: {exc.code}: {exc.message}"
        details = [
            detail("provider", exc.provider, exc.code),
            detail("provider", "slots", describe_slots(slots)),
        ]
        # A throttled provider says when to ask again: its Retry-After, passed on.
        headers = {"Retry-After": str(math.ceil(exc.retry_after))} if exc.retry_after else None
        return error_response(request, 503, message, details, headers)
    ratelimit = request.registry.launchprov_ratelimits.readiness()
    return {
        "status": "ready",
        "provider": request.provider.name,
        "slots": slots.as_json(),
        "ratelimit": ratelimit,
        # launchprov.startup_checks: what launchprov-check's checks found at startup (each
        # failure named; the process stays ready: the cloud may come back, or need a fix).
        "startup_checks": request.registry.launchprov_startup_checks.as_json(),
    }


def in_probe_lane(registry, path: str) -> bool:
    """Whether a GET of ``path`` may be answered in the server's loop thread (the probe lane of
    launchprov.serving), which calls it: /healthz always; /readyz, answered there from memory
    (the cloud's view and the rate-limit storage's, each renewed by a thread of its own);
    /metrics unless its scraper tokens count failures in a remote rate-limit storage (the
    authentication would ask it over the network)."""
    if path == "/healthz":
        return True
    if path == "/readyz":
        thread = threading.get_ident()
        registry.launchprov_readiness.answer_from_memory_in(thread)
        registry.launchprov_ratelimits.answer_from_memory_in(thread)
        return True
    if path == "/metrics":
        scraped_with_token = bool(registry.launchprov_settings["launchprov.metrics.tokens"])
        return not (
            scraped_with_token and registry.launchprov_ratelimits.counts_failures_remotely()
        )
    return False


#: The paths of the routes that make no provider call (the probes, the scrape, the documents):
#: the probe lane never sheds them.
NOT_PROVIDER_BOUND = frozenset(ROUTES[name].pattern for name in OPEN_ROUTES)


def shed(bulkhead, path: str, idle_workers: int) -> str | None:
    """Why the server's loop thread refuses a request for ``path`` at once (launchprov.serving's
    probe lane), with ``idle_workers`` waitress threads free; None when it goes to the workers.

    A request bound for the provider that no worker thread can take waits in waitress's queue,
    as it would wait for a slot: it is refused for what the bulkhead refuses a waiting request
    for -- the cloud stalls (calls in progress, none answered for
    launchprov.provider_stall_timeout), or every slot is in use and none has answered for 0.5 s
    (the bulkhead's WAIT_WITHOUT_ANSWER) -- rather than when the stuck calls' deadline frees a
    thread. A free worker takes it: the bulkhead then decides, as for any request."""
    if idle_workers > 0 or path in NOT_PROVIDER_BOUND:
        return None
    refused = bulkhead.refuses_waiting()
    return None if refused is None else f"{refused}, and every waitress thread is taken"


def describe_slots(slots) -> str:
    text = f"{slots.in_use} of {slots.limit} provider slots in use, {slots.waiting} waiting"
    if slots.stalled_for:
        text += (
            f", none answered: stalled for {slots.stalled_for:.1f} s "
            f"({slots.base} slots while it stalls)"
        )
    return text


def metrics(request):
    body = generate_latest(request.registry.launchprov_metrics.registry)
    response = Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def includeme(config):
    config.registry.launchprov_lane = functools.partial(in_probe_lane, config.registry)
    provider = config.registry.getUtility(IProvider)
    config.registry.launchprov_shed = functools.partial(shed, provider.bulkhead)
    # Open to every caller, authenticated or not: probes, scrapers and client generators.
    open_to_all = {"request_method": "GET", "permission": NO_PERMISSION_REQUIRED}
    config.add_view(index, route_name="index", renderer="json", **open_to_all)
    config.add_view(healthz, route_name="healthz", renderer="json", **open_to_all)
    config.add_view(readyz, route_name="readyz", renderer="json", **open_to_all)
    # A scraper's token, when the deployment gives /metrics tokens of its own.
    scraped_with_token = config.registry.launchprov_settings["launchprov.metrics.tokens"]
    metrics_permission = READ_METRICS if scraped_with_token else NO_PERMISSION_REQUIRED
    config.add_view(
        metrics, route_name="metrics", request_method="GET", permission=metrics_permission
    )
    config.add_view(openapi, route_name="openapi", renderer="json", **open_to_all)


def openapi(request):
    return request.registry.launchprov_openapi
