"""The soak: ``python -m benchmarks.soak --seconds 60`` from the repository root (``make soak``).

One launchprov process served as production.ini serves it (its waitress threads, provider
slots, queue time-out, request deadline, authentication), its EC2 a moto server behind the
fault-injecting proxy of tests/faulty_ec2.py, which holds every RunInstances 1 to 3 s (drawn per
call): EC2 on a good day. 16 callers (threads, one keep-alive connection each) with 4 tokens,
for the duration, each in a loop of: launches (some with a ``client_token``, some of those sent
again with the same token), listings followed over pages, describes (of its own instances, and
of another caller's, which must be a 404), stop and start, lease changes (``expires_in``, or the
lease removed) and terminations; and every 15 s, a burst: all 16 launch at the same moment.

It reports the requests per kind and status, every 5xx, every 503, the 408s with their
``provider.outcome``, p50/p95 latency per kind, the service's RSS at the start and the end, and
an account of every instance, checked at moto directly (not through the proxy): every id a
launch answered exists, tagged with the caller it was answered to; no instance of a soak caller
exists that no launch answered (unless its request id is one of a 408's, or it is a duplicate
tagged ``launchprov:duplicate-of``); a client-token retry answers the first launch's ids; what
was terminated is terminated and nothing else is; no listing or describe shows a caller another
caller's instance.

A caller answered 429 or 503 waits the ``Retry-After`` and sends the request again (three
attempts at most), as a well-behaved client does; ``--ignore-retry-after`` sends it again at
once. The exit status is 1 on any 5xx (503 included: the goal is none), a traceback or an
ERROR line in the service's log, a request left without an answer, an unexpected status, or a
violation of the account above. Everything runs on 127.0.0.1 on free ports and is stopped at
the end; the run is bounded by ``--seconds`` plus the time the last requests take (each within
the request deadline).

The report is printed and written to benchmarks/raw/soak/ (SOAK.md, soak.json, the logs of
launchprov, the proxy and moto); ``--record`` also writes it into benchmarks/RESULTS.md between
the ``soak`` markers.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import hashlib
import http.client
import itertools
import json
import os
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import boto3

from benchmarks.processes import (
    CALLER,
    CHILD_ENV,
    TOKEN,
    Processes,
    ec2_answers,
    free_port,
    rss_kib,
)
from benchmarks.scale import cpu_seconds
from benchmarks.sections import write_section
from launchprov.placement import region_of
from tests.faulty_ec2 import FaultControl

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- soak: written by benchmarks/soak.py -->", "<!-- /soak -->"
OUTPUT = HERE / "raw" / "soak"
CALLERS = 4
CONCURRENCY = 16
#: EC2 on a good day: each RunInstances answered after a time drawn from this range (seconds).
RUN_INSTANCES_DELAY = (1.0, 3.0)
AMI, INSTANCE_TYPE = "ami-760aaa0f", "t2.micro"
#: Each caller (token) launches in a zone of its own region, and names the region in every
#: instance route: moto answers DescribeInstances in a time that grows with every instance its
#: region keeps (terminated ones too), and four regions keep it near the cloud of the premise.
ZONES = ("us-east-1b", "us-west-2a", "eu-west-1a", "ap-southeast-2a")
#: A caller thread terminates its oldest instance when it holds more than this many.
MAX_LIVE = 4
ATTEMPTS = 3
#: Longer than the request deadline (25 s): an answer is always expected before it.
CLIENT_TIMEOUT = 60.0
#: What each kind of request may answer without anything being wrong (503 and 5xx are counted
#: apart; 408 is reported with its outcome).
EXPECTED = {
    "launch": {200},
    "launch-burst": {200},
    "launch-retry": {200, 409},  # 409: the first launch not visible yet (retry in a few seconds)
    "list": {200},
    "describe": {200},
    "describe-other": {404},
    "stop": {200, 409},  # 409: the state forbids it (stopping, pending)
    "start": {200, 409},
    "expiry": {200},
    "expiry-remove": {200},
    "terminate": {200},
}
#: How often each thread picks each operation (launches whenever it holds no instance).
WEIGHTS = {
    "launch": 25,
    "list": 15,
    "describe": 20,
    "describe-other": 5,
    "stop-start": 12,
    "expiry": 10,
    "terminate": 13,
}
#: Pages a listing follows at most.
MAX_PAGES = 3
#: Bursts: every caller launches at the same moment (the worst case of the mix, 16 launches at
#: once), the first this many seconds in, then every BURST_EVERY seconds. A caller waits at most
#: BURST_WAIT for the others to finish what they are doing (longer than any healthy request).
BURST_FIRST, BURST_EVERY, BURST_WAIT = 5.0, 15.0, 10.0


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


@dataclass
class Answer:
    status: int  # 0: no answer (the connection failed or timed out)
    body: object
    headers: dict[str, str]
    seconds: float


@dataclass
class Ledger:
    """What every caller was answered, shared by the threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    #: Every id a launch answered, and to which caller; its region.
    owner: dict[str, str] = field(default_factory=dict)
    region: dict[str, str] = field(default_factory=dict)
    terminated: set[str] = field(default_factory=set)
    #: Request ids of the launches answered 408 (their instances may exist: not leaked).
    timed_out_launches: set[str] = field(default_factory=set)
    outcomes: Counter = field(default_factory=Counter)  # (kind, outcome, code) of 408s
    server_errors: list[dict] = field(default_factory=list)  # every 5xx, 503 included
    retry_after: Counter = field(default_factory=Counter)  # Retry-After values of 429/503
    unexpected: list[dict] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    client_token_retries: int = 0
    gave_up: Counter = field(default_factory=Counter)  # requests still 429/503 after ATTEMPTS

    def record(self, kind: str, path: str, answer: Answer) -> None:
        with self.lock:
            self.statuses[kind][answer.status] += 1
            self.latencies[kind].append(answer.seconds)
            body = answer.body if isinstance(answer.body, dict) else {}
            if answer.status >= 500:
                self.server_errors.append(
                    {"kind": kind, "path": path, "status": answer.status, "body": answer.body}
                )
            if answer.status in (429, 503):
                self.retry_after[answer.headers.get("retry-after", "(none)")] += 1
            elif answer.status == 408:
                provider = body.get("provider") or {}
                self.outcomes[(kind, provider.get("outcome"), provider.get("code"))] += 1
            elif answer.status == 0 or (
                answer.status < 500 and answer.status not in EXPECTED[kind]
            ):
                self.unexpected.append(
                    {"kind": kind, "path": path, "status": answer.status, "body": answer.body}
                )

    def violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(text)


