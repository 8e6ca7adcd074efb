"""What a driver profile is (the table of profiles is :mod:`.profiles`).

One declarative profile per libcloud driver family: everything that differs per driver.

A profile says, in one place:

* how the driver is built from settings (:class:`Construction`): where
  ``launchprov.libcloud.key`` and ``.secret`` go, which of ``.secure``, ``.host``, ``.port``,
  ``.region`` its constructor takes (setting another stops startup, naming it), how
  ``.timeout`` reaches it, and which constructor arguments ``launchprov.libcloud.driver_kwargs``
  must give;
* how each launch parameter reaches ``create_node`` (:data:`Profile.parameters`): a parameter
  absent from the table cannot be honoured, and is refused with a 400 naming it when the caller
  set it explicitly (a deployment default simply does not apply); a parameter that neither the
  caller nor ``launchprov.defaults.*`` gives is not sent (:data:`Profile.cloud_defaults`: the
  seed's on EC2 only);
* create_node arguments that change behaviour, always sent (CloudStack's ``ex_start_vm``);
* the driver method of each action (a driver without one answers 501);
* where the driver keeps, on a node, what launchprov reads back (:class:`Reading`);
* what the cloud's error replies mean (:class:`ErrorReply`, :data:`Profile.errors`): out of
  capacity, throttled, credentials refused, not found; and where the driver keeps its table of
  node states (a status missing from it reads as ``unknown``).

Adding a cloud is one profile here and its recorded replies in the conformance matrix.
The docs' driver matrix is generated from these tables.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from libcloud.compute.base import NodeDriver, NodeImage, NodeSize

from launchprov.providers.interface import LaunchRequest, UnsupportedParameters

NAME = "libcloud"

#: The prefix of the node names given to create_node by every driver but EC2.
NODE_NAME = "launchprov"


def node_name(profile: Profile) -> str:
    """A fresh node name: ``launchprov-`` and 12 hex digits.

    Unique, because several clouds refuse a second node of the same name (GCE and Azure in a
    zone or resource group, Linode everywhere), and lower-case letters, digits and dashes only,
    which every cloud's naming rules accept. The dummy names every node ``launchprov``.
    """
    if profile.shared:
        return NODE_NAME
    return f"{NODE_NAME}-{uuid.uuid4().hex[:12]}"


#: The actions, and the NodeDriver method each calls unless a profile says otherwise.
ACTION_METHODS = {
    "terminate": "destroy_node",
    "stop": "stop_node",
    "start": "start_node",
    "reboot": "reboot_node",
}


class LaunchContext:
    """What a parameter's converter may use: the request, the driver, the catalog lookups."""

    def __init__(self, request: LaunchRequest, driver: NodeDriver, lookup, location_hint=None):
        self.request = request
        self.driver = driver
        self._lookup = lookup  # lookup(kind, wanted, **scope) -> driver object
        self._location_hint = location_hint

    def image(self, **scope):
        return self._lookup("image", self.request.ami, **scope)

    def size(self, **scope):
        return self._lookup("size", self.request.instance_type, **scope)

    def key_pair(self):
        """The KeyPair named ``key_name``, from the catalog (None: no key_name)."""
        if self.request.key_name is None:
            return None
        return self._lookup("key pair", self.request.key_name)

    def location(self):
        """The NodeLocation of the placement (or of launch_kwargs' ``location``)."""
        return self._location_hint()


@dataclasses.dataclass(frozen=True)
class Mapped:
    """How one LaunchRequest field reaches a driver.

    ``argument`` is the create_node keyword it becomes and ``convert(context)`` its value;
    ``argument`` None means the adapter uses the field itself (the counts of a driver that
    creates nodes one by one, or a client token kept only as a tag). ``merge`` names a
    create_node argument of dict values that several parameters fill together.
    """

    argument: str | None
    doc: str
    convert: Callable[[LaunchContext], Any] | None = None
    #: The catalog kind the value is looked up in ("location"), or None: sent as given. A
    #: deployment default of a looked-up parameter is looked up at startup.
    catalog: str | None = None


