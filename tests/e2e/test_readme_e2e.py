"""The README's shell blocks, run with bash as a reader pastes them, and checked against what the
README says they print.

The convention (for everyone who writes a shell block in README.md)
--------------------------------------------------------------------
Every fenced block whose language is ``sh``, ``bash``, ``shell`` or ``console`` carries a
marker: an HTML comment (invisible once rendered), alone on the last non-blank line before its
fence.

``<!-- readme-test: sandbox -->``
    The block talks to the sandbox of ``make run`` (``development.ini``) on localhost:6543.
    The suite starts one sandbox and runs every such block, in the README's order, in one bash
    session (``set -eo pipefail``): a variable set by one block is seen by the next.
``<!-- readme-test: standalone -->``
    The block starts what it needs itself (servers in the background with ``&``, stopped at
    its end with ``kill $(jobs -p)``). It runs alone, in its own bash session; whatever it
    leaves running is ended with its process group. The sandbox serves meanwhile, as it does
    for a reader who follows the README in order: a server of the block needs a port of its
    own (``6544`` for a second launchprov, ``5000`` for a moto server), or the block's requests
    reach the sandbox.
``<!-- readme-test: skip: REASON -->``
    Not run; the suite reports it as a skipped test with REASON (say why, and what runs it
    instead). A block that needs a set-up the suite does not make is marked so, never left out.

An unmarked shell block, a marker without a block, an unknown kind or a skip without a reason
fails the suite: no block is ever left out silently.

Blocks run from a scratch directory holding the repository's ``.ini`` files and a link to its
``.venv``, so ``.venv/bin/...`` and ``pserve development.ini`` work as in a fresh clone. The
ports ``6543`` (launchprov), ``6544`` (a second launchprov) and ``5000`` (a moto server) are
replaced, in the blocks and in the ``.ini`` files, with free ports, and ``listen = 0.0.0.0``
(``host = 0.0.0.0``) with loopback: developers and other tests use those ports at the same
time. ``LAUNCHPROV_URL``, which the command line reads, points at the sandbox's port; curl
draws no progress meter, as in a terminal.

Commands up to a blank line make a step. What a step prints (stdout and stderr, as a terminal
shows them) is checked when the README says it: comment lines right after the step's last
command are its expected output (put a blank line before a comment that describes the next
command). ``...`` stands for anything, an instance id (``i-`` and 8 or 17 hex digits) for any
instance id, an IPv4 address for any, and white space (around JSON punctuation: its absence too)
counts as one space; the whole output must match. A step with no expected output must not
answer an error body (a JSON object whose ``status`` is 400 or more): an error the README does
not show is a broken example. Send the output of background servers elsewhere (a file,
/dev/null): it would mix with the steps'.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.conftest import accepts_connections, stop, wait_until
from tests.support import FAKE_CREDENTIALS, free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
VENV = Path(sys.executable).parent.parent
INI_FILES = ("development.ini", "production.ini")
#: The fixed ports of the README, each replaced with a free one on every run.
PORTS = ("6543", "6544", "5000")
SHELL_LANGUAGES = {"sh", "bash", "shell", "console"}
KINDS = {"sandbox", "standalone", "skip"}
MARKER = re.compile(r"<!--\s*readme-test:\s*(?P<kind>[\w-]+)\s*(?::\s*(?P<reason>.*?))?\s*-->")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
SANDBOX_DEADLINE = 60.0
STANDALONE_DEADLINE = 90.0


@dataclass
class Step:
    """Commands up to the next blank line or the end of their expected output."""

    line: int
    commands: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)


@dataclass
class Block:
    line: int  # of the opening fence
    kind: str | None
    reason: str | None
    lines: list[tuple[int, str]]

    @property
    def steps(self) -> list[Step]:
        steps: list[Step] = []
        current: Step | None = None
        for number, text in self.lines:
            stripped = text.strip()
            if not stripped:
                current = None
            elif stripped.startswith("#"):
                if current is not None:  # right after a command: what it prints
                    current.expected.append(stripped[1:].strip())
            else:
                if current is None or current.expected:
                    current = Step(number)
                    steps.append(current)
                current.commands.append(text)
        return steps

    def __str__(self) -> str:
        return f"README.md:{self.line}"


def parse(text: str) -> tuple[list[Block], list[str]]:
    """The README's shell blocks, and every breach of the marker convention."""
    blocks: list[Block] = []
    problems: list[str] = []
    lines = text.splitlines()
    pending: tuple[int, re.Match] | None = None  # a marker not yet followed by a block
    number = 0
    while number < len(lines):
        text_line = lines[number]
        number += 1
        fence = FENCE.match(text_line)
        if fence is None:
            marker = MARKER.fullmatch(text_line.strip())
            if marker:
                if pending:
                    problems.append(f"README.md:{pending[0]}: marker without a shell block")
                pending = (number, marker)
            elif text_line.strip() and pending:
                problems.append(f"README.md:{pending[0]}: marker without a shell block")
                pending = None
            continue
        start = number
        body: list[tuple[int, str]] = []
        while number < len(lines) and not lines[number].startswith("```"):
            body.append((number + 1, lines[number]))
            number += 1
        number += 1  # the closing fence
        if fence["lang"] not in SHELL_LANGUAGES:
            if pending:
                problems.append(f"README.md:{pending[0]}: marker before a non-shell block")
            pending = None
            continue
        kind = reason = None
        if pending is None:
            problems.append(f"README.md:{start}: shell block without a readme-test marker")
        else:
            kind, reason = pending[1]["kind"], pending[1]["reason"]
            if kind not in KINDS:
                problems.append(f"README.md:{pending[0]}: unknown readme-test kind {kind!r}")
            elif kind == "skip" and not reason:
                problems.append(f"README.md:{pending[0]}: a skipped block needs a reason")
        pending = None
        blocks.append(Block(start, kind, reason, body))
    if pending:
        problems.append(f"README.md:{pending[0]}: marker without a shell block")
    return blocks, problems


