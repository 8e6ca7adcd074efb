"""Page tokens bound to the caller they were given to, and to the query they continue.

A ``next`` token is the provider's (:mod:`launchprov.providers.paging`: a position in the
listing, tied to the provider query's filters) followed by ``.`` and a seal: an HMAC-SHA256,
cut to 128 bits, over the caller's name, a digest of the query as the caller sent it (its
filters and ``expired``, not ``limit``) and the provider's token. Another caller's token, the
token of another query, or an altered one is a 400 naming ``next`` before the provider is asked.

The key is the deployment's secret, ``launchprov.tag_signing_key``, so that every process
behind the load balancer opens the tokens of the others. Without one the seal is a plain
digest: a token still works for its caller and query only, but a caller who holds another's
token could seal it anew for itself -- which moves it only within what its own filters and
ownership scope already let it see.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from launchprov.providers import paging
from launchprov.providers.interface import InstanceQuery, InvalidPageToken

_DOMAIN = b"launchprov-page-v1\n"
_SEAL_BYTES = 16


class PageTokens:
    """Seals and opens the ``next`` tokens of one caller's listing of one query."""

    def __init__(self, key: str | None, caller: str | None, query: InstanceQuery, **extra):
        self._key = (key or "").encode()
        self._context = b"\n".join(
            [_DOMAIN, (caller or "").encode(), paging.scope_of(query, **extra).encode()]
        )

    def _seal(self, token: str) -> str:
        mac = hmac.new(self._key, self._context + b"\n" + token.encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()[:_SEAL_BYTES]).decode().rstrip("=")

    def seal(self, token: str | None) -> str | None:
        """The provider's ``token`` as the caller gets it (None stays None: the last page)."""
        return None if token is None else f"{token}.{self._seal(token)}"

    def open(self, sealed: str | None) -> str | None:
        """The provider's token inside ``sealed``; InvalidPageToken unless this caller was
        given it for this query."""
        if sealed is None:
            return None
        token, dot, seal = sealed.rpartition(".")
        if not dot or not token or not seal.isascii():
            raise InvalidPageToken("not a page token of this service")
        try:
            expected = self._seal(token)
        except UnicodeError:
            raise InvalidPageToken("not a page token of this service") from None
        if not hmac.compare_digest(seal.encode(), expected.encode()):
            raise InvalidPageToken(
                "a token of another query or another caller: send the same filters as for "
                "the first page, with the same credentials, or no token"
            )
        return token
