"""The benchmark harness: ``python -m benchmarks.run [--quick]`` from the repository root.

It starts its own servers on 127.0.0.1 (the EC2 stand-in, moto, launchprov and the reference
apps under pserve), measures the five figures of issue 6 and a few that explain them, and
writes benchmarks/RESULTS.md and the PNG plots (and benchmarks/raw/: results.json, py-spy's
stacks). Every child process is stopped at the end, also on error.

``--quick`` runs every part with tiny counts (seconds a part; CI runs it: ``make bench QUICK=1``)
and writes to benchmarks/raw/quick/ unless ``--output`` says otherwise: its figures prove that
every part still runs, nothing more. Either way the exit status is 1 when a part failed: a
crash, a failed launch, a variant that could not be built (the report is written first).
"""

from __future__ import annotations

import argparse
import configparser
import http.client
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks import report
from benchmarks.load import Run, boto3_launch, burst, closed_loop, http_launch
from benchmarks.processes import (
    BIN,
    CALLER,
    CHILD_ENV,
    REPO,
    Processes,
    Server,
    rss_kib,
)
from benchmarks.slowcloud import bench_slowcloud

HERE = Path(__file__).resolve().parent
#: Large artefacts of a run (results.json, py-spy's stacks), under the output directory: not
#: committed (benchmarks/.gitignore).
RAW = "raw"
#: What the provider is asked for, and what direct boto3 sends: the same RunInstances.
AMI = "ami-760aaa0f"
INSTANCE_TYPE = "t2.micro"
SEED_KEY = "scalacity_dev1"
SEED_GROUP = "SSH"
#: The stand-in's delay for the concurrency figure.
DELAY_MS = 200.0
#: production.ini with launchprov's loggers at WARN: no access-log line per request.
QUIET_ACCESS_LOG = {"logger_launchprov": {"level": "WARN"}}


@dataclass(frozen=True)
class Plan:
    """Sample sizes: each loop is bounded by these counts and durations."""

    startup_runs: int = 5
    memory_launches: int = 10_000
    memory_step: int = 500
    memory_concurrency: int = 8
    overhead_steps: int = 1000  # launches of each target through moto
    overhead_reset_every: int = 100  # moto gets slower (and its GC pauses longer) as it grows
    overhead_warmup: int = 30
    concurrencies: tuple[int, ...] = (1, 8, 32)
    throughput_rounds: int = 3
    throughput_seconds: float = 2.0
    throughput_max_requests: int = 20_000
    sensitivity_seconds: float = 2.0  # 0: skip the http.server stand-in check
    burst_sizes: tuple[int, ...] = (1, 8, 16, 32, 64)
    burst_rounds: int = 5
    profile_seconds: float = 10.0  # 0: no profile
    profile_warmup_seconds: float = 2.0
    inprocess_requests: int = 3000
    inprocess_rounds: int = 5
    slowcloud_seconds: float = 65.0  # two waves of the 25 s deadline; 0: skip
    slowcloud_delay_ms: float = 30_000.0  # the backend's answer time (the fault)
    slowcloud_deadline: str = ""  # launchprov.request_deadline; empty: production.ini's 25 s


FULL = Plan()
#: Every part with tiny counts: does each still run? (CI); the slow cloud on a scaled clock.
QUICK = Plan(
    startup_runs=1,
    memory_launches=300,
    memory_step=100,
    overhead_steps=10,
    overhead_reset_every=5,
    overhead_warmup=2,
    concurrencies=(1, 8),
    throughput_rounds=1,
    throughput_seconds=0.2,
    sensitivity_seconds=0.3,
    burst_sizes=(1, 16),
    burst_rounds=1,
    profile_seconds=1.0,
    profile_warmup_seconds=0.3,
    inprocess_requests=50,
    inprocess_rounds=1,
    slowcloud_seconds=3.0,
    slowcloud_delay_ms=3000.0,
    slowcloud_deadline="2",
)
#: Where --quick writes unless told otherwise: ignored by git (benchmarks/.gitignore).
QUICK_OUTPUT = HERE / RAW / "quick"


def production_threads() -> int:
    ini = configparser.RawConfigParser()
    ini.read(REPO / "production.ini")
    return ini.getint("server:main", "threads", fallback=4)


