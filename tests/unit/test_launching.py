"""The launch use case: its tags, the client-token fingerprint and idempotent retries."""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from launchprov import launching
from launchprov.params import Params
from launchprov.providers.ec2_common import IMAGE_ID, INSTANCE_ID
from launchprov.providers.interface import (
    Alternative,
    IdempotencyConflict,
    Instance,
    InstancePage,
    LaunchRequest,
    ProviderError,
)
from launchprov.schemas import Validators
from tests.support import launch_request

FULL = launch_request(
    ami="ami-760aaa0f",
    instance_type="t2.micro",
    min_count=2,
    max_count=3,
    user_data="#!/bin/sh\n",
    placement_group="cluster",
    tags={"role": "web"},
    client_token="token-1",
)


def another(value):
    """A value of the same kind that differs from ``value``."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if value is None:
        return "x"
    if isinstance(value, tuple):
        return (*value, "x")
    if isinstance(value, dict):
        return {**value, "other": "x"}
    if isinstance(value, frozenset):
        return value | {"x"}
    raise AssertionError(f"no other value for {value!r}: teach another() its type")


def test_every_field_but_the_exclusions_is_fingerprinted():
    names = {field.name for field in dataclasses.fields(LaunchRequest)}
    assert set(launching.FINGERPRINTED) == names - launching.NOT_FINGERPRINTED
    assert names >= launching.NOT_FINGERPRINTED  # no stale exclusion


@pytest.mark.parametrize("name", launching.FINGERPRINTED)
def test_a_change_of_any_fingerprinted_field_changes_the_fingerprint(name):
    changed = dataclasses.replace(FULL, **{name: another(getattr(FULL, name))})
    assert launching.fingerprint(changed) != launching.fingerprint(FULL)


def test_the_fingerprint_changes_with_user_data():
    assert launching.fingerprint(dataclasses.replace(FULL, user_data="#!/bin/sh\necho\n")) != (
        launching.fingerprint(FULL)
    )


@pytest.mark.parametrize("name", sorted(launching.NOT_FINGERPRINTED))
def test_the_excluded_fields_do_not_change_it(name):
    changed = dataclasses.replace(FULL, **{name: another(getattr(FULL, name))})
    assert launching.fingerprint(changed) == launching.fingerprint(FULL)


def test_traced_adds_the_tags_of_the_caller_the_request_and_the_token():
    traced = launching.traced(FULL, "deployer", "req-1")
    assert traced.system_tags == {
        launching.CALLER_TAG: "deployer",
        # A client-token launch's id, the same on every attempt (not the request's id).
        launching.REQUEST_ID_TAG: launching.launch_id("deployer", "token-1"),
        launching.CLIENT_TOKEN_TAG: "token-1",
        launching.REQUEST_HASH_TAG: launching.fingerprint(FULL),
    }
    untokened = launching.traced(dataclasses.replace(FULL, client_token=None), "d", "r")
    assert untokened.system_tags == {launching.CALLER_TAG: "d", launching.REQUEST_ID_TAG: "r"}


class RememberingProvider:
    """Launches, and lists what it launched in an order of its own (as EC2 may)."""

    name = "remembering"

    def __init__(self, launch_order, list_order):
        self.launch_order = launch_order
        self.list_order = list_order
        self.launched: list[LaunchRequest] = []
        self.tags: dict[str, str] = {}

    def launch(self, request):
        self.launched.append(request)
        self.tags = {**request.tags, **request.system_tags}
        return list(self.launch_order)

    def list_instances(self, query):
        if not self.launched:
            return InstancePage([], None)
        now = datetime.now(UTC)
        instances = [
            Instance(i, "running", launch_time=now, tags=self.tags) for i in self.list_order
        ]
        return InstancePage(instances, None)


@pytest.mark.parametrize(
    ("launch_order", "list_order"),
    [
        (["i-0b", "i-0a"], ["i-0a", "i-0b"]),
        (["i-0c", "i-0a", "i-0b"], ["i-0b", "i-0c", "i-0a"]),
        (["10", "9", "100"], ["100", "10", "9"]),
    ],
)
def test_a_retry_answers_exactly_the_first_answer(launch_order, list_order):
    provider = RememberingProvider(launch_order, list_order)
    first = launching.launch(provider, FULL, "deployer", "req-1")
    retry = launching.launch(provider, FULL, "deployer", "req-2")
    assert retry == first
    assert sorted(first) == sorted(launch_order)
    assert len(provider.launched) == 1


def test_a_retry_with_other_parameters_is_a_conflict():
    provider = RememberingProvider(["i-0a"], ["i-0a"])
    launching.launch(provider, FULL, "deployer", "req-1")
    with pytest.raises(IdempotencyConflict) as raised:
        launching.launch(provider, dataclasses.replace(FULL, user_data="other"), "deployer", "r2")
    assert raised.value.message == (  # the 409's message
        "client_token 'token-1' was used for a launch with other parameters; use a new token "
        "for a new launch"
    )
    assert len(provider.launched) == 1


# -- the fingerprint, as a property: what means the same launch has the same digest -----------

VALIDATORS = Validators(
    {
        "key_name": "scalacity_dev1",
        "security_groups": ("SSH",),
        "placement": "us-east-1b",
        "metadata_tokens": "required",
    },
    SimpleNamespace(image_id_pattern=IMAGE_ID, instance_id_pattern=INSTANCE_ID),
)

names = st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
hex8 = st.text("0123456789abcdef", min_size=8, max_size=8)
subnet_ids = hex8.map(lambda digits: f"subnet-{digits}")
alternatives = st.fixed_dictionaries(
    {},
    optional={
        "instance_type": st.sampled_from(["t2.micro", "m5.large", "c5.xlarge"]),
        "placement": st.sampled_from(["us-east-1a", "us-east-1c", "us-east-1d"]),
        "subnet_id": subnet_ids,
    },
).filter(bool)
launch_bodies = st.fixed_dictionaries(
    {"ami": st.just("ami-760aaa0f"), "instance_type": st.just("t2.micro")},
    optional={
        "tags": st.dictionaries(names, names, max_size=6),
        "security_groups": st.lists(names, min_size=1, max_size=6, unique=True),
        "fallback": st.lists(alternatives, min_size=1, max_size=4),
        "min_count": st.just(1),  # given or left out: the same launch
        "metadata_tokens": st.just("required"),
        "expires_in": st.integers(1, 3600),
    },
)


def fingerprint_of(body: dict) -> str:
    return launching.fingerprint(VALIDATORS.launch(Params("body", False, body)))


def reordered(body: dict, data) -> dict:
    """The body with its tags, its security groups and the keys of each fallback alternative
    in another order (the alternatives themselves keep theirs: they are tried in order)."""
    body = dict(body)
    if "tags" in body:
        body["tags"] = dict(data.draw(st.permutations(list(body["tags"].items()))))
    if "security_groups" in body:
        body["security_groups"] = data.draw(st.permutations(body["security_groups"]))
    if "fallback" in body:
        body["fallback"] = [
            dict(data.draw(st.permutations(list(alternative.items()))))
            for alternative in body["fallback"]
        ]
    return body


@given(body=launch_bodies, data=st.data())
def test_the_same_launch_in_any_order_has_the_same_fingerprint(body, data):
    assert fingerprint_of(reordered(body, data)) == fingerprint_of(body)


#: For each fingerprinted field, valid values a caller may give (the schema's rules).
FIELD_VALUES = {
    "ami": hex8.map(lambda digits: f"ami-{digits}"),
    "instance_type": st.sampled_from(["t2.micro", "t3.large", "m5.large"]),
    "min_count": st.integers(1, 3),
    "max_count": st.integers(3, 5),
    "key_name": names,
    "security_groups": st.lists(names, min_size=1, max_size=4).map(tuple),
    "user_data": st.none() | st.text(max_size=20),
    "placement": st.sampled_from(["us-east-1a", "us-east-1b", "us-east-1c"]),
    "placement_group": st.none() | names,
    "instance_initiated_shutdown_behavior": st.sampled_from(["stop", "terminate"]),
    "ebs_optimized": st.booleans(),
    "tags": st.dictionaries(names, names, max_size=4),
    "subnet_id": st.none() | subnet_ids,
    "iam_instance_profile": st.none() | names,
    "root_volume_size": st.none() | st.integers(1, 100),
    "root_volume_type": st.none() | st.sampled_from(["gp3", "io2"]),
    "metadata_tokens": st.sampled_from(["required", "optional"]),
    "spot": st.booleans(),
    "fallback": st.lists(
        alternatives.map(lambda alternative: Alternative(**alternative)), max_size=3
    ).map(tuple),
    "expires_in": st.none() | st.integers(1, 3600),
}


def meaning(name: str, value):
    """What a field's value means for the launch: a set of groups is the same in any order."""
    return sorted(value) if name == "security_groups" else value


