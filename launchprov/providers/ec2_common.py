"""What every EC2-backed adapter shares: id formats, filters, transient error codes."""

import re

from launchprov.providers.interface import InstanceQuery

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

#: EC2 error codes meaning "the instance's state forbids this".
INVALID_STATE_CODES = frozenset({"IncorrectInstanceState", "IncorrectState"})


def state_of(ec2_state: str | None) -> str:
    """launchprov's name for an EC2 state name; ``unknown`` for anything else."""
    return STATES.get(ec2_state or "", "unknown")


def is_retryable(code: str, http_status: int) -> bool:
    """Whether an EC2 error reply may go away on its own."""
    return code in RETRYABLE_CODES or http_status >= 500


def split_security_groups(groups) -> tuple[list[str], list[str]]:
    """Split security-group values into (names, ids): ``sg-`` + hex is an id, the rest names."""
    names = [group for group in groups if not SECURITY_GROUP_ID.match(group)]
    ids = [group for group in groups if SECURITY_GROUP_ID.match(group)]
    return names, ids


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
