"""The Apache Libcloud adapter: launches through any libcloud compute driver.

``launchprov.libcloud.driver`` names the driver (``ec2``, ``dummy``, ``openstack``, ...). The
module is not called ``libcloud`` so that it cannot shadow the library.

How launch parameters reach the driver
--------------------------------------

Each driver has one table, :data:`EC2_PARAMETERS`, :data:`DUMMY_PARAMETERS` (the generic
table, with tags) or :data:`GENERIC_PARAMETERS`. A parameter
missing from a driver's table cannot be honoured by it: when the caller set it explicitly the
launch is refused with :class:`UnsupportedParameters` before any call; a default the caller did
not set simply does not apply.

EC2 driver (one ``create_node`` call, which is one RunInstances)::

    ami                                  image: NodeImage(id=ami), not looked up, so that EC2
                                         itself validates it
    instance_type                        size: NodeSize(id=instance_type), not looked up
    min_count                            ex_mincount (MinCount)
    max_count                            ex_maxcount (MaxCount)
    key_name                             ex_keyname (KeyName)
    security_groups                      ex_security_groups (SecurityGroup.N, names only: the
                                         driver takes sg- ids only with a subnet, so ids are
                                         refused)
    user_data                            ex_userdata (UserData; libcloud does the base64)
    placement                            location: EC2NodeLocation of the availability zone,
                                         built without DescribeAvailabilityZones; the driver
                                         is the one of the zone's region
    placement_group                      ex_placement_group (Placement.GroupName)
    instance_initiated_shutdown_behavior ex_terminate_on_shutdown: terminate -> True;
                                         stop -> False, which sends nothing (EC2's default)
    ebs_optimized                        ex_ebs_optimized: "true" when set, else not sent
    tags                                 ex_metadata (TagSpecification.1, ResourceType
                                         instance): exactly the caller's tags. libcloud also
                                         tags every instance Name=<name>, so a caller's Name
                                         tag goes as ``name``; without one the driver is given
                                         :data:`UNNAMED`, whose tag :class:`TolerantEC2Connection`
                                         removes from the request (the other tags renumbered
                                         from 1; no TagSpecification at all when none remain)

Every other driver (``create_node(name, size, image)``, once per instance)::

    ami                                  image: NodeImage(id=ami)
    instance_type                        size: NodeSize(id=instance_type)
    min_count, max_count                 create_node is called up to max_count times and stops
                                         at the first failure; with fewer than min_count
                                         created, those are destroyed and the launch fails
                                         (code PartialLaunch)

They name every node ``launchprov`` (:data:`NODE_NAME`) and cannot honour tags.

The life of an instance
-----------------------

``terminate``, ``stop``, ``start`` and ``reboot`` describe the instance first, refuse what its
state forbids (:func:`~launchprov.providers.interface.ensure_allowed`, before any call: moto
would start a terminated instance), make one call, and describe it again. Terminating a
terminated instance makes no call. ::

    action     EC2 driver (one request)   every other driver (NodeDriver method)
    describe   DescribeInstances, Filter  list_nodes, found by id
               instance-id
    list       DescribeInstances, Filters list_nodes, filtered here, in the driver's order
               instance-id, instance-
               state-name, tag:KEY; paged
    terminate  TerminateInstances         destroy_node
    stop       StopInstances              stop_node
    start      StartInstances             start_node
    reboot     RebootInstances            reboot_node

libcloud's ``list_nodes`` is not used for EC2: it ignores NextToken (it stops at the first
page) and makes a DescribeAddresses call besides. Pages are cut by
:func:`launchprov.providers.paging.page` out of DescribeInstances pages of MaxResults =
limit, within EC2's 5..1000. EC2 errors ``InvalidInstanceID.NotFound``/``.Malformed`` become
:class:`InstanceNotFound`, ``IncorrectInstanceState``/``IncorrectState``
:class:`InvalidState`.

Whether a call succeeded: an EC2 error reply raises :class:`EC2ErrorReply`, so an HTTP 200
reply IS EC2 accepting the call, whether or not it carries ``<return>`` (moto's
RebootInstances reply does not, and libcloud's ``reboot_node`` reads that as False); only an
explicit ``<return>false</return>`` is a refusal (code ActionRefused, not retryable). Another
driver's method answering False is a refusal too (ActionRefused, retryable: its drivers give no
reason). A driver without the method (libcloud's NodeDriver raises NotImplementedError for it)
gives :class:`ActionNotSupported`: the dummy driver cannot stop or start.

States, one table per driver kind: the EC2 driver reads EC2's own state name
(``extra["status"]``; libcloud's NODE_STATE_MAP makes stopping and shutting-down UNKNOWN) and
maps it with :data:`launchprov.providers.ec2_common.STATES`, which the boto3 adapter shares;
every other driver's libcloud NodeState is mapped by :data:`NODE_STATES`.

The dummy driver
----------------

``dummy`` is :class:`CloudlikeDummyNodeDriver`: libcloud's DummyNodeDriver with ids from a
counter (libcloud's are len(nodes) + 1, and repeat after a destroy), the image and size a node
was created with, a launch time, and destroyed nodes kept, terminated, as EC2 keeps terminated
instances visible.

The EC2 driver's fixes (moto's namespace, Name tags) and the dummy driver launchprov uses
instead of libcloud's are in :mod:`launchprov.providers.libcloud_drivers`.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests.exceptions
import urllib3.exceptions
from libcloud.common import base as libcloud_base
from libcloud.common.exceptions import BaseHTTPError
from libcloud.common.types import InvalidCredsError, MalformedResponseError
from libcloud.common.types import ProviderError as LibcloudProviderError
from libcloud.compute.base import Node, NodeDriver, NodeImage, NodeSize
from libcloud.compute.drivers.ec2 import (
    NAMESPACE,
    EC2NodeLocation,
    ExEC2AvailabilityZone,
)
from libcloud.compute.providers import get_driver
from libcloud.compute.types import NodeState
from libcloud.utils.xml import findall, findtext
from zope.interface import implementer

from launchprov.placement import region_of
from launchprov.providers import paging
from launchprov.providers.ec2_common import (
    IDEMPOTENCY_CONFLICT_CODES,
    IMAGE_ID,
    INSTANCE_ID,
    INVALID_STATE_CODES,
    NOT_FOUND_CODES,
    describe_filters,
    is_retryable,
    split_security_groups,
    state_of,
)
from launchprov.providers.interface import (
    OUTCOME_NONE,
    OUTCOME_UNKNOWN,
    ActionNotSupported,
    IdempotencyConflict,
    Instance,
    InstanceNotFound,
    InstancePage,
    InstanceQuery,
    InvalidState,
    IProvider,
    LaunchRequest,
    ProviderError,
    UnsupportedParameters,
    ensure_allowed,
)
from launchprov.providers.libcloud_drivers import (
    DRIVER_CLASSES,
    EC2ErrorReply,
    TolerantEC2NodeDriver,
    as_list,
    summarise_body,
)
from launchprov.settings import ConfigurationError

NAME = "libcloud"
log = logging.getLogger(__name__)

#: The node name given to the create_node of every driver but EC2.
NODE_NAME = "launchprov"

#: The code of a ProviderError raised when fewer than min_count nodes could be created one by
#: one; those that were created have been destroyed.
PARTIAL_LAUNCH = "PartialLaunch"

#: The code of a ProviderError raised when a provider answers an action with a refusal.
ACTION_REFUSED = "ActionRefused"

#: How each action is performed: the NodeDriver method of a driver other than EC2, and the
#: EC2 API call the EC2 driver sends.
ACTION_CALLS = {
    "terminate": ("destroy_node", "TerminateInstances"),
    "stop": ("stop_node", "StopInstances"),
    "start": ("start_node", "StartInstances"),
    "reboot": ("reboot_node", "RebootInstances"),
}

#: libcloud's node states (of every driver but EC2) in launchprov's vocabulary.
NODE_STATES = {
    NodeState.RUNNING: "running",
    NodeState.STARTING: "pending",
    NodeState.PENDING: "pending",
    NodeState.REBOOTING: "running",  # as EC2: a rebooting instance stays running
    NodeState.STOPPING: "stopping",
    NodeState.STOPPED: "stopped",
    NodeState.SUSPENDED: "stopped",  # not running, and can be resumed
    NodeState.PAUSED: "stopped",
    NodeState.TERMINATED: "terminated",
    NodeState.ERROR: "unknown",
    NodeState.UNKNOWN: "unknown",
    NodeState.MIGRATING: "running",  # moved (live) to another host
    NodeState.RECONFIGURING: "running",  # resized or in maintenance, not stopped
    # Being rebuilt or updated (Linode, Azure), to come back up: on its way, like pending.
    NodeState.UPDATING: "pending",
    # No driver of libcloud 3.9 reports it, and it says nothing about running.
    NodeState.NORMAL: "unknown",
}

#: Drivers that keep their state in the driver instance, so one instance must serve every
#: thread. The dummy driver holds its nodes in a list on the instance: a driver per thread
#: would give each thread its own cloud, and a node created by one could not be seen, or
#: destroyed, by another.
SHARED_DRIVERS = frozenset({"dummy"})

#: The settings passed to every driver's constructor, and the keyword each one becomes.
_CONSTRUCTOR_SETTINGS = {
    "secret": "launchprov.libcloud.secret",
    "secure": "launchprov.libcloud.secure",
    "host": "launchprov.libcloud.host",
    "port": "launchprov.libcloud.port",
    "timeout": "launchprov.libcloud.timeout",
    "region": "launchprov.libcloud.region",
}


# -- parameter tables -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Mapped:
    """How one LaunchRequest field reaches a driver.

    ``argument`` is the create_node keyword it becomes, and ``convert(driver, request)`` its
    value; ``argument`` is None when the adapter uses the field itself (the counts of a driver
    that creates nodes one by one).
    """

    argument: str | None
    doc: str
    convert: Callable[[NodeDriver, LaunchRequest], Any] | None = None


def _image(driver: NodeDriver, request: LaunchRequest) -> NodeImage:
    return NodeImage(id=request.ami, name=None, driver=driver)


def _size(driver: NodeDriver, request: LaunchRequest) -> NodeSize:
    return NodeSize(
        id=request.instance_type,
        name=request.instance_type,
        ram=0,
        disk=0,
        bandwidth=None,
        price=None,
        driver=driver,
    )


def _location(driver: NodeDriver, request: LaunchRequest) -> EC2NodeLocation:
    # The driver refuses a zone whose region_name is not its own; the driver is that region's.
    zone = ExEC2AvailabilityZone(request.placement, "available", request.region)
    return EC2NodeLocation(
        id=request.placement,
        name=request.placement,
        country="",
        driver=driver,
        availability_zone=zone,
    )


_TERMINATE_ON_SHUTDOWN = {"terminate": True, "stop": False}


def _terminate_on_shutdown(driver: NodeDriver, request: LaunchRequest) -> bool:
    behaviour = request.instance_initiated_shutdown_behavior
    if behaviour not in _TERMINATE_ON_SHUTDOWN:
        raise UnsupportedParameters(
            NAME,
            {
                "instance_initiated_shutdown_behavior": (
                    f"the ec2 driver knows only {', '.join(_TERMINATE_ON_SHUTDOWN)}"
                )
            },
        )
    return _TERMINATE_ON_SHUTDOWN[behaviour]


#: The EC2 driver: every parameter, in one create_node call.
EC2_PARAMETERS: dict[str, Mapped] = {
    "ami": Mapped("image", "NodeImage(id=ami), not looked up: EC2 validates it", _image),
    "instance_type": Mapped("size", "NodeSize(id=instance_type), not looked up", _size),
    "min_count": Mapped("ex_mincount", "MinCount", lambda d, r: r.min_count),
    "max_count": Mapped("ex_maxcount", "MaxCount", lambda d, r: r.max_count),
    "key_name": Mapped("ex_keyname", "KeyName", lambda d, r: r.key_name),
    "security_groups": Mapped(
        "ex_security_groups",
        "SecurityGroup.N: names only (sg- ids are refused: the driver needs a subnet for them)",
        lambda d, r: list(r.security_groups),
    ),
    "user_data": Mapped(
        "ex_userdata", "UserData, base64-encoded by libcloud", lambda d, r: r.user_data
    ),
    "placement": Mapped(
        "location", "EC2NodeLocation of the zone, with the zone's region", _location
    ),
    "placement_group": Mapped(
        "ex_placement_group", "Placement.GroupName", lambda d, r: r.placement_group
    ),
    "instance_initiated_shutdown_behavior": Mapped(
        "ex_terminate_on_shutdown",
        "terminate -> True; stop -> False, which sends nothing: EC2's default is stop",
        _terminate_on_shutdown,
    ),
    # libcloud sends the value as given, and a Python True would go out as "True".
    "ebs_optimized": Mapped(
        "ex_ebs_optimized",
        "EbsOptimized=true when set, else not sent",
        lambda d, r: "true" if r.ebs_optimized else None,
    ),
    # A Name tag also goes as create_node's name: see _launch_ec2.
    "tags": Mapped(
        "ex_metadata",
        "TagSpecification.1: exactly these tags, and launchprov's own",
        lambda d, r: {**r.tags, **r.system_tags},
    ),
    "client_token": Mapped("ex_clienttoken", "ClientToken", lambda d, r: r.client_token),
}

#: Every other driver: create_node(name, size, image), called once per node.
GENERIC_PARAMETERS: dict[str, Mapped] = {
    "ami": Mapped("image", "NodeImage(id=ami), not looked up", _image),
    "instance_type": Mapped("size", "NodeSize(id=instance_type), not looked up", _size),
    "min_count": Mapped(
        None, "fewer than min_count created: those created are destroyed, the launch fails"
    ),
    "max_count": Mapped(None, "create_node is called up to max_count times, one node each"),
}


#: launchprov's dummy driver: the generic parameters, and tags (it is launchprov's test double
#: for a tagging cloud, so that the whole contract can run against it).
DUMMY_PARAMETERS: dict[str, Mapped] = {
    **GENERIC_PARAMETERS,
    "tags": Mapped(
        "ex_metadata",
        "kept in node.extra['tags'], with launchprov's own",
        lambda d, r: {**r.tags, **r.system_tags},
    ),
    "client_token": Mapped(None, "no native token: idempotent through the tag lookup alone"),
}


def parameters_of(driver_name: str) -> dict[str, Mapped]:
    """The parameter table of a driver."""
    return {"ec2": EC2_PARAMETERS, "dummy": DUMMY_PARAMETERS}.get(driver_name, GENERIC_PARAMETERS)


# -- errors ---------------------------------------------------------------------------------


def _transport_reason(exc: Exception) -> Exception:
    """The urllib3 error inside a requests error: the one that says what went wrong.

    requests' own message repeats the whole URL, which for EC2 holds every query parameter,
    user data included; the inner error names only host and port.
    """
    reason = exc.args[0] if exc.args and isinstance(exc.args[0], Exception) else exc
    if isinstance(reason, urllib3.exceptions.MaxRetryError) and reason.reason is not None:
        reason = reason.reason
    return reason


def _is_timeout(exc: Exception) -> bool:
    if isinstance(exc, requests.exceptions.Timeout | TimeoutError):  # socket.timeout too
        return True
    if not isinstance(exc, requests.exceptions.ConnectionError):
        return False
    # A read that times out while the body streams in comes out as ConnectionError. urllib3's
    # NewConnectionError (a refused connection) subclasses ConnectTimeoutError: not a time-out.
    reason = _transport_reason(exc)
    return isinstance(reason, urllib3.exceptions.TimeoutError) and not isinstance(
        reason, urllib3.exceptions.NewConnectionError
    )


def provider_error(exc: Exception | None) -> ProviderError:
    """Translate anything a libcloud driver raises into a ProviderError."""
    if isinstance(exc, EC2ErrorReply):
        retryable = is_retryable(exc.error_code, exc.status)
        return ProviderError(NAME, exc.error_code, exc.message, retryable=retryable)
    if isinstance(exc, InvalidCredsError):
        return ProviderError(NAME, ProviderError.AUTH_FAILURE, str(exc.value), retryable=False)
    if isinstance(exc, MalformedResponseError):
        message = f"{exc.value}: {summarise_body(exc.body)}"
        return ProviderError(NAME, ProviderError.MALFORMED_RESPONSE, message, retryable=True)
    if isinstance(exc, BaseHTTPError):  # other drivers' error replies: only a status to go by
        status = int(exc.code or 0)
        retryable = status >= 500 or status == 429
        return ProviderError(NAME, f"HTTP{status}", str(exc), retryable=retryable)
    if isinstance(exc, LibcloudProviderError) and exc.http_code:
        status = int(exc.http_code)
        retryable = status >= 500 or status == 429
        return ProviderError(NAME, f"HTTP{status}", str(exc.value), retryable=retryable)
    if _is_timeout(exc):
        message = str(_transport_reason(exc)) or type(exc).__name__
        return ProviderError(NAME, ProviderError.TIMEOUT, message, retryable=True)
    if isinstance(
        exc,
        requests.exceptions.ConnectionError
        | requests.exceptions.ChunkedEncodingError
        | ConnectionError
        | socket.gaierror,
    ):
        message = str(_transport_reason(exc)) or type(exc).__name__
        return ProviderError(NAME, ProviderError.UNREACHABLE, message, retryable=True)
    return ProviderError(NAME, ProviderError.UNEXPECTED, f"{type(exc).__name__}: {exc}")


def launch_outcome(exc: Exception | None) -> str:
    """Whether a failed create_node may have launched instances (ProviderError.outcome).

    Known to have launched nothing: an error reply (EC2's, or another cloud's HTTP status),
    refused credentials, a connection that could not be made (refused, unknown host, connect
    time-out). Anything else -- no reply in time, a connection dropped after sending, a reply
    that could not be read -- may have.
    """
    if isinstance(exc, EC2ErrorReply | InvalidCredsError | BaseHTTPError):
        return OUTCOME_NONE
    if isinstance(exc, LibcloudProviderError) and exc.http_code:
        return OUTCOME_NONE
    if isinstance(
        exc, requests.exceptions.ConnectTimeout | socket.gaierror | ConnectionRefusedError
    ):
        return OUTCOME_NONE
    if isinstance(exc, requests.exceptions.ConnectionError) and isinstance(
        _transport_reason(exc), urllib3.exceptions.NewConnectionError | socket.gaierror
    ):
        return OUTCOME_NONE
    return OUTCOME_UNKNOWN


def launch_error(exc: Exception | None) -> ProviderError:
    """The ProviderError of a failed create_node, saying whether it may have launched."""
    error = provider_error(exc)
    error.outcome = launch_outcome(exc)
    return error


def node_ids(created) -> list[str]:
    """The ids of what create_node returned."""
    return [str(node.id) for node in as_list(created)]


# -- instances ------------------------------------------------------------------------------


def _first(values) -> str | None:
    return values[0] if values else None


def _utc(moment: datetime | None) -> datetime | None:
    """A timezone-aware UTC datetime; a naive one is taken to be UTC already."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def ec2_instance(node: Node) -> Instance:
    """The Instance of a node the EC2 driver parsed from a DescribeInstances reply."""
    extra = node.extra
    # libcloud keeps "" for an empty element (<keyName/>): unknown.
    text = {key: value or None for key, value in extra.items() if isinstance(value, str)}
    return Instance(
        id=node.id,
        state=state_of(text.get("status")),
        instance_type=text.get("instance_type"),
        ami=text.get("image_id"),
        placement=text.get("availability"),
        key_name=text.get("key_name"),
        security_groups=tuple(
            group["group_name"] for group in extra.get("groups") or () if group["group_name"]
        ),
        private_ip=_first(node.private_ips),
        public_ip=_first(node.public_ips),
        private_dns=text.get("private_dns"),
        public_dns=text.get("dns_name"),
        launch_time=_utc(node.created_at),
        tags=dict(extra.get("tags") or {}),
    )