def test_every_fingerprinted_field_has_values_to_draw():
    assert set(FIELD_VALUES) == set(launching.FINGERPRINTED)


def replaced(items: tuple, index: int, item) -> tuple:
    return (*items[:index], item, *items[index + 1 :])


def edits(name: str, value) -> st.SearchStrategy:
    """Changes of ``value``, small ones included, the kind a fingerprint that reads only part
    of a field misses: one tag's value, one group, one alternative, alternatives swapped."""
    options = [FIELD_VALUES[name]]  # any other value
    if isinstance(value, dict) and value:
        one_value = st.tuples(st.sampled_from(sorted(value)), names)
        options.append(one_value.map(lambda edit: {**value, edit[0]: edit[1]}))
    if isinstance(value, tuple) and value:
        item = (
            alternatives.map(lambda fields: Alternative(**fields)) if name == "fallback" else names
        )
        one_item = st.tuples(st.integers(0, len(value) - 1), item)
        options.append(one_item.map(lambda edit: replaced(value, *edit)))
        if name == "fallback":  # tried in order: another order is another launch
            options.append(st.permutations(value).map(tuple))
    return st.one_of(options)


@given(
    base=st.fixed_dictionaries(FIELD_VALUES),
    name=st.sampled_from(sorted(FIELD_VALUES)),
    data=st.data(),
)
def test_any_change_of_a_fingerprinted_field_changes_the_fingerprint(base, name, data):
    value = data.draw(
        edits(name, base[name]).filter(lambda v: meaning(name, v) != meaning(name, base[name]))
    )
    request = launch_request(**base)
    changed = dataclasses.replace(request, **{name: value})
    assert launching.fingerprint(changed) != launching.fingerprint(request)


