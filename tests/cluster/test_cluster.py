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
    Cluster,
)
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
        made_at_the_edge = cluster.call("PUT", "/v1/launch", body={"ami": GOOD_AMI})
        assert made_at_the_edge.status == 503
        assert EDGE_ID.match(made_at_the_edge.body["request_id"])
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
    # connections too (retry-on conn-failure): reported, not asserted, as it is timing.
    print(f"failed before app2 was marked down: {len(failures_before)} {failures_before[:3]}")
