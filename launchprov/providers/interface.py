"""The provider contract: what views may ask of a cloud backend, in plain launchprov values.

Nothing here knows HTTP or any SDK. Adapters implement :class:`IProvider`, return plain values
and turn every failure of their SDK into a :class:`ProviderError`.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from zope.interface import Attribute, Interface

from launchprov.placement import region_or_name


@dataclasses.dataclass(frozen=True, slots=True)
class Alternative:
    """One entry of a launch's ``fallback``: the fields it replaces (None: the request's own)."""

    instance_type: str | None = None
    placement: str | None = None
    subnet_id: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class LaunchRequest:
    """A validated request to launch instances.

    Every field holds a value: the caller's, or the default. The deployment's defaults
    (``key_name``, ``security_groups``, ``placement``: ``launchprov.defaults.*``, else the
    cloud's own: the seed's on EC2) belong to the settings and the cloud, not to this
    contract, so those fields have none here and are given by keyword; None: nobody gave one,
    the parameter is not sent and the cloud chooses.
    ``explicit`` names the fields the caller gave, so that an adapter can refuse a parameter it
    cannot honour when (and only when) the caller asked for it.
    """

    ami: str
    instance_type: str
    min_count: int = 1
    max_count: int = 1
    key_name: str | None = dataclasses.field(kw_only=True)
    security_groups: tuple[str, ...] | None = dataclasses.field(kw_only=True)
    user_data: str | None = None
    placement: str | None = dataclasses.field(kw_only=True)
    placement_group: str | None = None
    instance_initiated_shutdown_behavior: str = "terminate"
    ebs_optimized: bool = False
    #: Tags applied to every launched instance at launch (EC2's rules, checked by the schema).
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    #: The caller's idempotency token: a retry with the same token launches nothing new.
    client_token: str | None = None
    #: A VPC subnet (``subnet-`` + hex). With it, the zone is the subnet's: ``placement`` is
    #: sent only when the caller gave it.
    subnet_id: str | None = None
    #: An IAM instance profile: its name, or its ARN.
    iam_instance_profile: str | None = None
    #: The root volume's size (GiB) and type, on the image's root device.
    root_volume_size: int | None = None
    root_volume_type: str | None = None
    #: The instance metadata service: ``required`` (IMDSv2, session tokens) or ``optional``.
    metadata_tokens: str = "required"
    spot: bool = False
    #: Alternatives tried in order when the launch fails for want of capacity.
    fallback: tuple[Alternative, ...] = ()
    #: Seconds until the instances expire (a lease: tag launchprov:expires-at), or None.
    expires_in: int | None = None
    #: launchprov's own tags (``launchprov:*``: caller, request id, client token). An adapter
    #: that can tag applies them with ``tags``; one that cannot tag leaves them out.
    system_tags: dict[str, str] = dataclasses.field(default_factory=dict)
    explicit: frozenset[str] = frozenset()

    @property
    def region(self) -> str:
        """The EC2 region of ``placement`` (``us-east-1b`` -> ``us-east-1``).

        A placement that is not an availability-zone name (another cloud's location, such as
        ``eastus``, which only a provider with ``placement_is_zone`` false accepts) is its own
        region. Without a placement (the cloud chooses): "".
        """
        return region_or_name(self.placement)

    @property
    def zone(self) -> str | None:
        """The availability zone the launch names, or None when its subnet decides."""
        if self.subnet_id is not None and "placement" not in self.explicit:
            return None
        return self.placement

    @property
    def offering(self) -> tuple[str, str]:
        """(instance type, where): where is the zone, or the subnet when the subnet decides
        the zone. What a capacity error is remembered for."""
        return self.instance_type, self.zone or self.subnet_id


#: The LaunchRequest fields beyond the seed's eleven parameters (and tags, client_token).
BEYOND_SEED = (
    "subnet_id",
    "iam_instance_profile",
    "root_volume_size",
    "root_volume_type",
    "metadata_tokens",
    "spot",
    "fallback",
)

#: EC2's volume types, for ``root_volume_type``.
VOLUME_TYPES = ("gp3", "gp2", "io1", "io2", "st1", "sc1", "standard")
#: ``metadata_tokens``: IMDSv2 only, or IMDSv1 allowed too.
METADATA_TOKENS = ("required", "optional")


#: The one vocabulary of instance states, on every provider. Adapters map their own states into
#: it in one table each.
STATES = ("pending", "running", "stopping", "stopped", "shutting-down", "terminated", "unknown")

#: The actions of POST /v1/instances/{id}/{action} (and terminate, DELETE).
ACTIONS = ("terminate", "stop", "start", "reboot")

#: The states in which an action is done already: a repeated action (a retry after a 408 whose
#: outcome was unknown) finds its instance there and answers it without a call. A start is
#: sent again to a running instance (EC2 accepts it, and the recorded clouds' drivers send it),
#: a reboot always.
DONE_STATES = {
    "terminate": frozenset({"terminated"}),
    "stop": frozenset({"stopped"}),
    "start": frozenset(),
    "reboot": frozenset(),
}


#: The states an action cannot start from: EC2's rules, applied by every adapter before it acts,
#: so that every provider answers alike (moto, for one, would start a terminated instance).
#: Terminate is allowed from every state: terminating twice is not an error. An ``unknown``
#: instance (a state the provider's table does not name) may be in any state: only terminating
#: it is safe.
FORBIDDEN_STATES = {
    "terminate": frozenset(),
    "stop": frozenset({"shutting-down", "terminated", "unknown"}),
    "start": frozenset({"stopping", "shutting-down", "terminated", "unknown"}),
    "reboot": frozenset({"stopping", "stopped", "shutting-down", "terminated", "unknown"}),
}


@dataclasses.dataclass(frozen=True, slots=True)
class Instance:
    """An instance as every provider describes it; None where the provider does not know."""

    id: str
    state: str
    instance_type: str | None = None
    ami: str | None = None
    placement: str | None = None
    key_name: str | None = None
    security_groups: tuple[str, ...] = ()
    private_ip: str | None = None
    public_ip: str | None = None
    private_dns: str | None = None
    public_dns: str | None = None
    #: Timezone-aware, UTC.
    launch_time: datetime | None = None
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    subnet_id: str | None = None
    #: As the provider reports it (EC2: the profile's ARN).
    iam_instance_profile: str | None = None
    spot: bool | None = None
    metadata_tokens: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class InstanceQuery:
    """Which instances to list, and which page of them.

    Filters combine with AND; the values of one filter with OR (``states=("running",
    "pending")``). ``tags`` maps a tag key to the values it may have.
    """

    region: str
    ids: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    tags: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    #: Tag keys the instances must carry, whatever their values (``launchprov:caller``).
    tag_keys: tuple[str, ...] = ()
    limit: int = 100
    #: The ``next`` token of the previous page, as the adapter made it; None for the first.
    page_token: str | None = None
    #: A key of ``tags`` with one value: concurrent first-page queries that differ only in that
    #: value may be answered by one provider call for all their values (an adapter that
    #: batches; the client-token lookups of concurrent launches).
    batch_by: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class InstancePage:
    instances: list[Instance]
    #: An opaque token for the following page, or None when this page is the last.
    next_token: str | None


#: ``ProviderError.outcome`` says whether the failed call may have changed something at the
#: provider: launched instances, or carried out an action (terminate, stop, start, reboot, a
#: tag change). ``none``: it cannot have (it changes nothing, the provider refused it, or it
#: never reached the provider).
OUTCOME_NONE = "none"
#: ``unknown``: a call that may have been carried out: a time-out or a connection dropped after
#: the request was sent, a reply that could not be read, the request deadline. A launch may have
#: started instances; an action may have happened (``ProviderError.operation`` names it).
OUTCOME_UNKNOWN = "unknown"
#: ``partial``: a launch that one create call per instance could not finish by the request
#: deadline. The instances of ``ProviderError.instances`` were created and are kept, tagged as
#: the request says (a client-token retry answers them, the reaper ends their lease); no create
#: is sent after the deadline, but one sent before it may still add an instance.
OUTCOME_PARTIAL = "partial"
#: The outcomes that may have left instances behind.
OUTCOMES_LAUNCHED = frozenset({OUTCOME_UNKNOWN, OUTCOME_PARTIAL})
#: The operations of :class:`IProvider` that only read: failed after their request may have
#: reached the provider, they changed nothing there (outcome ``none``). Every other operation
#: -- launch, the actions, tag changes, and a new one until it is listed here -- may have
#: changed something: its outcome is ``unknown``.
READING_OPERATIONS = frozenset({"describe", "list_instances", "preflight", "ping"})


class ProviderError(Exception):
    """A provider call failed: an error reply, a refused connection, a time-out, a bad reply.

    ``code`` is the provider's own error code where it gave one (``InvalidAMIID.NotFound``),
    otherwise one of the transport codes below. ``retryable`` says whether the same call may
    succeed later.
    """

    #: The endpoint could not be reached (refused connection, DNS failure, reset).
    UNREACHABLE = "EndpointUnreachable"
    #: The endpoint did not answer within the configured time-out.
    TIMEOUT = "Timeout"
    #: The endpoint answered with something that could not be parsed.
    MALFORMED_RESPONSE = "MalformedResponse"
    #: No usable credentials were found, or the provider refused them.
    AUTH_FAILURE = "AuthFailure"
    #: The SDK failed in a way it does not classify (a bug in it, or a reply it choked on).
    UNEXPECTED = "UnexpectedProviderError"
    #: The codes above: the provider could not be asked, or its answer not read.
    TRANSPORT_CODES = frozenset(
        {UNREACHABLE, TIMEOUT, MALFORMED_RESPONSE, AUTH_FAILURE, UNEXPECTED}
    )

    def __init__(
        self,
        provider: str,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        outcome: str = OUTCOME_NONE,
        retry_after: float | None = None,
        instances: tuple[str, ...] = (),
        operation: str | None = None,
    ):
        super().__init__(f"{provider}: {code}: {message}")
        self.provider = provider
        self.code = code
        self.message = message
        self.retryable = retryable
        self.outcome = outcome
        #: Seconds the provider itself asked to wait (its Retry-After), or None.
        self.retry_after = retry_after
        #: The ids of the instances the failed launch is known to have created (``partial``).
        self.instances = tuple(instances)
        #: The operation whose ``outcome`` is ``unknown`` when it is not a launch (``stop``,
        #: ``terminate``, ...); None for a launch, or an outcome that is ``none``.
        self.operation = operation


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    """One check of a pre-flight: what was checked, whether it passed, and if not, the
    provider's error code and message."""

    name: str
    ok: bool
    code: str | None = None
    message: str | None = None


