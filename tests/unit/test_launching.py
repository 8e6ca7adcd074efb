"""The launch use case: its tags, the client-token fingerprint and idempotent retries."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from launchprov import launching
from launchprov.providers.interface import (
    IdempotencyConflict,
    Instance,
    InstancePage,
    LaunchRequest,
)
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
    with pytest.raises(IdempotencyConflict, match="token-1"):
        launching.launch(provider, dataclasses.replace(FULL, user_data="other"), "deployer", "r2")
    assert len(provider.launched) == 1


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
    with pytest.raises(IdempotencyConflict, match="retry in a few seconds"):
        launching.launched(provider, LEASED, "deployer", "req-2", now=later)