def direct_client(endpoint: str, pool: int):
    """boto3 in the harness, as launchprov configures it (pool sized for the harness threads)."""
    from benchmarks.apps import ec2_client

    return ec2_client(endpoint, max_pool_connections=pool)


def run_instances_params() -> dict:
    """What launchprov sends for the harness's launch body (fresh request-id tag each call)."""
    from benchmarks.apps import run_instances

    return run_instances(AMI, INSTANCE_TYPE, CALLER)


def _rounded_ms(seconds: list[float]) -> list[float]:
    """Milliseconds to the microsecond: results.json stays small."""
    return [round(value * 1000, 3) for value in seconds]


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (unsorted)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summary_ms(latencies: list[float]) -> dict:
    return {
        "n": len(latencies),
        "median_ms": statistics.median(latencies) * 1000,
        "p90_ms": percentile(latencies, 0.90) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
    }


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU of ``pid`` (None: this process)."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- 5. startup -------------------------------------------------------------------------------


def bench_startup(procs: Processes, plan: Plan, threads: int, standin: Server) -> dict:
    """Seconds from pserve's start to the first 200 of PUT /v1/launch, on fresh processes."""
    seconds = []
    for _ in range(plan.startup_runs):
        service = procs.launchprov(standin.url, threads, name="startup")
        seconds.append(service.startup)
        procs.stop(service)
    return {"runs_s": seconds, "median_s": statistics.median(seconds), "max_s": max(seconds)}


# -- 4. memory --------------------------------------------------------------------------------


def bench_memory(procs: Processes, plan: Plan, threads: int, standin: Server) -> dict:
    """RSS of fresh processes every ``memory_step`` launches: launchprov, then as it was."""
    service, before = procs.ready(
        procs.launchprov(standin.url, threads, name="memory", wait=False),
        procs.launchprov_before(standin.url, threads, wait=False),
    )
    result = memory_of(service, procs, plan)
    result["launchprov_before"] = memory_of(before, procs, plan)
    return result


def memory_of(service: Server, procs: Processes, plan: Plan) -> dict:
    points = [(1, rss_kib(service.pid))]  # after the readiness launch
    done = 1
    failures = 0
    while done < plan.memory_launches:
        step = min(plan.memory_step - done % plan.memory_step, plan.memory_launches - done)
        run = closed_loop(http_launch(service.port), plan.memory_concurrency, step, 120.0)
        if len(run.latencies) + run.failures != step:
            raise RuntimeError(f"memory: {step} launches asked, {len(run.latencies)} made")
        failures += run.failures
        done += step
        points.append((done, rss_kib(service.pid)))
    procs.stop(service)
    by_count = dict(points)

    def at(count: int) -> int:
        return by_count[min(by_count, key=lambda known: abs(known - count))]

    first = 1000
    last = plan.memory_launches
    growth = (at(last) - at(first)) / ((last - first) / 1000) / 1024
    tail = [(count, kib) for count, kib in points if count >= first]
    slope = _slope(tail) * 1000 / 1024
    return {
        "points": points,
        "failures": failures,
        "rss_at_1000_mib": at(first) / 1024,
        "rss_at_last_mib": at(last) / 1024,
        "last": last,
        "growth_mib_per_1000": growth,
        "fit_mib_per_1000": slope,
        "concurrency": plan.memory_concurrency,
    }


def _slope(points: list[tuple[int, int]]) -> float:
    """Least-squares slope of y over x."""
    if len(points) < 2:
        return 0.0
    xs, ys = zip(*points, strict=True)
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    denominator = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / denominator


# -- 1. overhead per launch, through moto -------------------------------------------------------


def seed_moto(client) -> None:
    """The seed's default key pair and security group, as an account using launchprov has."""
    client.create_key_pair(KeyName=SEED_KEY)
    client.create_security_group(GroupName=SEED_GROUP, Description="ssh")


def reset_moto(moto: Server, client) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", moto.port, timeout=30)
    try:
        connection.request("POST", "/moto-api/reset")
        connection.getresponse().read()
    finally:
        connection.close()
    seed_moto(client)


