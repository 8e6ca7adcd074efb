"""End to end: a cloud that accepts and then says nothing for 30 s, and 32 concurrent launches.

A waitress process (8 threads, every one lent to provider calls while the cloud answers: the
probes are answered in the server's loop thread, launchprov.serving's probe lane; 6 slots once
it stalls) in front of a stand-in that reads every request and answers none. Meanwhile probes
poll /healthz, /metrics and /readyz. What an operator and a caller must see:

* the probes answer within their bounds every time, while every provider slot -- every worker
  thread -- is stuck;
* a launch that found no slot is a 503 with Retry-After: the cloud stalls (calls in progress,
  none answered) after the stall time-out, and from then on a launch is refused at once --
  by the server's loop thread while every worker thread holds a call (the launches waiting in
  waitress's queue are refused there within a poll, 1 s, of the stall: never at the deadline
  of the stuck calls), within queue_timeout + 1 s for one sent once threads are free again;
* every launch is answered within request_deadline + 2 s: a 408 Timeout whose outcome is
  unknown, retryable only with a client token;
* at the cloud, at most one request per slot arrived: 32 launches, at most 7 calls.

Small limits keep it short (about 10 s); the bounds asserted are the behaviour under test.
"""

from __future__ import annotations

import configparser
import http.client
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import CREDENTIALS_ENV, ec2_settings, running
from tests.standins import Faults, RecordingProxy, SlowEndpoint
from tests.support import GOOD_AMI

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e

THREADS = 8
SLOTS = 6  # while the cloud stalls: THREADS minus the default reserve, max(2, THREADS // 4)
LENT_SLOTS = THREADS  # while it answers: every thread (the probes need none)
QUEUE_TIMEOUT = 0.5
STALL_TIMEOUT = 0.5
DEADLINE = 3.0
READINESS_TIMEOUT = 0.5
LAUNCHES = 32

#: The bounds under test, in seconds, from the moment each request was sent.
PROBE_BOUND = 1.0  # /healthz and /metrics
READYZ_BOUND = READINESS_TIMEOUT + 1.0
BUSY_BOUND = QUEUE_TIMEOUT + 1.0  # a 503 sent while a worker thread is free
#: A 503 sent while every worker thread holds a stuck call: it waits in waitress's queue until
#: the cloud stalls, and is refused by the loop thread within its next poll (at most 1 s later),
#: well before the deadline frees a worker thread.
QUEUED_BUSY_BOUND = STALL_TIMEOUT + 1.0 + 0.5
LAUNCH_BOUND = DEADLINE + 2.0  # any launch answer


@dataclass
class Answer:
    path: str
    sent: float
    seconds: float
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def call(port: int, method: str, path: str, body=None, headers=None) -> Answer:
    """One request on a connection of its own; the answer and how long it took."""
    sent = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        connection.request(method, path, body=data, headers=all_headers)
        response = connection.getresponse()
        payload = response.read()
        seconds = time.monotonic() - sent
        return Answer(path, sent, seconds, response.status, dict(response.getheaders()), payload)
    finally:
        connection.close()


def launch_body(number: int) -> dict:
    body = {"ami": GOOD_AMI, "instance_type": "t2.micro"}
    if number % 2:
        body["client_token"] = f"slow-{number}"
    return body


def metric_values(text: str) -> dict[str, float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name] = found.get(sample.name, 0.0) + sample.value
    return found


@pytest.fixture
def slow_cloud():
    endpoint = SlowEndpoint(hold=30)
    try:
        yield endpoint
    finally:
        endpoint.close()


