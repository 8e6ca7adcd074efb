"""The tween around every request: its id, its access-log line and its HTTP metrics.

It sits above Pyramid's exception-view tween, so it sees every answer, errors included, as a
response.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from pyramid.interfaces import IRoutesMapper
from pyramid.tweens import EXCVIEW

from launchprov.bulkhead import one_deadline_per_request
from launchprov.errors import error_response, error_view
from launchprov.exceptions import detail
from launchprov.logs import caller_var, request_id_var
from launchprov.providers.interface import IProvider
from launchprov.schemas import REQUEST_ID, REQUEST_ID_HEADER

access_log = logging.getLogger("launchprov.access")

#: The WSGI environ key of a request the server's probe lane (launchprov.serving) refuses at once
#: (the cloud stalls and no worker thread is idle): why, in the words of the 503's details.
SHED = "launchprov.shed"


def new_request_id() -> str:
    return uuid.uuid4().hex


def observe_factory(handler, registry):
    metrics = registry.launchprov_metrics
    # Per process, not per request: the metrics' children by label values (prometheus_client's
    # labels() validates and locks on every call), and where the access line comes from (the
    # logging module would walk the stack for it on every line).
    requests_by_labels: dict[tuple[str, str, str], Any] = {}
    durations_by_labels: dict[tuple[str, str], Any] = {}
    access_line = observe_factory.__code__.co_firstlineno

    def count(route: str, method: str, status: int, elapsed: float) -> None:
        key = (route, method, str(status))
        child = requests_by_labels.get(key)
        if child is None:
            child = requests_by_labels.setdefault(key, metrics.http_requests.labels(*key))
        child.inc()
        timer = durations_by_labels.get(key[:2])
        if timer is None:
            timer = durations_by_labels.setdefault(
                key[:2], metrics.http_duration.labels(route, method)
            )
        timer.observe(elapsed)

    def observe(request):
        start = time.perf_counter()
        given = request.headers.get(REQUEST_ID_HEADER)
        request.request_id = given if given and REQUEST_ID.match(given) else new_request_id()
        id_token = request_id_var.set(request.request_id)
        # A request the server's loop thread refuses (launchprov.serving's probe lane) is
        # answered from memory: no authentication (it may ask the rate-limit storage), no view.
        shed = request.environ.get(SHED)
        caller_token = caller_var.set("-" if shed is not None else (request.identity or "-"))
        try:
            if shed is not None:
                request.matched_route = registry.getUtility(IRoutesMapper)(request)["route"]
                response = error_view(registry.getUtility(IProvider).busy(shed), request)
            elif given is not None and given != request.request_id:
                response = error_response(
                    request,
                    400,
                    f"{REQUEST_ID_HEADER} must be 1 to 128 letters, digits or ._:/+=@-",
                    [detail("header", REQUEST_ID_HEADER, "invalid")],
                )
            else:
                with one_deadline_per_request():
                    response = handler(request)
            response.headers[REQUEST_ID_HEADER] = request.request_id
            elapsed = time.perf_counter() - start
            route = request.matched_route.name if request.matched_route else "unmatched"
            count(route, request.method, response.status_int, elapsed)
            extra = {
                "method": request.method,
                "route": route,
                "status": response.status_int,
                "duration_ms": round(elapsed * 1000, 1),
            }
            line = "%s %s %s %.1fms caller=%s request_id=%s"
            values = [
                request.method,
                route,
                response.status_int,
                elapsed * 1000,
                caller_var.get(),
                request.request_id,
            ]
            # Which fallback alternative launched (only for launches that have a fallback).
            alternative = getattr(request, "launch_alternative", None)
            if alternative is not None:
                line += " alternative=%d"
                values.append(alternative)
                extra["alternative"] = alternative
            if access_log.isEnabledFor(logging.INFO):
                access_log.handle(
                    access_log.makeRecord(
                        access_log.name,
                        logging.INFO,
                        __file__,
                        access_line,
                        line,
                        tuple(values),
                        None,
                        "observe",
                        extra,
                    )
                )
            return response
        finally:
            caller_var.reset(caller_token)
            request_id_var.reset(id_token)

    return observe


def includeme(config):
    # Above the exception views, said rather than left to the implicit order: another tween
    # placed relative to this one (launchprov.tracing's) could otherwise put them above it.
    config.add_tween("launchprov.tweens.observe_factory", over=EXCVIEW)