class Caller(threading.Thread):
    """One caller: a keep-alive connection, a token, and the instances it launched."""

    def __init__(self, number, name, zone, token, port, ledger, end, honour_retry_after, seed):
        super().__init__(name=f"caller-{number}", daemon=True)
        self.number, self.caller, self.port = number, name, port
        self.zone, self.region = zone, region_of(zone)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.ledger, self.end, self.honour = ledger, end, honour_retry_after
        self.random = random.Random(seed)  # noqa: S311 (choices, not secrets; seeded)
        self.live: list[str] = []
        self.connection: http.client.HTTPConnection | None = None
        #: When to launch together with every other caller: (monotonic time, their barrier).
        self.bursts: list[tuple[float, threading.Barrier]] = []

    # -- HTTP ----------------------------------------------------------------------------

    def _send(self, method: str, path: str, body) -> Answer:
        data = json.dumps(body).encode() if body is not None else None
        headers = dict(self.headers, **({"Content-Type": "application/json"} if data else {}))
        started = time.perf_counter()
        for fresh in (False, True):  # a kept-alive connection the server closed: one new try
            if self.connection is None:
                self.connection = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=CLIENT_TIMEOUT
                )
            try:
                self.connection.request(method, path, data, headers)
                response = self.connection.getresponse()
                raw = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.connection.close()
                self.connection = None
                if fresh or (method == "PUT" and path == "/v1/launch"):
                    return Answer(0, None, {}, time.perf_counter() - started)
            except OSError as exc:
                self.connection.close()
                self.connection = None
                return Answer(0, repr(exc), {}, time.perf_counter() - started)
        seconds = time.perf_counter() - started
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw[:300].decode("utf-8", "replace")
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Answer(response.status, parsed, headers, seconds)

    def call(self, kind: str, method: str, path: str, body=None) -> Answer:
        """Send, recording every attempt; 429 and 503 are sent again (Retry-After honoured)."""
        for attempt in range(ATTEMPTS):
            answer = self._send(method, path, body)
            self.ledger.record(kind, path, answer)
            if answer.status not in (429, 503):
                return answer
            if attempt == ATTEMPTS - 1:
                break
            if self.honour:
                wait = float(answer.headers.get("retry-after") or 1)
                # The caller backing off as told, not synchronisation; bounded by the soak's end.
                time.sleep(max(0.0, min(wait, self.end - time.monotonic())))
            if time.monotonic() >= self.end:
                return answer  # the soak is over: not sent again
        with self.ledger.lock:
            self.ledger.gave_up[kind] += 1
        return answer

    # -- operations ----------------------------------------------------------------------

    def launch(self, kind: str = "launch") -> None:
        body = {"ami": AMI, "instance_type": INSTANCE_TYPE, "placement": self.zone}
        body["tags"] = {"soak-thread": self.name}
        body["max_count"] = self.random.choice((1, 1, 1, 2))
        if self.random.random() < 0.3:
            body["expires_in"] = self.random.choice((600, 3600, 86400))
        with_token = self.random.random() < 0.5
        if with_token:
            body["client_token"] = secrets.token_hex(16)
        answer = self.call(kind, "PUT", "/v1/launch", body)
        ids = self._launched(answer)
        if with_token and (answer.status == 408 or (ids and self.random.random() < 0.5)):
            # The same launch again (a caller unsure of the first answer): the same ids.
            with self.ledger.lock:
                self.ledger.client_token_retries += 1
            again = self.call("launch-retry", "PUT", "/v1/launch", body)
            again_ids = self._launched(again)
            if ids and again_ids is not None and sorted(again_ids) != sorted(ids):
                self.ledger.violation(
                    f"{self.caller}: client-token retry answered {again_ids}, first {ids}"
                )

    def _launched(self, answer: Answer) -> list[str] | None:
        if answer.status == 408:
            request_id = (answer.body or {}).get("request_id") if answer.body else None
            with self.ledger.lock:
                self.ledger.timed_out_launches.add(request_id)
        if answer.status != 200 or not isinstance(answer.body, list):
            return None
        with self.ledger.lock:
            for instance_id in answer.body:
                previous = self.ledger.owner.setdefault(instance_id, self.caller)
                self.ledger.region[instance_id] = self.region
                if previous != self.caller:
                    self.ledger.violations.append(
                        f"{instance_id} answered to {self.caller}, launched by {previous}"
                    )
        self.live += [i for i in answer.body if i not in self.live]
        return list(answer.body)

    def _check_owned(self, kind: str, instance: dict) -> None:
        caller = (instance.get("tags") or {}).get("launchprov:caller")
        if caller != self.caller:
            self.ledger.violation(
                f"{kind} showed {self.caller} {instance.get('id')} of caller {caller!r}"
            )

    def path(self, instance_id: str, then: str = "", region: str | None = None) -> str:
        """The route of ``instance_id`` (and ``then``: an action, expiry) in its region."""
        tail = f"/{then}" if then else ""
        return f"/v1/instances/{instance_id}{tail}?region={region or self.region}"

    def list(self) -> None:
        query = self.random.choice(
            (
                {"limit": "5"},
                {"limit": "10", "state": "running,stopped,pending"},
                {"limit": "3", "tag:soak-thread": self.name},
            )
        )
        next_token = None
        for _ in range(MAX_PAGES):
            params = dict(query, region=self.region, **({"next": next_token} if next_token else {}))
            answer = self.call("list", "GET", "/v1/instances?" + urllib.parse.urlencode(params))
            if answer.status != 200:
                return
            for instance in answer.body["instances"]:
                self._check_owned("list", instance)
            next_token = answer.body.get("next")
            if not next_token:
                return

    def describe(self) -> None:
        instance_id = self.random.choice(self.live)
        answer = self.call("describe", "GET", self.path(instance_id))
        if answer.status == 200:
            self._check_owned("describe", answer.body)

    def describe_other(self) -> None:
        with self.ledger.lock:
            others = [i for i, owner in self.ledger.owner.items() if owner != self.caller]
        if not others:
            return self.describe()
        instance_id = self.random.choice(others[-50:])
        with self.ledger.lock:
            region = self.ledger.region[instance_id]
        answer = self.call("describe-other", "GET", self.path(instance_id, region=region))
        if answer.status == 200:
            self.ledger.violation(f"{self.caller} was shown {instance_id} of another caller")

    def stop_start(self) -> None:
        instance_id = self.random.choice(self.live)
        action = self.random.choice(("stop", "start"))
        self.call(action, "POST", self.path(instance_id, action))

    def expiry(self) -> None:
        instance_id = self.random.choice(self.live)
        if self.random.random() < 0.25:
            self.call("expiry-remove", "DELETE", self.path(instance_id, "expiry"))
        else:  # with a body, the region goes in it (parameters come from one place)
            body = {"expires_in": self.random.randint(60, 86400), "region": self.region}
            self.call("expiry", "PUT", f"/v1/instances/{instance_id}/expiry", body)

    def terminate(self, oldest: bool = False) -> None:
        instance_id = self.live[0] if oldest else self.random.choice(self.live)
        answer = self.call("terminate", "DELETE", self.path(instance_id))
        if answer.status == 200:
            self.live.remove(instance_id)
            with self.ledger.lock:
                self.ledger.terminated.add(instance_id)

    def run(self) -> None:
        operations = {
            "launch": self.launch,
            "list": self.list,
            "describe": self.describe,
            "describe-other": self.describe_other,
            "stop-start": self.stop_start,
            "expiry": self.expiry,
            "terminate": self.terminate,
        }
        names, weights = list(WEIGHTS), list(WEIGHTS.values())
        try:
            while time.monotonic() < self.end:
                if self.bursts and time.monotonic() >= self.bursts[0][0]:
                    barrier = self.bursts.pop(0)[1]
                    with contextlib.suppress(threading.BrokenBarrierError):  # one held longer
                        barrier.wait(timeout=BURST_WAIT)
                    self.launch("launch-burst")
                    continue
                if len(self.live) > MAX_LIVE:
                    self.terminate(oldest=True)
                    continue
                name = self.random.choices(names, weights)[0] if self.live else "launch"
                operations[name]()
        except Exception as exc:  # a harness bug must not pass for a quiet service
            self.ledger.violation(f"{self.caller} thread {self.number} crashed: {exc!r}")
            raise
        finally:
            if self.connection is not None:
                self.connection.close()