def test_a_slow_cloud_keeps_the_probes_answered_and_every_launch_bounded(slow_cloud):
    settings = ec2_settings(
        slow_cloud.url,
        **{
            "launchprov.provider_queue_timeout": str(QUEUE_TIMEOUT),
            "launchprov.provider_stall_timeout": str(STALL_TIMEOUT),
            "launchprov.request_deadline": str(DEADLINE),
            "launchprov.readiness_timeout": str(READINESS_TIMEOUT),
            # production.ini's shape: time-outs and retries that add up to far more than the
            # deadline (3 x (1 + 30) s).
            "launchprov.ec2.connect_timeout": "1",
            "launchprov.ec2.read_timeout": "30",
            "launchprov.ec2.max_attempts": "3",
            # One call per slot: concurrent client-token lookups are not merged here.
            "launchprov.batch.idle_ms": "0",
            # The cloud's requests counted below are the launches' (the startup checks' calls
            # would hang on it too, each for the readiness time-out).
            "launchprov.startup_checks": "false",
        },
    )
    with running(settings, CREDENTIALS_ENV, threads=THREADS) as service:
        port = service.port
        probes: list[Answer] = []
        done = threading.Event()

        def probe():
            while not done.is_set():
                for path in ("/healthz", "/metrics", "/readyz"):
                    probes.append(call(port, "GET", path))
                done.wait(0.1)  # the probes' pace, like a load balancer's interval

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            with ThreadPoolExecutor(LAUNCHES) as pool:
                futures = [
                    pool.submit(
                        call,
                        port,
                        "PUT",
                        "/v1/launch",
                        launch_body(number),
                        {"X-Request-ID": f"slow-launch-{number}"},
                    )
                    for number in range(LAUNCHES)
                ]
                launches = [future.result() for future in futures]
            # Every slot is still held by a call the cloud has not answered: a new launch
            # is refused at once, not queued behind them.
            late = call(port, "PUT", "/v1/launch", launch_body(0))
        finally:
            done.set()
            prober.join()
        metrics = metric_values(call(port, "GET", "/metrics").body.decode())
        output = service.output

    # -- the probes ---------------------------------------------------------------------------
    assert len(probes) >= 9, "the probes ran while the launches were in progress"
    for answer in probes:
        if answer.path == "/readyz":
            assert answer.seconds < READYZ_BOUND, answer
            assert answer.status == 503  # the cloud does not answer its one cheap call
            slots = answer.json()["details"][1]
            assert slots["name"] == "slots"
            assert re.search(rf"of ({SLOTS}|{LENT_SLOTS}) provider slots", slots["description"])
        else:
            assert answer.status == 200, answer
            assert answer.seconds < PROBE_BOUND, answer

    # -- the launches -------------------------------------------------------------------------
    statuses = sorted(answer.status for answer in launches)
    timed_out = [answer for answer in launches if answer.status == 408]
    busy = [answer for answer in launches if answer.status == 503]
    assert len(timed_out) + len(busy) == LAUNCHES, statuses
    assert 1 <= len(timed_out) <= LENT_SLOTS, statuses
    for answer in launches:
        assert answer.seconds < LAUNCH_BOUND, answer
    for answer in busy:
        assert answer.seconds < QUEUED_BUSY_BOUND, answer
        assert answer.headers["Retry-After"] == "2"
        # Refused when every lent slot was taken and no call had answered for 0.5 s, or once
        # the cloud stalled: never after waiting longer.
        reason = answer.json()["details"][0]["description"]
        assert re.fullmatch(
            rf"all {LENT_SLOTS} provider slots are taken and none answered for 0\.5 s"
            rf"|\d+ provider calls in progress and none answered for {STALL_TIMEOUT:g} s: "
            "the provider stalls(, and every waitress thread is taken)?",
            reason,
        ), reason
    for answer in timed_out:
        body = answer.json()
        provider = body["provider"]
        assert (provider["code"], provider["outcome"]) == ("Timeout", "unknown")
        number = int(body["request_id"].rsplit("-", 1)[1])
        with_token = number % 2 == 1
        assert provider["retryable"] is with_token, body
        assert ("Retry-After" in answer.headers) is with_token
        if not with_token:
            search = f"GET /v1/instances?tag:launchprov:request-id={body['request_id']}"
            assert search in provider["message"]
    assert late.status == 503 and late.seconds < BUSY_BOUND, late

    # -- at the cloud: one request per slot (a RunInstances, or the client-token lookup) ------
    sent = [action for action in slow_cloud.actions() if action != "DescribeAvailabilityZones"]
    assert set(sent) <= {"RunInstances", "DescribeInstances"}, sent
    assert 1 <= len(sent) <= LENT_SLOTS, sent

    # -- what operators see -------------------------------------------------------------------
    assert metrics["launchprov_provider_rejected_total"] == len(busy) + 1
    assert metrics["launchprov_provider_deadline_exceeded_total"] == len(timed_out)
    assert metrics["launchprov_provider_slots"] == SLOTS  # stalled: the lent threads are back
    assert metrics["launchprov_provider_slots_in_use"] == len(sent)
    assert metrics["launchprov_waitress_queued_requests_total"] >= 1
    assert "Task queue depth" not in output


