"""What a failed launch says it knows: both adapters classify, the use case decides retries."""

from __future__ import annotations

import logging

import pytest

from launchprov import launching
from launchprov.logs import WAITRESS_QUEUE_LOGGER, count_waitress_queue_depth
from launchprov.providers import create_provider, deadline
from launchprov.providers.interface import ProviderError
from launchprov.settings import load
from tests.standins import DroppingEndpoint, SlowEndpoint
from tests.support import GOOD_AMI, MISSING_AMI, free_port, launch_request, libcloud_ec2_settings


def adapter(name: str, endpoint: str):
    """An adapter on ``endpoint``: one attempt, half-second time-outs."""
    settings = {
        "ec2": {
            "launchprov.provider": "ec2",
            "launchprov.ec2.endpoint_url": endpoint,
            "launchprov.ec2.connect_timeout": "0.5",
            "launchprov.ec2.read_timeout": "0.5",
            "launchprov.ec2.max_attempts": "1",
        },
        "libcloud": libcloud_ec2_settings(endpoint, **{"launchprov.libcloud.timeout": "0.5"}),
    }[name]
    return create_provider(load(settings, environ={}))


ADAPTERS = ["ec2", "libcloud"]
LAUNCH = launch_request(ami=GOOD_AMI, instance_type="t2.micro")


def failed_launch(provider, request=LAUNCH) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        provider.launch(request)
    return caught.value


@pytest.mark.parametrize("name", ADAPTERS)
def test_no_answer_in_time_may_have_launched(name):
    endpoint = SlowEndpoint(hold=30)
    try:
        error = failed_launch(adapter(name, endpoint.url))
    finally:
        endpoint.close()
    assert (error.code, error.outcome) == (ProviderError.TIMEOUT, "unknown")


@pytest.mark.parametrize("name", ADAPTERS)
def test_a_connection_dropped_after_sending_may_have_launched(name):
    endpoint = DroppingEndpoint()
    try:
        error = failed_launch(adapter(name, endpoint.url))
    finally:
        endpoint.close()
    assert error.outcome == "unknown"
    assert endpoint.accepted >= 1


@pytest.mark.parametrize("name", ADAPTERS)
def test_a_refused_connection_launched_nothing(name):
    error = failed_launch(adapter(name, f"http://127.0.0.1:{free_port()}"))
    assert (error.code, error.outcome) == (ProviderError.UNREACHABLE, "none")


@pytest.mark.parametrize("name", ADAPTERS)
def test_an_error_reply_launched_nothing(name, moto_server_ec2, moto_server_endpoint):
    provider = adapter(name, moto_server_endpoint)
    error = failed_launch(provider, launch_request(ami=MISSING_AMI, instance_type="t2.micro"))
    assert (error.code, error.outcome) == ("InvalidAMIID.NotFound", "none")


@pytest.mark.parametrize("name", ADAPTERS)
def test_other_calls_never_claim_a_launch(name):
    endpoint = SlowEndpoint(hold=30)
    try:
        with pytest.raises(ProviderError) as caught:
            adapter(name, endpoint.url).describe("i-12345678", "us-east-1")
    finally:
        endpoint.close()
    assert (caught.value.code, caught.value.outcome) == (ProviderError.TIMEOUT, "none")


CHANGES = {
    "terminate_many": lambda provider: provider.terminate_many(["i-12345678"], "us-east-1"),
    "tag": lambda provider: provider.tag("i-12345678", "us-east-1", {"k": "v"}),
}


@pytest.mark.parametrize("change", list(CHANGES))
@pytest.mark.parametrize("name", ADAPTERS)
@pytest.mark.parametrize("standin", [SlowEndpoint, DroppingEndpoint])
def test_a_change_sent_and_not_answered_may_have_happened(name, change, standin):
    endpoint = standin()
    try:
        with pytest.raises(ProviderError) as caught:
            CHANGES[change](adapter(name, endpoint.url))
    finally:
        endpoint.close()
    assert (caught.value.outcome, caught.value.operation) == ("unknown", change.split("_")[0])


@pytest.mark.parametrize("name", ADAPTERS)
def test_a_change_that_reached_no_endpoint_did_not_happen(name):
    with pytest.raises(ProviderError) as caught:
        CHANGES["tag"](adapter(name, f"http://127.0.0.1:{free_port()}"))
    assert (caught.value.code, caught.value.outcome) == (ProviderError.UNREACHABLE, "none")
    assert caught.value.operation is None


