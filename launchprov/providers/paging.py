"""Pages of launchprov's size cut out of a provider's own pages, with a stateless token.

A caller asks for ``limit`` instances; the provider answers in pages of its own. Each provider
page is read in the order of the instance id, and the ``next`` token given to the caller says
where to go on:

* a provider page consumed whole: the provider's own token of the page that follows (EC2's
  ``NextToken``), nothing else;
* a provider page cut: the provider's token of *that* page and a cursor, the greatest id served
  from it. The next call reads that provider page again and serves its ids above the cursor.

A cursor, not a count: an instance that comes or goes between two calls shifts no other
instance of the page, so none is skipped and none is served twice. What holds, exactly:

* within one provider page (the whole listing of a Libcloud driver other than EC2, which
  lists every node at once; an EC2 listing of up to ``ec2_common.LISTING_PAGE_SIZE``
  reservations): every instance that stays in the listing from the first page to the last is
  served exactly once, and no instance twice, whatever is launched or terminated in between;
* across provider pages (EC2 beyond that size): what EC2's ``NextToken`` guarantees, and
  launchprov adds no skip or repeat of its own, but one: when an instance of a cut provider
  page leaves the listing (terminated, with a state filter) and the provider moves an instance
  of the following page into its place, that instance is skipped if its id is below the
  cursor. (moto's pages are reservations in launch order and its token names the last one
  served, so nothing moves forward and that case does not arise; but moto cannot go on from a
  token whose reservation has left a filtered listing, and answers 500: a listing by state of
  more than one EC2 page, while instances end, can fail there, which EC2 does not.)

A token is tied to its query: it carries a digest of the query's filters (not ``limit``), and
a token of another query, or an altered one, is :class:`InvalidPageToken` (a 400). It is not
signed: a caller who forges one only moves within a listing its own filters already allow.
No state is kept between calls: any process behind the load balancer serves the next page.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from launchprov.providers.interface import InstanceQuery, InvalidPageToken

T = TypeVar("T")

#: fetch(provider_token, page_size) -> (items of that provider page, the provider's next token)
Fetch = Callable[[str | None, int], tuple[Sequence[T], str | None]]

#: The fields of an InstanceQuery that say where a listing is, not what it lists.
_NOT_SCOPE = frozenset({"limit", "page_token", "batch_by"})


def by_id(item: Any) -> str:
    """The sort key of an instance: its id."""
    return item.id


def scope_of(query: InstanceQuery, **extra: Any) -> str:
    """A digest of what ``query`` lists (its region and filters, not its limit), with
    ``extra`` filters applied above the provider (``expired``): what a token is tied to."""
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(query):
        if field.name in _NOT_SCOPE:
            continue
        value = getattr(query, field.name)
        if isinstance(value, dict):
            value = sorted((key, sorted(values)) for key, values in value.items())
        elif isinstance(value, tuple):
            value = sorted(value)
        fields[field.name] = value
    fields.update(extra)
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_token(provider_token: str | None, page_size: int, cursor: str | None, scope: str) -> str:
    payload = {"t": provider_token, "m": page_size, "c": cursor, "q": scope}
    text = json.dumps(payload, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_token(token: str, scope: str) -> tuple[str | None, int, str | None]:
    """(provider token, page size, cursor) of a token made by :func:`encode_token` for a query
    of ``scope``; InvalidPageToken for anything else."""
    try:
        padded = token + "=" * (-len(token) % 4)
        payload: Any = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        provider_token, page_size, cursor, made_for = (
            payload["t"],
            payload["m"],
            payload["c"],
            payload["q"],
        )
    except (ValueError, binascii.Error, KeyError, TypeError, UnicodeError):
        raise InvalidPageToken("not a page token of this service") from None
    if not (
        (provider_token is None or isinstance(provider_token, str))
        and type(page_size) is int
        and page_size > 0
        and (cursor is None or isinstance(cursor, str))
        and isinstance(made_for, str)
    ):
        raise InvalidPageToken("not a page token of this service")
    if made_for != scope:
        raise InvalidPageToken(
            "a token of another query: send the same filters as for the first page, or none"
        )
    return provider_token, page_size, cursor


def page(
    fetch: Fetch,
    limit: int,
    token: str | None,
    page_size: int,
    scope: str,
    key: Callable[[T], str] = by_id,
) -> tuple[list[T], str | None]:
    """Up to ``limit`` items from the position ``token`` names, and the token of what follows.

    Each provider page is served in the order of ``key`` (unique within a listing).
    ``page_size`` is what to ask of the provider when starting a listing; a token carries the
    size it was made with, so that a cut provider page is read again the same way. ``scope``
    (:func:`scope_of`) ties the tokens to their query.
    """
    provider_token, cursor = None, None
    if token is not None:
        provider_token, page_size, cursor = decode_token(token, scope)
    found: list[T] = []
    while True:
        items, provider_next = fetch(provider_token, page_size)
        unread = sorted((item for item in items if cursor is None or key(item) > cursor), key=key)
        wanted = limit - len(found)
        if len(unread) > wanted:
            found += unread[:wanted]
            return found, encode_token(provider_token, page_size, key(found[-1]), scope)
        found += unread
        if provider_next is None:
            return found, None
        provider_token, cursor = provider_next, None
        if len(found) == limit:
            return found, encode_token(provider_token, page_size, None, scope)
