"""How the conformance matrix proves each cell of the driver matrix: by its effect.

One table, :data:`VERIFIED`: driver -> launch parameter or action -> the check that proves the
cell (tests/functional/test_libcloud_matrix.py runs exactly these). A check looks where the
effect lands, never at the arguments launchprov hands the driver:

* :class:`OnTheWire`: the request the driver's connection sends to the recorded cloud carries the
  value the caller gave (a value other than the default), at a named field;
* :class:`AtProvider`: the instance as the provider then holds it (EC2 on a moto server, the
  dummy's nodes in memory) shows the value;
* :class:`Answer`: the answer that names the limit (a 400 naming a refused parameter, with no
  create request sent, a 501 for an action the driver has no method for, with nothing sent,
  the 408 PartialLaunch of a launch with fewer than ``min_count`` instances);
* :class:`CapacityFallback`: after the provider's capacity error, the next alternative's launch
  reached the provider;
* :class:`NotVerified`: no test proves the cell. The docs' driver matrix shows it "not verified",
  never as supported.

Refusals and 501s follow from the profiles (a parameter a profile does not map, a fallback on
a cloud whose capacity error no profile rule knows, an action its driver has no method for):
:func:`verification` derives them. A cell is flipped to verified by giving it a check here; the
matrix's tests then run that check, and fail until it holds.
"""

from __future__ import annotations

import dataclasses

from launchprov.providers.libcloud.profile import ACTION_METHODS
from launchprov.providers.libcloud.profiles import ABOVE_THE_ADAPTER, GENERIC, PROFILES


@dataclasses.dataclass(frozen=True)
class OnTheWire:
    """A request the driver sends carries the value given.

    ``request`` is the HTTP method and a regular expression searched in the URL's path, or in
    its query string if it holds ``=`` (None: the driver's create request, :data:`CREATE`).
    ``field`` is where the value is: ``json:`` a dotted path in the JSON body (``json`` alone:
    its keys), ``query:`` a parameter of the query string, ``path`` the URL's path (the value is
    one of its segments), ``count`` the number of matching requests, ``node`` for an action:
    the request names the node. A dotted path goes through lists item by item, and a list of
    key/value pairs (``{"key": k, "value": v}``) is read as a mapping. ``encoding`` is how the
    cloud holds the value there: ``base64``, ``last segment`` (of a URL), ``comma list``, or ""
    (as given).
    """

    field: str
    encoding: str = ""
    request: tuple[str, str] | None = None
    #: For an action: the value the field holds (the request also names the node).
    value: str | None = None


@dataclasses.dataclass(frozen=True)
class AtProvider:
    """The instance as the provider holds it after the launch (or the action) shows the value,
    at ``field`` (EC2: a dotted path of DescribeInstances' instance, ``attribute:<name>`` of
    DescribeInstanceAttribute, ``volume:<field>`` of the root volume; the dummy: a dotted path
    of the node, ``nodes`` the number created)."""

    field: str


@dataclasses.dataclass(frozen=True)
class Answer:
    """The answer names the limit: ``status`` and ``what`` (a provider code, or the parameter
    or action named); nothing is created for a refusal, nothing sent for a 501."""

    status: int
    what: str


@dataclasses.dataclass(frozen=True)
class CapacityFallback:
    """The provider answers the first launch with its own capacity error (EC2's through the
    fault-injecting endpoint; another cloud's documented reply, served in place of the
    recording: tests.recorded.CAPACITY_FAULTS), and the alternative's instance type reaches the
    provider (EC2: the instance at moto; another cloud: its second create request)."""


@dataclasses.dataclass(frozen=True)
class NotVerified:
    """No test proves the cell: ``why``."""

    why: str


Check = OnTheWire | AtProvider | Answer | CapacityFallback | NotVerified


def _readable(path: str) -> str:
    return path.removesuffix("$").replace("\\", "").replace("[^/]+", "{id}")


def request_words(request: tuple[str, str]) -> str:
    """A request of the table as the docs show it: ``POST /servers``, ``GET ?command=...``."""
    method, pattern = request
    return f"{method} ?{pattern}" if "=" in pattern else f"{method} {_readable(pattern)}"