BLOCKS, PROBLEMS = parse(README.read_text())


def canonical(text: str) -> str:
    text = re.sub(r"\s*([{}\[\],:])\s*", r"\1", text.strip())
    return re.sub(r"\s+", " ", text)


INSTANCE_ID = r"\bi-(?:[0-9a-f]{17}|[0-9a-f]{8})\b"
IPV4 = r"\b(?:\d{1,3}\.){3}\d{1,3}\b"
PLACEHOLDERS = re.compile(rf"(\.\.\.|{INSTANCE_ID}|{IPV4})")


def expected_pattern(expected: list[str]) -> re.Pattern:
    parts = []
    for part in PLACEHOLDERS.split(canonical(" ".join(expected))):
        if part == "...":
            parts.append(".*?")
        elif re.fullmatch(INSTANCE_ID, part):
            parts.append(INSTANCE_ID)
        elif re.fullmatch(IPV4, part):
            parts.append(IPV4)
        else:
            parts.append(re.escape(part))
    return re.compile("".join(parts), re.DOTALL)


def error_bodies(output: str) -> list[dict]:
    """Every JSON error body in ``output`` (several commands' answers may follow each other)."""
    decoder = json.JSONDecoder()
    found, index = [], 0
    while index < len(output):
        if output[index] == "{":
            try:
                value, end = decoder.raw_decode(output, index)
            except ValueError:
                index += 1
                continue
            status = value.get("status") if isinstance(value, dict) else None
            if isinstance(status, int) and status >= 400:
                found.append(value)
            index = end
        else:
            index += 1
    return found


def substitute(text: str, ports: dict[str, int]) -> str:
    for fixed, free in ports.items():
        text = re.sub(rf"\b{fixed}\b", str(free), text)
    return text