def node_instance(node: Node) -> Instance:
    """The Instance of a node of any driver but EC2: what every driver knows of a node."""
    return Instance(
        id=str(node.id),
        state=NODE_STATES.get(node.state, "unknown"),
        instance_type=None if node.size is None else str(node.size.id),
        ami=None if node.image is None else str(node.image.id),
        private_ip=_first(node.private_ips),
        public_ip=_first(node.public_ips),
        launch_time=_utc(node.created_at),
        tags={str(key): str(value) for key, value in (node.extra.get("tags") or {}).items()},
    )


def matches(instance: Instance, query: InstanceQuery) -> bool:
    """Whether an instance passes every filter of a query."""
    return (
        (not query.ids or instance.id in query.ids)
        and (not query.states or instance.state in query.states)
        and all(instance.tags.get(key) in values for key, values in query.tags.items())
        and all(key in instance.tags for key in query.tag_keys)
    )


def ec2_filters(query: InstanceQuery) -> dict[str, list[str]]:
    """The DescribeInstances filters of a query: EC2's rules, shared with the boto3 adapter."""
    return describe_filters(query)


def ec2_request(
    driver: NodeDriver,
    params: dict[str, str],
    instance_id: str | None = None,
    action: str | None = None,
):
    """Send one EC2 API call; return the parsed reply.

    An error naming no such instance is :class:`InstanceNotFound` and one naming its state
    :class:`InvalidState` (for a call about ``instance_id``, doing ``action``); any other
    failure a ProviderError.
    """
    try:
        return driver.connection.request(driver.path, params=params).object
    except EC2ErrorReply as exc:
        if instance_id is not None and exc.error_code in NOT_FOUND_CODES:
            raise InstanceNotFound(NAME, instance_id) from exc
        if action is not None and exc.error_code in INVALID_STATE_CODES:
            raise InvalidState(NAME, instance_id or "", action, exc.message) from exc
        raise provider_error(exc) from exc
    except Exception as exc:  # anything the SDK raises is a provider failure
        raise provider_error(exc) from exc