@dataclasses.dataclass(frozen=True)
class Construction:
    """How the driver's constructor is called from settings."""

    #: The constructor argument ``launchprov.libcloud.key`` goes to (None: the driver has none).
    key_to: str | None = "key"
    #: The constructor argument ``launchprov.libcloud.secret`` goes to (None: it has none).
    secret_to: str | None = "secret"  # noqa: S105 - an argument name, not a secret
    #: Which of secure, host, port, region the constructor takes from the settings.
    settings: frozenset[str] = frozenset({"secure", "host", "port"})
    #: "argument": timeout= to the constructor; "connection": set on the driver's connection
    #: after it is built (drivers whose constructor does not pass it on).
    timeout: str = "argument"
    #: Settings that must be set: name after ``launchprov.libcloud.`` -> what it is.
    required_settings: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: driver_kwargs entries that must be given -> what they are.
    required_kwargs: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: Constructor arguments launchprov sets unless driver_kwargs gives them.
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def _no_tag_codec(key: str) -> str:
    return key


@dataclasses.dataclass(frozen=True)
class Reading:
    """Where a driver keeps what launchprov reads back from a node (``extra`` keys, dotted
    for a path), after ``node.size`` and ``node.image`` themselves."""

    instance_type: tuple[str, ...] = ()
    ami: tuple[str, ...] = ()
    placement: tuple[str, ...] = ()
    key_name: tuple[str, ...] = ()
    #: The extra key holding the node's tags (a dict), or None: the driver cannot tag.
    tags: str | None = None
    #: A tag key as the cloud keeps it -> as launchprov names it (GCE labels allow no ':').
    decode_key: Callable[[str], str] = _no_tag_codec
    #: A tag value as the cloud keeps it -> as launchprov gave it, where it can be known.
    decode_value: Callable[[str], str] = _no_tag_codec
    #: A tag value -> what it reads back as once written (a lookup compares these).
    canonical_value: Callable[[str], str] = _no_tag_codec
    #: The driver's node id -> launchprov's instance id (Azure's ids are resource paths).
    public_id: Callable[[str], str] = str

    def decode_tags(self, tags: dict[str, str]) -> dict[str, str]:
        return {self.decode_key(key): self.decode_value(value) for key, value in tags.items()}


#: What an error reply can mean to launchprov (:data:`ErrorReply.meaning`).
CAPACITY = "capacity"  # this offering (size, location) is out: try the launch's fallback
THROTTLING = "throttling"  # too many calls: retry after the cloud's Retry-After
AUTHENTICATION = "authentication"  # the credentials are refused: a retry will not help
NOT_FOUND = "not found"
MEANINGS = (CAPACITY, THROTTLING, AUTHENTICATION, NOT_FOUND)


@dataclasses.dataclass(frozen=True)
class ErrorReply:
    """One kind of error reply of a cloud, and what it means (one of :data:`MEANINGS`).

    A reply matches when each given field matches: its HTTP ``status``, the cloud's own error
    ``code`` (as the profile's :data:`Profile.error_body` reads it), and ``text``, a regular
    expression searched (case-insensitively) in the cloud's message.
    """

    meaning: str
    status: int | frozenset[int] | None = None
    code: str | None = None
    text: str | None = None
    #: Where the shape comes from, for the docs.
    source: str = ""

    def matches(self, status: int | None, code: str | None, message: str) -> bool:
        if isinstance(self.status, int) and status != self.status:
            return False
        if isinstance(self.status, frozenset) and status not in self.status:
            return False
        if self.code is not None and code != self.code:
            return False
        return self.text is None or re.search(self.text, message, re.IGNORECASE) is not None


#: What every cloud's HTTP status says when no rule of its profile says more.
COMMON_ERRORS = (
    ErrorReply(THROTTLING, status=429, source="RFC 6585"),
    ErrorReply(AUTHENTICATION, status=401, source="RFC 9110"),
    ErrorReply(NOT_FOUND, status=404, source="RFC 9110"),
)


def no_error_body(body: Any) -> tuple[str | None, str | None]:
    """(code, message) of an error body the profile cannot read: none."""
    return None, None


