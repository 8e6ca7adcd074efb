"""The slow-cloud scenario: a backend that answers after 30 s, 32 callers launching in loops.

launchprov runs as production.ini has it (17 threads: 16 provider slots lent while calls answer,
13 once they stall; a 25 s request deadline, botocore's 3 x (3 + 15) s) in front of the stand-in
with a 30 s delay on every call. 32 caller threads launch one after another for the whole run
while a prober asks /healthz, /metrics and /readyz every half second. Recorded over time: each
probe's latency and status, and each launch's answer (status, latency, when it came). Before the
bulkhead and the deadline, not one probe was answered in the first 60 s of this scenario (issue
16).

Run it alone: ``python -m benchmarks.slowcloud [--seconds 65]`` writes
``benchmarks/SLOWCLOUD.md``, ``benchmarks/slowcloud.png`` and ``benchmarks/raw/slowcloud.json``;
``make bench`` runs it as one of its parts and puts it in RESULTS.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.processes import (
    CHILD_ENV,
    LAUNCH_BODY,
    LAUNCH_HEADERS,
    Processes,
    Server,
    accepts_connections,
    free_port,
)

HERE = Path(__file__).resolve().parent
#: The stand-in's delay: every call is answered after 30 s (the issue's fault).
DELAY_MS = 30_000.0
CALLERS = 32
PROBE_INTERVAL = 0.5
PROBES = ("/healthz", "/metrics", "/readyz")
#: A caller gives up on an answer after this long (none should take it: the deadline is 25 s).
CLIENT_TIMEOUT = 120.0


def _request(port: int, method: str, path: str, body=None, headers=None) -> tuple[int, float]:
    """(status, seconds) of one request on a fresh connection; status 0 when it failed."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
    try:
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    except OSError:
        return 0, time.perf_counter() - started
    finally:
        connection.close()


def _healthy(port: int) -> bool:
    return accepts_connections(port) and _request(port, "GET", "/healthz")[0] == 200


def slow_standin(procs: Processes, delay_ms: float = DELAY_MS) -> Server:
    """The stand-in, answering every call after ``delay_ms``; ready when it accepts connections."""
    port = free_port()
    argv = [sys.executable, "-m", "benchmarks.standin", "--port", str(port)]
    argv += ["--delay-ms", str(delay_ms)]
    server = procs.start("standin-slow", argv, port)
    server.wait_until(lambda: accepts_connections(port))
    return server


def bench_slowcloud(
    procs: Processes,
    threads: int,
    seconds: float,
    delay_ms: float = DELAY_MS,
    deadline: str = "",
) -> dict:
    """Probes and launches over time against the slow stand-in; see the module's doc.

    ``delay_ms`` and ``deadline`` (launchprov.request_deadline; empty: production.ini's) scale
    the scenario's clock down for a quick run.
    """
    standin = slow_standin(procs, delay_ms)
    app = {"launchprov.ec2.endpoint_url": standin.url}
    if deadline:
        app["launchprov.request_deadline"] = deadline
    service = procs.pserve("launchprov-slowcloud", app, threads, ready=_healthy)
    port = service.port
    origin = time.perf_counter()
    stop_at = origin + seconds
    probes: list[dict] = []
    launches: list[dict] = []
    lock = threading.Lock()

    def caller():
        while time.perf_counter() < stop_at:
            sent = time.perf_counter() - origin
            status, took = _request(port, "PUT", "/v1/launch", LAUNCH_BODY, LAUNCH_HEADERS)
            with lock:
                launches.append({"sent": sent, "seconds": took, "status": status})
            if status == 503:  # a caller backing off (briefly, to keep up the pressure)
                time.sleep(0.5)

    def prober():
        while time.perf_counter() < stop_at:
            tick = time.perf_counter()
            for path in PROBES:
                sent = time.perf_counter() - origin
                status, took = _request(port, "GET", path)
                with lock:
                    probes.append({"path": path, "sent": sent, "seconds": took, "status": status})
            time.sleep(max(0.0, PROBE_INTERVAL - (time.perf_counter() - tick)))

    workers = [threading.Thread(target=caller) for _ in range(CALLERS)]
    workers.append(threading.Thread(target=prober))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    procs.stop(service)
    procs.stop(standin)
    return {
        "seconds": seconds,
        "threads": threads,
        "callers": CALLERS,
        "delay_ms": delay_ms,
        "request_deadline_s": float(deadline) if deadline else None,
        "probes": probes,
        "launches": launches,
        "summary": summarise(probes, launches),
    }


