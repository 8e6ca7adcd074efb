"""Launching with traceable, idempotent retries, on every provider.

Every launched instance is tagged with who launched it and in which request. A launch with a
client token is also tagged with the token and a digest of its parameters; before launching,
the provider is asked for instances carrying the caller's token, so that a retry returns the
instances of the first attempt instead of launching a second set, whichever process behind the
load balancer answers it. The provider's records are the only state. (The token also goes to
the provider where it is native -- EC2's ClientToken -- which closes the gap between two
concurrent first attempts on EC2 itself.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from launchprov.providers.interface import (
    BEYOND_SEED,
    IdempotencyConflict,
    InstanceQuery,
    LaunchRequest,
)

CALLER_TAG = "launchprov:caller"
REQUEST_ID_TAG = "launchprov:request-id"
CLIENT_TOKEN_TAG = "launchprov:client-token"  # noqa: S105 (a tag key, not a secret)
REQUEST_HASH_TAG = "launchprov:request-hash"
#: When the instance's lease ends: RFC 3339, UTC, to the second (launchprov.leases).
EXPIRES_AT_TAG = "launchprov:expires-at"
#: RFC 3339 in UTC, to the second: how EXPIRES_AT_TAG holds a time.
EXPIRY_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

#: The fields of a LaunchRequest that do not make two launches different launches: the token
#: itself, launchprov's own tags (they hold the fingerprint) and which fields the caller spelt
#: out (leaving a parameter out and giving its default is the same launch). Every other field,
#: a new launch parameter included, is part of the fingerprint.
NOT_FINGERPRINTED = frozenset({"client_token", "system_tags", "explicit"})
FINGERPRINTED = tuple(
    field.name for field in dataclasses.fields(LaunchRequest) if field.name not in NOT_FINGERPRINTED
)


#: The defaults of the fields: a field added after the seed's parameters is left out of the
#: digest while it holds its default, so the digest of a launch that does not use it (and the
#: tag of instances launched before it existed) stays what it was.
_FIELD_DEFAULTS = {field.name: field.default for field in dataclasses.fields(LaunchRequest)}


def _plain(value):
    """JSON for what json.dumps does not know: tuples and dataclasses (fallback alternatives)."""
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    return list(value)


def expiry_after(expires_in: int, now: datetime | None = None) -> str:
    """The tag value of a lease of ``expires_in`` seconds from ``now`` (default: now)."""
    moment = (now or datetime.now(UTC)) + timedelta(seconds=expires_in)
    return moment.astimezone(UTC).strftime(EXPIRY_FORMAT)


def fingerprint(request: LaunchRequest) -> str:
    """A digest of a launch's parameters (not of its request id or caller)."""
    values = {
        name: getattr(request, name)
        for name in FINGERPRINTED
        if name not in BEYOND_SEED or getattr(request, name) != _FIELD_DEFAULTS[name]
    }
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.sha256(canonical.encode()).hexdigest()


def traced(request: LaunchRequest, caller: str, request_id: str) -> LaunchRequest:
    """The request with launchprov's own tags added (the lease's end computed once, now, for
    every instance of the launch)."""
    system_tags = {CALLER_TAG: caller, REQUEST_ID_TAG: request_id}
    if request.expires_in is not None:
        system_tags[EXPIRES_AT_TAG] = expiry_after(request.expires_in)
    if request.client_token is not None:
        system_tags[CLIENT_TOKEN_TAG] = request.client_token
        system_tags[REQUEST_HASH_TAG] = fingerprint(request)
    return dataclasses.replace(request, system_tags=system_tags)


def earlier_launch(provider, request: LaunchRequest) -> list[str] | None:
    """The ids launched earlier with this caller's client token, or None if there are none.

    Raises IdempotencyConflict when that launch had other parameters.
    """
    query = InstanceQuery(
        region=request.region,
        tags={
            CLIENT_TOKEN_TAG: (request.client_token,),
            CALLER_TAG: (request.system_tags[CALLER_TAG],),
        },
        limit=1000,
        batch_by=CLIENT_TOKEN_TAG,  # concurrent launches: one lookup for all their tokens
    )
    instances, token = [], None
    while True:
        page = provider.list_instances(dataclasses.replace(query, page_token=token))
        instances += page.instances
        token = page.next_token
        if token is None:
            break
    if not instances:
        return None
    expected = request.system_tags[REQUEST_HASH_TAG]
    if any(instance.tags.get(REQUEST_HASH_TAG) != expected for instance in instances):
        raise IdempotencyConflict(
            provider.name,
            f"client_token {request.client_token!r} was used for a launch with other "
            "parameters; use a new token for a new launch",
        )
    return answer_order(instance.id for instance in instances)


def answer_order(ids) -> list[str]:
    """The order in which a launch answers its ids, the first time and on every retry alike: the
    provider's own order is not kept anywhere a retry could read it back."""
    return sorted(ids, key=lambda instance_id: (len(instance_id), instance_id))


class Launched(NamedTuple):
    ids: list[str]
    #: Which alternative launched them (0: the request itself); None for a launch without
    #: a fallback, or a retry answered with an earlier attempt's ids.
    alternative: int | None = None


def launch(provider, request: LaunchRequest, caller: str, request_id: str) -> list[str]:
    """Launch, or return what an earlier attempt with the same client token launched."""
    return launched(provider, request, caller, request_id).ids


def launched(
    provider, request: LaunchRequest, caller: str, request_id: str, capacity=None
) -> Launched:
    """:func:`launch`, saying which alternative launched.

    ``capacity`` (a :class:`launchprov.capacity.Capacity`) tries the request's fallback
    alternatives; without it, the request is launched as it is.
    """
    request = traced(request, caller, request_id)
    if request.client_token is not None:
        earlier = earlier_launch(provider, request)
        if earlier is not None:
            return Launched(earlier)
    if capacity is None:
        return Launched(answer_order(provider.launch(request)))
    ids, alternative = capacity.launch(provider, request)
    return Launched(answer_order(ids), alternative)
