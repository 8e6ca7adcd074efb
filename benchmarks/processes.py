"""Child processes of the harness: the EC2 stand-in, moto, and WSGI apps under pserve.

Everything listens on 127.0.0.1 on a free port. Servers are started the way production starts
launchprov (``pserve`` on a generated .ini), readiness is polled against a deadline, output goes
to a log file (a pipe nobody reads could fill and stall a server), and every process is stopped
by :class:`Processes` even when a benchmark fails.
"""

from __future__ import annotations

import configparser
import contextlib
import hashlib
import http.client
import io
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

#: The interpreter that runs the harness, and the scripts installed next to it (``pserve``).
BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent
START_DEADLINE = 30.0
STOP_DEADLINE = 10.0

#: What every child gets: fake credentials, no instance-metadata look-ups, the repo importable
#: (pserve's own sys.path does not hold the working directory; the reference apps live here).
CHILD_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_DEFAULT_REGION": "us-east-1",
    "PYTHONPATH": str(REPO),
}
#: Left unset for moto: validation slows every call and ami-760aaa0f is known to moto anyway.
MOTO_UNSET = (
    "MOTO_ENABLE_AMI_VALIDATION",
    "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION",
    "MOTO_ENABLE_KEYPAIR_VALIDATION",
)

LAUNCH_BODY = b'{"ami": "ami-760aaa0f", "instance_type": "t2.micro"}'
#: The harness's caller name and bearer token (minted per run, like `launchprov-token bench`).
CALLER = "bench"
TOKEN = secrets.token_urlsafe(32)
#: Every launch request carries the token; the reference apps ignore it.
LAUNCH_HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}


def auth_env() -> dict[str, str]:
    """The caller's token digest where production puts it: LAUNCHPROV_AUTH_TOKENS.

    Empty when this launchprov has no authentication (its settings would refuse the variable).
    """
    from launchprov.settings import BY_KEY

    setting = BY_KEY.get("launchprov.auth.tokens")
    if setting is None:
        return {}
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    return {setting.env_var: f"{CALLER} {digest}"}


