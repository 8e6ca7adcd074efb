"""Every failure of a libcloud driver, as a ProviderError: one translation for every driver.

Whether a retry can help, per cause:

* an EC2 error reply: EC2's rules (:func:`launchprov.providers.ec2_common.is_retryable`);
* another driver's error reply, which gives only an HTTP status: a 5xx or a 429;
* a refused connection, a reset, a DNS failure, a time-out: yes;
* refused credentials: no;
* a reply that cannot be parsed (``MalformedResponse``): only when its HTTP status says the
  trouble is passing (429, or a gateway's 502, 503, 504 while its backend is away). An HTML
  500 page is a server failing on this very request, which it will do again; a 2xx reply that
  does not parse will not parse the next time either. libcloud sends each call once, so the
  first failure is the one reported;
* anything else the SDK raises (a bug in it, a reply it choked on): no.
"""

from __future__ import annotations

import re
import socket

import requests.exceptions
import urllib3.exceptions
from libcloud.common.exceptions import BaseHTTPError
from libcloud.common.types import InvalidCredsError, MalformedResponseError
from libcloud.common.types import ProviderError as LibcloudProviderError

from launchprov.providers.ec2_common import TRANSIENT_HTTP_STATUSES, is_retryable
from launchprov.providers.interface import OUTCOME_NONE, OUTCOME_UNKNOWN, ProviderError
from launchprov.providers.libcloud.drivers import EC2ErrorReply, summarise_body

NAME = "libcloud"

#: Fewer than min_count nodes could be created one by one; those created were destroyed.
PARTIAL_LAUNCH = "PartialLaunch"

#: The provider answered an action with a refusal.
ACTION_REFUSED = "ActionRefused"

#: The catalog does not know the image, size or location a launch names: said before any node
#: is created, and never retryable (the same name is unknown the next time).
CATALOG_CODES = {
    "image": "ImageNotFound",
    "size": "SizeNotFound",
    "location": "LocationNotFound",
    "key pair": "KeyPairNotFound",
}

_STATUS = re.compile(r"\bHTTP (\d{3})\b")


def _transport_reason(exc: Exception) -> Exception:
    """The urllib3 error inside a requests error: the one that says what went wrong.

    requests' own message repeats the whole URL, which for EC2 holds every query parameter,
    user data included; the inner error names only host and port.
    """
    reason = exc.args[0] if exc.args and isinstance(exc.args[0], Exception) else exc
    if isinstance(reason, urllib3.exceptions.MaxRetryError) and reason.reason is not None:
        reason = reason.reason
    return reason


def _is_timeout(exc: Exception) -> bool:
    if isinstance(exc, requests.exceptions.Timeout | TimeoutError):  # socket.timeout too
        return True
    if not isinstance(exc, requests.exceptions.ConnectionError):
        return False
    # A read that times out while the body streams in comes out as ConnectionError. urllib3's
    # NewConnectionError (a refused connection) subclasses ConnectTimeoutError: not a time-out.
    reason = _transport_reason(exc)
    return isinstance(reason, urllib3.exceptions.TimeoutError) and not isinstance(
        reason, urllib3.exceptions.NewConnectionError
    )


def malformed_status(exc: MalformedResponseError) -> int | None:
    """The HTTP status of an unparseable reply, where libcloud kept it."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status", None)
    if status is not None:
        try:
            return int(status)
        except (TypeError, ValueError):
            return None
    match = _STATUS.search(str(exc.value))
    return int(match.group(1)) if match else None


def provider_error(exc: Exception | None) -> ProviderError:
    """Translate anything a libcloud driver raises into a ProviderError."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, EC2ErrorReply):
        retryable = is_retryable(exc.error_code, exc.status)
        return ProviderError(NAME, exc.error_code, exc.message, retryable=retryable)
    if isinstance(exc, InvalidCredsError):
        return ProviderError(NAME, ProviderError.AUTH_FAILURE, str(exc.value), retryable=False)
    if isinstance(exc, MalformedResponseError):
        message = f"{exc.value}: {summarise_body(exc.body)}"
        retryable = malformed_status(exc) in TRANSIENT_HTTP_STATUSES
        return ProviderError(NAME, ProviderError.MALFORMED_RESPONSE, message, retryable=retryable)
    if isinstance(exc, BaseHTTPError):  # other drivers' error replies: only a status to go by
        status = int(exc.code or 0)
        retryable = status >= 500 or status == 429
        return ProviderError(NAME, f"HTTP{status}", str(exc), retryable=retryable)
    if isinstance(exc, LibcloudProviderError) and exc.http_code:
        status = int(exc.http_code)
        retryable = status >= 500 or status == 429
        return ProviderError(NAME, f"HTTP{status}", str(exc.value), retryable=retryable)
    if _is_timeout(exc):
        message = str(_transport_reason(exc)) or type(exc).__name__
        return ProviderError(NAME, ProviderError.TIMEOUT, message, retryable=True)
    if isinstance(
        exc,
        requests.exceptions.ConnectionError
        | requests.exceptions.ChunkedEncodingError
        | ConnectionError
        | socket.gaierror,
    ):
        message = str(_transport_reason(exc)) or type(exc).__name__
        return ProviderError(NAME, ProviderError.UNREACHABLE, message, retryable=True)
    return ProviderError(NAME, ProviderError.UNEXPECTED, f"{type(exc).__name__}: {exc}")


def launch_outcome(exc: Exception | None) -> str:
    """Whether a failed create_node may have launched instances (ProviderError.outcome).

    Known to have launched nothing: an error reply (EC2's, or another cloud's HTTP status),
    refused credentials, a connection that could not be made (refused, unknown host, connect
    time-out). Anything else -- no reply in time, a connection dropped after sending, a reply
    that could not be read -- may have.
    """
    if isinstance(exc, ProviderError):
        return exc.outcome
    if isinstance(exc, EC2ErrorReply | InvalidCredsError | BaseHTTPError):
        return OUTCOME_NONE
    if isinstance(exc, LibcloudProviderError) and exc.http_code:
        return OUTCOME_NONE
    if isinstance(
        exc, requests.exceptions.ConnectTimeout | socket.gaierror | ConnectionRefusedError
    ):
        return OUTCOME_NONE
    if isinstance(exc, requests.exceptions.ConnectionError) and isinstance(
        _transport_reason(exc), urllib3.exceptions.NewConnectionError | socket.gaierror
    ):
        return OUTCOME_NONE
    return OUTCOME_UNKNOWN


def launch_error(exc: Exception | None) -> ProviderError:
    """The ProviderError of a failed create_node, saying whether it may have launched."""
    error = provider_error(exc)
    error.outcome = launch_outcome(exc)
    return error


def not_in_catalog(kind: str, wanted: str, driver_name: str) -> ProviderError:
    """The ProviderError of an image, size or location the driver's catalog does not know."""
    return ProviderError(
        NAME,
        CATALOG_CODES[kind],
        f"the {driver_name} cloud knows no {kind} {wanted!r} (by id or name)",
        retryable=False,
    )
