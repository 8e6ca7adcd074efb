"""The one error contract: every non-2xx answer is a JSON body made by :func:`error_body`.

``{"status": 400, "error": "Bad Request", "message": "...", "details": [...], "request_id":
"..."}``, with a ``"provider"`` member on a 408. One exception view answers every exception; the
table :data:`ERRORS` says how each kind is answered (status, message, details, headers), so a new
kind of error is one entry there. A traceback never reaches a caller.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from pyramid.httpexceptions import (
    HTTPException,
    HTTPForbidden,
    HTTPMethodNotAllowed,
    HTTPNotFound,
)
from pyramid.security import NO_PERMISSION_REQUIRED

from launchprov.auth import TooManyFailures
from launchprov.bulkhead import ProviderBusy
from launchprov.capacity import CapacityExhausted
from launchprov.exceptions import APIError, detail
from launchprov.exceptions import BodyTooLarge as BodyTooLarge
from launchprov.exceptions import InvalidParameters as InvalidParameters
from launchprov.exceptions import UnsupportedMediaType as UnsupportedMediaType
from launchprov.policy import PolicyViolation
from launchprov.providers.interface import (
    OUTCOME_PARTIAL,
    OUTCOME_UNKNOWN,
    ActionNotSupported,
    IdempotencyConflict,
    InstanceNotFound,
    InvalidPageToken,
    InvalidState,
    ProviderError,
    UnsupportedParameters,
)
from launchprov.rendering import json_text
from launchprov.routes import ROUTES

log = logging.getLogger(__name__)

#: The seed's status for any failure while calling the provider.
PROVIDER_FAILURE_STATUS = 408


def error_body(
    status: int,
    message: str,
    details: list[dict[str, str]] | None = None,
    provider: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the JSON error body for ``status``: the only place that shapes one.

    ``request_id`` is null here; :func:`error_response` fills in the request's.
    """
    body: dict[str, Any] = {
        "status": status,
        "error": HTTPStatus(status).phrase,
        "message": message,
        "details": list(details or []),
        "request_id": None,
    }
    if provider is not None:
        body["provider"] = provider
    return body


def error_response(
    request,
    status: int,
    message: str,
    details: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    provider: dict[str, Any] | None = None,
):
    """The request's response, carrying the error body (views, tweens and the error view)."""
    body = error_body(status, message, details, provider)
    body["request_id"] = getattr(request, "request_id", None)
    response = request.response
    response.status_int = status
    response.content_type = "application/json"
    response.body = json_text(body).encode("utf-8")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


@dataclasses.dataclass(frozen=True)
class Answer:
    """How one exception is answered."""

    status: int
    message: str
    details: list[dict[str, str]] = dataclasses.field(default_factory=list)
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    provider: dict[str, Any] | None = None


def _location(request) -> str:
    """Where the parameters of the request came from: body or querystring. A view that reads a
    body (read_params) records where it found them; every other route reads its query string."""
    return getattr(request, "params_location", "querystring")


def _unsupported_parameters(exc: UnsupportedParameters, request) -> Answer:
    message = f"the {exc.provider} provider cannot honour: {', '.join(sorted(exc.reasons))}"
    details = [detail(_location(request), name, why) for name, why in sorted(exc.reasons.items())]
    return Answer(400, message, details)


def _provider_failure(exc: ProviderError, request) -> Answer:
    log.warning("provider call failed: %s %s: %s", exc.provider, exc.code, exc.message)
    provider = {
        "name": exc.provider,
        "code": exc.code,
        "message": exc.message,
        "retryable": exc.retryable,
        "outcome": exc.outcome,
    }
    headers = {}
    if exc.retryable:
        # The provider's own Retry-After where it gave one, never shortened.
        retry_after = request.registry.launchprov_settings["launchprov.retry_after"]
        if exc.retry_after is not None:
            retry_after = max(retry_after, math.ceil(exc.retry_after))
        headers["Retry-After"] = str(retry_after)
    message = f"the {exc.provider} provider failed: {exc.code}"
    if exc.outcome == OUTCOME_UNKNOWN and exc.operation is not None:
        message += f"; the {exc.operation} may have been carried out (see provider.message)"
    elif exc.outcome == OUTCOME_UNKNOWN:
        message += "; the launch may have started instances (see provider.message)"
    elif exc.outcome == OUTCOME_PARTIAL:
        message += (
            f"; the launch created {len(exc.instances)} instance(s), named in details "
            "(see provider.message)"
        )
    # A partial launch: each instance it is known to have created, by id.
    details = [detail("provider", instance_id, "created") for instance_id in exc.instances]
    return Answer(PROVIDER_FAILURE_STATUS, message, details, headers=headers, provider=provider)


def _provider_busy(exc: ProviderBusy, request) -> Answer:
    """No provider slot became free in time, or the provider stalls: nothing was sent, a retry
    later is safe."""
    details = [detail("provider", exc.provider, exc.reason)]
    retry_after = str(request.registry.launchprov_settings["launchprov.retry_after"])
    return Answer(503, exc.message, details, {"Retry-After": retry_after})