# -- a client-token launch's lease ------------------------------------------------------------

LEASED = dataclasses.replace(FULL, expires_in=60)


def test_a_client_token_lease_ends_exactly_expires_in_after_its_attempt():
    # Rounded up to ten minutes before, so that attempts matched: 22:20:00 here, 16 min away.
    first = datetime(2026, 12, 1, 22, 3, 5, 900000, tzinfo=UTC)
    tags = launching.traced(LEASED, "deployer", "req-1", now=first).system_tags
    assert tags[launching.EXPIRES_AT_TAG] == "2026-12-01T22:04:05Z"
    untokened = dataclasses.replace(LEASED, client_token=None)
    tags = launching.traced(untokened, "deployer", "req-1", now=first).system_tags
    assert tags[launching.EXPIRES_AT_TAG] == "2026-12-01T22:04:05Z"


class MismatchingProvider(RememberingProvider):
    """EC2's ClientToken rule: a second RunInstances with the token answers the first launch
    if its parameters are the same, and IdempotentParameterMismatch otherwise. Its listing
    cannot see the first launch at the first look (DescribeInstances is eventually
    consistent)."""

    def __init__(self):
        super().__init__(["i-0a", "i-0b"], ["i-0b", "i-0a"])
        self.hidden_looks = 2  # the first attempt's own look, and the retry's first look

    def launch(self, request):
        if self.launched and request != self.launched[0]:
            raise IdempotencyConflict(self.name, "IdempotentParameterMismatch")
        if self.launched:
            return list(self.launch_order)
        return super().launch(request)

    def list_instances(self, query):
        if self.hidden_looks:
            self.hidden_looks -= 1
            return InstancePage([], None)
        return super().list_instances(query)


