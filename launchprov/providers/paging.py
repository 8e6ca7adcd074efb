"""Pages of launchprov's size cut out of a provider's own pages, with a stateless token.

A caller asks for ``limit`` instances; the provider answers in pages of its own, whose size
it counts in units of its own (EC2's ``MaxResults`` counts instances, moto's counts
reservations, which may each hold hundreds). The pager spends the provider's calls as if they
were money: each instance is read about once per full listing, whatever ``limit`` and the
provider's page shape.

* **Pages sized to what the caller can take.** A page asks the provider for about as many
  instances as the caller still wants, in the provider's units: the token carries the
  *density* seen so far (instances per unit), learned on the first page of a listing by a
  probe of the smallest page the provider takes.
* **A provider page consumed whole** hands on the provider's own token (EC2's ``NextToken``).
* **A provider page cut** is not read again for every slice: the token carries the ids of the
  instances left in it (up to :data:`CARRIED_IDS`), which the next page reads by id (EC2's
  ``instance-id`` filter), then the provider's token of the page that follows. Where more
  are left than a token can carry (a reservation far larger than ``limit``), the token also
  carries the provider's token of the cut page and a cursor, the greatest id the carried ids
  reach: that page is read again once every :data:`CARRIED_IDS` + ``limit`` instances, not
  for every slice. A provider that cannot read by id (a Libcloud driver that lists every node
  at once) reads its one page again above the cursor.

Each provider page is served in the order of the instance id. A cursor, not a count, and ids,
not positions: an instance that comes or goes between two calls shifts no other, so none is
skipped and none is served twice. What holds, exactly:

* within one provider page: every instance that stays in the listing from the first page to
  the last is served exactly once, and no instance twice, whatever is launched or terminated
  in between. The first page of a listing asks the provider for room for ``limit`` +
  :data:`CARRIED_IDS` instances, so a listing about that small is one provider page and
  exact (as is the whole listing of a Libcloud driver other than EC2, which lists every node
  at once);
* across provider pages: what EC2's ``NextToken`` guarantees, and launchprov adds no skip or
  repeat of its own, but one: when an instance of a cut provider page that is read again (no
  ids carried) leaves the listing and the provider moves an instance of the following page
  into its place, that instance is skipped if its id is below the cursor. (moto's pages are
  reservations in launch order and its token names the last one served, so nothing moves
  forward and that case does not arise; but moto cannot go on from a token whose reservation
  has left a filtered listing, and answers 500: a listing by state of more than one provider
  page, while instances end, can fail there, which EC2 does not.)

A token is tied to its query: it carries a digest of the query's filters (not ``limit``), and
a token of another query, or an altered one, is :class:`InvalidPageToken` (a 400). The service
also binds it to its caller (:mod:`launchprov.page_tokens`). No state is kept between calls:
any process behind the load balancer serves the next page.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import math
import zlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from launchprov.providers.interface import InstanceQuery, InvalidPageToken

T = TypeVar("T")

#: fetch(provider_token, page_size) -> (items of that provider page, the provider's next token)
Fetch = Callable[[str | None, int], tuple[Sequence[T], str | None]]
#: fetch_ids(ids) -> the items of those ids that are still in the listing (any order)
FetchIds = Callable[[Sequence[str]], Sequence[T]]

#: The most ids of a cut provider page a token carries (EC2 takes 200 values in a filter):
#: about 2 KB of token once compressed.
CARRIED_IDS = 200

#: The fields of an InstanceQuery that say where a listing is, not what it lists.
_NOT_SCOPE = frozenset({"limit", "page_token", "batch_by"})
#: The greatest density a token may carry: a unit holds at most this many instances.
_MAX_DENSITY = 100_000.0


@dataclasses.dataclass(frozen=True, slots=True)
class Pages:
    """How a provider pages: the page sizes it takes (in its units), and whether one unit may
    hold many instances (EC2 on moto: a reservation), which the first page probes."""

    min_size: int = 1
    max_size: int = 1000
    grouped: bool = False

    def size(self, instances: int, density: float) -> int:
        """The page size that holds about ``instances`` at ``density`` instances a unit."""
        return max(self.min_size, min(self.max_size, math.ceil(instances / density)))


@dataclasses.dataclass(slots=True)
class Position:
    """Where a listing goes on: first the ``ids`` carried, then the provider page at
    ``provider_token`` of ``page_size`` above ``cursor`` (read again) when there is a cursor,
    else the provider page at ``provider_token`` (a new one), else (no token) nothing."""

    provider_token: str | None = None
    page_size: int = 0
    cursor: str | None = None
    ids: list[str] = dataclasses.field(default_factory=list)
    density: float | None = None

    def at_end(self) -> bool:
        return not self.ids and self.cursor is None and self.provider_token is None


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


def encode_token(position: Position, scope: str) -> str:
    payload = {
        "t": position.provider_token,
        "m": position.page_size,
        "c": position.cursor,
        "r": position.ids,
        "d": position.density,
        "q": scope,
    }
    text = json.dumps(payload, separators=(",", ":"))
    return base64.urlsafe_b64encode(zlib.compress(text.encode(), 9)).decode().rstrip("=")


def _valid(payload: Any) -> bool:
    if not isinstance(payload, dict):
        return False
    token, size, cursor, ids, density = (payload.get(k) for k in ("t", "m", "c", "r", "d"))
    return (
        (token is None or isinstance(token, str))
        and type(size) is int
        and 0 <= size <= 100_000
        and (cursor is None or isinstance(cursor, str))
        and isinstance(ids, list)
        and len(ids) <= CARRIED_IDS
        and all(isinstance(item, str) for item in ids)
        and (density is None or (type(density) in (int, float) and 1 <= density <= _MAX_DENSITY))
        and (cursor is None or size > 0)
        and isinstance(payload.get("q"), str)
    )


def decode_token(token: str, scope: str) -> Position:
    """The :class:`Position` of a token made by :func:`encode_token` for a query of
    ``scope``; InvalidPageToken for anything else."""
    try:
        padded = token + "=" * (-len(token) % 4)
        raw = zlib.decompressobj().decompress(
            base64.urlsafe_b64decode(padded.encode("ascii")), 1 << 16
        )
        payload: Any = json.loads(raw)
    except (ValueError, binascii.Error, zlib.error, UnicodeError):
        raise InvalidPageToken("not a page token of this service") from None
    if not _valid(payload):
        raise InvalidPageToken("not a page token of this service")
    if payload["q"] != scope:
        raise InvalidPageToken(
            "a token of another query: send the same filters as for the first page, or none"
        )
    density = payload["d"]
    return Position(
        payload["t"],
        payload["m"],
        payload["c"],
        list(payload["r"]),
        None if density is None else float(density),
    )


def page(
    fetch: Fetch,
    limit: int,
    token: str | None,
    scope: str,
    pages: Pages = Pages(),
    key: Callable[[T], str] = by_id,
    fetch_ids: FetchIds | None = None,
) -> tuple[list[T], str | None]:
    """Up to ``limit`` items from the position ``token`` names, and the token of what follows.

    Each provider page is served in the order of ``key`` (unique within a listing). ``pages``
    says what page sizes the provider takes; ``fetch_ids``, when the provider can read items
    by id, is how what is left of a cut page is read. ``scope`` (:func:`scope_of`) ties the
    tokens to their query.
    """
    starting = token is None
    position = Position() if token is None else decode_token(token, scope)
    if position.cursor is not None and not pages.min_size <= position.page_size <= pages.max_size:
        raise InvalidPageToken("not a page token of this service")  # not this provider's size
    found: list[T] = []
    while len(found) < limit:
        wanted = limit - len(found)
        if position.ids and fetch_ids is not None:
            chunk, position.ids = position.ids[:wanted], position.ids[wanted:]
            asked = set(chunk)
            found += sorted((item for item in fetch_ids(chunk) if key(item) in asked), key=key)
            continue
        position.ids = []  # (a provider without fetch_ids never carries ids)
        if position.cursor is not None:  # the rest of a cut provider page, read again
            items, following = fetch(position.provider_token, position.page_size)
            unread = sorted((item for item in items if key(item) > position.cursor), key=key)
            size = position.page_size
        elif position.provider_token is None and not starting:
            break  # the listing is over
        else:
            # A first page has room for what a token can carry: a small listing is one page.
            room = wanted + (CARRIED_IDS if starting and fetch_ids is not None else 0)
            items, following, size = _new_page(fetch, position, pages, room)
            unread = sorted(items, key=key)
        starting = False
        found += unread[:wanted]
        position = _after(position, size, following, unread, wanted, key, fetch_ids is not None)
        if position.at_end():
            break
    return found, (None if position.at_end() else encode_token(position, scope))


def _new_page(fetch: Fetch, position: Position, pages: Pages, room: int):
    """(items, provider's next token, page size) of a new provider page at the position,
    sized for ``room`` instances; the position's density learned from it."""
    density = position.density
    if density is None and pages.grouped:
        # How many instances a unit holds is unknown: the smallest page says, and is used
        # when it is as big as wanted (or the whole listing).
        size = pages.min_size
        items, following = fetch(position.provider_token, size)
        if following is None:
            return items, following, size
        density = max(1.0, len(items) / size)
        if pages.size(room, density) <= size:
            position.density = density
            return items, following, size
    size = pages.size(room, density or 1.0)
    items, following = fetch(position.provider_token, size)
    if following is not None:  # a full page: its density is the provider's
        density = min(_MAX_DENSITY, max(1.0, len(items) / size))
    position.density = density
    return items, following, size


def _after(position, size, following, unread, wanted, key, by_id_ok) -> Position:
    """Where the listing goes on once ``wanted`` of ``unread`` (the items of the provider page
    at ``position``, of ``size``, above its cursor) are served."""
    rest = unread[wanted:]
    density = position.density
    if not rest:
        return Position(following, 0, None, [], density)
    if by_id_ok and len(rest) <= CARRIED_IDS:
        return Position(following, 0, None, [key(item) for item in rest], density)
    if by_id_ok:
        carried = [key(item) for item in rest[:CARRIED_IDS]]
        return Position(position.provider_token, size, carried[-1], carried, density)
    return Position(position.provider_token, size, key(unread[wanted - 1]), [], density)
