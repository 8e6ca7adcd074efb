"""The ``launchprov`` command line without a service: help texts, usage errors (exit status 2,
before any request), token minting. tests/e2e/test_cli_e2e.py runs every command against a
real service."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import click
import pytest
from click.testing import CliRunner

from launchprov.auth import digest
from launchprov.cli import Output, main
from launchprov.client import ConnectionFailed, ProviderFailed
from tests.support import GOOD_AMI, free_port, serve_in_thread

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
        ((*LAUNCH, "--param", "spot"), "'spot' is not NAME=VALUE"),
        ((*LAUNCH, "--param", "a=1", "--param", "a=2"), "a given twice"),
        ((*LAUNCH, "--param", "ami=ami-1"), "ami has an option of its own"),
        ((*LAUNCH, "--count", "1", "--param", "min_count=1"), "min_count has an option of its own"),
        (("preflight", "--ami", GOOD_AMI), "Missing option '--instance-type'"),
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
    names = ("launch", "preflight", "ls", "show", "stop", "start", "reboot", "rm", "wait", "token")
    for name in names:
        assert f"  {name} " in result.stdout
    assert "0 success; 1 the service answered an error" in flat(result.stdout)
    assert "2 a usage error" in flat(result.stdout)


def test_token_mint_prints_a_token_and_its_digest_line(cli):
    result = cli("token", "mint", "deployer")
    assert result.exit_code == 0
    lines = [line.strip() for line in result.stdout.splitlines()]
    token, line = lines[1], lines[3]
    assert len(token) >= 40 and line == f"deployer {digest(token)}"


# --- preflight, against a recorded stand-in -------------------------------------------------

#: Answers of POST /v1/launch/preflight as the service gives them (its OpenAPI schema: every
#: check named, with the provider's code and message where it failed).
WOULD_LAUNCH = {
    "would_launch": True,
    "checks": [
        {"name": "parameters", "ok": True, "code": None, "message": None},
        {"name": "ami", "ok": True, "code": None, "message": None},
        {"name": "dry_run", "ok": True, "code": "DryRunOperation", "message": None},
    ],
}
WOULD_NOT_LAUNCH = {
    "would_launch": False,
    "checks": [
        {
            "name": "ami",
            "ok": False,
            "code": "InvalidAMIID.NotFound",
            "message": "The image id '[ami-12345678]' does not exist",
        },
        {"name": "key_name", "ok": True, "code": None, "message": None},
    ],
}


class RecordedPreflight:
    """A stand-in service on 127.0.0.1 answering POST /v1/launch/preflight with a recorded
    answer, keeping the bodies it was sent."""

    def __init__(self, answer: dict):
        self.bodies: list[dict] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stand_in.bodies.append(json.loads(body))
                payload = json.dumps(answer).encode()
                status = 200 if self.path == "/v1/launch/preflight" else 404
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        serve_in_thread(self.server)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorded():
    stand_ins = []

    def start(answer: dict) -> RecordedPreflight:
        stand_ins.append(RecordedPreflight(answer))
        return stand_ins[-1]

    yield start
    for stand_in in stand_ins:
        stand_in.close()


def test_preflight_sends_the_launch_parameters_and_prints_the_checks(recorded):
    stand_in = recorded(WOULD_LAUNCH)
    args = ("preflight", "--url", stand_in.url, *LAUNCH[1:], "--count", "2", "--tag", "a=b")
    result = CliRunner().invoke(main, [*args, "--param", "subnet_id=subnet-1a2b"])
    assert result.exit_code == 0, result.stderr
    assert stand_in.bodies == [
        {
            "ami": GOOD_AMI,
            "instance_type": "t2.micro",
            "min_count": 2,
            "max_count": 2,
            "tags": {"a": "b"},
            "subnet_id": "subnet-1a2b",
        }
    ]
    lines = [line.split() for line in result.stdout.splitlines()]
    assert lines[0] == ["CHECK", "OK", "CODE", "MESSAGE"]
    assert lines[3] == ["dry_run", "yes", "DryRunOperation", "-"]


@pytest.mark.parametrize("from_environment", [False, True])
def test_a_url_without_a_scheme_reaches_the_service_over_http(recorded, from_environment):
    stand_in = recorded(WOULD_LAUNCH)
    address = stand_in.url.removeprefix("http://")  # 127.0.0.1:PORT, as a person types it
    url, env = ([], {"LAUNCHPROV_URL": address}) if from_environment else (["--url", address], {})
    result = CliRunner().invoke(main, ["preflight", *url, *LAUNCH[1:]], env=env)
    assert result.exit_code == 0, result.stderr
    assert stand_in.bodies == [{"ami": GOOD_AMI, "instance_type": "t2.micro"}]


def test_a_launch_that_would_fail_exits_1_with_the_failed_check(recorded):
    stand_in = recorded(WOULD_NOT_LAUNCH)
    result = CliRunner().invoke(main, ["preflight", "--url", stand_in.url, *LAUNCH[1:], "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == WOULD_NOT_LAUNCH
    assert "the launch would not succeed" in result.stderr
    result = CliRunner().invoke(main, ["preflight", "--url", stand_in.url, *LAUNCH[1:]])
    # The service's text as it is: rich must not take [ami-12345678] for markup.
    assert result.stdout.splitlines()[1].split(maxsplit=3) == [
        "ami",
        "no",
        "InvalidAMIID.NotFound",
        "The image id '[ami-12345678]' does not exist",
    ]


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ("spot=true", True),
        ('fallback=[{"instance_type": "t3.micro"}]', [{"instance_type": "t3.micro"}]),
        ("subnet_id=subnet-1a2b", "subnet-1a2b"),
        ('key_name="123"', "123"),
        ("user_data=", ""),
    ],
)
def test_param_values_are_json_where_they_parse(recorded, param, expected):
    stand_in = recorded(WOULD_LAUNCH)
    result = CliRunner().invoke(
        main, ["preflight", "--url", stand_in.url, *LAUNCH[1:], "--param", param]
    )
    assert result.exit_code == 0, result.stderr
    name = param.partition("=")[0]
    assert stand_in.bodies[0][name] == expected


def provider_failure(retryable: bool, outcome: str) -> ProviderFailed:
    provider = {"name": "ec2", "code": "X", "retryable": retryable, "outcome": outcome}
    error = ProviderFailed(408, {"error": "Request Timeout", "message": "m", "provider": provider})
    error.client_token = "tok-1"
    return error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            provider_failure(False, "none"),
            ["  provider ec2 code: X (a retry will not help)", "  client token: tok-1"],
        ),
        (
            provider_failure(True, "unknown"),
            [
                "  provider ec2 code: X (a retry can help)",
                "  client token: tok-1 (a retry with this same token is safe: it never launches"
                " twice)",
            ],
        ),
    ],
)
def test_a_408_never_suggests_a_retry_that_will_not_help(capsys, error, expected):
    Output(as_json=False).error(error)
    lines = capsys.readouterr().err.splitlines()
    assert lines[1:] == expected


def test_no_answer_to_a_launch_says_the_retry_with_its_token_is_safe(capsys):
    error = ConnectionFailed(None, {"message": "no answer from http://x: ReadTimeout"})
    error.client_token = "tok-2"
    Output(as_json=False).error(error)
    assert capsys.readouterr().err.splitlines()[1:] == [
        "  client token: tok-2 (a retry with this same token is safe: it never launches twice)"
    ]