def start_targets(procs: Processes, url: str, threads: int, name: str) -> dict[str, Server]:
    """launchprov (as built, before R1/R2, without its access log) and the references,
    each a waitress process calling the EC2 endpoint at ``url``, started together."""
    servers = {
        "launchprov": procs.launchprov(url, threads, name=name, wait=False),
        "launchprov_before": procs.launchprov_before(url, threads, wait=False),
        "launchprov_no_access_log": procs.launchprov(
            url, threads, name="no-access-log", sections=QUIET_ACCESS_LOG, wait=False
        ),
        "bare_pyramid": procs.reference("bare_pyramid", threads, url, wait=False),
        "bare_wsgi_boto3": procs.reference("bare_wsgi_boto3", threads, url, wait=False),
    }
    procs.ready(*servers.values())
    return servers


def bench_overhead(procs: Processes, plan: Plan, threads: int) -> dict:
    """The same launches through the service and straight from boto3, interleaved, on moto."""
    moto = procs.moto()
    client = direct_client(moto.url, pool=4)
    seed_moto(client)
    servers = start_targets(procs, moto.url, threads, "overhead")
    calls = {name: http_launch(server.port)() for name, server in servers.items()}
    calls["boto3"] = boto3_launch(client, run_instances_params)()
    for call in calls.values():
        for _ in range(plan.overhead_warmup):
            if not call():
                raise RuntimeError("overhead: a warm-up launch failed")
    latencies: dict[str, list[float]] = {name: [] for name in calls}
    order_rng = random.Random(6)  # noqa: S311 (an order, not a secret; the same every run)
    failures = dict.fromkeys(calls, 0)
    errors: list[str] = []
    overhead_started = time.perf_counter()
    for step in range(plan.overhead_steps):
        if step and step % plan.overhead_reset_every == 0:
            reset_moto(moto, client)
        order = list(calls)
        order_rng.shuffle(order)  # no target always goes first after a reset or a pause
        for name in order:
            started = time.perf_counter()
            try:
                ok = calls[name]()
            except (OSError, http.client.HTTPException) as exc:  # http.client reconnects next
                elapsed = time.perf_counter() - overhead_started
                errors.append(f"{name}, step {step} ({elapsed:.1f} s in): {exc!r}")
                ok = False
            latencies[name].append(time.perf_counter() - started if ok else math.nan)
            failures[name] += not ok
    for name, server in servers.items():
        calls[name].connection.close()
        procs.stop(server)
    procs.stop(moto)
    # Steps where a launch failed are left out for every target, so that the pairs stay pairs.
    kept = [
        step
        for step in range(plan.overhead_steps)
        if not any(math.isnan(values[step]) for values in latencies.values())
    ]
    if len(kept) < plan.overhead_steps // 2:
        raise RuntimeError(f"overhead: too many failed launches {failures}: {errors[:5]}")
    latencies = {name: [values[step] for step in kept] for name, values in latencies.items()}
    result = {
        "steps": plan.overhead_steps,
        "reset_every": plan.overhead_reset_every,
        "failures": failures,
        "errors": errors[:10],
        "latencies_ms": {name: _rounded_ms(values) for name, values in latencies.items()},
        "summary": {name: summary_ms(values) for name, values in latencies.items()},
    }
    for name in servers:
        result[name] = compare_paired(latencies[name], latencies["boto3"])
    return result


def compare_paired(through: list[float], direct: list[float], resamples: int = 2000) -> dict:
    """Ratio of medians and p99 difference, with bootstrap 95% intervals over the steps."""
    import numpy

    a = numpy.asarray(through) * 1000
    b = numpy.asarray(direct) * 1000
    rng = numpy.random.default_rng(6)
    index = rng.integers(0, len(a), size=(resamples, len(a)))
    ratios = numpy.median(a[index], axis=1) / numpy.median(b[index], axis=1)
    p99 = numpy.percentile(a[index], 99, axis=1, method="inverted_cdf") - numpy.percentile(
        b[index], 99, axis=1, method="inverted_cdf"
    )
    return {
        "median_ratio": float(numpy.median(a) / numpy.median(b)),
        "median_ratio_ci": [float(v) for v in numpy.percentile(ratios, [2.5, 97.5])],
        "median_added_ms": float(numpy.median(a) - numpy.median(b)),
        "p99_added_ms": float(
            numpy.percentile(a, 99, method="inverted_cdf")
            - numpy.percentile(b, 99, method="inverted_cdf")
        ),
        "p99_added_ms_ci": [float(v) for v in numpy.percentile(p99, [2.5, 97.5])],
        "paired_difference_median_ms": float(numpy.median(a - b)),
    }


