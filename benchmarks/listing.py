"""The listing benchmark: ``python -m benchmarks.listing [--quick]`` from the repository root.

Paging through every instance of an account on a moto server process, side by side with
boto3's own paginator on the same account: ``GET /v1/instances?limit=100`` followed ``next``
to the end, against ``client.get_paginator("describe_instances")``. Both go through a counting
proxy in front of moto, which counts the DescribeInstances calls each makes and the instances
their replies hold. The account grows between the figures: 1,000 instances, then 4,000 (launched
in reservations of 20, as production.ini's ``max_count`` allows), and, on a moto of its own,
4,000 in reservations of 500 (moto's pages count reservations: pages far larger than
``limit``).

Every server runs on 127.0.0.1 and is stopped at the end. The figures go into
benchmarks/RESULTS.md between the ``listing`` markers and into benchmarks/raw/listing.json;
``--quick`` runs with tiny counts and writes to benchmarks/raw/quick/. The exit status is 1
when a listing missed or repeated an instance.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

from benchmarks.processes import (
    CHILD_ENV,
    LAUNCH_HEADERS,
    Processes,
    Server,
    accepts_connections,
    answers_ok,
)
from benchmarks.sections import write_section

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- listing: written by benchmarks/listing.py -->", "<!-- /listing -->"
QUIET = {"logger_launchprov": {"level": "WARN"}}
QUICK_OUTPUT = HERE / "raw" / "quick"
AMI = "ami-760aaa0f"


@dataclass(frozen=True)
class Plan:
    #: (account sizes, one figure each as the account grows; reservation size; repeats) per
    #: moto. Reservations of 500 read far more slowly: measured once.
    accounts: tuple[tuple[tuple[int, ...], int, int], ...] = (
        ((1000, 4000), 20, 3),
        ((4000,), 500, 1),
    )
    limit: int = 100


FULL = Plan()
QUICK = Plan(accounts=(((40, 80), 4, 1), ((60,), 30, 1)), limit=10)


def log(message: str) -> None:
    print(f"[bench-listing {time.strftime('%H:%M:%S')}] {message}", flush=True)


class CountingProxy:
    """An HTTP proxy in front of moto that counts DescribeInstances calls and the instances
    their replies hold, per client (told apart by the path prefix /<client>/)."""

    def __init__(self, upstream_port: int):
        self.counts: dict[str, list[int]] = {}
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                client, _, rest = self.path.lstrip("/").partition("/")
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=600)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream.request("POST", "/" + rest, body, headers)
                reply = upstream.getresponse()
                data = reply.read()
                upstream.close()
                action = urllib.parse.parse_qs(body.decode()).get("Action", [""])[0]
                if action == "DescribeInstances":
                    with proxy.lock:
                        row = proxy.counts.setdefault(client, [0, 0])
                        row[0] += 1
                        row[1] += data.count(b"<instanceState>")
                self.send_response(reply.status)
                for key, value in reply.getheaders():
                    if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, client: str) -> str:
        return f"http://127.0.0.1:{self.port}/{client}"

    def take(self, client: str) -> tuple[int, int]:
        """(calls, instances read) by ``client`` since the last take."""
        with self.lock:
            calls, read = self.counts.pop(client, [0, 0])
        return calls, read

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def ec2(endpoint: str):
    return boto3.client(
        "ec2",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id=CHILD_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CHILD_ENV["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"max_attempts": 1}, read_timeout=600),
    )


def grow(client, count: int, reservation: int) -> None:
    """Launch ``count`` instances, ``reservation`` a RunInstances."""
    while count > 0:
        size = min(count, reservation)
        client.run_instances(ImageId=AMI, InstanceType="t2.micro", MinCount=size, MaxCount=size)
        count -= size


def read_direct(client) -> list[str]:
    """Every instance id, as boto3's paginator reads them (its own page size: moto's)."""
    pages = client.get_paginator("describe_instances").paginate()
    return [i["InstanceId"] for page in pages for r in page["Reservations"] for i in r["Instances"]]


def read_service(port: int, limit: int) -> tuple[list[str], int]:
    """Every instance id through launchprov, ``limit`` a page: (ids, pages)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    ids, token, pages = [], None, 0
    try:
        while True:
            url = f"/v1/instances?limit={limit}" + (f"&next={token}" if token else "")
            connection.request("GET", url, headers=LAUNCH_HEADERS)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {url[:80]} answered {response.status}: {body[:300]!r}")
            answer = json.loads(body)
            ids += [item["id"] for item in answer["instances"]]
            pages += 1
            token = answer["next"]
            if token is None:
                return ids, pages
    finally:
        connection.close()


