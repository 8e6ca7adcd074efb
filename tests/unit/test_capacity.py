"""The capacity fallback: offering memory, alternatives, and the launch loop."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from launchprov.capacity import (
    ALTERNATIVE_TAG,
    Capacity,
    CapacityExhausted,
    OfferingMemory,
    alternative_token,
    alternatives,
    refuse_untried_fallback,
)
from launchprov.providers.interface import Alternative, ProviderError, UnsupportedParameters
from tests.support import launch_request


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_an_offering_is_out_until_its_time_to_live_has_passed():
    clock = Clock()
    memory = OfferingMemory(180, clock)
    memory.remember(("t3.large", "us-east-1a"), "InsufficientInstanceCapacity")
    assert memory.out(("t3.large", "us-east-1a")) == (180, "InsufficientInstanceCapacity")
    assert memory.out(("t3.large", "us-east-1b")) is None
    clock.now += 179.5
    assert memory.out(("t3.large", "us-east-1a")) == (0.5, "InsufficientInstanceCapacity")
    clock.now += 0.5
    assert memory.out(("t3.large", "us-east-1a")) is None


REQUEST = launch_request(
    ami="ami-760aaa0f",
    instance_type="t3.large",
    placement="us-east-1a",
    client_token="tok",
    system_tags={"launchprov:caller": "me"},
    explicit=frozenset({"ami", "instance_type", "placement", "client_token", "fallback"}),
    fallback=(
        Alternative(instance_type="m5.large"),
        Alternative(subnet_id="subnet-12345678"),
        Alternative(placement="us-east-1c", subnet_id="subnet-87654321"),
    ),
)


def test_each_alternative_replaces_what_it_names():
    first, second, third, fourth = alternatives(REQUEST)
    assert first.offering == ("t3.large", "us-east-1a") and first.client_token == "tok"
    assert second.offering == ("m5.large", "us-east-1a")
    # A subnet alone: the zone is the subnet's, so the placement is no longer sent.
    assert (second.zone, third.zone) == ("us-east-1a", None)
    assert third.offering == ("t3.large", "subnet-12345678")
    assert fourth.offering == ("t3.large", "us-east-1c") and fourth.subnet_id == "subnet-87654321"
    for index, candidate in enumerate((first, second, third, fourth)):
        assert candidate.fallback == () and "fallback" not in candidate.explicit
        assert candidate.system_tags == {"launchprov:caller": "me", ALTERNATIVE_TAG: str(index)}
        assert candidate.region == "us-east-1"
    # EC2 would refuse one ClientToken for other parameters: one token per alternative.
    tokens = [candidate.client_token for candidate in (first, second, third, fourth)]
    assert len(set(tokens)) == 4 and all(1 <= len(token) <= 64 for token in tokens)
    assert tokens[1] == alternative_token("tok", 1)


class ScriptedProvider:
    """Answers each launch with the next of ``outcomes`` (ids, or a ProviderError)."""

    name = "scripted"

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.launched = []

    def launch(self, request):
        self.launched.append(request.offering)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def out_of(code="InsufficientInstanceCapacity"):
    return ProviderError("scripted", code, "no capacity", retryable=True)


def make_capacity(clock=None):
    events = []
    memory = OfferingMemory(180, clock or Clock())
    return Capacity(memory, lambda provider, outcome: events.append(outcome)), events


def test_the_first_alternative_with_capacity_launches():
    capacity, events = make_capacity()
    provider = ScriptedProvider(out_of(), out_of("Unsupported"), ["i-1"])
    assert capacity.launch(provider, REQUEST) == (["i-1"], 2)
    assert events == ["capacity_error", "capacity_error", "fallback"]
    # Both are remembered: the next launch goes straight to the third.
    provider = ScriptedProvider(["i-2"])
    assert capacity.launch(provider, REQUEST) == (["i-2"], 2)
    assert provider.launched == [("t3.large", "subnet-12345678")]


def test_another_error_is_raised_at_once():
    capacity, events = make_capacity()
    provider = ScriptedProvider(ProviderError("scripted", "InvalidAMIID.NotFound", "no"))
    with pytest.raises(ProviderError) as raised:
        capacity.launch(provider, REQUEST)
    assert raised.value.code == "InvalidAMIID.NotFound" and len(provider.launched) == 1
    assert events == []


def test_all_out_retry_after_is_when_the_first_comes_back():
    clock = Clock()
    capacity, events = make_capacity(clock)
    capacity.memory.remember(("t3.large", "us-east-1a"), "InsufficientInstanceCapacity")
    clock.now += 100  # that one is back in 80 s; the others will be in 180 s
    provider = ScriptedProvider(out_of(), out_of(), out_of())
    with pytest.raises(CapacityExhausted) as raised:
        capacity.launch(provider, REQUEST)
    assert raised.value.retry_after == 80
    assert [attempt.called for attempt in raised.value.attempts] == [False, True, True, True]
    assert raised.value.code == "InsufficientInstanceCapacity" and raised.value.retryable
    assert events == ["skipped", "capacity_error", "capacity_error", "capacity_error", "exhausted"]


def test_without_a_fallback_the_request_is_sent_and_its_capacity_error_remembered():
    capacity, events = make_capacity()
    capacity.memory.remember(("t3.large", "us-east-1a"), "InsufficientInstanceCapacity")
    plain = launch_request(ami="ami-760aaa0f", instance_type="t3.large", placement="us-east-1a")
    provider = ScriptedProvider(out_of("InsufficientHostCapacity"))
    with pytest.raises(ProviderError) as raised:
        capacity.launch(provider, plain)
    assert not isinstance(raised.value, CapacityExhausted) and len(provider.launched) == 1
    assert capacity.memory.out(plain.offering)[1] == "InsufficientHostCapacity"
    assert events == []


# -- the time-to-live, as a property -----------------------------------------------------------

OFFERING = ("t3.large", "us-east-1a")
OTHER = ("m5.large", "us-east-1a")


@given(
    start=st.floats(0, 1e6),
    ttl=st.floats(0.001, 86400),
    epsilon=st.floats(1e-6, 1),
    remembered_again=st.booleans(),
)
def test_an_offering_is_remembered_until_exactly_its_time_to_live(
    start, ttl, epsilon, remembered_again
):
    clock = Clock()
    clock.now = start
    memory = OfferingMemory(ttl, clock)
    memory.remember(OFFERING, "InsufficientInstanceCapacity")
    until = start + ttl
    before = until - epsilon
    assume(start <= before < until)

    clock.now = before
    out = memory.out(OFFERING)
    assert out is not None and out[1] == "InsufficientInstanceCapacity"
    assert out[0] > 0  # seconds it stays out
    if remembered_again:  # another offering remembered meanwhile forgets nothing still out
        memory.remember(OTHER, "Unsupported")
        assert memory.out(OFFERING) is not None

    clock.now = until
    assert memory.out(OFFERING) is None
    # ... and a launch with a fallback asks for it again.
    capacity = Capacity(memory, lambda provider, outcome: None)
    request = launch_request(
        ami="ami-760aaa0f",
        instance_type="t3.large",
        placement="us-east-1a",
        fallback=(Alternative(instance_type="m5.large"),),
    )
    provider = ScriptedProvider(["i-1"])
    assert capacity.launch(provider, request) == (["i-1"], 0)
    assert provider.launched == [OFFERING]


# -- what the caller and the operator are told -------------------------------------------------


def test_all_out_the_408_says_what_was_asked_and_what_was_known_and_when_to_retry():
    clock = Clock()
    capacity, _ = make_capacity(clock)
    capacity.memory.remember(("m5.large", "us-east-1a"), "InsufficientHostCapacity")
    clock.now += 100.4  # that one is back in 79.6 s: retry in 80
    provider = ScriptedProvider(out_of(), out_of(), out_of())
    with pytest.raises(CapacityExhausted) as raised:
        capacity.launch(provider, REQUEST)
    exhausted = raised.value
    assert str(exhausted) == (
        "scripted: InsufficientInstanceCapacity: every alternative is out of capacity (3 "
        "answered so, 1 known to be out and not asked); retry in 80 s"
    )
    assert (exhausted.provider, exhausted.retry_after) == ("scripted", 80)
    assert [(attempt.index, exhausted.describe(attempt)) for attempt in exhausted.attempts] == [
        (0, "t3.large in us-east-1a: answered InsufficientInstanceCapacity"),
        (1, "m5.large in us-east-1a: known out, not asked: InsufficientHostCapacity"),
        (2, "t3.large in subnet-12345678: answered InsufficientInstanceCapacity"),
        (3, "t3.large in us-east-1c: answered InsufficientInstanceCapacity"),
    ]


def test_an_offering_back_in_under_a_second_is_retried_after_one():
    clock = Clock()
    capacity, _ = make_capacity(clock)
    for offering in [candidate.offering for candidate in alternatives(REQUEST)]:
        capacity.memory.remember(offering, "InsufficientInstanceCapacity")
    clock.now += 179.7
    with pytest.raises(CapacityExhausted) as raised:
        capacity.launch(ScriptedProvider(), REQUEST)
    assert raised.value.retry_after == 1
    assert str(raised.value).endswith(
        "(0 answered so, 4 known to be out and not asked); retry in 1 s"
    )


def test_each_alternative_out_of_capacity_is_logged(caplog):
    capacity, _ = make_capacity()
    provider = ScriptedProvider(out_of(), out_of("InsufficientHostCapacity"), ["i-1"])
    with caplog.at_level(logging.INFO, logger="launchprov.capacity"):
        assert capacity.launch(provider, REQUEST) == (["i-1"], 2)
    assert [record.getMessage() for record in caplog.records] == [
        "alternative 0 (t3.large in us-east-1a): InsufficientInstanceCapacity",
        "alternative 1 (m5.large in us-east-1a): InsufficientHostCapacity",
    ]


def test_a_fallback_is_refused_by_name_where_no_capacity_error_is_known():
    blind = SimpleNamespace(name="libcloud", reports_capacity=False)
    with pytest.raises(UnsupportedParameters) as raised:
        refuse_untried_fallback(blind, REQUEST)
    assert raised.value.reasons == {
        "fallback": "this backend's driver has no known out-of-capacity error, so no "
        "alternative would ever be tried; leave fallback out"
    }
    refuse_untried_fallback(blind, launch_request(ami="ami-760aaa0f", instance_type="t3.large"))
    refuse_untried_fallback(SimpleNamespace(name="ec2", reports_capacity=True), REQUEST)