# -- 2. the service's own cost -----------------------------------------------------------------


def bench_throughput(procs: Processes, plan: Plan, threads: int, standin: Server) -> dict:
    """Closed loops at each concurrency against every target, rounds interleaved."""
    bare_json = procs.reference("bare_json", threads, wait=False)
    servers = {**start_targets(procs, standin.url, threads, "throughput"), "bare_json": bare_json}
    procs.ready(bare_json)
    client = direct_client(standin.url, pool=max(plan.concurrencies))
    factories = {name: http_launch(server.port) for name, server in servers.items()}
    factories["boto3"] = boto3_launch(client, run_instances_params)
    pids = {name: server.pid for name, server in servers.items()}
    pids["boto3"] = None  # the harness itself

    runs: dict[str, dict[int, list[Run]]] = {
        name: {c: [] for c in plan.concurrencies} for name in factories
    }
    cpu: dict[str, dict[int, list[float]]] = {
        name: {c: [] for c in plan.concurrencies} for name in factories
    }
    for round_number in range(plan.throughput_rounds):
        log(f"  throughput round {round_number + 1}/{plan.throughput_rounds}")
        for concurrency in plan.concurrencies:
            for name, factory in factories.items():
                before = cpu_seconds(pids[name])
                run = closed_loop(
                    factory,
                    concurrency,
                    plan.throughput_max_requests,
                    plan.throughput_seconds,
                    warmup=3,
                )
                spent = cpu_seconds(pids[name]) - before
                if not run.latencies:
                    raise RuntimeError(f"throughput: every launch of {name} failed")
                runs[name][concurrency].append(run)
                cpu[name][concurrency].append(spent / len(run.latencies) * 1000)
    pool_warnings = count_pool_warnings(servers["launchprov"])
    for server in servers.values():
        procs.stop(server)

    table = {}
    for name, by_concurrency in runs.items():
        table[name] = {}
        for concurrency, rounds in by_concurrency.items():
            latencies = [value for run in rounds for value in run.latencies]
            table[name][concurrency] = {
                "throughput": statistics.median(run.throughput for run in rounds),
                "throughput_rounds": [run.throughput for run in rounds],
                "cpu_ms_per_launch": statistics.median(cpu[name][concurrency]),
                "failures": sum(run.failures for run in rounds),
                **summary_ms(latencies),
            }
    at = max(c for c in plan.concurrencies if c <= 8)
    distributions = {
        name: _rounded_ms([v for run in runs[name][at] for v in run.latencies]) for name in runs
    }
    return {
        "threads": threads,
        "rounds": plan.throughput_rounds,
        "seconds_per_round": plan.throughput_seconds,
        "table": table,
        "latencies_ms_at": at,
        "latencies_ms": distributions,
        "pool_full_warnings": pool_warnings,
    }


def bench_sensitivity(procs: Processes, plan: Plan, threads: int) -> dict | None:
    """Target 2 again at concurrency 8 with http.server's stand-in: does the stand-in matter?"""
    if not plan.sensitivity_seconds:
        return None
    standin = procs.standin(kind="threading")
    service, bare = procs.ready(
        procs.launchprov(standin.url, threads, name="sensitivity", wait=False),
        procs.reference("bare_pyramid", threads, standin.url, wait=False),
    )
    factories = {
        "launchprov": http_launch(service.port),
        "bare_pyramid": http_launch(bare.port),
        "boto3": boto3_launch(direct_client(standin.url, pool=8), run_instances_params),
    }
    throughput = {}
    for name, factory in factories.items():
        run = closed_loop(factory, 8, plan.throughput_max_requests, plan.sensitivity_seconds, 3)
        throughput[name] = run.throughput
    for server in (service, bare, standin):
        procs.stop(server)
    return {"concurrency": 8, "throughput": throughput}


def count_pool_warnings(server: Server) -> int:
    return server.output_all().count("Connection pool is full")


# -- 3. concurrency ----------------------------------------------------------------------------


