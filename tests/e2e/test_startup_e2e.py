"""Startup as an operator sees it: pserve with a configuration it cannot use."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.e2e.conftest import BIN
from tests.support import free_port

pytestmark = pytest.mark.e2e

#: A token pasted where its digest belongs.
PASTED_TOKEN = "Fx_yNAM-7pjkQzW3t1gQvSQNoTGLmod4BEvw7dkP50E"


def pserve(ini_lines: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as directory:
        ini = Path(directory, "bad.ini")
        server = ["[server:main]", "use = egg:waitress#main", f"listen = 127.0.0.1:{free_port()}"]
        app = ["[app:main]", "use = egg:launchprov", *ini_lines]
        ini.write_text("\n".join([*app, "", *server]) + "\n")
        return subprocess.run(
            [str(BIN / "pserve"), str(ini)],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.mark.parametrize(
    ("lines", "env", "names"),
    [
        (
            [f"launchprov.auth.tokens = deployer {PASTED_TOKEN}"],
            {},
            ("launchprov.auth.tokens", "LAUNCHPROV_AUTH_TOKENS"),
        ),
        (
            [],
            {"LAUNCHPROV_AUTH_TOKENS": f"deployer {PASTED_TOKEN}"},
            ("launchprov.auth.tokens", "LAUNCHPROV_AUTH_TOKENS"),
        ),
        ([], {}, ("launchprov.auth.tokens", "LAUNCHPROV_AUTH_TOKENS")),
        (
            ["launchprov.retry_after = soon"],
            {},
            ("launchprov.retry_after", "LAUNCHPROV_RETRY_AFTER"),
        ),
        (
            ["launchprov.auth.enabled = false", "launchprov.tracing = true"],
            {"OTEL_TRACES_EXPORTER": "zipkin"},
            ("launchprov.tracing", "OTEL_TRACES_EXPORTER", "zipkin"),
        ),
    ],
    ids=["token-in-ini", "token-in-env", "no-token", "bad-number", "tracing-exporter"],
)
def test_a_configuration_error_is_one_short_line_and_a_failure(lines, env, names):
    result = pserve(lines, env)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) <= 3, output
    for name in names:
        assert name in output, output
    assert PASTED_TOKEN not in output


def test_a_taken_port_is_one_line_naming_it_and_a_failure():
    """The [server:main] address is another process's: one line naming it, a non-zero status
    (pserve itself would answer a server's SystemExit with status 0), no traceback."""
    with socket.socket() as taken, tempfile.TemporaryDirectory() as directory:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ini = Path(directory, "taken.ini")
        ini.write_text(
            "[app:main]\nuse = egg:launchprov\nlaunchprov.provider = libcloud\n"
            "launchprov.libcloud.driver = dummy\n"
            "launchprov.auth.enabled = false\n\n"
            f"[server:main]\nuse = egg:launchprov#waitress\nlisten = 127.0.0.1:{port}\n"
        )
        result = subprocess.run(
            [str(BIN / "pserve"), str(ini)], capture_output=True, text=True, timeout=60
        )
    output = result.stdout + result.stderr
    assert result.returncode == 71, output
    assert "Traceback" not in output
    (line,) = [line for line in output.splitlines() if "cannot listen" in line]
    assert f"launchprov cannot listen on 127.0.0.1:{port}: Address already in use" in line, line
