"""libcloud's EC2 driver: its profile, and the EC2 calls the adapter sends itself.

One ``create_node`` call, which is one RunInstances, launches every node. The AMI and the
instance type are not looked up first: EC2 validates them itself (its ``InvalidAMIID.NotFound``
is the caller's answer, as with boto3), which also spares a DescribeImages call that would list
every public image of the region.

libcloud's ``list_nodes`` is not used: it ignores NextToken (it stops at the first page) and
makes a DescribeAddresses call besides. Pages are cut by :func:`launchprov.providers.paging.page`
out of DescribeInstances pages. The actions are sent as EC2 calls too: an HTTP 200 reply is
EC2 accepting the call, whether or not it carries ``<return>`` (moto's RebootInstances reply
does not, and libcloud's ``reboot_node`` reads that as False); only an explicit
``<return>false</return>`` is a refusal. EC2's rules (filters, page sizes, error codes, tags)
are :mod:`launchprov.providers.ec2_common`'s, shared with the boto3 adapter.
"""

from __future__ import annotations

from libcloud.compute.base import NodeDriver
from libcloud.compute.drivers.ec2 import NAMESPACE, EC2NodeLocation, ExEC2AvailabilityZone
from libcloud.utils.xml import findall, findtext

from launchprov.providers import ec2_common
from launchprov.providers.interface import (
    Instance,
    InstanceQuery,
    ProviderError,
    UnsupportedParameters,
)
from launchprov.providers.libcloud.drivers import EC2ErrorReply
from launchprov.providers.libcloud.errors import ACTION_REFUSED, NAME, provider_error
from launchprov.providers.libcloud.instances import ec2_instance
from launchprov.providers.libcloud.profile import (
    LEASE,
    Construction,
    LaunchContext,
    Mapped,
    Profile,
    unlooked_image,
    unlooked_size,
)

#: The EC2 call of each action.
EC2_CALLS = {
    "terminate": "TerminateInstances",
    "stop": "StopInstances",
    "start": "StartInstances",
    "reboot": "RebootInstances",
}


def _location(context: LaunchContext) -> EC2NodeLocation:
    # The driver refuses a zone whose region_name is not its own; the driver is that region's.
    request = context.request
    zone = ExEC2AvailabilityZone(request.placement, "available", request.region)
    return EC2NodeLocation(
        id=request.placement,
        name=request.placement,
        country="",
        driver=context.driver,
        availability_zone=zone,
    )


_TERMINATE_ON_SHUTDOWN = {"terminate": True, "stop": False}


def _terminate_on_shutdown(context: LaunchContext) -> bool:
    behaviour = context.request.instance_initiated_shutdown_behavior
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
PARAMETERS: dict[str, Mapped] = {
    "ami": Mapped("image", "NodeImage(id=ami), not looked up: EC2 validates it", unlooked_image),
    "instance_type": Mapped("size", "NodeSize(id=instance_type), not looked up", unlooked_size),
    "min_count": Mapped("ex_mincount", "MinCount", lambda c: c.request.min_count),
    "max_count": Mapped("ex_maxcount", "MaxCount", lambda c: c.request.max_count),
    "key_name": Mapped("ex_keyname", "KeyName", lambda c: c.request.key_name),
    "security_groups": Mapped(
        "ex_security_groups",
        "SecurityGroup.N: names only (sg- ids are refused: the driver needs a subnet for them)",
        lambda c: list(c.request.security_groups),
    ),
    "user_data": Mapped(
        "ex_userdata", "UserData, base64-encoded by libcloud", lambda c: c.request.user_data
    ),
    "placement": Mapped(
        "location", "EC2NodeLocation of the zone, with the zone's region", _location
    ),
    "placement_group": Mapped(
        "ex_placement_group", "Placement.GroupName", lambda c: c.request.placement_group
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
        lambda c: "true" if c.request.ebs_optimized else None,
    ),
    # A Name tag also goes as create_node's name (see the provider's EC2 launch).
    "tags": Mapped(
        "ex_metadata",
        "TagSpecification.1: exactly these tags, and launchprov's own",
        lambda c: ec2_common.launch_tags(c.request),
    ),
    "client_token": Mapped("ex_clienttoken", "ClientToken", lambda c: c.request.client_token),
    "expires_in": LEASE,
}

PROFILE = Profile(
    name="ec2",
    summary="Amazon EC2 (and EC2-compatible endpoints such as moto)",
    driver="launchprov.providers.libcloud.drivers:TolerantEC2NodeDriver",
    concrete="launchprov.providers.libcloud.drivers:TolerantEC2NodeDriver",
    construction=Construction(
        settings=frozenset({"secure", "host", "port"}),
        required_settings={
            "key": "the access key id",
            "secret": "the secret access key",
        },
        # Signature version 2 is refused by every region opened since 2014 and by moto.
        defaults={"signature_version": "4"},
    ),
    parameters=PARAMETERS,
    calls="ec2",
)


def request(
    driver: NodeDriver,
    params: dict[str, str],
    instance_id: str | None = None,
    action: str | None = None,
):
    """Send one EC2 API call; return the parsed reply.

    An error code with a meaning of its own (no such instance, a state that forbids
    ``action``, a client token reused) raises that exception; any other failure a
    ProviderError.
    """
    try:
        return driver.connection.request(driver.path, params=params).object
    except EC2ErrorReply as exc:
        meaning = ec2_common.classified(NAME, exc.error_code, exc.message, instance_id, action)
        raise (meaning or provider_error(exc)) from exc
    except Exception as exc:  # anything the SDK raises is a provider failure
        raise provider_error(exc) from exc


def instances(
    driver: NodeDriver, query: InstanceQuery, page_size: int, token: str | None
) -> tuple[list[Instance], str | None]:
    """One DescribeInstances page: its instances, and EC2's token of the next page or None."""
    params = {
        "Action": "DescribeInstances",
        "MaxResults": str(ec2_common.page_size(page_size)),
        **driver._build_filters(ec2_common.describe_filters(query)),
    }
    if token is not None:
        params["NextToken"] = token
    reply = request(driver, params)
    found = [
        ec2_instance(node)
        for reservation in findall(reply, "reservationSet/item", NAMESPACE)
        for node in driver._to_nodes(reservation, "instancesSet/item")
    ]
    return found, findtext(reply, "nextToken", NAMESPACE) or None


def act(driver: NodeDriver, action: str, instance_id: str) -> None:
    """Send the EC2 call of ``action`` on one instance."""
    call = EC2_CALLS[action]
    reply = request(driver, {"Action": call, "InstanceId.1": instance_id}, instance_id, action)
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