def bench_concurrency(procs: Processes, plan: Plan, threads: int) -> dict:
    """N launches at once against a stand-in that takes 200 ms: wall time against the ideal."""
    standin = procs.standin(DELAY_MS)
    results = {}
    warnings = {}
    servers = {
        "launchprov": procs.launchprov(standin.url, threads, name="concurrency", wait=False),
        "launchprov_before": procs.launchprov_before(standin.url, threads, wait=False),
        "bare_pyramid": procs.reference("bare_pyramid", threads, standin.url, wait=False),
    }
    procs.ready(*servers.values())
    for name, server in servers.items():
        rows = {}
        for size in plan.burst_sizes:
            walls, failed = burst(http_launch(server.port), size, plan.burst_rounds)
            ideal = math.ceil(size / threads) * DELAY_MS / 1000
            wall = statistics.median(walls)
            rows[size] = {
                "walls_s": walls,
                "failures": failed,
                "median_s": wall,
                "ideal_s": ideal,
                "efficiency": ideal / wall,
                "speedup": size * DELAY_MS / 1000 / wall,
                "ideal_speedup": size * DELAY_MS / 1000 / ideal,
            }
        results[name] = rows
        warnings[name] = count_pool_warnings(server)
        procs.stop(server)
    procs.stop(standin)
    return {
        "threads": threads,
        "delay_ms": DELAY_MS,
        "rounds": plan.burst_rounds,
        "results": results,
        "pool_full_warnings": warnings,
    }


# -- profile and in-process breakdown ----------------------------------------------------------


def bench_profile(
    procs: Processes, plan: Plan, threads: int, standin: Server, raw_dir: Path
) -> dict | None:
    """py-spy on launchprov under load at concurrency 8 (GIL-holding samples only)."""
    if not plan.profile_seconds:
        return None
    raw_dir.mkdir(parents=True, exist_ok=True)
    py_spy = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
    if py_spy is None:
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    service = procs.launchprov(standin.url, threads, name="profile")
    raw = raw_dir / "profile-launchprov.txt"
    closed_loop(http_launch(service.port), 8, 2000, plan.profile_warmup_seconds, warmup=3)
    command = [
        py_spy,
        "record",
        "--pid",
        str(service.pid),
        "--duration",
        str(int(plan.profile_seconds)),
        "--rate",
        "200",
        "--gil",
        "--format",
        "raw",
        "--output",
        str(raw),
    ]
    spy = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        run = closed_loop(http_launch(service.port), 8, 10**6, plan.profile_seconds + 1, 0)
        try:
            output, _ = spy.communicate(timeout=plan.profile_seconds + 60)
        except subprocess.TimeoutExpired:
            output = "py-spy did not finish"
    finally:
        if spy.poll() is None:  # the load failed, or py-spy hangs: never leave it behind
            spy.kill()
            spy.communicate()
    procs.stop(service)
    if spy.returncode != 0 or not raw.exists():
        return {"skipped": f"py-spy failed ({spy.returncode}): {output.strip()[-500:]}"}
    from benchmarks.profiling import summarise

    return {
        "seconds": plan.profile_seconds,
        "throughput_while_sampled": run.throughput,
        "raw": f"{RAW}/{raw.name}",
        **summarise(raw),
    }


