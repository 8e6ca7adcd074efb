"""Leases: instances that expire, recorded where launchprov records everything -- in tags.

A launch with ``expires_in`` tags its instances :data:`~launchprov.launching.EXPIRES_AT_TAG`
with the moment they expire (RFC 3339, UTC, to the second). A lease can be set anew or removed
later (:func:`change`), by a caller that may act on the instance, and only on instances that
launchprov launched (they carry :data:`~launchprov.launching.CALLER_TAG`). ``launchprov-reap``
terminates what has expired (:func:`expired_instances`). No state is kept anywhere else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime

from launchprov.launching import CALLER_TAG, EXPIRES_AT_TAG, EXPIRY_FORMAT, expiry_after
from launchprov.providers import paging
from launchprov.providers.interface import (
    Instance,
    InstancePage,
    InstanceQuery,
    InvalidState,
    UnsupportedParameters,
)

#: The states of an instance a reaper still has to terminate.
LIVE_STATES = ("pending", "running", "stopping", "stopped")


def stamp(moment: datetime) -> str:
    """``moment`` as the tag holds it: RFC 3339 in UTC, to the second (2026-12-01T22:10:56Z)."""
    return moment.astimezone(UTC).strftime(EXPIRY_FORMAT)


def expires_at(instance: Instance) -> datetime | None:
    """When ``instance``'s lease ends; None without a lease (or with a tag that is no time)."""
    text = instance.tags.get(EXPIRES_AT_TAG)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def expires_at_text(instance: Instance) -> str | None:
    """The API's ``expires_at``: the lease's end in RFC 3339 (UTC), or None."""
    moment = expires_at(instance)
    return None if moment is None else stamp(moment)


def is_expired(instance: Instance, now: datetime) -> bool:
    moment = expires_at(instance)
    return moment is not None and moment <= now


def filtered(
    provider, query: InstanceQuery, keep: Callable[[Instance], bool], **scope
) -> InstancePage:
    """One page of the instances of ``query`` that ``keep`` keeps.

    What the provider cannot filter is filtered here, page by page of the provider's listing,
    and the ``next`` token records the position in it (:mod:`launchprov.providers.paging`), so
    that no instance is listed twice and none is skipped.
    """

    def fetch(token: str | None, page_size: int):
        page = provider.list_instances(
            dataclasses.replace(query, page_token=token, limit=page_size)
        )
        return [instance for instance in page.instances if keep(instance)], page.next_token

    found, next_token = paging.page(
        fetch, query.limit, query.page_token, paging.scope_of(query, **scope)
    )
    return InstancePage(found, next_token)


def expired_instances(provider, region: str, now: datetime) -> list[Instance]:
    """Every live instance of ``region`` that launchprov launched and whose lease ended by
    ``now``: what a reaper terminates. An instance without ``launchprov:caller`` is never
    among them, whatever its tags."""
    query = InstanceQuery(
        region, states=LIVE_STATES, tag_keys=(CALLER_TAG, EXPIRES_AT_TAG), limit=1000
    )
    found, token = [], None
    while True:
        page = provider.list_instances(dataclasses.replace(query, page_token=token))
        found += [
            instance
            for instance in page.instances
            if CALLER_TAG in instance.tags and is_expired(instance, now)
        ]
        token = page.next_token
        if token is None:
            return found


def check_taggable(provider) -> None:
    """UnsupportedParameters (a 400 naming ``expires_in``) when the provider keeps no tags."""
    if not provider.can_tag:
        raise UnsupportedParameters(
            provider.name,
            {"expires_in": f"the {provider.name} provider cannot tag instances: no leases"},
        )


def change(
    provider,
    ownership,
    policy,
    caller: str,
    instance_id: str,
    region: str,
    expires_in: int | None,
) -> Instance:
    """Set a lease of ``expires_in`` seconds from now on an instance, or remove it (None).

    In order, each before any change: the provider must keep tags (400); the caller's policy
    must allow the lease (403: max_expires_in, require_expiry); the caller must be allowed to
    act on the instance (the ownership check: 404 or 403); the instance must have been launched
    through launchprov (409). Returns the instance as it is afterwards.
    """
    check_taggable(provider)
    policy.check_expiry(caller, expires_in)
    action = "expiry"
    instance = ownership.admit(provider, caller, instance_id, region, action)
    if instance is None:
        instance = provider.describe(instance_id, region)
    if CALLER_TAG not in instance.tags:
        raise InvalidState(
            provider.name,
            instance_id,
            action,
            f"instance {instance_id} was not launched through launchprov (it has no "
            f"{CALLER_TAG} tag): launchprov changes the leases of its own instances only",
        )
    if expires_in is None:
        provider.untag(instance_id, region, (EXPIRES_AT_TAG,))
    else:
        provider.tag(instance_id, region, {EXPIRES_AT_TAG: expiry_after(expires_in)})
    ownership.record(caller, instance, action)
    return provider.describe(instance_id, region)