#: Error codes that mean "this offering (instance type, zone) is out of capacity": EC2's (the
#: libcloud adapter reports every other cloud's capacity replies as InsufficientInstanceCapacity).
#: A launch with a fallback tries its next alternative on these, and on nothing else.
CAPACITY_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity",
        "Unsupported",  # EC2: the instance type is not offered in that zone
        "InsufficientCapacity",
    }
)


class UnsupportedParameters(Exception):
    """The caller explicitly set parameters that the active provider cannot honour.

    ``reasons`` maps each parameter name to why it cannot be honoured. Raised before any call
    to the provider is made.
    """

    def __init__(self, provider: str, reasons: dict[str, str]):
        super().__init__(f"{provider} cannot honour: {', '.join(sorted(reasons))}")
        self.provider = provider
        self.reasons = dict(reasons)


class InstanceNotFound(Exception):
    """The provider does not know an instance of that id (in that region)."""

    def __init__(self, provider: str, instance_id: str, message: str | None = None):
        super().__init__(message or f"no instance {instance_id}")
        self.provider = provider
        self.instance_id = instance_id
        self.message = message or f"the {provider} provider knows no instance {instance_id}"


class ActionNotSupported(Exception):
    """The active provider cannot perform an action at all (the dummy driver cannot stop)."""

    def __init__(self, provider: str, action: str, reason: str):
        super().__init__(f"{provider} cannot {action}: {reason}")
        self.provider = provider
        self.action = action
        self.reason = reason


