"""The boto3 adapter: EC2 through one shared client per region.

boto3 clients are thread-safe and sessions are not, so one session builds the clients under a
lock and every waitress thread shares them; a client costs hundreds of milliseconds to build.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import threading
from datetime import UTC
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotocoreConnectionError,
)
from botocore.parsers import ResponseParserError
from zope.interface import implementer

from launchprov.placement import region_of
from launchprov.providers import deadline, ec2_common, paging
from launchprov.providers.batching import OFF, Batcher, BatchSettings
from launchprov.providers.deadline import DeadlinePassed
from launchprov.providers.ec2_common import (
    FILTER_VALUES_MAX,
    IMAGE_ID,
    INSTANCE_ID,
    ONE_INSTANCE_CODES,
    SEED_DEFAULTS,
    TERMINATING_STATES,
    as_written,
    classified,
    default_zone,
    is_retryable,
    launch_tags,
    root_volume,
    split_security_groups,
    state_of,
)
from launchprov.providers.ec2_common import describe_filters as ec2_filters
from launchprov.providers.interface import (
    CAPACITY_CODES,
    OUTCOME_NONE,
    OUTCOME_UNKNOWN,
    Check,
    Instance,
    InstanceNotFound,
    InstancePage,
    InstanceQuery,
    IProvider,
    LaunchRequest,
    ProviderError,
    needs_call,
)
from launchprov.settings import ConfigurationError

NAME = "ec2"

#: How many images' root device names are kept (an image's never changes).
ROOT_DEVICE_CACHE_SIZE = 1024


def final_capacity_error(response=None, operation=None, **kwargs):
    """botocore ``needs-retry`` hook of RunInstances: a capacity error is final.

    EC2 answers InsufficientInstanceCapacity with HTTP 500, which botocore's retry modes count
    as transient: they would send the same RunInstances again (and again), when what can help
    is another instance type or zone, the caller's fallback. Raising here ends the call with
    the error as EC2 gave it; returning None leaves the decision to botocore's own handler.
    """
    if response is None:
        return None
    parsed = response[1]
    if parsed.get("Error", {}).get("Code") in CAPACITY_CODES:
        raise ClientError(parsed, operation.name)
    return None


def run_instances_params(
    request: LaunchRequest, root_device: str | None = None, root_size: int | None = None
) -> dict[str, Any]:
    """The RunInstances arguments for a launch request: every parameter, mapped.

    ``root_device`` is the image's root device name and ``root_size`` its size, needed (and
    looked up by the caller) only when the request sizes or types the root volume.
    """
    placement = {}
    if request.zone is not None:  # else the subnet decides the zone
        placement["AvailabilityZone"] = request.zone
    if request.placement_group:
        placement["GroupName"] = request.placement_group
    params: dict[str, Any] = {
        "ImageId": request.ami,
        "InstanceType": request.instance_type,
        "MinCount": request.min_count,
        "MaxCount": request.max_count,
        "KeyName": request.key_name,
        "InstanceInitiatedShutdownBehavior": request.instance_initiated_shutdown_behavior,
        "EbsOptimized": request.ebs_optimized,
        "MetadataOptions": {"HttpTokens": request.metadata_tokens},
    }
    if placement:
        params["Placement"] = placement
    if request.subnet_id is not None:
        params["SubnetId"] = request.subnet_id
    if request.iam_instance_profile is not None:
        key = "Arn" if request.iam_instance_profile.startswith("arn:") else "Name"
        params["IamInstanceProfile"] = {key: request.iam_instance_profile}
    volume = root_volume(request, root_size)
    if volume:
        params["BlockDeviceMappings"] = [{"DeviceName": root_device, "Ebs": volume}]
    if request.spot:
        params["InstanceMarketOptions"] = {"MarketType": "spot"}
    names, ids = split_security_groups(request.security_groups)
    if names:
        params["SecurityGroups"] = names
    if ids:
        params["SecurityGroupIds"] = ids
    if request.user_data:
        params["UserData"] = request.user_data  # boto3 does the base64
    all_tags = launch_tags(request)
    if all_tags:
        tags = [{"Key": key, "Value": value} for key, value in all_tags.items()]
        params["TagSpecifications"] = [{"ResourceType": "instance", "Tags": tags}]
    if request.client_token is not None:
        params["ClientToken"] = request.client_token
    return params


def root_of(image: dict[str, Any]) -> tuple[str, int | None]:
    """(root device name, its size in GiB or None) of a DescribeImages item."""
    device = image["RootDeviceName"]
    sizes = [
        mapping.get("Ebs", {}).get("VolumeSize")
        for mapping in image.get("BlockDeviceMappings", [])
        if mapping.get("DeviceName") == device
    ]
    return device, next((size for size in sizes if size), None)


def describe_filters(query: InstanceQuery) -> list[dict[str, Any]]:
    """DescribeInstances filters for a query, in boto3's shape."""
    return [{"Name": name, "Values": values} for name, values in ec2_filters(query).items()]


