"""A Python client of launchprov, built on httpx.

>>> from launchprov.client import Client
>>> with Client("http://localhost:6543", token="...") as client:
...     ids = client.launch("ami-760aaa0f", "t2.micro", tags={"role": "web"})
...     instances = client.wait(ids)

The client knows the routes and the error body, not the parameter rules: parameters go to the
service as given and the service validates them (a mistake is a :class:`BadRequest` naming
each bad parameter). It retries what can safely be retried -- connection failures, 429, 503
and a 408 whose provider failure is ``retryable`` -- honouring ``Retry-After``, with capped
exponential back-off and jitter. A launch always carries an ``Idempotency-Key`` that its own
retries reuse, so a retried launch never launches twice.

Needs the ``client`` extra: ``pip install 'launchprov[client]'``.
"""

from __future__ import annotations

import email.utils
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

try:
    import httpx
except ImportError as exc:  # pragma: no cover - a server's install, without the extra
    raise ImportError(
        "launchprov.client needs the client extra: pip install 'launchprov[client]'"
    ) from exc

__all__ = [
    "DEFAULT_URL",
    "TOKEN_ENV",
    "URL_ENV",
    "BadRequest",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "LaunchprovError",
    "NotFound",
    "NotSupported",
    "ProviderFailed",
    "RateLimited",
    "ServiceUnavailable",
    "Unauthorized",
    "WaitFailed",
]

#: Where the service is, and the caller's bearer token, when the caller does not say.
URL_ENV = "LAUNCHPROV_URL"
TOKEN_ENV = "LAUNCHPROV_TOKEN"  # noqa: S105 (a variable name, not a secret)
#: The sandbox of ``make run``: the URL when neither ``base_url`` nor LAUNCHPROV_URL is given.
DEFAULT_URL = "http://localhost:6543"
IDEMPOTENCY_KEY = "Idempotency-Key"

#: A launch may take the service a minute when the cloud is slow (production.ini bounds it
#: below a load balancer's 90 s idle time-out); connecting should never take long.
DEFAULT_TIMEOUT = httpx.Timeout(90.0, connect=5.0)
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.5
DEFAULT_MAX_BACKOFF = 30.0

#: How many ids one listing asks for while waiting (the service allows more).
_WAIT_BATCH = 100
#: States an instance never leaves except towards ``terminated``.
_ENDING_STATES = frozenset({"shutting-down", "terminated"})


# --- Errors ---------------------------------------------------------------------------------


class LaunchprovError(Exception):
    """An answer of the service that is not a success, or no answer at all.

    ``status`` is the HTTP status (None when no answer came), ``body`` the service's error body
    (``status``, ``error``, ``message``, ``details``, ``request_id``; ``provider`` on a 408).
    """

    #: The status this class stands for (None: any status, or no answer).
    status_code: ClassVar[int | None] = None

    def __init__(
        self,
        status: int | None,
        body: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ):
        self.status = status
        self.body: dict[str, Any] = dict(body)
        self.headers: dict[str, str] = dict(headers or {})
        #: The Idempotency-Key of the launch that failed: retry later with
        #: ``launch(..., client_token=error.client_token)`` and it cannot launch twice.
        self.client_token: str | None = None
        super().__init__(self.describe())

    @property
    def message(self) -> str:
        return str(self.body.get("message") or self.body.get("error") or "")

    @property
    def details(self) -> list[dict[str, Any]]:
        details = self.body.get("details")
        return list(details) if isinstance(details, list) else []

    @property
    def request_id(self) -> str | None:
        return self.body.get("request_id") or self.headers.get("x-request-id")

    @property
    def retry_after(self) -> float | None:
        """Seconds the service asked to wait before a retry (``Retry-After``), if it did."""
        return parse_retry_after(self.headers.get("retry-after"))

    def describe(self) -> str:
        """One line: status, reason and the service's message."""
        if self.status is None:
            return self.message
        return f"{self.status} {self.body.get('error', '')}: {self.message}".replace(" :", ":")


class BadRequest(LaunchprovError):
    """400: a parameter is missing or invalid; ``details`` names each one."""

    status_code = 400


class Unauthorized(LaunchprovError):
    """401: no valid bearer token."""

    status_code = 401


class Forbidden(LaunchprovError):
    """403: a policy rule forbids the request (the message names the rule and the value)."""

    status_code = 403


class NotFound(LaunchprovError):
    """404: no such instance (or no such route)."""

    status_code = 404