class InvalidState(Exception):
    """The instance's state forbids the action (starting a terminated instance)."""

    def __init__(self, provider: str, instance_id: str, action: str, message: str):
        super().__init__(message)
        self.provider = provider
        self.instance_id = instance_id
        self.action = action
        self.message = message


def needs_call(provider: str, instance: Instance, action: str) -> bool:
    """Whether ``action`` must reach the provider: not when ``instance`` is in its
    :data:`DONE_STATES` already (a retry finds it done); :class:`InvalidState` when its state
    forbids the action."""
    if instance.state in DONE_STATES[action]:
        return False
    ensure_allowed(provider, instance, action)
    return True


def ensure_allowed(provider: str, instance: Instance, action: str) -> None:
    """Raise :class:`InvalidState` when ``instance``'s state forbids ``action``."""
    if instance.state in FORBIDDEN_STATES[action]:
        raise InvalidState(
            provider,
            instance.id,
            action,
            f"cannot {action} instance {instance.id}: it is {instance.state}",
        )


class IdempotencyConflict(Exception):
    """A client token already launched instances with other parameters."""

    def __init__(self, provider: str, message: str):
        super().__init__(message)
        self.provider = provider
        self.message = message


class InvalidPageToken(Exception):
    """A ``next`` token that this provider did not make (or that was altered)."""


