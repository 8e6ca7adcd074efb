"""EC2's rules, once: what the boto3 adapter and libcloud's EC2 profile share.

Id formats, which error codes a retry can mend, which mean "no such instance" or "wrong
state", the DescribeInstances filters and page sizes, and the tags a launch applies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from launchprov.placement import is_zone
from launchprov.providers import paging
from launchprov.providers.interface import (
    IdempotencyConflict,
    InstanceNotFound,
    InstanceQuery,
    InvalidState,
    LaunchRequest,
    ProviderError,
)
from launchprov.settings import ConfigurationError

#: EC2's own launch defaults: the seed's (its table names them). They apply on EC2 only, the
#: boto3 adapter and libcloud's EC2 profile, where launchprov.defaults.* leaves them unset.
SEED_DEFAULTS: Mapping[str, Any] = {
    "key_name": "scalacity_dev1",
    "security_groups": ("SSH",),
    "placement": "us-east-1b",
}


def default_zone(settings: Mapping[str, Any]) -> str:
    """The default placement of an EC2 deployment: launchprov.defaults.placement, else the
    seed's. ConfigurationError naming the setting when it is not an availability zone."""
    placement = settings["launchprov.defaults.placement"] or SEED_DEFAULTS["placement"]
    if not is_zone(placement):
        raise ConfigurationError(
            f"launchprov.defaults.placement = {placement!r}: expected an availability-zone "
            "name such as us-east-1b (the provider is EC2)"
        )
    return placement


#: What an EC2 AMI id looks like: ``ami-`` and 8 or 17 hex digits.
IMAGE_ID = re.compile(r"\Aami-(?:[0-9a-f]{8}|[0-9a-f]{17})\Z")

#: What an EC2 instance id looks like: ``i-`` and 8 or 17 hex digits.
INSTANCE_ID = re.compile(r"\Ai-(?:[0-9a-f]{8}|[0-9a-f]{17})\Z")

#: Security-group values of this shape are ids (SecurityGroupIds); anything else is a name.
SECURITY_GROUP_ID = re.compile(r"\Asg-(?:[0-9a-f]{8}|[0-9a-f]{17})\Z")

#: EC2 error codes after which the same call may succeed: throttling, capacity, service trouble.
RETRYABLE_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "InsufficientInstanceCapacity",
        "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity",
        "InsufficientCapacity",
        "ServiceUnavailable",
        "Unavailable",
        "InternalError",
        "InternalFailure",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


#: The instance states of EC2, mapped onto launchprov's vocabulary (they coincide).
STATES = {
    "pending": "pending",
    "running": "running",
    "stopping": "stopping",
    "stopped": "stopped",
    "shutting-down": "shutting-down",
    "terminated": "terminated",
}

#: EC2 error codes meaning "no such instance".
NOT_FOUND_CODES = frozenset({"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"})

#: EC2's answer to a ClientToken used before with other parameters.
IDEMPOTENCY_CONFLICT_CODES = frozenset({"IdempotentParameterMismatch"})
#: The states of an instance whose termination has begun already: a TerminateInstances that
#: finds it in one of them (its PreviousState) did not terminate it.
TERMINATING_STATES = frozenset({"shutting-down", "terminated"})

#: EC2 error codes meaning "the instance's state forbids this".
INVALID_STATE_CODES = frozenset({"IncorrectInstanceState", "IncorrectState"})
#: Values in one DescribeInstances filter: a batch of more ids is described in several calls.
FILTER_VALUES_MAX = 200
#: Errors about one of the instances of a call, for which EC2 refuses the whole call: a batched
#: call that gets one is sent again per instance, so each request gets its own answer.
ONE_INSTANCE_CODES = NOT_FOUND_CODES | INVALID_STATE_CODES | {"OperationNotPermitted"}


def state_of(ec2_state: str | None) -> str:
    """launchprov's name for an EC2 state name; ``unknown`` for anything else."""
    return STATES.get(ec2_state, "unknown")


def split_security_groups(groups) -> tuple[list[str], list[str]]:
    """Split security-group values into (names, ids): ``sg-`` + hex is an id, the rest names."""
    names = [group for group in groups if not SECURITY_GROUP_ID.match(group)]
    ids = [group for group in groups if SECURITY_GROUP_ID.match(group)]
    return names, ids


#: HTTP statuses that say "not now" rather than "never": too many requests, and a gateway or
#: load balancer whose backend is unavailable or did not answer in time.
TRANSIENT_HTTP_STATUSES = frozenset({429, 502, 503, 504})

