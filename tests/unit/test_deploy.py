"""deploy/: the HAProxy configuration, the systemd unit and the Kubernetes manifest agree with
production.ini and with the routes they probe."""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
from http import HTTPStatus
from pathlib import Path

import pytest
import yaml
from paste.deploy.loadwsgi import SERVER, loadcontext

from launchprov.routes import ROUTES
from launchprov.settings import SETTINGS
from tests.support import ERROR_KEYS

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def production() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "production.ini")
    return parser


def production_port(**pserve_vars: str) -> int:
    """waitress's port as pserve reads [server:main] (``pserve production.ini http_port=6544``)."""
    context = loadcontext(
        SERVER, f"config:{ROOT / 'production.ini'}", global_conf={"here": str(ROOT), **pserve_vars}
    )
    return int(context.config()["port"])


def seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m)?", value).groups()
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, None: 0.001}[unit]


def haproxy_timeouts() -> dict[str, float]:
    text = (DEPLOY / "haproxy.cfg").read_text()
    return {
        name: seconds(value)
        for name, value in re.findall(r"^\s*timeout ([\w-]+) (\S+)", text, re.MULTILINE)
    }


def longest_launch() -> float:
    app = production()["app:main"]
    attempts = int(app["launchprov.ec2.max_attempts"])
    return attempts * (
        float(app["launchprov.ec2.connect_timeout"]) + float(app["launchprov.ec2.read_timeout"])
    )


def test_haproxy_waits_longer_than_a_launch_and_closes_before_waitress():
    timeouts = haproxy_timeouts()
    channel_timeout = float(production()["server:main"]["channel_timeout"])
    assert longest_launch() < timeouts["server"] < channel_timeout
    assert longest_launch() < timeouts["client"]
    assert timeouts["http-request"] <= 30, "slow clients are bounded"
    assert timeouts["http-keep-alive"] < channel_timeout
    # A health check outlives /readyz's own bound on its provider call (default 2 s).
    assert timeouts["check"] > 2


def test_haproxy_checks_readiness_and_sends_as_many_requests_as_waitress_has_threads():
    text = (DEPLOY / "haproxy.cfg").read_text()
    assert re.search(r"http-check send meth GET uri /readyz\b", text)
    assert ROUTES["readyz"].pattern == "/readyz"
    threads = production()["server:main"]["threads"]
    assert re.search(rf"default-server .*\bmaxconn {threads}\b", text)
    # Only failed connections are retried: a launch that reached a process is never re-sent.
    assert re.search(r"^\s*retry-on conn-failure$", text, re.MULTILINE)


def backend_servers(text: str, backend: str) -> list[str]:
    section = re.search(rf"^backend {backend}\n(.*?)(?=^\S|\Z)", text, re.MULTILINE | re.DOTALL)
    return re.findall(r"^\s*server (.+)$", section.group(1), re.MULTILINE)


def test_haproxy_fails_open_to_the_same_processes_checked_on_healthz():
    text = (DEPLOY / "haproxy.cfg").read_text()
    assert re.search(r"use_backend launchprov_alive if \{ nbsrv\(launchprov\) eq 0 \}", text)
    alive = re.search(r"^backend launchprov_alive\n.*", text, re.MULTILINE | re.DOTALL).group(0)
    assert re.search(r"http-check send meth GET uri /healthz\b", alive)
    assert backend_servers(text, "launchprov_alive") == backend_servers(text, "launchprov")
    assert len(backend_servers(text, "launchprov")) == 3


def test_haproxys_own_answers_are_the_json_error_body():
    text = (DEPLOY / "haproxy.cfg").read_text()
    answers = dict(re.findall(r"http-error status (\d+) .*lf-string '(.*)'$", text, re.MULTILINE))
    assert set(answers) == {"400", "408", "502", "503", "504"}
    for status, template in answers.items():
        # What HAProxy puts in place of each sample expression: a JSON-escaped string.
        body = json.loads(re.sub(r"%\[[^\]]*\]", "an-id", template))
        assert set(body) == ERROR_KEYS | ({"provider"} if status == "408" else set()), status
        assert body["status"] == int(status)
        assert body["error"] == HTTPStatus(int(status)).phrase
        assert body["details"] == []
        if status == "408":
            assert set(body["provider"]) == {"name", "code", "message", "retryable", "outcome"}


def test_haproxy_accepts_the_configuration(tmp_path):
    binary = shutil.which("haproxy")
    if binary is None:
        pytest.skip("needs haproxy: apt-get install haproxy (Debian package)")
    env = {"LAUNCHPROV_HAPROXY_STATS_SOCKET": str(tmp_path / "stats.sock")}
    result = subprocess.run(
        [binary, "-c", "-f", str(DEPLOY / "haproxy.cfg")], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_probes_the_health_routes_on_the_waitress_port():
    deployment, service = yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text())
    assert (deployment["kind"], service["kind"]) == ("Deployment", "Service")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    port = production_port()
    assert container["ports"][0]["containerPort"] == port
    assert container["livenessProbe"]["httpGet"]["path"] == ROUTES["healthz"].pattern
    # Not /readyz: a Service cannot fail open when the shared cloud makes every pod unready.
    assert container["readinessProbe"]["httpGet"]["path"] == ROUTES["healthz"].pattern
    assert container["readinessProbe"]["timeoutSeconds"] > 2
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert container["lifecycle"]["preStop"]["sleep"]["seconds"] > longest_launch()
    assert grace > container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    variables = {item["name"] for item in container["env"]}
    assert variables <= {setting.env_var for setting in SETTINGS}


def test_the_systemd_unit_serves_production_ini():
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.read_string((DEPLOY / "launchprov.service").read_text())
    assert unit["Service"]["ExecStart"].endswith("pserve /etc/launchprov/production.ini")
    assert unit["Service"]["Restart"] == "on-failure"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