def ec2_instances(
    driver: NodeDriver, filters: dict[str, list[str]], page_size: int, token: str | None
) -> tuple[list[Instance], str | None]:
    """One DescribeInstances page: its instances, and EC2's token of the next page or None."""
    params = {
        "Action": "DescribeInstances",
        "MaxResults": str(max(5, min(1000, page_size))),  # EC2 refuses any other
        **driver._build_filters(filters),
    }
    if token is not None:
        params["NextToken"] = token
    reply = ec2_request(driver, params)
    instances = [
        ec2_instance(node)
        for reservation in findall(reply, "reservationSet/item", NAMESPACE)
        for node in driver._to_nodes(reservation, "instancesSet/item")
    ]
    return instances, findtext(reply, "nextToken", NAMESPACE) or None


def ec2_act(driver: NodeDriver, action: str, instance_id: str) -> None:
    """Send the EC2 call of ``action`` on one instance."""
    call = ACTION_CALLS[action][1]
    reply = ec2_request(driver, {"Action": call, "InstanceId.1": instance_id}, instance_id, action)
    # An HTTP 200 reply is EC2 accepting the call (an error reply raised EC2ErrorReply), with
    # or without <return>true</return>: moto's RebootInstances reply has none, and libcloud's
    # reboot_node reads that as a failure. Only an explicit <return>false</return> refuses.
    if findtext(reply, "return", NAMESPACE) == "false":
        raise ProviderError(
            NAME,
            ACTION_REFUSED,
            f"EC2 answered {call} of {instance_id} with return false",
            retryable=False,
        )