#: The request that creates a node, per driver on recorded replies: method, path pattern.
CREATE: dict[str, tuple[str, str]] = {
    "openstack": ("POST", r"/servers$"),
    "gce": ("POST", r"/zones/[^/]+/instances$"),
    "azure_arm": ("PUT", r"/virtualMachines/[^/]+$"),
    "digitalocean": ("POST", r"/v2/droplets$"),
    "vultr": ("POST", r"/v2/instances$"),
    "linode": ("POST", r"/v4/linode/instances$"),
    "cloudstack": ("GET", "command=deployVirtualMachine"),
}

#: EC2's launch call, as libcloud's EC2 driver sends it.
_RUN_INSTANCES = ("GET", "Action=RunInstances")

#: What every driver that creates one node per create request proves the same way.
_COUNTS = {
    "min_count": Answer(408, "PartialLaunch: min_count 2, the second create refused"),
    "max_count": OnTheWire("count"),
}


def _node(path: str) -> tuple[str, str]:
    """An action's request: ``method path``, ``{id}`` standing for the recorded node's id."""
    method, _, pattern = path.partition(" ")
    return method, pattern.replace("{id}", "[^/]+")


def _actions(**requests: str | tuple[str, str, str]) -> dict[str, OnTheWire]:
    """Each action's request naming the node, on the wire: ``"METHOD path"``, or
    ``("METHOD path", field, value)`` where the path is the same for several actions."""
    checks = {}
    for action, request in requests.items():
        if isinstance(request, str):
            checks[action] = OnTheWire("node", request=_node(request))
        else:
            checks[action] = OnTheWire(request[1], request=_node(request[0]), value=request[2])
    return checks