def batchable(query: InstanceQuery) -> bool:
    """Whether a listing may join a batch: a first page, by one value of its ``batch_by`` tag."""
    return (
        query.batch_by is not None
        and len(query.tags.get(query.batch_by, ())) == 1
        and query.page_token is None
        and not query.ids
    )


def lookup_key(query: InstanceQuery) -> tuple:
    """What batched listings share: the query but for the value of its ``batch_by`` tag (and
    its limit, which each request checks on its own answer)."""
    fields = {field.name: getattr(query, field.name) for field in dataclasses.fields(query)}
    fields["tags"] = tuple(
        sorted((key, values) for key, values in query.tags.items() if key != query.batch_by)
    )
    del fields["limit"], fields["page_token"]
    return tuple(sorted(fields.items()))


def to_instance(raw: dict[str, Any]) -> Instance:
    """An Instance from one item of a DescribeInstances reply."""
    launch_time = raw.get("LaunchTime")
    return Instance(
        id=raw["InstanceId"],
        state=state_of(raw.get("State", {}).get("Name")),
        instance_type=raw.get("InstanceType") or None,
        ami=raw.get("ImageId") or None,
        placement=raw.get("Placement", {}).get("AvailabilityZone") or None,
        key_name=raw.get("KeyName") or None,
        security_groups=tuple(group["GroupName"] for group in raw.get("SecurityGroups", [])),
        private_ip=raw.get("PrivateIpAddress") or None,
        public_ip=raw.get("PublicIpAddress") or None,
        private_dns=raw.get("PrivateDnsName") or None,
        public_dns=raw.get("PublicDnsName") or None,
        launch_time=launch_time.astimezone(UTC) if launch_time else None,
        tags={tag["Key"]: tag["Value"] for tag in raw.get("Tags", [])},
        subnet_id=raw.get("SubnetId") or None,
        iam_instance_profile=raw.get("IamInstanceProfile", {}).get("Arn") or None,
        spot=raw.get("InstanceLifecycle") == "spot",
        metadata_tokens=raw.get("MetadataOptions", {}).get("HttpTokens") or None,
    )


#: Failures known to have changed nothing: an error reply (EC2 refused), no connection made
#: (refused, unreachable, connect time-out, TLS), no credentials. Any other failure of a call
#: that changes something -- no reply in time, a connection dropped after sending, a reply that
#: could not be read, no new attempt after the deadline (an earlier one may have reached EC2)
#: -- may have been carried out: a RunInstances may have launched instances, a
#: TerminateInstances terminated them.
_NOTHING_LAUNCHED = (
    ClientError,
    BotocoreConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
)


#: The EC2 calls that change something, by the IProvider operation they serve: their failure
#: may leave them carried out (``outcome`` unknown). Every other call only reads.
CHANGING_CALLS = {
    "run_instances": "launch",
    "terminate_instances": "terminate",
    "stop_instances": "stop",
    "start_instances": "start",
    "reboot_instances": "reboot",
    "create_tags": "tag",
    "delete_tags": "untag",
}


def launch_outcome(exc: Exception) -> str:
    """Whether a failed call that changes something (a RunInstances, a TerminateInstances...)
    may have been carried out (ProviderError.outcome)."""
    if isinstance(exc, _NOTHING_LAUNCHED):
        return OUTCOME_NONE
    return OUTCOME_UNKNOWN


def probe_config(timeout: float) -> Config:
    """botocore's configuration of a probe: one attempt, connected and answered within
    ``timeout`` seconds."""
    return Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"total_max_attempts": 1, "mode": "standard"},
    )


#: botocore's longest pause between two attempts (its standard mode's cap), and what its standard
#: mode may add to it when a reply asks for more (x-amz-retry-after).
MAX_BACKOFF = 20.0
RETRY_AFTER_EXTRA = 5.0
_ATTEMPT = re.compile(r"(?:^|;)\s*attempt=(\d+)")