# -- a busy cloud: queue, never shed ------------------------------------------------------------

#: How long the stand-in EC2 takes over each RunInstances: a good day's launch.
LAUNCH_SECONDS = 1.5


def production_concurrency() -> tuple[int, dict[str, str]]:
    """production.ini's waitress threads and its settings of the bulkhead and deadline."""
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "production.ini")
    app = ini["app:main"]
    keys = [key for key in app if key.startswith("launchprov.provider_")]
    keys.append("launchprov.request_deadline")
    return ini.getint("server:main", "threads"), {key: app[key] for key in keys}


@pytest.fixture
def busy_cloud(moto_process):
    """moto behind a proxy that holds every RunInstances for LAUNCH_SECONDS."""
    faults = Faults(delay=lambda recorded: LAUNCH_SECONDS * (recorded.action == "RunInstances"))
    proxy = RecordingProxy(moto_process, faults)
    try:
        yield proxy
    finally:
        proxy.close()


def test_sixteen_launches_at_once_on_a_busy_cloud_are_all_served(busy_cloud, moto_process):
    """The issue's soak: 16 concurrent launches to one process (what HAProxy sends it) with
    EC2 taking its time over each. A busy cloud answers: every launch is served, none is shed
    with a 503 (the slots wait for a stall, not for a queue time-out of 1 s)."""
    threads, concurrency = production_concurrency()
    settings = ec2_settings(busy_cloud.url, **concurrency)
    with running(settings, CREDENTIALS_ENV, threads=threads) as service:
        with ThreadPoolExecutor(16) as pool:
            launches = list(
                pool.map(
                    lambda number: call(service.port, "PUT", "/v1/launch", launch_body(2 * number)),
                    range(16),
                )
            )
        output = service.output

    assert [answer.status for answer in launches] == [200] * 16, [
        (answer.status, answer.body) for answer in launches
    ]
    launched = [instance_id for answer in launches for instance_id in answer.json()]
    assert len(set(launched)) == 16
    sent = busy_cloud.actions("RunInstances")
    assert len(sent) == 16
    # The startup line says how many provider calls may run at once.
    assert f"{threads} provider calls at once" in output, output


# -- the probe lane: every worker thread held, the probes still answered -------------------------


def test_the_probes_answer_while_every_worker_thread_holds_a_hanging_call(slow_cloud):
    """Served by egg:launchprov#waitress, every waitress thread may hold a provider call: the
    probes are answered in the server's loop thread (launchprov.serving's probe lane)."""
    threads = 2
    settings = ec2_settings(
        slow_cloud.url,
        **{
            "launchprov.request_deadline": "5",
            "launchprov.readiness_timeout": "0.5",
            "launchprov.ec2.connect_timeout": "1",
            "launchprov.ec2.read_timeout": "30",
            "launchprov.batch.idle_ms": "0",
            "launchprov.startup_checks": "false",
        },
    )
    with (
        running(settings, CREDENTIALS_ENV, threads=threads) as service,
        ThreadPoolExecutor(threads) as pool,
    ):
        launches = [
            pool.submit(call, service.port, "PUT", "/v1/launch", launch_body(number))
            for number in range(threads)
        ]
        # Every worker thread is held: one launch per thread has reached the cloud.
        until = time.monotonic() + 5
        while len(slow_cloud.requests) < threads and time.monotonic() < until:
            time.sleep(0.01)  # polling interval: the count decides
        assert len(slow_cloud.requests) == threads, slow_cloud.actions()
        probes = [call(service.port, "GET", path) for path in ("/healthz", "/metrics")]
        ready = call(service.port, "GET", "/readyz")
        statuses = sorted(future.result().status for future in launches)
        output = service.output

    for answer in probes:
        assert answer.status == 200, answer
        assert answer.seconds < PROBE_BOUND, answer
    assert metric_values(probes[1].body.decode())["launchprov_provider_slots_in_use"] == threads
    # The cloud's view is not known yet (it never answered): said at once, not waited for.
    assert ready.status == 503 and ready.seconds < PROBE_BOUND, ready
    assert ready.json()["details"][1]["description"].startswith(
        f"{threads} of {threads} provider slots in use"
    )
    assert statuses == [408] * threads
    # The probes answered in the loop thread are in the access log, like any request.
    assert re.search(r"GET healthz 200 ", output), output