#: Driver -> parameter or action -> how its effect is checked. Refusals and 501s are derived
#: (:func:`verification`); every other cell of the driver matrix is here or not verified.
VERIFIED: dict[str, dict[str, Check]] = {
    "ec2": {
        "ami": AtProvider("ImageId"),
        "instance_type": AtProvider("InstanceType"),
        # moto launches MinCount instances whatever MaxCount says: the counts on the wire.
        "min_count": OnTheWire("query:MinCount", request=_RUN_INSTANCES),
        "max_count": OnTheWire("query:MaxCount", request=_RUN_INSTANCES),
        "key_name": AtProvider("KeyName"),
        "security_groups": AtProvider("SecurityGroups.GroupName"),
        "user_data": AtProvider("attribute:userData"),
        "placement": AtProvider("Placement.AvailabilityZone"),
        # moto keeps no placement group it did not create (and creates none over HTTP).
        "placement_group": OnTheWire("query:Placement.GroupName", request=_RUN_INSTANCES),
        "instance_initiated_shutdown_behavior": AtProvider(
            "attribute:instanceInitiatedShutdownBehavior"
        ),
        "ebs_optimized": AtProvider("EbsOptimized"),
        "tags": AtProvider("Tags"),
        "client_token": AtProvider("ClientToken"),
        "subnet_id": AtProvider("SubnetId"),
        "iam_instance_profile": AtProvider("IamInstanceProfile.Arn"),
        "root_volume_size": AtProvider("volume:Size"),
        "root_volume_type": AtProvider("volume:VolumeType"),
        "metadata_tokens": AtProvider("MetadataOptions.HttpTokens"),
        "spot": AtProvider("InstanceLifecycle"),
        "fallback": CapacityFallback(),
        "expires_in": AtProvider("Tags"),
        "terminate": AtProvider("State.Name"),
        "reboot": OnTheWire("node", request=("GET", "Action=RebootInstances")),
        "stop": AtProvider("State.Name"),
        "start": AtProvider("State.Name"),
    },
    "openstack": {
        "ami": OnTheWire("json:server.imageRef"),
        "instance_type": OnTheWire("json:server.flavorRef"),
        **_COUNTS,
        "key_name": OnTheWire("json:server.key_name"),
        "security_groups": OnTheWire("json:server.security_groups.name"),
        "user_data": OnTheWire("json:server.user_data", "base64"),
        "placement": OnTheWire("json:server.availability_zone"),
        "tags": OnTheWire("json:server.metadata"),
        "client_token": OnTheWire("json:server.metadata"),
        "expires_in": OnTheWire("json:server.metadata"),
        "fallback": CapacityFallback(),
        **_actions(
            terminate="DELETE /servers/{id}$",
            reboot=("POST /servers/{id}/action$", "json:reboot.type", "HARD"),
            stop=("POST /servers/{id}/action$", "json", "os-stop"),
            start=("POST /servers/{id}/action$", "json", "os-start"),
        ),
    },
    "gce": {
        "ami": OnTheWire("json:disks.initializeParams.sourceImage", "last segment"),
        "instance_type": OnTheWire("json:machineType", "last segment"),
        **_COUNTS,
        "security_groups": OnTheWire("json:tags.items"),
        "user_data": OnTheWire("json:metadata.items.user-data"),
        "placement": OnTheWire("path"),
        "tags": OnTheWire("json:labels"),
        "client_token": OnTheWire("json:labels"),
        "fallback": CapacityFallback(),
        **_actions(
            terminate="DELETE /instances/{id}$",
            reboot="POST /instances/{id}/reset$",
            stop="POST /instances/{id}/stop$",
            start="POST /instances/{id}/start$",
        ),
    },
    "azure_arm": {
        "ami": OnTheWire("json:properties.storageProfile.imageReference"),
        "instance_type": OnTheWire("json:properties.hardwareProfile.vmSize"),
        **_COUNTS,
        "placement": OnTheWire("json:location"),
        "tags": OnTheWire("json:tags"),
        "client_token": OnTheWire("json:tags"),
        "expires_in": OnTheWire("json:tags"),
        "fallback": CapacityFallback(),
        **_actions(
            terminate="DELETE /virtualMachines/{id}$",
            reboot="POST /virtualMachines/{id}/restart$",
            stop="POST /virtualMachines/{id}/deallocate$",
            start="POST /virtualMachines/{id}/start$",
        ),
    },
    "digitalocean": {
        "ami": OnTheWire("json:image"),
        "instance_type": OnTheWire("json:size"),
        **_COUNTS,
        "key_name": OnTheWire("json:ssh_keys"),
        "user_data": OnTheWire("json:user_data"),
        "placement": OnTheWire("json:region"),
        "fallback": CapacityFallback(),
        **_actions(
            terminate="DELETE /droplets/{id}$",
            reboot=("POST /droplets/{id}/actions$", "json:type", "reboot"),
            stop=("POST /droplets/{id}/actions$", "json:type", "shutdown"),
            start=("POST /droplets/{id}/actions$", "json:type", "power_on"),
        ),
    },
    "vultr": {
        "ami": OnTheWire("json:os_id"),
        "instance_type": OnTheWire("json:plan"),
        **_COUNTS,
        "key_name": OnTheWire("json:sshkey_id"),
        "user_data": OnTheWire("json:user_data", "base64"),
        "placement": OnTheWire("json:region"),
        **_actions(
            terminate="DELETE /instances/{id}$",
            reboot="POST /instances/{id}/reboot$",
            stop="POST /instances/halt$",
            start="POST /instances/{id}/start$",
        ),
    },
    "linode": {
        "ami": OnTheWire("json:image"),
        "instance_type": OnTheWire("json:type"),
        **_COUNTS,
        "key_name": OnTheWire("json:authorized_keys"),
        "user_data": OnTheWire("json:metadata.user_data", "base64"),
        "placement": OnTheWire("json:region"),
        **_actions(
            terminate="DELETE /linode/instances/{id}$",
            reboot="POST /linode/instances/{id}/reboot$",
            stop="POST /linode/instances/{id}/shutdown$",
            start="POST /linode/instances/{id}/boot$",
        ),
    },
    "cloudstack": {
        "ami": OnTheWire("query:templateid"),
        "instance_type": OnTheWire("query:serviceofferingid"),
        **_COUNTS,
        "key_name": OnTheWire("query:keypair"),
        "security_groups": OnTheWire("query:securitygroupnames", "comma list"),
        "user_data": OnTheWire("query:userdata", "base64"),
        "placement": OnTheWire("query:zoneid"),
        "fallback": CapacityFallback(),
        **{
            action: OnTheWire("node", request=("GET", f"command={command}"))
            for action, command in {
                "terminate": "destroyVirtualMachine",
                "reboot": "rebootVirtualMachine",
                "stop": "stopVirtualMachine",
                "start": "startVirtualMachine",
            }.items()
        },
    },
    "dummy": {
        "ami": AtProvider("image.id"),
        "instance_type": AtProvider("size.id"),
        "min_count": Answer(408, "PartialLaunch: min_count 2, the second create refused"),
        "max_count": AtProvider("nodes"),
        "tags": AtProvider("extra.tags"),
        "client_token": AtProvider("extra.tags"),
        "expires_in": AtProvider("extra.tags"),
        "terminate": AtProvider("state"),
        "reboot": AtProvider("state"),
    },
}

