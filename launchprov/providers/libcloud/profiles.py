"""The driver profiles: one per libcloud driver family, and the generic one for the rest.

See :mod:`launchprov.providers.libcloud.profile` for what a profile says. Adding a cloud is one
entry here and its recorded replies in the conformance matrix (tests/functional).
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Callable
from typing import Any

from launchprov.providers.libcloud import generic, labels
from launchprov.providers.libcloud.ec2 import PROFILE as EC2_PROFILE
from launchprov.providers.libcloud.generic import GENERIC
from launchprov.providers.libcloud.profile import (
    ACTION_METHODS,
    AUTHENTICATION,
    CAPACITY,
    COUNTS,
    LEASE,
    LOOKED_UP,
    TAG_LOOKUP_ONLY,
    THROTTLING,
    Construction,
    ErrorReply,
    LaunchContext,
    Mapped,
    Profile,
    Reading,
    launch_tag_values,
    unlooked_image,
    unlooked_size,
)

# -- the profiles -----------------------------------------------------------------------------


def _given(field: str, convert: Callable[[LaunchContext], Any]) -> Callable:
    """``convert``, for a request whose ``field`` is set; None (not sent) otherwise: neither
    the caller nor launchprov.defaults.* gave it, and the cloud's own default applies."""

    def converted(context: LaunchContext):
        return None if getattr(context.request, field) is None else convert(context)

    return converted


def _openstack_groups(context: LaunchContext):
    from libcloud.compute.drivers.openstack import OpenStackSecurityGroup

    return [
        OpenStackSecurityGroup(None, None, name, "", driver=context.driver)
        for name in context.request.security_groups
    ]


def _openstack_zones(driver) -> list:
    """Nova's available availability zones, as NodeLocations named by the zone."""
    from libcloud.compute.base import NodeLocation

    reply = driver.connection.request("/os-availability-zone").object
    return [
        NodeLocation(zone["zoneName"], zone["zoneName"], "", driver)
        for zone in reply["availabilityZoneInfo"]
        if (zone.get("zoneState") or {}).get("available")
    ]


def _openstack_zone(context: LaunchContext) -> str | None:
    """The availability zone of the placement (one of Nova's, looked up); None: Nova's choice."""
    location = context.location()
    return None if location is None else location.name


def _azure_image(context: LaunchContext):
    return context.image(location=context.location())


def _azure_size(context: LaunchContext):
    return context.size(location=context.location())


_AZURE_VM = re.compile(
    r"/resourceGroups/(?P<group>[^/]+)/providers/Microsoft\.Compute/virtualMachines/(?P<name>[^/]+)\Z",
    re.IGNORECASE,
)


def _azure_id(resource_id: str) -> str:
    """``<resource group>:<vm name>`` for a VM's resource path (which holds slashes, and
    cannot be a path segment of the instance routes); anything else as it is."""
    match = _AZURE_VM.search(resource_id)
    return f"{match['group']}:{match['name']}" if match else resource_id


def random_root_password() -> str:
    """A random root password, never shown: Linode requires one with an image; log in with
    the keys of launch_kwargs' ex_authorized_keys."""
    return secrets.token_urlsafe(24) + "-Aa1"


def _key_pair_id(context: LaunchContext) -> list:
    return [context.key_pair().extra["id"]]


def _public_key(context: LaunchContext) -> list:
    return [context.key_pair().public_key]


