"""The scale benchmarks: ``python -m benchmarks.scale [--quick]`` from the repository root.

(a) 64 concurrent pollers, each describing its own instance 10 times: DescribeInstances calls
    the provider receives with batching on and off, and the pollers' p50/p99;
(b) the price of batching for a lone request: its median with batching on and off;
(c) throughput of PUT /v1/launch through HAProxy (deploy/haproxy.cfg) with 1, 2 and 3
    launchprov processes, and the CPU each part used.

Every server runs on 127.0.0.1 and is stopped at the end. The figures go into
benchmarks/RESULTS.md between the ``scale`` markers (the rest of the file is left as it is) and
into benchmarks/raw/scale.json. ``--quick`` runs every part with tiny counts and writes to
benchmarks/raw/quick/ unless ``--output`` says otherwise. The exit status is 1 when a request
failed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.load import closed_loop, http_launch
from benchmarks.processes import (
    LAUNCH_HEADERS,
    Processes,
    Server,
    accepts_connections,
    free_port,
)
from benchmarks.sections import write_section
from tests.haproxy import HAPROXY_CFG, haproxy_env, server_statuses

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- scale: written by benchmarks/scale.py -->", "<!-- /scale -->"
#: production.ini with launchprov's loggers at WARN: no access-log line per request.
QUIET = {"logger_launchprov": {"level": "WARN"}}
#: What a describe costs at EC2, roughly: the stand-in waits this long before each answer.
EC2_DESCRIBE_MS = 20.0


@dataclass(frozen=True)
class Plan:
    pollers: int = 64
    rounds: int = 10
    lone_requests: int = 300
    throughput_seconds: float = 8.0
    throughput_concurrency: int = 32
    processes: tuple[int, ...] = (1, 2, 3)


FULL = Plan()
#: Every part with tiny counts: does each still run? (CI, ``make bench-scale QUICK=1``)
QUICK = Plan(pollers=8, rounds=2, lone_requests=20, throughput_seconds=0.5, processes=(2,))
#: Where --quick writes unless told otherwise (as benchmarks.run --quick): ignored by git.
QUICK_OUTPUT = HERE / "raw" / "quick"


def log(message: str) -> None:
    print(f"[bench-scale {time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def standin_calls(standin: Server) -> dict[str, int]:
    """The calls the stand-in received since the last time it was asked (then reset)."""
    connection = http.client.HTTPConnection("127.0.0.1", standin.port, timeout=10)
    try:
        connection.request(
            "POST",
            "/",
            b"Action=StandInCounts",
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def instance_id(number: int) -> str:
    return f"i-{number:017x}"


def describe_loop(port: int, ids: list[str], rounds: int, start: threading.Barrier) -> list:
    """One poller: its own keep-alive connection, ``rounds`` describes of each of ``ids``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies, failures = [], 0
    start.wait(timeout=120)
    for _ in range(rounds):
        for item in ids:
            began = time.perf_counter()
            connection.request("GET", f"/v1/instances/{item}", headers=LAUNCH_HEADERS)
            response = connection.getresponse()
            body = response.read()
            if response.status == 200 and item.encode() in body:
                latencies.append(time.perf_counter() - began)
            else:
                failures += 1
    connection.close()
    return [latencies, failures]


def poll(port: int, pollers: int, rounds: int) -> dict:
    start = threading.Barrier(pollers)
    results: list[list] = [[] for _ in range(pollers)]

    def run(number: int) -> None:
        results[number] = describe_loop(port, [instance_id(number + 1)], rounds, start)

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(pollers)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    wall = time.perf_counter() - began
    latencies = [value for result in results for value in result[0]]
    failures = sum(result[1] for result in results)
    return {
        "requests": len(latencies) + failures,
        "failures": failures,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "wall_s": wall,
    }


def batching(idle_ms: int) -> dict[str, str]:
    # The stand-in's instances carry no launchprov:caller tag: the bench caller may see them all.
    return {"launchprov.batch.idle_ms": str(idle_ms), "launchprov.policy.see": "all"}


def services(procs: Processes, standin: Server, part: str) -> dict[str, Server]:
    """launchprov with batching off and on (idle 10 ms), started together."""
    started = {
        name: procs.launchprov(
            standin.url,
            16,
            name=f"{part}-{name}",
            settings=batching(idle),
            sections=QUIET,
            wait=False,
        )
        for name, idle in (("off", 0), ("on", 10))
    }
    procs.ready(*started.values())
    return started


