"""The one error contract: every non-2xx answer is a JSON body made by :func:`error_body`.

``{"status": 400, "error": "Bad Request", "message": "...", "details": [...]}``, with a
``"provider"`` member on a 408. Exception views turn launchprov's exceptions, Pyramid's HTTP
exceptions, provider failures and anything unexpected into that body; a traceback never reaches
a caller.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from pyramid.httpexceptions import HTTPException, HTTPMethodNotAllowed, HTTPNotFound
from pyramid.security import NO_PERMISSION_REQUIRED

from launchprov.bulkhead import ProviderBusy
from launchprov.policy import PolicyViolation
from launchprov.providers.interface import (
    OUTCOME_UNKNOWN,
    ActionNotSupported,
    IdempotencyConflict,
    InstanceNotFound,
    InvalidPageToken,
    InvalidState,
    ProviderError,
    UnsupportedParameters,
)
from launchprov.routes import ROUTES

log = logging.getLogger(__name__)

#: The seed's status for any failure while calling the provider.
PROVIDER_FAILURE_STATUS = 408


def error_body(
    status: int,
    message: str,
    details: list[dict[str, str]] | None = None,
    provider: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Build the JSON error body for ``status``: the only place that shapes one."""
    body: dict[str, Any] = {
        "status": status,
        "error": HTTPStatus(status).phrase,
        "message": message,
        "details": details or [],
        "request_id": request_id,
    }
    if provider is not None:
        body["provider"] = provider
    return body


def detail(location: str, name: str, description: str) -> dict[str, str]:
    """One entry of ``details``: where (body, querystring, header, path), which name, what."""
    return {"location": location, "name": name, "description": description}


class APIError(Exception):
    """A request launchprov refuses, with the status and details of the answer."""

    status = 400

    def __init__(self, message: str, details: list[dict[str, str]] | None = None, status=None):
        super().__init__(message)
        self.message = message
        self.details = details or []
        if status is not None:
            self.status = status


class InvalidParameters(APIError):
    """One or more parameters are missing or invalid; ``details`` names each one."""


class UnsupportedMediaType(APIError):
    status = 415


class BodyTooLarge(APIError):
    status = 413


def _render(request, status: int, body: dict[str, Any], headers=None):
    body["request_id"] = getattr(request, "request_id", None)
    response = request.response
    response.status_int = status
    response.content_type = "application/json"
    response.json_body = body
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_response(request, status: int, message: str, details=None, headers=None):
    """A response carrying the error body, for code outside the exception views."""
    return _render(request, status, error_body(status, message, details), headers)


def api_error_view(exc: APIError, request):
    return _render(request, exc.status, error_body(exc.status, exc.message, exc.details))


def unsupported_parameters_view(exc: UnsupportedParameters, request):
    details = [
        detail(getattr(request, "params_location", "body"), name, reason)
        for name, reason in sorted(exc.reasons.items())
    ]
    message = f"the {exc.provider} provider cannot honour: {', '.join(sorted(exc.reasons))}"
    return _render(request, 400, error_body(400, message, details))


def provider_error_view(exc: ProviderError, request):
    log.warning("provider call failed: %s %s: %s", exc.provider, exc.code, exc.message)
    provider = {
        "name": exc.provider,
        "code": exc.code,
        "message": exc.message,
        "retryable": exc.retryable,
        "outcome": exc.outcome,
    }
    status = PROVIDER_FAILURE_STATUS
    message = f"the {exc.provider} provider failed: {exc.code}"
    if exc.outcome == OUTCOME_UNKNOWN:
        message += "; the launch may have started instances (see provider.message)"
    body = error_body(status, message, provider=provider)
    headers = {}
    if exc.retryable:
        headers["Retry-After"] = str(request.registry.launchprov_settings["launchprov.retry_after"])
    return _render(request, status, body, headers)