def test_a_retry_that_cannot_see_the_first_launch_gets_it_and_its_lease():
    provider = MismatchingProvider()
    first = launching.launch(provider, LEASED, "deployer", "req-1")
    lease = provider.tags[launching.EXPIRES_AT_TAG]
    later = datetime.now(UTC).replace(year=2030)  # another end: EC2 refuses the retry
    retry = launching.launched(provider, LEASED, "deployer", "req-2", now=later).ids
    assert retry == first
    assert len(provider.launched) == 1
    assert provider.tags[launching.EXPIRES_AT_TAG] == lease


def test_a_retry_that_still_cannot_see_the_first_launch_is_told_to_retry():
    provider = MismatchingProvider()
    launching.launch(provider, LEASED, "deployer", "req-1")
    provider.hidden_looks = 2
    later = datetime.now(UTC).replace(year=2030)
    with pytest.raises(IdempotencyConflict) as raised:
        launching.launched(provider, LEASED, "deployer", "req-2", now=later)
    assert raised.value.message == (  # the 409's message: the provider's, then what to do
        "IdempotentParameterMismatch: client_token 'token-1' was used by a launch that cannot "
        "be seen yet, or with other parameters: retry in a few seconds with the same "
        "parameters, or use a new token for a new launch"
    )
    assert raised.value.provider == "remembering"


def test_duplicates_are_the_instances_beyond_max_count_by_launch_time_then_id():
    at = [datetime(2026, 12, 7, 23, 0, second, tzinfo=UTC) for second in range(3)]
    instances = [
        Instance("i-00000001", "running", launch_time=at[2]),  # the smallest id, the last
        Instance("i-00000003", "running", launch_time=at[0]),
        Instance("i-00000002", "running", launch_time=at[0]),  # same moment: the id decides
        Instance("i-00000004", "running", launch_time=None),  # unknown: after the known
        Instance("i-00000005", "running", launch_time=at[1]),
    ]
    kept, duplicates = launching.split_duplicates(instances, 2)
    assert [i.id for i in kept] == ["i-00000002", "i-00000003"]
    assert [i.id for i in duplicates] == ["i-00000005", "i-00000001", "i-00000004"]
    assert launching.split_duplicates(instances, 5)[1] == []


class TaggingProvider:
    """Tags instances, and refuses to tag those of ``refused`` (a provider error)."""

    name = "tagging"

    def __init__(self, refused=()):
        self.refused = set(refused)
        self.tagged: list[tuple[str, str, dict[str, str]]] = []

    def tag(self, instance_id, region, tags):
        if instance_id in self.refused:
            raise ProviderError(self.name, "UnauthorizedOperation", "not allowed")
        self.tagged.append((instance_id, region, tags))


def test_duplicates_are_tagged_with_the_first_instance_and_named_in_the_log(caplog):
    ours = {launching.REQUEST_ID_TAG: "ct-0123"}
    duplicates = [
        # tagged by an earlier retry: not tagged again, and the others still are
        Instance("i-0d", "running", tags={**ours, launching.DUPLICATE_OF_TAG: "i-0a"}),
        Instance("i-0b", "running", tags=ours),
        Instance("i-0c", "running", tags=ours),  # its tag is refused: logged, not raised
        Instance("i-0e", "running", tags=ours),
    ]
    provider = TaggingProvider(refused={"i-0c"})
    with caplog.at_level(logging.WARNING, logger="launchprov.launching"):
        launching.mark_duplicates(provider, "us-east-1", "i-0a", duplicates)
    mark = {launching.DUPLICATE_OF_TAG: "i-0a"}
    assert provider.tagged == [("i-0b", "us-east-1", mark), ("i-0e", "us-east-1", mark)]
    assert [record.getMessage() for record in caplog.records] == [
        "client-token launch ct-0123 found 4 duplicate instance(s) beyond max_count: "
        "i-0d, i-0b, i-0c, i-0e (tagged launchprov:duplicate-of=i-0a; list them with "
        "duplicate=true)",
        "could not tag duplicate i-0c launchprov:duplicate-of=i-0a: "
        "tagging: UnauthorizedOperation: not allowed",
    ]


