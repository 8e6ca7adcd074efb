"""Three launchprov processes behind HAProxy behave as one service.

The tests run in file order on one cluster; the last two take parts of it down (Redis, then a
process). The ones before them leave the cluster as they found it.
"""

from __future__ import annotations

import http.client
import itertools
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.cluster.conftest import (
    DEADLINE,
    FAILURE_LIMIT,
    LIMITED_PER_MINUTE,
    LIMITED_TOKEN,
    OPS_TOKEN,
    Answer,
    Cluster,
)
from tests.e2e.conftest import accepts_connections
from tests.support import ERROR_KEYS, GOOD_AMI

pytestmark = pytest.mark.cluster


def test_a_client_token_retry_on_another_process_returns_the_same_ids(cluster):
    token = f"deploy-{uuid.uuid4().hex}"
    body = {"ami": GOOD_AMI, "instance_type": "t2.micro", "min_count": 2, "max_count": 2}
    answers = [
        cluster.call("PUT", "/v1/launch", body={**body, "client_token": token}) for _ in range(3)
    ]
    assert [answer.status for answer in answers] == [200, 200, 200], [a.body for a in answers]
    assert len({answer.served_by for answer in answers}) > 1, "every retry hit one process"
    first = answers[0].body
    assert len(first) == 2 and all(answer.body == first for answer in answers)
    # EC2 holds the one launch, not three.
    tagged = cluster.ec2.describe_instances(
        Filters=[{"Name": "tag:launchprov:client-token", "Values": [token]}]
    )["Reservations"]
    assert sorted(i["InstanceId"] for r in tagged for i in r["Instances"]) == sorted(first)


def test_paging_begun_on_one_process_continues_on_another(cluster):
    run = uuid.uuid4().hex[:10]
    launched = set()
    for _ in range(3):
        body = {"ami": GOOD_AMI, "instance_type": "t2.micro", "min_count": 4, "max_count": 4}
        answer = cluster.call("PUT", "/v1/launch", body={**body, "tags": {"run": run}})
        assert answer.status == 200, answer.body
        launched |= set(answer.body)
    seen, servers, token = [], [], None
    for _ in range(20):
        path = f"/v1/instances?tag:run={run}&limit=5" + (f"&next={token}" if token else "")
        answer = cluster.call("GET", path)
        assert answer.status == 200, answer.body
        seen += [instance["id"] for instance in answer.body["instances"]]
        servers.append(answer.served_by)
        token = answer.body["next"]
        if token is None:
            break
    assert len(seen) == len(set(seen)) == 12 and set(seen) == launched
    assert len(servers) >= 3 and any(a != b for a, b in itertools.pairwise(servers))


def test_a_callers_rate_limit_holds_across_the_processes(cluster):
    attempts = 3 * LIMITED_PER_MINUTE
    with ThreadPoolExecutor(attempts) as pool:
        answers = list(
            pool.map(lambda _: cluster.call("GET", "/v1/instances", LIMITED_TOKEN), range(attempts))
        )
    statuses = sorted(answer.status for answer in answers)
    assert statuses == [200] * LIMITED_PER_MINUTE + [429] * (attempts - LIMITED_PER_MINUTE)
    assert len({answer.served_by for answer in answers}) == 3, "the requests reached every process"
    refused = next(answer for answer in answers if answer.status == 429)
    assert refused.headers["RateLimit-Limit"] == str(LIMITED_PER_MINUTE)
    assert int(refused.headers["Retry-After"]) >= 1
    # Another caller is not limited by it.
    assert cluster.call("GET", "/v1/instances").status == 200


PROCESSES = ("app1", "app2", "app3")
EVERYONE_UP = dict.fromkeys(PROCESSES, "UP")
#: A request id HAProxy made (a dashed UUID); launchprov's own are 32 hex digits.
EDGE_ID = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


def test_a_request_carries_one_id_from_haproxy_to_launchprov(cluster):
    made_at_the_edge = cluster.call("GET", "/v1/instances?limit=1")
    assert made_at_the_edge.status == 200
    assert EDGE_ID.match(made_at_the_edge.headers["X-Request-ID"])
    given = cluster.call("GET", "/healthz", headers={"X-Request-ID": "caller-trace-42"})
    assert given.headers["X-Request-ID"] == "caller-trace-42"


