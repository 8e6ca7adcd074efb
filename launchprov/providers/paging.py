"""Pages of launchprov's size cut out of a provider's own pages, with a stateless token.

A caller asks for ``limit`` instances; the provider answers in pages of its own (moto pages
DescribeInstances at 100 reservations, whatever MaxResults says). The ``next`` token given to
the caller records the provider's token of the page being read, the page size asked of the
provider, and how many instances of that page were already served, so that the next call
fetches the same provider page again and skips them. No state is kept between calls: any
process behind the load balancer can serve the next page.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from launchprov.providers.interface import InvalidPageToken

T = TypeVar("T")

#: fetch(provider_token, page_size) -> (items of that provider page, the provider's next token)
Fetch = Callable[[str | None, int], tuple[Sequence[T], str | None]]


def encode_token(provider_token: str | None, page_size: int, skip: int) -> str:
    payload = json.dumps({"t": provider_token, "m": page_size, "s": skip}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_token(token: str) -> tuple[str | None, int, int]:
    """(provider token, page size, items to skip) of a token made by :func:`encode_token`."""
    try:
        padded = token + "=" * (-len(token) % 4)
        payload: Any = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        provider_token, page_size, skip = payload["t"], payload["m"], payload["s"]
    except (ValueError, binascii.Error, KeyError, TypeError, UnicodeError):
        raise InvalidPageToken("not a page token of this service") from None
    if not (
        (provider_token is None or isinstance(provider_token, str))
        and type(page_size) is int
        and type(skip) is int
        and page_size > 0
        and skip >= 0
    ):
        raise InvalidPageToken("not a page token of this service")
    return provider_token, page_size, skip


def page(fetch: Fetch, limit: int, token: str | None, page_size: int) -> tuple[list[T], str | None]:
    """Up to ``limit`` items from the position ``token`` names, and the token of what follows.

    ``page_size`` is what to ask of the provider when starting a listing; a token carries the
    size it was made with, so that a provider page is always cut the same way.
    """
    provider_token, skip = None, 0
    if token is not None:
        provider_token, page_size, skip = decode_token(token)
    found: list[T] = []
    while True:
        items, provider_next = fetch(provider_token, page_size)
        unread = list(items[skip:])
        wanted = limit - len(found)
        if len(unread) > wanted:
            found += unread[:wanted]
            return found, encode_token(provider_token, page_size, skip + wanted)
        found += unread
        if provider_next is None:
            return found, None
        provider_token, skip = provider_next, 0
        if len(found) == limit:
            return found, encode_token(provider_token, page_size, 0)
