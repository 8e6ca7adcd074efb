"""Bearer tokens, one per calling service, through Pyramid's security policy.

The .ini holds SHA-256 digests, never tokens. A presented token is hashed and compared with
every known digest in constant time, so neither a match nor its position leaks through timing.
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
#: Why a request without a caller is refused (the 401's message), by whether it sent an
#: Authorization header.
REFUSAL = {False: "a bearer token is required", True: "a valid bearer token is required"}

_BEARER = re.compile(r"\ABearer +([A-Za-z0-9._~+/-]+=*)\Z", re.IGNORECASE)


def digest(token: str) -> str:
    """The SHA-256 hex digest of a token, as ``launchprov.auth.tokens`` lists it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class BearerTokenSecurityPolicy:
    """Identity: the caller whose token the Authorization header carries (or None)."""

    def __init__(self, digests: dict[str, str], enabled: bool):
        self.digests = dict(digests)  # digest -> caller name
        self.enabled = enabled
        # Pyramid asks for the identity several times a request: work it out once.
        self._identities = RequestLocalCache(self._caller)

    def identity(self, request) -> str | None:
        return self._identities.get_or_create(request)

    def _caller(self, request) -> str | None:
        if not self.enabled:
            return ANONYMOUS
        match = _BEARER.match(request.headers.get("Authorization", ""))
        if match is None:
            return None
        presented = digest(match.group(1)).encode()
        caller = None
        for known, name in self.digests.items():  # no early exit: the same work every time
            if hmac.compare_digest(presented, known.encode()):
                caller = name
        return caller

    def authenticated_userid(self, request) -> str | None:
        return request.identity

    def permits(self, request, context, permission):
        """Denied, saying why (the 401's message), for a request without a known caller."""
        if request.identity is None:
            return Denied(REFUSAL["Authorization" in request.headers])
        return Allowed(f"caller {request.identity}")

    def remember(self, request, userid, **kw):
        return []

    def forget(self, request, **kw):
        return []