class Checkout:
    """A scratch directory that looks like a fresh clone to the blocks: the .ini files (ports
    replaced) and the suite's .venv."""

    def __init__(self):
        self.ports = {fixed: free_port() for fixed in PORTS}
        self._dir = tempfile.TemporaryDirectory(prefix="readme-")
        self.path = Path(self._dir.name)
        (self.path / ".venv").symlink_to(VENV)
        # curl draws no progress meter when it prints to a terminal; here it prints to a file.
        (self.path / ".curlrc").write_text("no-progress-meter\n")
        for name in INI_FILES:
            text = substitute((ROOT / name).read_text(), self.ports)
            text = text.replace("listen = 0.0.0.0:", "listen = 127.0.0.1:")
            (self.path / name).write_text(text.replace("host = 0.0.0.0", "host = 127.0.0.1"))

    @staticmethod
    def environment() -> dict[str, str]:
        """The machine's environment without its LAUNCHPROV_* and AWS_* variables (module
        fixtures start before the isolating fixture does), and fake AWS keys."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LAUNCHPROV_", "AWS_"))}
        return {**env, **FAKE_CREDENTIALS, "AWS_EC2_METADATA_DISABLED": "true"}

    def shell_environment(self) -> dict[str, str]:
        """The blocks' environment: the command line's default URL is on the replaced port."""
        url = f"http://localhost:{self.ports['6543']}"
        return {**self.environment(), "LAUNCHPROV_URL": url, "CURL_HOME": str(self.path)}

    def run(self, steps: list[Step], deadline: float) -> tuple[int, dict[int, str], str]:
        """Run ``steps`` in one bash session; (exit code, output of each step, stderr)."""
        script = ["set -eo pipefail"]
        for index, step in enumerate(steps):
            script.append(f"printf '\\n@@readme-step {index}@@\\n'")
            script.append("{")  # a group, not a subshell: variables and jobs outlive it
            script.extend(substitute(line, self.ports) for line in step.commands)
            script.append("} 2>&1")
        script.append("printf '\\n@@readme-step end@@\\n'")
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            process = subprocess.Popen(
                ["bash", "-c", "\n".join(script)],
                cwd=self.path,
                env=self.shell_environment(),
                stdout=out,
                stderr=err,
                start_new_session=True,  # its background servers are ended with it
            )
            try:
                returncode = process.wait(timeout=deadline)
            except subprocess.TimeoutExpired:
                returncode = -1
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                process.wait()
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        outputs: dict[int, str] = {}
        pieces = re.split(r"\n@@readme-step (\d+|end)@@\n", stdout)
        for key, text in zip(pieces[1::2], pieces[2::2], strict=True):
            if key != "end":
                outputs[int(key)] = text
        if "\n@@readme-step end@@\n" not in stdout and returncode == 0:
            returncode = -1
        return returncode, outputs, stderr

    def close(self):
        self._dir.cleanup()


def check(steps: list[Step], returncode: int, outputs: dict[int, str], stderr: str) -> list[str]:
    """What went wrong, step by step (README line numbers)."""
    failures = []
    for index, step in enumerate(steps):
        where = f"README.md:{step.line} ({step.commands[0].strip()[:60]})"
        if index not in outputs:
            failures.append(f"{where}: not reached")
            continue
        output = outputs[index].strip()
        if index == max(outputs) and returncode != 0:
            reason = "did not finish in time" if returncode == -1 else f"exited {returncode}"
            failures.append(f"{where}: {reason}\nstdout: {output}\nstderr: {stderr[-2000:]}")
        elif step.expected:
            if not expected_pattern(step.expected).fullmatch(canonical(output)):
                expected = "\n  ".join(step.expected)
                failures.append(f"{where}: printed\n  {output}\nthe README says\n  {expected}")
        elif errors := error_bodies(output):
            failures.append(f"{where}: answered an error the README does not show: {errors}")
    return failures


def test_every_shell_block_is_marked():
    assert PROBLEMS == [], "\n".join(PROBLEMS) + "\n(the convention: " + __file__ + ")"
    assert BLOCKS, "no shell block found in README.md"


@pytest.fixture(scope="module")
def checkout():
    checkout = Checkout()
    try:
        yield checkout
    finally:
        checkout.close()


@pytest.fixture(scope="module")
def sandbox(checkout):
    """``pserve development.ini`` in the checkout, its port replaced: ``make run``'s sandbox."""
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [str(VENV / "bin" / "pserve"), "development.ini"],
            cwd=checkout.path,
            env=checkout.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            port = checkout.ports["6543"]
            wait_until(lambda: accepts_connections(port), "the sandbox", process)
            yield process
        finally:
            stop(process)


def test_the_sandbox_blocks_print_what_the_readme_says(checkout, sandbox):
    blocks = [block for block in BLOCKS if block.kind == "sandbox"]
    assert blocks, "no block marked readme-test: sandbox"
    steps = [step for block in blocks for step in block.steps]
    returncode, outputs, stderr = checkout.run(steps, SANDBOX_DEADLINE)
    failures = check(steps, returncode, outputs, stderr)
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize(
    "block", [block for block in BLOCKS if block.kind == "standalone"], ids=str
)
def test_a_standalone_block_prints_what_the_readme_says(block, checkout, sandbox):
    """Beside the sandbox, in its checkout: a block whose server cannot take the sandbox's port
    (its log sent elsewhere) would talk to the sandbox and print the sandbox's answers."""
    steps = block.steps
    returncode, outputs, stderr = checkout.run(steps, STANDALONE_DEADLINE)
    failures = check(steps, returncode, outputs, stderr)
    assert not failures, "\n\n".join(failures)


def test_the_production_block_shows_the_401_then_the_200():
    """The block serving production.ini proves its own server answers: a launch without the
    token is a 401 (the sandbox, without authentication, would launch), then with it a 200."""
    blocks = [
        block
        for block in BLOCKS
        if any("pserve production" in command for step in block.steps for command in step.commands)
    ]
    assert [block.kind for block in blocks] == ["standalone"]
    answers = [" ".join(step.expected) for step in blocks[0].steps if step.expected]
    assert len(answers) == 2 and answers[0].startswith('{"status": 401'), answers
    assert expected_pattern([answers[1]]).fullmatch('["i-0123456789abcdef0"]'), answers
    commands = " ".join(command for step in blocks[0].steps for command in step.commands)
    assert not re.search(r"(localhost|127\.0\.0\.1):6543\b", commands), "the sandbox's port"