# -- the account at moto --------------------------------------------------------------------


def moto_client(endpoint: str, region: str):
    return boto3.client("ec2", region_name=region, endpoint_url=endpoint)


def instances_at(endpoint: str) -> dict[str, dict]:
    """Every instance at ``endpoint`` (moto itself), in the soak's regions: id -> state, tags."""
    found = {}
    for region in sorted({region_of(zone) for zone in ZONES}):
        client = moto_client(endpoint, region)
        for page in client.get_paginator("describe_instances").paginate():
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    tags = {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}
                    state = instance["State"]["Name"]
                    found[instance["InstanceId"]] = {"state": state, "tags": tags}
    return found


def cloud_times(calls: list[dict]) -> dict[str, dict]:
    """The EC2 calls as the proxy saw them, per action: count, p50/p95/max answer time (ms)."""
    seconds = defaultdict(list)
    for call in calls:
        if "seconds" in call:
            seconds[call["action"]].append(call["seconds"] * 1000)
    return {
        action: {
            "calls": len(values),
            "p50": statistics.median(values),
            "p95": percentile(values, 0.95),
            "max": max(values),
        }
        for action, values in sorted(seconds.items())
    }


def account(ledger: Ledger, at_moto: dict[str, dict], callers: set[str]) -> dict:
    """Lost, leaked, misowned and wrongly terminated instances (each a violation)."""
    lost = sorted(set(ledger.owner) - set(at_moto))
    misowned = sorted(
        instance_id
        for instance_id, caller in ledger.owner.items()
        if instance_id in at_moto
        and at_moto[instance_id]["tags"].get("launchprov:caller") != caller
    )
    unanswered = {
        instance_id: found
        for instance_id, found in at_moto.items()
        if found["tags"].get("launchprov:caller") in callers and instance_id not in ledger.owner
    }
    explained = {
        instance_id
        for instance_id, found in unanswered.items()
        if found["tags"].get("launchprov:request-id") in ledger.timed_out_launches
        or "launchprov:duplicate-of" in found["tags"]
    }
    leaked = sorted(set(unanswered) - explained)
    gone = {"terminated", "shutting-down"}
    not_terminated = sorted(
        i for i in ledger.terminated if at_moto.get(i, {}).get("state") not in gone
    )
    terminated_unasked = sorted(
        i for i in set(ledger.owner) - ledger.terminated if at_moto.get(i, {}).get("state") in gone
    )
    return {
        "launched": len(ledger.owner),
        "at_moto": len(at_moto),
        "lost": lost,
        "misowned": misowned,
        "leaked": leaked,
        "from_timeouts_or_duplicates": len(explained),
        "terminated": len(ledger.terminated),
        "terminated_but_alive": not_terminated,
        "terminated_unasked": terminated_unasked,
    }