def child_env() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "LAUNCHPROV_", "MOTO_"))
    }
    env.update(CHILD_ENV)
    env.update(auth_env())
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accepts_connections(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


class Broken(RuntimeError):
    """A server that answers, but with a 500: waiting longer will not help."""


def launch_once(port: int, timeout: float = 5.0) -> bool:
    """One ``PUT /v1/launch`` on a fresh connection: True on a 200 holding an id.

    Raises Broken on a 500 (the server is up, and its code fails).
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("PUT", "/v1/launch", LAUNCH_BODY, LAUNCH_HEADERS)
        response = connection.getresponse()
        body = response.read()
    except OSError:
        return False
    finally:
        connection.close()
    if response.status == 500:
        raise Broken(f"PUT /v1/launch answered 500: {body[:300]!r}")
    return response.status == 200 and body.startswith(b'["i-')


def ec2_answers(port: int) -> bool:
    """The readiness call of an EC2 endpoint: DescribeInstances answers 200."""
    return answers_ok(
        port,
        "/",
        method="POST",
        body=b"Action=DescribeInstances&Version=2016-11-15",
        headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            # moto's server routes a request by the service of its credential scope.
            "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ec2/"
            "aws4_request, SignedHeaders=host, Signature=0",
        },
    )


def answers_ok(
    port: int,
    path: str,
    timeout: float = 2,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> bool:
    """Whether ``method path`` on 127.0.0.1:``port`` answers 200 (False when it cannot
    connect)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        response.read()
        return response.status == 200
    except OSError:
        return False
    finally:
        connection.close()


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB (VmRSS of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Server:
    """One child process serving HTTP on 127.0.0.1:``port``."""

    def __init__(self, name: str, argv: list[str], port: int, log_dir: Path, env=None):
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_dir / f"{name}-{port}.log"
        self.is_ready: Callable[[], bool] = lambda: accepts_connections(port)
        self.startup = 0.0  # seconds from the start to the first good answer (Processes.ready)
        self._log = self.log_path.open("w")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            argv,
            cwd=REPO,
            env=env or child_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_until(self, check: Callable[[], bool], deadline: float = START_DEADLINE) -> float:
        """Poll ``check`` until true; return seconds since the process started.

        Fails when the process exits or the deadline passes. The interval is short because
        startup time is one of the figures.
        """
        end = time.perf_counter() + deadline
        while time.perf_counter() < end:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                ready = check()
            except Broken as exc:
                raise RuntimeError(f"{self.name}: {exc}\n{self.output()}") from None
            if ready:
                return time.perf_counter() - self.started
            time.sleep(0.005)  # polling interval; the check decides
        raise TimeoutError(f"{self.name} not ready after {deadline} s:\n{self.output()}")

    def output(self) -> str:
        """The end of the process's output, for error messages."""
        return self.output_all()[-4000:]

    def output_all(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def service_ini(
    app: dict[str, str] | None,
    port: int,
    threads: int,
    sections: dict[str, dict[str, str]] | None = None,
    fresh_app: bool = False,
) -> str:
    """production.ini with its [server:main] on 127.0.0.1:``port`` with ``threads`` threads.

    Everything else (waitress limits, logging) stays as production.ini has it, so the service
    is measured as it is deployed. ``app`` holds settings that replace or add to [app:main]'s
    (all of them with ``fresh_app``: the reference apps). ``sections`` alters other sections
    (``{"logger_launchprov": {"level": "WARN"}}``).
    """
    ini = configparser.RawConfigParser()  # raw: %(asctime)s stays for the logging config
    ini.optionxform = str  # keys as written
    ini.read(REPO / "production.ini")
    # Unlimited, as before production.ini had its rate limits: the harness is one caller.
    for key in ("launchprov.ratelimit.default", "launchprov.ratelimit.launch.default"):
        ini.set("app:main", key, "")
    app = app or {}
    if fresh_app:
        ini.remove_section("app:main")
        ini.add_section("app:main")
    if not fresh_app:  # stopped at once: no balancer to take it out first
        ini.set("app:main", "launchprov.drain_delay", "0")
    for key, value in app.items():
        ini.set("app:main", key, value)
    for key in ("host", "get port"):  # production.ini's port is pserve's http_port
        ini.remove_option("server:main", key)
    ini.set("server:main", "listen", f"127.0.0.1:{port}")
    ini.set("server:main", "threads", str(threads))
    for section, values in (sections or {}).items():
        for key, value in values.items():
            ini.set(section, key, value)
    text = io.StringIO()
    ini.write(text)
    return text.getvalue()


class Processes:
    """Starts the harness's servers and stops every one of them on exit."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.servers: list[Server] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop_all()

    def stop_all(self) -> None:
        while self.servers:
            self.servers.pop().stop()

    def stop(self, server: Server) -> None:
        if server in self.servers:
            self.servers.remove(server)
        server.stop()

    def start(self, name: str, argv: list[str], port: int, env=None) -> Server:
        """Any server: ``argv`` must make it listen on 127.0.0.1:``port``."""
        server = Server(name, argv, port, self.log_dir, env)
        self.servers.append(server)
        return server

    def standin(self, delay_ms: float = 0.0, kind: str = "asyncio") -> Server:
        """The EC2 stand-in, ready (DescribeInstances answers)."""
        port = free_port()
        argv = [sys.executable, "-m", "benchmarks.standin", "--port", str(port)]
        argv += ["--delay-ms", str(delay_ms), "--server", kind]
        server = self.start(f"standin-{kind}-{delay_ms:g}ms", argv, port)
        server.wait_until(lambda: ec2_answers(port))
        return server

    def moto(self) -> Server:
        """A moto server (``python -m moto.server``), ready."""
        port = free_port()
        env = {key: value for key, value in child_env().items() if key not in MOTO_UNSET}
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        server = self.start("moto", argv, port, env)
        server.wait_until(lambda: ec2_answers(port))
        return server

    def pserve(
        self,
        name: str,
        app: dict[str, str],
        threads: int,
        ready: Callable[[int], bool] | None = None,
        sections: dict[str, dict[str, str]] | None = None,
        fresh_app: bool = False,
        wait: bool = True,
        env: dict[str, str] | None = None,
    ) -> Server:
        """``pserve`` on production.ini altered by ``app`` (see service_ini); ready when ``ready``.

        ``ready`` defaults to "a launch answers 200". Returns the server with ``startup``, the
        seconds from process start to that first successful answer. With ``wait=False`` it
        returns at once: :meth:`ready` waits for servers started together. ``env`` adds to or
        replaces the variables of :func:`child_env` (more callers' tokens, a signing key).
        """
        port = free_port()
        ini = self.log_dir / f"{name}-{port}.ini"
        ini.write_text(service_ini(app, port, threads, sections, fresh_app))
        argv = [str(BIN / "pserve"), str(ini)]
        server = self.start(name, argv, port, {**child_env(), **env} if env else None)
        check = ready or launch_once
        server.is_ready = lambda: accepts_connections(port) and check(port)
        if wait:
            self.ready(server)
        return server

    @staticmethod
    def ready(*servers: Server) -> tuple[Server, ...]:
        """Wait until each of ``servers`` (from :meth:`pserve`) answers; set its ``startup``.

        Servers started together start in parallel: a part that needs several waits once.
        """
        for server in servers:
            server.startup = server.wait_until(server.is_ready)
        return servers

    def launchprov(
        self,
        endpoint: str,
        threads: int,
        name: str = "launchprov",
        settings: dict[str, str] | None = None,
        sections: dict[str, dict[str, str]] | None = None,
        wait: bool = True,
        env: dict[str, str] | None = None,
        source: Path | None = None,
    ) -> Server:
        """launchprov as production runs it, its EC2 endpoint at ``endpoint``.

        ``settings`` replace or add to production.ini's [app:main] (a variant's provider),
        ``sections`` alter its other sections (a variant's logging); ``wait``, ``env``: see
        pserve. ``source``: a directory holding another ``launchprov`` package (an earlier
        commit's, from ``git archive``), imported instead of this checkout's.
        """
        app = {"launchprov.ec2.endpoint_url": endpoint, **(settings or {})}
        env = dict(env or {})
        if source is not None:
            env["PYTHONPATH"] = f"{source}{os.pathsep}{REPO}"
        return self.pserve(name, app, threads, sections=sections, wait=wait, env=env or None)

    def reference(
        self, factory: str, threads: int, endpoint: str = "", wait: bool = True
    ) -> Server:
        """A reference app of benchmarks.apps (``bare_json`` or ``bare_pyramid``) under pserve."""
        app = {
            "use": f"call:benchmarks.apps:{factory}",
            "endpoint_url": endpoint,
            "max_pool_connections": str(threads),  # as production.ini sizes launchprov's
        }
        return self.pserve(factory, app, threads, fresh_app=True, wait=wait)

    def launchprov_before(self, endpoint: str, threads: int, wait: bool = True) -> Server:
        """launchprov with the changes of benchmarks.variants undone, otherwise as production."""
        settings = {"use": "call:benchmarks.variants:launchprov_before"}
        return self.launchprov(endpoint, threads, name="before", settings=settings, wait=wait)