def needs_call(instance: Instance, action: str) -> bool:
    """Whether ``action`` must reach the provider; InvalidState when the state forbids it.

    Terminating a terminated instance needs no call: it is done.
    """
    if action == "terminate" and instance.state == "terminated":
        return False
    ensure_allowed(NAME, instance, action)
    return True


# -- drivers --------------------------------------------------------------------------------


def _retries_enabled() -> bool:
    return bool(
        os.environ.get("LIBCLOUD_RETRY_FAILED_HTTP_REQUESTS")
        or libcloud_base.RETRY_FAILED_HTTP_REQUESTS
    )


def _ec2_factory(settings: dict[str, Any], driver_kwargs: dict[str, Any]):
    missing = [
        key
        for key in ("launchprov.libcloud.key", "launchprov.libcloud.secret")
        if not settings[key]
    ]
    if missing:
        raise ConfigurationError(
            f"{' and '.join(missing)} must be set for launchprov.libcloud.driver = ec2 "
            "(the access key id and the secret access key)"
        )
    # Signature version 2 is refused by every region opened since 2014 and by moto.
    kwargs = {"signature_version": "4", **driver_kwargs}

    def build(region: str | None) -> NodeDriver:
        return TolerantEC2NodeDriver(
            settings["launchprov.libcloud.key"],
            settings["launchprov.libcloud.secret"],
            secure=settings["launchprov.libcloud.secure"],
            host=settings["launchprov.libcloud.host"],
            port=settings["launchprov.libcloud.port"],
            region=region,
            # requests' timeout: it bounds the connection and then each read.
            timeout=settings["launchprov.libcloud.timeout"],
            **kwargs,
        )

    return build


