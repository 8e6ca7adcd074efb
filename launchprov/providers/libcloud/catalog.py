"""Catalog lookups: a launch's ami, instance_type and placement as the driver's own objects.

``ami`` becomes a NodeImage, ``instance_type`` a NodeSize and ``placement`` a NodeLocation,
found by id first and then by name in what ``list_images`` / ``list_sizes`` /
``list_locations`` answer (or through ``get_image`` where a profile says so: GCE and Azure
have catalogs too large to list); a key pair is found by name in ``list_key_pairs`` on the
clouds that take key ids or public keys rather than names. Answers are kept per process and
region for ``launchprov.libcloud.catalog_ttl`` seconds, so that a launch costs its create_node
calls and not three listings. A name the cloud does not know is a ProviderError
(``ImageNotFound`` / ``SizeNotFound`` / ``LocationNotFound``, not retryable), raised before
any node is created.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from libcloud.compute.base import NodeDriver

from launchprov.providers.libcloud.errors import not_in_catalog, provider_error

#: How each kind is listed, by the NodeDriver method.
LISTINGS = {
    "image": "list_images",
    "size": "list_sizes",
    "location": "list_locations",
    "key pair": "list_key_pairs",
}


def pick(candidates, wanted: str):
    """The candidate whose id is ``wanted``, else the first whose name is; None for neither."""
    candidates = list(candidates or ())
    for candidate in candidates:
        if str(getattr(candidate, "id", "")) == wanted:
            return candidate
    for candidate in candidates:
        if str(getattr(candidate, "name", "")) == wanted:
            return candidate
    return None


class Catalog:
    """What a driver's cloud offers, remembered for ``ttl`` seconds per region; thread-safe."""

    def __init__(
        self,
        driver_name: str,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        profile=None,
    ):
        self.driver_name = driver_name
        #: The driver's profile: how its cloud's error replies read (None: by status alone).
        self.profile = profile
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[tuple, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _remembered(self, key: tuple, fetch: Callable[[], Any]) -> Any:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        try:
            value = fetch()
        except Exception as exc:  # anything the SDK raises is a provider failure
            raise provider_error(exc, self.profile) from exc
        with self._lock:
            self._entries[key] = (now + self.ttl, value)
        return value

    def listed(self, kind: str, driver: NodeDriver, region: str | None, wanted: str, **scope):
        """``wanted`` (id, then name) among what the driver lists of ``kind``."""
        listing = getattr(driver, LISTINGS[kind])
        return self.listed_by(kind, lambda: listing(**scope), region, wanted, **scope)

    def listed_by(
        self, kind: str, listing: Callable[[], Any], region: str | None, wanted: str, **scope
    ):
        """``wanted`` (id, then name) among what ``listing()`` answers, remembered as
        :meth:`listed` remembers the driver's own listing."""
        key = (kind, region, tuple(sorted(scope.items())))
        found = pick(self._remembered(key, listing), wanted)
        if found is None:
            raise not_in_catalog(kind, wanted, self.driver_name)
        return found

    def fetched(self, kind: str, get: Callable[[str], Any], region: str | None, wanted: str):
        """``wanted`` through a driver's get_<kind>: an error reply counts as "not known"."""

        def fetch():
            try:
                return get(wanted)
            except Exception as exc:
                failure = provider_error(exc, self.profile)
                if failure.code.startswith("HTTP4") or failure.code == failure.UNEXPECTED:
                    return None  # the cloud answered: it does not know the name
                raise

        found = self._remembered((kind, region, "get", wanted), fetch)
        if found is None:
            raise not_in_catalog(kind, wanted, self.driver_name)
        return found

    def forget(self) -> None:
        with self._lock:
            self._entries.clear()