def test_botocore_starts_no_attempt_after_the_deadline(monkeypatch):
    endpoint = SlowEndpoint(hold=30)
    # The deadline's clock moves a second per request the endpoint receives (AttemptClock):
    # real time on a loaded machine cannot pass the deadline before the first attempt.
    monkeypatch.setattr(deadline, "time", AttemptClock(endpoint))
    settings = {
        "launchprov.provider": "ec2",
        "launchprov.ec2.endpoint_url": endpoint.url,
        "launchprov.ec2.read_timeout": "0.3",
        "launchprov.ec2.max_attempts": "3",
    }
    provider = create_provider(load(settings, environ={}))
    try:
        # The deadline passes during the first attempt: botocore's next two never start.
        with deadline.until(1000.5), pytest.raises(ProviderError) as caught:
            provider.launch(LAUNCH)
        assert endpoint.actions() == ["RunInstances"]
        assert (caught.value.code, caught.value.outcome) == (ProviderError.TIMEOUT, "unknown")
        # Without a deadline, the same call makes its three attempts.
        with pytest.raises(ProviderError):
            provider.launch(LAUNCH)
        assert endpoint.actions() == ["RunInstances"] * 4
    finally:
        endpoint.close()


class AttemptClock:
    """The deadline's clock (launchprov.providers.deadline) for a test: each request the
    endpoint has received takes one second of the deadline, however long the attempts take on a
    loaded machine."""

    def __init__(self, endpoint: SlowEndpoint):
        self.endpoint = endpoint

    def monotonic(self) -> float:
        return 1000.0 + len(self.endpoint.requests)


def test_in_the_requests_thread_botocore_starts_no_attempt_that_could_end_after_the_deadline(
    monkeypatch,
):
    endpoint = SlowEndpoint(hold=30)
    clock = AttemptClock(endpoint)
    monkeypatch.setattr(deadline, "time", clock)
    settings = {
        "launchprov.provider": "ec2",
        "launchprov.ec2.endpoint_url": endpoint.url,
        "launchprov.ec2.connect_timeout": "0.3",
        "launchprov.ec2.read_timeout": "0.3",
        "launchprov.ec2.max_attempts": "3",
        "launchprov.ec2.retry_mode": "legacy",  # pauses of at most 1 s, then 2 s
    }
    provider = create_provider(load(settings, environ={}))
    try:
        # 2 s are left: the first attempt (0.6 s and a pause of up to 1 s) fits; after it, 1 s
        # is left, and the second (0.6 s and up to 2 s) does not fit: it is never sent, and the
        # answer comes within the first attempt's bound, before the deadline.
        with (
            deadline.until(clock.monotonic() + 2.0, inline=True),
            pytest.raises(ProviderError) as caught,
        ):
            provider.launch(LAUNCH)
        assert endpoint.actions() == ["RunInstances"]
        assert (caught.value.code, caught.value.outcome) == (ProviderError.TIMEOUT, "unknown")
        assert caught.value.message == (
            "no further attempt: 1.0 s are left of the request's deadline, and an attempt may "
            "take 2.6 s"
        )
        # Handed off to a thread that the request stops waiting for at the deadline, the same
        # call starts the second attempt with the same 1 s left (and no third: the deadline
        # has passed by then).
        with deadline.until(clock.monotonic() + 2.0), pytest.raises(ProviderError) as caught:
            provider.launch(LAUNCH)
        assert endpoint.actions() == ["RunInstances"] * 3
        assert "the request's deadline has passed" in caught.value.message
    finally:
        endpoint.close()


# -- the use case: what a caller may do about it ----------------------------------------------


def unknown() -> ProviderError:
    return ProviderError("ec2", "Timeout", "Read timeout", retryable=True, outcome="unknown")


def test_without_a_client_token_an_unknown_launch_is_not_retryable():
    error = launching.honest(unknown(), LAUNCH, "req-1")
    assert (error.code, error.outcome, error.retryable) == ("Timeout", "unknown", False)
    assert "GET /v1/instances?tag:launchprov:request-id=req-1&region=us-east-1" in error.message
    assert error.message.startswith("Read timeout")


def test_with_a_client_token_an_unknown_launch_is_retryable():
    request = launch_request(ami=GOOD_AMI, instance_type="t2.micro", client_token="deploy-1")
    error = launching.honest(unknown(), request, "req-1")
    assert (error.outcome, error.retryable) == ("unknown", True)
    assert "same client_token" in error.message