def test_a_duplicate_without_launchprovs_tags_is_logged_with_a_dash(caplog):
    provider = TaggingProvider()
    with caplog.at_level(logging.WARNING, logger="launchprov.launching"):
        launching.mark_duplicates(provider, "us-east-1", "i-0a", [Instance("i-0b", "running")])
    assert (
        caplog.records[0]
        .getMessage()
        .startswith("client-token launch - found 1 duplicate instance(s) beyond max_count: i-0b ")
    )
    assert provider.tagged == [("i-0b", "us-east-1", {launching.DUPLICATE_OF_TAG: "i-0a"})]


def test_the_fingerprint_of_a_launch_is_the_one_its_instances_already_carry():
    """Instances launched by an earlier release carry its fingerprint (launchprov:request-hash):
    a retry after an upgrade must compute the same digest, or it would be refused as a launch
    with other parameters (the value is what the release of the ``bugs`` merge computed)."""
    assert launching.fingerprint(FULL) == (
        "3f4d5249c90b4a1eb63ad6e7d9e0382d3933770000fbdceae02ed6c49d647b5f"
    )


def test_a_client_token_launchs_request_id_is_ct_and_32_hex_digits_of_its_caller():
    request_id = launching.traced(FULL, "web", "req-1").system_tags[launching.REQUEST_ID_TAG]
    assert re.fullmatch(r"ct-[0-9a-f]{32}", request_id)
    assert launching.traced(FULL, "web", "req-2").system_tags[launching.REQUEST_ID_TAG] == (
        request_id
    )
    other = launching.traced(FULL, "batch", "req-1").system_tags[launching.REQUEST_ID_TAG]
    assert other != request_id
    retoken = dataclasses.replace(FULL, client_token="token-2")
    assert launching.traced(retoken, "web", "req-1").system_tags[launching.REQUEST_ID_TAG] != (
        request_id
    )


class PagingProvider(RememberingProvider):
    """Lists one instance a page, and records the tags it is asked to set."""

    def __init__(self, launch_order, list_order):
        super().__init__(launch_order, list_order)
        self.tagged: list[tuple[str, str, dict[str, str]]] = []

    def list_instances(self, query):
        at = datetime(2026, 12, 7, 23, 0, tzinfo=UTC)  # all at once: the ids decide the order
        instances = [
            dataclasses.replace(instance, launch_time=at)
            for instance in super().list_instances(query).instances
        ]
        start = int(query.page_token or 0)
        following = str(start + 1) if start + 1 < len(instances) else None
        return InstancePage(instances[start : start + 1], following)

    def tag(self, instance_id, region, tags):
        self.tagged.append((instance_id, region, tags))


def test_a_retry_reads_every_page_of_its_lookup_and_tags_the_instances_beyond_max_count():
    # An SDK retry the endpoint did not recognise launched a fourth instance for max_count 3.
    provider = PagingProvider(["i-0c", "i-0a", "i-0b"], ["i-0d", "i-0c", "i-0b", "i-0a"])
    first = launching.launch(provider, FULL, "deployer", "req-1")
    retry = launching.launch(provider, FULL, "deployer", "req-2")
    assert first == retry == ["i-0a", "i-0b", "i-0c"]
    assert len(provider.launched) == 1
    assert provider.tagged == [("i-0d", "us-east-1", {launching.DUPLICATE_OF_TAG: "i-0a"})]


def test_attempts_listing_tags_and_groups_in_other_orders_send_the_same_request():
    """EC2 answers a repeated ClientToken with the first launch only for the same request."""
    first = dataclasses.replace(FULL, tags={"a": "1", "b": "2"}, security_groups=("web", "ssh"))
    again = dataclasses.replace(FULL, tags={"b": "2", "a": "1"}, security_groups=("ssh", "web"))
    sent = [launching.traced(request, "web", "req-1") for request in (first, again)]
    assert list(sent[0].tags.items()) == list(sent[1].tags.items()) == [("a", "1"), ("b", "2")]
    assert sent[0].security_groups == sent[1].security_groups == ("ssh", "web")
    assert sent[0] == sent[1]


def test_a_launch_is_tagged_with_its_caller_and_request_id():
    provider = RememberingProvider(["i-0a"], ["i-0a"])
    untokened = dataclasses.replace(FULL, client_token=None)
    assert launching.launch(provider, untokened, "deployer", "req-1") == ["i-0a"]
    assert provider.tags[launching.CALLER_TAG] == "deployer"
    assert provider.tags[launching.REQUEST_ID_TAG] == "req-1"


