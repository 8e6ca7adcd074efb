"""launchprov beside the bare reference, in one run: ``python -m benchmarks.reference [--quick]``.

The bare reference (``benchmarks.apps.bare_pyramid``: one Pyramid view calling boto3 with one
shared client, no validation, no logging) and launchprov as production.ini runs it (its access
log included) are served by the same harness: waitress with 8 threads, one process each, on the
instant EC2 stand-in, 8 keep-alive callers in a closed loop. An absolute rate on this shared
2-core machine moves with the other engineers' load; the ratio of two targets measured in the
same run, round by round, moves far less.

*Paired rounds*: each round runs both targets for the same few seconds, one after the other
(which goes first alternates). The share is the ratio of each target's best round: on a machine
others load, a target's best round is its least disturbed, and both targets get the same number
of chances. The median of the rounds' own ratios is reported beside it.

The run FAILS (exit status 1) when launchprov's share is below :data:`FLOOR` (0.9) of the
reference's: that is what CI runs (``make bench QUICK=1``), five paired rounds of 0.6 s (about
ten seconds with the servers' start). ``--profile SECONDS`` also samples launchprov with py-spy
at the same load (``--gil``: CPU in Python) and prints its top entries.

The figures go into benchmarks/RESULTS.md between the ``reference`` markers (with ``--quick``:
benchmarks/raw/quick/) and into raw/reference.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.load import closed_loop, http_launch
from benchmarks.processes import BIN, Processes, Server

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- reference: written by benchmarks/reference.py -->", "<!-- /reference -->"
QUICK_OUTPUT = HERE / "raw" / "quick"
THREADS = 8
CONCURRENCY = 8
#: launchprov's throughput share of the reference's below which the run fails.
FLOOR = 0.9


@dataclass(frozen=True)
class Plan:
    rounds: int = 8
    seconds: float = 2.0


FULL = Plan()
#: Long enough for the ratio to hold still on 2 shared cores (each round a few hundred launches
#: per target), short enough for CI: about ten seconds in all.
QUICK = Plan(rounds=5, seconds=0.6)


def log(message: str) -> None:
    print(f"[reference {time.strftime('%H:%M:%S')}] {message}", flush=True)


def start(procs: Processes, url: str) -> dict[str, Server]:
    servers = {
        "launchprov": procs.launchprov(url, THREADS, name="reference-launchprov", wait=False),
        "bare_pyramid": procs.reference("bare_pyramid", THREADS, url, wait=False),
    }
    procs.ready(*servers.values())
    return servers


def paired_rounds(servers: dict[str, Server], plan: Plan) -> dict:
    """Each round: every target for ``plan.seconds`` at concurrency 8, the order alternating."""
    rounds: dict[str, list[float]] = {name: [] for name in servers}
    failures = dict.fromkeys(servers, 0)
    names = list(servers)
    for number in range(plan.rounds):
        for name in names if number % 2 == 0 else names[::-1]:
            run = closed_loop(
                http_launch(servers[name].port), CONCURRENCY, 10**6, plan.seconds, warmup=3
            )
            rounds[name].append(run.throughput)
            failures[name] += run.failures
    reference = rounds["bare_pyramid"]
    paired = [mine / theirs for mine, theirs in zip(rounds["launchprov"], reference, strict=True)]
    return {
        "threads": THREADS,
        "concurrency": CONCURRENCY,
        "rounds": plan.rounds,
        "seconds_per_round": plan.seconds,
        "throughput": rounds,
        "best": {name: max(values) for name, values in rounds.items()},
        "share": max(rounds["launchprov"]) / max(reference),
        "median_paired_share": statistics.median(paired),
        "paired_shares": paired,
        "failures": failures,
    }


def profile(server: Server, seconds: float, raw: Path) -> dict:
    """py-spy on ``server`` for ``seconds`` under the same closed loop of 8 callers."""
    py_spy = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
    if py_spy is None:
        return {"skipped": "py-spy is not installed (make .venv/.installed-bench)"}
    command = [py_spy, "record", "--pid", str(server.pid), "--duration", str(int(seconds))]
    command += ["--rate", "200", "--gil", "--format", "raw", "--output", str(raw)]
    spy = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        closed_loop(http_launch(server.port), CONCURRENCY, 10**7, seconds + 1, 0)
        output, _ = spy.communicate(timeout=seconds + 60)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.communicate()
    if spy.returncode != 0 or not raw.exists():
        return {"skipped": f"py-spy failed ({spy.returncode}): {output.strip()[-500:]}"}
    from benchmarks.profiling import summarise

    return {"seconds": seconds, **summarise(raw, top=12)}


def report(results: dict) -> str:
    throughput = results["throughput"]
    load = ", ".join(f"{value:.1f}" for value in results["load_average"])
    lines = [
        BEGIN,
        "",
        "## launchprov beside the bare reference, in one run (issue 28)",
        "",
        f"`{results['command']}`, load average at its start {load} on 2 cores: throughput at "
        f"concurrency {throughput['concurrency']}, {throughput['threads']} waitress threads, "
        "instant EC2 stand-in, launchprov as production.ini runs it (access log on) against "
        f"the bare Pyramid view; {throughput['rounds']} paired rounds of "
        f"{throughput['seconds_per_round']:g} s (launches/s). Share: the ratio of each "
        f"target's best round; the run fails below {FLOOR:g}.",
        "",
        "| target | best round | rounds |",
        "|---|---|---|",
    ]
    for name, values in throughput["throughput"].items():
        rounds = ", ".join(f"{value:.0f}" for value in values)
        lines.append(f"| {name} | {throughput['best'][name]:.0f} | {rounds} |")
    paired = ", ".join(f"{value:.2f}" for value in throughput["paired_shares"])
    lines += [
        "",
        f"**launchprov's share of the reference: {throughput['share']:.2f}** (median of the "
        f"rounds' own ratios {throughput['median_paired_share']:.2f}: {paired}).",
        "",
    ]
    spied = results.get("profile")
    if spied and "skipped" not in spied:
        lines += [
            f"py-spy on launchprov for {spied['seconds']:g} s at the same load "
            f"({spied['samples']} GIL-holding samples), innermost frames:",
            "",
            "| share | frame |",
            "|---|---|",
            *(f"| {share:.1%} | `{frame}` |" for frame, share in spied["top_frames"].items()),
            "",
        ]
    lines.append(END)
    return "\n".join(lines)


def write_section(text: str, path: Path) -> None:
    """Put ``text`` between the markers in ``path`` (the rest is left as it is)."""
    current = path.read_text() if path.exists() else ""
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        current = head.rstrip("\n") + "\n\n" + text + rest.split(END, 1)[1]
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(current)


def failures(results: dict) -> list[str]:
    throughput = results["throughput"]
    found = [
        f"{count} launches of {name} failed"
        for name, count in throughput["failures"].items()
        if count
    ]
    if throughput["share"] < FLOOR:
        found.append(
            f"launchprov's throughput is {throughput['share']:.2f}x the bare reference's in "
            f"this run (floor {FLOOR:g}x)"
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI: five rounds of 0.6 s")
    parser.add_argument("--rounds", type=int, help="paired rounds (default 8; quick 5)")
    parser.add_argument("--seconds", type=float, help="seconds per target and round")
    parser.add_argument("--profile", type=float, default=0.0, help="py-spy seconds (0: none)")
    parser.add_argument("--output", type=Path, help="where RESULTS.md goes")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    plan = Plan(args.rounds or plan.rounds, args.seconds or plan.seconds)
    output = args.output or (QUICK_OUTPUT if args.quick else HERE)
    raw = output / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "load_average": os.getloadavg(),
        "command": " ".join(["python -m benchmarks.reference", *sys.argv[1:]]),
    }
    with tempfile.TemporaryDirectory() as logs, Processes(Path(logs)) as procs:
        standin = procs.standin()
        servers = start(procs, standin.url)
        log(f"{plan.rounds} paired rounds of {plan.seconds:g} s ...")
        results["throughput"] = paired_rounds(servers, plan)
        if args.profile:
            log(f"py-spy for {args.profile:g} s ...")
            raw_profile = raw / "profile-reference-launchprov.txt"
            results["profile"] = profile(servers["launchprov"], args.profile, raw_profile)
    (raw / "reference.json").write_text(json.dumps(results, indent=1))
    write_section(report(results), output / "RESULTS.md")
    share = results["throughput"]["share"]
    log(f"launchprov {share:.2f}x the bare reference; wrote {output / 'RESULTS.md'}")
    if results.get("profile"):
        print(json.dumps(results["profile"], indent=1))
    problems = failures(results)
    for problem in problems:
        log(f"FAILED {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