def test_an_unknown_launch_says_exactly_how_to_find_what_it_may_have_started():
    error = launching.honest(unknown(), LAUNCH, "req-1")
    assert error.message == (
        "Read timeout. The launch may have started instances: do not retry blindly; find them "
        "with GET /v1/instances?tag:launchprov:request-id=req-1&region=us-east-1 (next time, "
        "send a client_token: a retry with it is safe)"
    )
    assert str(error).startswith("ec2: Timeout: Read timeout. The launch may have started")


@pytest.mark.parametrize("placement", [None, "eastus"])
def test_the_search_of_a_launch_without_an_ec2_zone_names_no_region(placement):
    """Without a placement (the cloud chose) or off EC2 (a location is no region)."""
    request = launch_request(ami=GOOD_AMI, instance_type="t2.micro", placement=placement)
    error = launching.honest(unknown(), request, "req-1")
    assert "GET /v1/instances?tag:launchprov:request-id=req-1 (next time" in error.message


def test_a_partial_launch_with_a_client_token_says_to_retry_and_keeps_its_instances():
    request = launch_request(ami=GOOD_AMI, instance_type="t2.micro", client_token="deploy-1")
    partial = ProviderError(
        "libcloud", "Timeout", "1 of 2 answered", outcome="partial", instances=("i-0a",)
    )
    error = launching.honest(partial, request, "req-1")
    assert error.message == (
        "1 of 2 answered. The launch may have started instances: retry with the same "
        "client_token, which answers them instead of launching again"
    )
    assert (error.provider, error.code, error.retryable) == ("libcloud", "Timeout", True)
    assert (error.outcome, error.instances) == ("partial", ("i-0a",))


def test_a_launch_known_to_have_done_nothing_is_unchanged():
    error = ProviderError("ec2", "InvalidAMIID.NotFound", "no such image", outcome="none")
    assert launching.honest(error, LAUNCH, "req-1") is error


# -- every attempt of a client-token launch is the same request -------------------------------


def test_client_token_attempts_carry_the_same_tags_and_token():
    request = launch_request(ami=GOOD_AMI, instance_type="t2.micro", client_token="deploy-1")
    first = launching.traced(request, "web", "request-a")
    again = launching.traced(request, "web", "request-b")
    assert first == again
    assert first.system_tags[launching.REQUEST_ID_TAG] == launching.launch_id("web", "deploy-1")
    assert first.system_tags[launching.CLIENT_TOKEN_TAG] == "deploy-1"
    assert first.client_token == launching.idempotency_key("web", "deploy-1")
    assert len(first.client_token) <= 64  # EC2's limit of a ClientToken


def test_two_callers_tokens_never_meet_at_the_provider():
    request = launch_request(ami=GOOD_AMI, instance_type="t2.micro", client_token="shared")
    web = launching.traced(request, "web", "r")
    batch = launching.traced(request, "batch", "r")
    assert web.client_token != batch.client_token
    assert web.system_tags[launching.REQUEST_ID_TAG] != batch.system_tags[launching.REQUEST_ID_TAG]


def test_a_launch_without_token_is_tagged_with_its_request_id():
    traced = launching.traced(LAUNCH, "web", "request-a")
    assert traced.system_tags == {
        launching.CALLER_TAG: "web",
        launching.REQUEST_ID_TAG: "request-a",
    }
    # A provider token of this attempt alone, for the SDK's own retries: another for the
    # next request, even one that repeats the request id (a caller's retry launches anew).
    again = launching.traced(LAUNCH, "web", "request-a")
    assert traced.client_token and again.client_token
    assert traced.client_token != again.client_token
    assert len(traced.client_token) <= 64  # EC2's limit of a ClientToken


# -- waitress's queue-depth warnings ----------------------------------------------------------


def test_waitress_queue_depth_is_a_metric_and_a_debug_line(caplog):
    seen = []
    count_waitress_queue_depth(seen.append)
    caplog.set_level(logging.DEBUG)
    waitress_queue = logging.getLogger(WAITRESS_QUEUE_LOGGER)
    waitress_queue.warning("Task queue depth is %d", 3)
    waitress_queue.warning("something else")
    assert seen == [3]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["something else"]
    debug = [r for r in caplog.records if r.name == "launchprov.waitress"]
    assert [r.levelno for r in debug] == [logging.DEBUG] and "depth 3" in debug[0].getMessage()
    count_waitress_queue_depth(lambda depth: None)  # a later app replaces the filter
    waitress_queue.warning("Task queue depth is %d", 5)
    assert seen == [3]