class ProviderFailed(LaunchprovError):
    """408: the provider failed; ``code`` is its error code, ``retryable`` whether a retry
    can help."""

    status_code = 408

    @property
    def provider(self) -> dict[str, Any]:
        provider = self.body.get("provider")
        return dict(provider) if isinstance(provider, Mapping) else {}

    @property
    def code(self) -> str | None:
        return self.provider.get("code")

    @property
    def retryable(self) -> bool:
        return self.provider.get("retryable") is True

    def describe(self) -> str:
        line = super().describe()
        if self.provider.get("message"):
            line += f" ({self.provider['message']})"
        return line


class Conflict(LaunchprovError):
    """409: the instance's state forbids the action, or a client token was reused with other
    parameters."""

    status_code = 409


class RateLimited(LaunchprovError):
    """429: too many requests; ``retry_after`` says when to come back."""

    status_code = 429


class NotSupported(LaunchprovError):
    """501: the provider cannot do this (stop and start on some drivers)."""

    status_code = 501


class ServiceUnavailable(LaunchprovError):
    """503: the service cannot take the request now (its provider slots are busy or the
    provider cannot be reached); ``retry_after`` says when to come back."""

    status_code = 503


class ConnectionFailed(LaunchprovError):
    """No answer: the connection was refused, broke, or timed out (after every retry)."""


class WaitFailed(LaunchprovError):
    """:meth:`Client.wait` gave up: the time-out passed, or an instance can no longer reach
    the state. ``instances`` holds what was last seen of each instance."""

    def __init__(self, message: str, instances: list[dict[str, Any]]):
        self.instances = instances
        super().__init__(None, {"message": message})


#: Status -> exception class: every answer the client tells apart.
ERRORS: dict[int, type[LaunchprovError]] = {
    cls.status_code: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        ProviderFailed,
        Conflict,
        RateLimited,
        NotSupported,
        ServiceUnavailable,
    )
    if cls.status_code is not None
}


def error_from_response(response: httpx.Response) -> LaunchprovError:
    """The exception for a non-2xx answer, carrying its error body.

    An answer that is not launchprov's JSON error body (a proxy's HTML page) gets a body of the
    same shape, with the start of its text as the message.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = response.text.strip()[:500]
        body = {
            "status": response.status_code,
            "error": response.reason_phrase,
            "message": text or response.reason_phrase,
            "details": [],
        }
    cls = ERRORS.get(response.status_code, LaunchprovError)
    return cls(response.status_code, body, response.headers)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date (RFC 9110); None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# --- Retries --------------------------------------------------------------------------------

#: Gateway answers: the request may or may not have reached the service.
_GATEWAY_STATUSES = frozenset({502, 504})


def should_retry(error: LaunchprovError | httpx.TransportError, idempotent: bool) -> bool:
    """Whether a retry can help and cannot do harm.

    Refused before anything was done (no connection, 429, 503) or a provider failure the
    service calls retryable: always. A broken or timed-out exchange, or a gateway error, may
    have done its work: only when repeating the request is harmless (``idempotent``).
    """
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return True
    if isinstance(error, httpx.TransportError):
        return idempotent
    if isinstance(error, RateLimited | ServiceUnavailable):
        return True
    if isinstance(error, ProviderFailed):
        return error.retryable
    return error.status in _GATEWAY_STATUSES and idempotent


def backoff_delay(
    attempt: int,
    retry_after: float | None,
    base: float,
    cap: float,
    jitter: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry).

    Capped exponential back-off with full jitter (a random time up to ``base * 2**attempt``,
    at most ``cap``), added to ``Retry-After`` when the service gave one: never sooner than
    the service asked, and callers told the same ``Retry-After`` do not all return at once.
    """
    return (retry_after or 0.0) + jitter(0.0, min(cap, base * 2**attempt))


# --- The client -----------------------------------------------------------------------------

Filter = str | int | bool | Iterable[str]


def with_scheme(url: str) -> str:
    """``url`` without its trailing ``/``, and with ``http://`` in front when it names no
    scheme: ``localhost:6543`` is ``http://localhost:6543`` (httpx would read ``localhost`` as
    the scheme)."""
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


