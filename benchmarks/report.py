"""RESULTS.md and the plots, from the results of one run (also from a saved results.json).

``python -m benchmarks.report [<output>/raw/results.json]`` rewrites RESULTS.md and the PNGs in
<output> (default: benchmarks/) without running anything again (after editing ANALYSIS.md, say).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from benchmarks import slowcloud

HERE = Path(__file__).resolve().parent
PACKAGES = (
    "launchprov",
    "pyramid",
    "waitress",
    "webob",
    "colander",
    "boto3",
    "botocore",
    "urllib3",
    "moto",
    "prometheus-client",
    "matplotlib",
    "numpy",
    "py-spy",
)
#: Targets of issue 6.
RATIO_TARGET = 1.10
P99_TARGET_MS = 5.0
THROUGHPUT_TARGET = 0.85
EFFICIENCY_TARGET = 0.75
GROWTH_TARGET_MIB = 1.0
STARTUP_TARGET_S = 2.0

NAMES = {
    "launchprov": "launchprov (production.ini)",
    "launchprov_before": "launchprov before R1, R2 (variants.py)",
    "launchprov_no_access_log": "launchprov, access log off",
    "bare_pyramid": "bare Pyramid view + boto3 (reference)",
    "bare_wsgi_boto3": "bare WSGI app + boto3 (no framework)",
    "bare_json": "bare waitress WSGI app (no provider)",
    "boto3": "boto3 direct (harness threads)",
}


def environment() -> dict:
    cpu_model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "memory": memory,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "versions": versions,
    }


def verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**MISS**"


def ms(value: float) -> str:
    return f"{value:.2f} ms"


def pct(value: float) -> str:
    return f"{value * 100:.0f}%"


def figures(results: dict) -> list[tuple[str, str, str, str, bool, str]]:
    """(number, figure, launchprov's value, target, met, the bare Pyramid view's value)."""
    rows = []
    overhead = results["overhead"]
    service, bare = overhead["launchprov"], overhead["bare_pyramid"]
    low, high = service["median_ratio_ci"]
    rows.append(
        (
            "1",
            "launch latency through the service / straight from boto3, median (moto)",
            f"{service['median_ratio']:.3f} (95% CI {low:.3f}-{high:.3f})",
            f"<= {RATIO_TARGET:.2f}",
            service["median_ratio"] <= RATIO_TARGET,
            f"{bare['median_ratio']:.3f}",
        )
    )
    low, high = service["p99_added_ms_ci"]
    rows.append(
        (
            "1",
            "latency the service adds at p99 (moto)",
            f"{service['p99_added_ms']:+.2f} ms (95% CI {low:+.1f} to {high:+.1f})",
            f"<= {P99_TARGET_MS:.0f} ms",
            service["p99_added_ms"] <= P99_TARGET_MS,
            f"{bare['p99_added_ms']:+.2f} ms",
        )
    )
    table = results["throughput"]["table"]
    direct = table["boto3"][_key(table["boto3"], 8)]["throughput"]
    ours = table["launchprov"][_key(table["launchprov"], 8)]["throughput"]
    reference = table["bare_pyramid"][_key(table["bare_pyramid"], 8)]["throughput"]
    rows.append(
        (
            "2",
            "throughput at concurrency 8, share of boto3 direct",
            f"{pct(ours / direct)} ({ours:.0f} vs {direct:.0f} launches/s)",
            f">= {pct(THROUGHPUT_TARGET)}",
            ours / direct >= THROUGHPUT_TARGET,
            f"{pct(reference / direct)} ({reference:.0f}/s)",
        )
    )
    concurrency = results["concurrency"]
    threads = concurrency["threads"]
    ours = concurrency["results"]["launchprov"]
    reference = concurrency["results"]["bare_pyramid"]
    if str(threads) in ours or threads in ours:
        row = ours[_key(ours, threads)]
        rows.append(
            (
                "3",
                f"speed-up of {threads} concurrent launches (200 ms each), share of ideal",
                f"{pct(row['efficiency'])} ({row['median_s'] * 1000:.0f} ms for ideal "
                f"{row['ideal_s'] * 1000:.0f} ms)",
                f">= {pct(EFFICIENCY_TARGET)}",
                row["efficiency"] >= EFFICIENCY_TARGET,
                pct(reference[_key(reference, threads)]["efficiency"]),
            )
        )
    memory = results["memory"]
    rows.append(
        (
            "4",
            f"RSS growth per 1,000 launches (from 1,000 to {memory['last']:,})",
            f"{memory['growth_mib_per_1000']:+.3f} MiB (RSS {memory['rss_at_1000_mib']:.1f} -> "
            f"{memory['rss_at_last_mib']:.1f} MiB)",
            f"< {GROWTH_TARGET_MIB:.0f} MiB",
            memory["growth_mib_per_1000"] < GROWTH_TARGET_MIB,
            "-",
        )
    )
    startup = results["startup"]
    rows.append(
        (
            "5",
            "process start to first successful launch (worst of runs)",
            f"{startup['max_s']:.2f} s (median {startup['median_s']:.2f} s)",
            f"< {STARTUP_TARGET_S:.0f} s",
            startup["max_s"] < STARTUP_TARGET_S,
            "-",
        )
    )
    return rows


def _key(mapping: dict, number: int):
    """results.json turns int keys into strings; accept either."""
    return str(number) if str(number) in mapping else number


def markdown(results: dict, analysis: str) -> str:
    env = results["environment"]
    plan = results["plan"]
    threads = results["threads"]
    lines = [
        "# launchprov benchmarks",
        "",
        "Generated by `make bench` (`python -m benchmarks.run`); overwritten by every run. "
        "The Analysis at the end is written by hand in `benchmarks/ANALYSIS.md` and included "
        "verbatim.",
        "",
    ]
    if results.get("quick"):
        lines += [
            "> **Quick run (`--quick`)**: small samples, for a smoke test only; "
            "do not judge the figures by it.",
            "",
        ]
    lines += ["## Figures against targets", ""]
    lines += [
        "| # | Figure | launchprov | Target | Verdict | bare Pyramid view + boto3 (reference) |",
        "|---|---|---|---|---|---|",
    ]
    for number, figure, measured, target, met, reference in figures(results):
        lines.append(
            f"| {number} | {figure} | {measured} | {target} | {verdict(met)} | {reference} |"
        )
    lines += [
        "",
        "## How it was run",
        "",
        f"- Date: {env['date']}; total run time {results['total_s'] / 60:.1f} min "
        f"(command `{results['command']}`).",
        f"- Machine: {env['cpus']} CPUs ({env['cpus_usable']} usable), {env['cpu_model']}, "
        f"{env['memory']} RAM, Linux {env['kernel']}.",
        f"- {env['implementation']} {env['python']}; "
        + ", ".join(f"{name} {version}" for name, version in env["versions"].items())
        + ".",
        f"- Every server runs under waitress with **threads = {threads}** (production.ini's "
        "value), started by `pserve` on a .ini generated from production.ini (its waitress "
        "limits and logging, including the INFO access log, unchanged; only `listen` becomes "
        "127.0.0.1:<free port>). launchprov: `use = egg:launchprov`, `launchprov.provider = ec2`,"
        " `launchprov.ec2.endpoint_url` = the stand-in or moto. Children get fake AWS "
        "credentials and `AWS_EC2_METADATA_DISABLED=true`.",
        "- The EC2 stand-in (`benchmarks/standin.py`) is asyncio on one thread in its own "
        "process: it answers RunInstances with a valid RunInstancesResponse at once (about "
        "0.1 ms of CPU), or after 200 ms for figure 3.",
        "- Load comes from the harness process: one thread and one keep-alive `http.client` "
        "connection per concurrent caller; boto3 direct is one shared client in the harness "
        "with launchprov's botocore Config (pool sized for the harness threads). Latencies "
        "include the client.",
        f"- Sample sizes: figure 1 {plan['overhead_steps']} launches of each target, order "
        f"shuffled at every step, moto reset every {plan['overhead_reset_every']} steps; "
        f"figure 2 {plan['throughput_rounds']} interleaved rounds of "
        f"{plan['throughput_seconds']:g} s per target and concurrency (median throughput, "
        f"latencies pooled); figure 3 {plan['burst_rounds']} bursts per size (median wall "
        f"time); figure 4 one fresh process, RSS every {plan['memory_step']} launches at "
        f"concurrency {plan['memory_concurrency']}; figure 5 {plan['startup_runs']} fresh "
        "processes.",
        "- Time per part: "
        + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in results["durations_s"].items())
        + ".",
        "",
    ]
    lines += section_overhead(results["overhead"])
    lines += section_throughput(results["throughput"], results.get("sensitivity"))
    lines += section_concurrency(results["concurrency"])
    lines += section_memory(results["memory"])
    lines += section_startup(results["startup"])
    lines += section_profile(results.get("profile"), results.get("inprocess"))
    if results.get("slowcloud"):
        lines += slowcloud.section(results["slowcloud"])
    lines += ["## Analysis", "", analysis.strip(), ""]
    return "\n".join(lines)


def section_overhead(overhead: dict) -> list[str]:
    lines = [
        "## 1. Overhead per launch (moto server)",
        "",
        "The same RunInstances, launched through a waitress process over HTTP and straight from "
        "boto3, to one moto server, in shuffled order at every step. The bare Pyramid view is "
        "the reference of the issue (about 1.06).",
        "",
        "| Target | n | median | p90 | p99 | max | median ratio to boto3 | added at p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, summary in overhead["summary"].items():
        compared = overhead.get(name)
        ratio = f"{compared['median_ratio']:.3f}" if compared else "1"
        added = f"{compared['p99_added_ms']:+.2f} ms" if compared else "-"
        lines.append(
            f"| {NAMES[name]} | {summary['n']} | {ms(summary['median_ms'])} | "
            f"{ms(summary['p90_ms'])} | {ms(summary['p99_ms'])} | {ms(summary['max_ms'])} | "
            f"{ratio} | {added} |"
        )
    service = overhead["launchprov"]
    failed = {name: count for name, count in overhead.get("failures", {}).items() if count}
    if failed:
        lines += [
            "",
            f"**Failed launches** (their steps left out for every target): {failed}; first "
            f"errors: {'; '.join(overhead.get('errors', [])[:3])}",
        ]
    lines += [
        "",
        f"Median of the paired per-step differences (service - boto3): "
        f"{service['paired_difference_median_ms']:+.2f} ms. Plot: `latency.png` (left).",
        "",
    ]
    return lines


def section_throughput(throughput: dict, sensitivity: dict | None) -> list[str]:
    table = throughput["table"]
    concurrencies = sorted(int(c) for c in table["boto3"])
    header = "| Target | " + " | ".join(f"c={c}" for c in concurrencies) + " |"

    def rows_of(cell) -> list[str]:
        """A table: one row per target, ``cell(row, c)`` at each concurrency."""
        rows = [header, "|---|" + "---|" * len(concurrencies)]
        for name in table:
            cells = [cell(table[name][_key(table[name], c)], c) for c in concurrencies]
            rows.append(f"| {NAMES[name]} | " + " | ".join(cells) + " |")
        return rows

    def throughput_cell(row, c) -> str:
        direct = table["boto3"][_key(table["boto3"], c)]["throughput"]
        return f"{row['throughput']:.0f} ({pct(row['throughput'] / direct)})"

    def latency_cell(row, c) -> str:
        return (
            f"{row['median_ms']:.2f} / {row['p99_ms']:.2f} ms; "
            f"{row['cpu_ms_per_launch']:.2f} ms CPU"
        )

    lines = [
        "## 2. The service's own cost (EC2 stand-in answering at once)",
        "",
        "Throughput in launches/s (share of boto3 direct at the same concurrency):",
        "",
        *rows_of(throughput_cell),
        "",
        "Latency median / p99, and CPU per launch of the serving process (the harness for "
        "boto3 direct):",
        "",
        *rows_of(latency_cell),
    ]
    failed = {
        f"{name} c={c}": row["failures"]
        for name, rows in table.items()
        for c, row in rows.items()
        if row.get("failures")
    }
    if failed:
        lines += ["", f"**Failed launches** (not counted in throughput or latency): {failed}"]
    lines += [
        "",
        f"`Connection pool is full` warnings logged by launchprov during this part: "
        f"{throughput['pool_full_warnings']}. Plots: `throughput.png`, `latency.png` (right).",
        "",
    ]
    if throughput.get("variant_notes"):
        lines += [
            f"**{NAMES['launchprov_before']} not fully rebuilt** (it is then launchprov as it "
            "is): " + "; ".join(throughput["variant_notes"]),
            "",
        ]
    if sensitivity:
        values = sensitivity["throughput"]
        lines += [
            "Check: the same at concurrency 8 with a stand-in built on the standard library's "
            "`ThreadingHTTPServer` instead of asyncio: "
            + ", ".join(
                f"{NAMES[name]} {value:.0f}/s ({pct(value / values['boto3'])})"
                for name, value in values.items()
            )
            + ".",
            "",
        ]
    return lines


def section_concurrency(concurrency: dict) -> list[str]:
    threads = concurrency["threads"]
    lines = [
        f"## 3. Concurrency (stand-in takes {concurrency['delay_ms']:.0f} ms, "
        f"{threads} waitress threads)",
        "",
        "N launches sent at once; wall time from the first send to the last answer, "
        f"median of {concurrency['rounds']} bursts; ideal = ceil(N / {threads}) x "
        f"{concurrency['delay_ms']:.0f} ms; efficiency = ideal / measured = speed-up / ideal "
        "speed-up.",
        "",
        "| Target | N | wall (median) | ideal | speed-up | ideal speed-up | efficiency |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rows in concurrency["results"].items():
        for size in sorted(rows, key=int):
            row = rows[size]
            lines.append(
                f"| {NAMES[name]} | {size} | {row['median_s'] * 1000:.0f} ms | "
                f"{row['ideal_s'] * 1000:.0f} ms | {row['speedup']:.1f} | "
                f"{row['ideal_speedup']:.0f} | {pct(row['efficiency'])} |"
            )
    failed = {
        f"{name} N={size}": row["failures"]
        for name, rows in concurrency["results"].items()
        for size, row in rows.items()
        if row.get("failures")
    }
    if failed:
        lines += ["", f"**Failed launches** in bursts: {failed}"]
    warnings = concurrency["pool_full_warnings"]
    lines += [
        "",
        "`Connection pool is full, discarding connection` warnings logged during these "
        "bursts: " + ", ".join(f"{NAMES[name]} {count}" for name, count in warnings.items()) + ".",
        "Plot: `throughput.png` (right).",
        "",
    ]
    return lines


def section_memory(memory: dict) -> list[str]:
    points = memory["points"]
    shown = [point for point in points if point[0] in (1, 1000) or point[0] % 2000 == 0]
    if points[-1] not in shown:
        shown.append(points[-1])
    return [
        "## 4. Memory",
        "",
        "| launches | " + " | ".join(f"{count:,}" for count, _ in shown) + " |",
        "|---|" + "---|" * len(shown),
        "| RSS (MiB) | " + " | ".join(f"{kib / 1024:.1f}" for _, kib in shown) + " |",
        "",
        f"Growth from 1,000 to {memory['last']:,} launches: "
        f"{memory['growth_mib_per_1000']:+.3f} MiB per 1,000 (least-squares slope over every "
        f"sample from 1,000 on: {memory['fit_mib_per_1000']:+.3f} MiB per 1,000). "
        "RSS is VmRSS of /proc/<pid>/status. Plot: `memory.png`."
        + (f" **Failed launches: {memory['failures']}.**" if memory.get("failures") else ""),
        "",
        *memory_variant(memory.get("launchprov_before")),
    ]


def memory_variant(before: dict | None) -> list[str]:
    if not before:
        return []
    return [
        f"{NAMES['launchprov_before']}, the same way: RSS {before['rss_at_1000_mib']:.1f} MiB "
        f"after 1,000 launches, {before['rss_at_last_mib']:.1f} MiB after {before['last']:,}: "
        f"{before['growth_mib_per_1000']:+.3f} MiB per 1,000 (slope "
        f"{before['fit_mib_per_1000']:+.3f}).",
        "",
    ]


def section_startup(startup: dict) -> list[str]:
    runs = ", ".join(f"{value:.2f}" for value in startup["runs_s"])
    return [
        "## 5. Startup",
        "",
        "From `Popen(pserve ...)` to the first 200 of `PUT /v1/launch` (polled every 5 ms): "
        f"runs {runs} s; median {startup['median_s']:.2f} s, worst {startup['max_s']:.2f} s.",
        "",
    ]


def section_profile(profile: dict | None, inprocess: dict | None) -> list[str]:
    lines = ["## Profile", ""]
    if not profile:
        lines += ["Not run (quick run).", ""]
    elif "skipped" in profile:
        lines += [f"Skipped: {profile['skipped']}", ""]
    else:
        lines += [
            f"py-spy, {profile['seconds']:.0f} s at 200 Hz, GIL-holding samples only "
            f"({profile['samples']} samples), launchprov at concurrency 8 "
            f"({profile['throughput_while_sampled']:.0f} launches/s while sampled). A sample "
            "counts for the innermost frame of a known package (stdlib frames count for their "
            f"caller). Raw stacks: `{profile['raw']}` next to this file (speedscope or "
            "flamegraph.pl read it).",
            "",
            "| Layer | share of CPU samples |",
            "|---|---|",
        ]
        lines += [f"| {name} | {pct(share)} |" for name, share in profile["layers"].items()]
        lines += [
            "",
            "launchprov's functions, inclusive (everything below them, the SDK included):",
            "",
            "| Function | inclusive share |",
            "|---|---|",
        ]
        lines += [
            f"| `{name}` | {pct(share)} |"
            for name, share in profile["launchprov_inclusive"].items()
        ]
        lines += ["", "Hottest frames (self):", "", "| Frame | self share |", "|---|---|"]
        lines += [f"| `{name}` | {pct(share)} |" for name, share in profile["top_frames"].items()]
        lines.append("")
    lines += ["### launchprov's own CPU per request, in-process", ""]
    if not inprocess:
        lines += ["Not run.", ""]
    elif "skipped" in inprocess:
        lines += [f"Skipped: {inprocess['skipped']}", ""]
    else:
        variants = inprocess["variants"]
        base = variants.get("launchprov", {}).get("us")
        lines += [
            "`benchmarks/inprocess.py`: the WSGI app built by `launchprov.main` with "
            "production.ini's logging (to /dev/null) and a stub EC2 client, called in a loop "
            f"without server or network ({inprocess['requests_per_round']} requests x "
            f"{inprocess['rounds']} interleaved rounds, best round). Each variant switches one "
            "part off or applies one change.",
            "",
            "| Variant | CPU per request | difference from launchprov |",
            "|---|---|---|",
        ]
        for variant in variants.values():
            difference = f"{variant['us'] - base:+.1f} us" if base else "-"
            lines.append(f"| {variant['description']} | {variant['us']:.1f} us | {difference} |")
        if inprocess.get("errors"):
            lines += ["", "Variants that could not be built: " + str(inprocess["errors"])]
        lines += ["", "Steps timed alone:", "", "| Step | per call |", "|---|---|"]
        lines += [f"| {name} | {value:.1f} us |" for name, value in inprocess["parts_us"].items()]
        lines.append("")
    return lines


def plots(results: dict, output: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    colors = {
        "launchprov": "tab:red",
        "launchprov_before": "tab:orange",
        "launchprov_no_access_log": "tab:pink",
        "bare_pyramid": "tab:blue",
        "bare_wsgi_boto3": "tab:purple",
        "bare_json": "tab:gray",
        "boto3": "tab:green",
    }

    def cdf(axis, values, name):
        ordered = sorted(values)
        fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
        axis.plot(ordered, fractions, label=NAMES[name], color=colors[name], linewidth=1.4)

    # latency.png: distributions, through moto and on the stand-in
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    for name, values in results["overhead"]["latencies_ms"].items():
        cdf(left, values, name)
    left.set_xscale("log")
    left.set_title("1. One launch at a time through moto (CDF)")
    left.axhline(0.5, color="black", linewidth=0.5, linestyle=":")
    left.axhline(0.99, color="black", linewidth=0.5, linestyle=":")
    throughput = results["throughput"]
    for name, values in throughput["latencies_ms"].items():
        cdf(right, values, name)
    right.set_xscale("log")
    right.set_title(f"2. Concurrency {throughput['latencies_ms_at']} on the stand-in (CDF)")
    for axis in (left, right):
        axis.set_xlabel("latency (ms, log scale)")
        axis.set_ylabel("fraction of launches")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(output / "latency.png", dpi=110)
    plt.close(figure)
    written.append("latency.png")

    # throughput.png: throughput against concurrency, and the burst wall times
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    table = throughput["table"]
    off_scale = []
    for name, rows in table.items():
        concurrencies = sorted(int(c) for c in rows)
        values = [rows[_key(rows, c)]["throughput"] for c in concurrencies]
        if name == "bare_json":  # ten times the others: it would flatten them
            off_scale.append(f"{NAMES[name]}: " + ", ".join(f"{v:.0f}" for v in values) + "/s")
            continue
        left.plot(concurrencies, values, marker="o", label=NAMES[name], color=colors[name])
    left.set_xscale("log", base=2)
    left.set_xticks(concurrencies, [str(c) for c in concurrencies])
    left.set_ylim(bottom=0)
    left.set_xlabel("concurrent callers (log scale)")
    left.set_ylabel("launches per second")
    left.set_title("2. Throughput against concurrency (stand-in answers at once)")
    left.grid(True, alpha=0.3)
    left.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 0.06))
    if off_scale:
        left.text(
            0.02, 0.02, "off scale: " + "; ".join(off_scale), transform=left.transAxes, fontsize=7
        )
    concurrency = results["concurrency"]
    for name, rows in concurrency["results"].items():
        sizes = sorted(int(size) for size in rows)
        walls = [rows[_key(rows, size)]["median_s"] * 1000 for size in sizes]
        right.plot(sizes, walls, marker="o", label=NAMES[name], color=colors[name])
    threads = concurrency["threads"]
    delay = concurrency["delay_ms"]
    span = range(1, max(int(size) for size in concurrency["results"]["launchprov"]) + 1)
    right.step(
        list(span),
        [-(-n // threads) * delay for n in span],
        where="post",
        color="black",
        linestyle="--",
        label=f"ideal: ceil(N / {threads}) x {delay:.0f} ms",
    )
    right.set_xlabel("launches sent at once (N)")
    right.set_ylabel("wall time until the last answer (ms)")
    right.set_title(f"3. Concurrency, {delay:.0f} ms per provider call, {threads} threads")
    right.grid(True, alpha=0.3)
    right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(output / "throughput.png", dpi=110)
    plt.close(figure)
    written.append("throughput.png")

    # memory.png: RSS growth after the first 1,000 launches, against the target, then zoomed
    memory = results["memory"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    series = {"launchprov": memory}
    if memory.get("launchprov_before"):
        series["launchprov_before"] = memory["launchprov_before"]
    for name, values in series.items():
        base = dict(values["points"]).get(1000, values["points"][0][1])
        counts = [count for count, _ in values["points"] if count >= 1000]
        growth = [(kib - base) / 1024 for count, kib in values["points"] if count >= 1000]
        for axis in (left, right):
            axis.plot(counts, growth, marker=".", color=colors[name], label=NAMES[name])
    last = memory["last"]
    left.plot(
        [1000, last],
        [0, (last - 1000) / 1000 * GROWTH_TARGET_MIB],
        color="black",
        linestyle="--",
        label=f"target: {GROWTH_TARGET_MIB:.0f} MiB per 1,000 launches",
    )
    left.set_title("4. RSS growth since launch 1,000, against the target")
    right.set_title("4. The same, zoomed")
    for axis in (left, right):
        axis.set_xlabel("launches since start")
        axis.set_ylabel("RSS - RSS at 1,000 launches (MiB)")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(output / "memory.png", dpi=110)
    plt.close(figure)
    written.append("memory.png")
    if results.get("slowcloud"):
        written.append(slowcloud.plot(results["slowcloud"], output))
    return written


def write(results: dict, output: Path) -> None:
    analysis_file = HERE / "ANALYSIS.md"
    analysis = analysis_file.read_text() if analysis_file.exists() else "(no ANALYSIS.md)"
    path = output / "RESULTS.md"
    text = markdown(results, analysis)
    # The scale, listing, lending and soak figures (benchmarks/scale.py, ...) have sections of
    # their own, each between its module's markers: kept as they are.
    from benchmarks import lending, listing, scale, soak

    previous = path.read_text() if path.exists() else ""
    for begin, end in ((part.BEGIN, part.END) for part in (scale, listing, lending, soak)):
        if begin in previous and end in previous:
            kept = begin + previous.split(begin, 1)[1].split(end, 1)[0] + end
            text = text.rstrip("\n") + "\n\n" + kept + "\n"
    path.write_text(text)
    plots(results, output)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else HERE / "raw" / "results.json"
    write(json.loads(path.read_text()), path.parent.parent)  # <output>/raw/results.json


if __name__ == "__main__":
    main()