def bench_pollers(procs: Processes, plan: Plan) -> dict:
    """(a) DescribeInstances received with batching on (idle 10 ms) and off."""
    standin = procs.standin(delay_ms=EC2_DESCRIBE_MS)
    result = {"ec2_describe_ms": EC2_DESCRIBE_MS, "pollers": plan.pollers, "rounds": plan.rounds}
    for name, service in services(procs, standin, "pollers").items():
        standin_calls(standin)  # forget the readiness launches
        figures = poll(service.port, plan.pollers, plan.rounds)
        figures["describe_calls"] = standin_calls(standin).get("DescribeInstances", 0)
        result[name] = figures
        log(f"(a) batching {name}: {figures}")
        procs.stop(service)
    procs.stop(standin)
    result["fewer_calls"] = result["off"]["describe_calls"] / max(1, result["on"]["describe_calls"])
    return result


def bench_lone(procs: Processes, plan: Plan) -> dict:
    """(b) One client, one request at a time: the median with batching on and off."""
    standin = procs.standin(delay_ms=0)
    result = {}
    for name, service in services(procs, standin, "lone").items():
        figures = poll(service.port, 1, plan.lone_requests)
        result[name] = figures
        log(f"(b) lone request, batching {name}: {figures}")
        procs.stop(service)
    procs.stop(standin)
    result["price_ms"] = result["on"]["p50_ms"] - result["off"]["p50_ms"]
    return result


class HAProxy:
    """deploy/haproxy.cfg, its servers given through the environment."""

    def __init__(self, procs: Processes, servers: list[str], log_dir: Path):
        binary = shutil.which("haproxy")
        if binary is None:
            raise RuntimeError("needs haproxy: apt-get install haproxy (Debian package)")
        self.port = free_port()
        self.socket = str(log_dir / f"haproxy-{self.port}.sock")
        env = haproxy_env(self.port, self.socket, servers, "200ms")
        argv = [binary, "-db", "-f", str(HAPROXY_CFG)]
        self.server = procs.start("haproxy", argv, self.port, env)
        self.server.wait_until(self.answers)

    def answers(self) -> bool:
        """Its port and its stats socket answer (HAProxy binds the port before it makes the
        socket; and on a shared machine another process may hold the port for a moment)."""
        if not accepts_connections(self.port):
            return False
        try:
            self.statuses()
        except OSError:
            return False
        return True

    def statuses(self) -> dict[str, str]:
        return server_statuses(self.socket)