#: The drivers the conformance matrix runs (the generic profile has no driver of its own).
MATRIX_DRIVERS = list(VERIFIED)


def verification(driver: str, cell: str) -> Check:
    """How the cell (a launch parameter or an action) of ``driver`` is proven.

    A parameter the profile does not map is refused (400 naming it, nothing sent); an action
    the driver has no method for is a 501 (nothing sent). Every other cell is what
    :data:`VERIFIED` says, or not verified.
    """
    checks = VERIFIED.get(driver)
    if checks is None:
        return NotVerified(f"the conformance matrix runs no {driver} driver")
    profile = PROFILES.get(driver, GENERIC)
    if cell in ACTION_METHODS:
        if profile.calls != "ec2" and not profile.supports(cell):
            return Answer(501, cell)
    elif cell not in profile.parameters and (
        cell not in ABOVE_THE_ADAPTER or not profile.reports_capacity
    ):
        return Answer(400, cell)
    return checks.get(cell, NotVerified("no check in the conformance table"))


# -- the docs' driver matrix ------------------------------------------------------------------

REFUSED = "refused"
NOT_IMPLEMENTED = "501"
UNVERIFIED = "not verified"
SUPPORTED = "supported"


@dataclasses.dataclass(frozen=True)
class Shown:
    """What the docs' driver matrix shows in one cell.

    ``kind`` is :data:`SUPPORTED` (``claim``, the create_node argument or method, and ``how``
    its effect is checked), :data:`REFUSED` (400 naming the parameter), :data:`NOT_IMPLEMENTED`
    (501), or :data:`UNVERIFIED`: what the profile claims, no test proves.
    """

    kind: str
    claim: str | None = None
    how: str | None = None


#: How the docs name a wire field that is not a key.
_FIELD_WORDS = {"path": "in the URL path", "node": ""}


def _how(driver: str, check: Check) -> str:
    """The short words of a check in a cell (the legend gives each driver's create request)."""
    if isinstance(check, OnTheWire):
        if check.field == "count":
            return "wire: one create request per node"
        words = []
        if check.request is not None:
            method, pattern = check.request
            words.append(pattern.partition("=")[2] or f"{method} {_readable(pattern)}")
        words += [
            check.field.partition(":")[2] or _FIELD_WORDS.get(check.field, check.field),
            check.value or "",
        ]
        encoded = f" ({check.encoding})" if check.encoding else ""
        return "wire: " + " ".join(word for word in words if word) + encoded
    if isinstance(check, AtProvider):
        return f"provider: {check.field}"
    if isinstance(check, Answer):
        return f"answer: {check.status} {check.what.partition(':')[0]}"
    if driver == "ec2":
        return "provider: the alternative's instance, after EC2's capacity error"
    return "wire: the alternative's create, after the cloud's capacity error"


def docs_cell(driver: str, cell: str, claim: str | None) -> Shown:
    """The docs' matrix cell of ``driver`` for ``cell`` (a parameter or an action) whose profile
    claims ``claim``: supported only where :func:`verification` names a check that proves it."""
    check = verification(driver, cell)
    if isinstance(check, NotVerified):
        return Shown(UNVERIFIED, claim, check.why)
    if isinstance(check, Answer) and check.status == 400:
        return Shown(REFUSED)
    if isinstance(check, Answer) and check.status == 501:
        return Shown(NOT_IMPLEMENTED)
    return Shown(SUPPORTED, claim, _how(driver, check))