def test_when_no_process_is_ready_haproxy_fails_open_to_launchprovs_answers(cluster):
    """EC2 refuses every call of every process (credentials it no longer accepts): /readyz
    fails on all three, and HAProxy's launchprov backend has no server left. Rather than its
    own 503 for everything, HAProxy sends requests to the live processes (launchprov_alive,
    checked on /healthz): a launch gets launchprov's 408 naming EC2's error, and the probes
    answer. When EC2 accepts again, the processes are ready again."""
    cluster.faults.refuse({"every_call": True, "code": "AuthFailure", "status": 401})
    try:
        cluster.haproxy.wait_for(dict.fromkeys(PROCESSES, "DOWN"))
        assert cluster.haproxy.stat("launchprov_alive") == EVERYONE_UP
        launch = {"ami": GOOD_AMI, "instance_type": "t2.micro"}
        answers = [cluster.call("PUT", "/v1/launch", body=launch) for _ in range(6)]
        for answer in answers:
            assert answer.status == 408, answer.body
            assert set(answer.body) == ERROR_KEYS | {"provider"}
            assert answer.body["provider"]["code"] == "AuthFailure"
            assert answer.served_by in PROCESSES
        refused = cluster.faults.calls("RunInstances")
        assert len(refused) == len(answers)
        assert all(call["faulted"] for call in refused)
        readiness = cluster.call("GET", "/readyz")
        assert readiness.status == 503
        assert "AuthFailure" in readiness.body["message"]
        assert cluster.call("GET", "/healthz").status == 200
    finally:
        cluster.faults.refuse()
    cluster.haproxy.wait_for(EVERYONE_UP, exact=True)
    assert cluster.call("GET", "/readyz").served_by in PROCESSES


def test_haproxys_own_answers_are_launchprovs_json_error_body(cluster: Cluster):
    """No process can take a request (all in maintenance): HAProxy answers itself, with the
    error body every launchprov answer has, Retry-After, and the request's id."""
    for backend in ("launchprov", "launchprov_alive"):
        for name in PROCESSES:
            cluster.haproxy.command(f"disable server {backend}/{name}")
    try:
        for backend in ("launchprov", "launchprov_alive"):
            cluster.haproxy.wait_for(dict.fromkeys(PROCESSES, "MAINT"), backend=backend)
        answer = cluster.call("GET", "/healthz", headers={"X-Request-ID": 'say "hi"'})
        assert answer.status == 503
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.headers["Retry-After"] == "5"
        assert set(answer.body) == ERROR_KEYS
        assert answer.body["status"] == 503
        assert answer.body["error"] == "Service Unavailable"
        assert answer.body["request_id"] == 'say "hi"'  # escaped as JSON, read back whole
        assert answer.headers["X-Request-ID"] == 'say "hi"'
        made_at_the_edge = cluster.call("PUT", "/v1/launch", body={"ami": GOOD_AMI})
        assert made_at_the_edge.status == 503
        assert EDGE_ID.match(made_at_the_edge.body["request_id"])
        assert made_at_the_edge.headers["X-Request-ID"] == made_at_the_edge.body["request_id"]
        assert made_at_the_edge.served_by is None
    finally:
        for backend in ("launchprov", "launchprov_alive"):
            for name in PROCESSES:
                cluster.haproxy.command(f"enable server {backend}/{name}")
    for backend in ("launchprov", "launchprov_alive"):
        cluster.haproxy.wait_for(EVERYONE_UP, backend=backend, exact=True)


def call_from(cluster: Cluster, address: str, token: str, headers=None):
    """GET /v1/instances through HAProxy from the loopback ``address``: (status, headers)."""
    port = int(cluster.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=60, source_address=(address, 0)
    )
    try:
        connection.request(
            "GET", "/v1/instances", headers={"Authorization": f"Bearer {token}", **(headers or {})}
        )
        response = connection.getresponse()
        response.read()
        return response.status, response.headers
    finally:
        connection.close()


def test_a_guessing_address_is_refused_by_every_process_and_no_other_address(cluster):
    """production.ini's limit of failed authentications, counted in Redis by the client address
    that waitress takes from HAProxy's X-Forwarded-For: the guesser is refused by whichever
    process it reaches, its valid token too, and a caller from another address is not."""
    failures = int(FAILURE_LIMIT["launchprov.auth.failure_limit"].split("/")[0])
    guesses = [call_from(cluster, "127.0.0.2", f"guess-{n}") for n in range(failures)]
    assert [status for status, _ in guesses] == [401] * failures
    assert len({headers["X-Served-By"] for _, headers in guesses}) > 1, "one process took all"
    status, headers = call_from(cluster, "127.0.0.2", OPS_TOKEN)
    assert status == 429 and 1 <= int(headers["Retry-After"]) <= 60
    # The guesser cannot pass for another address: HAProxy appends the one it saw.
    assert call_from(cluster, "127.0.0.2", OPS_TOKEN, {"X-Forwarded-For": "127.0.0.3"})[0] == 429
    assert call_from(cluster, "127.0.0.3", OPS_TOKEN)[0] == 200