def only_up(haproxy: HAProxy, count: int) -> bool:
    """app1 to app<count> are UP, the others DOWN."""
    statuses = haproxy.statuses()
    return all(
        status.startswith("UP" if int(name.removeprefix("app")) <= count else "DOWN")
        for name, status in statuses.items()
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def bench_haproxy(procs: Processes, plan: Plan, log_dir: Path) -> dict:
    """(c) Launch throughput through HAProxy with 1, 2, 3 processes; the CPU of each part."""
    standin = procs.standin(delay_ms=0)
    result = {"concurrency": plan.throughput_concurrency, "seconds": plan.throughput_seconds}
    for count in plan.processes:
        services = procs.ready(
            *(
                procs.launchprov(
                    standin.url, 16, name=f"haproxy-{count}-{n}", sections=QUIET, wait=False
                )
                for n in range(count)
            )
        )
        # The servers of deploy/haproxy.cfg with no process are a port where nothing listens:
        # the health checks take them out before the measure starts.
        addresses = [f"127.0.0.1:{service.port}" for service in services]
        addresses += [f"127.0.0.1:{free_port()}" for _ in range(3 - count)]
        haproxy = HAProxy(procs, addresses, log_dir)
        haproxy.server.wait_until(lambda h=haproxy, n=count: only_up(h, n))
        parts = {"haproxy": haproxy.server, "standin": standin}
        parts.update({f"launchprov-{n + 1}": service for n, service in enumerate(services)})
        before = {name: cpu_seconds(server.pid) for name, server in parts.items()}
        load_before = own_cpu()
        run = closed_loop(
            http_launch(haproxy.port),
            plan.throughput_concurrency,
            10**7,
            plan.throughput_seconds,
            warmup=2,
        )
        cpu = {name: cpu_seconds(server.pid) - before[name] for name, server in parts.items()}
        cpu["load generator"] = own_cpu() - load_before
        figures = {
            "throughput_rps": run.throughput,
            "failures": run.failures,
            "p50_ms": statistics.median(run.latencies) * 1000,
            "p99_ms": percentile(run.latencies, 0.99) * 1000,
            "cpu_cores": {name: seconds / run.wall for name, seconds in cpu.items()},
        }
        result[str(count)] = figures
        log(f"(c) {count} process(es): {figures}")
        procs.stop(haproxy.server)
        for service in services:
            procs.stop(service)
    procs.stop(standin)
    return result


def report(results: dict) -> str:
    lines = [
        BEGIN,
        "",
        "## Scale: batching and processes behind HAProxy (`benchmarks/scale.py`)",
        "",
    ]
    a, b, c = results.get("pollers"), results.get("lone"), results.get("haproxy")
    if a:
        lines += [
            f"**(a) {a['pollers']} concurrent pollers, each describing its own instance "
            f"{a['rounds']} times** (the EC2 stand-in answers a describe in "
            f"{a['ec2_describe_ms']:g} ms; production.ini's 16 threads):",
            "",
            "| Batching | DescribeInstances received | pollers' p50 | p99 | failures |",
            "|---|---|---|---|---|",
        ]
        for name in ("off", "on"):
            row = a[name]
            lines.append(
                f"| {name} | {row['describe_calls']} | {row['p50_ms']:.1f} ms | "
                f"{row['p99_ms']:.1f} ms | {row['failures']} |"
            )
        verdict = "met" if a["fewer_calls"] >= 10 else "missed"
        lines += [
            "",
            f"{a['fewer_calls']:.1f}x fewer calls with batching (goal: >= 10x: {verdict}).",
            "",
        ]
    if b:
        verdict = "met" if b["price_ms"] <= 10 + 1 else "missed"
        lines += [
            "**(b) The price of batching for a lone request** (one client, one request at a "
            "time, stand-in without delay):",
            "",
            "| Batching | median | p99 |",
            "|---|---|---|",
            f"| off | {b['off']['p50_ms']:.2f} ms | {b['off']['p99_ms']:.2f} ms |",
            f"| on (idle_ms = 10) | {b['on']['p50_ms']:.2f} ms | {b['on']['p99_ms']:.2f} ms |",
            "",
            f"Price at the median: +{b['price_ms']:.2f} ms (goal: <= idle_ms + 1 ms = 11 ms: "
            f"{verdict}).",
            "",
        ]
    if c:
        lines += [
            f"**(c) PUT /v1/launch through HAProxy** (deploy/haproxy.cfg), {c['concurrency']} "
            f"concurrent clients for {c['seconds']:g} s, stand-in without delay. CPU in cores "
            "(of the machine's 2) used by each part during the run:",
            "",
            "| Processes | launches/s | p50 | p99 | failures | CPU: launchprov (each) | "
            "HAProxy | stand-in | load generator |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for count in (key for key in c if key.isdigit()):
            row = c[count]
            cores = row["cpu_cores"]
            each = " / ".join(
                f"{value:.2f}" for name, value in cores.items() if name.startswith("launchprov")
            )
            lines.append(
                f"| {count} | {row['throughput_rps']:.0f} | {row['p50_ms']:.1f} ms | "
                f"{row['p99_ms']:.1f} ms | {row['failures']} | {each} | {cores['haproxy']:.2f} | "
                f"{cores['standin']:.2f} | {cores['load generator']:.2f} |"
            )
        lines.append("")
    load = results.get("load_average")
    if load:
        lines += [
            f"Measured on this project's 2-core machine, shared with other work: load average "
            f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min) when the run began.",
            "",
        ]
    analysis = HERE / "ANALYSIS-scale.md"
    if analysis.exists():
        lines += [analysis.read_text().strip(), ""]
    lines += [END]
    return "\n".join(lines)


def failures(results: dict) -> list[str]:
    """Requests that failed in the parts of this run (the exit status is 1 when there are)."""
    found = []
    for part in ("pollers", "lone", "haproxy"):
        for name, row in (results.get(part) or {}).items():
            if isinstance(row, dict) and row.get("failures"):
                found.append(f"{part} {name}: {row['failures']} requests failed")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="every part with tiny counts (CI: does it run?)"
    )
    parser.add_argument(
        "--only", choices=("pollers", "lone", "haproxy"), action="append", help="run only these"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"where RESULTS.md goes (default: {HERE.name}/, with --quick "
        f"{QUICK_OUTPUT.relative_to(HERE.parent)}/)",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    output = args.output or (QUICK_OUTPUT if args.quick else HERE)
    chosen = args.only or ["pollers", "lone", "haproxy"]
    raw = output / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    previous = raw / "scale.json"
    results = json.loads(previous.read_text()) if previous.exists() else {}
    results["load_average"] = os.getloadavg()
    with tempfile.TemporaryDirectory() as logs, Processes(Path(logs)) as procs:
        if "pollers" in chosen:
            results["pollers"] = bench_pollers(procs, plan)
        if "lone" in chosen:
            results["lone"] = bench_lone(procs, plan)
        if "haproxy" in chosen:
            results["haproxy"] = bench_haproxy(procs, plan, Path(logs))
    previous.write_text(json.dumps(results, indent=1))
    write_section(report(results), output / "RESULTS.md", BEGIN, END)
    log(f"wrote {output / 'RESULTS.md'}")
    problems = failures({part: results.get(part) for part in chosen})
    for problem in problems:
        log(f"FAILED {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
