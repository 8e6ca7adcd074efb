"""deploy/: the HAProxy configuration, the systemd units, the environment file and the Kubernetes
manifests agree with each other (names, ports, paths, users), with production.ini, with the
settings and with the routes they probe; a broken copy shows each mismatch is caught."""

from __future__ import annotations

import ast
import configparser
import fnmatch
import json
import re
import shutil
import subprocess
from http import HTTPStatus
from pathlib import Path

import pytest
import yaml
from paste.deploy.loadwsgi import SERVER, loadcontext

from launchprov import bulkhead
from launchprov.bulkhead import server_threads
from launchprov.routes import ROUTES
from launchprov.settings import (
    CALLER_POLICY,
    CALLER_RATE_LIMIT,
    ENV_PREFIX,
    SETTINGS,
    ConfigurationError,
    load,
)
from tests.haproxy import haproxy_env
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


def test_haproxy_checks_readiness_and_sends_what_a_process_serves_without_shedding():
    text = (DEPLOY / "haproxy.cfg").read_text()
    assert re.search(r"http-check send meth GET uri /readyz\b", text)
    assert ROUTES["readyz"].pattern == "/readyz"
    threads = int(production()["server:main"]["threads"])
    # HAProxy sends every thread but one: the one left answers what the probe lane does not (a
    # scrape whose token is checked against failures counted in Redis, the document).
    assert served_without_shedding(ROOT / "production.ini") == threads - 1
    assert re.search(rf"default-server .*\bmaxconn {threads - 1}\b", text)
    # A failed connection is retried for every method, an empty answer for GET and HEAD only:
    # a launch that reached a process is never re-sent.
    assert re.search(r"^\s*retry-on conn-failure empty-response$", text, re.MULTILINE)
    assert re.search(r"^\s*http-request disable-l7-retry unless METH_GET$", text, re.MULTILINE)
    assert re.search(r"^\s*option redispatch 1$", text, re.MULTILINE)


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


def test_haproxys_own_answers_carry_the_request_id_kept_from_before_the_request_left():
    """A 502 or 504 comes after the request went to a process, when req.hdr() reads nothing:
    the id is the one the frontend kept in txn.request_id, in the body and the header."""
    text = (DEPLOY / "haproxy.cfg").read_text()
    frontend = re.search(r"^frontend launchprov\n(.*?)(?=^\S|\Z)", text, re.MULTILINE | re.DOTALL)
    rules = frontend.group(1)
    made = rules.index("http-request set-header X-Request-ID %[unique-id] unless")
    kept = rules.index("http-request set-var(txn.request_id) req.fhdr(X-Request-ID)")
    assert made < kept < rules.index("default_backend")
    assert re.search(r"^\s*unique-id-format %\[uuid\(\)\]$", rules, re.MULTILINE)
    for status in ("502", "503", "504"):
        (line,) = re.findall(rf"^\s*http-error status {status} .*$", text, re.MULTILINE)
        assert 'hdr X-Request-ID "%[var(txn.request_id)]"' in line, status
        assert '"request_id":"%[var(txn.request_id),json(utf8s)]"' in line, status
        assert "req.hdr" not in line, status


def test_sigterm_drains_before_the_balancer_or_systemd_gives_up():
    """production.ini serves with the runner that drains on SIGTERM; its delay outlasts
    HAProxy's two failed checks, and systemd waits for the delay and the longest request."""
    ini = production()
    assert ini["server:main"]["use"] == "egg:launchprov#waitress"
    app = ini["app:main"]
    drain_delay = float(app["launchprov.drain_delay"])
    text = (DEPLOY / "haproxy.cfg").read_text()
    # Both backends check alike.
    ((interval, fall),) = set(
        re.findall(r"default-server check inter \S+-(\w+)}\" fall (\d+)", text)
    )
    assert drain_delay > seconds(interval) * int(fall)
    unit = unit_file(DEPLOY / "launchprov@.service")
    stop_after = float(unit["Service"]["TimeoutStopSec"])
    assert unit["Service"]["KillSignal"] == "SIGTERM"
    assert stop_after > drain_delay + float(app["launchprov.request_deadline"])
    # Kubernetes: SIGTERM comes after the pre-stop pause, and the drain fits in what is left.
    (deployment,) = (
        document
        for document in yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text())
        if document["kind"] == "Deployment" and document["metadata"]["name"] == "launchprov"
    )
    pod = deployment["spec"]["template"]["spec"]
    pause = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pause + drain_delay


