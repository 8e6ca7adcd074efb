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

Drivers other than EC2's wrap a cloud's error reply in exceptions of their own, some of which
lose the status, the cloud's code or its headers (Vultr's VultrException keeps no headers,
Linode's bare LibcloudError no status). launchprov reads the reply itself: the libcloud
``Response`` that raised is in the exception's traceback. The profile's error table
(:data:`Profile.errors <launchprov.providers.libcloud.profile.Profile.errors>`) then says
what it means: out of capacity (EC2's ``InsufficientInstanceCapacity``, so that a launch's
fallback applies), throttled (``RequestLimitExceeded``, with the cloud's ``Retry-After``),
credentials refused (``AuthFailure``) or not found (``NotFound``); anything else keeps the
cloud's own code, or ``HTTP<status>``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import socket
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests.exceptions
import urllib3.exceptions
from libcloud.common.base import Response
from libcloud.common.exceptions import BaseHTTPError
from libcloud.common.types import InvalidCredsError, MalformedResponseError
from libcloud.common.types import ProviderError as LibcloudProviderError

from launchprov.providers.ec2_common import TRANSIENT_HTTP_STATUSES, is_retryable
from launchprov.providers.interface import OUTCOME_NONE, OUTCOME_UNKNOWN, ProviderError
from launchprov.providers.libcloud.drivers import EC2ErrorReply, summarise_body
from launchprov.providers.libcloud.profile import (
    AUTHENTICATION,
    CAPACITY,
    NOT_FOUND,
    THROTTLING,
    Profile,
)

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


#: What each meaning of an error reply becomes: (launchprov's code, whether a retry can help).
MEANING_CODES = {
    CAPACITY: ("InsufficientInstanceCapacity", True),  # EC2's: fallback, memory and metric
    THROTTLING: ("RequestLimitExceeded", True),  # EC2's
    AUTHENTICATION: (ProviderError.AUTH_FAILURE, False),
    NOT_FOUND: ("NotFound", False),
}


@dataclasses.dataclass(frozen=True)
class Reply:
    """What a cloud answered to the failed call, as far as it can be known."""

    #: The HTTP status, or None where no reply could be found (a failed job's text alone).
    status: int | None
    #: The cloud's own error code, and its message.
    code: str | None
    message: str
    #: Seconds of the reply's Retry-After, or None.
    retry_after: float | None


def _raising_response(exc: BaseException) -> Response | None:
    """The libcloud Response under construction when ``exc`` (or what it was raised from)
    was raised: the innermost frame whose ``self`` is one."""
    seen: set[int] = set()
    found = None
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        tb = exc.__traceback__
        while tb is not None:
            candidate = tb.tb_frame.f_locals.get("self")
            if isinstance(candidate, Response):
                found = candidate
            tb = tb.tb_next
        if found is not None:
            return found
        exc = exc.__cause__ or exc.__context__
    return None


def retry_after_seconds(value: Any) -> float | None:
    """Retry-After's seconds: delta-seconds or an HTTP date (RFC 9110); None if neither."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        seconds = (moment - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _body(response: Response) -> Any:
    try:
        return json.loads(response.body)
    except (TypeError, ValueError):
        return response.body


def exception_text(exc: BaseException) -> str:
    """What a libcloud exception says, as text. Some drivers hand the cloud's whole error body
    on as the message (DigitalOcean's, when it has no ``message``): a dict, which the
    exception's own ``str()`` refuses to print."""
    said = getattr(exc, "value", None)
    if isinstance(said, str) and said:
        return said
    try:
        return str(exc)
    except TypeError:
        said = getattr(exc, "message", None) or said or exc.args
    try:
        return json.dumps(said, default=str)
    except ValueError:  # a circular structure
        return type(exc).__name__


def reply_of(exc: Exception, profile: Profile) -> Reply | None:
    """The cloud's error reply behind ``exc``, read as ``profile`` says; None when ``exc`` is no
    error reply (a transport failure, a reply that did not parse, a bug)."""
    if isinstance(exc, MalformedResponseError | EC2ErrorReply) or _is_transport(exc):
        return None
    response = _raising_response(exc)
    status = code = None
    message = exception_text(exc)
    retry_after = getattr(exc, "retry_after", None) or None  # RateLimitReachedError's
    if response is not None:
        status = int(response.status)
        code, said = profile.error_body(_body(response))
        message = said or message
        headers = {str(key).lower(): value for key, value in (response.headers or {}).items()}
        said_after = retry_after_seconds(headers.get("retry-after"))
        retry_after = said_after if said_after is not None else retry_after
    elif isinstance(exc, BaseHTTPError):
        status = int(exc.code or 0) or None
    elif isinstance(exc, LibcloudProviderError) and exc.http_code:
        status = int(exc.http_code)
    own_code = getattr(exc, "code", None)
    if isinstance(own_code, str):  # Google's errors carry the cloud's code (others a status)
        code = own_code
    if response is None and status is None and profile.error_meaning(None, code, message) is None:
        return None  # not a reply, and nothing the profile recognises in it
    return Reply(status, code, message, retry_after)


def _is_transport(exc: Exception) -> bool:
    return _is_timeout(exc) or isinstance(
        exc,
        requests.exceptions.ConnectionError
        | requests.exceptions.ChunkedEncodingError
        | ConnectionError
        | socket.gaierror,
    )


def reply_error(reply: Reply, profile: Profile) -> ProviderError:
    """The ProviderError of a cloud's error reply, as the profile's error table says."""
    meaning = profile.error_meaning(reply.status, reply.code, reply.message)
    said = f"{reply.code}: {reply.message}" if reply.code else reply.message
    if reply.status is not None:
        said = f"HTTP {reply.status}: {said}"
    if meaning is not None:
        code, retryable = MEANING_CODES[meaning]
    else:
        code = reply.code or f"HTTP{reply.status}"
        retryable = reply.status is not None and (reply.status >= 500 or reply.status == 429)
    return ProviderError(
        NAME,
        code,
        said,
        retryable=retryable,
        retry_after=reply.retry_after if retryable else None,
    )


def provider_error(exc: Exception | None, profile: Profile | None = None) -> ProviderError:
    """Translate anything a libcloud driver raises into a ProviderError; with the driver's
    ``profile``, a cloud's error reply is read as its error table says."""
    if isinstance(exc, ProviderError):
        return exc
    if profile is not None and exc is not None and not isinstance(exc, InvalidCredsError):
        reply = reply_of(exc, profile)
        if reply is not None:
            return reply_error(reply, profile)
    if isinstance(exc, EC2ErrorReply):
        retryable = is_retryable(exc.error_code, exc.status)
        return ProviderError(NAME, exc.error_code, exc.message, retryable=retryable)
    if isinstance(exc, InvalidCredsError):
        return ProviderError(NAME, ProviderError.AUTH_FAILURE, exception_text(exc), retryable=False)
    if isinstance(exc, MalformedResponseError):
        message = f"{exc.value}: {summarise_body(exc.body)}"
        retryable = malformed_status(exc) in TRANSIENT_HTTP_STATUSES
        return ProviderError(NAME, ProviderError.MALFORMED_RESPONSE, message, retryable=retryable)
    if isinstance(exc, BaseHTTPError):  # other drivers' error replies: only a status to go by
        status = int(exc.code or 0)
        retryable = status >= 500 or status == 429
        return ProviderError(NAME, f"HTTP{status}", exception_text(exc), retryable=retryable)
    if isinstance(exc, LibcloudProviderError) and exc.http_code:
        status = int(exc.http_code)
        retryable = status >= 500 or status == 429
        return ProviderError(NAME, f"HTTP{status}", exception_text(exc), retryable=retryable)
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
    return ProviderError(
        NAME, ProviderError.UNEXPECTED, f"{type(exc).__name__}: {exception_text(exc)}"
    )


def launch_outcome(exc: Exception | None, profile: Profile | None = None) -> str:
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
    if profile is not None and exc is not None and reply_of(exc, profile) is not None:
        return OUTCOME_NONE  # the cloud refused it, whatever the driver made of its reply
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


def launch_error(exc: Exception | None, profile: Profile | None = None) -> ProviderError:
    """The ProviderError of a failed create_node, saying whether it may have launched."""
    error = provider_error(exc, profile)
    error.outcome = launch_outcome(exc, profile)
    return error


def change_error(exc: Exception | None, profile: Profile | None, operation: str) -> ProviderError:
    """The ProviderError of a failed call that changes an instance (``operation``: terminate,
    stop, start, reboot, tag, untag), saying whether it may have been carried out: as
    :func:`launch_outcome` says of a create_node."""
    error = provider_error(exc, profile)
    error.outcome = launch_outcome(exc, profile)
    if error.outcome != OUTCOME_NONE:
        error.operation = operation
    return error


def not_in_catalog(kind: str, wanted: str, driver_name: str) -> ProviderError:
    """The ProviderError of an image, size or location the driver's catalog does not know."""
    return ProviderError(
        NAME,
        CATALOG_CODES[kind],
        f"the {driver_name} cloud knows no {kind} {wanted!r} (by id or name)",
        retryable=False,
    )