@pytest.mark.parametrize("block", [block for block in BLOCKS if block.kind == "skip"], ids=str)
def test_a_block_marked_not_run(block):
    pytest.skip(f"{block}: not run: {block.reason}")


def test_a_breach_of_the_convention_is_reported_by_line():
    text = "\n".join(
        [
            "```sh",  # 1: unmarked
            "echo one",
            "```",
            "<!-- readme-test: sandbox -->",  # 4: not followed by a block
            "Some prose.",
            "<!-- readme-test: later -->",  # 6: unknown kind
            "```bash",
            "echo two",
            "```",
            "<!-- readme-test: skip -->",  # 10: no reason
            "```console",
            "echo three",
            "```",
            "<!-- readme-test: sandbox -->",  # 14: before a block that is not shell
            "```json",
            "{}",
            "```",
            "<!-- readme-test: skip: needs a real account -->",
            "",
            "```shell",
            "echo four",
            "```",
        ]
    )
    blocks, problems = parse(text)
    assert problems == [
        "README.md:1: shell block without a readme-test marker",
        "README.md:4: marker without a shell block",
        "README.md:6: unknown readme-test kind 'later'",
        "README.md:10: a skipped block needs a reason",
        "README.md:14: marker before a non-shell block",
    ]
    assert [(block.line, block.kind, block.reason) for block in blocks][-1] == (
        20,
        "skip",
        "needs a real account",
    )


def test_expected_output_stands_for_what_it_says():
    pattern = expected_pattern(['{"ids": ["i-0123abcd", "i-..."], ...}'])
    assert pattern.fullmatch(canonical('{"ids":["i-89ab4567","i-0123456789abcdef0"],"next":null}'))
    pattern = expected_pattern(["i-0123abcd  running  10.0.0.1  -"])
    assert pattern.fullmatch(canonical("i-89ab4567 running   192.168.10.200 -"))
    assert not pattern.fullmatch(canonical("i-89ab4567 stopped   192.168.10.200 -"))
    assert not pattern.fullmatch(canonical('{"ids":["x-89ab4567","i-1"]}'))
    assert not pattern.fullmatch(canonical('{"ids":["i-89ab4567","i-1"]} and more'))
    steps = Block(1, "sandbox", None, [(2, "# what"), (3, "a"), (4, "# out"), (5, "b"), (6, ""),
                                       (7, "# describes c"), (8, "c")]).steps  # fmt: skip
    assert [(s.line, s.commands, s.expected) for s in steps] == [
        (3, ["a"], ["out"]),
        (5, ["b"], []),
        (8, ["c"], []),
    ]


DOCS_INDEX = ROOT / "docs" / "index.rst"


def rst_shell_blocks(text: str) -> list[Block]:
    """The ``.. code-block:: sh`` blocks of a reStructuredText page, as README blocks."""
    blocks, lines = [], text.splitlines()
    for number, line in enumerate(lines, 1):
        if re.fullmatch(r"\.\. code-block:: (sh|bash|shell|console)\s*", line):
            body = []
            for index in range(number, len(lines)):
                if lines[index] and not lines[index].startswith("   "):
                    break
                body.append((index + 1, lines[index][3:]))
            blocks.append(Block(number, None, None, body))
    return blocks


def _words(step: Step) -> tuple[str, str]:
    return " ".join(" ".join(step.commands).split()), " ".join(step.expected)


def test_the_docs_front_page_shows_the_readmes_tested_commands():
    """docs/index.rst shows a newcomer the two commands and a first launch on the sandbox,
    with commands and answers that are the README's, which the tests above run."""
    text = DOCS_INDEX.read_text()
    steps = [step for block in rst_shell_blocks(text) for step in block.steps]
    readme_steps = {_words(step): block for block in BLOCKS for step in block.steps}
    commands = [line for step in steps for line in step.commands]
    assert any(line.startswith("make run") for line in commands)
    assert any(line.startswith("make test") for line in commands)
    launches = [step for step in steps if "curl" in " ".join(step.commands)]
    assert any("ami-760aaa0f" in " ".join(step.commands) for step in launches)
    for step in steps:
        block = readme_steps.get(_words(step))
        assert block is not None, f"docs/index.rst:{step.line}: not a step of the README"
        if step in launches:
            assert block.kind in {"sandbox", "standalone"}, f"{block} is not run"
    assert "instances on EC2." not in text