@dataclasses.dataclass(frozen=True)
class AttemptBound:
    """How long one attempt of a call on a client may take: connected within the connect
    time-out, answered within the read time-out, then botocore's pause before the next attempt
    (at most 2^(n-1) s after the n-th, jittered; capped at 20 s, and up to 5 s more on a reply's
    x-amz-retry-after, in its standard mode). DNS resolution is not bounded by these."""

    connect: float
    read: float
    attempts: int
    mode: str

    @classmethod
    def of(cls, config: Config) -> AttemptBound | None:
        """The bound of a client made with ``config``; None in botocore's adaptive retry mode,
        whose client-side rate limiter may wait for longer than any of these."""
        retries = config.retries or {}
        mode = retries.get("mode", "legacy")
        if mode == "adaptive":
            return None
        attempts = retries.get("total_max_attempts") or retries.get("max_attempts", 4) + 1
        return cls(config.connect_timeout, config.read_timeout, attempts, mode)

    def seconds(self, attempt: int = 1) -> float:
        """The longest the ``attempt``-th attempt (from 1) and the pause after it may take."""
        pause = 0.0
        if attempt < self.attempts:
            pause = 2.0 ** (attempt - 1)
            if self.mode == "standard":
                pause = min(pause, MAX_BACKOFF) + RETRY_AFTER_EXTRA
        return self.connect + self.read + pause


def stop_after_deadline(request=None, bound: AttemptBound | None = None, **kwargs) -> None:
    """botocore's before-send hook: no new attempt once the request's deadline has passed, nor,
    when the call runs in the thread that answers the request (``deadline.inline()``), one
    that could end after it (``bound``: the client's :class:`AttemptBound`).

    botocore's retries would otherwise hold the provider slot for every attempt of a call
    whose answer nobody waits for any more (see launchprov.bulkhead).
    """
    left = deadline.remaining()
    if left is None:
        return
    if left <= 0:
        raise DeadlinePassed("the request's deadline has passed: no further attempt")
    if deadline.inline() and bound is not None:
        header = (request.headers.get("amz-sdk-request") or "") if request is not None else ""
        match = _ATTEMPT.search(header if isinstance(header, str) else header.decode())
        # Without the header (no retry context), the attempt's number is not known: the last.
        needed = bound.seconds(int(match[1]) if match else bound.attempts - 1)
        if left < needed:
            raise DeadlinePassed(
                f"no further attempt: {left:.1f} s are left of the request's deadline, and an "
                f"attempt may take {needed:g} s"
            )