def in_thread(function) -> tuple[threading.Thread, list]:
    """Run ``function`` in a started thread; its result (or the OSError it raised) lands in
    the list."""
    result: list = []

    def run():
        try:
            result.append(function())
        except OSError as exc:
            result.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def poll(check, what: str, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            raise TimeoutError(f"{what}: not after {deadline} s")
        time.sleep(0.05)  # polling interval: the check decides


def test_a_process_killed_mid_request_its_get_is_retried_its_launch_is_a_502_with_its_id(
    cluster: Cluster,
):
    """app1 dies (SIGKILL) holding a listing and a launch, both still waiting for EC2. HAProxy
    sends the listing again to another process (retry-on empty-response, GET only) and answers
    the launch itself, 502, never sending it again (it reached EC2): the body and the
    X-Request-ID header carry the id the caller sent, which HAProxy can no longer read from
    the request once it has gone to a process."""
    others = ("app2", "app3")
    cluster.faults.slow_down(RunInstances=8, DescribeInstances=6)
    for name in others:  # both requests go to app1
        cluster.haproxy.command(f"disable server launchprov/{name}")
    try:
        cluster.haproxy.wait_for(dict.fromkeys(others, "MAINT"))
        launch_id, listing_id = f"edge-launch-{uuid.uuid4().hex}", f"edge-list-{uuid.uuid4().hex}"
        body = {"ami": GOOD_AMI, "instance_type": "t2.micro"}
        launching, launch_result = in_thread(
            lambda: cluster.call(
                "PUT", "/v1/launch", body=body, headers={"X-Request-ID": launch_id}
            )
        )
        poll(lambda: cluster.faults.calls("RunInstances"), "the launch reaching EC2")
        listing, listing_result = in_thread(
            lambda: cluster.call(
                "GET", "/v1/instances?limit=1", headers={"X-Request-ID": listing_id}
            )
        )
        poll(lambda: cluster.faults.calls("DescribeInstances"), "the listing reaching EC2")
    finally:
        for name in others:
            cluster.haproxy.command(f"enable server launchprov/{name}")
    cluster.haproxy.wait_for(dict.fromkeys(others, "UP"), exact=True)
    victim = cluster.services[0].process
    victim.kill()
    victim.wait(timeout=DEADLINE)
    # The listing sent again is answered at once; a launch sent again would be recorded.
    cluster.faults.refuse()
    try:
        launching.join(timeout=DEADLINE)
        listing.join(timeout=DEADLINE)
        (launch,), (listed,) = launch_result, listing_result
        assert isinstance(launch, Answer), launch
        assert launch.status == 502, launch.body
        assert set(launch.body) == ERROR_KEYS
        assert launch.body["request_id"] == launch_id
        assert launch.headers["X-Request-ID"] == launch_id
        assert launch.served_by is None
        assert cluster.faults.calls("RunInstances") == [], "the launch was sent again"
        assert isinstance(listed, Answer), listed
        assert listed.status == 200, listed.body
        assert listed.served_by in others
        assert listed.headers["X-Request-ID"] == listing_id
    finally:
        cluster.faults.refuse()
        cluster.restart("app1")


def test_a_rolling_restart_loses_no_answer_and_doubles_no_launch(cluster: Cluster):
    """Each process in turn gets SIGTERM while callers list and launch (with client tokens),
    and is started again. Every request is answered 200: the process drains (its health checks fail
    while it still serves, then it finishes what it holds) and exits 0; and EC2 holds exactly
    one instance per client token."""
    # A slow cloud: requests are in progress at every signal, and the callers need no pacing.
    cluster.faults.slow_down(RunInstances=0.5, DescribeInstances=0.3)
    run = uuid.uuid4().hex[:10]
    answers: list[tuple[str, int, str | None]] = []
    tokens: list[str] = []
    stop = threading.Event()
    body = {"ami": GOOD_AMI, "instance_type": "t2.micro", "tags": {"run": run}}

    def answered(method, path, **kwargs) -> tuple[str, int, str | None]:
        try:
            answer = cluster.call(method, path, **kwargs)
        except OSError as exc:
            return (method, 0, repr(exc))
        return (method, answer.status, answer.served_by)

    def listing():
        while not stop.is_set():
            answers.append(answered("GET", f"/v1/instances?tag:run={run}&limit=5"))

    def launching():
        while not stop.is_set():
            token = f"roll-{uuid.uuid4().hex}"
            tokens.append(token)
            answers.append(answered("PUT", "/v1/launch", body={**body, "client_token": token}))

    callers = [threading.Thread(target=work) for work in (listing, listing, launching, launching)]
    for caller in callers:
        caller.start()
    exits = {}
    try:
        for index, name in enumerate(PROCESSES):
            seen = len(answers)
            poll(lambda: any(a[2] == name for a in answers[seen:]), f"{name} serving")  # noqa: B023
            service = cluster.services[index]
            draining = service.process
            draining.terminate()
            try:
                # Its successor starts once it no longer listens, while it finishes its
                # requests (its port is free then: the suite's time goes to starting processes).
                poll(lambda: not accepts_connections(service.port), f"{name} closing")  # noqa: B023
            finally:
                cluster.restart(name)
            exits[name] = draining.wait(timeout=DEADLINE)
        seen = len(answers)
        poll(lambda: any(a[2] == "app3" for a in answers[seen:]), "app3 serving again")
    finally:
        stop.set()
        for caller in callers:
            caller.join(timeout=DEADLINE)
        cluster.faults.refuse()
    failed = [answer for answer in answers if answer[1] != 200]
    assert not failed, f"{len(failed)} of {len(answers)} unanswered or failed: {failed[:10]}"
    assert exits == dict.fromkeys(PROCESSES, 0), "a process did not drain and exit by itself"
    assert all("drained" in service.output for service in cluster.services)
    launched: dict[str, int] = dict.fromkeys(tokens, 0)
    for start in range(0, len(tokens), 100):
        filters = [{"Name": "tag:launchprov:client-token", "Values": tokens[start : start + 100]}]
        for reservation in cluster.ec2.describe_instances(Filters=filters)["Reservations"]:
            for instance in reservation["Instances"]:
                tags = {tag["Key"]: tag["Value"] for tag in instance["Tags"]}
                launched[tags["launchprov:client-token"]] += 1
    assert set(launched.values()) == {1}, {t: n for t, n in launched.items() if n != 1}
    print(f"rolling restart: {len(answers)} requests, {len(tokens)} launches, all answered")


def test_redis_stopped_requests_are_still_served(cluster):
    # "limited" spent its 10 a minute above: while Redis is down its requests go through.
    cluster.redis.stop()
    try:
        answers = [cluster.call("GET", "/v1/instances", LIMITED_TOKEN) for _ in range(6)]
        assert [answer.status for answer in answers] == [200] * 6, [a.body for a in answers]
        ready = cluster.call("GET", "/readyz")
        assert ready.status == 200
        assert ready.body["ratelimit"] == {
            "enabled": True,
            "storage": "unreachable",
            "failing_open": True,
        }
        # No process was taken out of rotation for it.
        assert set(cluster.haproxy.stat().values()) == {"UP"}, cluster.haproxy.output[-3000:]
    finally:
        cluster.redis.start()


def test_a_killed_process_is_taken_out_and_no_request_fails_after(cluster):
    failures_before: list[str] = []
    after_down: list[tuple[int, str | None]] = []
    down = threading.Event()
    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            marked_down_before = down.is_set()
            try:
                answer = cluster.call("GET", "/healthz")
                outcome = (answer.status, answer.served_by)
            except OSError as exc:
                outcome = (0, repr(exc))
            if marked_down_before:
                after_down.append(outcome)
            elif outcome[0] != 200:
                failures_before.append(str(outcome))

    threads = [threading.Thread(target=traffic) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        victim = cluster.services[1]
        victim.process.kill()  # no goodbye: as a crashed process
        victim.process.wait(timeout=DEADLINE)
        cluster.haproxy.wait_for({"app1": "UP", "app2": "DOWN", "app3": "UP"})
        down.set()
        end = time.monotonic() + DEADLINE
        while len(after_down) < 60 and time.monotonic() < end:
            time.sleep(0.05)  # polling interval: the count decides
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=DEADLINE)
    assert len(after_down) >= 60
    assert all(status == 200 for status, _ in after_down), after_down
    assert {served_by for _, served_by in after_down} == {"app1", "app3"}
    # Before the checks caught it, HAProxy's retry on another process hid the refused
    # connections and the cut answers too (retry-on conn-failure, and empty-response for these
    # GETs): reported, not asserted, as it is timing.
    print(f"failed before app2 was marked down: {len(failures_before)} {failures_before[:3]}")