def warnings(text: str) -> int:
    return text.count('"level": "WARNING"')


def log_problems(text: str) -> list[str]:
    """Tracebacks and ERROR lines of the service's log (JSON lines: an ``exception`` field)."""
    problems = []
    for line in text.splitlines():
        if "Traceback" in line or '"exception"' in line or '"level": "ERROR"' in line:
            problems.append(line[:500])
    return problems


# -- the run --------------------------------------------------------------------------------


@dataclass
class Settings:
    seconds: float
    honour_retry_after: bool
    production_rate_limits: bool
    seed: int


def production_setting(key: str, section: str = "app:main") -> str:
    ini = configparser.RawConfigParser()
    ini.read(HERE.parent / "production.ini")
    return ini.get(section, key)


def soak(procs: Processes, settings: Settings, log_dir: Path) -> dict:
    tokens = {f"soak-{n}": secrets.token_urlsafe(32) for n in range(1, CALLERS + 1)}
    lines = [f"{CALLER} {hashlib.sha256(TOKEN.encode()).hexdigest()}"]  # the readiness launch
    lines += [
        f"{name} {hashlib.sha256(token.encode()).hexdigest()}" for name, token in tokens.items()
    ]
    env = {
        "LAUNCHPROV_AUTH_TOKENS": "\n".join(lines),
        "LAUNCHPROV_TAG_SIGNING_KEY": secrets.token_hex(32),
    }
    app = {}
    if settings.production_rate_limits:
        for key in ("launchprov.ratelimit.default", "launchprov.ratelimit.launch.default"):
            app[key] = production_setting(key)

    moto = procs.moto()
    from benchmarks.run import seed_moto

    for region in {region_of(zone) for zone in ZONES}:  # the seed's key pair and group in each
        seed_moto(moto_client(moto.url, region))
    port = free_port()
    argv = [sys.executable, "-m", "tests.faulty_ec2", "--upstream", moto.url, "--port", str(port)]
    proxy = procs.start("faulty-ec2", argv, port)
    proxy.wait_until(lambda: ec2_answers(port))
    FaultControl(proxy.url).slow_down(RunInstances=RUN_INSTANCES_DELAY)
    threads = int(production_setting("threads", "server:main"))
    service = procs.launchprov(proxy.url, threads, settings=app, env=env)
    log(f"launchprov ready in {service.startup:.2f} s (pid {service.pid}, {threads} threads)")
    rss_start = rss_kib(service.pid)
    ready_line = next(
        (line for line in service.output_all().splitlines() if "launchprov ready:" in line), "{}"
    )
    sizing = json.loads(ready_line).get("message", "(no startup line)")

    ledger = Ledger()
    started = time.monotonic()
    end = started + settings.seconds
    callers = [
        Caller(
            number,
            f"soak-{number % CALLERS + 1}",
            ZONES[number % CALLERS],
            tokens[f"soak-{number % CALLERS + 1}"],
            service.port,
            ledger,
            end,
            settings.honour_retry_after,
            settings.seed * 1000 + number,
        )
        for number in range(CONCURRENCY)
    ]
    moments = []
    while started + BURST_FIRST + BURST_EVERY * len(moments) < end - 2:
        moments.append(started + BURST_FIRST + BURST_EVERY * len(moments))
    bursts = [(moment, threading.Barrier(CONCURRENCY)) for moment in moments]
    for caller in callers:
        caller.bursts = list(bursts)
        caller.start()
    next_note = started + 30
    rss_series = [rss_start]  # every 30 s: does it grow with the requests, or level off?
    done_series = [0]
    while any(caller.is_alive() for caller in callers):
        for caller in callers:
            caller.join(timeout=1.0)
            if time.monotonic() >= next_note:
                next_note += 30
                with ledger.lock:
                    done = sum(sum(c.values()) for c in ledger.statuses.values())
                    errors = len(ledger.server_errors)
                rss_series.append(rss_kib(service.pid))
                done_series.append(done)
                log(
                    f"{time.monotonic() - started:.0f} s: {done} requests, {errors} 5xx, "
                    f"RSS {rss_series[-1] / 1024:.1f} MiB"
                )
    wall = time.monotonic() - started
    rss_end = rss_kib(service.pid)
    cpu = {server.name: cpu_seconds(server.pid) for server in (service, proxy, moto)}
    at_moto = instances_at(moto.url)
    accounting = account(ledger, at_moto, set(tokens))
    service_log = service.output_all()
    for server in (service, proxy, moto):
        shutil.copy(server.log_path, log_dir / f"{server.name}.log")

    kinds = sorted(ledger.statuses)
    return {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(time.time() - wall)),
        "seconds": settings.seconds,
        "wall": wall,
        "callers": CALLERS,
        "concurrency": CONCURRENCY,
        "threads": threads,
        "sizing": sizing,
        "run_instances_delay": RUN_INSTANCES_DELAY,
        "bursts": len(bursts),
        "honour_retry_after": settings.honour_retry_after,
        "production_rate_limits": settings.production_rate_limits,
        "seed": settings.seed,
        "load_average": os.getloadavg(),
        "statuses": {kind: dict(sorted(ledger.statuses[kind].items())) for kind in kinds},
        "latency_ms": {
            kind: {
                "p50": statistics.median(ledger.latencies[kind]) * 1000,
                "p95": percentile(ledger.latencies[kind], 0.95) * 1000,
                "max": max(ledger.latencies[kind]) * 1000,
            }
            for kind in kinds
        },
        "server_errors": ledger.server_errors,
        "retry_after": dict(ledger.retry_after),
        "timeouts": {
            f"{kind} {code} outcome={outcome}": n
            for (kind, outcome, code), n in ledger.outcomes.items()
        },
        "client_token_retries": ledger.client_token_retries,
        "unexpected": ledger.unexpected,
        "violations": ledger.violations,
        "accounting": accounting,
        "rss_kib": {"start": rss_start, "end": rss_end, "every_30_s": rss_series},
        "requests_every_30_s": [b - a for a, b in itertools.pairwise(done_series)],
        "cpu_seconds": cpu,
        "log_problems": log_problems(service_log),
        "log_warnings": warnings(service_log),
        "gave_up": dict(ledger.gave_up),
        "run_instances_calls": len(FaultControl(proxy.url).calls()),
        "cloud_ms": cloud_times(FaultControl(proxy.url).calls(action=None)),
    }


