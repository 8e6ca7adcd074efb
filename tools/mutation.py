"""Mutation testing as a house tool: ``make mutate`` (all core modules) or ``make mutate
MODULE=launchprov/leases.py`` (one module).

mutmut 3 does the work (its configuration is ``[mutmut]`` in setup.cfg, which also lists the
core modules: the one list this script reads). This script only

- runs ``mutmut run`` on the mutants of the modules asked for (by mutmut's own name patterns, so
  one module re-runs every one of its mutants and nothing else);
- reads mutmut's own results (``mutants/<module>.py.meta``) and the diffs of the survivors;
- discounts the survivors listed in ``tools/equivalent_mutants.toml`` (a mutant no behaviour can
  tell apart, with a one-line reason) -- only while the listed diff line is still the mutant's;
- writes ``docs/mutation.json`` (one row per module, merged with the rows of modules not run)
  and the table ``docs/mutation-results.txt`` that ``docs/testing.rst`` includes;
- exits 1 when a module that was run is below the goal (90% of its mutants killed).

Score: (killed + timed out) / (mutants - equivalent). A mutant no test covers counts as not
killed, so it lowers the score as a survivor does.
"""

from __future__ import annotations

import argparse
import configparser
import fnmatch
import json
import os
import subprocess
import sys
import tomllib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL = 90.0
EQUIVALENTS = ROOT / "tools" / "equivalent_mutants.toml"
DATA = ROOT / "docs" / "mutation.json"
TABLE = ROOT / "docs" / "mutation-results.txt"

#: mutmut's exit codes (mutmut.stats.status_by_exit_code), grouped as the table counts them.
KILLED = {1, 3, 37}  # a test failed; pytest's internal error; caught by the type check
TIMEOUT = {36, -24, 24, 152, 255}
SURVIVED = {0}
NOT_COVERED = {5, 33}


def core_modules() -> list[str]:
    """The modules of setup.cfg's ``[mutmut] only_mutate``, expanded to files, sorted."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    patterns = [line for line in parser.get("mutmut", "only_mutate").split("\n") if line]
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "launchprov").rglob("*.py"))
    return [f for f in files if any(fnmatch.fnmatch(f, p) for p in patterns) and f.endswith(".py")]


def mutant_prefix(module: str) -> str:
    """``launchprov/providers/ec2.py`` -> ``launchprov.providers.ec2.``: the start of the name of
    every mutant of that module (a package's ``__init__.py`` is the package's name)."""
    dotted = module.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    return dotted + "."


@dataclass
class Row:
    module: str
    mutants: int
    killed: int
    survived: int
    timed_out: int
    not_covered: int
    equivalent: int
    #: Not run yet (an interrupted run), or an odd result (suspicious, segfault).
    not_checked: int

    @property
    def score(self) -> float:
        counted = self.mutants - self.equivalent
        return 100.0 if counted == 0 else 100.0 * (self.killed + self.timed_out) / counted


def load_equivalents() -> dict[str, dict[str, str]]:
    if not EQUIVALENTS.exists():
        return {}
    with EQUIVALENTS.open("rb") as file:
        return tomllib.load(file).get("mutant", {})


def mutant_diff(name: str, module: str) -> str:
    """mutmut's own diff of one mutant (what ``mutmut show`` prints)."""
    # mutmut reads its configuration from the working directory when imported.
    os.chdir(ROOT)
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    return get_diff_for_mutant(name, path=module)


def changed_lines(diff: str) -> list[str]:
    return [
        line[1:].strip()
        for line in diff.splitlines()
        if line.startswith("+") and not line.startswith("+++")
    ]


def read_results(modules: list[str]) -> tuple[list[Row], dict[str, list[tuple[str, str]]]]:
    """The rows of the modules with results under mutants/, and each module's survivors (name,
    diff) that are not known equivalents."""
    equivalents = load_equivalents()
    rows, survivors = [], {}
    for module in modules:
        meta = ROOT / "mutants" / (module + ".meta")
        if not meta.exists():
            continue
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        counts: Counter[str] = Counter()
        left: list[tuple[str, str]] = []
        for name, code in sorted(codes.items()):
            if code in KILLED:
                counts["killed"] += 1
            elif code in TIMEOUT:
                counts["timed_out"] += 1
            elif code in SURVIVED or code in NOT_COVERED:
                diff = mutant_diff(name, module)
                known = equivalents.get(name)
                if known and known["line"].strip() in changed_lines(diff):
                    counts["equivalent"] += 1
                    continue
                counts["survived" if code in SURVIVED else "not_covered"] += 1
                left.append((name, diff))
            else:
                counts["not_checked"] += 1
        rows.append(
            Row(
                module,
                len(codes),
                counts["killed"],
                counts["survived"],
                counts["timed_out"],
                counts["not_covered"],
                counts["equivalent"],
                counts["not_checked"],
            )
        )
        survivors[module] = left
    return rows, survivors