# -- the probe lane sheds: a stalled cloud and every worker thread held -------------------------


def test_a_stalled_cloud_sheds_the_launches_no_worker_thread_can_take(slow_cloud):
    """Every worker thread holds a call the cloud does not answer: once it stalls, the launches
    waiting in waitress's queue and those arriving are refused by the server's loop thread with
    the bulkhead's 503 -- not after the deadline of the stuck calls frees a thread."""
    threads = 2
    settings = ec2_settings(
        slow_cloud.url,
        **{
            "launchprov.request_deadline": "5",
            "launchprov.provider_stall_timeout": "0.5",
            "launchprov.readiness_timeout": "0.5",
            "launchprov.ec2.connect_timeout": "1",
            "launchprov.ec2.read_timeout": "30",
            "launchprov.batch.idle_ms": "0",
            "launchprov.startup_checks": "false",
        },
    )
    with (
        running(settings, CREDENTIALS_ENV, threads=threads) as service,
        ThreadPoolExecutor(threads + 1) as pool,
    ):
        port = service.port
        stuck = [
            pool.submit(call, port, "PUT", "/v1/launch", launch_body(number))
            for number in range(threads)
        ]
        until = time.monotonic() + 5
        while len(slow_cloud.requests) < threads and time.monotonic() < until:
            time.sleep(0.01)  # polling interval: the count decides
        assert len(slow_cloud.requests) == threads, slow_cloud.actions()
        # Sent before the stall: it waits in waitress's queue, every worker thread taken.
        queued = pool.submit(
            call, port, "PUT", "/v1/launch", launch_body(10), {"X-Request-ID": "queued-1"}
        )
        # The stall, as /readyz (answered in the loop thread) reports it.
        until = time.monotonic() + 5
        while time.monotonic() < until:
            slots = call(port, "GET", "/readyz").json()["details"][1]["description"]
            if "stalled for" in slots:
                break
            time.sleep(0.05)  # polling interval: the report decides
        assert "stalled for" in slots, slots
        refused = queued.result(timeout=10)
        # Refused while both stuck launches still wait for their deadline.
        assert not any(launch.done() for launch in stuck)
        arriving = call(port, "PUT", "/v1/launch", launch_body(11))
        assert not any(launch.done() for launch in stuck)
        # A request that makes no provider call is not shed: it waits for a worker thread.
        document = pool.submit(call, port, "GET", "/v1/openapi.json")
        statuses = sorted(launch.result().status for launch in stuck)
        assert document.result(timeout=10).status == 200
        metrics = metric_values(call(port, "GET", "/metrics").body.decode())
        output = service.output

    for answer in (refused, arriving):
        assert answer.status == 503, answer
        assert answer.headers["Retry-After"] == "2"
        body = answer.json()
        assert body["details"][0]["description"] == (
            "2 provider calls in progress and none answered for 0.5 s: the provider stalls, "
            "and every waitress thread is taken"
        ), body
        assert "nothing was sent to the provider" in body["message"]
    assert refused.json()["request_id"] == refused.headers["X-Request-Id"] == "queued-1"
    assert statuses == [408] * threads
    # Nothing of the shed launches reached the cloud; both were counted as rejected.
    # (a launch with a client token looks it up first; /readyz's readiness call aside).
    sent = [action for action in slow_cloud.actions() if action != "DescribeAvailabilityZones"]
    assert sorted(sent) == ["DescribeInstances", "RunInstances"], sent
    assert metrics["launchprov_provider_rejected_total"] == 2
    # The access log names them, under their route.
    assert re.search(r"PUT launch 503 .*request_id=queued-1", output), output
