"""GET /v1/instances's filters that launchprov applies itself: ``expired`` and ``duplicate``.

The provider filters on the presence of the tags they read (an instance without a lease is never
expired; one without :data:`~launchprov.launching.DUPLICATE_OF_TAG` is no duplicate), and the
rest is decided here, page by page of the provider's listing (:func:`launchprov.leases.filtered`),
with ``next`` tokens tied to the filters given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime

from launchprov.launching import DUPLICATE_OF_TAG, EXPIRES_AT_TAG
from launchprov.leases import filtered, is_expired
from launchprov.providers.interface import Instance, InstancePage, InstanceQuery


def list_instances(
    provider, query: InstanceQuery, expired: bool | None, duplicate: bool | None
) -> InstancePage:
    """A page of ``query``; with ``expired`` only the instances whose lease has run out
    (True) or the others (False), with ``duplicate`` only the duplicates a client-token lookup
    found (True) or the others (False); None: not filtered."""
    if expired is None and duplicate is None:
        return provider.list_instances(query)
    keeps: list[Callable[[Instance], bool]] = []
    tag_keys = list(query.tag_keys)
    scope = {}
    if expired is not None:
        now = datetime.now(UTC)
        keeps.append(lambda instance: is_expired(instance, now) == expired)
        tag_keys += [EXPIRES_AT_TAG] if expired else []
        scope["expired"] = expired
    if duplicate is not None:
        keeps.append(lambda instance: (DUPLICATE_OF_TAG in instance.tags) == duplicate)
        tag_keys += [DUPLICATE_OF_TAG] if duplicate else []
        scope["duplicate"] = duplicate
    query = dataclasses.replace(query, tag_keys=tuple(dict.fromkeys(tag_keys)))
    return filtered(
        provider, query, lambda instance: all(keep(instance) for keep in keeps), **scope
    )