def service(procs: Processes, endpoint: str, name: str) -> Server:
    """launchprov as production runs it (8 threads), its EC2 behind ``endpoint``; the bench
    caller sees every instance (they carry no launchprov:caller tag); time-outs of 10 min."""
    app = {
        "launchprov.ec2.endpoint_url": endpoint,
        "launchprov.policy.see": "all",
        # moto takes tens of seconds for a page of reservations of 500 on a busy machine
        # (its smallest page, 5 reservations, is 2,500 instances): time-outs out of the way.
        "launchprov.request_deadline": "600",
        "launchprov.ec2.read_timeout": "590",
    }
    return procs.pserve(
        name,
        app,
        8,
        ready=lambda port: accepts_connections(port) and answers_ok(port, "/healthz"),
        sections=QUIET,
    )


def measure(proxy: CountingProxy, launchprov: Server, limit: int, repeats: int) -> dict:
    """Both reads of the whole account, alternated ``repeats`` times: medians and counts."""
    direct = ec2(proxy.url("direct"))
    times = {"direct": [], "service": []}
    counts: dict[str, tuple[int, int]] = {}
    expected = set()
    problems = []
    for _ in range(repeats):
        began = time.perf_counter()
        ids = read_direct(direct)
        times["direct"].append(time.perf_counter() - began)
        counts["direct"] = proxy.take("direct")
        expected = set(ids)
        began = time.perf_counter()
        served, pages = read_service(launchprov.port, limit)
        times["service"].append(time.perf_counter() - began)
        counts["service"] = proxy.take("service")
        if len(served) != len(set(served)) or set(served) != expected:
            problems.append(
                f"the service listed {len(served)} ids ({len(set(served))} distinct) of "
                f"{len(expected)}"
            )
    direct_s, service_s = statistics.median(times["direct"]), statistics.median(times["service"])
    return {
        "instances": len(expected),
        "limit": limit,
        "pages": pages,
        "direct_s": direct_s,
        "service_s": service_s,
        "ratio": service_s / direct_s,
        "direct_calls": counts["direct"][0],
        "direct_read": counts["direct"][1],
        "service_calls": counts["service"][0],
        "service_read": counts["service"][1],
        "problems": problems,
    }


def bench(procs: Processes, plan: Plan, reservations: list[int] | None) -> list[dict]:
    rows = []
    for sizes, reservation, repeats in plan.accounts:
        if reservations and reservation not in reservations:
            continue
        moto = procs.moto()
        proxy = CountingProxy(moto.port)
        try:
            launchprov = service(procs, proxy.url("service"), f"listing-{reservation}")
            client = ec2(moto.url)
            have = 0
            for size in sizes:
                began = time.perf_counter()
                grow(client, size - have, reservation)
                have = size
                log(
                    f"{size} instances in reservations of {reservation}: launched in "
                    f"{time.perf_counter() - began:.0f} s"
                )
                load = os.getloadavg()[0]
                row = measure(proxy, launchprov, plan.limit, repeats)
                row["load_average"] = load
                row["reservation"] = reservation
                row["repeats"] = repeats
                log(f"  {row}")
                rows.append(row)
            procs.stop(launchprov)
        finally:
            proxy.close()
            procs.stop(moto)
    return rows


