"""Reading instances back: what any driver returns, as launchprov's Instance.

Drivers disagree on what a node holds: a size and an image as objects (OpenStack, the dummy),
as plain strings (GCE, Vultr, Linode) or only in ``extra`` (``flavorId``, ``imageId``,
``machineType`` as a URL, ...). Every field is read tolerantly; a value the adapter cannot make
sense of is None, never an exception: nothing a driver returns can make a route answer 500.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from libcloud.compute.base import Node
from libcloud.compute.types import NodeState

from launchprov.providers.ec2_common import state_of
from launchprov.providers.interface import Instance, InstanceQuery

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


log = logging.getLogger(__name__)

#: (driver, status) pairs already logged as unnamed: each is logged once per process.
_UNNAMED: set[tuple[str, str]] = set()
_UNNAMED_LOCK = threading.Lock()


class TolerantStates(dict):
    """A driver's table of its cloud's node statuses, where a status the table does not name
    is NodeState.UNKNOWN (logged once, with the raw status) rather than the KeyError that
    Linode's and CloudStack's drivers raise, which would fail every listing of the account."""

    def __init__(self, table: Mapping[str, Any], driver_name: str):
        super().__init__(table)
        self.driver_name = driver_name

    def _unnamed(self, status: Any) -> None:
        key = (self.driver_name, repr(status))
        with _UNNAMED_LOCK:
            if key in _UNNAMED:
                return
            _UNNAMED.add(key)
        log.warning(
            "the %s driver reports node status %r, which its table does not name: "
            "launchprov reads it as unknown",
            self.driver_name,
            status,
        )

    def __missing__(self, status: Any) -> NodeState:
        self._unnamed(status)
        return NodeState.UNKNOWN

    def get(self, status: Any, default: Any = None) -> Any:
        if status in self:
            return self[status]
        self._unnamed(status)
        return default


def tolerate_unnamed_states(driver: Any, profile) -> Any:
    """``driver``, its table of node statuses (the profile's ``node_states``) made tolerant."""
    attribute = profile.node_states
    table = getattr(driver, attribute, None) if attribute else None
    if isinstance(table, Mapping) and not isinstance(table, TolerantStates):
        setattr(driver, attribute, TolerantStates(table, profile.name))
    return driver


def reference(value: Any) -> str | None:
    """An id out of whatever a driver gives: an object with ``id``, a string, a number.

    A URL (GCE's ``machineType``) gives its last path segment.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Mapping):
        value = value.get("id") or value.get("name")
    elif not isinstance(value, str | int):
        value = getattr(value, "id", None) or getattr(value, "name", None)
    if value is None:
        return None
    text = str(value).strip()
    if "://" in text:
        text = text.rstrip("/").rpartition("/")[2]
    return text or None


def from_extra(extra: Mapping[str, Any], keys: Iterable[str]) -> str | None:
    """The first usable reference among ``extra``'s ``keys`` (a dotted key reads a path)."""
    for key in keys:
        found = reference(from_path(extra, key))
        if found:
            return found
    return None


def _first(values) -> str | None:
    if not isinstance(values, list | tuple) or not values:
        return None
    return reference(values[0])


def utc(moment: Any) -> datetime | None:
    """A timezone-aware UTC datetime; a naive one is taken to be UTC; anything else None."""
    if not isinstance(moment, datetime):
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def string_map(value: Any) -> dict[str, str]:
    """A dict of str to str out of a driver's tags, metadata or labels; {} for anything else."""
    if not isinstance(value, Mapping):
        return {}
    return {str(key): str(item) for key, item in value.items() if item is not None}


def ec2_instance(node: Node) -> Instance:
    """The Instance of a node the EC2 driver parsed from a DescribeInstances reply."""
    extra = node.extra if isinstance(node.extra, Mapping) else {}
    # libcloud keeps "" for an empty element (<keyName/>): unknown.
    text = {key: value or None for key, value in extra.items() if isinstance(value, str)}
    return Instance(
        id=str(node.id),
        state=state_of(text.get("status")),
        instance_type=text.get("instance_type"),
        ami=text.get("image_id"),
        placement=text.get("availability"),
        key_name=text.get("key_name"),
        security_groups=tuple(
            group["group_name"]
            for group in extra.get("groups") or ()
            if isinstance(group, Mapping) and group.get("group_name")
        ),
        private_ip=_first(node.private_ips),
        public_ip=_first(node.public_ips),
        private_dns=text.get("private_dns"),
        public_dns=text.get("dns_name"),
        launch_time=utc(node.created_at),
        tags=string_map(extra.get("tags")),
        subnet_id=text.get("subnet_id"),
        # libcloud reads the profile's association id, not its ARN or name: unknown here.
        iam_instance_profile=None,
        spot=text.get("instance_lifecycle") == "spot",
        metadata_tokens=None,  # libcloud does not read MetadataOptions
    )


def node_instance(node: Node, reading) -> Instance:
    """The Instance of a node of any driver but EC2, read as the driver's profile says.

    ``reading`` is the profile's :class:`~launchprov.providers.libcloud.profiles.Reading`.
    """
    extra = node.extra if isinstance(node.extra, Mapping) else {}
    return Instance(
        id=reading.public_id(str(node.id)),
        state=NODE_STATES.get(node.state, "unknown"),
        instance_type=reference(node.size) or from_extra(extra, reading.instance_type),
        ami=reference(node.image) or from_extra(extra, reading.ami),
        placement=from_extra(extra, reading.placement),
        key_name=from_extra(extra, reading.key_name),
        private_ip=_first(node.private_ips),
        public_ip=_first(node.public_ips),
        launch_time=utc(getattr(node, "created_at", None)),
        tags=reading.decode_tags(string_map(from_path(extra, reading.tags))),
    )


def from_path(extra: Mapping[str, Any], key: str | None) -> Any:
    """The value at a dotted path of ``extra``, through mappings and objects; None if absent."""
    if key is None:
        return None
    value: Any = extra
    for part in key.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif value is not None and not isinstance(value, str | int | float | list | tuple):
            value = getattr(value, part, None)  # an object the driver made (GCE's zone)
        else:
            return None
    return value


def _same(value: str) -> str:
    return value


def matches(
    instance: Instance, query: InstanceQuery, canonical: Callable[[str], str] = _same
) -> bool:
    """Whether an instance passes every filter of a query; a tag value matches in its
    ``canonical`` form, what the cloud reads back once it is written (GCE hashes some)."""
    return (
        (not query.ids or instance.id in query.ids)
        and (not query.states or instance.state in query.states)
        and all(
            instance.tags.get(key) in {canonical(value) for value in values}
            for key, values in query.tags.items()
        )
        and all(key in instance.tags for key in query.tag_keys)
    )
