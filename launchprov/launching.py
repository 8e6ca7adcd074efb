"""Launching with traceable, idempotent retries, on every provider.

Every launched instance is tagged with who launched it and in which request. A launch with a
client token is also tagged with the token and a digest of its parameters; before launching,
the provider is asked for instances carrying the caller's token, so that a retry returns the
instances of the first attempt instead of launching a second set, whichever process behind the
load balancer answers it. The provider's records are the only state.

The token also goes to the provider where it is native -- EC2's ClientToken -- which closes
the gaps the tag lookup leaves: two concurrent first attempts, and a retry that arrives before
the first launch's tags are visible (DescribeInstances is eventually consistent). EC2 answers a
repeated ClientToken with the first launch's instances only when every parameter is the same,
so every attempt of a client-token launch sends exactly the same request:

* the ``launchprov:request-id`` tag of a client-token launch is not the HTTP request's id but
  :func:`launch_id`, derived from the caller and the token: the same on every attempt. Each
  attempt's own request id is on its log lines, which also name the launch id;
* the ClientToken sent is :func:`idempotency_key`, a digest of the caller and the token, so
  that two callers' tokens never meet at EC2 (EC2 scopes a ClientToken to the account, and
  would answer one caller with the other's instances).

A launch without a client token is sent with a provider token too, one of its request alone
(:func:`attempt_token`): the SDK's own retries of a send (botocore's, after a dropped
connection) are then answered by EC2 with the first send's instances, and a caller's new request
is still a new launch. An endpoint that ignores the token (moto) launches again on such a
retry: a client-token lookup that then finds more than ``max_count`` instances answers the
first ones and tags the rest :data:`DUPLICATE_OF_TAG` (:func:`split_duplicates`).

A lease is the one exception. Its end (:data:`EXPIRES_AT_TAG`) is counted from the attempt that
launches, exactly: ``expires_in`` seconds, never more, so that a policy's ``max_expires_in``
holds and a one-second lease is reaped by the next reaper run. (It used to be rounded up to ten
minutes so that every attempt sent the same tag: a 60-second lease was answered with one 278 s
away.) A retry is answered by the tag lookup with the first attempt's instances, and so with the
first attempt's lease, untouched. Only a retry whose lookup cannot see them yet reaches EC2 with
another end: EC2 refuses it (IdempotentParameterMismatch), and the launch looks once more before
answering the 409 (:func:`launched`); the caller's next retry, a few seconds later, finds them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from launchprov.placement import is_zone
from launchprov.providers.interface import (
    BEYOND_SEED,
    OUTCOMES_LAUNCHED,
    ActionNotSupported,
    IdempotencyConflict,
    Instance,
    InstanceNotFound,
    InstanceQuery,
    LaunchRequest,
    ProviderError,
)

log = logging.getLogger(__name__)

CALLER_TAG = "launchprov:caller"
REQUEST_ID_TAG = "launchprov:request-id"
CLIENT_TOKEN_TAG = "launchprov:client-token"  # noqa: S105 (a tag key, not a secret)
REQUEST_HASH_TAG = "launchprov:request-hash"
#: When the instance's lease ends: RFC 3339, UTC, to the second (launchprov.leases).
EXPIRES_AT_TAG = "launchprov:expires-at"
#: RFC 3339 in UTC, to the second: how EXPIRES_AT_TAG holds a time.
EXPIRY_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: On an instance that a client-token lookup found beyond the launch's ``max_count`` (an
#: endpoint that ignores ClientToken launched again on an SDK retry): the id of the first
#: instance the launch answers. The ``duplicate`` filter of GET /v1/instances finds them.
DUPLICATE_OF_TAG = "launchprov:duplicate-of"

#: The fields of a LaunchRequest that do not make two launches different launches: the token
#: itself, launchprov's own tags (they hold the fingerprint) and which fields the caller spelt
#: out (leaving a parameter out and giving its default is the same launch). Every other field,
#: a new launch parameter included, is part of the fingerprint.
NOT_FINGERPRINTED = frozenset({"client_token", "system_tags", "explicit"})
FINGERPRINTED = tuple(
    field.name for field in dataclasses.fields(LaunchRequest) if field.name not in NOT_FINGERPRINTED
)


#: The fields whose order means nothing to the launch: an instance's security groups are a set.
#: (Tags are a map, ordered by the digest's sorted keys; a fallback's order is the order its
#: alternatives are tried in, and counts.)
UNORDERED = frozenset({"security_groups"})


#: The defaults of the fields: a field added after the seed's parameters is left out of the
#: digest while it holds its default, so the digest of a launch that does not use it (and the
#: tag of instances launched before it existed) stays what it was.
_FIELD_DEFAULTS = {field.name: field.default for field in dataclasses.fields(LaunchRequest)}


def _plain(value):
    """JSON for what json.dumps does not know: a fallback alternative (a dataclass). Anything
    else is a TypeError, as json.dumps expects of its ``default`` (tuples it writes itself)."""
    return dataclasses.asdict(value)


def expiry_after(expires_in: int, now: datetime | None = None) -> str:
    """The tag value of a lease of ``expires_in`` seconds from ``now`` (default: now)."""
    moment = (now or datetime.now(UTC)) + timedelta(seconds=expires_in)
    return moment.strftime(EXPIRY_FORMAT)


def _unordered(values):
    """A collection without order, in one order (None: not given, the cloud's default)."""
    return None if values is None else sorted(values)


def fingerprint(request: LaunchRequest) -> str:
    """A digest of a launch's parameters (not of its request id or caller): the same for the
    same launch, whatever the order of its tags or of its security groups."""
    values = {
        name: _unordered(getattr(request, name)) if name in UNORDERED else getattr(request, name)
        for name in FINGERPRINTED
        if name not in BEYOND_SEED or getattr(request, name) != _FIELD_DEFAULTS[name]
    }
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_key(caller: str, client_token: str) -> str:
    """The provider's idempotency token of a caller's client token: 32 hex digits."""
    return hashlib.sha256(f"{caller}\0{client_token}".encode()).hexdigest()[:32]


def attempt_token() -> str:
    """The provider's idempotency token of a launch without a client token: 32 random hex
    digits, new for every attempt.

    It lets the SDK retry its own sends safely (EC2 answers a RunInstances repeated with its
    ClientToken with the first one's instances instead of launching again); it never makes the
    caller's retries idempotent: a caller who sends no token gets a new launch for every
    request, even one that repeats its X-Request-ID (so nothing of the request goes into it)."""
    return uuid.uuid4().hex


def launch_id(caller: str, client_token: str) -> str:
    """The ``launchprov:request-id`` tag of a client-token launch: the same on every retry."""
    return f"ct-{idempotency_key(caller, client_token)}"


def traced(
    request: LaunchRequest,
    caller: str,
    request_id: str,
    now: datetime | None = None,
    sign: Callable[[dict[str, str]], dict[str, str]] | None = None,
) -> LaunchRequest:
    """The request with launchprov's own tags added (the lease's end computed once, from
    ``now``, default: now, for every instance of the launch), signed by ``sign``
    (:func:`launchprov.signing.signer`) if given; with a client token, the provider's
    idempotency token in its place, and nothing but the lease's end that differs from one
    attempt to the next; without one, a token of this attempt alone (:func:`attempt_token`),
    so that the provider's idempotency token is always sent.

    Whether the caller gave a token is known after this by the :data:`CLIENT_TOKEN_TAG` of
    ``system_tags``, not by ``client_token``."""
    system_tags = {CALLER_TAG: caller, REQUEST_ID_TAG: request_id}
    if request.expires_in is not None:
        # Exactly expires_in from this attempt, with a client token too: a retry answered by
        # the lookup keeps the first attempt's lease (see the module's docstring).
        system_tags[EXPIRES_AT_TAG] = expiry_after(request.expires_in, now)
    if request.client_token is None:
        return dataclasses.replace(
            request,
            system_tags=_signed(system_tags, sign),
            client_token=attempt_token(),
        )
    system_tags[REQUEST_ID_TAG] = launch_id(caller, request.client_token)
    system_tags[CLIENT_TOKEN_TAG] = request.client_token
    system_tags[REQUEST_HASH_TAG] = fingerprint(request)
    return dataclasses.replace(
        request,
        # In one order on every attempt, however the caller lists them: EC2 answers a repeated
        # ClientToken with the first launch only for the same request.
        tags=dict(sorted(request.tags.items())),
        security_groups=(
            None if request.security_groups is None else tuple(sorted(request.security_groups))
        ),
        system_tags=_signed(system_tags, sign),
        client_token=idempotency_key(caller, request.client_token),
    )


def _signed(system_tags: dict[str, str], sign) -> dict[str, str]:
    return system_tags if sign is None else sign(system_tags)


def earlier_launch(provider, request: LaunchRequest) -> list[str] | None:
    """The ids launched earlier with this caller's client token, or None if there are none.

    Raises IdempotencyConflict when that launch had other parameters.
    """
    client_token = request.system_tags[CLIENT_TOKEN_TAG]
    query = InstanceQuery(
        region=request.region,
        tags={
            CLIENT_TOKEN_TAG: (client_token,),
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
            f"client_token {client_token!r} was used for a launch with other "
            "parameters; use a new token for a new launch",
        )
    kept, duplicates = split_duplicates(instances, request.max_count)
    if duplicates:
        mark_duplicates(provider, request.region, kept[0].id, duplicates)
    return answer_order(instance.id for instance in kept)


def launch_order(instance: Instance) -> tuple:
    """The order in which a launch's instances came: by launch time (unknown last), then id."""
    launched_at = instance.launch_time
    return (launched_at is None, launched_at or 0, len(instance.id), instance.id)


def split_duplicates(instances, max_count: int) -> tuple[list[Instance], list[Instance]]:
    """(the first ``max_count`` of a launch's instances by :func:`launch_order`, the others).

    A lookup finds more than the launch asked for only when a launch was sent twice and the
    provider did not keep its ClientToken promise (moto; an EC2-compatible endpoint that
    ignores it): the instances of the repeated sends are duplicates."""
    ordered = sorted(instances, key=launch_order)
    return ordered[:max_count], ordered[max_count:]


def mark_duplicates(provider, region: str, first: str, duplicates: list[Instance]) -> None:
    """Log ``duplicates`` (one WARNING line with their ids) and tag them :data:`DUPLICATE_OF_TAG`
    ``first``, the first instance the launch answers. A tag that cannot be set is logged, never
    raised: the launch's answer does not depend on it."""
    log.warning(
        "client-token launch %s found %d duplicate instance(s) beyond max_count: %s "
        "(tagged %s=%s; list them with duplicate=true)",
        duplicates[0].tags.get(REQUEST_ID_TAG, "-"),
        len(duplicates),
        ", ".join(instance.id for instance in duplicates),
        DUPLICATE_OF_TAG,
        first,
    )
    for instance in duplicates:
        if instance.tags.get(DUPLICATE_OF_TAG) == first:
            continue  # tagged by an earlier retry
        try:
            provider.tag(instance.id, region, {DUPLICATE_OF_TAG: first})
        except (ProviderError, ActionNotSupported, InstanceNotFound) as exc:
            log.warning(
                "could not tag duplicate %s %s=%s: %s", instance.id, DUPLICATE_OF_TAG, first, exc
            )


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
    provider,
    request: LaunchRequest,
    caller: str,
    request_id: str,
    capacity=None,
    now: datetime | None = None,
    sign=None,
) -> Launched:
    """:func:`launch`, saying which alternative launched.

    ``capacity`` (a :class:`launchprov.capacity.Capacity`) tries the request's fallback
    alternatives; without it, the request is launched as it is. A lease is counted from
    ``now`` (default: now); ``sign`` signs the tags (:func:`traced`).
    """
    request = traced(request, caller, request_id, now, sign)
    if CLIENT_TOKEN_TAG in request.system_tags:  # the caller gave a client token
        log.info(
            "client-token launch %s (tag %s)",
            request.system_tags[REQUEST_ID_TAG],
            REQUEST_ID_TAG,
        )
        earlier = earlier_launch(provider, request)
        if earlier is not None:
            return Launched(earlier)
    try:
        if capacity is None:
            return Launched(answer_order(provider.launch(request)))
        ids, alternative = capacity.launch(provider, request)
    except IdempotencyConflict as conflict:
        if CLIENT_TOKEN_TAG not in request.system_tags:
            raise
        # The provider knows the token but the lookup did not see its instances: an earlier
        # attempt whose tags were not visible yet (or whose lease ends elsewhen), or a launch
        # with other parameters. Look again; what is visible now answers, like any retry.
        earlier = earlier_launch(provider, request)
        if earlier is not None:
            return Launched(earlier)
        raise IdempotencyConflict(
            conflict.provider,
            f"{conflict.message}: client_token "
            f"{request.system_tags[CLIENT_TOKEN_TAG]!r} was used by a launch that cannot be "
            "seen yet, or with other parameters: retry in a few seconds with the same "
            "parameters, or use a new token for a new launch",
        ) from None
    return Launched(answer_order(ids), alternative)


def _region_parameter(request: LaunchRequest) -> str:
    """``&region=`` and the launch's region where it is an EC2 region; off EC2 the instance
    routes take none (another cloud's location is not a region)."""
    if request.placement is None or not is_zone(request.placement):
        return ""
    return f"&region={request.region}"


def honest(error: ProviderError, request: LaunchRequest, request_id: str) -> ProviderError:
    """The failure of a launch as the caller must see it.

    A launch whose outcome is unknown or partial (``error.outcome``) may have started
    instances (a partial one names those it created, ``error.instances``): with a client
    token a retry is safe (it answers those instances), so it is retryable; without one a
    retry may launch a second set, so it is not, and the message says how to find what this
    request may have launched.
    """
    if error.outcome not in OUTCOMES_LAUNCHED:
        return error
    if request.client_token is not None:
        message = (
            f"{error.message}. The launch may have started instances: retry with the same "
            "client_token, which answers them instead of launching again"
        )
        retryable = True
    else:
        message = (
            f"{error.message}. The launch may have started instances: do not retry blindly; "
            f"find them with GET /v1/instances?tag:{REQUEST_ID_TAG}={request_id}"
            f"{_region_parameter(request)} (next time, send a "
            "client_token: a retry with it is "
            "safe)"
        )
        retryable = False
    return ProviderError(
        error.provider,
        error.code,
        message,
        retryable=retryable,
        outcome=error.outcome,
        instances=error.instances,
    )
