"""Bearer tokens, one per calling service, through Pyramid's security policy.

The .ini holds SHA-256 digests, never tokens. A presented token is hashed and compared with
every known digest in constant time, so neither a match nor its position leaks through timing.

``/metrics`` has tokens of its own (``launchprov.metrics.tokens``), which open it and nothing
else. Failed authentications are limited per client address (``launchprov.auth.failure_limit``,
counted by the rate limits' storage): past the limit every request of that address that needs a
token is refused with :class:`TooManyFailures`, a valid token included -- were a valid token let
through, its answer (not a 429) would tell a guesser which guess was right, and the guessing
would go on at full speed.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from pyramid.request import RequestLocalCache
from pyramid.security import Allowed, Denied

#: The caller of every request when authentication is off (development.ini).
ANONYMOUS = "anonymous"
#: What every protected view requires: a known caller.
CALL = "call"
#: What GET /metrics requires when launchprov.metrics.tokens is set: one of those tokens.
READ_METRICS = "read-metrics"
#: Why a request without a caller is refused (the 401's message), by whether it sent an
#: Authorization header.
REFUSAL = {False: "a bearer token is required", True: "a valid bearer token is required"}
METRICS_REFUSAL = {
    False: "a bearer token of launchprov.metrics.tokens is required",
    True: "a valid bearer token of launchprov.metrics.tokens is required",
}


class TooManyFailures(Exception):
    """The request's client address failed to authenticate more often than allowed: refused
    (429) whatever token it carries, for ``retry_after`` seconds."""

    def __init__(self, address: str, limit: str, retry_after: int):
        self.address = address
        self.limit = limit
        self.retry_after = retry_after
        self.message = (
            f"too many failed authentications from {address}: at most {limit}; "
            f"retry after {retry_after} s"
        )
        super().__init__(self.message)


_BEARER = re.compile(r"\ABearer +([A-Za-z0-9._~+/-]+=*)\Z", re.IGNORECASE)


def digest(token: str) -> str:
    """The SHA-256 hex digest of a token, as ``launchprov.auth.tokens`` lists it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class BearerTokenSecurityPolicy:
    """Identity: the caller whose token the Authorization header carries (or None)."""

    def __init__(
        self,
        digests: dict[str, str],
        enabled: bool,
        scrapers: dict[str, str] | None = None,
    ):
        self.digests = dict(digests)  # digest -> caller name
        self.enabled = enabled
        #: launchprov.metrics.tokens: digest -> name, for GET /metrics only.
        self.scrapers = dict(scrapers or {})
        # Pyramid asks for the identity several times a request: work it out once.
        self._identities = RequestLocalCache(self._caller)

    def identity(self, request) -> str | None:
        return self._identities.get_or_create(request)

    def _caller(self, request) -> str | None:
        if not self.enabled:
            return ANONYMOUS
        return _holder(request, self.digests)

    def scraper(self, request) -> str | None:
        """The name of the launchprov.metrics.tokens line whose token the request carries."""
        return _holder(request, self.scrapers)

    def authenticated_userid(self, request) -> str | None:
        return request.identity

    def permits(self, request, context, permission):
        """Denied, saying why (the 401's message), for a request without a known caller (or,
        for READ_METRICS, without a metrics token). Raises TooManyFailures for a client address
        past launchprov.auth.failure_limit, valid token or not."""
        given = "Authorization" in request.headers
        if permission == READ_METRICS:
            holder, refusal = self.scraper(request), METRICS_REFUSAL[given]
        else:
            holder, refusal = request.identity, REFUSAL[given]
        # Only a token that was given and is wrong counts as a failure: a request without one
        # guesses nothing.
        _limit_failures(request, failed=holder is None and given)
        if holder is None:
            return Denied(refusal)
        return Allowed(f"caller {holder}")

    def remember(self, request, userid, **kw):
        return []

    def forget(self, request, **kw):
        return []


def _holder(request, digests: dict[str, str]) -> str | None:
    """The name of the line of ``digests`` whose token the Authorization header carries."""
    match = _BEARER.match(request.headers.get("Authorization", ""))
    if match is None:
        return None
    presented = digest(match.group(1)).encode()
    holder = None
    for known, name in digests.items():  # no early exit: the same work every time
        if hmac.compare_digest(presented, known.encode()):
            holder = name
    return holder


def _limit_failures(request, failed: bool) -> None:
    """Count a failed authentication of the request's client address (``failed``), or look
    whether that address is past its limit; TooManyFailures when it is."""
    limits = getattr(request.registry, "launchprov_ratelimits", None)
    if limits is None:
        return
    address = request.remote_addr or "unknown"
    verdict = limits.authentication(address, failed)
    if verdict is not None and not verdict.allowed:
        limit = f"{verdict.item.amount} failures per {verdict.item.get_expiry()} s"
        retry_after = int(verdict.headers()["Retry-After"])
        raise TooManyFailures(address, limit, retry_after)
