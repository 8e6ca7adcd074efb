"""The Apache Libcloud adapter: IProvider over any libcloud compute driver, as its profile says.

libcloud's Connection keeps per-request state (action, method, signing) on itself, so a driver
cannot be shared between threads: each thread builds its own on first use, one per region,
except for a profile marked ``shared`` (the dummy holds its cloud in the driver instance).

``terminate``, ``stop``, ``start`` and ``reboot`` describe the instance first, refuse what its
state forbids (:func:`~launchprov.providers.interface.ensure_allowed`, before any call: moto
would start a terminated instance), make one call, and describe it again. An action whose
instance is done already (terminated, stopped) makes no call.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any

from libcloud.compute.base import Node, NodeDriver
from zope.interface import implementer

from launchprov.placement import region_of
from launchprov.providers import deadline, ec2_common, paging
from launchprov.providers.batching import OFF, Batcher, BatchSettings
from launchprov.providers.ec2_common import (
    IMAGE_ID,
    INSTANCE_ID,
    TERMINATING_STATES,
    as_written,
    default_zone,
    split_security_groups,
)
from launchprov.providers.interface import (
    OUTCOME_NONE,
    OUTCOME_PARTIAL,
    OUTCOME_UNKNOWN,
    ActionNotSupported,
    Check,
    Instance,
    InstanceNotFound,
    InstancePage,
    InstanceQuery,
    IProvider,
    LaunchRequest,
    ProviderError,
    UnsupportedParameters,
)
from launchprov.providers.interface import needs_call as interface_needs_call
from launchprov.providers.libcloud import construction, ec2, generic
from launchprov.providers.libcloud.catalog import Catalog
from launchprov.providers.libcloud.drivers import as_list
from launchprov.providers.libcloud.errors import (
    ACTION_REFUSED,
    CATALOG_CODES,
    NAME,
    PARTIAL_LAUNCH,
    change_error,
    launch_error,
    provider_error,
)
from launchprov.providers.libcloud.instances import (
    matches,
    node_instance,
    tolerate_unnamed_states,
)
from launchprov.providers.libcloud.profile import LaunchContext, Profile, node_name
from launchprov.providers.libcloud.profiles import profile_of
from launchprov.settings import ConfigurationError

log = logging.getLogger(__name__)


def node_ids(created) -> list[str]:
    """The ids of what create_node returned."""
    return [str(node.id) for node in as_list(created)]


def needs_call(instance: Instance, action: str) -> bool:
    """Whether ``action`` must reach the provider; InvalidState when the state forbids it.

    An action whose instance is in its done state already (terminated, stopped:
    :data:`~launchprov.providers.interface.DONE_STATES`) needs no call: a retry is safe.
    """
    return interface_needs_call(NAME, instance, action)


@implementer(IProvider)
class LibcloudProvider:
    """Launches through an Apache Libcloud compute driver, as its profile says."""

    name = NAME

    def __init__(
        self,
        profile: Profile,
        build_driver: Callable[[str | None], NodeDriver],
        *,
        region: str | None = None,
        regions: frozenset[str] | None = None,
        catalog_ttl: float = 300.0,
        launch_kwargs: dict[str, Any] | None = None,
        batching: BatchSettings = OFF,
    ):
        """``build_driver(region)`` makes a driver; ``region`` is the one of a driver that
        does not take it from the request; ``regions`` are those the EC2 driver knows."""
        self.profile = profile
        self.driver_name = profile.name
        self.is_ec2 = profile.calls == "ec2"
        self.image_id_pattern = IMAGE_ID if self.is_ec2 else None
        self.instance_id_pattern = INSTANCE_ID if self.is_ec2 else None
        #: Only EC2's placements are availability zones; other clouds name their locations.
        self.placement_is_zone = self.is_ec2
        #: The defaults of launches where launchprov.defaults.* leaves them unset.
        self.cloud_defaults = profile.cloud_defaults
        self.parameters = profile.parameters
        #: Whether the profile holds leases: tags at launch that launchprov reads back.
        self.can_tag = "expires_in" in profile.parameters
        #: Whether a capacity error of this cloud is known: without one, no fallback is tried.
        self.reports_capacity = profile.reports_capacity
        self.catalog = Catalog(profile.name, catalog_ttl, profile=profile)
        # Every driver built reads a node status its table does not name as unknown.
        self._build_driver = lambda where: tolerate_unnamed_states(build_driver(where), profile)
        self._region = region
        self._regions = regions
        self._launch_kwargs = dict(launch_kwargs or {})
        self._listing = dict(profile.listing)
        self._local = threading.local()
        self._shared = self._build_driver(region) if profile.shared else None
        # EC2 takes many ids in one call: concurrent describes and terminations share one.
        # Other drivers have no call for a set of nodes, and are asked one by one.
        batching = batching if self.is_ec2 else OFF
        self._describe_batcher = Batcher("describe", self._describe_many, batching)
        self._terminate_batcher = Batcher("terminate", self._terminate_many, batching)
        self.batchers = (self._describe_batcher, self._terminate_batcher)

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> LibcloudProvider:
        configured = settings["launchprov.libcloud.driver"]
        profile = profile_of(configured.strip().lower())
        build = construction.factory(profile, settings)
        options: dict[str, Any] = {
            "catalog_ttl": settings["launchprov.libcloud.catalog_ttl"],
            "batching": BatchSettings.from_settings(settings),
        }
        if profile.calls == "ec2":
            regions = frozenset(construction.driver_class(profile, configured).list_regions())
            zone = default_zone(settings)
            startup_region = region_of(zone)
            if startup_region not in regions:
                raise ConfigurationError(
                    f"launchprov.defaults.placement = {zone!r}"
                    f": libcloud's EC2 driver does not know region {startup_region}"
                )
            _, ids = split_security_groups(
                settings["launchprov.defaults.security_groups"]
                or profile.cloud_defaults["security_groups"]
            )
            if ids:
                raise ConfigurationError(
                    f"launchprov.defaults.security_groups: {', '.join(ids)}: libcloud's EC2 "
                    "driver takes security-group ids only with a subnet; use group names"
                )
            options.update(region=startup_region, regions=regions)
        else:
            startup_region = settings["launchprov.libcloud.region"]
            if construction.retries_enabled():
                log.warning(
                    "LIBCLOUD_RETRY_FAILED_HTTP_REQUESTS is on: the %s driver may send a "
                    "create_node request twice and launch twice",
                    profile.name,
                )
            options.update(region=startup_region)
        try:
            provider = cls(profile, build, **options)  # this builds a shared driver ...
            driver = provider.driver(startup_region)  # ... and this any other
            if profile.derived and type(driver) is not profile.driver_class():
                # A class that builds another (CloudSigma's, by API version): read that one.
                profile = generic.profile_for(profile.name, type(driver))
                provider = cls(profile, build, **options)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"launchprov.libcloud.driver = {configured!r}: cannot build the driver with "
                f"the launchprov.libcloud.* settings and driver_kwargs: {exc}"
            ) from None
        except ProviderError as exc:
            raise ConfigurationError(
                f"launchprov.libcloud.driver = {configured!r}: building the driver failed: "
                f"{exc.code}: {exc.message}"
            ) from None
        if profile.derived:
            refused = generic.refusal(profile, type(driver))
            if refused is not None:
                raise ConfigurationError(f"launchprov.libcloud.driver = {configured!r}: {refused}")
        provider._launch_kwargs = construction.launch_kwargs(profile, driver, settings)
        if profile.derived:
            provider._listing = generic.listing(type(driver), provider._launch_kwargs)
        if not provider.is_ec2:
            provider._check_default_placement(driver, settings["launchprov.defaults.placement"])
        return provider

    def _check_default_placement(self, driver: NodeDriver, placement: str | None) -> None:
        """ConfigurationError naming launchprov.defaults.placement when the cloud's catalog
        does not know it (where the profile looks placements up), or when launch_kwargs'
        ``location`` says the same thing again."""
        if placement is None:
            return
        key = f"launchprov.defaults.placement = {placement!r}"
        if "location" in self._launch_kwargs:
            raise ConfigurationError(
                f"{key} and launchprov.libcloud.launch_kwargs' location both give the default "
                "location: set one of them"
            )
        mapped = self.parameters.get("placement")
        if mapped is None or mapped.catalog is None:
            return  # sent as given (OpenStack's availability zone), or not at all
        try:
            self._lookup(driver, mapped.catalog, placement)
        except ProviderError as exc:
            raise ConfigurationError(
                f"{key}: the {self.driver_name} driver's catalog does not have it "
                f"({exc.code}: {exc.message})"
            ) from None

    def driver(self, region: str | None) -> NodeDriver:
        """This thread's driver for ``region``, built on first use (or the shared one)."""
        if self._shared is not None:
            return self._shared
        drivers = getattr(self._local, "drivers", None)
        if drivers is None:
            drivers = self._local.drivers = {}
        driver = drivers.get(region)
        if driver is None:
            try:
                driver = self._build_driver(region)
            except (TypeError, ValueError):
                raise
            except Exception as exc:  # building may authenticate (Azure, OpenStack): a call
                raise provider_error(exc, self.profile) from exc
            drivers[region] = driver
        return driver

    # -- launching ---------------------------------------------------------------------------

    def launch(self, request: LaunchRequest) -> list[str]:
        self.profile.refuse_unsupported(request)
        if self.is_ec2:
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

    def _arguments(self, context: LaunchContext) -> dict[str, Any]:
        """create_node's arguments: the profile's fixed ones, the deployment's, the request's."""
        arguments = {
            name: value() if callable(value) else value
            for name, value in self.profile.launch_arguments.items()
        }
        arguments.update(self._launch_kwargs)
        placement = self.parameters.get("placement")
        if placement is not None and placement.argument == "location":
            arguments.pop("location", None)  # a default location: see _location
        for mapped in self.parameters.values():
            if mapped.argument is None or mapped.convert is None:
                continue
            value = mapped.convert(context)
            if value is not None:  # None: not sent, the driver's own default
                arguments[mapped.argument] = value
        return arguments

    def _ec2_groups(self, request: LaunchRequest) -> tuple[list[str], list[str]]:
        """(names, ids) of the security groups; ids only with a subnet, as libcloud says."""
        names, ids = split_security_groups(request.security_groups)
        if ids and request.subnet_id is None:
            raise UnsupportedParameters(
                NAME,
                {
                    "security_groups": (
                        f"libcloud's EC2 driver takes security-group ids ({', '.join(ids)}) "
                        "only with a subnet_id; give group names, or a subnet"
                    )
                },
            )
        return names, ids

    def _launch_ec2(self, request: LaunchRequest) -> list[str]:
        names, ids = self._ec2_groups(request)
        driver = self._ec2_driver(request.region, "placement")
        context = LaunchContext(request, driver, None)
        arguments = self._arguments(context)
        if ids:
            arguments["ex_security_group_ids"] = ids
            if names:
                arguments["ex_security_groups"] = names
            else:
                arguments.pop("ex_security_groups", None)
        try:
            # No name: no Name tag (TolerantEC2NodeDriver), as the boto3 adapter.
            created = driver.create_node(name=request.tags.get("Name"), **arguments)
        except Exception as exc:  # anything the SDK raises is a provider failure
            raise as_written(_launch_failure(exc), request) from exc
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

    def _lookup(self, driver: NodeDriver, kind: str, wanted: str, **scope):
        """The driver's object of ``kind`` named ``wanted``, through the catalog."""
        if kind == "image" and self.profile.name == "gce":
            return self.catalog.fetched("image", driver.ex_get_image, self._region, wanted)
        if kind == "image" and "location" in scope:  # Azure: images are per location
            location = scope["location"]
            return self.catalog.fetched(
                "image", lambda name: driver.get_image(name, location), self._region, wanted
            )
        if kind == "location" and self.profile.locations is not None:
            listing = self.profile.locations
            return self.catalog.listed_by(kind, lambda: listing(driver), self._region, wanted)
        return self.catalog.listed(kind, driver, self._region, wanted, **scope)

    def _location(self, driver: NodeDriver, request: LaunchRequest):
        """The NodeLocation of a launch: the caller's placement, else the deployment's default
        (launchprov.defaults.placement, or launch_kwargs' ``location``).

        None (the driver's own default) when nothing applies and create_node does not need one;
        UnsupportedParameters naming placement when it does.
        """
        configured = self._launch_kwargs.get("location")
        if "placement" not in request.explicit and configured is not None:
            return self._lookup(driver, "location", str(configured))
        if request.placement is not None:
            return self._lookup(driver, "location", request.placement)
        if self.profile.needs_location:
            raise UnsupportedParameters(
                NAME,
                {
                    "placement": f"the {self.driver_name} driver needs a location: give "
                    "placement (or set launchprov.defaults.placement)"
                },
            )
        return None

    def _launch_one_by_one(self, request: LaunchRequest) -> list[str]:
        driver = self.driver(self._region)
        location = functools.cache(lambda: self._location(driver, request))
        lookup = functools.partial(self._lookup, driver)
        arguments = self._arguments(LaunchContext(request, driver, lookup, location))
        refused = _refused_call(driver, arguments)
        if refused is not None:
            raise refused
        created = []
        failure: Exception | None = None
        for _ in range(request.max_count):
            if deadline.passed():  # nobody waits for this launch any more: no new node
                return self._stopped_at_deadline(request, created)
            try:
                node = driver.create_node(name=node_name(self.profile), **arguments)
            except Exception as exc:  # anything the SDK raises is a provider failure
                failure = exc
                break
            created.append(node)
            deadline.created(self._public_ids([node]))
        if len(created) >= request.min_count:
            if failure is not None:
                log.warning(
                    "created %d of at most %d nodes, at least %d required; then: %r",
                    len(created),
                    request.max_count,
                    request.min_count,
                    failure,
                )
            return self._public_ids(created)
        # Fewer than min_count (<= max_count) were created: a create_node call failed.
        error = launch_error(failure, self.profile)
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

    def _public_ids(self, nodes) -> list[str]:
        return [self.profile.reading.public_id(node_id) for node_id in node_ids(nodes)]

    def _stopped_at_deadline(self, request: LaunchRequest, created) -> list[str]:
        """A launch the request deadline stopped, its caller answered 408 naming ``created``:
        those are kept (tagged with the request id and client token, a retry with that token
        answers them, and the reaper ends their lease), and no more is created. Their ids
        when they are at least ``min_count``; a ``partial`` ProviderError otherwise."""
        ids = self._public_ids(created)
        if len(ids) >= request.min_count:
            return ids
        raise ProviderError(
            NAME,
            ProviderError.TIMEOUT,
            f"the request deadline passed after {len(ids)} of the {request.min_count} "
            "instances required were created; they are kept, and no more is created",
            retryable=True,
            outcome=OUTCOME_PARTIAL if ids else OUTCOME_NONE,
            instances=tuple(ids),
        )

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

    # -- pre-flight --------------------------------------------------------------------------

    def preflight(self, request: LaunchRequest) -> list[Check]:
        """The profile's parameter checks (UnsupportedParameters, as for a launch), then the
        catalog lookups a launch makes, each a named check. Nothing is created.

        EC2: the image, the subnet, the zone and the type's offering in it. Other drivers: the
        lookups their profile's converters make (image, size, location), found in the catalog.
        """
        self.profile.refuse_unsupported(request)
        checks = [Check("parameters", True)]
        if self.is_ec2:
            self._ec2_groups(request)
            return checks + ec2.preflight(self._ec2_driver(request.region, "placement"), request)
        driver = self.driver(self._region)
        looked_up: dict[str, Check] = {}

        def lookup(kind: str, wanted: str, **scope):
            try:
                found = self._lookup(driver, kind, wanted, **scope)
            except ProviderError as exc:
                if exc.code not in ProviderError.TRANSPORT_CODES:
                    looked_up.setdefault(kind, Check(kind, False, exc.code, exc.message))
                raise
            looked_up.setdefault(kind, Check(kind, True))
            return found

        def located():
            found = self._location(driver, request)
            if found is not None:
                looked_up.setdefault("location", Check("location", True))
            return found

        context = LaunchContext(request, driver, lookup, functools.cache(located))
        for mapped in self.parameters.values():
            if mapped.convert is None:
                continue
            try:
                mapped.convert(context)
            except ProviderError as exc:
                if exc.code in ProviderError.TRANSPORT_CODES:
                    raise
                if exc.code == CATALOG_CODES["location"]:
                    message = f"placement {request.placement!r}: {exc.message}"
                    looked_up.setdefault("location", Check("location", False, exc.code, message))
        return checks + list(looked_up.values())

    def ping(self, timeout: float) -> None:
        # A driver of its own, so that the time-out is this one and not the launch setting:
        # libcloud reads connection.timeout when it connects, which the driver did when built,
        # so it connects again. A shared driver holds its cloud in memory (dummy): asked as is.
        try:
            driver = self._shared
            if driver is None:
                driver = self._build_driver(self._region)
                driver.connection.timeout = timeout
                driver.connection.connect()
        except Exception as exc:  # building may authenticate: a call like any other
            raise provider_error(exc, self.profile) from exc
        if self.is_ec2:
            ec2.request(driver, {"Action": "DescribeAvailabilityZones"})
            return
        try:
            driver.list_nodes(**self._listing)  # the one call every driver has
        except Exception as exc:  # anything the SDK raises is a provider failure
            raise provider_error(exc, self.profile) from exc

    # -- the life of an instance -----------------------------------------------------------

    def _fetch(self, query: InstanceQuery) -> paging.Fetch:
        """fetch(provider_token, page_size) for :func:`paging.page`: the query's instances."""
        if self.is_ec2:
            driver = self._ec2_driver(query.region)
            return lambda token, page_size: ec2.instances(driver, query, page_size, token)

        def fetch_all(token, page_size):  # one page: every node (the pager sorts them by id)
            instances = [self._instance(node) for node in self._nodes()]
            canonical = self.profile.reading.canonical_value
            return [i for i in instances if matches(i, query, canonical)], None

        return fetch_all

    def _instance(self, node: Node) -> Instance:
        try:
            return node_instance(node, self.profile.reading)
        except Exception:  # a node no reading foresaw: its id and state at least
            log.exception("cannot read node %r of the %s driver", node, self.driver_name)
            return Instance(id=str(getattr(node, "id", "")), state="unknown")

    def describe(self, instance_id: str, region: str) -> Instance:
        if not self.is_ec2:
            return self._instance(self._node(instance_id))
        if self._describe_batcher.enabled:
            instance = self._describe_batcher.submit(region, instance_id)
            if instance is not None:
                return instance
        # Alone: batching is off, or the batch did not return the id; a 404 after this.
        # EC2 may answer a filtered call with empty pages and a NextToken: the pager follows.
        query = InstanceQuery(region, ids=(instance_id,))
        found, _ = paging.page(
            self._fetch(query), 1, None, paging.scope_of(query), ec2_common.LISTING_PAGES
        )
        if not found:
            raise InstanceNotFound(NAME, instance_id)
        return found[0]

    def _describe_many(self, region: str, ids: list[str]) -> dict[str, Instance]:
        """One DescribeInstances (an instance-id filter: an unknown id fails nothing) for a
        batch, through this thread's driver."""
        return ec2.describe_many(self._ec2_driver(region), region, ids)

    def _terminate_many(self, region: str, ids: list[str]) -> dict[str, bool]:
        return ec2.terminate_many(self._ec2_driver(region), ids)

    def list_instances(self, query: InstanceQuery) -> InstancePage:
        if not self.is_ec2:  # one page: every node, read again for each page of the caller
            found, next_token = paging.page(
                self._fetch(query), query.limit, query.page_token, paging.scope_of(query)
            )
            return InstancePage(found, next_token)
        driver = self._ec2_driver(query.region)
        found, next_token = paging.page(
            self._fetch(query),
            query.limit,
            query.page_token,
            paging.scope_of(query),
            ec2_common.LISTING_PAGES,
            fetch_ids=lambda ids: ec2.describe_query(driver, query, ids),
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
        if self.is_ec2:
            driver = self._ec2_driver(region)
            if needs_call(self.describe(instance_id, region), action):
                batched = (
                    action == "terminate"
                    and self._terminate_batcher.enabled
                    and self._terminate_batcher.submit(region, instance_id)
                )
                if not batched:
                    ec2.act(driver, action, instance_id)
        else:
            perform = self._node_method(action)
            node = self._node(instance_id)
            before = self._instance(node)
            if needs_call(before, action):
                self._perform(perform, action, node)
                if action == "terminate":
                    try:
                        return self.describe(instance_id, region)
                    except InstanceNotFound:  # destroyed nodes vanish from most clouds' lists
                        return dataclasses.replace(before, state="terminated")
        return self.describe(instance_id, region)

    def _nodes(self) -> list[Node]:
        """Every node of a driver other than EC2, in its order."""
        driver = self.driver(self._region)
        try:
            return list(driver.list_nodes(**self._listing))
        except Exception as exc:  # anything the SDK raises is a provider failure
            raise provider_error(exc, self.profile) from exc

    def _node(self, instance_id: str) -> Node:
        public_id = self.profile.reading.public_id
        for node in self._nodes():
            if public_id(str(node.id)) == instance_id:
                return node
        raise InstanceNotFound(NAME, instance_id)

    def _unsupported(self, action: str) -> ActionNotSupported:
        return ActionNotSupported(NAME, action, f"the {self.driver_name} driver cannot {action}")

    def _node_method(self, action: str) -> Callable[[Node], Any]:
        """The driver's method for ``action``; ActionNotSupported when the driver has none of
        its own (libcloud's NodeDriver raises NotImplementedError for it)."""
        driver = self.driver(self._region)
        if not self.profile.supports(action, type(driver)):
            raise self._unsupported(action)
        return getattr(driver, self.profile.action_method(action))

    def _perform(self, perform: Callable[[Node], Any], action: str, node: Node) -> None:
        try:
            done = perform(node)
        except NotImplementedError:  # implemented, but not for this node
            raise self._unsupported(action) from None
        except Exception as exc:  # anything the SDK raises is a provider failure
            raise change_error(exc, self.profile, action) from exc
        if done is False:  # the drivers say no more than that
            raise ProviderError(
                NAME,
                ACTION_REFUSED,
                f"the {self.driver_name} driver refused to {action} {node.id}",
                retryable=True,
            )

    # -- tags and batches (leases, the reaper) -------------------------------------------------

    def terminate_many(self, instance_ids: list[str], region: str) -> dict[str, bool]:
        if self.is_ec2:
            params = {"Action": "TerminateInstances"}
            params.update({f"InstanceId.{n}": i for n, i in enumerate(instance_ids, start=1)})
            reply = ec2.request(self._ec2_driver(region), params, changes="terminate")
            return ec2.terminations(reply)
        began = {}
        for instance_id in instance_ids:
            node = self._node(instance_id)
            began[instance_id] = self._instance(node).state not in TERMINATING_STATES
            if began[instance_id]:
                self._perform(self._node_method("terminate"), "terminate", node)
        return began

    def tag(self, instance_id: str, region: str, tags: dict[str, str]) -> None:
        self._retag(instance_id, region, "CreateTags", tags)

    def untag(self, instance_id: str, region: str, keys) -> None:
        self._retag(instance_id, region, "DeleteTags", dict.fromkeys(keys))

    def _retag(self, instance_id: str, region: str, call: str, tags: dict) -> None:
        """CreateTags (values) or DeleteTags (values None: whatever the value) on one node:
        EC2's calls, or the dummy's tags in memory. Other drivers tag at launch only."""
        if self.is_ec2:
            params = {"Action": call, "ResourceId.1": instance_id}
            for number, (key, value) in enumerate(tags.items(), start=1):
                params[f"Tag.{number}.Key"] = key
                if value is not None:
                    params[f"Tag.{number}.Value"] = value
            operation = "tag" if call == "CreateTags" else "untag"
            ec2.request(self._ec2_driver(region), params, instance_id, changes=operation)
            return
        if not (self.can_tag and self.profile.shared):
            raise ActionNotSupported(
                NAME, "tag", f"launchprov cannot change the tags of the {self.driver_name} driver"
            )
        kept = self._node(instance_id).extra.setdefault(self.profile.reading.tags, {})
        for key, value in tags.items():
            if value is None:
                kept.pop(key, None)
            else:
                kept[key] = value


def _launch_failure(exc: Exception) -> Exception:
    """What an EC2 launch failure means: a reused client token, or a provider error."""
    from launchprov.providers import ec2_common
    from launchprov.providers.libcloud.drivers import EC2ErrorReply

    if isinstance(exc, EC2ErrorReply):
        meaning = ec2_common.classified(NAME, exc.error_code, exc.message)
        if meaning is not None:
            return meaning
    return launch_error(exc)


def _refused_call(driver: NodeDriver, arguments: dict[str, Any]) -> ProviderError | None:
    """The error of a create_node call that cannot be made with ``arguments``, or None.

    Python refuses such a call (TypeError) before the driver sends anything: the launch failed
    with nothing launched, which a TypeError caught from create_node could not say.
    """
    try:
        inspect.signature(driver.create_node).bind(name=None, **arguments)
    except TypeError as exc:
        return ProviderError(
            NAME,
            ProviderError.UNEXPECTED,
            f"launchprov cannot call the driver's create_node: {exc}",
            retryable=False,
            outcome=OUTCOME_NONE,
        )
    return None