def bench_inprocess(plan: Plan) -> dict:
    command = [
        sys.executable,
        "-m",
        "benchmarks.inprocess",
        "--requests",
        str(plan.inprocess_requests),
        "--rounds",
        str(plan.inprocess_rounds),
    ]
    env = {**os.environ, **CHILD_ENV}
    completed = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    try:  # exit status 1 with the JSON: a variant could not be built (failures() says so)
        return json.loads(completed.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(
            f"benchmarks.inprocess failed ({completed.returncode}):\n{completed.stderr[-2000:]}"
        ) from None


# -- what failed -------------------------------------------------------------------------------


def failures(results: dict) -> list[str]:
    """What went wrong in a run that finished: failed launches, variants not built, probes
    not answered. Empty for a good run; the exit status is 1 otherwise."""
    found = []

    def failed(part: str, count: int, what: str = "launches failed") -> None:
        if count:
            found.append(f"{part}: {count} {what}")

    memory = results["memory"]
    failed("memory", memory["failures"])
    failed("memory (before R1, R2)", memory["launchprov_before"]["failures"])
    for name, by_concurrency in results["throughput"]["table"].items():
        for concurrency, row in by_concurrency.items():
            failed(f"throughput {name} x{concurrency}", row["failures"])
    for name, rows in results["concurrency"]["results"].items():
        for size, row in rows.items():
            failed(f"concurrency {name} burst {size}", row["failures"])
    for name, count in results["overhead"]["failures"].items():
        failed(f"overhead {name}", count)
    for name, error in results["inprocess"].get("errors", {}).items():
        found.append(f"inprocess {name}: {error}")
    if results.get("slowcloud"):
        found += [f"slowcloud: {problem}" for problem in slowcloud_failures(results["slowcloud"])]
    return found


def slowcloud_failures(result: dict) -> list[str]:
    """The slow cloud's promise: every probe answered 200 at once (/readyz: 200 or 503), every
    launch answered (a 200, 408 or 503: never no answer, never a 500)."""
    found = []
    for path, row in result["summary"]["probes"].items():
        allowed = {"200", "503"} if path == "/readyz" else {"200"}
        wrong = {status: n for status, n in row["statuses"].items() if status not in allowed}
        if not row["n"] or wrong:
            found.append(f"{path} answered {row['statuses'] or 'nothing'}")
    wrong = {
        status: row["n"]
        for status, row in result["summary"]["launches"].items()
        if status not in {"200", "408", "503"}
    }
    if wrong:
        found.append(f"launches answered {wrong} (0: no answer)")
    return found


# -- the run -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="every part with tiny counts (CI: does it run?)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=production_threads(),
        help="waitress threads of every server (default: production.ini's)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"where RESULTS.md and the PNGs go (default: {HERE.name}/, with --quick "
        f"{QUICK_OUTPUT.relative_to(HERE.parent)}/)",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    args.output = args.output or (QUICK_OUTPUT if args.quick else HERE)
    args.output.mkdir(parents=True, exist_ok=True)
    for key, value in CHILD_ENV.items():  # boto3 in the harness: fake credentials, no IMDS
        if key != "PYTHONPATH":
            os.environ[key] = value
    started = time.perf_counter()
    results: dict = {
        "plan": asdict(plan),
        "quick": args.quick,
        "threads": args.threads,
        "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.run", *sys.argv[1:]]),
        "durations_s": {},
    }

    def part(name: str, function, *arguments):
        log(f"{name} ...")
        part_started = time.perf_counter()
        cpu_before = sum(os.times()[:4])  # this process and its children (servers once stopped)
        results[name] = function(*arguments)
        results["durations_s"][name] = time.perf_counter() - part_started
        cpu = sum(os.times()[:4]) - cpu_before
        log(f"{name} done in {results['durations_s'][name]:.1f} s ({cpu:.1f} s of CPU)")

    with (
        tempfile.TemporaryDirectory(prefix="launchprov-bench-") as tmp,
        Processes(Path(tmp)) as procs,
    ):
        standin = procs.standin()
        part("startup", bench_startup, procs, plan, args.threads, standin)
        part("memory", bench_memory, procs, plan, args.threads, standin)
        part("throughput", bench_throughput, procs, plan, args.threads, standin)
        part("sensitivity", bench_sensitivity, procs, plan, args.threads)
        part("concurrency", bench_concurrency, procs, plan, args.threads)
        part("overhead", bench_overhead, procs, plan, args.threads)
        part("profile", bench_profile, procs, plan, args.threads, standin, args.output / RAW)
        part("inprocess", bench_inprocess, plan)
        if plan.slowcloud_seconds:
            part(
                "slowcloud",
                bench_slowcloud,
                procs,
                args.threads,
                plan.slowcloud_seconds,
                plan.slowcloud_delay_ms,
                plan.slowcloud_deadline,
            )
    results["total_s"] = time.perf_counter() - started
    results["environment"] = report.environment()
    raw_dir = args.output / RAW
    raw_dir.mkdir(parents=True, exist_ok=True)
    (raw_dir / "results.json").write_text(json.dumps(results) + "\n")
    report.write(results, args.output)
    log(f"wrote {args.output / 'RESULTS.md'} in {results['total_s']:.0f} s")
    if "skipped" in (results["profile"] or {}):  # py-spy missing or not allowed to attach
        log(f"note: profile skipped: {results['profile']['skipped']}")
    problems = failures(results)
    for problem in problems:
        log(f"FAILED {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
