"""The ``launchprov`` command line without a service: help texts, usage errors (exit status 2,
before any request), token minting. tests/e2e/test_cli_e2e.py runs every command against a
real service."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from launchprov.auth import digest
from launchprov.cli import main
from tests.support import GOOD_AMI, free_port

LAUNCH = ("launch", "--ami", GOOD_AMI, "--instance-type", "t2.micro")


@pytest.fixture
def cli():
    """Run ``launchprov ARGS`` against an address where nothing listens: a command that sent a
    request would exit 1 (no answer), not 2."""
    runner = CliRunner()
    env = {"LAUNCHPROV_URL": f"http://127.0.0.1:{free_port()}"}

    def invoke(*args: str):
        return runner.invoke(main, list(args), env=env, prog_name="launchprov")

    return invoke


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("launch", "--ami", GOOD_AMI), "Missing option '--instance-type'"),
        (
            (*LAUNCH, "--count", "2", "--min-count", "1"),
            "give --count, or --min-count and --max-count, not both",
        ),
        ((*LAUNCH, "--tag", "x"), "'x' is not KEY=VALUE"),
        ((*LAUNCH, "--tag", "a=1", "--tag", "a=2"), "a tag has one value: a"),
        ((*LAUNCH, "--user-data", "@/nonexistent/file"), "cannot read /nonexistent/file"),
        ((*LAUNCH, "--count", "x"), "'x' is not a valid integer"),
        (("stop",), "Missing argument 'ID...'"),
        (("wait", "i-1", "--timeout", "soon"), "'soon' is not a valid float"),
        (("ls", "--tag", "=x"), "'=x' is not KEY=VALUE"),
        (("frobnicate",), "No such command"),
        (("token", "mint", "not a name!"), "caller names are"),
    ],
)
def test_usage_errors_exit_2_without_calling_the_service(cli, args, complaint):
    result = cli(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert complaint in result.stderr


def test_no_service_is_exit_1(cli):
    result = cli("show", "i-0123456789abcdef0", "--retries", "0")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no answer from http://127.0.0.1:")


def commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def flat(text: str) -> str:
    return " ".join(text.split())


COMMANDS = list(commands(main))


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=[" ".join(path) for path, _ in COMMANDS]
)
def test_every_command_and_option_has_help(cli, path, command):
    result = cli(*path, "--help")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"Usage: launchprov {' '.join(path)} ")
    assert command.help
    assert flat(command.help.replace("\b", "")) in flat(result.stdout)
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{' '.join(path)} {param.opts[0]} has no help"
            assert all(opt in result.stdout for opt in param.opts)


def test_the_group_help_lists_every_command_and_the_exit_statuses(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for name in ("launch", "ls", "show", "stop", "start", "reboot", "rm", "wait", "token"):
        assert f"  {name} " in result.stdout
    assert "0 success; 1 the service answered an error" in flat(result.stdout)
    assert "2 a usage error" in flat(result.stdout)


def test_token_mint_prints_a_token_and_its_digest_line(cli):
    result = cli("token", "mint", "deployer")
    assert result.exit_code == 0
    lines = [line.strip() for line in result.stdout.splitlines()]
    token, line = lines[1], lines[3]
    assert len(token) >= 40 and line == f"deployer {digest(token)}"