def report(results: dict, command: str) -> str:
    lines = [
        BEGIN,
        "",
        "## Listing: paging through the account (issue 28)",
        "",
        f"`{command}`: every instance of a moto server's account, `GET /v1/instances?"
        f"limit={results['rows'][0]['limit']}` followed to the end through launchprov (8 "
        "waitress threads, production.ini), against boto3's own paginator "
        '(`get_paginator("describe_instances")`, moto\'s default page) on the same account, '
        "alternated, the median of the runs. Calls and instances read are counted by a proxy "
        "in front of moto (DescribeInstances only).",
        "",
        "| Instances | reservations of | runs | direct | launchprov | ratio | "
        "DescribeInstances: direct | launchprov | instances read: direct | launchprov | pages |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        lines.append(
            f"| {row['instances']:,} | {row['reservation']} | {row['repeats']} | "
            f"{row['direct_s']:.2f} s | "
            f"{row['service_s']:.2f} s | **{row['ratio']:.2f}x** | {row['direct_calls']} | "
            f"{row['service_calls']} | {row['direct_read']:,} | {row['service_read']:,} | "
            f"{row['pages']} |"
        )
    loads = [row.get("load_average") for row in results["rows"]]
    lines += [
        "",
        "Before (issue 28, the same scenario): 11.8x at 1,000, 20.2x at 4,000, 37x at 4,000 in "
        "reservations of 500: every page of the caller's read a whole provider page of up to "
        "1,000 reservations again.",
        "",
        "How the calls add up: the first page probes the reservations' size with EC2's smallest "
        "page (5 reservations), then reads room for `limit` + 200 instances and carries the "
        "rest of that page in the token as ids (read by id on the next pages); every later "
        "page is one DescribeInstances of about `limit` instances, consumed whole. With "
        "reservations of 500, moto's smallest page holds 2,500 instances (moto counts "
        "`MaxResults` in reservations, EC2 in instances): what is left of it is more than a "
        "token carries (200 ids), so such a page is read again once every 200 + `limit` "
        "instances served, not once a page.",
        "",
    ]
    if all(load is not None for load in loads):
        lines += [
            "Load average (1 min) about when each figure was measured, in the order of the table: "
            + ", ".join(f"{load:.1f}" for load in loads)
            + ", on this project's 2-core machine shared with other work: the two reads of a "
            "figure alternate, so that both see the same machine.",
            "",
        ]
    lines.append(END)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts (CI: does it run?)")
    parser.add_argument("--output", type=Path, help="where RESULTS.md goes")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="write RESULTS.md again from raw/listing.json, measuring nothing",
    )
    parser.add_argument(
        "--reservations",
        type=int,
        action="append",
        help="only the account launched in reservations of this size (20 or 500)",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    output = args.output or (QUICK_OUTPUT if args.quick else HERE)
    raw = output / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    previous = raw / "listing.json"
    results = json.loads(previous.read_text()) if previous.exists() else {"rows": []}
    rows = []
    if not args.report_only:
        with tempfile.TemporaryDirectory() as logs, Processes(Path(logs)) as procs:
            rows = bench(procs, plan, args.reservations)
    # A run of some accounts keeps the figures of the others from the run before.
    measured = {(row["instances"], row["reservation"]) for row in rows}
    kept = [r for r in results["rows"] if (r["instances"], r["reservation"]) not in measured]
    results["rows"] = sorted(kept + rows, key=lambda row: (row["reservation"], row["instances"]))
    previous.write_text(json.dumps(results, indent=1))
    command = "make bench-listing" + (" QUICK=1" if args.quick else "")
    write_section(report(results, command), output / "RESULTS.md", BEGIN, END)
    log(f"wrote {output / 'RESULTS.md'}")
    problems = [problem for row in rows for problem in row["problems"]]
    for problem in problems:
        log(f"FAILED {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