@dataclasses.dataclass(frozen=True)
class Profile:
    """Everything launchprov knows about one libcloud driver family."""

    name: str
    #: A one-line description for the docs.
    summary: str
    #: How the driver class is found: a libcloud provider name, or "module:Class".
    driver: str
    #: The class the built driver is (for the signatures checked at startup, and the docs).
    concrete: str
    construction: Construction
    parameters: Mapping[str, Mapped]
    reading: Reading = Reading()
    #: create_node arguments always sent, because libcloud's default is not what a launch
    #: means; a callable value is called for each launch (Linode's random root password).
    launch_arguments: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: Action -> the driver method that performs it (absent: ACTION_METHODS).
    actions: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: "ec2": the EC2 API calls (one RunInstances for every node, paged DescribeInstances);
    #: "nodes": create_node once per node, list_nodes, the NodeDriver methods.
    calls: str = "nodes"
    #: One driver serves every thread (it holds its cloud in memory: the dummy).
    shared: bool = False
    #: Whether create_node needs a location: without an explicit placement, launch_kwargs'
    #: ``location`` or the default placement is looked up.
    needs_location: bool = False
    #: The cloud's error replies, most specific first; :data:`COMMON_ERRORS` follow them.
    errors: tuple[ErrorReply, ...] = ()
    #: The cloud's error body (JSON, or text) -> (its error code, its message), either None.
    error_body: Callable[[Any], tuple[str | None, str | None]] = no_error_body
    #: The driver's attribute holding its table of the cloud's node statuses: a status missing
    #: from it reads as NodeState.UNKNOWN (logged once) rather than failing the whole listing.
    node_states: str | None = None

    def error_meaning(self, status: int | None, code: str | None, message: str) -> str | None:
        """What an error reply means (one of :data:`MEANINGS`), or None: nothing known."""
        for rule in (*self.errors, *COMMON_ERRORS):
            if rule.matches(status, code, message):
                return rule.meaning
        return None

    #: list_nodes' arguments: every node launchprov may launch, wherever it placed it (GCE
    #: lists the project's zones, not the driver's ``datacenter`` alone).
    listing: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: How the catalog lists what a placement names, where list_locations does not say it
    #: (OpenStack's is one location; its placements are Nova's availability zones).
    locations: Callable[[NodeDriver], list] | None = None
    #: Read off the driver's class (:mod:`.generic`), not written for it.
    derived: bool = False

    #: The cloud's own launch defaults, where launchprov.defaults.* leaves them unset (the
    #: seed's on EC2). A parameter with none is not sent: the cloud's own default applies.
    cloud_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def reports_capacity(self) -> bool:
        """Whether an out-of-capacity reply of this cloud is known (EC2's own codes, or a
        :data:`CAPACITY` rule): only then can a launch's fallback be tried."""
        return self.calls == "ec2" or any(rule.meaning == CAPACITY for rule in self.errors)

    def action_method(self, action: str) -> str:
        return self.actions.get(action, ACTION_METHODS[action])

    def driver_class(self) -> type[NodeDriver]:
        module, _, attribute = self.concrete.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def supports(self, action: str, driver_cls: type | None = None) -> bool:
        """Whether the driver has a method of its own for ``action``."""
        cls = driver_cls or self.driver_class()
        method = self.action_method(action)
        own = getattr(cls, method, None)
        return own is not None and own is not getattr(NodeDriver, method, None)

    def refuse_unsupported(self, request: LaunchRequest) -> None:
        """UnsupportedParameters for what the caller set explicitly and this driver cannot do."""
        unsupported = {
            name: f"the {self.name} driver cannot honour {name}"
            for name in sorted(request.explicit - self.parameters.keys())
        }
        if unsupported:
            raise UnsupportedParameters(NAME, unsupported)


# -- converters -------------------------------------------------------------------------------


def launch_tag_values(context: LaunchContext) -> dict[str, str]:
    return {**context.request.tags, **context.request.system_tags}


def unlooked_image(context: LaunchContext) -> NodeImage:
    return NodeImage(id=context.request.ami, name=None, driver=context.driver)


def unlooked_size(context: LaunchContext) -> NodeSize:
    name = context.request.instance_type
    return NodeSize(
        id=name, name=name, ram=0, disk=0, bandwidth=None, price=None, driver=context.driver
    )


COUNTS = {
    "min_count": Mapped(
        None, "fewer than min_count created: those created are destroyed, the launch fails"
    ),
    "max_count": Mapped(None, "create_node is called up to max_count times, one node each"),
}

LOOKED_UP = {
    "ami": Mapped("image", "NodeImage from the catalog, by id then name", lambda c: c.image()),
    "instance_type": Mapped(
        "size", "NodeSize from the catalog, by id then name", lambda c: c.size()
    ),
}

TAG_LOOKUP_ONLY = Mapped(None, "no native token: idempotent through the tag lookup alone")
#: A lease: the tag launchprov:expires-at among launchprov's own, where the launch tags go and
#: where launchprov reads tags back (launchprov.leases). A profile without it has no leases.
LEASE = Mapped(None, "the tag launchprov:expires-at, with launchprov's own tags")