# -- the clouds' error bodies: (the cloud's error code, its message) ---------------------------


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _code(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


def _error_object(body: Any) -> tuple[str | None, str | None]:
    """``{"error": {"code": ..., "message": ...}}`` (Azure Resource Manager), or with
    ``"errors": [{"reason" or "code": ..., "message": ...}]`` inside (Google APIs)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None
    first = (error.get("errors") or [{}])[0]
    first = first if isinstance(first, dict) else {}
    code = _text(first.get("code")) or _text(first.get("reason")) or _text(error.get("code"))
    return code, _text(first.get("message")) or _text(error.get("message"))


def _digitalocean_error(body: Any) -> tuple[str | None, str | None]:
    """``{"id": "unprocessable_entity", "message": "...", "request_id": "..."}``."""
    if not isinstance(body, dict):
        return None, None
    return _text(body.get("id")), _text(body.get("message"))


def _vultr_error(body: Any) -> tuple[str | None, str | None]:
    """``{"error": "...", "status": 400}``: no code of its own."""
    return (None, _text(body.get("error"))) if isinstance(body, dict) else (None, None)


def _linode_error(body: Any) -> tuple[str | None, str | None]:
    """``{"errors": [{"reason": "...", "field": "..."}]}``: no code of its own."""
    errors = body.get("errors") if isinstance(body, dict) else None
    first = errors[0] if isinstance(errors, list) and errors else None
    if not isinstance(first, dict):
        return None, None
    reason, field = _text(first.get("reason")), _text(first.get("field"))
    return None, f"{reason} ({field})" if reason and field else reason


def _fault(body: Any) -> tuple[str | None, str | None]:
    """One member named for the fault: nova's ``{"badRequest": {"code": 400, "message":
    "..."}}`` (the fault's name is the code), CloudStack's ``{"deployvirtualmachineresponse":
    {"errorcode": 533, "errortext": "..."}}`` (its errorcode is)."""
    if not isinstance(body, dict) or len(body) != 1:
        return None, None
    ((name, fault),) = body.items()
    if not isinstance(fault, dict):
        return None, None
    if "errortext" in fault:
        return _code(fault.get("errorcode")), _text(fault.get("errortext"))
    return name, _text(fault.get("message"))


_LOCATION = Mapped(
    "location",
    "NodeLocation from the catalog, by id then name",
    lambda c: c.location(),
    catalog="location",
)


def _user_data(argument: str, doc: str = "user_data") -> Mapped:
    """user_data as given, to create_node's ``argument``."""
    return Mapped(argument, doc, lambda c: c.request.user_data)


def _security_groups(context: LaunchContext) -> list[str]:
    return list(context.request.security_groups)


def _shipped(name: str, driver_class: str, **profile: Any) -> Profile:
    """The profile of a driver libcloud ships: its provider name is ``name`` and its class is
    ``driver_class`` of ``libcloud.compute.drivers.<name>``."""
    return Profile(
        name=name,
        driver=name,
        concrete=f"libcloud.compute.drivers.{name}:{driver_class}",
        **profile,
    )


def _api_token(what: str, **construction: Any) -> Construction:
    """A constructor that takes one API token (``launchprov.libcloud.key``) and no secret."""
    return Construction(secret_to=None, required_settings={"key": what}, **construction)


def _token_cloud(
    name: str,
    driver_class: str,
    *,
    key_name: Mapped,
    user_data: Mapped,
    **profile: Any,
) -> Profile:
    """A cloud of one API token whose create_node needs a location: images, sizes and the
    location from its catalog, one node per create_node, the key pair and user data as
    ``key_name`` and ``user_data`` say (DigitalOcean, Vultr, Linode)."""
    return _shipped(
        name,
        driver_class,
        parameters={
            **LOOKED_UP,
            **COUNTS,
            "key_name": key_name,
            "user_data": user_data,
            "placement": _LOCATION,
        },
        needs_location=True,
        **profile,
    )


PROFILES: dict[str, Profile] = {
    "ec2": EC2_PROFILE,
    "openstack": _shipped(
        "openstack",
        "OpenStack_1_1_NodeDriver",
        summary="OpenStack Nova (compute API 2.x), Keystone authentication",
        construction=Construction(
            settings=frozenset({"secure"}),
            required_settings={"key": "the user name", "secret": "the password"},
            required_kwargs={"ex_force_auth_url": "Keystone's URL"},
        ),
        parameters={
            **LOOKED_UP,
            **COUNTS,
            "key_name": Mapped("ex_keyname", "key_name", lambda c: c.request.key_name),
            "security_groups": Mapped(
                "ex_security_groups",
                "security_groups, by name",
                _given("security_groups", _openstack_groups),
            ),
            "user_data": _user_data("ex_userdata", "user_data, base64-encoded by libcloud"),
            "placement": Mapped(
                "ex_availability_zone",
                "availability_zone, one of Nova's available zones (os-availability-zone)",
                _openstack_zone,
                catalog="location",
            ),
            "tags": Mapped(
                "ex_metadata", "server metadata, with launchprov's own", launch_tag_values
            ),
            "client_token": TAG_LOOKUP_ONLY,
            "expires_in": LEASE,
        },
        locations=_openstack_zones,
        reading=Reading(
            instance_type=("flavorId",),
            ami=("imageId",),
            placement=("availability_zone",),
            key_name=("key_name",),
            tags="metadata",
        ),
        errors=(
            ErrorReply(
                CAPACITY,
                text=r"No valid host was found",
                source="nova's NoValidHost: a fault body (api-ref 'Faults'), code 500",
            ),
            ErrorReply(
                THROTTLING,
                status=413,
                code="overLimit",
                source="nova's legacy rate-limit middleware: 413 overLimit, Retry-After",
            ),
        ),
        error_body=_fault,
        node_states="NODE_STATE_MAP",
    ),
    "gce": Profile(
        name="gce",
        driver="launchprov.providers.libcloud.drivers:StrictGCENodeDriver",
        concrete="launchprov.providers.libcloud.drivers:StrictGCENodeDriver",
        summary="Google Compute Engine",
        construction=Construction(
            key_to="user_id",
            secret_to="key",  # noqa: S106 - an argument name
            settings=frozenset(),
            required_settings={
                "key": "the service account's e-mail or the client id",
            },
            required_kwargs={
                "project": "the project id",
                "datacenter": "the zone of calls that name none (us-central1-a)",
            },
        ),
        parameters={
            "ami": Mapped(
                "image",
                "the image by name (ex_get_image, public image projects included)",
                lambda c: c.image(),
            ),
            "instance_type": LOOKED_UP["instance_type"],
            **COUNTS,
            "security_groups": Mapped(
                "ex_tags",
                "network tags, which firewall rules target",
                _given("security_groups", _security_groups),
            ),
            "user_data": Mapped(
                "ex_metadata",
                "instance metadata user-data (cloud-init)",
                _given("user_data", lambda c: {"user-data": c.request.user_data}),
            ),
            "placement": _LOCATION,
            "tags": Mapped(
                "ex_labels",
                "labels, with launchprov's own, written within GCE's rules (labels module)",
                lambda c: labels.encode(launch_tag_values(c)),
            ),
            "client_token": TAG_LOOKUP_ONLY,
        },
        reading=Reading(
            instance_type=("machineType",),
            ami=("image",),
            placement=("zone.name", "zone"),
            tags="labels",
            decode_key=labels.decode_key,
            decode_value=labels.decode_value,
            canonical_value=labels.canonical,
        ),
        errors=(
            *(
                ErrorReply(CAPACITY, code=code, source="the insert operation's error")
                for code in (
                    "ZONE_RESOURCE_POOL_EXHAUSTED",
                    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
                )
            ),
            *(
                ErrorReply(THROTTLING, code=reason, source="Google APIs: 403 or 429, reason")
                for reason in ("rateLimitExceeded", "userRateLimitExceeded")
            ),
        ),
        error_body=_error_object,
        node_states="NODE_STATE_MAP",
        # The aggregated list: instances of every zone of the project, not the datacenter's.
        listing={"ex_zone": "all"},
    ),
    "azure_arm": _shipped(
        "azure_arm",
        "AzureNodeDriver",
        summary="Microsoft Azure Resource Manager",
        construction=Construction(
            settings=frozenset({"secure"}),
            required_settings={
                "key": "the application (client) id",
                "secret": "the application's secret",
            },
            required_kwargs={"tenant_id": "the tenant id", "subscription_id": "the subscription"},
        ),
        parameters={
            "ami": Mapped(
                "image",
                "get_image(publisher:offer:sku:version, location)",
                _azure_image,
            ),
            "instance_type": Mapped(
                "size", "NodeSize of list_sizes(location), by id then name", _azure_size
            ),
            **COUNTS,
            # No user_data: libcloud 3.9's AzureNodeDriver puts ex_customdata into its JSON body
            # as base64 bytes, which cannot be serialised (a str cannot be base64-encoded).
            "placement": _LOCATION,
            "tags": Mapped("ex_tags", "resource tags, with launchprov's own", launch_tag_values),
            "client_token": TAG_LOOKUP_ONLY,
            "expires_in": LEASE,
        },
        reading=Reading(
            instance_type=("properties.hardwareProfile.vmSize",),
            ami=("properties.storageProfile.imageReference.id",),
            placement=("location",),
            tags="tags",
            public_id=_azure_id,
        ),
        needs_location=True,
        errors=(
            *(
                ErrorReply(CAPACITY, code=code, source="ARM: 409 {error: {code, message}}")
                for code in (
                    "SkuNotAvailable",
                    "AllocationFailed",
                    "ZonalAllocationFailed",
                    "OverconstrainedAllocationRequest",
                    "OverconstrainedZonalAllocationRequest",
                )
            ),
            ErrorReply(THROTTLING, code="TooManyRequests", source="ARM throttling, Retry-After"),
            *(
                ErrorReply(AUTHENTICATION, code=code, source="ARM: 401 {error: {code}}")
                for code in ("AuthenticationFailed", "InvalidAuthenticationToken")
            ),
        ),
        error_body=_error_object,
    ),
    "digitalocean": _token_cloud(
        "digitalocean",
        "DigitalOcean_v2_NodeDriver",
        summary="DigitalOcean (API v2)",
        construction=_api_token("the API token", settings=frozenset(), timeout="connection"),
        key_name=Mapped(
            "ex_create_attr",
            "ssh_keys: the id of the key pair of that name (list_key_pairs)",
            _given("key_name", lambda c: {"ssh_keys": _key_pair_id(c)}),
        ),
        user_data=_user_data("ex_user_data"),
        reading=Reading(
            instance_type=("size_slug",), ami=("image.slug", "image.id"), placement=("region.slug",)
        ),
        actions={"stop": "ex_shutdown_node", "start": "ex_power_on_node"},
        errors=(
            ErrorReply(
                CAPACITY,
                status=422,
                text=r"\b(size|region) is not available",
                source="API v2: 422 {id: unprocessable_entity, message}",
            ),
        ),
        error_body=_digitalocean_error,
        node_states="NODE_STATE_MAP",
    ),
    "vultr": _token_cloud(
        "vultr",
        "VultrNodeDriverV2",
        summary="Vultr (API v2)",
        construction=_api_token("the API key"),
        key_name=Mapped(
            "ex_ssh_key_ids",
            "the id of the key pair of that name (list_key_pairs)",
            _given("key_name", _key_pair_id),
        ),
        user_data=_user_data("ex_userdata"),
        reading=Reading(instance_type=("plan",), ami=("os_id",), placement=("location", "region")),
        error_body=_vultr_error,
        node_states="NODE_STATE_MAP",
    ),
    "linode": _token_cloud(
        "linode",
        "LinodeNodeDriverV4",
        summary="Linode (API v4)",
        construction=_api_token("the API token"),
        key_name=Mapped(
            "ex_authorized_keys",
            "the public key of the key pair of that name (list_key_pairs)",
            _given("key_name", _public_key),
        ),
        user_data=_user_data("ex_userdata", "user_data (metadata service)"),
        reading=Reading(instance_type=("type",), ami=("image",), placement=("location", "region")),
        launch_arguments={"root_pass": random_root_password},
        error_body=_linode_error,
        node_states="LINODE_STATES",
    ),
    "cloudstack": _shipped(
        "cloudstack",
        "CloudStackNodeDriver",
        summary="Apache CloudStack",
        construction=Construction(
            settings=frozenset({"secure", "host", "port"}),
            timeout="connection",
            required_settings={"key": "the API key", "secret": "the secret key"},
        ),
        parameters={
            **LOOKED_UP,
            **COUNTS,
            "key_name": Mapped("ex_keyname", "keypair", lambda c: c.request.key_name),
            "security_groups": Mapped(
                "ex_security_groups",
                "securitygroupnames",
                _given("security_groups", _security_groups),
            ),
            "user_data": _user_data("ex_userdata", "userdata, base64-encoded by libcloud"),
            "placement": _LOCATION,
        },
        reading=Reading(
            instance_type=("size_id", "size_name"),
            ami=("image_id", "image_name"),
            placement=("zone_name", "zone_id"),
            key_name=("key_name",),
            tags="tags",
        ),
        launch_arguments={"ex_start_vm": True},
        actions={"stop": "ex_stop", "start": "ex_start"},
        errors=(
            ErrorReply(
                CAPACITY,
                code="533",
                source="errorcode 533, INSUFFICIENT_CAPACITY_ERROR (ApiErrorCode)",
            ),
            ErrorReply(
                CAPACITY,
                text=r"Unable to create a deployment for",
                source="a failed deployVirtualMachine job: its errortext (libcloud keeps no code)",
            ),
        ),
        error_body=_fault,
        node_states="NODE_STATE_MAP",
    ),
    "dummy": Profile(
        name="dummy",
        summary="launchprov's in-memory test double of a tagging cloud",
        driver="launchprov.providers.libcloud.drivers:CloudlikeDummyNodeDriver",
        concrete="launchprov.providers.libcloud.drivers:CloudlikeDummyNodeDriver",
        construction=Construction(
            key_to="creds",
            secret_to=None,
            settings=frozenset(),
            timeout="none",
            # The dummy needs some credential; "0" gives it its two sample nodes.
            defaults={"creds": "0"},
        ),
        parameters={
            "ami": Mapped("image", "NodeImage(id=ami), not looked up", unlooked_image),
            "instance_type": Mapped(
                "size", "NodeSize(id=instance_type), not looked up", unlooked_size
            ),
            **COUNTS,
            "tags": Mapped(
                "ex_metadata",
                "kept in node.extra['tags'], with launchprov's own",
                launch_tag_values,
            ),
            "client_token": TAG_LOOKUP_ONLY,
            "expires_in": LEASE,
        },
        reading=Reading(tags="tags"),
        shared=True,
    ),
}


def profile_of(driver_name: str) -> Profile:
    """The profile of a driver name; for any other libcloud driver, the generic profile read
    off its class (:mod:`.generic`); for a name libcloud does not know, the generic template
    (building it stops startup, naming the driver)."""
    if driver_name in PROFILES:
        return PROFILES[driver_name]
    from libcloud.compute.providers import get_driver

    try:
        cls = get_driver(driver_name)
    except Exception:  # AttributeError when unknown, Exception when retired: said at startup
        return dataclasses.replace(GENERIC, name=driver_name, driver=driver_name)
    return generic.profile_for(driver_name, cls)


#: What the adapter itself does with a parameter it maps to no create_node argument.
BY_THE_ADAPTER = "(the adapter)"

#: Parameters no driver sees: launchprov turns them into launches of their own, on every driver
#: whose capacity error is known (Profile.reports_capacity); elsewhere they are refused by name.
ABOVE_THE_ADAPTER = {"fallback": "(launchprov: each alternative is a launch)"}


def parameter_matrix(parameters) -> dict[str, dict[str, str | None]]:
    """Driver -> launch parameter -> the create_node argument it becomes,
    :data:`BY_THE_ADAPTER`, or None: refused (400 naming it when given explicitly).

    The docs' driver matrix is this table; a test checks it against behaviour.
    """
    return {
        name: {
            parameter: (
                (ABOVE_THE_ADAPTER[parameter] if profile.reports_capacity else None)
                if parameter in ABOVE_THE_ADAPTER
                else None
                if parameter not in profile.parameters
                else profile.parameters[parameter].argument or BY_THE_ADAPTER
            )
            for parameter in parameters
        }
        for name, profile in {**PROFILES, "generic": GENERIC}.items()
    }


def action_matrix() -> dict[str, dict[str, str | None]]:
    """Driver -> action -> the driver method or EC2 call that performs it, or None: 501."""
    from launchprov.providers.libcloud.ec2 import EC2_CALLS

    matrix: dict[str, dict[str, str | None]] = {}
    for name, profile in PROFILES.items():
        if profile.calls == "ec2":
            matrix[name] = dict(EC2_CALLS)
            continue
        matrix[name] = {
            action: profile.action_method(action) if profile.supports(action) else None
            for action in ACTION_METHODS
        }
    return matrix