def write_docs(rows: list[Row]) -> None:
    """Merge the rows into docs/mutation.json and rewrite the table from all of it."""
    data = json.loads(DATA.read_text()) if DATA.exists() else {}
    for row in rows:
        data[row.module] = asdict(row)
    DATA.write_text(json.dumps(dict(sorted(data.items())), indent=1) + "\n")
    TABLE.write_text(table(data))


def rst_text(text: str) -> str:
    """A reason as plain reStructuredText: its stars and backslashes are its own (RateLimit-*),
    not the start of an emphasis."""
    return text.replace("\\", "\\\\").replace("*", "\\*")


def table(data: dict[str, dict]) -> str:
    """The docs' table (reStructuredText) of docs/mutation.json's rows."""
    header = (
        "module",
        "mutants",
        "killed",
        "survived",
        "timed out",
        "not covered",
        "equivalent",
        "not checked",
        "score",
    )
    lines = [
        ".. Generated by tools/mutation.py (make mutate) from mutmut's results: do not edit.",
        "",
    ]
    if not data:
        return "\n".join([*lines, "No module measured yet: run ``make mutate``.", ""])
    lines += [
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - " + "\n     - ".join(header),
    ]
    equivalents = load_equivalents()
    for module, fields in sorted(data.items()):
        row = Row(**fields)
        cells = (
            f"``{module}``",
            row.mutants,
            row.killed,
            row.survived,
            row.timed_out,
            row.not_covered,
            row.equivalent,
            row.not_checked,
            f"{row.score:.1f}%" + (" (incomplete)" if row.not_checked else ""),
        )
        lines.append("   * - " + "\n     - ".join(str(c) for c in cells))
    for module in core_modules():
        if module not in data:
            lines.append(
                "   * - " + "\n     - ".join([f"``{module}``", *["--"] * 7, "not measured yet"])
            )
    lines += ["", "Survivors counted as equivalent (no behaviour can tell them apart):", ""]
    if equivalents:
        for name, entry in sorted(equivalents.items()):
            lines.append(f"- ``{name}``: {rst_text(entry['reason'])}")
    else:
        lines.append("- none")
    return "\n".join(lines) + "\n"


def run_mutmut(modules: list[str]) -> int:
    patterns = [mutant_prefix(m) + "*" for m in modules]
    command = [sys.executable, "-m", "mutmut", "run", *patterns]
    return subprocess.run(command, cwd=ROOT).returncode  # noqa: S603 (our own interpreter)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.mutation", description=__doc__)
    parser.add_argument("module", nargs="*", help="a core module's path (default: all of them)")
    parser.add_argument("--report-only", action="store_true", help="read results, run nothing")
    parser.add_argument("--goal", type=float, default=GOAL)
    args = parser.parse_args(argv)

    known = core_modules()
    unknown = [m for m in args.module if m not in known]
    if unknown:
        parser.error(f"not a core module of setup.cfg [mutmut] only_mutate: {', '.join(unknown)}")
    modules = args.module or known
    if not args.report_only:
        code = run_mutmut(modules if args.module else [])
        if code != 0:
            print(f"mutmut run failed (exit {code})", file=sys.stderr)
            return code
    rows, survivors = read_results(modules)
    if not rows:
        print("no mutmut results under mutants/: run `make mutate` first", file=sys.stderr)
        return 1
    write_docs(rows)
    below = []
    for row in rows:
        mark = "ok" if row.score >= args.goal else "BELOW GOAL"
        print(
            f"{row.module:45} {row.killed + row.timed_out:4}/{row.mutants - row.equivalent:<4}"
            f" {row.score:5.1f}%  {mark}"
        )
        if row.score < args.goal:
            below.append(row.module)
    for module in args.module:  # one module asked for: show what is left to kill
        for name, diff in survivors.get(module, []):
            print(f"\n# survived: {name}\n{diff}")
    if below:
        print(f"\nbelow {args.goal:.0f}%: {', '.join(below)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