def _capacity_exhausted(exc: CapacityExhausted, request) -> Answer:
    """Every alternative of a launch is out of capacity: the 408, each attempt in ``details``,
    and Retry-After the time until the first of those offerings may be tried again."""
    answer = _provider_failure(exc, request)
    details = [
        detail("provider", f"alternative {attempt.index}", exc.describe(attempt))
        for attempt in exc.attempts
    ]
    headers = {"Retry-After": str(exc.retry_after)}
    return dataclasses.replace(answer, details=details, headers=headers)


def _unauthenticated(exc: HTTPForbidden, request) -> Answer:
    """Pyramid denies a request only when it has no caller: the security policy's one rule,
    whose Denied says why."""
    given = "Authorization" in request.headers
    message = str(exc.result) if exc.result is not None else exc.detail or exc.title
    challenge = 'Bearer error="invalid_token"' if given else "Bearer"
    details = [detail("header", "Authorization", message)]
    return Answer(401, message, details, {"WWW-Authenticate": challenge})


def _http_exception(exc: HTTPException, request) -> Answer:
    headers = {}
    message = exc.detail or exc.explanation or exc.title
    if isinstance(exc, HTTPMethodNotAllowed):
        headers["Allow"] = exc.headers["Allow"]
    if isinstance(exc, HTTPNotFound) and request.matched_route is None:
        message = (
            f"no route for {request.method} {request.path}; "
            f"GET {ROUTES['openapi'].pattern} describes every route"
        )
    return Answer(exc.code, str(message), headers=headers)


def _not_found(exc: InstanceNotFound, request) -> Answer:
    """404; where ids live in a region (EC2), it names the region looked in and how to look in
    another -- the same words for an unknown id and for one the caller may not see."""
    message = exc.message
    region = getattr(request, "target_region", None)
    if region and request.provider.placement_is_zone:
        message += f" in region {region}; one launched in another region is found with ?region="
    return Answer(404, message, [detail("path", "id", "no such instance")])


def _unexpected(exc: Exception, request) -> Answer:
    log.exception("unexpected error answering %s %s", request.method, request.path)
    return Answer(500, "unexpected error; it has been logged")


#: Every kind of exception -> how it is answered. An exception is answered by the entry of the
#: first class of its MRO found here, so order does not matter; a new kind is one line.
ERRORS: dict[type[BaseException], Callable[[Any, Any], Answer]] = {
    APIError: lambda exc, request: Answer(exc.status, exc.message, exc.details),
    UnsupportedParameters: _unsupported_parameters,
    ProviderError: _provider_failure,
    ProviderBusy: _provider_busy,
    CapacityExhausted: _capacity_exhausted,
    InstanceNotFound: _not_found,
    InvalidState: lambda exc, request: Answer(
        409, exc.message, [detail("path", "id", exc.message)]
    ),
    ActionNotSupported: lambda exc, request: Answer(
        501,
        f"the {exc.provider} provider cannot {exc.action}: {exc.reason}",
        [detail("path", "action", exc.reason)],
    ),
    InvalidPageToken: lambda exc, request: Answer(
        400, f"next: {exc}", [detail("querystring", "next", str(exc))]
    ),
    PolicyViolation: lambda exc, request: Answer(
        403, f"policy: {exc}", [detail(exc.location or _location(request), exc.parameter, str(exc))]
    ),
    IdempotencyConflict: lambda exc, request: Answer(
        409, exc.message, [detail("body", "client_token", exc.message)]
    ),
    HTTPForbidden: _unauthenticated,
    TooManyFailures: lambda exc, request: Answer(
        429,
        exc.message,
        [detail("header", "Authorization", f"at most {exc.limit} from one client address")],
        {"Retry-After": str(exc.retry_after)},
    ),
    HTTPException: _http_exception,
    Exception: _unexpected,
}


def answer_for(exc: BaseException, request) -> Answer:
    """The :data:`ERRORS` entry of the most specific class of ``exc`` (at worst
    ``Exception``'s: the exception views answer nothing that is not one)."""
    answer = next(ERRORS[kind] for kind in type(exc).__mro__ if kind in ERRORS)
    return answer(exc, request)


def error_view(exc, request):
    """The one exception view: the error body of ``exc``'s answer."""
    answer = answer_for(exc, request)
    return error_response(
        request, answer.status, answer.message, answer.details, answer.headers, answer.provider
    )


def method_not_allowed_view(context, request):
    """Fallback for a known path asked with a method it does not serve."""
    # (context, request), not (request): Pyramid reads a view's arity, and mutmut's wrapper of
    # a function (make mutate) takes any arguments.
    allowed = ", ".join(ROUTES[request.matched_route.name].methods)
    raise HTTPMethodNotAllowed(
        detail=f"{request.method} is not allowed on {request.path}; use {allowed}",
        headers={"Allow": allowed},
    )


def includeme(config):
    for context in ERRORS:
        config.add_exception_view(error_view, context=context)
    for name in ROUTES:
        # No request_method predicate: Pyramid tries it after the route's real views.
        config.add_view(method_not_allowed_view, route_name=name, permission=NO_PERMISSION_REQUIRED)
