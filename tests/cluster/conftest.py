"""A cluster of real parts: HAProxy (deploy/haproxy.cfg) in front of three launchprov processes
under waitress, sharing rate-limit counters in a redis-server, with a moto server behind them
(through a fault-injecting endpoint, tests/faulty_ec2.py, passing everything through unless a
test tells it otherwise).

``make test-cluster`` runs these tests; ``make test`` leaves them out (marker ``cluster``), so it
needs neither HAProxy nor Redis. Without the Debian packages ``haproxy`` or ``redis-server`` the
tests skip, naming the package. Every wait polls with a deadline.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from launchprov.auth import digest
from tests.e2e.conftest import Service, accepts_connections, moto_server, stop, wait_until
from tests.faulty_ec2 import FaultControl, serve
from tests.haproxy import HAPROXY_CFG, command, haproxy_env, server_statuses
from tests.redis_server import RedisServer
from tests.support import ec2_client, free_port, seed_account, serve_in_thread

DEADLINE = 30.0
#: Health checks in the cluster test: every 200 ms, two failures take a process out.
CHECK_INTERVAL = "200ms"
DRAIN_DELAY = "1"

OPS_TOKEN = "ops-token-0123456789"
LIMITED_TOKEN = "limited-token-9876543210"
TOKENS = f"ops {digest(OPS_TOKEN)}\nlimited {digest(LIMITED_TOKEN)}"
#: The rate limit the cluster shares: the caller "limited" may make 10 requests a minute.
LIMITED_PER_MINUTE = 10

CREDENTIALS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def production(section: str, keys: tuple[str, ...]) -> dict[str, str]:
    """Those keys of a section of production.ini, as written there."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(Path(__file__).resolve().parents[2] / "production.ini")
    return {key: parser[section][key] for key in keys}


#: production.ini's waitress options for the client address: X-Forwarded-For from HAProxy.
CLIENT_ADDRESS = production(
    "server:main", ("trusted_proxy", "trusted_proxy_headers", "clear_untrusted_proxy_headers")
)
#: production.ini's limit of failed authentications per client address.
FAILURE_LIMIT = production("app:main", ("launchprov.auth.failure_limit",))


def needs(package: str, binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"needs {binary}: apt-get install {package} (Debian package)")
    return path


class Answer:
    def __init__(self, status: int, headers, body):
        self.status, self.headers, self.body = status, headers, body

    @property
    def served_by(self) -> str | None:
        return self.headers.get("X-Served-By")