def summarise(probes: list[dict], launches: list[dict]) -> dict:
    by_path = {}
    for path in PROBES:
        answered = [p for p in probes if p["path"] == path]
        latencies = [p["seconds"] for p in answered]
        by_path[path] = {
            "n": len(answered),
            "statuses": _count(p["status"] for p in answered),
            "median_ms": statistics.median(latencies) * 1000 if latencies else None,
            "max_ms": max(latencies) * 1000 if latencies else None,
        }
    by_status = {}
    for status in sorted({launch["status"] for launch in launches}):
        latencies = [launch["seconds"] for launch in launches if launch["status"] == status]
        by_status[str(status)] = {
            "n": len(latencies),
            "median_s": statistics.median(latencies),
            "max_s": max(latencies),
        }
    return {"probes": by_path, "launches": by_status}


def _count(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return counts


def section(result: dict) -> list[str]:
    """The RESULTS.md section of the scenario."""
    summary = result["summary"]
    lines = [
        f"## Slow cloud: probes and launches while the backend answers after "
        f"{result['delay_ms'] / 1000:g} s",
        "",
        f"{result['callers']} callers launching in loops for {result['seconds']:g} s against a "
        f"stand-in that answers every call after {result['delay_ms'] / 1000:g} s; launchprov "
        f"with production.ini (threads = {result['threads']}); a probe of each route every "
        f"{PROBE_INTERVAL:g} s. Plot: `slowcloud.png`.",
        "",
        "| Probe | Answers | Statuses | Median | Max |",
        "|---|---|---|---|---|",
    ]
    for path, row in summary["probes"].items():
        statuses = ", ".join(f"{status}: {n}" for status, n in row["statuses"].items())
        lines.append(
            f"| `{path}` | {row['n']} | {statuses} | {row['median_ms']:.1f} ms "
            f"| {row['max_ms']:.1f} ms |"
        )
    lines += ["", "| Launch answer | Count | Median latency | Max latency |", "|---|---|---|---|"]
    for status, row in summary["launches"].items():
        lines.append(f"| {status} | {row['n']} | {row['median_s']:.2f} s | {row['max_s']:.2f} s |")
    lines.append("")
    return lines


def plot(result: dict, output: Path) -> str:
    """slowcloud.png: probe latency over time, and launch answers over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    colors = {"/healthz": "tab:green", "/metrics": "tab:blue", "/readyz": "tab:purple"}
    for path in PROBES:
        points = [p for p in result["probes"] if p["path"] == path]
        top.plot(
            [p["sent"] for p in points],
            [p["seconds"] * 1000 for p in points],
            ".",
            color=colors[path],
            label=path,
            markersize=4,
        )
    top.set_yscale("log")
    top.set_ylabel("probe latency (ms)")
    top.set_title(
        f"Backend answering after {result['delay_ms'] / 1000:g} s, "
        f"{result['callers']} callers launching"
    )
    top.legend(loc="upper right")
    statuses = {200: "tab:green", 408: "tab:red", 503: "tab:orange", 0: "black"}
    for status, color in statuses.items():
        points = [launch for launch in result["launches"] if launch["status"] == status]
        if points:
            bottom.plot(
                [launch["sent"] + launch["seconds"] for launch in points],
                [launch["seconds"] for launch in points],
                ".",
                color=color,
                label=f"{status or 'no answer'} ({len(points)})",
                markersize=4,
            )
    bottom.set_yscale("log")
    bottom.set_xlabel("time since the load began (s): when the answer came")
    bottom.set_ylabel("launch latency (s)")
    bottom.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(output / "slowcloud.png", dpi=110)
    plt.close(figure)
    return "slowcloud.png"


def main(argv: list[str] | None = None) -> int:
    from benchmarks.run import production_threads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=65.0)
    parser.add_argument("--threads", type=int, default=production_threads())
    parser.add_argument("--output", type=Path, default=HERE)
    args = parser.parse_args(argv)
    import os

    for key, value in CHILD_ENV.items():
        if key != "PYTHONPATH":
            os.environ[key] = value
    with (
        tempfile.TemporaryDirectory(prefix="launchprov-slowcloud-") as tmp,
        Processes(Path(tmp)) as procs,
    ):
        result = bench_slowcloud(procs, args.threads, args.seconds)
    raw = args.output / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "slowcloud.json").write_text(json.dumps(result) + "\n")
    text = [
        "# launchprov benchmarks: the slow-cloud scenario",
        "",
        "Generated by `python -m benchmarks.slowcloud` (also a part of `make bench`, whose "
        "RESULTS.md holds the same section).",
        "",
        *section(result),
    ]
    (args.output / "SLOWCLOUD.md").write_text("\n".join(text))
    plot(result, args.output)
    print("\n".join(section(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
