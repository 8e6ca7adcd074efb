"""Every route in one place: its pattern and its operations. The OpenAPI paths are built from it.

A route is a URL pattern and the operations (one per HTTP method) it serves. An operation says
what the document needs to know beyond the pattern: its name, what it reads (``params``: a key
of :data:`launchprov.openapi.PARAMETERS`), what it answers with a 200 (``answer``: a key of
:data:`launchprov.openapi.ANSWERS`), the error statuses it may answer besides those of every
API operation, and whether it is open to every caller. Adding a route is one entry here and
its view.

A segment ``{name:a|b|c}`` serves one OpenAPI path per alternative; ``{name}`` in the
operation's id and summary is replaced by the alternative (``{Name}``: capitalised).
"""

from __future__ import annotations

from typing import NamedTuple

from launchprov.providers.interface import ACTIONS


class Operation(NamedTuple):
    method: str
    operation_id: str
    summary: str
    #: What it reads: a key of launchprov.openapi.PARAMETERS, or None for nothing.
    params: str | None = None
    #: Its 200 answer: a key of launchprov.openapi.ANSWERS.
    answer: str = "instance"
    #: Error statuses it may answer besides those every API operation may (400, 401, 429, 500).
    statuses: tuple[int, ...] = ()
    #: Open to every caller: no token, no rate limit, none of the API operations' errors.
    open: bool = False
    description: str = ""


class Route(NamedTuple):
    pattern: str
    operations: tuple[Operation, ...]

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(operation.method for operation in self.operations)


#: What the lease routes say besides the ownership rules.
LEASE_NOTE = (
    "Only for instances launched through launchprov (tag launchprov:caller; others are a 409). "
    "Bounded by launchprov.policy.max_expires_in and launchprov.policy.require_expiry (403). A "
    "provider that keeps no tags has no leases (400 naming expires_in)."
)

_ACTIONS = "|".join(action for action in ACTIONS if action != "terminate")  # terminate: DELETE

ROUTES: dict[str, Route] = {
    "index": Route(
        "/",
        (
            Operation(
                "GET",
                "index",
                "Where to start: this service's OpenAPI document and its documentation",
                answer="index",
                open=True,
            ),
        ),
    ),
    "launch": Route(
        "/v1/launch",
        (
            Operation(
                "PUT",
                "launch",
                "Launch instances of an AMI and instance type",
                params="launch",
                answer="ids",
                statuses=(403, 408, 409, 413, 415),
            ),
        ),
    ),
    "preflight": Route(
        "/v1/launch/preflight",
        (
            Operation(
                "POST",
                "preflight",
                "Whether a launch would succeed, launching nothing",
                params="launch",
                answer="preflight",
                statuses=(403, 408, 413, 415),
                description="Takes exactly the body of PUT /v1/launch, with the same validation "
                "(400) and policy (403). On EC2: RunInstances with DryRun, and named checks of "
                "the image, key pair, security groups, subnet and the instance type's offering "
                "in the zone. On Libcloud: the driver's parameter checks and its catalog "
                "lookups. A failed check carries the provider's error code. A provider that "
                "cannot be reached is a 408.",
            ),
        ),
    ),
    "instances": Route(
        "/v1/instances",
        (
            Operation(
                "GET",
                "listInstances",
                "List instances, filtered and paged",
                params="query",
                answer="page",
                statuses=(408,),
            ),
        ),
    ),
    "instance": Route(
        "/v1/instances/{id}",
        (
            Operation(
                "GET", "describeInstance", "Describe an instance", "target", "instance", (404, 408)
            ),
            Operation(
                "DELETE",
                "terminateInstance",
                "Terminate an instance (terminating twice is not an error)",
                "target",
                "instance",
                (403, 404, 408),
            ),
        ),
    ),
    "instance_expiry": Route(
        "/v1/instances/{id}/expiry",
        (
            Operation(
                "PUT",
                "setInstanceExpiry",
                "Set an instance's lease: it expires expires_in seconds from now",
                "expiry",
                "instance",
                (403, 404, 408, 409, 413, 415),
                description=LEASE_NOTE,
            ),
            Operation(
                "DELETE",
                "removeInstanceExpiry",
                "Remove an instance's lease: it no longer expires",
                "target",
                "instance",
                (403, 404, 408, 409),
                description=LEASE_NOTE,
            ),
        ),
    ),
    "instance_action": Route(
        f"/v1/instances/{{id}}/{{action:{_ACTIONS}}}",
        (
            Operation(
                "POST",
                "{action}Instance",
                "{Action} an instance",
                "target",
                "instance",
                (403, 404, 408, 409, 501),
            ),
        ),
    ),
    "openapi": Route(
        "/v1/openapi.json",
        (Operation("GET", "openapi", "This document", answer="document", open=True),),
    ),
    "healthz": Route(
        "/healthz",
        (
            Operation(
                "GET",
                "liveness",
                "Liveness: the process answers (no provider call)",
                answer="alive",
                open=True,
            ),
        ),
    ),
    "readyz": Route(
        "/readyz",
        (
            Operation(
                "GET",
                "readiness",
                "Readiness: whether the provider answers (at most one call per period)",
                answer="ready",
                statuses=(503,),
                open=True,
            ),
        ),
    ),
    "metrics": Route(
        "/metrics",
        (
            Operation(
                "GET",
                "metrics",
                "Prometheus metrics in the text exposition format",
                answer="metrics",
                open=True,
            ),
        ),
    ),
}


#: The routes open to every caller: no token, no rate limit.
OPEN_ROUTES = frozenset(
    name for name, route in ROUTES.items() if all(operation.open for operation in route.operations)
)


def includeme(config):
    for name, route in ROUTES.items():
        config.add_route(name, route.pattern)