#: EC2's MaxResults bounds for DescribeInstances.
MIN_PAGE_SIZE = 5
MAX_PAGE_SIZE = 1000
#: How DescribeInstances pages, for :mod:`launchprov.providers.paging`: EC2's MaxResults
#: counts instances, moto's counts reservations (each may hold up to 1000 instances), so the
#: pager learns how many instances a unit holds and asks for pages of about ``limit``.
LISTING_PAGES = paging.Pages(MIN_PAGE_SIZE, MAX_PAGE_SIZE, grouped=True)


def is_retryable(code: str, http_status: int) -> bool:
    """Whether an EC2 error reply may go away on its own: a transient code, a 5xx, a 429."""
    return code in RETRYABLE_CODES or http_status >= 500 or http_status == 429


def page_size(limit: int) -> int:
    """The DescribeInstances MaxResults for a page of ``limit``: EC2 takes 5 to 1000 only."""
    return max(MIN_PAGE_SIZE, min(MAX_PAGE_SIZE, limit))


def describe_filters(query: InstanceQuery) -> dict[str, list[str]]:
    """The DescribeInstances filters of a query: filter name -> values.

    EC2 joins the filters with AND and the values of one filter with OR. It takes one
    ``tag-key`` filter (its values OR'ed), so a second required key is ``tag:KEY`` = ``*``
    (any value); a key the query also filters by value needs no filter of its own.
    """
    filters: dict[str, list[str]] = {}
    if query.ids:
        filters["instance-id"] = list(query.ids)
    if query.states:
        filters["instance-state-name"] = list(query.states)  # launchprov's names are EC2's
    for key, values in query.tags.items():
        filters[f"tag:{key}"] = list(values)
    keys = [key for key in query.tag_keys if key not in query.tags]
    if keys:
        filters["tag-key"] = [keys[0]]
        for key in keys[1:]:
            filters[f"tag:{key}"] = ["*"]
    return filters


def root_volume(request: LaunchRequest, image_size: int | None = None) -> dict:
    """The ``Ebs`` of the root device's mapping: empty when the request leaves it alone.

    A type without a size keeps the image's size (``image_size``): EC2 would take it from the
    image's snapshot, but EC2-compatible endpoints (moto) want one or the other.
    """
    volume: dict = {}
    size = request.root_volume_size
    if size is None and request.root_volume_type is not None:
        size = image_size
    if size is not None:
        volume["VolumeSize"] = size
    if request.root_volume_type is not None:
        volume["VolumeType"] = request.root_volume_type
    return volume


def launch_tags(request: LaunchRequest) -> dict[str, str]:
    """The tags a launch applies: the caller's and launchprov's own (which win a clash)."""
    return {**request.tags, **request.system_tags}


#: Error codes whose message names one value of the launch: the request's field, and EC2's own
#: wording naming it as the caller wrote it. moto names an unknown key pair as a Python set
#: (``The keypair '{'me'}' does not exist.``).
NAMED_AS_WRITTEN: Mapping[str, tuple[str, str]] = {
    "InvalidKeyPair.NotFound": ("key_name", "The key pair '{}' does not exist"),
}


def as_written(error: Exception, request: LaunchRequest) -> Exception:
    """``error``, its message naming the request's value as the caller wrote it where
    :data:`NAMED_AS_WRITTEN` says how (else unchanged: any other error, an IdempotencyConflict
    too)."""
    if not isinstance(error, ProviderError) or error.code not in NAMED_AS_WRITTEN:
        return error
    field, message = NAMED_AS_WRITTEN[error.code]
    value = getattr(request, field)
    if value:
        error.message = message.format(value)
        error.args = (f"{error.provider}: {error.code}: {error.message}",)
    return error


def classified(
    provider: str,
    code: str,
    message: str,
    instance_id: str | None = None,
    action: str | None = None,
) -> Exception | None:
    """The launchprov exception an EC2 error code means, or None for a plain provider error.

    No such instance (for a call about ``instance_id``), a client token reused with other
    parameters, and a state that forbids ``action``.
    """
    if instance_id is not None and code in NOT_FOUND_CODES:
        return InstanceNotFound(provider, instance_id)
    if code in IDEMPOTENCY_CONFLICT_CODES:
        return IdempotencyConflict(provider, message or code)
    if action is not None and code in INVALID_STATE_CODES:
        return InvalidState(provider, instance_id or "", action, message or code)
    return None