def call(
    url: str, method: str, path: str, token: str = OPS_TOKEN, body=None, headers=None
) -> Answer:
    """One request with its own connection; an error that is no HTTP answer is raised."""
    headers = {"Authorization": f"Bearer {token}", **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return Answer(response.status, response.headers, json.loads(response.read()))
    except urllib.error.HTTPError as error:
        text = error.read()
        with contextlib.suppress(ValueError):
            return Answer(error.code, error.headers, json.loads(text))
        return Answer(error.code, error.headers, text.decode(errors="replace"))


class HAProxy:
    """haproxy -db on deploy/haproxy.cfg, its addresses set through the environment."""

    def __init__(self, servers: list[str]):
        binary = needs("haproxy", "haproxy")
        self._dir = tempfile.TemporaryDirectory()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stats_socket = str(Path(self._dir.name, "stats.sock"))
        env = haproxy_env(self.port, self.stats_socket, servers, CHECK_INTERVAL)
        # A file, closed in close(): a pipe nobody reads would block HAProxy.
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            [binary, "-db", "-f", str(HAPROXY_CFG)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        # Its port answering is not enough (on a shared machine another process may hold it for
        # a moment): its stats socket must answer too, which only this HAProxy has.
        try:
            wait_until(self._answers, "haproxy", self.process, DEADLINE)
        except Exception as exc:
            raise RuntimeError(f"{exc}\n{self.output}") from None

    def _answers(self) -> bool:
        if not accepts_connections(self.port):
            return False
        try:
            self.stat()
        except OSError:
            return False
        return True

    def stat(self, backend: str = "launchprov") -> dict[str, str]:
        """Server name -> status (UP, DOWN, ...) of a backend, from `show stat`."""
        return server_statuses(self.stats_socket, backend)

    def command(self, line: str) -> str:
        return command(self.stats_socket, line)

    def wait_for(
        self,
        wanted: dict[str, str],
        deadline: float = DEADLINE,
        backend: str = "launchprov",
        exact: bool = False,
    ) -> None:
        """Poll `show stat` until every named server of ``backend`` has the wanted status
        (``exact``: that status and no transition, so not "UP 1/2", a server one failed check
        away from DOWN)."""
        end = time.monotonic() + deadline
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.process.returncode}\n{self.output}")
            current = self.stat(backend)
            if all(
                current.get(name) == status if exact else current.get(name, "").startswith(status)
                for name, status in wanted.items()
            ):
                return
            if time.monotonic() > end:
                raise TimeoutError(f"haproxy servers {current}, wanted {wanted}")
            time.sleep(0.05)  # polling interval: the stats decide

    @property
    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def close(self) -> None:
        stop(self.process)
        self.log.close()
        self._dir.cleanup()


class Cluster:
    def __init__(
        self,
        haproxy: HAProxy,
        services: list[Service],
        redis: RedisServer,
        ec2,
        faults: FaultControl,
    ):
        self.haproxy, self.services, self.redis, self.ec2 = haproxy, services, redis, ec2
        #: The endpoint between the processes and moto: faults.refuse(...) makes EC2 fail.
        self.faults = faults
        self.url = haproxy.url

    def call(
        self, method: str, path: str, token: str = OPS_TOKEN, body=None, headers=None
    ) -> Answer:
        return call(self.url, method, path, token, body, headers)

    def restart(self, name: str) -> None:
        """Start process ``name`` (app1, ...) again on its port, once it has exited, and wait
        until HAProxy sends it requests again."""
        service = self.services[int(name.removeprefix("app")) - 1]
        service.start()
        self.haproxy.wait_for({name: "UP"}, exact=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    needs("haproxy", "haproxy")
    with contextlib.ExitStack() as stack:
        redis = RedisServer()
        stack.callback(redis.close)
        redis.start()
        endpoint = stack.enter_context(moto_server())
        ec2 = ec2_client(endpoint)
        seed_account(ec2)
        faulty = serve(endpoint)
        serve_in_thread(faulty)
        stack.callback(faulty.server_close)
        stack.callback(faulty.shutdown)
        faulty_url = f"http://127.0.0.1:{faulty.server_address[1]}"
        settings = {
            "launchprov.provider": "ec2",
            "launchprov.ec2.endpoint_url": faulty_url,
            "launchprov.auth.enabled": "true",
            "launchprov.auth.tokens": TOKENS.replace("\n", "\n    "),
            "launchprov.ratelimit.limited": f"{LIMITED_PER_MINUTE}/minute",
            "launchprov.ratelimit.storage_uri": redis.uri,
            **FAILURE_LIMIT,
            # SIGTERM: failing checks for 1 s is enough for HAProxy's (2 failures, 200 ms apart).
            "launchprov.drain_delay": DRAIN_DELAY,
        }
        services = []
        for _ in range(3):
            service = Service(settings, CREDENTIALS_ENV, server=CLIENT_ADDRESS)
            stack.callback(service.close)
            services.append(service)
        haproxy = HAProxy([f"127.0.0.1:{service.port}" for service in services])
        stack.callback(haproxy.close)
        haproxy.wait_for({"app1": "UP", "app2": "UP", "app3": "UP"})
        yield Cluster(haproxy, services, redis, ec2, FaultControl(faulty_url))