def provider_busy_view(exc: ProviderBusy, request):
    """No provider slot became free in time: nothing was sent, a retry later is safe."""
    details = [detail("provider", exc.provider, f"all {exc.limit} provider slots are taken")]
    retry_after = str(request.registry.launchprov_settings["launchprov.retry_after"])
    return _render(
        request, 503, error_body(503, exc.message, details), {"Retry-After": retry_after}
    )


def unauthenticated_view(exc, request):
    """Pyramid's forbidden view: the security policy denies only requests with no caller."""
    given = "Authorization" in request.headers
    message = "a valid bearer token is required" if given else "a bearer token is required"
    challenge = 'Bearer error="invalid_token"' if given else "Bearer"
    details = [detail("header", "Authorization", message)]
    return _render(request, 401, error_body(401, message, details), {"WWW-Authenticate": challenge})


def policy_violation_view(exc: PolicyViolation, request):
    location = exc.location or getattr(request, "params_location", "body")
    details = [detail(location, exc.parameter, str(exc))]
    return _render(request, 403, error_body(403, f"policy: {exc}", details))


def idempotency_conflict_view(exc: IdempotencyConflict, request):
    details = [detail("body", "client_token", exc.message)]
    return _render(request, 409, error_body(409, exc.message, details))


def instance_not_found_view(exc: InstanceNotFound, request):
    details = [detail("path", "id", "no such instance")]
    return _render(request, 404, error_body(404, exc.message, details))


def invalid_state_view(exc: InvalidState, request):
    details = [detail("path", "id", exc.message)]
    return _render(request, 409, error_body(409, exc.message, details))


def action_not_supported_view(exc: ActionNotSupported, request):
    message = f"the {exc.provider} provider cannot {exc.action}: {exc.reason}"
    return _render(request, 501, error_body(501, message, [detail("path", "action", exc.reason)]))


def invalid_page_token_view(exc: InvalidPageToken, request):
    message = f"next: {exc}"
    details = [detail("querystring", "next", str(exc))]
    return _render(request, 400, error_body(400, message, details))


def http_exception_view(exc: HTTPException, request):
    headers = {}
    message = exc.detail or exc.explanation or exc.title
    if isinstance(exc, HTTPMethodNotAllowed):
        headers["Allow"] = exc.headers["Allow"]
    if isinstance(exc, HTTPNotFound) and request.matched_route is None:
        message = f"no route for {request.method} {request.path}"
    return _render(request, exc.code, error_body(exc.code, str(message)), headers)


def unexpected_error_view(exc: Exception, request):
    log.exception("unexpected error answering %s %s", request.method, request.path)
    return _render(request, 500, error_body(500, "unexpected error; it has been logged"))


def method_not_allowed_view(request):
    """Fallback for a known path asked with a method it does not serve."""
    allowed = ", ".join(ROUTES[request.matched_route.name].methods)
    raise HTTPMethodNotAllowed(
        detail=f"{request.method} is not allowed on {request.path}; use {allowed}",
        headers={"Allow": allowed},
    )


def includeme(config):
    config.add_exception_view(api_error_view, context=APIError)
    config.add_exception_view(unsupported_parameters_view, context=UnsupportedParameters)
    config.add_exception_view(provider_error_view, context=ProviderError)
    config.add_exception_view(provider_busy_view, context=ProviderBusy)
    config.add_exception_view(instance_not_found_view, context=InstanceNotFound)
    config.add_exception_view(invalid_state_view, context=InvalidState)
    config.add_exception_view(action_not_supported_view, context=ActionNotSupported)
    config.add_exception_view(invalid_page_token_view, context=InvalidPageToken)
    config.add_exception_view(policy_violation_view, context=PolicyViolation)
    config.add_exception_view(idempotency_conflict_view, context=IdempotencyConflict)
    config.add_forbidden_view(unauthenticated_view)
    config.add_exception_view(http_exception_view, context=HTTPException)
    config.add_exception_view(unexpected_error_view, context=Exception)
    for name in ROUTES:
        # No request_method predicate: Pyramid tries it after the route's real views.
        config.add_view(method_not_allowed_view, route_name=name, permission=NO_PERMISSION_REQUIRED)