def provider_error(exc: Exception) -> ProviderError:
    """Translate any botocore failure into a ProviderError."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        code = error.get("Code") or f"HTTP{status}"
        message = error.get("Message") or str(exc)
        return ProviderError(NAME, code, message, retryable=is_retryable(code, status))
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
        return ProviderError(NAME, ProviderError.TIMEOUT, str(exc), retryable=True)
    if isinstance(exc, EndpointConnectionError | HTTPClientError):
        return ProviderError(NAME, ProviderError.UNREACHABLE, str(exc), retryable=True)
    if isinstance(exc, ResponseParserError):
        # str(exc) carries the whole unparseable body (an HTML page): keep its first line.
        # Not retryable: botocore has retried the transient statuses (500, 502-504) itself,
        # so a reply still unparseable after its attempts is one that repeats.
        message = str(exc).splitlines()[0]
        return ProviderError(NAME, ProviderError.MALFORMED_RESPONSE, message, retryable=False)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        return ProviderError(NAME, ProviderError.AUTH_FAILURE, str(exc), retryable=False)
    if isinstance(exc, DeadlinePassed):
        return ProviderError(NAME, ProviderError.TIMEOUT, str(exc), retryable=True)
    return ProviderError(NAME, ProviderError.UNEXPECTED, f"{type(exc).__name__}: {exc}")


@implementer(IProvider)
class EC2Provider:
    """Launches on EC2 (or any EC2-compatible endpoint) with boto3."""

    name = NAME
    image_id_pattern = IMAGE_ID
    instance_id_pattern = INSTANCE_ID
    can_tag = True
    reports_capacity = True  # InsufficientInstanceCapacity and its kin
    #: The defaults of launches on EC2 where launchprov.defaults.* leaves them unset.
    cloud_defaults = SEED_DEFAULTS

    def __init__(
        self,
        config: Config,
        endpoint_url: str | None = None,
        session=None,
        default_region: str = "us-east-1",
        batching: BatchSettings = OFF,
    ):
        self._config = config
        self._attempt_bound = AttemptBound.of(config)
        #: How long the first attempt of a call may take: launchprov.bulkhead runs the call in
        #: the request's own thread when this is less than what is left of its deadline (no
        #: later attempt starts unless it fits, see stop_after_deadline); None: not bounded.
        self.attempt_seconds = self._attempt_bound and self._attempt_bound.seconds(1)
        self._endpoint_url = endpoint_url
        self._session = session or boto3.session.Session()
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._default_region = default_region
        self._ping_clients: dict[float, Any] = {}
        # Concurrent describes and terminations of one region: one call for the union of ids.
        self._describe_batcher = Batcher("describe", self._describe_many, batching)
        self._terminate_batcher = Batcher("terminate", self._terminate_many, batching)
        self._lookup_batcher = Batcher("list_instances", self._find_many, batching)
        self.batchers = (self._describe_batcher, self._terminate_batcher, self._lookup_batcher)
        self._root_devices: dict[tuple[str, str], tuple[str, int | None]] = {}

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> EC2Provider:
        default_region = region_of(default_zone(settings))
        if settings["launchprov.ec2.sandbox"]:
            if settings["launchprov.ec2.endpoint_url"]:
                raise ConfigurationError(
                    "launchprov.ec2.sandbox = true and launchprov.ec2.endpoint_url are exclusive"
                )
            from launchprov.providers.sandbox import start_sandbox

            start_sandbox(
                region=default_region,
                key_name=settings["launchprov.defaults.key_name"] or SEED_DEFAULTS["key_name"],
                security_groups=settings["launchprov.defaults.security_groups"]
                or SEED_DEFAULTS["security_groups"],
            )
        config = Config(
            connect_timeout=settings["launchprov.ec2.connect_timeout"],
            read_timeout=settings["launchprov.ec2.read_timeout"],
            max_pool_connections=settings["launchprov.ec2.max_pool_connections"],
            retries={
                "total_max_attempts": settings["launchprov.ec2.max_attempts"],
                "mode": settings["launchprov.ec2.retry_mode"],
            },
        )
        provider = cls(
            config,
            endpoint_url=settings["launchprov.ec2.endpoint_url"],
            default_region=default_region,
            batching=BatchSettings.from_settings(settings),
        )
        provider.client(default_region)  # built now, so that no request pays for it
        return provider

    def client(self, region: str):
        """The shared EC2 client of ``region``, built on first use."""
        client = self._clients.get(region)
        if client is None:
            with self._lock:
                client = self._clients.get(region)
                if client is None:
                    client = self._session.client(
                        "ec2",
                        region_name=region,
                        endpoint_url=self._endpoint_url,
                        config=self._config,
                    )
                    client.meta.events.register(
                        "before-send.ec2",
                        functools.partial(stop_after_deadline, bound=self._attempt_bound),
                    )
                    # More specific than botocore's own needs-retry.ec2: asked first.
                    client.meta.events.register(
                        "needs-retry.ec2.RunInstances", final_capacity_error
                    )
                    self._clients[region] = client
        return client

    def _call(self, region: str, operation: str, instance_id: str | None = None, **params):
        """Call EC2; turn its failures into launchprov's exceptions (a failed RunInstances
        says whether it may have launched: ``outcome``)."""
        try:
            return getattr(self.client(region), operation)(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            message = exc.response.get("Error", {}).get("Message", "")
            action = operation.removesuffix("_instances") if instance_id is not None else None
            meaning = classified(NAME, code, message, instance_id, action)
            raise (meaning or self._error(operation, exc)) from exc
        except Exception as exc:  # anything the SDK raises is a provider failure
            raise self._error(operation, exc) from exc

    @staticmethod
    def _error(operation: str, exc: Exception) -> ProviderError:
        error = provider_error(exc)
        if operation in CHANGING_CALLS:
            error.outcome = launch_outcome(exc)
            if error.outcome != OUTCOME_NONE and CHANGING_CALLS[operation] != "launch":
                error.operation = CHANGING_CALLS[operation]
        return error

    def ping(self, timeout: float) -> None:
        # A client of its own: one attempt, short time-outs, whatever the launch settings say.
        client = self._ping_clients.get(timeout)
        if client is None:
            with self._lock:
                client = self._ping_clients.get(timeout)
                if client is None:
                    client = self._ping_clients[timeout] = self._session.client(
                        "ec2",
                        region_name=self._default_region,
                        endpoint_url=self._endpoint_url,
                        config=Config(
                            connect_timeout=timeout,
                            read_timeout=timeout,
                            retries={"total_max_attempts": 1, "mode": "standard"},
                        ),
                    )
        try:
            client.describe_availability_zones()
        except Exception as exc:  # anything the SDK raises is a provider failure
            raise provider_error(exc) from exc

    def _probe(self, timeout: float) -> EC2Provider:
        """An adapter on the same session and endpoint whose calls make one attempt within
        ``timeout`` seconds, whatever the launch settings say: for the configuration checks."""
        return type(self)(
            probe_config(timeout), self._endpoint_url, self._session, self._default_region
        )

    def caller_identity(self, timeout: float) -> str:
        """The ARN the credentials stand for (STS GetCallerIdentity, which needs no permission).

        STS is asked where botocore's own settings say (``AWS_ENDPOINT_URL_STS``,
        ``AWS_ENDPOINT_URL``), else at ``launchprov.ec2.endpoint_url`` when it is set (moto,
        LocalStack), else at AWS.
        """
        own_endpoint = "AWS_ENDPOINT_URL_STS" in os.environ or "AWS_ENDPOINT_URL" in os.environ
        client = self._session.client(
            "sts",
            region_name=self._default_region,
            endpoint_url=None if own_endpoint else self._endpoint_url,
            config=probe_config(timeout),
        )
        try:
            return client.get_caller_identity()["Arn"]
        except Exception as exc:  # anything the SDK raises is a provider failure
            raise provider_error(exc) from exc

    def configuration_checks(
        self, request: LaunchRequest, images: list[str], timeout: float
    ) -> list[Check]:
        """What launches with the deployment's defaults need, asked without launching: the
        credentials, the region and zone of ``request.placement``, its key pair and security
        groups, every image of ``images`` and, when there is one, a RunInstances with DryRun of
        ``request`` (its ``ami`` the first image). One attempt per call, within ``timeout``."""
        probe = self._probe(timeout)
        checks: list[Check] = []

        def failed(name: str, exc: ProviderError) -> Check:
            return Check(name, False, exc.code, exc.message)

        try:
            checks.append(Check("credentials", True, None, probe.caller_identity(timeout)))
        except ProviderError as exc:
            checks.append(failed("credentials", exc))
        region, zone = request.region, request.zone
        try:
            reply = probe._call(region, "describe_availability_zones")
        except ProviderError as exc:
            checks.append(failed(f"region {region}", exc))
        else:
            zones = {item["ZoneName"]: item.get("State") for item in reply["AvailabilityZones"]}
            if zones:
                checks.append(Check(f"region {region}", True, None, f"{len(zones)} zones"))
            else:
                message = f"no availability zones: {region} is not a region of this endpoint"
                checks.append(Check(f"region {region}", False, "InvalidRegion", message))
            if zone is not None and zones.get(zone) == "available":
                checks.append(Check(f"zone {zone}", True))
            elif zone is not None and zones:
                state = zones.get(zone)
                message = f"{zone} is {state}" if state else f"{zone} is not a zone of {region}"
                checks.append(Check(f"zone {zone}", False, "InvalidZone", message))
        if request.key_name is not None:
            name = f"key pair {request.key_name}"
            try:
                probe._call(region, "describe_key_pairs", KeyNames=[request.key_name])
                checks.append(Check(name, True))
            except ProviderError as exc:
                checks.append(failed(name, as_written(exc, request)))
        try:
            for check in probe._security_group_checks(region, request.security_groups or ()):
                name = check.name.replace("security_group:", "security group ")
                checks.append(dataclasses.replace(check, name=name))
        except ProviderError as exc:
            checks.append(failed("security groups", exc))
        if images:
            try:
                reply = probe._call(
                    region, "describe_images", Filters=[{"Name": "image-id", "Values": images}]
                )
            except ProviderError as exc:
                checks += [failed(f"image {image}", exc) for image in images]
            else:
                found = {image["ImageId"] for image in reply["Images"]}
                for image in images:
                    message = f"The image id '[{image}]' does not exist in {region}"
                    known = image in found
                    code = None if known else "InvalidAMIID.NotFound"
                    checks.append(Check(f"image {image}", known, code, None if known else message))
            checks.append(probe._dry_run(request))
        return checks

    def _dry_run(self, request: LaunchRequest) -> Check:
        """RunInstances with DryRun: EC2 answers DryRunOperation when the call would have
        succeeded (permissions included), else the error the launch would get."""
        name = f"dry-run launch {request.ami} {request.instance_type}"
        root = self.root_device(request.region, request.ami) if root_volume(request) else None
        params = run_instances_params(request, *(root or (None, None)))
        params.pop("ClientToken", None)  # a dry run is not the launch the token names
        try:
            self._call(request.region, "run_instances", DryRun=True, **params)
        except ProviderError as exc:
            if exc.code == "DryRunOperation":
                return Check(name, True)
            return Check(name, False, exc.code, as_written(exc, request).message)
        return Check(name, False, "DryRunIgnored", "the endpoint launched: it ignores DryRun")

    def launch(self, request: LaunchRequest) -> list[str]:
        root = self.root_device(request.region, request.ami) if root_volume(request) else None
        params = run_instances_params(request, *(root or (None, None)))
        try:
            reply = self._call(request.region, "run_instances", **params)
        except ProviderError as exc:
            as_written(exc, request)
            raise
        return [instance["InstanceId"] for instance in reply["Instances"]]

    def root_device(self, region: str, ami: str) -> tuple[str, int | None]:
        """The root device of an image: its name (``/dev/xvda``) and size in GiB (None when
        the image does not say), asked once per image."""
        key = (region, ami)
        root = self._root_devices.get(key)
        if root is None:
            root = root_of(self._image(region, ami))
            with self._lock:
                if len(self._root_devices) >= ROOT_DEVICE_CACHE_SIZE:
                    self._root_devices.clear()
                self._root_devices[key] = root
        return root

    def _image(self, region: str, ami: str) -> dict[str, Any]:
        images = self._call(region, "describe_images", ImageIds=[ami])["Images"]
        if not images:  # EC2 answers an error instead; an EC2-compatible endpoint may not
            raise ProviderError(
                NAME, "InvalidAMIID.NotFound", f"The image id '[{ami}]' does not exist"
            )
        return images[0]

    def preflight(self, request: LaunchRequest) -> list[Check]:
        """RunInstances with DryRun, and the checks a dry run does not make or name."""
        region = request.region
        checks: list[Check] = []

        def ask(name: str, operation: str, **params) -> dict[str, Any] | None:
            try:
                return self._call(region, operation, **params)
            except ProviderError as exc:
                if exc.code in ProviderError.TRANSPORT_CODES:
                    raise
                checks.append(Check(name, False, exc.code, as_written(exc, request).message))
                return None

        root = ("/dev/xvda", None)  # for the dry run when the image is unknown (it fails anyway)
        images = ask("image", "describe_images", ImageIds=[request.ami])
        if images is not None:
            if images["Images"]:
                checks.append(Check("image", True))
                root = root_of(images["Images"][0])
            else:
                checks.append(Check("image", False, "InvalidAMIID.NotFound", request.ami))
        if ask("key_pair", "describe_key_pairs", KeyNames=[request.key_name]) is not None:
            checks.append(Check("key_pair", True))
        checks += self._security_group_checks(region, request.security_groups)
        zone = request.zone
        if request.subnet_id is not None:
            subnets = ask("subnet", "describe_subnets", SubnetIds=[request.subnet_id])
            if subnets is not None and subnets["Subnets"]:
                checks.append(Check("subnet", True))
                zone = zone or subnets["Subnets"][0]["AvailabilityZone"]
            elif subnets is not None:
                checks.append(Check("subnet", False, "InvalidSubnetID.NotFound", request.subnet_id))
        if zone is not None:
            offerings = ask(
                "instance_type_offered",
                "describe_instance_type_offerings",
                LocationType="availability-zone",
                Filters=[
                    {"Name": "instance-type", "Values": [request.instance_type]},
                    {"Name": "location", "Values": [zone]},
                ],
            )
            if offerings is not None and offerings["InstanceTypeOfferings"]:
                checks.append(Check("instance_type_offered", True))
            elif offerings is not None:
                message = f"{request.instance_type} is not offered in {zone}"
                checks.append(Check("instance_type_offered", False, "Unsupported", message))
        params = run_instances_params(request, *root)
        params.pop("ClientToken", None)  # a dry run is not the launch the token names
        try:
            self._call(region, "run_instances", DryRun=True, **params)
            # An endpoint that ignores DryRun has just launched: say so, loudly.
            checks.append(Check("dry_run", False, "DryRunIgnored", "the endpoint launched"))
        except ProviderError as exc:
            if exc.code in ProviderError.TRANSPORT_CODES:
                raise
            ok = exc.code == "DryRunOperation"
            message = None if ok else as_written(exc, request).message
            checks.append(Check("dry_run", ok, None if ok else exc.code, message))
        return checks

    def _security_group_checks(self, region: str, groups) -> list[Check]:
        """One check per security group, from one DescribeSecurityGroups per kind (names,
        ids) filtered by value: missing groups are absent from the answer, not an error."""
        checks = []
        names, ids = split_security_groups(groups)
        for kind, values, key in (("group-name", names, "GroupName"), ("group-id", ids, "GroupId")):
            if not values:
                continue
            try:
                reply = self._call(
                    region, "describe_security_groups", Filters=[{"Name": kind, "Values": values}]
                )
            except ProviderError as exc:
                if exc.code in ProviderError.TRANSPORT_CODES:
                    raise
                checks.append(Check("security_groups", False, exc.code, exc.message))
                continue
            found = {group[key] for group in reply["SecurityGroups"]}
            for value in values:
                if value in found:
                    checks.append(Check(f"security_group:{value}", True))
                else:
                    message = f"The security group '{value}' does not exist"
                    checks.append(
                        Check(f"security_group:{value}", False, "InvalidGroup.NotFound", message)
                    )
        return checks

    def describe(self, instance_id: str, region: str) -> Instance:
        if self._describe_batcher.enabled:
            instance = self._batched(
                self._describe_batcher, "describe_instances", region, instance_id
            )
            if instance is not None:
                return instance
        # Alone: batching is off, or the batch did not return the id (an instance just launched
        # may not be visible to every query yet): asked once more, alone, before it is a 404.
        reply = self._call(region, "describe_instances", instance_id, InstanceIds=[instance_id])
        for reservation in reply["Reservations"]:
            for raw in reservation["Instances"]:
                return to_instance(raw)
        raise InstanceNotFound(NAME, instance_id)

    def _batched(self, batcher: Batcher, operation: str, key, item_id: str):
        """``batcher.submit(key, item_id)``; a request whose deadline passes while it waits for
        the batch's call (made in another request's thread) gets the provider's time-out, as if
        it had made the call itself (a termination's outcome: unknown)."""
        try:
            return batcher.submit(key, item_id)
        except DeadlinePassed as exc:
            raise self._error(operation, exc) from exc

    def _describe_many(self, region: str, ids: list[str]) -> dict[str, Instance]:
        """One DescribeInstances for a batch, by an instance-id filter: unlike InstanceIds, a
        filter does not fail the whole call for an id that does not exist."""
        instances: dict[str, Instance] = {}
        for start in range(0, len(ids), FILTER_VALUES_MAX):
            params: dict[str, Any] = {
                "Filters": [
                    {"Name": "instance-id", "Values": ids[start : start + FILTER_VALUES_MAX]}
                ]
            }
            while True:
                reply = self._call(region, "describe_instances", **params)
                for reservation in reply["Reservations"]:
                    for raw in reservation["Instances"]:
                        instances[raw["InstanceId"]] = to_instance(raw)
                if not reply.get("NextToken"):
                    break
                params["NextToken"] = reply["NextToken"]
        return instances

    def _terminate_many(self, region: str, ids: list[str]) -> dict[str, bool]:
        """One TerminateInstances for a batch. EC2 refuses the whole call when one id is unknown
        or in a state that forbids it: then no id is answered, and each request asks alone, to
        get its own answer."""
        try:
            reply = self.client(region).terminate_instances(InstanceIds=ids)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ONE_INSTANCE_CODES:
                return {}
            raise provider_error(exc) from exc
        except Exception as exc:  # anything the SDK raises is a provider failure
            raise self._error("terminate_instances", exc) from exc
        return {item["InstanceId"]: True for item in reply.get("TerminatingInstances", [])}

    def list_instances(self, query: InstanceQuery) -> InstancePage:
        if self._lookup_batcher.enabled and batchable(query):
            value = query.tags[query.batch_by][0]
            found = self._batched(
                self._lookup_batcher, "describe_instances", lookup_key(query), value
            )
            if len(found) <= query.limit:
                return InstancePage(sorted(found, key=paging.by_id), None)
        return self._list_alone(query)

    def _find_many(self, key: tuple, values: list[str]) -> dict[str, list[Instance]]:
        """One listing for the values of ``batch_by`` asked by a batch of queries (the rest of
        the query, ``key``, is theirs, shared): every instance, grouped by that tag's value."""
        fields = dict(key)
        batch_by = fields["batch_by"]
        fields["tags"] = {**dict(fields["tags"]), batch_by: tuple(values)}
        query = InstanceQuery(**fields)
        found: dict[str, list[Instance]] = {value: [] for value in values}
        params: dict[str, Any] = {"Filters": describe_filters(query), "MaxResults": 1000}
        while True:
            reply = self._call(query.region, "describe_instances", **params)
            for reservation in reply["Reservations"]:
                for raw in reservation["Instances"]:
                    instance = to_instance(raw)
                    found.setdefault(instance.tags.get(batch_by, ""), []).append(instance)
            if not reply.get("NextToken"):
                return found
            params["NextToken"] = reply["NextToken"]

    def _list_alone(self, query: InstanceQuery) -> InstancePage:
        query_filters = describe_filters(query)

        def fetch(token: str | None, size: int):
            params: dict[str, Any] = {"Filters": query_filters, "MaxResults": size}
            if token:
                params["NextToken"] = token
            reply = self._call(query.region, "describe_instances", **params)
            instances = [
                to_instance(raw)
                for reservation in reply["Reservations"]
                for raw in reservation["Instances"]
            ]
            return instances, reply.get("NextToken") or None

        def fetch_ids(ids):
            # What is left of a cut page, by id: the query's filters too, so that an instance
            # that left the listing meanwhile is not served.
            params: dict[str, Any] = {
                "Filters": describe_filters(dataclasses.replace(query, ids=tuple(ids)))
            }
            found = []
            while True:
                reply = self._call(query.region, "describe_instances", **params)
                found += [
                    to_instance(raw)
                    for reservation in reply["Reservations"]
                    for raw in reservation["Instances"]
                ]
                if not reply.get("NextToken"):
                    return found
                params["NextToken"] = reply["NextToken"]

        instances, token = paging.page(
            fetch,
            query.limit,
            query.page_token,
            paging.scope_of(query),
            ec2_common.LISTING_PAGES,
            fetch_ids=fetch_ids,
        )
        return InstancePage(instances, token)

    def _act(self, instance_id: str, region: str, action: str, operation: str) -> Instance:
        instance = self.describe(instance_id, region)
        if not needs_call(NAME, instance, action):
            return instance  # done already: a retry after an unknown outcome, say
        self._call(region, operation, instance_id, InstanceIds=[instance_id])
        return self.describe(instance_id, region)

    def terminate(self, instance_id: str, region: str) -> Instance:
        instance = self.describe(instance_id, region)
        if not needs_call(NAME, instance, "terminate"):
            return instance
        batched = self._terminate_batcher.enabled and self._batched(
            self._terminate_batcher, "terminate_instances", region, instance_id
        )
        if not batched:
            self._call(region, "terminate_instances", instance_id, InstanceIds=[instance_id])
        return self.describe(instance_id, region)

    def stop(self, instance_id: str, region: str) -> Instance:
        return self._act(instance_id, region, "stop", "stop_instances")

    def start(self, instance_id: str, region: str) -> Instance:
        return self._act(instance_id, region, "start", "start_instances")

    def reboot(self, instance_id: str, region: str) -> Instance:
        return self._act(instance_id, region, "reboot", "reboot_instances")

    def terminate_many(self, instance_ids: list[str], region: str) -> dict[str, bool]:
        reply = self._call(region, "terminate_instances", InstanceIds=list(instance_ids))
        return {
            item["InstanceId"]: item.get("PreviousState", {}).get("Name") not in TERMINATING_STATES
            for item in reply.get("TerminatingInstances", [])
        }

    def tag(self, instance_id: str, region: str, tags: dict[str, str]) -> None:
        pairs = [{"Key": key, "Value": value} for key, value in tags.items()]
        self._call(region, "create_tags", instance_id, Resources=[instance_id], Tags=pairs)

    def untag(self, instance_id: str, region: str, keys) -> None:
        pairs = [{"Key": key} for key in keys]
        self._call(region, "delete_tags", instance_id, Resources=[instance_id], Tags=pairs)