# -- the verdict and the report -------------------------------------------------------------


def failures(results: dict) -> list[str]:
    found = []
    errors = results["server_errors"]
    busy = [error for error in errors if error["status"] == 503]
    if busy:
        found.append(f"{len(busy)} answers 503 (the goal is none at this load)")
    if len(errors) > len(busy):
        found.append(f"{len(errors) - len(busy)} answers 5xx other than 503")
    if results["log_problems"]:
        found.append(f"{len(results['log_problems'])} tracebacks or ERROR lines in the log")
    if results["unexpected"]:
        found.append(f"{len(results['unexpected'])} unexpected answers (or none)")
    if results["violations"]:
        found.append(f"{len(results['violations'])} ownership or client-token violations")
    accounting = results["accounting"]
    for key in ("lost", "misowned", "leaked", "terminated_but_alive", "terminated_unasked"):
        if accounting[key]:
            found.append(f"{len(accounting[key])} instances {key}: {accounting[key][:5]}")
    return found


def report(results: dict, command: str) -> str:
    statuses = sorted({status for row in results["statuses"].values() for status in row})
    delay = results["run_instances_delay"]
    lines = [
        BEGIN,
        "## Soak (`benchmarks/soak.py`)",
        "",
        f"`{command}` ({results.get('when', '')}): {results['concurrency']} callers with "
        f"{results['callers']} tokens for "
        f"{results['seconds']:g} s (wall {results['wall']:.0f} s) against one launchprov process "
        f"served as production.ini serves it ({results['threads']} waitress threads, its "
        "provider slots, queue time-out and request deadline, authentication on; at startup it "
        f'logged "{results["sizing"]}"; rate limits '
        + ("as production.ini" if results["production_rate_limits"] else "lifted")
        + f"), its EC2 a moto server behind tests/faulty_ec2.py holding each RunInstances "
        f"{delay[0]:g}-{delay[1]:g} s; bursts of {results['concurrency']} launches at once "
        f"(launch-burst): {results['bursts']}; callers "
        + ("honour" if results["honour_retry_after"] else "ignore")
        + " Retry-After. Load average at the end: "
        + ", ".join(f"{value:.1f}" for value in results["load_average"])
        + ".",
        "",
        "| Kind | "
        + " | ".join(str(s) if s else "no answer" for s in statuses)
        + " | p50 ms | p95 ms | max ms |",
        "|---|" + "---:|" * (len(statuses) + 3),
    ]
    for kind, row in results["statuses"].items():
        latency = results["latency_ms"][kind]
        cells = [str(row.get(status, "")) for status in statuses]
        lines.append(
            f"| {kind} | "
            + " | ".join(cells)
            + f" | {latency['p50']:.0f} | {latency['p95']:.0f} | {latency['max']:.0f} |"
        )
    total = sum(sum(row.values()) for row in results["statuses"].values())
    errors = results["server_errors"]
    busy = sum(1 for error in errors if error["status"] == 503)
    accounting = results["accounting"]
    rss = results["rss_kib"]
    lines += [
        "",
        f"- Requests (every attempt counted): {total}; 5xx: **{len(errors)}**, of which 503: "
        f"**{busy}**"
        + (f" (Retry-After: {results['retry_after']})" if results["retry_after"] else "")
        + "; requests given up after "
        + f"{ATTEMPTS} attempts answered 429 or 503: "
        + (", ".join(f"{k} {v}" for k, v in results["gave_up"].items()) or "none")
        + ".",
        "- 408s: "
        + (", ".join(f"{k}: {v}" for k, v in results["timeouts"].items()) or "none")
        + ".",
        f"- Instances: {accounting['launched']} answered to launches "
        f"({results['run_instances_calls']} RunInstances reached the proxy, one of them the "
        "readiness check's), "
        f"{accounting['terminated']} terminated by their callers; lost "
        f"{len(accounting['lost'])}, leaked {len(accounting['leaked'])} (besides "
        f"{accounting['from_timeouts_or_duplicates']} from 408s or tagged duplicates), given to "
        f"the wrong caller {len(accounting['misowned'])}, terminated but alive "
        f"{len(accounting['terminated_but_alive'])}, terminated unasked "
        f"{len(accounting['terminated_unasked'])}; {results['client_token_retries']} client-token "
        f"retries, ownership and client-token violations: {len(results['violations'])}.",
        f"- RSS of the service: {rss['start'] / 1024:.1f} MiB at the start, "
        f"{rss['end'] / 1024:.1f} MiB at the end; every 30 s (MiB): "
        + ", ".join(f"{kib / 1024:.1f}" for kib in rss["every_30_s"])
        + (
            "; requests in each 30 s: " + ", ".join(str(n) for n in results["requests_every_30_s"])
            if results["requests_every_30_s"]
            else ""
        )
        + "; CPU seconds used by "
        + ", ".join(f"{name} {seconds:.0f}" for name, seconds in results["cpu_seconds"].items())
        + ".",
        f"- Tracebacks or ERROR lines in its log: {len(results['log_problems'])} (WARNING lines: "
        f"{results['log_warnings']}); unexpected answers: {len(results['unexpected'])}.",
    ]
    lines += [
        "",
        "The cloud as the proxy saw it (moto, and the hold of RunInstances), per action: calls, "
        "p50 / p95 / max ms: "
        + "; ".join(
            f"{action} {row['calls']}, {row['p50']:.0f} / {row['p95']:.0f} / {row['max']:.0f}"
            for action, row in results["cloud_ms"].items()
        )
        + ".",
    ]
    problems = failures(results)
    lines += ["", "Verdict: " + ("**FAILED**: " + "; ".join(problems) if problems else "passed.")]
    notes = HERE / "ANALYSIS-soak.md"
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    lines += [END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the callers run")
    parser.add_argument(
        "--ignore-retry-after",
        action="store_true",
        help="send a request answered 429 or 503 again at once, not after Retry-After",
    )
    parser.add_argument(
        "--production-rate-limits",
        action="store_true",
        help="keep production.ini's per-caller rate limits (lifted by default, as in every "
        "benchmark: 10 launches a minute per caller would leave the provider slots idle)",
    )
    parser.add_argument("--seed", type=int, default=1, help="the callers' random choices")
    parser.add_argument(
        "--record", action="store_true", help="also write the report into benchmarks/RESULTS.md"
    )
    parser.add_argument(
        "--rewrite",
        action="store_true",
        help="run nothing: write the last run's report (raw/soak/soak.json) into RESULTS.md "
        "again, with ANALYSIS-soak.md as it is now",
    )
    args = parser.parse_args(argv)
    if args.rewrite:
        results = json.loads((OUTPUT / "soak.json").read_text())
        write_section(report(results, results["command"]), HERE / "RESULTS.md", BEGIN, END)
        return 0
    settings = Settings(
        args.seconds, not args.ignore_retry_after, args.production_rate_limits, args.seed
    )
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for key, value in CHILD_ENV.items():  # boto3 in the harness: fake credentials, no IMDS
        if key != "PYTHONPATH":
            os.environ[key] = value
    log(f"{CONCURRENCY} callers for {args.seconds:g} s; logs in {OUTPUT}")
    with tempfile.TemporaryDirectory() as logs, Processes(Path(logs)) as procs:
        results = soak(procs, settings, OUTPUT)
    command = (
        "make soak SECONDS="
        + f"{args.seconds:g}"
        + (" IGNORE_RETRY_AFTER=1" if args.ignore_retry_after else "")
    )
    results["command"] = command
    (OUTPUT / "soak.json").write_text(json.dumps(results, indent=1, default=str))
    text = report(results, command)
    (OUTPUT / "SOAK.md").write_text(text + "\n")
    print(text)
    if args.record:
        write_section(text, HERE / "RESULTS.md", BEGIN, END)
        log(f"wrote {HERE / 'RESULTS.md'}")
    problems = failures(results)
    for error in results["server_errors"][:10]:
        log(f"5xx: {error}")
    for item in results["unexpected"][:10]:
        log(f"unexpected: {item}")
    for violation in results["violations"][:10]:
        log(f"violation: {violation}")
    for line in results["log_problems"][:5]:
        log(f"log: {line}")
    for problem in problems:
        log(f"FAILED {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