def test_the_provider_slots_follow_the_threads_of_the_draining_runner():
    """egg:launchprov#waitress is waitress: its threads are read to size the provider slots."""
    threads = int(production()["server:main"]["threads"])
    assert server_threads({"__file__": str(ROOT / "production.ini")}) == threads


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
    deployment, service, *_ = yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text())
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
    assert container["envFrom"] == [{"secretRef": {"name": "launchprov"}}]


def test_the_systemd_unit_serves_production_ini_on_the_port_of_its_instance_name():
    unit = unit_file(DEPLOY / "launchprov@.service")
    assert unit["Service"]["ExecStart"].endswith(
        "pserve /etc/launchprov/production.ini http_port=%i"
    )
    assert unit["Service"]["Restart"] == "on-failure"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


# -- The deploy files agree with each other: one set of names, ports, paths and users ----------

#: The variables HAProxy itself reads from its environment (deploy/haproxy.cfg's ${NAME-...}),
#: as tests/haproxy.py sets them: HAProxy's, never launchprov's.
HAPROXY_VARS = {
    name
    for name in haproxy_env(80, "stats.sock", ["a", "b", "c"], "2s")
    if name.startswith(ENV_PREFIX)
}
LAUNCHPROV_VAR = re.compile(r"\bLAUNCHPROV_[A-Z0-9_]+\b")
#: A setting's key, not a file name (deploy/launchprov.env, ./launchprov.env).
LAUNCHPROV_KEY = re.compile(r"(?<![\w/.@-])(launchprov\.(?:[a-z0-9_]+\.)*[a-z0-9_]+)\b(\.\*)?")
KUBECTL_CREATE = re.compile(r"kubectl create (?:secret generic|configmap) ([\w-]+)")
SYSTEMD_UNITS = ("launchprov@.service", "launchprov-reap.service", "launchprov-reap.timer")


