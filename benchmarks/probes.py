"""What unauthenticated probes cost the cloud: GET /readyz as fast as 8 clients can ask it.

launchprov runs as production.ini has it (16 threads) in front of the counting stand-in, once
with launchprov.readiness_cache = 0 (a readiness call for every probe that finds none in
progress: what /readyz did before issue 24) and once with production.ini's 5 s. Each run: a
warm-up probe, then 8 clients on kept-alive connections for ``--seconds``; recorded are the
probes answered, their statuses, and the DescribeAvailabilityZones calls the stand-in received.

Run it alone: ``python -m benchmarks.probes [--seconds 10]`` prints the table (markdown).
"""

from __future__ import annotations

import argparse
import http.client
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.processes import Processes, accepts_connections, answers_ok
from benchmarks.scale import standin_calls

CLIENTS = 8
THREADS = 16
#: readiness_cache values compared: before issue 24, and production.ini's.
CACHES = ("0", "5")


def _probe(port: int, until: float, statuses: list[int]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        while time.monotonic() < until:
            connection.request("GET", "/readyz")
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
    finally:
        connection.close()


def bench_probes(procs: Processes, seconds: float, cache: str) -> dict:
    standin = procs.standin()
    app = {"launchprov.ec2.endpoint_url": standin.url, "launchprov.readiness_cache": cache}
    service = procs.pserve(
        f"launchprov-probes-{cache}", app, THREADS, ready=lambda port: accepts_connections(port)
    )
    service.wait_until(
        lambda: answers_ok(service.port, "/readyz", timeout=10)
    )  # the warm-up: one readiness call
    standin_calls(standin)  # forget the warm-up's calls
    statuses: list[int] = []  # list.append is atomic: the clients share it
    until = time.monotonic() + seconds
    clients = [
        threading.Thread(target=_probe, args=(service.port, until, statuses))
        for _ in range(CLIENTS)
    ]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    calls = standin_calls(standin).get("DescribeAvailabilityZones", 0)
    procs.stop(service)
    procs.stop(standin)
    return {
        "cache": cache,
        "seconds": seconds,
        "probes": len(statuses),
        "ok": statuses.count(200),
        "calls": calls,
    }


def section(results: list[dict]) -> list[str]:
    lines = [
        f"## Probes: GET /readyz from {CLIENTS} unauthenticated clients",
        "",
        "| readiness_cache | Probes | 200 | DescribeAvailabilityZones | Per 1,000 probes |",
        "|---|---|---|---|---|",
    ]
    for row in results:
        per_thousand = 1000 * row["calls"] / row["probes"] if row["probes"] else 0.0
        lines.append(
            f"| {row['cache']} s | {row['probes']} in {row['seconds']:g} s | {row['ok']} "
            f"| {row['calls']} | {per_thousand:.1f} |"
        )
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as logs, Processes(Path(logs)) as procs:
        results = [bench_probes(procs, args.seconds, cache) for cache in CACHES]
    print("\n".join(section(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