def _generic_factory(
    driver_name: str, driver_cls: type, settings: dict[str, Any], driver_kwargs: dict[str, Any]
):
    """Build any other driver: the key first, then the settings its constructor takes."""
    parameters = inspect.signature(driver_cls.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    kwargs: dict[str, Any] = {}
    for argument, key in _CONSTRUCTOR_SETTINGS.items():
        value = settings[key]
        if value is None:
            continue
        if takes_any or argument in parameters:
            kwargs[argument] = value
        elif argument not in ("secure", "timeout"):  # these two always have a value
            raise ConfigurationError(
                f"{key} is set, but the {driver_name} driver's constructor takes no {argument}"
            )
    kwargs.update(driver_kwargs)
    key = settings["launchprov.libcloud.key"]
    if key is None and driver_name == "dummy":
        key = "0"  # the dummy driver needs some credential; "0" gives it its two sample nodes
    args = () if key is None else (key,)

    def build(region: str | None) -> NodeDriver:
        return driver_cls(*args, **kwargs)

    return build


@implementer(IProvider)
class LibcloudProvider:
    """Launches through an Apache Libcloud compute driver.

    libcloud's Connection keeps per-request state (action, method, signing) on itself, so a
    driver cannot be shared between threads: each thread builds its own on first use, one per
    region, except for the drivers of :data:`SHARED_DRIVERS`.
    """

    name = NAME

    def __init__(
        self,
        driver_name: str,
        build_driver: Callable[[str | None], NodeDriver],
        *,
        region: str | None = None,
        regions: frozenset[str] | None = None,
    ):
        """``build_driver(region)`` makes a driver; ``region`` is the one of a driver that
        does not take it from the request; ``regions`` are those the EC2 driver knows."""
        self.driver_name = driver_name
        self.image_id_pattern = IMAGE_ID if driver_name == "ec2" else None
        self.instance_id_pattern = INSTANCE_ID if driver_name == "ec2" else None
        self.parameters = parameters_of(driver_name)
        self._build_driver = build_driver
        self._region = region
        self._regions = regions
        self._local = threading.local()
        self._shared = build_driver(region) if driver_name in SHARED_DRIVERS else None

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> LibcloudProvider:
        configured = settings["launchprov.libcloud.driver"]
        driver_name = configured.strip().lower()
        try:
            driver_cls = DRIVER_CLASSES.get(driver_name) or get_driver(driver_name)
        except Exception as exc:  # AttributeError when unknown, Exception when retired
            raise ConfigurationError(
                f"launchprov.libcloud.driver = {configured!r}: {exc}"
            ) from None
        driver_kwargs = dict(settings["launchprov.libcloud.driver_kwargs"] or {})
        clashes = sorted(set(driver_kwargs) & {"key", *_CONSTRUCTOR_SETTINGS})
        if clashes:
            raise ConfigurationError(
                f"launchprov.libcloud.driver_kwargs: set {', '.join(clashes)} with "
                + ", ".join(f"launchprov.libcloud.{name}" for name in clashes)
            )
        if driver_name == "ec2":
            build = _ec2_factory(settings, driver_kwargs)
            regions = frozenset(driver_cls.list_regions())
            startup_region = region_of(settings["launchprov.defaults.placement"])
            if startup_region not in regions:
                raise ConfigurationError(
                    f"launchprov.defaults.placement = {settings['launchprov.defaults.placement']!r}"
                    f": libcloud's EC2 driver does not know region {startup_region}"
                )
            _, ids = split_security_groups(settings["launchprov.defaults.security_groups"])
            if ids:
                raise ConfigurationError(
                    f"launchprov.defaults.security_groups: {', '.join(ids)}: libcloud's EC2 "
                    "driver takes security-group ids only with a subnet; use group names"
                )
            options: dict[str, Any] = {"region": startup_region, "regions": regions}
        else:
            build = _generic_factory(driver_name, driver_cls, settings, driver_kwargs)
            startup_region = settings["launchprov.libcloud.region"]
            if _retries_enabled():
                log.warning(
                    "LIBCLOUD_RETRY_FAILED_HTTP_REQUESTS is on: the %s driver may send a "
                    "create_node request twice and launch twice",
                    driver_name,
                )
            options = {"region": startup_region}
        try:
            provider = cls(driver_name, build, **options)  # this builds a shared driver ...
            provider.driver(startup_region)  # ... and this any other: bad arguments stop startup
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"launchprov.libcloud.driver = {configured!r}: cannot build the driver with "
                f"the launchprov.libcloud.* settings and driver_kwargs: {exc}"
            ) from None
        return provider

    def driver(self, region: str | None) -> NodeDriver:
        """This thread's driver for ``region``, built on first use (or the shared one)."""
        if self._shared is not None:
            return self._shared
        drivers = getattr(self._local, "drivers", None)
        if drivers is None:
            drivers = self._local.drivers = {}
        driver = drivers.get(region)
        if driver is None:
            driver = drivers[region] = self._build_driver(region)
        return driver

    def launch(self, request: LaunchRequest) -> list[str]:
        unsupported = {
            name: f"the {self.driver_name} driver cannot honour {name}"
            for name in sorted(request.explicit - self.parameters.keys())
        }
        if unsupported:
            raise UnsupportedParameters(NAME, unsupported)
        if self.driver_name == "ec2":
            return self._launch_ec2(request)
        return self._launch_one_by_one(request)

    def _ec2_driver(self, region: str, parameter: str = "region") -> NodeDriver:
        """This thread's EC2 driver of ``region``; UnsupportedParameters naming ``parameter``
        when libcloud does not know the region."""
        if self._regions is not None and region not in self._regions:
            raise UnsupportedParameters(
                NAME, {parameter: f"libcloud's EC2 driver does not know region {region}"}
            )
        return self.driver(region)

    def _launch_ec2(self, request: LaunchRequest) -> list[str]:
        _, ids = split_security_groups(request.security_groups)
        if ids:
            raise UnsupportedParameters(
                NAME,
                {
                    "security_groups": (
                        f"libcloud's EC2 driver takes security-group ids ({', '.join(ids)}) "
                        "only with a subnet, which launchprov does not send; give group names"
                    )
                },
            )
        try:
            region = request.region
        except ValueError as exc:
            raise UnsupportedParameters(NAME, {"placement": str(exc)}) from None
        driver = self._ec2_driver(region, "placement")
        arguments = {
            mapped.argument: mapped.convert(driver, request) for mapped in self.parameters.values()
        }
        try:
            # No name: no Name tag (TolerantEC2NodeDriver), as the boto3 adapter.
            created = driver.create_node(name=request.tags.get("Name"), **arguments)
        except EC2ErrorReply as exc:
            if exc.error_code in IDEMPOTENCY_CONFLICT_CODES:
                raise IdempotencyConflict(NAME, exc.message) from exc
            raise launch_error(exc) from exc
        except Exception as exc:  # anything the SDK raises is a provider failure
            raise launch_error(exc) from exc
        launched = node_ids(created)
        if len(launched) < request.min_count:
            # Instances may be running that the reply did not list: no blind retry.
            raise ProviderError(
                NAME,
                ProviderError.MALFORMED_RESPONSE,
                f"the RunInstances reply lists {len(launched)} instance(s), fewer than "
                f"min_count = {request.min_count}",
                retryable=False,
            )
        return launched

    def _launch_one_by_one(self, request: LaunchRequest) -> list[str]:
        driver = self.driver(self._region)
        arguments = {
            mapped.argument: mapped.convert(driver, request)
            for mapped in self.parameters.values()
            if mapped.argument is not None
        }
        created = []
        failure: Exception | None = None
        for _ in range(request.max_count):
            try:
                created.append(driver.create_node(name=NODE_NAME, **arguments))
            except Exception as exc:  # anything the SDK raises is a provider failure
                failure = exc
                break
        if len(created) >= request.min_count:
            if failure is not None:
                log.warning(
                    "created %d of at most %d nodes, at least %d required; then: %r",
                    len(created),
                    request.max_count,
                    request.min_count,
                    failure,
                )
            return node_ids(created)
        # Fewer than min_count (<= max_count) were created: a create_node call failed.
        error = launch_error(failure)
        if not created:
            raise error from failure
        kept = self._destroy(driver, created)
        outcome = "they were destroyed"
        if kept:
            outcome = f"destroying them failed for {', '.join(kept)}, which may still run"
        raise ProviderError(
            NAME,
            PARTIAL_LAUNCH,
            f"{len(created)} of the {request.min_count} instances required were created, "
            f"then {error.code}: {error.message}; {outcome}",
            retryable=error.retryable,
            outcome=OUTCOME_UNKNOWN if kept else error.outcome,
        ) from failure

    def _destroy(self, driver: NodeDriver, nodes) -> list[str]:
        """Destroy ``nodes`` as far as possible; return the ids of those that were not."""
        kept = []
        for node in nodes:
            try:
                destroyed = driver.destroy_node(node)
            except Exception:  # best effort: the launch has failed already
                log.exception("cannot destroy node %s of a failed launch", node.id)
                kept.append(str(node.id))
                continue
            if destroyed is False:
                log.error("the driver did not destroy node %s of a failed launch", node.id)
                kept.append(str(node.id))
        return kept

    def ping(self, timeout: float) -> None:
        # A driver of its own, so that the time-out is this one and not the launch setting:
        # libcloud reads connection.timeout when it connects, which the driver did when built,
        # so it connects again. A shared driver holds its cloud in memory (dummy): asked as is.
        driver = self._shared
        if driver is None:
            driver = self._build_driver(self._region)
            driver.connection.timeout = timeout
            driver.connection.connect()
        if self.driver_name == "ec2":
            ec2_request(driver, {"Action": "DescribeAvailabilityZones"})
            return
        try:
            driver.list_nodes()  # the one call every driver has
        except Exception as exc:  # anything the SDK raises is a provider failure
            raise provider_error(exc) from exc

    # -- the life of an instance -----------------------------------------------------------

    def _fetch(self, query: InstanceQuery) -> paging.Fetch:
        """fetch(provider_token, page_size) for :func:`paging.page`: the query's instances."""
        if self.driver_name == "ec2":
            driver = self._ec2_driver(query.region)
            filters = ec2_filters(query)
            return lambda token, page_size: ec2_instances(driver, filters, page_size, token)

        def fetch_all(token, page_size):  # one page: every node, in the driver's order
            instances = [node_instance(node) for node in self._nodes()]
            return [instance for instance in instances if matches(instance, query)], None

        return fetch_all

    def describe(self, instance_id: str, region: str) -> Instance:
        if self.driver_name != "ec2":
            return node_instance(self._node(instance_id))
        # EC2 may answer a filtered call with empty pages and a NextToken: the pager follows.
        query = InstanceQuery(region, ids=(instance_id,))
        found, _ = paging.page(self._fetch(query), 1, None, 5)
        if not found:
            raise InstanceNotFound(NAME, instance_id)
        return found[0]

    def list_instances(self, query: InstanceQuery) -> InstancePage:
        found, next_token = paging.page(
            self._fetch(query), query.limit, query.page_token, query.limit
        )
        return InstancePage(found, next_token)

    def terminate(self, instance_id: str, region: str) -> Instance:
        return self._act("terminate", instance_id, region)

    def stop(self, instance_id: str, region: str) -> Instance:
        return self._act("stop", instance_id, region)

    def start(self, instance_id: str, region: str) -> Instance:
        return self._act("start", instance_id, region)

    def reboot(self, instance_id: str, region: str) -> Instance:
        return self._act("reboot", instance_id, region)

    def _act(self, action: str, instance_id: str, region: str) -> Instance:
        if self.driver_name == "ec2":
            driver = self._ec2_driver(region)
            if needs_call(self.describe(instance_id, region), action):
                ec2_act(driver, action, instance_id)
        else:
            perform = self._node_method(action)
            node = self._node(instance_id)
            if needs_call(node_instance(node), action):
                self._perform(perform, action, node)
        return self.describe(instance_id, region)

    def _nodes(self) -> list[Node]:
        """Every node of a driver other than EC2, in its order."""
        try:
            return list(self.driver(self._region).list_nodes())
        except Exception as exc:  # anything the SDK raises is a provider failure
            raise provider_error(exc) from exc

    def _node(self, instance_id: str) -> Node:
        for node in self._nodes():
            if str(node.id) == instance_id:
                return node
        raise InstanceNotFound(NAME, instance_id)

    def _unsupported(self, action: str) -> ActionNotSupported:
        return ActionNotSupported(NAME, action, f"the {self.driver_name} driver cannot {action}")

    def _node_method(self, action: str) -> Callable[[Node], Any]:
        """The driver's method for ``action``; ActionNotSupported when the driver has none of
        its own (libcloud's NodeDriver raises NotImplementedError for it)."""
        name = ACTION_CALLS[action][0]
        driver = self.driver(self._region)
        if getattr(type(driver), name, None) in (None, getattr(NodeDriver, name, None)):
            raise self._unsupported(action)
        return getattr(driver, name)

    def _perform(self, perform: Callable[[Node], Any], action: str, node: Node) -> None:
        try:
            done = perform(node)
        except NotImplementedError:  # implemented, but not for this node
            raise self._unsupported(action) from None
        except Exception as exc:  # anything the SDK raises is a provider failure
            raise provider_error(exc) from exc
        if done is False:  # the drivers say no more than that
            raise ProviderError(
                NAME,
                ACTION_REFUSED,
                f"the {self.driver_name} driver refused to {action} {node.id}",
                retryable=True,
            )