class Client:
    """A launchprov service: launch, look at and act on instances.

    ``base_url`` defaults to ``$LAUNCHPROV_URL`` (else :data:`DEFAULT_URL`), ``token`` to
    ``$LAUNCHPROV_TOKEN`` (else no ``Authorization`` header); a URL without a scheme
    (``localhost:6543``) is taken as ``http://``. ``timeout`` is httpx's (seconds,
    or an ``httpx.Timeout``). ``retries`` is how many times a failed request is sent again
    when :func:`should_retry` says it may; the waits follow :func:`backoff_delay` with
    ``backoff`` and ``max_backoff``, and a ``Retry-After`` longer than ``max_backoff`` is not
    waited for: the error is raised. ``transport`` is an httpx transport (for tests, or a
    proxy). One client holds a connection pool and may be shared by threads; close it (or use
    it as a context manager) when done.

    Every method raises a :class:`LaunchprovError` subclass for an error answer.
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        transport: httpx.BaseTransport | None = None,
    ):
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        self.base_url = with_scheme(base_url or os.environ.get(URL_ENV) or DEFAULT_URL)
        token = token if token is not None else os.environ.get(TOKEN_ENV)
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        headers = {"Accept": "application/json", "User-Agent": "launchprov-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )
        # Seams for tests of the back-off: how to wait, and how to draw the jitter.
        self._sleep: Callable[[float], None] = time.sleep
        self._jitter: Callable[[float, float], float] = random.uniform
        self._clock: Callable[[], float] = time.monotonic

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    # -- Launching

    def launch(
        self, ami: str, instance_type: str, *, client_token: str | None = None, **params: Any
    ) -> list[str]:
        """``PUT /v1/launch``: launch instances; return their ids.

        ``params`` are the launch parameters of the API (``min_count``, ``max_count``,
        ``key_name``, ``security_groups``, ``user_data``, ``placement``, ``tags``, ...), sent as
        given. ``client_token`` (else a fresh UUID) is sent as ``Idempotency-Key`` on every
        attempt, so retries return the first launch's ids instead of launching again; an
        error raised here carries it as ``client_token``.
        """
        key = client_token if client_token is not None else str(uuid.uuid4())
        body = {"ami": ami, "instance_type": instance_type, **params}
        try:
            return self._call("PUT", "/v1/launch", json=body, headers={IDEMPOTENCY_KEY: key})
        except LaunchprovError as error:
            error.client_token = key
            raise

    def preflight(self, ami: str, instance_type: str, **params: Any) -> dict[str, Any]:
        """``POST /v1/launch/preflight``: would this launch succeed? Launches nothing.

        Takes the parameters of :meth:`launch`; returns the service's answer,
        ``{"would_launch": bool, "checks": [{"name", "ok", "code", "message"}, ...]}``.
        """
        body = {"ami": ami, "instance_type": instance_type, **params}
        return self._call("POST", "/v1/launch/preflight", json=body)

    # -- Instances

    def describe(self, instance_id: str, *, region: str | None = None) -> dict[str, Any]:
        """``GET /v1/instances/{id}``: the instance (:class:`NotFound` if there is none)."""
        return self._call("GET", _instance_path(instance_id), params=_region(region))

    def pages(
        self, *, tags: Mapping[str, Filter] | None = None, **filters: Filter
    ) -> Iterator[dict[str, Any]]:
        """``GET /v1/instances``, page after page: each page as the service answers it,
        ``{"instances": [...], "next": token or null}``, following ``next`` to the end.

        ``filters`` are the route's query parameters (``id``, ``state``, ``region``,
        ``limit``: the page size); a list repeats the parameter. ``tags`` maps a tag key to
        the value (or values) it must have.
        """
        query = _query(filters, tags)
        while True:
            page = self._call("GET", "/v1/instances", params=query)
            yield page
            token = page.get("next")
            if not token:
                return
            query = [(name, value) for name, value in query if name != "next"]
            query.append(("next", token))

    def instances(
        self, *, tags: Mapping[str, Filter] | None = None, **filters: Filter
    ) -> Iterator[dict[str, Any]]:
        """Every instance that matches the filters (those of :meth:`pages`), walking every
        page; lazily, a page at a time."""
        for page in self.pages(tags=tags, **filters):
            yield from page["instances"]

    def terminate(self, instance_id: str, *, region: str | None = None) -> dict[str, Any]:
        """``DELETE /v1/instances/{id}``: terminate; the instance after the call."""
        return self._call("DELETE", _instance_path(instance_id), params=_region(region))

    def stop(self, instance_id: str, *, region: str | None = None) -> dict[str, Any]:
        """``POST /v1/instances/{id}/stop``; the instance after the call."""
        return self._act(instance_id, "stop", region)

    def start(self, instance_id: str, *, region: str | None = None) -> dict[str, Any]:
        """``POST /v1/instances/{id}/start``; the instance after the call."""
        return self._act(instance_id, "start", region)

    def reboot(self, instance_id: str, *, region: str | None = None) -> dict[str, Any]:
        """``POST /v1/instances/{id}/reboot``; the instance after the call. Not retried once
        the request may have arrived: a reboot sent twice reboots twice."""
        return self._act(instance_id, "reboot", region, idempotent=False)

    def wait(
        self,
        ids: str | Iterable[str],
        state: str = "running",
        timeout: float = 300,
        *,
        region: str | None = None,
        interval: float = 2.0,
        on_poll: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Poll until every instance of ``ids`` is in ``state``; return them, in ``ids``'s
        order.

        Lists the instances by id every ``interval`` seconds, calling ``on_poll`` with what it
        saw (an instance not yet listed -- clouds are eventually consistent -- appears as
        ``{"id": ..., "state": None}``). Raises :class:`WaitFailed` when ``timeout`` seconds
        pass, or at once when an instance is shutting down or terminated and ``state`` is
        neither.
        """
        wanted = [ids] if isinstance(ids, str) else list(dict.fromkeys(ids))
        deadline = self._clock() + timeout
        while True:
            seen: dict[str, dict[str, Any]] = {}
            for start in range(0, len(wanted), _WAIT_BATCH):
                batch = wanted[start : start + _WAIT_BATCH]
                filters: dict[str, Filter] = {"id": batch}
                if region is not None:
                    filters["region"] = region
                seen.update((item["id"], item) for item in self.instances(**filters))
            current = [seen.get(id_, {"id": id_, "state": None}) for id_ in wanted]
            if on_poll is not None:
                on_poll(current)
            if all(item["state"] == state for item in current):
                return current
            lost = [
                item["id"]
                for item in current
                if item["state"] in _ENDING_STATES and state not in _ENDING_STATES
            ]
            if lost:
                raise WaitFailed(f"{', '.join(lost)} will never be {state}", current)
            remaining = deadline - self._clock()
            if remaining <= 0:
                late = ", ".join(
                    f"{item['id']} ({item['state'] or 'not found'})"
                    for item in current
                    if item["state"] != state
                )
                raise WaitFailed(f"not {state} after {timeout:g} s: {late}", current)
            self._sleep(min(interval, remaining))

    # -- The exchange

    def _act(
        self, instance_id: str, action: str, region: str | None, idempotent: bool = True
    ) -> dict[str, Any]:
        path = f"{_instance_path(instance_id)}/{action}"
        return self._call("POST", path, params=_region(region), idempotent=idempotent)

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> Any:
        """Send a request, retrying per :func:`should_retry`; the JSON of the 2xx answer."""
        attempt = 0
        while True:
            error: LaunchprovError | httpx.TransportError
            try:
                response = self._http.request(
                    method, path, json=json, params=params, headers=headers
                )
            except httpx.TransportError as exc:
                error, retry_after = exc, None
            else:
                if response.is_success:
                    return response.json()
                error = error_from_response(response)
                retry_after = error.retry_after
            if (
                attempt >= self.retries
                or not should_retry(error, idempotent)
                or (retry_after is not None and retry_after > self.max_backoff)
            ):
                if isinstance(error, httpx.TransportError):
                    message = f"no answer from {self.base_url}: {type(error).__name__}: {error}"
                    raise ConnectionFailed(None, {"message": message}) from error
                raise error
            self._sleep(
                backoff_delay(attempt, retry_after, self.backoff, self.max_backoff, self._jitter)
            )
            attempt += 1


def _instance_path(instance_id: str) -> str:
    return f"/v1/instances/{quote(instance_id, safe='')}"


def _region(region: str | None) -> dict[str, str]:
    return {} if region is None else {"region": region}


def _query(
    filters: Mapping[str, Filter], tags: Mapping[str, Filter] | None
) -> list[tuple[str, str]]:
    """Query pairs: a list value repeats its parameter; a tag ``K`` is ``tag:K``."""
    named = [*filters.items(), *((f"tag:{key}", value) for key, value in (tags or {}).items())]
    query: list[tuple[str, str]] = []
    for name, value in named:
        if isinstance(value, bool):
            query.append((name, "true" if value else "false"))
        elif isinstance(value, str | int):
            query.append((name, str(value)))
        else:
            query.extend((name, str(item)) for item in value)
    return query