def unit_file(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # systemd's keys are case-sensitive
    unit.read_string(path.read_text())
    return unit


def environment_file(path: Path) -> dict[str, str]:
    """The variables of an environment file, as a shell (and systemd) reads them."""
    script = f"set -a; . {path}; set +a; env -0"
    output = subprocess.run(
        ["bash", "-c", script], env={}, capture_output=True, text=True, check=True
    ).stdout
    return {
        name: value
        for name, _, value in (item.partition("=") for item in output.split("\0") if item)
        if name.startswith(ENV_PREFIX)
    }


def haproxy_ports(text: str) -> set[int]:
    """The ports of backend launchprov's servers (their production default, "${VAR-host:port}")."""
    return {
        int(re.search(r":(\d+)\}?\"?$", server).group(1))
        for server in backend_servers(text, "launchprov")
    }


def pod_spec(document: dict) -> dict:
    spec = document["spec"]
    if document["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    return spec["template"]["spec"]


def ini_settings(ini: Path) -> dict:
    """The launchprov.* settings of ``ini``'s [app:main], parsed (no environment)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ini)
    app = {key: value for key, value in parser["app:main"].items() if key.startswith("launchprov.")}
    return load(app, {})


def served_without_shedding(ini: Path) -> int:
    """What HAProxy may send one process served from ``ini`` at once: the provider calls it runs
    while the cloud answers when the probes take a thread (every thread but one), computed as
    the app does -- one thread is left for what the probe lane (launchprov.serving) does not
    answer: a scrape whose token is checked against failures counted in Redis."""
    settings = ini_settings(ini)
    threads = bulkhead.server_threads({"__file__": str(ini)})
    configured = settings["launchprov.provider_concurrency"]
    base = bulkhead.concurrency(configured, threads)
    return bulkhead.ceiling(base, threads, configured, settings["launchprov.provider_lend_reserve"])


def deploy_problems(deploy: Path, ini: Path) -> list[str]:
    """Every way the deploy files disagree with each other, with production.ini or with the
    settings; empty when they agree."""
    problems: list[str] = []
    known_vars = {setting.env_var for setting in SETTINGS}
    known_keys = {setting.key for setting in SETTINGS}
    files = sorted(path for path in deploy.iterdir() if path.is_file())

    # Every deploy/ file named in a deploy file exists; every launchprov.* key and LAUNCHPROV_*
    # variable named is a setting's (HAProxy's own variables aside).
    for path in files:
        text = path.read_text()
        for named in set(re.findall(r"\bdeploy/([\w@.-]+[\w])", text)):
            if not (deploy / named).exists():
                problems.append(f"{path.name} names deploy/{named}, which does not exist")
        for variable in set(LAUNCHPROV_VAR.findall(text)) - known_vars - HAPROXY_VARS:
            problems.append(f"{path.name}: {variable} is not a setting's variable")
        for key, wildcard in set(LAUNCHPROV_KEY.findall(text)):
            if wildcard and any(known.startswith(f"{key}.") for known in known_keys):
                continue  # launchprov.ec2.*: a group of settings
            if key in known_keys or CALLER_POLICY.match(key) or CALLER_RATE_LIMIT.match(key):
                continue
            problems.append(f"{path.name}: {key} is not a setting")

    # The environment file: the one place of the secrets; it loads as settings do.
    environ = environment_file(deploy / "launchprov.env")
    for variable in sorted(set(environ) - known_vars):
        problems.append(f"launchprov.env: {variable} is not a setting's variable")
    if not problems:
        try:
            load({}, environ)
        except ConfigurationError as exc:
            problems.append(f"launchprov.env does not load: {exc}")

    # systemd: the service and the reaper share an installation, an .ini, the environment
    # file and a user; the timer starts the reaper; the service's port is its instance name.
    units = {name: unit_file(deploy / name) for name in SYSTEMD_UNITS if (deploy / name).exists()}
    for name in SYSTEMD_UNITS:
        if name not in units:
            problems.append(f"deploy/{name} is missing")
    service, reaper = units.get("launchprov@.service"), units.get("launchprov-reap.service")
    if service and reaper:
        serve = service["Service"]["ExecStart"].split()
        reap = reaper["Service"]["ExecStart"].split()
        if Path(serve[0]).name != "pserve" or Path(reap[0]).name != "launchprov-reap":
            problems.append("the units run something other than pserve and launchprov-reap")
        if Path(serve[0]).parent != Path(reap[0]).parent:
            problems.append(f"the units run from different installations: {serve[0]}, {reap[0]}")
        if serve[1] != reap[1]:
            problems.append(f"the units read different .ini files: {serve[1]}, {reap[1]}")
        if "http_port=%i" not in serve[2:]:
            problems.append("launchprov@.service does not take its port from its instance name")
        for key in ("User", "Group", "DynamicUser", "EnvironmentFile"):
            if service["Service"].get(key) != reaper["Service"].get(key):
                problems.append(f"the units' {key} differ")
        environment_path = service["Service"].get("EnvironmentFile", "")
        if f"deploy/launchprov.env {environment_path}" not in service_text(deploy):
            problems.append(
                f"launchprov@.service does not install deploy/launchprov.env as {environment_path}"
            )
    timer = units.get("launchprov-reap.timer")
    if timer and timer["Timer"].get("Unit", "launchprov-reap.service") != "launchprov-reap.service":
        problems.append(f"the timer starts {timer['Timer']['Unit']}, not launchprov-reap.service")

    # Ports: the instances enabled, HAProxy's backends and production.ini's default agree.
    haproxy = haproxy_ports((deploy / "haproxy.cfg").read_text())
    enabled = {int(port) for port in re.findall(r"\blaunchprov@(\d+)\b", service_text(deploy))}
    if enabled != haproxy:
        problems.append(
            f"instances enabled on ports {sorted(enabled)}, HAProxy balances {sorted(haproxy)}"
        )
    context = loadcontext(SERVER, f"config:{ini}", global_conf={"here": str(ini.parent)})
    default_port = int(context.config()["port"])
    if default_port not in haproxy:
        problems.append(
            f"production.ini's port {default_port} is not among HAProxy's {sorted(haproxy)}"
        )

    # Capacity: HAProxy sends each process what it serves without shedding (more would wait for
    # a slot in the process, holding the thread kept for probes), and queues the rest no
    # longer than leaves the caller a whole request deadline under HAProxy's client time-out.
    haproxy_text = (deploy / "haproxy.cfg").read_text()
    served = served_without_shedding(ini)
    for maxconn in re.findall(r"^\s*default-server .*\bmaxconn (\d+)", haproxy_text, re.MULTILINE):
        if int(maxconn) != served:
            problems.append(
                f"HAProxy sends a process {maxconn} requests at once (maxconn), production.ini "
                f"serves {served} without shedding"
            )
    timeouts = {
        name: seconds(value)
        for name, value in re.findall(r"^\s*timeout ([\w-]+) (\S+)", haproxy_text, re.MULTILINE)
    }
    request_deadline = ini_settings(ini)["launchprov.request_deadline"]
    if not request_deadline < timeouts.get("queue", 0):
        problems.append(
            f"HAProxy's timeout queue ({timeouts.get('queue')} s) is not longer than "
            f"launchprov.request_deadline ({request_deadline:g} s): a request queued behind calls "
            "held to their deadline gets HAProxy's 503 instead of a process's answer"
        )
    if not timeouts.get("queue", 0) + request_deadline < timeouts.get("client", 0):
        problems.append(
            f"HAProxy's timeout queue + launchprov.request_deadline ({request_deadline:g} s) "
            f"is not below its timeout client ({timeouts.get('client')} s)"
        )

    # Kubernetes: every name referenced is defined (here, or by the kubectl commands above
    # them), one image, the .ini where the commands read it, the Redis where the URI says.
    text = (deploy / "kubernetes.yaml").read_text()
    documents = list(yaml.safe_load_all(text))
    defined = {(d["kind"], d["metadata"]["name"]): d for d in documents}
    created = set(KUBECTL_CREATE.findall(text))
    ini_path = (service["Service"]["ExecStart"].split()[1]) if service else ""
    images = set()
    for document in documents:
        if document["kind"] not in ("Deployment", "CronJob"):
            continue
        spec = pod_spec(document)
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        for volume in volumes.values():
            if "configMap" in volume and volume["configMap"]["name"] not in created:
                problems.append(f"ConfigMap {volume['configMap']['name']} is never created")
        for container in spec["containers"]:
            if not container["image"].startswith("redis:"):
                images.add(container["image"])
            else:
                continue
            for source in container.get("envFrom", []):
                if source["secretRef"]["name"] not in created:
                    problems.append(f"Secret {source['secretRef']['name']} is never created")
            for item in container.get("env", []):
                if item["name"] not in known_vars:
                    problems.append(
                        f"{document['metadata']['name']}: {item['name']} is not a setting's "
                        "variable"
                    )
                secret = item.get("valueFrom", {}).get("secretKeyRef", {}).get("name")
                if secret and secret not in created:
                    problems.append(f"Secret {secret} is never created")
                for host, port in re.findall(r"redis://([\w-]+):(\d+)", item.get("value", "")):
                    redis = defined.get(("Service", host))
                    if redis is None:
                        problems.append(f"the Redis Service {host} is not defined")
                    elif int(port) not in [p["port"] for p in redis["spec"]["ports"]]:
                        problems.append(f"Service {host} has no port {port}")
            for port in container.get("ports", []):
                if port["containerPort"] != default_port:
                    problems.append(
                        f"{document['metadata']['name']} listens on {port['containerPort']}, "
                        f"production.ini on {default_port}"
                    )
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            if str(Path(ini_path).parent) not in mounts or container["command"][1] != ini_path:
                problems.append(
                    f"{document['metadata']['name']} does not read {ini_path} from its ConfigMap"
                )
    if len(images) != 1:
        problems.append(f"the launchprov containers use several images: {sorted(images)}")
    for (kind, name), document in defined.items():
        if kind != "Service":
            continue
        selected = [
            d
            for d in documents
            if d["kind"] == "Deployment"
            and d["spec"]["selector"]["matchLabels"] == document["spec"]["selector"]
        ]
        if not selected:
            problems.append(f"Service {name} selects no Deployment")
            continue
        (pod,) = pod_spec(selected[0])["containers"]
        named_ports = {p["name"]: p["containerPort"] for p in pod["ports"]}
        for port in document["spec"]["ports"]:
            if port["targetPort"] not in named_ports:
                problems.append(
                    f"Service {name} targets {port['targetPort']}, which the pods do not name"
                )
    # The image: the Deployment's command, the unit's installation and .ini, the port.
    serve = service["Service"]["ExecStart"].split() if service else []
    deployment = defined.get(("Deployment", "launchprov"))
    problems += image_problems(
        deploy,
        serve,
        pod_spec(deployment)["containers"][0] if deployment else {},
        default_port,
        images,
    )
    return problems


def dockerfile(path: Path) -> list[tuple[str, str]]:
    """A Dockerfile's instructions, (INSTRUCTION, its arguments), as Docker reads them:
    continuation lines joined, comment lines left out."""
    instructions, current = [], []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        current.append(stripped.removesuffix("\\").strip())
        if not stripped.endswith("\\"):
            word, _, arguments = " ".join(current).partition(" ")
            instructions.append((word.upper(), arguments.strip()))
            current = []
    return instructions


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether a .dockerignore's ``patterns`` leave ``path`` out of the build context (the
    last pattern that matches decides; ``!`` lets a path back in)."""
    left_out = False
    for pattern in patterns:
        allow = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        parts = Path(path).parts
        if any(fnmatch.fnmatch("/".join(parts[:n]), pattern) for n in range(1, len(parts) + 1)):
            left_out = not allow
    return left_out


def setup_extras() -> set[str]:
    """The extras of setup.py's extras_require."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "extras_require":
            return {key.value for key in node.value.keys}
    return set()


def image_problems(
    deploy: Path, serve: list[str], container: dict, port: int, images: set[str]
) -> list[str]:
    """How deploy/Dockerfile disagrees with the unit (``serve``: its ExecStart), the
    Deployment's ``container``, production.ini's ``port`` and setup.py."""
    path = deploy / "Dockerfile"
    if not path.exists():
        return ["deploy/Dockerfile is missing"]
    problems = []
    instructions = dockerfile(path)
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    build, runtime = instructions[:last_from], instructions[last_from + 1 :]
    final = {word: arguments for word, arguments in runtime}  # the last of each one counts

    command = json.loads(final.get("CMD", "[]"))
    if command != container.get("command"):
        problems.append(f"the image's CMD {command} is not the Deployment's command")
    if serve and command[1:] != serve[1:2]:
        problems.append(f"the image serves {command[1:]}, the unit {serve[1]}")
    path_entries = re.search(r"\bPATH=(\S+)", final.get("ENV", ""))
    installed = path_entries.group(1).split(":")[0] if path_entries else ""
    if serve and installed != str(Path(serve[0]).parent):
        problems.append(
            f"the image and the unit run from different installations: {installed}, {serve[0]}"
        )
    user = final.get("USER", "root")
    if not re.fullmatch(r"[1-9]\d*(:\d+)?", user):
        problems.append(
            f"the image's USER {user} is not a numeric non-root user (runAsNonRoot needs one)"
        )
    if final.get("EXPOSE") != str(port):
        problems.append(f"the image exposes {final.get('EXPOSE')}, production.ini serves {port}")
    probe = re.search(r"http://[\w.]+:(\d+)(/[\w/]*)", final.get("HEALTHCHECK", ""))
    if not probe or (int(probe.group(1)), probe.group(2)) != (port, ROUTES["healthz"].pattern):
        problems.append(
            f"the image's HEALTHCHECK does not ask {ROUTES['healthz'].pattern} on port {port}"
        )
    copies = [arguments.split() for word, arguments in runtime if word == "COPY"]
    if serve and ["production.ini", serve[1]] not in copies:
        problems.append(f"the image does not hold production.ini at {serve[1]}")
    tags = set(re.findall(r"docker build .* -t (\S+)", path.read_text()))
    if tags != images:
        problems.append(f"the image is built as {sorted(tags)}, the manifests run {sorted(images)}")

    # Everything the image names exists: the extras, the files it copies (in the build context
    # that Dockerfile.dockerignore leaves), what setup.py reads to build the wheels.
    text = " ".join(arguments for _, arguments in instructions)
    for extras in re.findall(r"launchprov\[([\w,-]+)\]", text):
        for extra in set(extras.split(",")) - setup_extras():
            problems.append(f"the image installs launchprov[{extra}]: {extra} is not an extra")
    ignore = deploy / "Dockerfile.dockerignore"
    lines = ignore.read_text().splitlines() if ignore.exists() else []
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    sources = [
        source
        for word, arguments in instructions
        if word == "COPY" and "--from" not in arguments
        for source in arguments.split()[:-1]
    ]
    for source in sources:
        if not (ROOT / source).exists() or ignored(source, patterns):
            problems.append(f"the image copies {source}, which is not in the build context")
    read = re.findall(r"open\(\"([^\"]+)\"", (ROOT / "setup.py").read_text())
    built_from = {s for word, a in build if word == "COPY" for s in a.split()[:-1]}
    for name in sorted(set(read) - built_from):
        problems.append(f"setup.py reads {name}, which the wheels' stage does not copy")
    return problems


def service_text(deploy: Path) -> str:
    path = deploy / "launchprov@.service"
    return path.read_text() if path.exists() else ""


def test_the_deploy_files_agree():
    assert deploy_problems(DEPLOY, ROOT / "production.ini") == []


#: Each mismatch the issue found, made again in a copy: (file, text, replacement, problem).
BROKEN = {
    "haproxy-port": ("haproxy.cfg", "127.0.0.1:6545}", "127.0.0.1:6546}", "HAProxy balances"),
    "missing-unit": (
        "haproxy.cfg",
        "deploy/launchprov@.service",
        "deploy/launchprov-web.service",
        "does not exist",
    ),
    "fixed-port": ("launchprov@.service", " http_port=%i", "", "instance name"),
    "reaper-venv": (
        "launchprov-reap.service",
        "/opt/launchprov/venv/",
        "/srv/launchprov/.venv/",
        "different installations",
    ),
    "reaper-user": (
        "launchprov-reap.service",
        "DynamicUser=yes",
        "User=launchprov",
        "DynamicUser differ",
    ),
    "reaper-env": (
        "launchprov-reap.service",
        "EnvironmentFile=/etc/launchprov/environment\n",
        "",
        "EnvironmentFile differ",
    ),
    "reaper-ini": (
        "launchprov-reap.service",
        "/etc/launchprov/production.ini",
        "/srv/launchprov/production.ini",
        "different .ini",
    ),
    "timer-unit": (
        "launchprov-reap.timer",
        "Unit=launchprov-reap.service",
        "Unit=launchprov-reaper.service",
        "the timer starts",
    ),
    "env-unknown": (
        "launchprov.env",
        "LAUNCHPROV_RATELIMIT_STORAGE_URI=",
        "LAUNCHPROV_RATELIMIT_STORE_URI=",
        "LAUNCHPROV_RATELIMIT_STORE_URI is not",
    ),
    "env-bad-tokens": (
        "launchprov.env",
        "0000000000000000000000000000000000000000000000000000000000000000\n",
        "0000, ",
        "does not load",
    ),
    "k8s-image": (
        "kubernetes.yaml",
        "image: registry.example.internal/launchprov:1.0.0\n              # One",
        "image: launchprov:latest\n              # One",
        "several images",
    ),
    "k8s-configmap": (
        "kubernetes.yaml",
        "configMap: {name: launchprov-config}\n---\n# The rate",
        "configMap: {name: launchprov-conf}\n---\n# The rate",
        "launchprov-conf is never created",
    ),
    "k8s-secret": (
        "kubernetes.yaml",
        "- secretRef: {name: launchprov}\n              volumeMounts",
        "- secretRef: {name: launchprov-env}\n              volumeMounts",
        "launchprov-env is never created",
    ),
    "k8s-redis": (
        "kubernetes.yaml",
        "redis://launchprov-redis:6379/0",
        "redis://redis:6379/0",
        "redis is not defined",
    ),
    "k8s-redis-port": (
        "kubernetes.yaml",
        "port: 6379, targetPort",
        "port: 6380, targetPort",
        "has no port 6379",
    ),
    "k8s-variable": (
        "kubernetes.yaml",
        "name: LAUNCHPROV_RATELIMIT_STORAGE_URI",
        "name: LAUNCHPROV_REDIS_URL",
        "LAUNCHPROV_REDIS_URL is not",
    ),
    "k8s-port": (
        "kubernetes.yaml",
        "{name: http, containerPort: 6543}",
        "{name: http, containerPort: 8080}",
        "listens on 8080",
    ),
    "k8s-ini": (
        "kubernetes.yaml",
        '["launchprov-reap", "/etc/launchprov/production.ini"',
        '["launchprov-reap", "/srv/launchprov/production.ini"',
        "launchprov-reap does not read",
    ),
    "haproxy-maxconn": (
        "haproxy.cfg",
        "rise 2 maxconn 16\n    server app1",
        "rise 2 maxconn 17\n    server app1",
        "HAProxy sends a process 17 requests at once (maxconn), production.ini serves 16",
    ),
    "haproxy-short-queue": (
        "haproxy.cfg",
        "timeout queue 30s",
        "timeout queue 1s",
        "timeout queue",
    ),
    "haproxy-long-queue": (
        "haproxy.cfg",
        "timeout queue 30s",
        "timeout queue 70s",
        "is not below its timeout client",
    ),
    "unknown-key": (
        "launchprov@.service",
        "# deploy/haproxy.cfg balances",
        "# launchprov.ec2.timeout, deploy/haproxy.cfg balances",
        "launchprov.ec2.timeout is not a setting",
    ),
    "image-command": (
        "Dockerfile",
        'CMD ["pserve", "/etc/launchprov/production.ini"]',
        'CMD ["pserve", "/srv/launchprov/production.ini"]',
        "not the Deployment's command",
    ),
    "k8s-command": (
        "kubernetes.yaml",
        'command: ["pserve", "/etc/launchprov/production.ini"]',
        'command: ["/usr/local/bin/pserve", "/etc/launchprov/production.ini"]',
        "not the Deployment's command",
    ),
    "image-venv": (
        "Dockerfile",
        "PATH=/opt/launchprov/venv/bin:$PATH",
        "PATH=/srv/launchprov/.venv/bin:$PATH",
        "different installations",
    ),
    "image-user": ("Dockerfile", "USER 10001:10001", "USER launchprov", "not a numeric"),
    "image-root": ("Dockerfile", "USER 10001:10001\n", "", "USER root is not"),
    "image-port": ("Dockerfile", "EXPOSE 6543", "EXPOSE 8080", "exposes 8080"),
    "image-healthcheck": (
        "Dockerfile",
        "127.0.0.1:6543/healthz",
        "127.0.0.1:6543/readyz",
        "HEALTHCHECK does not ask",
    ),
    "image-ini": (
        "Dockerfile",
        "COPY production.ini /etc/launchprov/production.ini",
        "COPY production.ini /etc/launchprov/launchprov.ini",
        "does not hold production.ini",
    ),
    "image-tag": (
        "Dockerfile",
        "-t registry.example.internal/launchprov:1.0.0 .",
        "-t launchprov:1.0.0 .",
        "the manifests run",
    ),
    "image-extra": (
        "Dockerfile",
        '"launchprov[tracing-otlp]"',
        '"launchprov[otlp]"',
        "otlp is not an extra",
    ),
    "image-context": (
        "Dockerfile.dockerignore",
        "!production.ini\n",
        "",
        "production.ini, which is not in the build context",
    ),
    "image-readme": (
        "Dockerfile",
        "COPY setup.py README.md ./",
        "COPY setup.py ./",
        "setup.py reads README.md",
    ),
}


@pytest.mark.parametrize("case", BROKEN, ids=str)
def test_a_broken_copy_of_the_deploy_files_is_caught(case, tmp_path):
    name, text, replacement, problem = BROKEN[case]
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    original = (copy / name).read_text()
    assert text in original, f"{case}: the text to break is not in {name}"
    (copy / name).write_text(original.replace(text, replacement))
    problems = deploy_problems(copy, ROOT / "production.ini")
    assert any(problem in found for found in problems), problems


@pytest.mark.parametrize(
    ("line", "replacement"),
    [
        ("threads = 17", "threads = 16"),
        ("launchprov.provider_lend_reserve = true", "launchprov.provider_lend_reserve = false"),
    ],
)
def test_production_ini_serving_other_than_haproxys_maxconn_is_caught(tmp_path, line, replacement):
    ini = tmp_path / "production.ini"
    text = (ROOT / "production.ini").read_text()
    assert line in text
    ini.write_text(text.replace(line, replacement))
    problems = deploy_problems(DEPLOY, ini)
    assert any("maxconn" in found for found in problems), problems


def test_production_ini_on_another_port_than_haproxys_is_caught(tmp_path):
    ini = tmp_path / "production.ini"
    ini.write_text(
        (ROOT / "production.ini").read_text().replace("http_port = 6543", "http_port = 8080")
    )
    assert any("8080" in found for found in deploy_problems(DEPLOY, ini))


def systemd_verify(units: Path) -> list[str]:
    """What `systemd-analyze verify` finds wrong in the units of ``units`` (the service as its
    instance on 6543), but the executables this machine lacks (/opt/launchprov/venv)."""
    shutil.copy(units / "launchprov@.service", units / "launchprov@6543.service")
    names = ["launchprov@6543.service", "launchprov-reap.service", "launchprov-reap.timer"]
    result = subprocess.run(
        [shutil.which("systemd-analyze"), "verify", "--man=no", *(f"./{n}" for n in names)],
        cwd=units,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = (result.stdout + result.stderr).splitlines()
    return [
        line for line in lines if line and not re.search(r"Command \S+ is not executable", line)
    ]


@pytest.mark.parametrize(
    "broken",
    [None, ("launchprov-reap.timer", "OnCalendar=*:0/5", "OnCalendar=every five minutes")],
    ids=["as-written", "bad-calendar"],
)
def test_systemd_accepts_the_units(broken, tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("needs systemd-analyze (Debian package systemd)")
    units = tmp_path / "units"
    shutil.copytree(DEPLOY, units)
    if broken:
        name, text, replacement = broken
        (units / name).write_text((units / name).read_text().replace(text, replacement))
    problems = systemd_verify(units)
    assert bool(problems) == bool(broken), problems
