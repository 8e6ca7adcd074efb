"""Real parts: a moto server process and launchprov under waitress (pserve), over real HTTP.

Nothing here is in-process: the service is started from an .ini the way production starts it
(``use = egg:launchprov``), and it reaches EC2 over loopback. Readiness is polled with a
deadline, never slept for.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.support import ec2_client, free_port, seed_account

BIN = Path(sys.executable).parent
START_DEADLINE = 30.0

MOTO_VALIDATION = {
    "MOTO_ENABLE_AMI_VALIDATION": "true",
    "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "true",
    "MOTO_ENABLE_KEYPAIR_VALIDATION": "true",
}


def wait_until(check, what: str, process: subprocess.Popen, deadline: float = START_DEADLINE):
    """Poll ``check()`` until it is true; fail if ``process`` exits or the deadline passes."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        if check():
            return
        time.sleep(0.05)  # polling interval, not synchronisation: the check decides
    raise TimeoutError(f"{what} not ready after {deadline} s")


def accepts_connections(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server process on 127.0.0.1 that validates like EC2; yields its endpoint URL."""
    port = free_port()
    env = dict(os.environ, **MOTO_VALIDATION)
    # moto logs every request: to a file, since a pipe nobody reads fills up and blocks it.
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: accepts_connections(port), "moto server", process)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(process)


@pytest.fixture(scope="session")
def moto_process() -> Iterator[str]:
    """A moto server process (:func:`moto_server`) for the whole session, holding the seed's key
    pair and group in us-east-1 from the start: a test that launches with the defaults must not
    depend on another test having asked for :func:`moto_client` first (the order differs when
    the suite runs on several workers)."""
    with moto_server() as endpoint:
        seed_account(ec2_client(endpoint))
        yield endpoint


@pytest.fixture
def moto_client(moto_process):
    """boto3 on the moto process, with the seed's key pair and group in us-east-1."""
    client = boto3.client("ec2", region_name="us-east-1", endpoint_url=moto_process)
    seed_account(client)
    return client


#: The logging sections of the generated .ini: launchprov's lines at INFO on stderr, which the
#: Service reads (the access lines among them).
LOGGING = """[loggers]
keys = root, launchprov

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARN
handlers = console

[logger_launchprov]
level = INFO
handlers =
qualname = launchprov

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)s [%(name)s][%(request_id)s][%(caller)s] %(message)s
"""


def service_ini(
    settings: dict[str, str], port: int, threads: int = 4, server: dict[str, str] | None = None
) -> str:
    """The .ini of a service on 127.0.0.1:``port`` with ``settings`` (authentication off and no
    drain delay unless they say otherwise), ``server``'s more waitress options, and
    :data:`LOGGING`. It is served as production.ini serves it (``egg:launchprov#waitress``)."""
    lines = ["[app:main]", "use = egg:launchprov"]
    settings = {"launchprov.auth.enabled": "false", "launchprov.drain_delay": "0", **settings}
    lines += [f"{key} = {value}" for key, value in settings.items()]
    lines += ["", "[server:main]", "use = egg:launchprov#waitress"]
    lines += [f"listen = 127.0.0.1:{port}", f"threads = {threads}"]
    lines += [f"{key} = {value}" for key, value in (server or {}).items()]
    lines += ["", LOGGING]
    return "\n".join(lines) + "\n"


class Service:
    """A launchprov process under waitress, started by pserve from a generated .ini.

    It is served as production.ini serves it (``egg:launchprov#waitress``, which drains on
    SIGTERM), with no drain delay unless ``settings`` give one: closing it takes no longer.
    """

    def __init__(
        self,
        settings: dict[str, str],
        env: dict[str, str] | None = None,
        threads: int = 4,
        server: dict[str, str] | None = None,
    ):
        """``server``: more waitress options for its [server:main]."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = tempfile.TemporaryDirectory()
        self.ini = Path(self._dir.name, "service.ini")
        self.ini.write_text(service_ini(settings, self.port, threads, server))
        self._env = dict(os.environ, **(env or {}))
        self._output: list[str] = []
        self.start()

    def start(self) -> None:
        """Start pserve on the .ini (again, once the process before has exited: same port)."""
        self.process = subprocess.Popen(
            [str(BIN / "pserve"), str(self.ini)],
            env=self._env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # Read all the service prints from the start: a full pipe would block the service.
        self._reader = threading.Thread(target=self._read_output, args=(self.process,), daemon=True)
        self._reader.start()
        try:
            wait_until(lambda: accepts_connections(self.port), "launchprov", self.process)
        except Exception as exc:
            stop(self.process)
            self._reader.join(timeout=5)
            raise RuntimeError(f"{exc}\n{self.output}") from None

    def _read_output(self, process: subprocess.Popen):
        for line in process.stdout:
            self._output.append(line)

    @property
    def output(self) -> str:
        return "".join(self._output)

    def request(
        self, method: str, path: str, body=None, content_type="application/json", headers=None
    ):
        """Send a request (with extra ``headers``); return (status, headers, parsed JSON body)."""
        data = None
        headers = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode() if content_type == "application/json" else body
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.headers, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, error.headers, json.loads(error.read())

    def launch(self, body):
        return self.request("PUT", "/v1/launch", body)

    def readyz(self, deadline: float = 10.0):
        """GET /readyz once the cloud's view is known: the probe lane answers the first probes
        after startup with a 503 "has not answered yet" while its own thread asks the cloud
        (launchprov.readiness), so this polls until the answer is another one."""
        give_up = time.monotonic() + deadline
        while True:
            status, headers, body = self.request("GET", "/readyz")
            waiting = status == 503 and "has not answered yet" in body.get("message", "")
            if not waiting or time.monotonic() > give_up:
                return status, headers, body
            time.sleep(0.05)  # a poll with a deadline: the lane's thread is asking the cloud

    def close(self):
        stop(self.process)
        self._dir.cleanup()


@contextlib.contextmanager
def running(
    settings: dict[str, str], env: dict[str, str] | None = None, threads: int = 4
) -> Iterator[Service]:
    service = Service(settings, env, threads)
    try:
        yield service
    finally:
        service.close()


def ec2_settings(endpoint: str, **extra) -> dict[str, str]:
    return {"launchprov.provider": "ec2", "launchprov.ec2.endpoint_url": endpoint, **extra}


def libcloud_settings(endpoint: str, **extra) -> dict[str, str]:
    host, port = endpoint.removeprefix("http://").split(":")
    return {
        "launchprov.provider": "libcloud",
        "launchprov.libcloud.driver": "ec2",
        "launchprov.libcloud.host": host,
        "launchprov.libcloud.port": port,
        "launchprov.libcloud.secure": "false",
        **extra,
    }


#: Credentials reach the service the way production gives them: the environment.
CREDENTIALS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "LAUNCHPROV_LIBCLOUD_KEY": "testing",
    "LAUNCHPROV_LIBCLOUD_SECRET": "testing",
}

ADAPTERS = {"ec2": ec2_settings, "libcloud": libcloud_settings}


@pytest.fixture(scope="module", params=list(ADAPTERS))
def service(request, moto_process) -> Iterator[Service]:
    """launchprov with each adapter, pointed at the moto process."""
    with running(ADAPTERS[request.param](moto_process), CREDENTIALS_ENV) as service:
        service.adapter = request.param
        yield service


class HangingEndpoint:
    """Accepts TCP connections and never answers: an endpoint that hangs."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(64)
        self.port = self.socket.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self.socket.accept()
                self.connections.append(connection)

    def close(self):
        self.socket.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def hanging_endpoint() -> Iterator[str]:
    endpoint = HangingEndpoint()
    try:
        yield f"http://127.0.0.1:{endpoint.port}"
    finally:
        endpoint.close()


@pytest.fixture
def refusing_endpoint() -> str:
    """An address where nothing listens: connections are refused."""
    return f"http://127.0.0.1:{free_port()}"