class IProvider(Interface):
    """A cloud backend that launches instances.

    Optionally, ``cloud_defaults``: the cloud's own ``key_name``, ``security_groups`` and
    ``placement``, used where ``launchprov.defaults.*`` leaves one unset (the EC2 adapters
    declare the seed's). Without it, an unset default is not sent: the field is None.
    """

    name = Attribute("Short name shown to callers in error bodies, e.g. 'ec2' or 'libcloud'.")
    instance_id_pattern = Attribute(
        "A compiled regex that every instance id must match, or None for no fixed format."
    )
    image_id_pattern = Attribute(
        "A compiled regex that every image id must match, or None when the backend has no "
        "fixed format. Used by request validation, so a malformed id is a 400, not a 408."
    )

    can_tag = Attribute(
        "Whether the provider keeps tags on instances: launchprov's records (caller, client "
        "token, lease) live in them. Without tags there are no leases."
    )
    reports_capacity = Attribute(
        "Whether the provider tells an out-of-capacity failure apart from others (a "
        "ProviderError whose code is in CAPACITY_CODES): only then can a launch's fallback "
        "be tried, so without it a fallback is refused by name."
    )

    def launch(request):
        """Launch instances for a :class:`LaunchRequest`; return their ids as a list of str.

        Launches at least ``min_count`` and at most ``max_count`` instances, or none. Raises
        :class:`UnsupportedParameters` before any call when the request explicitly sets a
        parameter the backend cannot honour, and :class:`ProviderError` on any failure of the
        backend.
        """

    def preflight(request):
        """Whether ``request`` would launch, launching nothing: a list of :class:`Check`.

        Raises :class:`UnsupportedParameters` as ``launch`` does, and :class:`ProviderError`
        when the provider cannot be asked (unreachable, timed out, unreadable reply); an error
        the provider answers is a failed check, not an exception.
        """

    def ping(timeout):
        """Make one cheap call to the provider, bounded by ``timeout`` seconds (readiness).

        Returns None when the provider answered; raises :class:`ProviderError` otherwise.
        """

    def describe(instance_id, region):
        """The :class:`Instance` of that id; :class:`InstanceNotFound` if it is unknown."""

    def list_instances(query):
        """One :class:`InstancePage` of the instances that match an :class:`InstanceQuery`.

        Follows the provider's own pages: never stops at the first, never gives an instance
        twice across the pages of one listing. A ``page_token`` this provider did not make
        raises :class:`InvalidPageToken`.
        """

    def terminate(instance_id, region):
        """Terminate an instance; return the :class:`Instance` as it is after the call.

        Terminating an instance that is already terminated succeeds without a call (so does
        stopping a stopped one: :data:`DONE_STATES`), so a retry after an ``unknown`` outcome is
        safe. Raises :class:`InstanceNotFound` or
        :class:`ProviderError`.
        """

    def stop(instance_id, region):
        """Stop an instance; return it as it is after the call.

        Raises :class:`InstanceNotFound`, :class:`ActionNotSupported` (the provider cannot stop
        at all), :class:`InvalidState` (the instance's state forbids it) or
        :class:`ProviderError`.
        """

    def start(instance_id, region):
        """Start a stopped instance; return it as it is after the call. Raises as ``stop``."""

    def reboot(instance_id, region):
        """Reboot an instance; return it as it is after the call. Raises as ``stop``."""

    def terminate_many(instance_ids, region):
        """Terminate up to 1000 instances of one region in one call (the reaper's batches).

        Returns a dict: id -> True when this call began the instance's termination, False when
        it was shutting down or terminated already (another reaper's work: EC2's answer says so
        in each instance's previous state); an id the provider does not answer for is left
        out. Instances already terminated are no error. Raises :class:`InstanceNotFound` or
        :class:`ProviderError` when the call fails as a whole.
        """

    def tag(instance_id, region, tags):
        """Set ``tags`` (a dict) on an instance, replacing the values of keys it has.

        Raises :class:`InstanceNotFound`, :class:`ActionNotSupported` (``can_tag`` is false)
        or :class:`ProviderError`.
        """

    def untag(instance_id, region, keys):
        """Remove the tags of ``keys`` from an instance (a key it has not is no error).
        Raises as :meth:`tag`."""