class CountingProvider(RememberingProvider):
    """Lists at most ``query.limit`` instances a page (as EC2 does), counting its calls."""

    def __init__(self, count):
        ids = [f"i-{n:08x}" for n in range(count)]
        super().__init__(ids, ids)
        self.calls = 0

    def list_instances(self, query):
        self.calls += 1
        instances = super().list_instances(query).instances
        start = int(query.page_token or 0)
        end = start + query.limit
        return InstancePage(instances[start:end], str(end) if end < len(instances) else None)


def test_a_retry_of_a_launch_of_hundreds_of_instances_looks_them_up_in_one_call():
    """Each DescribeInstances counts against the account's request rate."""
    launch = dataclasses.replace(FULL, min_count=150, max_count=150)
    provider = CountingProvider(150)
    first = launching.launch(provider, launch, "deployer", "req-1")
    provider.calls = 0
    assert launching.launch(provider, launch, "deployer", "req-2") == first
    assert provider.calls == 1


def test_a_lease_ends_expires_in_from_now_in_utc_whatever_the_servers_time_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        before = datetime.now(UTC).replace(microsecond=0)
        end = datetime.strptime(launching.expiry_after(60), launching.EXPIRY_FORMAT)
        after = datetime.now(UTC)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert (
        before + timedelta(seconds=60) <= end.replace(tzinfo=UTC) <= after + timedelta(seconds=60)
    )


def test_a_client_token_launch_logs_its_launch_id_and_the_tag_that_holds_it(caplog):
    """The operator's link from an attempt's log lines (its own request id) to its instances."""
    provider = RememberingProvider(["i-0a"], ["i-0a"])
    with caplog.at_level(logging.INFO, logger="launchprov.launching"):
        launching.launch(provider, FULL, "deployer", "req-1")
    assert [record.getMessage() for record in caplog.records] == [
        f"client-token launch {launching.launch_id('deployer', 'token-1')} "
        "(tag launchprov:request-id)"
    ]


def test_ids_are_answered_shortest_first_then_in_order_whatever_the_providers_order():
    """Another cloud's ids are not all one length: 9 before 10 before 100, as a person counts."""
    provider = RememberingProvider(["100", "9", "10"], ["100", "9", "10"])
    untokened = dataclasses.replace(FULL, client_token=None)
    assert launching.launch(provider, untokened, "deployer", "req-1") == ["9", "10", "100"]


class RegionalProvider:
    """A cloud of regions: each launch's instances live in its region, and a listing answers
    those of the region asked for that carry every tag value asked for (as EC2's filters)."""

    name = "regional"

    def __init__(self):
        self.instances: dict[str, list[Instance]] = {}
        self.launched: list[LaunchRequest] = []

    def launch(self, request):
        self.launched.append(request)
        at = datetime(2026, 12, 7, 23, 0, tzinfo=UTC)
        region = self.instances.setdefault(request.region, [])
        ids = [f"i-{len(self.launched):04x}{n:04x}" for n in range(request.max_count)]
        tags = {**request.tags, **request.system_tags}
        region += [Instance(i, "running", launch_time=at, tags=tags) for i in ids]
        return ids

    def list_instances(self, query):
        found = [
            instance
            for instance in self.instances.get(query.region, [])
            if all(instance.tags.get(key) in values for key, values in query.tags.items())
        ]
        return InstancePage(found, None)


def test_a_retry_finds_the_callers_launch_in_its_region_and_no_other_callers():
    cloud = RegionalProvider()
    west = dataclasses.replace(FULL, placement="us-west-2a")
    first = launching.launch(cloud, west, "deployer", "req-1")
    # The same token, from another caller: a launch of its own, not the deployer's instances.
    other = launching.launch(cloud, west, "batch", "req-2")
    assert set(other).isdisjoint(first)
    assert launching.launch(cloud, west, "deployer", "req-3") == first
    assert launching.launch(cloud, west, "batch", "req-4") == other
    assert [request.region for request in cloud.launched] == ["us-west-2", "us-west-2"]
