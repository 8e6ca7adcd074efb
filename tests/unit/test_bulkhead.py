"""The bulkhead: slots for provider calls, the request deadline, readiness outside the slots."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from launchprov.bulkhead import (
    Bulkhead,
    GuardedProvider,
    Lending,
    ProviderBusy,
    answered,
    ceiling,
    concurrency,
    one_deadline_per_request,
    probe_lane,
    server_threads,
)
from launchprov.launching import Launched
from launchprov.providers import deadline
from launchprov.providers.interface import ProviderError
from launchprov.settings import ConfigurationError

#: Generous bound of every wait in these tests: they poll or block on events, never sleep.
PATIENCE = 10.0


class Blocking:
    """A provider whose calls block until ``release`` is set; counts what it was asked."""

    name = "blocking"
    can_tag = True
    reports_capacity = True
    image_id_pattern = None
    instance_id_pattern = None

    def __init__(self):
        self.release = threading.Event()
        self.started = threading.Semaphore(0)
        self.calls: list[str] = []
        self.deadlines: list[float | None] = []

    def _block(self, operation: str, result):
        self.calls.append(operation)
        self.deadlines.append(deadline.remaining())
        self.started.release()
        assert self.release.wait(PATIENCE)
        return result

    def launch(self, request):
        return self._block("launch", ["i-12345678"])

    def describe(self, instance_id, region):
        return self._block("describe", instance_id)

    def ping(self, timeout):
        return self._block("ping", None)


def guarded(
    provider,
    limit=1,
    queue_timeout=0.2,
    request_deadline=PATIENCE,
    lent=None,
    stall_timeout=PATIENCE,
    patience=PATIENCE,
    **kwargs,
):
    bulkhead = Bulkhead(
        limit, queue_timeout, ceiling=lent, stall_timeout=stall_timeout, patience=patience
    )
    return GuardedProvider(provider, bulkhead, request_deadline, **kwargs)


def wait_for(check, what: str):
    end = time.monotonic() + PATIENCE
    while not check():
        assert time.monotonic() < end, what
        time.sleep(0.01)  # polling interval; the check decides


def test_a_request_that_finds_every_slot_taken_is_refused():
    provider = Blocking()
    rejected = []
    service = guarded(provider, on_rejected=lambda: rejected.append(1))
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(service.describe, "i-1", "us-east-1")
        assert provider.started.acquire(timeout=PATIENCE)
        with pytest.raises(ProviderBusy) as caught:
            service.describe("i-2", "us-east-1")
        assert caught.value.limit == 1 and "nothing was sent" in caught.value.message
        assert provider.calls == ["describe"]  # the refused request never reached it
        assert rejected == [1]
        state = service.bulkhead.state()
        assert (state.in_use, state.waiting) == (1, 0)
        provider.release.set()
        assert first.result(PATIENCE) == "i-1"
    wait_for(lambda: service.bulkhead.state().in_use == 0, "the slot is freed")
    assert service.describe("i-3", "us-east-1") == "i-3"


def test_a_waiting_request_gets_the_slot_that_frees():
    provider = Blocking()
    service = guarded(provider, queue_timeout=PATIENCE)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(service.describe, "i-1", "us-east-1")
        assert provider.started.acquire(timeout=PATIENCE)
        second = pool.submit(service.describe, "i-2", "us-east-1")
        wait_for(lambda: service.bulkhead.state().waiting == 1, "the second request waits")
        provider.release.set()
        assert (first.result(PATIENCE), second.result(PATIENCE)) == ("i-1", "i-2")


def test_the_deadline_answers_while_the_call_keeps_its_slot():
    provider = Blocking()
    late = []
    service = guarded(provider, request_deadline=0.2, on_deadline=late.append)
    with pytest.raises(ProviderError) as caught:
        service.launch(object())
    error = caught.value
    assert (error.code, error.retryable, error.outcome) == ("Timeout", True, "unknown")
    assert "launchprov.request_deadline = 0.2 s" in error.message
    assert late == ["launch"]
    # The call goes on, and holds its slot until the provider lets it go.
    assert service.bulkhead.state().in_use == 1
    with pytest.raises(ProviderBusy):
        service.describe("i-1", "us-east-1")
    provider.release.set()
    wait_for(lambda: service.bulkhead.state().in_use == 0, "the slot is freed")


class CreatingOneByOne(Blocking):
    """A launch that creates two instances, says so, then blocks before returning four."""

    def launch(self, request):
        deadline.created(["i-1"])
        deadline.created(["i-2"])
        return self._block("launch", Launched(["i-1", "i-2", "i-3", "i-4"], 0))


def test_a_launch_stopped_at_the_deadline_names_what_it_created(caplog):
    provider = CreatingOneByOne()
    service = guarded(provider, request_deadline=0.2)
    with pytest.raises(ProviderError) as caught:
        service.launch(object())
    error = caught.value
    assert (error.code, error.outcome, error.instances) == ("Timeout", "partial", ("i-1", "i-2"))
    assert "created 2 instance(s)" in error.message
    deadline.created(["i-9"])  # outside a launch: recorded nowhere

    provider.release.set()
    wait_for(lambda: "has since launched" in caplog.text, "the late instances are logged")

    assert "has since launched i-3, i-4 on blocking (the 408 named i-1, i-2)" in caplog.text


def test_a_call_that_launches_nothing_times_out_with_outcome_none():
    provider = Blocking()
    service = guarded(provider, request_deadline=0.2)
    with pytest.raises(ProviderError) as caught:
        service.describe("i-1", "us-east-1")
    assert (caught.value.code, caught.value.outcome) == ("Timeout", "none")
    provider.release.set()


def test_the_call_sees_the_deadline_of_its_request():
    provider = Blocking()
    provider.release.set()
    service = guarded(provider, request_deadline=5.0)
    assert deadline.remaining() is None  # outside a provider call there is none
    service.describe("i-1", "us-east-1")
    (left,) = provider.deadlines
    assert 0 < left <= 5.0


def test_no_call_of_a_request_starts_after_its_deadline():
    """The calls of one request share its deadline: once the first used it up, the next is
    never sent (an action on an instance is a describe, then the action)."""
    provider = Blocking()
    service = guarded(provider, limit=2, request_deadline=0.3)
    with one_deadline_per_request():
        with pytest.raises(ProviderError) as first:
            service.describe("i-1", "us-east-1")
        assert "no answer" in first.value.message
        with pytest.raises(ProviderError) as second:
            service.launch(object())
    assert (second.value.code, second.value.outcome) == ("Timeout", "none")
    assert "nothing was sent" in second.value.message
    assert provider.calls == ["describe"]
    provider.release.set()
    wait_for(lambda: service.bulkhead.state().in_use == 0, "the slot is freed")
    # Outside a request (the reaper's calls), each call has a deadline of its own.
    assert service.describe("i-2", "us-east-1") == "i-2"


def test_work_inside_a_slot_takes_no_second_slot():
    provider = Blocking()
    provider.release.set()
    service = guarded(provider, limit=1)

    def lookup_then_launch():
        service.describe("i-1", "us-east-1")
        return service.launch(object())

    assert service.run("launch", lookup_then_launch) == ["i-12345678"]
    assert provider.calls == ["describe", "launch"]


def test_errors_of_the_call_reach_the_request():
    class Failing(Blocking):
        def describe(self, instance_id, region):
            raise ProviderError(self.name, "InternalError", "boom", retryable=True)

    with pytest.raises(ProviderError, match="boom"):
        guarded(Failing()).describe("i-1", "us-east-1")


def test_one_ping_at_a_time_and_each_probe_bounded():
    provider = Blocking()
    service = guarded(provider, limit=1)
    with ThreadPoolExecutor(1) as pool:  # every slot taken: readiness takes none
        busy = pool.submit(service.describe, "i-1", "us-east-1")
        assert provider.started.acquire(timeout=PATIENCE)
        for _ in range(3):
            with pytest.raises(ProviderError) as caught:
                service.ping(0.1)
            assert caught.value.code == "Timeout"
        assert provider.calls == ["describe", "ping"]  # the probes shared one ping
        provider.release.set()
        busy.result(PATIENCE)
    wait_for(lambda: service._ping.done(), "the ping ends")
    assert service.ping(1.0) is None


def test_the_slots_default_to_waitresss_threads_minus_a_reserve():
    assert concurrency(None, 16) == 12
    assert concurrency(None, 4) == 2
    assert concurrency(None, 2) == 1
    assert concurrency(None, None) == 2  # waitress's default of 4 threads
    assert concurrency(7, 16) == 7
    assert concurrency(40, None) == 40  # the server's threads are not known: trusted


@pytest.mark.parametrize("configured", [16, 17])
def test_slots_that_leave_no_thread_stop_startup(configured):
    with pytest.raises(ConfigurationError, match=r"launchprov\.provider_concurrency = 1[67]"):
        concurrency(configured, 16)


def test_one_thread_is_too_few():
    with pytest.raises(ConfigurationError, match="threads = 1"):
        concurrency(None, 1)


def test_the_threads_are_read_from_the_served_ini(tmp_path):
    ini = tmp_path / "service.ini"
    ini.write_text("[app:main]\nuse = egg:launchprov\n\n[server:main]\nuse = egg:waitress#main\n")
    assert server_threads({"__file__": str(ini)}) == 4  # waitress's default
    ini.write_text(ini.read_text() + "threads = 9\n")
    assert server_threads({"__file__": str(ini)}) == 9
    assert server_threads({}) is None
    ini.write_text("[server:main]\nuse = egg:gunicorn#main\nthreads = 9\n")
    assert server_threads({"__file__": str(ini)}) is None


def test_every_thread_is_lent_when_launchprovs_runner_answers_the_probes(tmp_path):
    ini = tmp_path / "service.ini"
    ini.write_text("[server:main]\nuse = egg:launchprov#waitress\nthreads = 8\n")
    assert probe_lane({"__file__": str(ini)})
    assert ceiling(6, 8, None, lend=True, lane=True) == 8
    assert ceiling(6, 8, None, lend=False, lane=True) == 6
    ini.write_text("[server:main]\nuse = egg:waitress#main\nthreads = 8\n")
    assert not probe_lane({"__file__": str(ini)})
    assert not probe_lane({})
    assert ceiling(6, 8, None, lend=True, lane=False) == 7  # one thread kept for the probes


def test_the_guarded_provider_keeps_the_whole_contract():
    from zope.interface.verify import verifyObject

    from launchprov.providers.interface import IProvider

    assert verifyObject(IProvider, guarded(Blocking()))


# -- lending: the reserve is the provider's while it answers ------------------------------------


def test_a_cloud_that_answers_may_take_the_lent_slots():
    lending = Lending(base=6, ceiling=7, stall_timeout=5.0)
    for _ in range(7):
        assert lending.may_take(0.0)
        lending.take(0.0)
    assert not lending.may_take(0.1)  # every thread but one: the last is never lent
    assert lending.limit(0.1) == 7


def test_calls_sent_together_and_still_running_are_no_stall():
    """16 launches sent at once to a cloud that takes 3 s: no call can have answered yet."""
    lending = Lending(base=13, ceiling=16, stall_timeout=5.0)
    for moment in (0.0, 0.2, 0.4, 0.9):
        lending.take(moment)
    assert not lending.stalled(4.9)
    assert lending.may_take(4.9) and lending.limit(4.9) == 16


def test_calls_that_stop_answering_take_the_reserve_back():
    lending = Lending(base=2, ceiling=3, stall_timeout=5.0)
    for _ in range(3):
        lending.take(10.0)
    assert lending.stalls_at() == 15.0
    assert (lending.stalled(14.9), lending.stalled(15.0)) == (False, True)
    assert lending.limit(15.0) == 2 and lending.stalled_for(16.5) == 1.5
    # A transport time-out or failure ends a call, but is no answer: still stalled, and the
    # freed slot is not the provider's again until it drops below the base.
    lending.release(17.0, answered=False)
    assert lending.stalled(17.0) and not lending.may_take(17.0)
    lending.release(17.5, answered=False)
    assert lending.may_take(17.5)  # 1 in use, below the base of 2


def test_an_answer_ends_the_stall_and_lends_again():
    lending = Lending(base=2, ceiling=3, stall_timeout=5.0)
    for _ in range(3):
        lending.take(0.0)
    assert lending.limit(6.0) == 2
    lending.release(6.0, answered=True)  # an error reply is an answer too
    assert not lending.stalled(6.0) and lending.limit(6.0) == 3
    assert lending.stalled(11.0)  # ... until the rest stay silent as long again


def test_an_idle_cloud_owes_no_answer():
    lending = Lending(base=1, ceiling=2, stall_timeout=5.0)
    lending.take(0.0)
    lending.release(1.0, answered=True)
    assert not lending.stalled(100.0)  # nothing in progress: nothing to answer
    lending.take(100.0)  # the first call after a quiet hour is not late
    assert not lending.stalled(100.1) and lending.stalled_for(100.1) == 0.0
    assert lending.stalled(105.0)


def test_without_lending_the_base_is_the_ceiling():
    lending = Lending(base=2, ceiling=1, stall_timeout=5.0)
    assert lending.ceiling == 2  # never below the base


def test_transport_failures_are_no_answer():
    def ended(error=None) -> Future:
        future = Future()
        future.set_result(None) if error is None else future.set_exception(error)
        return future

    assert answered(ended())
    assert answered(ended(ProviderError("ec2", "InsufficientInstanceCapacity", "none left")))
    assert not answered(ended(ProviderError("ec2", ProviderError.TIMEOUT, "read time-out")))
    assert not answered(ended(ProviderError("ec2", ProviderError.UNREACHABLE, "refused")))


def test_every_thread_but_one_is_lent():
    assert ceiling(12, 16, None, lend=True) == 15
    assert ceiling(12, 16, None, lend=False) == 12
    assert ceiling(3, 16, 3, lend=True) == 15  # a configured base is lent above too
    assert ceiling(2, None, None, lend=True) == 3  # waitress's default 4 threads assumed
    assert ceiling(40, None, 40, lend=True) == 40  # unknown threads: nothing lent above


def test_lent_slots_serve_more_calls_at_once_than_the_base():
    provider = Blocking()
    service = guarded(provider, limit=1, lent=2)
    with ThreadPoolExecutor(2) as pool:
        calls = [pool.submit(service.describe, f"i-{n}", "us-east-1") for n in (1, 2)]
        for _ in calls:
            assert provider.started.acquire(timeout=PATIENCE)  # both at the provider at once
        assert service.bulkhead.state().in_use == 2
        provider.release.set()
        assert [call.result(PATIENCE) for call in calls] == ["i-1", "i-2"]


def test_a_request_waiting_for_a_slot_is_refused_when_the_cloud_stalls():
    """It waits while the cloud answers (a queue time-out far away), and gives its thread
    back as soon as the calls in progress have answered nothing for the stall time-out."""
    provider = Blocking()
    rejected = []
    service = guarded(
        provider,
        limit=1,
        lent=2,
        queue_timeout=PATIENCE,
        stall_timeout=0.3,
        on_rejected=lambda: rejected.append(1),
    )
    with ThreadPoolExecutor(3) as pool:
        stuck = [pool.submit(service.describe, f"i-{n}", "us-east-1") for n in (1, 2)]
        for _ in stuck:
            assert provider.started.acquire(timeout=PATIENCE)
        waiting = pool.submit(service.describe, "i-3", "us-east-1")
        with pytest.raises(ProviderBusy) as caught:
            waiting.result(PATIENCE)
        assert caught.value.reason == (
            "2 provider calls in progress and none answered for 0.3 s: the provider stalls"
        )
        assert "nothing was sent" in caught.value.message
        state = service.bulkhead.state()
        assert (state.limit, state.base, state.in_use) == (1, 1, 2)
        assert state.stalled_for > 0
        # Stalled: refused at once, not after a queue time-out.
        with pytest.raises(ProviderBusy):
            service.describe("i-4", "us-east-1")
        assert provider.calls == ["describe", "describe"] and rejected == [1, 1]
        provider.release.set()  # the cloud answers: the reserve is lent again
        assert [call.result(PATIENCE) for call in stuck] == ["i-1", "i-2"]
    wait_for(lambda: service.bulkhead.state().limit == 2, "the lent slot is back")
    assert service.describe("i-5", "us-east-1") == "i-5"


def test_a_request_waits_for_a_slot_only_while_calls_answer():
    """Every lent slot taken: a waiting request holds the thread kept for health checks, so it
    gives it back when no call has answered for a while, long before a stall or its queue
    time-out."""
    provider = Blocking()
    service = guarded(
        provider, limit=1, lent=1, queue_timeout=PATIENCE, stall_timeout=PATIENCE, patience=0.3
    )
    with ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(service.describe, "i-1", "us-east-1")
        assert provider.started.acquire(timeout=PATIENCE)
        with pytest.raises(ProviderBusy) as caught:
            service.describe("i-2", "us-east-1")
        assert caught.value.reason == ("all 1 provider slots are taken and none answered for 0.3 s")
        assert service.bulkhead.state().stalled_for == 0  # busy, not (yet) stalled
        assert provider.calls == ["describe"]
        provider.release.set()
        assert stuck.result(PATIENCE) == "i-1"


class Bounded(Blocking):
    """A provider whose every call ends within ``attempt_seconds`` (its time-outs say so); it
    notes the thread of each call, whether it was told it runs inline, and the slots in use."""

    attempt_seconds = 1.0

    def __init__(self):
        super().__init__()
        self.threads: list[threading.Thread] = []
        self.inline: list[bool] = []
        self.in_use: list[int] = []
        self.bulkhead: Bulkhead | None = None
        self.release.set()

    def _block(self, operation: str, result):
        self.threads.append(threading.current_thread())
        self.inline.append(deadline.inline())
        self.in_use.append(self.bulkhead.state().in_use)
        return super()._block(operation, result)


def bounded(**kwargs) -> tuple[Bounded, GuardedProvider]:
    provider = Bounded()
    service = guarded(provider, **kwargs)
    provider.bulkhead = service.bulkhead
    return provider, service


def test_a_call_that_cannot_outlive_the_deadline_is_made_by_the_requests_thread():
    provider, service = bounded(request_deadline=5.0)
    assert service.launch(object()) == ["i-12345678"]
    assert provider.threads == [threading.current_thread()]
    assert provider.inline == [True]  # told so: it starts no attempt that could end later
    assert provider.in_use == [1]  # in a slot all the same
    assert service.bulkhead.state().in_use == 0
    assert 4.0 < provider.deadlines[0] <= 5.0


def test_a_call_that_could_outlive_the_deadline_is_handed_off():
    provider, service = bounded(request_deadline=0.5)  # attempt_seconds 1 s does not fit
    assert service.launch(object()) == ["i-12345678"]
    assert provider.threads != [threading.current_thread()]
    assert provider.inline == [False]


def test_a_bounded_call_that_finds_every_slot_taken_is_refused():
    rejected = []
    provider, service = bounded(request_deadline=5.0, on_rejected=lambda: rejected.append(1))
    provider.release.clear()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(service.describe, "i-1", "us-east-1")
        assert provider.started.acquire(timeout=PATIENCE)
        with pytest.raises(ProviderBusy) as caught:
            service.describe("i-2", "us-east-1")
        assert "nothing was sent" in caught.value.message and rejected == [1]
        provider.release.set()
        assert first.result(PATIENCE) == "i-1"
    assert service.bulkhead.state().in_use == 0


# -- the probe lane's shedding: what the server's loop thread refuses at once ----------------------


def test_the_loop_thread_sheds_what_a_request_waiting_for_a_slot_would_be_refused_for():
    """A provider request no worker thread can take waits in waitress's queue as it would wait
    for a slot: refused when every slot is taken and none answered for 0.5 s, or the cloud
    stalls; never while a worker is free, a slot is free, or for the probes and documents."""
    from launchprov.views.health import shed

    class Clock:
        now = 100.0

        def __call__(self):
            return self.now

    clock = Clock()
    bulkhead = Bulkhead(1, PATIENCE, ceiling=2, stall_timeout=5.0, clock=clock)
    release = threading.Event()
    calls = [bulkhead.submit(clock.now + PATIENCE, release.wait, PATIENCE)]
    try:
        # A slot is free (the threads are busy with other work): a worker will take it.
        clock.now += 0.25
        assert shed(bulkhead, "/v1/launch", 0) is None
        calls.append(bulkhead.submit(clock.now + PATIENCE, release.wait, PATIENCE))
        # Every slot taken, silent for less than 0.5 s: a busy cloud, the request may wait.
        clock.now += 0.125
        assert shed(bulkhead, "/v1/launch", 0) is None
        clock.now += 0.125
        assert shed(bulkhead, "/v1/launch", 0) == (
            "all 2 provider slots are taken and none answered for 0.5 s, "
            "and every waitress thread is taken"
        )
        clock.now += 4.5
        assert shed(bulkhead, "/v1/instances/i-12345678", -3) == (
            "2 provider calls in progress and none answered for 5 s: the provider stalls, "
            "and every waitress thread is taken"
        )
        # A free worker takes it (the bulkhead decides there); the probes, the scrape and the
        # documents make no provider call.
        assert shed(bulkhead, "/v1/launch", 1) is None
        for path in ("/healthz", "/readyz", "/metrics", "/v1/openapi.json", "/"):
            assert shed(bulkhead, path, 0) is None, path
    finally:
        release.set()
    for call in calls:
        assert call.result(PATIENCE) is True
    wait_for(lambda: bulkhead.state().in_use == 0, "the slots are freed")
    # The cloud answered: nothing is shed.
    assert shed(bulkhead, "/v1/launch", 0) is None


# -- what the answers say, word for word -------------------------------------------------------


class Changing(Blocking):
    """The actions and tag changes, each blocking as ``describe`` does."""

    def terminate(self, instance_id, region):
        return self._block("terminate", instance_id)

    def stop(self, instance_id, region):
        return self._block("stop", instance_id)

    def start(self, instance_id, region):
        return self._block("start", instance_id)

    def reboot(self, instance_id, region):
        return self._block("reboot", instance_id)

    def tag(self, instance_id, region, tags):
        return self._block("tag", instance_id)


AGAIN = {
    "terminate": "safe: an instance terminated already is answered as it is",
    "stop": "safe: an instance stopped already is answered as it is",
    "start": "safe: EC2 accepts the start of a running instance",
    "reboot": "a reboot done already is not seen: a second one reboots again",
    "tag": "safe: the same change again changes nothing more",
}


@pytest.mark.parametrize("operation", list(AGAIN))
def test_a_change_past_the_deadline_says_it_may_be_done_and_what_sending_it_again_does(
    operation, caplog
):
    caplog.set_level(logging.INFO, logger="launchprov.bulkhead")
    provider = Changing()
    service = guarded(provider, request_deadline=0.2)
    args = ("i-1", "us-east-1") + (({"team": "a"},) if operation == "tag" else ())
    with pytest.raises(ProviderError) as caught:
        getattr(service, operation)(*args)
    error = caught.value
    assert (error.code, error.outcome, error.operation, error.retryable) == (
        "Timeout",
        "unknown",
        operation,
        True,
    )
    assert error.message == (
        "no answer from the blocking provider within launchprov.request_deadline = 0.2 s; "
        f"the {operation} may have reached the provider and be carried out: look at the "
        f"instance, or send the same {operation} again ({AGAIN[operation]})"
    )
    provider.release.set()
    wait_for(lambda: "has since" in caplog.text, "the late answer is logged")
    assert f"{operation} answered 408 at the deadline has since succeeded" in caplog.messages


def test_a_read_past_the_deadline_says_only_that_it_had_no_answer(caplog):
    class Failing(Blocking):
        def describe(self, instance_id, region):
            self._block("describe", None)
            raise ProviderError(self.name, "InternalError", "boom")

    caplog.set_level(logging.INFO, logger="launchprov.bulkhead")
    provider = Failing()
    service = guarded(provider, request_deadline=0.2)
    with pytest.raises(ProviderError) as caught:
        service.describe("i-1", "us-east-1")
    error = caught.value
    assert (error.outcome, error.operation, error.instances) == ("none", None, ())
    assert error.message == (
        "no answer from the blocking provider within launchprov.request_deadline = 0.2 s"
    )
    provider.release.set()
    wait_for(lambda: "has since" in caplog.text, "the late failure is logged")
    (late,) = [message for message in caplog.messages if "has since" in message]
    assert late.startswith("describe answered 408 at the deadline has since failed: ")
    assert late.endswith("boom")


def test_a_launch_past_the_deadline_that_created_nothing_says_it_may_still_start_some(caplog):
    caplog.set_level(logging.INFO, logger="launchprov.bulkhead")
    provider = Blocking()
    service = guarded(provider, request_deadline=0.2)
    with pytest.raises(ProviderError) as caught:
        service.launch(object())
    error = caught.value
    assert (error.outcome, error.operation, error.instances) == ("unknown", None, ())
    assert error.message == (
        "no answer from the blocking provider within launchprov.request_deadline = 0.2 s; "
        "the launch may still start instances"
    )
    provider.release.set()
    wait_for(lambda: "has since succeeded" in caplog.text, "the late launch is logged")
    assert "has since launched i-12345678 on blocking\n" in caplog.text + "\n"
    assert "(the 408 named" not in caplog.text


def test_a_partial_launch_408_says_what_it_created_word_for_word():
    provider = CreatingOneByOne()
    service = guarded(provider, request_deadline=0.2)
    with pytest.raises(ProviderError) as caught:
        service.launch(object())
    assert caught.value.message == (
        "no answer from the blocking provider within launchprov.request_deadline = 0.2 s; "
        "the launch created 2 instance(s) (details) and sends no more creates; one sent "
        "before the deadline may still add an instance"
    )
    provider.release.set()


def test_a_call_after_the_requests_deadline_says_nothing_was_sent():
    provider = Blocking()
    late = []
    service = guarded(provider, limit=2, request_deadline=0.3, on_deadline=late.append)
    with one_deadline_per_request():
        with pytest.raises(ProviderError):
            service.describe("i-1", "us-east-1")
        with pytest.raises(ProviderError) as second:
            service.launch(object())
    assert late == ["describe", "launch"]
    assert (second.value.provider, second.value.outcome) == ("blocking", "none")
    assert second.value.message == (
        "launchprov.request_deadline = 0.3 s passed before the launch call; nothing was sent "
        "to the blocking provider"
    )
    assert second.value.retryable
    provider.release.set()


def test_a_probe_past_its_time_out_names_the_readiness_call():
    provider = Blocking()
    service = guarded(provider)
    with pytest.raises(ProviderError) as caught:
        service.ping(0.1)
    assert (caught.value.code, caught.value.retryable) == ("Timeout", True)
    assert caught.value.message == "no answer to the readiness call within 0.1 s"
    assert caught.value.provider == "blocking"
    provider.release.set()


def test_the_503_of_a_request_the_bulkhead_refuses_says_why_word_for_word():
    provider, service = bounded(request_deadline=5.0)
    provider.release.clear()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(service.describe, "i-1", "us-east-1")
        assert provider.started.acquire(timeout=PATIENCE)
        with pytest.raises(ProviderBusy) as caught:
            service.describe("i-2", "us-east-1")
        busy = caught.value
        assert (busy.provider, busy.limit, busy.reason) == (
            "blocking",
            1,
            "all 1 provider slots are taken",
        )
        assert busy.message == (
            "the blocking provider is busy: all 1 provider slots are taken; nothing was sent "
            "to the provider, retry later"
        )
        provider.release.set()
        assert first.result(PATIENCE) == "i-1"


def test_a_transport_failure_in_the_requests_thread_is_no_answer():
    """A call made inline that fails with no answer from the cloud counts toward the stall."""

    class Unreachable(Bounded):
        def describe(self, instance_id, region):
            raise ProviderError(self.name, ProviderError.UNREACHABLE, "refused")

    clock = FakeClock()
    provider = Unreachable()
    service = GuardedProvider(
        provider, Bulkhead(1, PATIENCE, ceiling=2, stall_timeout=5.0, clock=clock), 5.0
    )
    provider.bulkhead = service.bulkhead
    provider.release.clear()
    with ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(service.launch, object())
        assert provider.started.acquire(timeout=PATIENCE)
        clock.now += 4.0
        with pytest.raises(ProviderError):
            service.describe("i-1", "us-east-1")  # ended at 4 s, without an answer
        clock.now += 1.0
        assert service.bulkhead.state().stalled_for == 0  # nothing in progress but the launch
        assert service.bulkhead.refuses_waiting() == (
            "1 provider calls in progress and none answered for 5 s: the provider stalls"
        )
        provider.release.set()
        stuck.result(PATIENCE)


class FakeClock:
    now = 100.0

    def __call__(self):
        return self.now


def test_readyz_slots_show_the_stall_to_the_millisecond():
    clock = FakeClock()
    bulkhead = Bulkhead(2, PATIENCE, ceiling=3, stall_timeout=5.0, clock=clock)
    release = threading.Event()
    call = bulkhead.submit(clock.now + PATIENCE, release.wait, PATIENCE)
    try:
        clock.now += 6.23456
        assert bulkhead.state().as_json() == {
            "limit": 2,
            "base": 2,
            "in_use": 1,
            "waiting": 0,
            "stalled_for": 1.235,
        }
    finally:
        release.set()
    assert call.result(PATIENCE) is True


def test_a_waiting_request_is_refused_after_half_a_second_of_silence_by_default():
    clock = FakeClock()
    bulkhead = Bulkhead(1, PATIENCE, ceiling=1, stall_timeout=5.0, clock=clock)
    release = threading.Event()
    call = bulkhead.submit(clock.now + PATIENCE, release.wait, PATIENCE)
    try:
        clock.now += 0.499
        assert bulkhead.refuses_waiting() is None
        clock.now += 0.001
        assert bulkhead.refuses_waiting() == (
            "all 1 provider slots are taken and none answered for 0.5 s"
        )
        # A stall time-out shorter than that is the patience.
        short = Bulkhead(1, PATIENCE, ceiling=1, stall_timeout=0.2, clock=clock)
        assert short.patience == 0.2
    finally:
        release.set()
    assert call.result(PATIENCE) is True


def test_a_cancelled_call_is_no_answer():
    future = Future()
    future.cancel()
    assert not answered(future)


def test_slots_that_leave_no_thread_stop_startup_with_the_setting_and_the_way_out():
    with pytest.raises(ConfigurationError) as caught:
        concurrency(16, 16)
    assert str(caught.value) == (
        "launchprov.provider_concurrency = 16 leaves none of waitress's 16 threads for health "
        "checks and metrics: set it below 16 (or leave it empty: 12)"
    )
    with pytest.raises(ConfigurationError) as caught:
        concurrency(None, 1)
    assert str(caught.value) == (
        "waitress serves with threads = 1: launchprov needs at least 2, one for provider calls "
        "and one for health checks"
    )


def test_an_ini_the_threads_cannot_be_read_from_leaves_them_unknown(tmp_path):
    ini = tmp_path / "service.ini"
    ini.write_text("[server:main]\nuse = egg:waitress#main\nthreads = many\n")
    assert server_threads({"__file__": str(ini)}) is None
    ini.write_text("[server:main]\nuse = egg:waitress#main\nthreads = 9\nno delimiter here\n")
    assert server_threads({"__file__": str(ini)}) is None
    assert not probe_lane({"__file__": str(ini)})
    assert server_threads({"__file__": str(tmp_path / "missing.ini")}) is None
    assert not probe_lane({"__file__": str(tmp_path / "missing.ini")})
    ini.write_text("[app:main]\nuse = egg:launchprov\n")
    assert server_threads({"__file__": str(ini)}) is None
    assert not probe_lane({"__file__": str(ini)})


def test_a_server_section_without_use_leaves_the_threads_unknown(tmp_path):
    ini = tmp_path / "service.ini"
    ini.write_text("[server:main]\nthreads = 9\n")
    assert server_threads({"__file__": str(ini)}) is None
    assert not probe_lane({"__file__": str(ini)})


def test_two_threads_and_two_slots_name_the_one_slot_to_leave_instead():
    with pytest.raises(ConfigurationError, match=r"\(or leave it empty: 1\)$"):
        concurrency(2, 2)


def test_a_configured_base_with_unknown_threads_is_never_lent_above():
    assert ceiling(2, None, 2, lend=True) == 2
    assert ceiling(2, None, None, lend=True) == 3


def test_an_idle_bulkhead_is_not_stalled_however_long_ago_its_last_answer():
    clock = FakeClock()
    bulkhead = Bulkhead(1, PATIENCE, ceiling=2, stall_timeout=5.0, clock=clock)
    assert bulkhead.submit(clock.now + PATIENCE, lambda: "answered").result(PATIENCE)
    wait_for(lambda: bulkhead.state().in_use == 0, "the slot is freed")
    clock.now += 60.0
    assert bulkhead.state().as_json()["stalled_for"] == 0


@pytest.mark.parametrize("attempt_seconds", [1.0, None], ids=["inline", "handed-off"])
@pytest.mark.parametrize(
    "reply", [None, ProviderError("blocking", "InsufficientInstanceCapacity", "none left")]
)
def test_an_answer_keeps_the_cloud_from_stalling(reply, attempt_seconds):
    """A call made inline that the cloud answers -- a result or an error reply -- renews the
    count: the calls still in progress are not a stall until as long again has passed."""

    class Answering(Bounded):
        def describe(self, instance_id, region):
            if reply is not None:
                raise reply
            return instance_id

    Answering.attempt_seconds = attempt_seconds
    clock = FakeClock()
    provider = Answering()
    service = GuardedProvider(
        provider, Bulkhead(1, PATIENCE, ceiling=2, stall_timeout=5.0, clock=clock), 5.0
    )
    provider.bulkhead = service.bulkhead
    provider.release.clear()
    with ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(service.launch, object())
        assert provider.started.acquire(timeout=PATIENCE)
        clock.now += 4.0
        if reply is None:
            assert service.describe("i-1", "us-east-1") == "i-1"
        else:
            with pytest.raises(ProviderError):
                service.describe("i-1", "us-east-1")
        clock.now += 1.0
        assert service.bulkhead.refuses_waiting() is None
        assert service.bulkhead.state().as_json()["limit"] == 2  # still lent
        provider.release.set()
        stuck.result(PATIENCE)


def test_work_in_the_requests_thread_takes_no_second_slot():
    provider, service = bounded(request_deadline=5.0, limit=1, queue_timeout=0.05, patience=0.05)

    def lookup_then_launch():
        service.describe("i-1", "us-east-1")
        return service.launch(object())

    assert service.run("launch", lookup_then_launch) == ["i-12345678"]
    assert provider.calls == ["describe", "launch"]
    assert provider.threads == [threading.current_thread()] * 2


def test_a_launch_that_fails_after_its_408_logs_the_instances_it_started(caplog):
    caplog.set_level(logging.INFO, logger="launchprov.bulkhead")

    class FailingLate(Blocking):
        def launch(self, request):
            self._block("launch", None)
            raise ProviderError(self.name, "InternalError", "boom", instances=("i-5", "i-6"))

    provider = FailingLate()
    service = guarded(provider, request_deadline=0.2)
    with pytest.raises(ProviderError) as caught:
        service.launch(object())
    assert caught.value.outcome == "unknown"
    provider.release.set()
    wait_for(lambda: "has since failed" in caplog.text, "the late failure is logged")
    assert "a launch answered 408 at the deadline has since launched i-5, i-6 on blocking" in (
        caplog.messages
    )


def test_a_launch_that_breaks_after_its_408_is_logged_as_failed(caplog):
    caplog.set_level(logging.INFO, logger="launchprov.bulkhead")

    class BreakingLate(Blocking):
        def launch(self, request):
            self._block("launch", None)
            raise RuntimeError("adapter bug")

    provider = BreakingLate()
    service = guarded(provider, request_deadline=0.2)
    with pytest.raises(ProviderError):
        service.launch(object())
    provider.release.set()
    wait_for(lambda: "has since failed" in caplog.text, "the late failure is logged")
    assert "launch answered 408 at the deadline has since failed: adapter bug" in caplog.messages


def test_an_answer_after_the_deadline_is_not_waited_for():
    """The request waits for its call until its deadline and no longer: an answer 0.5 s after
    it is too late (the 408 was the answer)."""

    class AnsweringLate(Blocking):
        def describe(self, instance_id, region):
            wait_for(lambda: deadline.remaining() < -0.5, "the deadline is 0.5 s past")
            return instance_id

    service = guarded(AnsweringLate(), request_deadline=0.2)
    with pytest.raises(ProviderError) as caught:
        service.describe("i-1", "us-east-1")
    assert caught.value.code == "Timeout"
