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

import dataclasses
import threading

from libcloud.compute.base import NodeDriver
from libcloud.compute.drivers.ec2 import (
    NAMESPACE,
    EC2NetworkSubnet,
    EC2NodeLocation,
    ExEC2AvailabilityZone,
)
from libcloud.utils.xml import findall, findtext

from launchprov.providers import ec2_common
from launchprov.providers.interface import (
    Check,
    Instance,
    InstanceQuery,
    LaunchRequest,
    ProviderError,
    UnsupportedParameters,
)
from launchprov.providers.libcloud.drivers import EC2ErrorReply
from launchprov.providers.libcloud.errors import (
    ACTION_REFUSED,
    NAME,
    change_error,
    provider_error,
)
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


def _location(context: LaunchContext) -> EC2NodeLocation | None:
    # The driver refuses a zone whose region_name is not its own; the driver is that region's.
    request = context.request
    if request.zone is None:
        return None  # the subnet decides the zone
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


def _subnet(context: LaunchContext) -> EC2NetworkSubnet | None:
    subnet_id = context.request.subnet_id
    return None if subnet_id is None else EC2NetworkSubnet(subnet_id, subnet_id, "available")


def _instance_profile(context: LaunchContext) -> str | None:
    profile = context.request.iam_instance_profile
    # libcloud sends "arn:aws:iam:..." as an ARN and anything else as a name.
    if (
        profile is not None
        and profile.startswith("arn:")
        and not profile.startswith("arn:aws:iam:")
    ):
        raise UnsupportedParameters(
            NAME,
            {"iam_instance_profile": "libcloud's EC2 driver sends only arn:aws:iam: ARNs as ARNs"},
        )
    return profile


#: Root devices of images (name, size in GiB or None), by (region, image id): an image's
#: never changes.
_ROOT_DEVICES: dict[tuple[str, str], tuple[str, int | None]] = {}
_ROOT_DEVICES_LOCK = threading.Lock()


def root_device(driver: NodeDriver, ami: str) -> tuple[str, int | None]:
    """The image's root device name and size (DescribeImages, once per image and process)."""
    key = (driver.region_name, ami)
    root = _ROOT_DEVICES.get(key)
    if root is None:
        reply = request(driver, {"Action": "DescribeImages", "ImageId.1": ami})
        device = findtext(reply, "imagesSet/item/rootDeviceName", NAMESPACE)
        if not device:
            raise ProviderError(NAME, "InvalidAMIID.NotFound", f"no image {ami}", retryable=False)
        size = None
        for mapping in findall(reply, "imagesSet/item/blockDeviceMapping/item", NAMESPACE):
            if findtext(mapping, "deviceName", NAMESPACE) == device:
                size = int(findtext(mapping, "ebs/volumeSize", NAMESPACE) or 0) or None
        root = (device, size)
        with _ROOT_DEVICES_LOCK:
            if len(_ROOT_DEVICES) >= 1024:
                _ROOT_DEVICES.clear()
            _ROOT_DEVICES[key] = root
    return root


def _root_volume(context: LaunchContext) -> list[dict] | None:
    if not ec2_common.root_volume(context.request):
        return None
    device, size = root_device(context.driver, context.request.ami)
    return [{"DeviceName": device, "Ebs": ec2_common.root_volume(context.request, size)}]


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
    "subnet_id": Mapped("ex_subnet", "SubnetId: EC2NetworkSubnet(id), not looked up", _subnet),
    "iam_instance_profile": Mapped(
        "ex_iamprofile", "IamInstanceProfile.Name, or .Arn for an ARN", _instance_profile
    ),
    "root_volume_size": Mapped(
        "ex_blockdevicemappings",
        "BlockDeviceMapping.1 on the image's root device (DescribeImages once per image), "
        "with root_volume_type",
        _root_volume,
    ),
    "root_volume_type": Mapped(None, "in ex_blockdevicemappings, with root_volume_size"),
    "metadata_tokens": Mapped(
        "ex_metadata_options",
        "MetadataOptions.HttpTokens (launchprov's EC2 driver sends it)",
        lambda c: {"HttpTokens": c.request.metadata_tokens},
    ),
    "spot": Mapped(
        "ex_spot", "InstanceMarketOptions.MarketType=spot when true", lambda c: c.request.spot
    ),
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
    cloud_defaults=ec2_common.SEED_DEFAULTS,
)


def request(
    driver: NodeDriver,
    params: dict[str, str],
    instance_id: str | None = None,
    action: str | None = None,
    changes: str | None = None,
):
    """Send one EC2 API call; return the parsed reply.

    An error code with a meaning of its own (no such instance, a state that forbids
    ``action``, a client token reused) raises that exception; any other failure a
    ProviderError. ``changes`` names the operation of a call that changes something
    (``terminate``, ``tag``...): its failure says whether it may have been carried out.
    """
    try:
        return driver.connection.request(driver.path, params=params).object
    except EC2ErrorReply as exc:
        meaning = ec2_common.classified(NAME, exc.error_code, exc.message, instance_id, action)
        raise (meaning or provider_error(exc)) from exc
    except Exception as exc:  # anything the SDK raises is a provider failure
        raise (change_error(exc, None, changes) if changes else provider_error(exc)) from exc


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


