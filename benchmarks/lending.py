"""The probe reserve, fixed or lent: ``python -m benchmarks.lending [--quick]`` from the repo root.

The provider slots used to keep a fixed reserve of waitress threads out of provider work
(``max(2, threads // 4)``); now the reserve is lent to provider calls while the cloud answers,
and taken back when calls stop answering (``launchprov.provider_lend_reserve``, the stall of
``launchprov.provider_stall_timeout``). This measures both at the same waitress settings, side
by side with the bare reference (``benchmarks.apps.bare_pyramid``) in the same run:

(a) throughput at concurrency 8 with 8 waitress threads, on the instant EC2 stand-in;
(b) 32 launches at once with 8 threads, on a stand-in taking 200 ms: efficiency = ideal wall
    time (ceil(32 / 8) x 200 ms) / measured;
(c) a busy cloud: RunInstances taking 1, 2 and 3 s, 16, 32 and 64 launches at once to one
    process with production.ini's concurrency (17 threads: all 17 lent under the probe lane, 13
    base), straight and through deploy/haproxy.cfg, the fixed reserve at the same threads, and
    the settings before this change (16 threads, 12 slots, a 1 s queue time-out): how many are
    answered 503, and the slowest answer.

Every server runs on 127.0.0.1 and is stopped at the end. The figures go into
benchmarks/RESULTS.md between the ``lending`` markers and into raw/lending.json. ``--quick``
runs every part with tiny counts and writes to benchmarks/raw/quick/ unless ``--output`` says
otherwise. The exit status is 1 when a launch of launchprov as built failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from benchmarks.load import burst, closed_loop, http_launch
from benchmarks.processes import (
    LAUNCH_BODY,
    LAUNCH_HEADERS,
    Processes,
    Server,
    accepts_connections,
    free_port,
    launch_once,
)
from benchmarks.sections import write_section

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- lending: written by benchmarks/lending.py -->", "<!-- /lending -->"
QUICK_OUTPUT = HERE / "raw" / "quick"
#: launchprov's loggers at WARN: no access-log line per request (as in the scale figures).
QUIET = {"logger_launchprov": {"level": "WARN"}}
#: The variants of the slots, as settings over production.ini's (threads: see each part).
FIXED_RESERVE = {"launchprov.provider_lend_reserve": "false"}
BEFORE = {**FIXED_RESERVE, "launchprov.provider_queue_timeout": "1"}
THREADS = 8
BURST = 32
BURST_DELAY_MS = 200.0


@dataclass(frozen=True)
class Plan:
    throughput_rounds: int = 3
    throughput_seconds: float = 3.0
    burst_rounds: int = 5
    delays_ms: tuple[float, ...] = (1000.0, 2000.0, 3000.0)
    launchers: tuple[int, ...] = (16, 32, 64)


FULL = Plan()
QUICK = Plan(
    throughput_rounds=1,
    throughput_seconds=0.3,
    burst_rounds=1,
    delays_ms=(1000.0,),
    launchers=(16,),
)


def log(message: str) -> None:
    print(f"[lending {time.strftime('%H:%M:%S')}] {message}", flush=True)


def start_slots(procs: Processes, url: str, threads: int, name: str) -> dict[str, Server]:
    """launchprov lent and fixed, and the bare reference, at ``threads``, started together."""
    servers = {
        "lent": procs.launchprov(url, threads, name=f"{name}-lent", sections=QUIET, wait=False),
        "fixed": procs.launchprov(
            url,
            threads,
            name=f"{name}-fixed",
            settings=FIXED_RESERVE,
            sections=QUIET,
            wait=False,
        ),
        "bare_pyramid": procs.reference("bare_pyramid", threads, url, wait=False),
    }
    procs.ready(*servers.values())
    return servers


def bench_throughput(procs: Processes, plan: Plan) -> dict:
    """(a) closed loops of 8 callers, rounds interleaved across the targets."""
    standin = procs.standin()
    servers = start_slots(procs, standin.url, THREADS, "throughput")
    rounds: dict[str, list[float]] = {name: [] for name in servers}
    failures: Counter = Counter()
    for number in range(plan.throughput_rounds):
        log(f"throughput round {number + 1}/{plan.throughput_rounds}")
        for name, server in servers.items():
            run = closed_loop(http_launch(server.port), 8, 100_000, plan.throughput_seconds, 3)
            rounds[name].append(run.throughput)
            failures[name] += run.failures
    for server in (*servers.values(), standin):
        procs.stop(server)
    table = {
        name: {
            "throughput": statistics.median(values),
            "rounds": values,
            "failures": failures[name],
        }
        for name, values in rounds.items()
    }
    # Rounds are interleaved: a round's ratio compares targets under the same load, which on a
    # shared machine moves more between rounds than between targets.
    reference = rounds["bare_pyramid"]
    for name, row in table.items():
        ratios = [
            mine / theirs for mine, theirs in zip(rounds[name], reference, strict=True) if theirs
        ]
        row["of_reference"] = statistics.median(ratios) if ratios else 0.0
    return {"threads": THREADS, "concurrency": 8, "table": table}


def bench_burst(procs: Processes, plan: Plan) -> dict:
    """(b) 32 launches at once on a stand-in taking 200 ms, 8 threads."""
    standin = procs.standin(BURST_DELAY_MS)
    servers = start_slots(procs, standin.url, THREADS, "burst")
    ideal = math.ceil(BURST / THREADS) * BURST_DELAY_MS / 1000
    table = {}
    for name, server in servers.items():
        log(f"burst of {BURST}: {name}")
        walls, failed = burst(http_launch(server.port), BURST, plan.burst_rounds)
        wall = statistics.median(walls)
        table[name] = {"median_s": wall, "walls_s": walls, "failures": failed}
        table[name]["efficiency"] = ideal / wall
    for server in (*servers.values(), standin):
        procs.stop(server)
    return {
        "threads": THREADS,
        "size": BURST,
        "delay_ms": BURST_DELAY_MS,
        "ideal_s": ideal,
        "table": table,
    }


def launch_at_once(port: int, count: int) -> tuple[Counter, float]:
    """``count`` launches sent together, each on a connection of its own: (statuses, slowest
    answer in seconds; status 0 for no answer)."""
    statuses: Counter = Counter()
    slowest = [0.0]
    lock = threading.Lock()
    start = threading.Barrier(count)

    def one() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            connection.connect()
            start.wait(timeout=60)
            sent = time.perf_counter()
            connection.request("PUT", "/v1/launch", LAUNCH_BODY, LAUNCH_HEADERS)
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException, threading.BrokenBarrierError):
            status, sent = 0, time.perf_counter()
        finally:
            connection.close()
        with lock:
            statuses[status] += 1
            slowest[0] = max(slowest[0], time.perf_counter() - sent)

    threads = [threading.Thread(target=one, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    return statuses, slowest[0]


def slow_standin(procs: Processes, delay_ms: float) -> Server:
    """The stand-in answering every call after ``delay_ms``: ready when it accepts connections
    (its readiness call would take the delay too)."""
    port = free_port()
    argv = [sys.executable, "-m", "benchmarks.standin", "--port", str(port)]
    argv += ["--delay-ms", str(delay_ms)]
    server = procs.start(f"standin-{delay_ms:g}ms", argv, port)
    server.wait_until(lambda: accepts_connections(port))
    return server


def behind_haproxy(procs: Processes, service: Server, log_dir: Path) -> Server:
    """deploy/haproxy.cfg in front of ``service`` alone (its other servers: ports where nothing
    listens, which its checks take out), ready when a launch goes through."""
    from benchmarks.scale import HAProxy

    addresses = [f"127.0.0.1:{service.port}"] + [f"127.0.0.1:{free_port()}" for _ in range(2)]
    haproxy = HAProxy(procs, addresses, log_dir)
    haproxy.server.wait_until(lambda: launch_once(haproxy.port, timeout=10))
    return haproxy.server


def bench_busy(procs: Processes, plan: Plan, threads: int, log_dir: Path) -> dict:
    """(c) a busy cloud: every burst of launchers against each variant, per delay (the
    stand-in takes the delay over every call: a launch is one RunInstances)."""
    rows = []
    for delay in plan.delays_ms:
        standin = slow_standin(procs, delay)
        variants = {
            "lent": procs.launchprov(
                standin.url, threads, name="busy-lent", sections=QUIET, wait=False
            ),
            "fixed": procs.launchprov(
                standin.url,
                threads,
                name="busy-fixed",
                settings=FIXED_RESERVE,
                sections=QUIET,
                wait=False,
            ),
            "before": procs.launchprov(
                standin.url,
                threads - 1,
                name="busy-before",
                settings=BEFORE,
                sections=QUIET,
                wait=False,
            ),
        }
        procs.ready(*variants.values())
        variants["lent, through HAProxy"] = behind_haproxy(procs, variants["lent"], log_dir)
        for launchers in plan.launchers:
            for name, server in variants.items():
                log(f"busy cloud {delay:g} ms, {launchers} launchers: {name}")
                statuses, slowest = launch_at_once(server.port, launchers)
                rows.append(
                    {
                        "delay_ms": delay,
                        "launchers": launchers,
                        "variant": name,
                        "statuses": {str(k): v for k, v in sorted(statuses.items())},
                        "slowest_s": slowest,
                    }
                )
        for server in (*variants.values(), standin):
            procs.stop(server)
    return {"threads": threads, "rows": rows}


def production_threads() -> int:
    from benchmarks.run import production_threads as threads

    return threads()


def report(results: dict, commands: str) -> str:
    lines = [BEGIN, "", "## The probe reserve: fixed or lent (issues 24 and 28)", ""]
    made = results.get("commands", {})
    lines += [
        "Each part names the command that measured it (a part run alone keeps the others' "
        f"figures); the last run: `{commands}`, load average at its start "
        f"{', '.join(f'{v:.1f}' for v in results.get('load_average', []))} on 2 cores.",
        "",
    ]
    throughput = results.get("throughput")
    if throughput:
        lines += [
            f"`{made.get('throughput', '?')}`: throughput at concurrency "
            f"{throughput['concurrency']}, "
            f"{throughput['threads']} waitress threads, instant EC2 stand-in (launches/s, "
            "median of the rounds; share of the bare reference: median of the rounds' ratios, "
            "rounds interleaved):",
            "",
            "| target | launches/s | rounds | x bare reference | failed |",
            "|---|---|---|---|---|",
        ]
        for name, row in throughput["table"].items():
            rounds = ", ".join(f"{value:.0f}" for value in row["rounds"])
            lines.append(
                f"| {name} | {row['throughput']:.0f} | {rounds} | "
                f"{row['of_reference']:.2f} | {row['failures']} |"
            )
        lines.append("")
    burst_result = results.get("burst")
    if burst_result:
        lines += [
            f"`{made.get('burst', '?')}`: {burst_result['size']} launches at once, "
            f"{burst_result['threads']} threads, "
            f"stand-in taking {burst_result['delay_ms']:g} ms (ideal "
            f"{burst_result['ideal_s']:.2f} s):",
            "",
            "| target | median wall (s) | efficiency (ideal / wall) | failed |",
            "|---|---|---|---|",
        ]
        for name, row in burst_result["table"].items():
            lines.append(
                f"| {name} | {row['median_s']:.3f} | {row['efficiency']:.2f} | {row['failures']} |"
            )
        lines.append("")
    busy = results.get("busy")
    if busy:
        lines += [
            f"`{made.get('busy', '?')}`: a busy cloud, launches sent at once to one process "
            "(lent and fixed: "
            f"production.ini, {busy['threads']} threads; before: {busy['threads'] - 1} threads, "
            "12 slots, a 1 s queue time-out; lent through HAProxy: deploy/haproxy.cfg, maxconn "
            f"{busy['threads'] - 1}, in front of the lent process), every call answered after "
            "the delay. Answers by status, and the slowest. Sent straight to a process, more "
            "launches than its lent slots wait only while calls answer (0.5 s without an "
            "answer: 503, the thread kept for health checks is freed); HAProxy queues them:",
            "",
            "| RunInstances | launchers | variant | answers | slowest (s) |",
            "|---|---|---|---|---|",
        ]
        for row in busy["rows"]:
            answers = ", ".join(f"{count} x {status}" for status, count in row["statuses"].items())
            lines.append(
                f"| {row['delay_ms'] / 1000:g} s | {row['launchers']} | "
                f"{row['variant']} | {answers} | {row['slowest_s']:.1f} |"
            )
        lines.append("")
    analysis = HERE / "ANALYSIS-lending.md"  # written by hand: what the figures chose
    if analysis.exists():
        lines += [analysis.read_text().strip(), ""]
    lines += [END]
    return "\n".join(lines)


def threads_of(results: dict) -> int:
    return (results.get("busy") or {}).get("threads", 0)


def failures(results: dict) -> list[str]:
    found = []
    for part in ("throughput", "burst"):
        row = ((results.get(part) or {}).get("table") or {}).get("lent") or {}
        if row.get("failures"):
            found.append(f"{part}: {row['failures']} launches of launchprov failed")
    for row in (results.get("busy") or {}).get("rows", []):
        if (
            row["variant"].startswith("lent")
            and (row["launchers"] < threads_of(results) or "HAProxy" in row["variant"])
            and set(row["statuses"]) != {"200"}
        ):
            found.append(
                f"busy cloud {row['delay_ms']:g} ms x {row['launchers']}: {row['statuses']}"
            )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts (CI: does it run?)")
    parser.add_argument("--only", choices=("throughput", "burst", "busy"), action="append")
    parser.add_argument("--output", type=Path, help="where RESULTS.md goes")
    parser.add_argument("--rounds", type=int, help="throughput and burst rounds (default: 3, 5)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = dataclasses.replace(plan, throughput_rounds=args.rounds, burst_rounds=args.rounds)
    output = args.output or (QUICK_OUTPUT if args.quick else HERE)
    chosen = args.only or ["throughput", "burst", "busy"]
    raw = output / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    previous = raw / "lending.json"
    results = json.loads(previous.read_text()) if previous.exists() else {}
    results["load_average"] = os.getloadavg()
    with tempfile.TemporaryDirectory() as logs, Processes(Path(logs)) as procs:
        if "throughput" in chosen:
            results["throughput"] = bench_throughput(procs, plan)
        if "burst" in chosen:
            results["burst"] = bench_burst(procs, plan)
        if "busy" in chosen:
            results["busy"] = bench_busy(procs, plan, production_threads(), Path(logs))
    command = "python -m benchmarks.lending" + (" --quick" if args.quick else "")
    if args.rounds:
        command += f" --rounds {args.rounds}"
    if args.only:
        command += "".join(f" --only {part}" for part in args.only)
    results.setdefault("commands", {}).update(dict.fromkeys(chosen, command))
    previous.write_text(json.dumps(results, indent=1))
    write_section(report(results, command), output / "RESULTS.md", BEGIN, END)
    log(f"wrote {output / 'RESULTS.md'}")
    problems = failures({part: results.get(part) for part in chosen})
    for problem in problems:
        log(f"FAILED {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