def describe_query(driver: NodeDriver, query: InstanceQuery, ids) -> list[Instance]:
    """The instances of ``ids`` (at most FILTER_VALUES_MAX) that ``query``'s filters still
    match: what is left of a cut page of a listing."""
    narrowed = dataclasses.replace(query, ids=tuple(ids))
    found: list[Instance] = []
    token = None
    while True:
        page, token = instances(driver, narrowed, ec2_common.MAX_PAGE_SIZE, token)
        found += page
        if token is None:
            return found


def describe_many(driver: NodeDriver, region: str, ids: list[str]) -> dict[str, Instance]:
    """The instances of ``ids`` (those EC2 knows), by an instance-id filter: DescribeInstances
    pages, at most FILTER_VALUES_MAX ids a call. libcloud's ``list_nodes(ex_node_ids=...)``
    would stop at the first page and add a DescribeAddresses call."""
    found: dict[str, Instance] = {}
    for start in range(0, len(ids), ec2_common.FILTER_VALUES_MAX):
        query = InstanceQuery(region, ids=tuple(ids[start : start + ec2_common.FILTER_VALUES_MAX]))
        token = None
        while True:
            page, token = instances(driver, query, 1000, token)
            found.update((instance.id, instance) for instance in page)
            if token is None:
                break
    return found


def terminate_many(driver: NodeDriver, ids: list[str]) -> dict[str, bool]:
    """One TerminateInstances for ``ids``: the ids EC2 is terminating. EC2 refuses the whole
    call when one id is unknown, in a state that forbids it or protected: then none is
    answered, and each is terminated alone, to get its own answer."""
    params = {"Action": "TerminateInstances"}
    params.update({f"InstanceId.{n}": item for n, item in enumerate(ids, start=1)})
    try:
        reply = driver.connection.request(driver.path, params=params).object
    except EC2ErrorReply as exc:
        if exc.error_code in ec2_common.ONE_INSTANCE_CODES:
            return {}
        raise provider_error(exc) from exc
    except Exception as exc:  # anything the SDK raises is a provider failure
        raise change_error(exc, None, "terminate") from exc
    return {
        findtext(item, "instanceId", NAMESPACE): True
        for item in findall(reply, "instancesSet/item", NAMESPACE)
    }


def terminations(reply) -> dict[str, bool]:
    """id -> whether the TerminateInstances of ``reply`` began its termination (its previous
    state was not shutting-down or terminated)."""
    return {
        findtext(item, "instanceId", NAMESPACE): findtext(item, "previousState/name", NAMESPACE)
        not in ec2_common.TERMINATING_STATES
        for item in findall(reply, "instancesSet/item", NAMESPACE)
    }


def act(driver: NodeDriver, action: str, instance_id: str) -> None:
    """Send the EC2 call of ``action`` on one instance."""
    call = EC2_CALLS[action]
    params = {"Action": call, "InstanceId.1": instance_id}
    reply = request(driver, params, instance_id, action, changes=action)
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


def preflight(driver: NodeDriver, launch: LaunchRequest) -> list[Check]:
    """The lookups a launch's RunInstances relies on, each a named check: the image
    (DescribeImages), the subnet (DescribeSubnets), the zone (DescribeAvailabilityZones) and
    the instance type's offering in it (DescribeInstanceTypeOfferings)."""
    checks: list[Check] = []

    def ask(name: str, params: dict[str, str], found: str | None = None):
        try:
            reply = request(driver, params)
        except ProviderError as exc:
            if exc.code in ProviderError.TRANSPORT_CODES:
                raise
            checks.append(Check(name, False, exc.code, exc.message))
            return None
        if found is not None and not findall(reply, found, NAMESPACE):
            return False
        checks.append(Check(name, True))
        return reply

    if (
        ask("image", {"Action": "DescribeImages", "ImageId.1": launch.ami}, "imagesSet/item")
        is False
    ):
        checks.append(Check("image", False, "InvalidAMIID.NotFound", f"no image {launch.ami}"))
    zone = launch.zone
    if launch.subnet_id is not None:
        params = {"Action": "DescribeSubnets", "SubnetId.1": launch.subnet_id}
        reply = ask("subnet", params, "subnetSet/item")
        if reply is False:
            checks.append(Check("subnet", False, "InvalidSubnetID.NotFound", launch.subnet_id))
        elif reply is not None:
            zone = zone or findtext(reply, "subnetSet/item/availabilityZone", NAMESPACE)
    if zone is not None:
        params = {"Action": "DescribeAvailabilityZones", "ZoneName.1": zone}
        if ask("location", params, "availabilityZoneInfo/item") is False:
            message = f"no availability zone {zone}"
            checks.append(Check("location", False, "InvalidParameterValue", message))
        params = {
            "Action": "DescribeInstanceTypeOfferings",
            "LocationType": "availability-zone",
            "Filter.1.Name": "instance-type",
            "Filter.1.Value.1": launch.instance_type,
            "Filter.2.Name": "location",
            "Filter.2.Value.1": zone,
        }
        if ask("instance_type_offered", params, "instanceTypeOfferingSet/item") is False:
            message = f"{launch.instance_type} is not offered in {zone}"
            checks.append(Check("instance_type_offered", False, "Unsupported", message))
    return checks
