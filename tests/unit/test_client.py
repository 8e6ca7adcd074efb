"""launchprov.client at unit level: error mapping, back-off, what is retried and what is not.

The service is replaced by httpx.MockTransport handlers; the end-to-end tests run the same client
against a real service process (tests/e2e/test_client_e2e.py).
"""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from launchprov import client as client_module
from launchprov.client import (
    BadRequest,
    Client,
    Conflict,
    ConnectionFailed,
    Forbidden,
    LaunchprovError,
    NotFound,
    NotSupported,
    ProviderFailed,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    WaitFailed,
    backoff_delay,
    parse_retry_after,
)
from launchprov.settings import CLIENT_ENV_VARS
from tests.support import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]


def error_body(status: int, message: str = "no", provider: dict | None = None) -> dict:
    body = {
        "status": status,
        "error": httpx.codes.get_reason_phrase(status),
        "message": message,
        "details": [{"location": "body", "name": "ami", "description": "Required"}],
        "request_id": "r-1",
    }
    if provider is not None:
        body["provider"] = provider
    return body


def provider(code: str, retryable: bool) -> dict:
    return {"name": "ec2", "code": code, "message": f"{code} said EC2", "retryable": retryable}


RETRYABLE_408 = error_body(408, "the ec2 provider failed", provider("RequestLimitExceeded", True))
FINAL_408 = error_body(408, "the ec2 provider failed", provider("InvalidAMIID.NotFound", False))


class Recorder:
    """A MockTransport handler answering from a script, recording every request."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def reply(status: int, body=None, headers=None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def make_client(handler, **options) -> tuple[Client, list[float]]:
    """A client on ``handler`` whose waits are recorded instead of slept, with maximal jitter."""
    client = Client("http://launchprov.test", transport=httpx.MockTransport(handler), **options)
    waits: list[float] = []
    client._sleep = waits.append
    client._jitter = lambda low, high: high
    return client, waits


# --- Errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (408, ProviderFailed),
        (409, Conflict),
        (429, RateLimited),
        (501, NotSupported),
        (503, ServiceUnavailable),
        (500, LaunchprovError),
        (413, LaunchprovError),
    ],
)
def test_each_status_raises_its_exception_carrying_the_body(status, cls):
    body = error_body(status, "what went wrong", provider("X", False) if status == 408 else None)
    client, _ = make_client(Recorder(reply(status, body)), retries=0)
    with pytest.raises(LaunchprovError) as caught:
        client.describe("i-1")
    assert type(caught.value) is cls
    error = caught.value
    assert error.status == status and error.body == body
    assert error.message == "what went wrong" and error.request_id == "r-1"
    assert error.details == body["details"]
    assert str(error).startswith(f"{status} {body['error']}: what went wrong")


def test_a_provider_failure_carries_the_providers_code_and_whether_a_retry_helps():
    client, _ = make_client(Recorder(reply(408, FINAL_408)))
    with pytest.raises(ProviderFailed) as caught:
        client.launch("ami-12345678", "t2.micro")
    assert caught.value.code == "InvalidAMIID.NotFound" and caught.value.retryable is False
    assert "InvalidAMIID.NotFound" in str(caught.value)
    assert caught.value.provider["name"] == "ec2"


def test_an_answer_that_is_not_the_error_body_still_raises_with_its_text():
    page = httpx.Response(502, text="<html>Bad Gateway from the proxy</html>")
    client, _ = make_client(Recorder(page), retries=0)
    with pytest.raises(LaunchprovError) as caught:
        client.describe("i-1")
    assert caught.value.status == 502
    assert "Bad Gateway from the proxy" in caught.value.message


# --- Back-off -------------------------------------------------------------------------------


def test_back_off_doubles_up_to_its_cap_with_full_jitter():
    top = lambda low, high: high  # noqa: E731
    assert [backoff_delay(n, None, 0.5, 4.0, top) for n in range(6)] == [0.5, 1, 2, 4, 4, 4]
    assert backoff_delay(3, None, 0.5, 4.0, lambda low, high: low) == 0
    draws = []
    backoff_delay(2, None, 0.5, 4.0, lambda low, high: draws.append((low, high)) or 0.0)
    assert draws == [(0.0, 2.0)]


def test_back_off_never_comes_back_sooner_than_retry_after():
    assert backoff_delay(0, 1.0, 0.5, 30, lambda low, high: low) == 1.0
    assert backoff_delay(0, 1.0, 0.5, 30, lambda low, high: high) == 1.5


def test_retry_after_in_seconds_or_as_an_http_date():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= parse_retry_after(later) <= 30
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(past) == 0


# --- Retries --------------------------------------------------------------------------------


def test_a_retryable_408_is_retried_after_retry_after_with_the_same_idempotency_key():
    recorder = Recorder(
        reply(408, RETRYABLE_408, {"Retry-After": "1"}),
        reply(408, RETRYABLE_408, {"Retry-After": "1"}),
        reply(200, ["i-0123456789abcdef0"]),
    )
    client, waits = make_client(recorder, retries=3, backoff=0.5)
    assert client.launch("ami-760aaa0f", "t2.micro", min_count=1) == ["i-0123456789abcdef0"]
    keys = {request.headers["Idempotency-Key"] for request in recorder.requests}
    assert len(recorder.requests) == 3 and len(keys) == 1
    assert waits == [1.5, 2.0]  # Retry-After, plus the back-off's jitter (0.5, then 1)
    assert all(json.loads(r.content)["min_count"] == 1 for r in recorder.requests)


def test_each_launch_has_a_fresh_key_and_a_given_client_token_is_the_key():
    recorder = Recorder(reply(200, ["i-1"]))
    client, _ = make_client(recorder)
    client.launch("ami-760aaa0f", "t2.micro")
    client.launch("ami-760aaa0f", "t2.micro")
    client.launch("ami-760aaa0f", "t2.micro", client_token="deploy-42")
    first, second, third = (request.headers["Idempotency-Key"] for request in recorder.requests)
    assert first != second and third == "deploy-42"
    assert "client_token" not in json.loads(recorder.requests[2].content)


def test_a_failed_launch_tells_its_client_token_for_a_later_retry():
    recorder = Recorder(reply(408, RETRYABLE_408))
    client, _ = make_client(recorder, retries=1)
    with pytest.raises(ProviderFailed) as caught:
        client.launch("ami-760aaa0f", "t2.micro")
    assert caught.value.retryable and len(recorder.requests) == 2
    assert caught.value.client_token == recorder.requests[0].headers["Idempotency-Key"]


@pytest.mark.parametrize(
    "answer",
    [
        reply(408, FINAL_408),
        reply(400, error_body(400)),
        reply(401, error_body(401)),
        reply(403, error_body(403)),
        reply(404, error_body(404)),
        reply(409, error_body(409)),
        reply(500, error_body(500)),
    ],
    ids=["408-final", "400", "401", "403", "404", "409", "500"],
)
def test_what_a_retry_cannot_mend_is_raised_at_once(answer):
    recorder = Recorder(answer)
    client, waits = make_client(recorder, retries=5)
    with pytest.raises(LaunchprovError):
        client.launch("ami-760aaa0f", "t2.micro")
    assert len(recorder.requests) == 1 and waits == []


@pytest.mark.parametrize(
    "answer",
    [
        reply(429, error_body(429), {"Retry-After": "2"}),
        reply(503, error_body(503), {"Retry-After": "2"}),
        reply(408, RETRYABLE_408, {"Retry-After": "2"}),
        reply(502, None),
        reply(504, None),
    ],
    ids=["429", "503", "408-retryable", "502", "504"],
)
def test_retries_stop_after_retries_and_raise_the_last_error(answer):
    recorder = Recorder(answer)
    client, waits = make_client(recorder, retries=2)
    with pytest.raises(LaunchprovError) as caught:
        client.describe("i-1")
    assert caught.value.status == answer.status_code
    assert len(recorder.requests) == 3 and len(waits) == 2


def test_a_retry_after_longer_than_max_backoff_is_not_waited_for():
    recorder = Recorder(reply(429, error_body(429), {"Retry-After": "120"}))
    client, waits = make_client(recorder, retries=3, max_backoff=30)
    with pytest.raises(RateLimited) as caught:
        client.launch("ami-760aaa0f", "t2.micro")
    assert caught.value.retry_after == 120 and len(recorder.requests) == 1 and waits == []


def test_connection_failures_are_retried_then_raised_as_connection_failed():
    recorder = Recorder(httpx.ConnectError("refused"))
    client, waits = make_client(recorder, retries=2)
    with pytest.raises(ConnectionFailed) as caught:
        client.instances(state="running").__next__()
    assert caught.value.status is None and "refused" in str(caught.value)
    assert len(recorder.requests) == 3 and waits == [0.5, 1.0]


def test_a_connection_error_then_success_answers():
    recorder = Recorder(httpx.ConnectError("refused"), reply(200, ["i-1"]))
    client, _ = make_client(recorder)
    assert client.launch("ami-760aaa0f", "t2.micro") == ["i-1"]
    assert len({r.headers["Idempotency-Key"] for r in recorder.requests}) == 1


def test_a_reboot_is_not_sent_again_once_it_may_have_arrived():
    broken = Recorder(httpx.ReadTimeout("no answer"))
    client, _ = make_client(broken, retries=3)
    with pytest.raises(ConnectionFailed):
        client.reboot("i-1")
    assert len(broken.requests) == 1
    # ... but a stop may be: stopping twice stops once.
    broken = Recorder(httpx.ReadTimeout("no answer"), reply(200, {"id": "i-1"}))
    client, _ = make_client(broken, retries=3)
    assert client.stop("i-1") == {"id": "i-1"}
    # A refused connection never reached the service: a reboot is retried then.
    refused = Recorder(httpx.ConnectError("refused"), reply(200, {"id": "i-1"}))
    client, _ = make_client(refused, retries=3)
    assert client.reboot("i-1") == {"id": "i-1"} and len(refused.requests) == 2


# --- Requests -------------------------------------------------------------------------------


def test_base_url_and_token_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("LAUNCHPROV_URL", "http://from-env.test:7000/")
    monkeypatch.setenv("LAUNCHPROV_TOKEN", "secret-token")
    recorder = Recorder(reply(200, {"id": "i-1"}))
    client = Client(transport=httpx.MockTransport(recorder))
    client.describe("i-1")
    (request,) = recorder.requests
    assert str(request.url) == "http://from-env.test:7000/v1/instances/i-1"
    assert request.headers["Authorization"] == "Bearer secret-token"
    explicit = Recorder(reply(200, {"id": "i-1"}))
    Client("http://given.test", token="", transport=httpx.MockTransport(explicit)).describe("i-1")
    assert explicit.requests[0].url.host == "given.test"
    assert "Authorization" not in explicit.requests[0].headers


def test_a_url_without_a_scheme_is_http(monkeypatch):
    explicit = Recorder(reply(200, {"id": "i-1"}))
    Client("localhost:6543/", transport=httpx.MockTransport(explicit)).describe("i-1")
    assert str(explicit.requests[0].url) == "http://localhost:6543/v1/instances/i-1"
    monkeypatch.setenv("LAUNCHPROV_URL", "from-env.test:7000")
    from_env = Recorder(reply(200, {"id": "i-1"}))
    client = Client(transport=httpx.MockTransport(from_env))
    client.describe("i-1")
    assert client.base_url == "http://from-env.test:7000"
    assert str(from_env.requests[0].url) == "http://from-env.test:7000/v1/instances/i-1"
    # A scheme the caller gave is kept.
    secure = Recorder(reply(200, {"id": "i-1"}))
    Client("https://given.test", transport=httpx.MockTransport(secure)).describe("i-1")
    assert str(secure.requests[0].url) == "https://given.test/v1/instances/i-1"


def test_the_service_ignores_the_clients_variables():
    assert {client_module.URL_ENV, client_module.TOKEN_ENV} == CLIENT_ENV_VARS


def test_instances_walks_every_page_with_the_filters_on_each():
    pages = [
        {"instances": [{"id": "i-1"}, {"id": "i-2"}], "next": "tok/1+"},
        {"instances": [{"id": "i-3"}], "next": "tok2"},
        {"instances": [], "next": None},
    ]
    recorder = Recorder(*(reply(200, page) for page in pages))
    client, _ = make_client(recorder)
    found = client.instances(state=["running", "stopped"], tags={"role": "web"}, limit=2)
    assert [item["id"] for item in found] == ["i-1", "i-2", "i-3"]
    queries = [request.url.params for request in recorder.requests]
    assert [q.get("next") for q in queries] == [None, "tok/1+", "tok2"]
    for query in queries:
        assert query.get_list("state") == ["running", "stopped"]
        assert query["tag:role"] == "web" and query["limit"] == "2"


def test_instance_ids_are_escaped_in_paths():
    recorder = Recorder(reply(200, {"id": "x"}))
    client, _ = make_client(recorder)
    client.terminate("a/b?c", region="eu-west-1")
    (request,) = recorder.requests
    assert request.method == "DELETE"
    assert request.url.raw_path == b"/v1/instances/a%2Fb%3Fc?region=eu-west-1"


def test_preflight_posts_the_launch_body():
    answer = {"would_launch": True, "checks": [{"name": "ami", "ok": True}]}
    recorder = Recorder(reply(200, answer))
    client, _ = make_client(recorder)
    assert client.preflight("ami-760aaa0f", "t2.micro", max_count=2) == answer
    (request,) = recorder.requests
    assert (request.method, request.url.path) == ("POST", "/v1/launch/preflight")
    assert json.loads(request.content) == {
        "ami": "ami-760aaa0f",
        "instance_type": "t2.micro",
        "max_count": 2,
    }


# --- Gateway errors, counted on the wire -----------------------------------------------------


class Gateway:
    """A stand-in gateway on 127.0.0.1 that answers every request with ``status`` (an HTML
    page, as a load balancer does) and records each one it receives."""

    def __init__(self, status: int, hold: float = 0.0):
        self.status = status
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        #: Set at close: until then (at most ``hold`` seconds) an answer is held back.
        self.closing = threading.Event()
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                gateway.requests.append((self.command, self.path, dict(self.headers.items())))
                gateway.closing.wait(hold)
                page = f"<html><body>{status}</body></html>".encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            do_GET = do_PUT = do_POST = do_DELETE = answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        serve_in_thread(self.server)

    def close(self):
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(params=[502, 504])
def gateway(request):
    gateway = Gateway(request.param)
    yield gateway
    gateway.close()


def wire_client(gateway: Gateway) -> Client:
    return Client(gateway.url, retries=2, backoff=0)  # the back-off is tested above


def test_a_reboot_after_a_gateway_error_is_sent_exactly_once(gateway):
    with wire_client(gateway) as client, pytest.raises(LaunchprovError) as caught:
        client.reboot("i-1")
    assert caught.value.status == gateway.status
    # The gateway may have passed it on: a second reboot would reboot the instance again.
    assert [(method, path) for method, path, _ in gateway.requests] == [
        ("POST", "/v1/instances/i-1/reboot")
    ]


@pytest.mark.parametrize(
    ("call", "method"),
    [
        (lambda client: client.describe("i-1"), "GET"),
        (lambda client: client.stop("i-1"), "POST"),
        (lambda client: client.terminate("i-1"), "DELETE"),
        (lambda client: client.launch("ami-760aaa0f", "t2.micro", client_token="tok-1"), "PUT"),
        (lambda client: client.launch("ami-760aaa0f", "t2.micro"), "PUT"),
    ],
    ids=["describe", "stop", "terminate", "launch-with-token", "launch"],
)
def test_an_idempotent_call_after_a_gateway_error_is_sent_again(gateway, call, method):
    with wire_client(gateway) as client, pytest.raises(LaunchprovError):
        call(client)
    assert [seen[0] for seen in gateway.requests] == [method] * 3  # once, and two retries
    if method == "PUT":
        # What makes a launch idempotent: every attempt carries the same Idempotency-Key.
        keys = {headers.get("Idempotency-Key") for _, _, headers in gateway.requests}
        assert len(keys) == 1 and None not in keys


def test_every_request_says_what_it_accepts_and_who_sends_it(gateway):
    with Client(gateway.url, token="t-1", retries=0) as client, pytest.raises(LaunchprovError):
        client.describe("i-1")
    ((_, _, sent),) = gateway.requests
    headers = {name.lower(): value for name, value in sent.items()}  # names: any case
    assert headers["accept"] == "application/json"
    assert headers["user-agent"] == "launchprov-client"
    assert headers["authorization"] == "Bearer t-1"


def test_an_answer_later_than_the_time_out_is_no_answer():
    slow = Gateway(502, hold=2.0)  # it would answer after 2 s; httpx's default waits 5
    try:
        client = Client(slow.url, timeout=0.2, retries=0)
        with client, pytest.raises(ConnectionFailed, match="ReadTimeout"):
            client.describe("i-1")
    finally:
        slow.close()
    assert len(slow.requests) == 1


# --- Waiting --------------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def waiting_client(pages):
    recorder = Recorder(*(reply(200, {"instances": page, "next": None}) for page in pages))
    client, _ = make_client(recorder)
    clock = FakeClock()
    client._clock, client._sleep = clock, clock.sleep
    return client, recorder, clock


def test_wait_polls_until_every_instance_is_in_the_state():
    client, recorder, clock = waiting_client(
        [
            [{"id": "i-1", "state": "pending"}],
            [{"id": "i-1", "state": "running"}, {"id": "i-2", "state": "pending"}],
            [{"id": "i-2", "state": "running"}, {"id": "i-1", "state": "running"}],
        ]
    )
    seen = []
    result = client.wait(["i-1", "i-2"], interval=5, on_poll=seen.append)
    assert [item["id"] for item in result] == ["i-1", "i-2"]
    assert [[item["state"] for item in poll] for poll in seen] == [
        ["pending", None],
        ["running", "pending"],
        ["running", "running"],
    ]
    assert clock.now == 10 and len(recorder.requests) == 3
    assert recorder.requests[0].url.params.get_list("id") == ["i-1", "i-2"]


def test_wait_polls_every_2_s_for_at_most_300_s_unless_told():
    client, recorder, clock = waiting_client([[{"id": "i-1", "state": "pending"}]])
    with pytest.raises(WaitFailed, match=r"^not running after 300 s: i-1 \(pending\)$"):
        client.wait("i-1")
    assert clock.now == 300 and len(recorder.requests) == 151  # at 0, 2, 4, ... and 300 s


def test_wait_gives_up_at_the_time_out_naming_the_late_instances():
    client, _, clock = waiting_client([[{"id": "i-1", "state": "pending"}]])
    with pytest.raises(WaitFailed) as caught:
        client.wait("i-1", timeout=7, interval=2)
    assert clock.now == 7
    assert "i-1 (pending)" in str(caught.value) and caught.value.instances[0]["state"] == "pending"


def test_wait_fails_at_once_when_the_state_can_no_longer_be_reached():
    client, recorder, _ = waiting_client([[{"id": "i-1", "state": "terminated"}]])
    with pytest.raises(WaitFailed, match="i-1 will never be running"):
        client.wait(["i-1"])
    assert len(recorder.requests) == 1
    client, _, _ = waiting_client([[{"id": "i-1", "state": "terminated"}]])
    assert client.wait(["i-1"], state="terminated")[0]["state"] == "terminated"


# --- Packaging ------------------------------------------------------------------------------


def test_the_client_and_its_libraries_are_an_extra_not_the_servers():
    requires = metadata.requires("launchprov")
    for library in ("httpx", "click", "rich"):
        lines = [line for line in requires if line.startswith(library)]
        assert lines and all("extra ==" in line for line in lines)  # never the server's
        assert any('extra == "client"' in line for line in lines)
    scripts = {ep.name: ep.value for ep in metadata.entry_points(group="console_scripts")}
    assert scripts["launchprov"] == "launchprov.cli:main"
    assert scripts["launchprov-token"] == "launchprov.scripts.token:main"


def test_the_package_ships_its_py_typed_marker(tmp_path):
    """PEP 561: a build of the package holds launchprov/py.typed."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "launchprov", source / "launchprov", ignore=shutil.ignore_patterns("__pycache__")
    )
    build = tmp_path / "lib"
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(build)],
        cwd=source,
        check=True,
        capture_output=True,
    )
    assert (build / "launchprov" / "py.typed").is_file()
    assert (build / "launchprov" / "client.py").is_file()


def test_the_client_and_the_command_line_load_no_server_library():
    """A caller's process (and the command line's start-up) carries no web framework or SDK."""
    code = (
        "import sys, launchprov.client, launchprov.cli\n"
        "heavy = {'pyramid', 'webob', 'boto3', 'botocore', 'libcloud', 'colander', 'moto'}\n"
        "print(','.join(sorted({name.split('.')[0] for name in sys.modules} & heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""


# --- What a caller reads off an error (mutation testing, issue 20) ---------------------------


def test_an_error_body_without_a_message_or_request_id_falls_back_to_error_and_the_header():
    # HAProxy's own 400 says request_id null; its X-Request-ID header (when set) is the id.
    body = {"status": 400, "error": "Bad Request", "request_id": None}
    client, _ = make_client(Recorder(reply(400, body, {"X-Request-ID": "r-haproxy"})))
    with pytest.raises(BadRequest) as caught:
        client.describe("i-1")
    error = caught.value
    assert error.message == "Bad Request" and error.request_id == "r-haproxy"
    assert error.details == [] and error.client_token is None  # only a launch has a token
    assert str(error) == "400 Bad Request: Bad Request"
    # Neither message nor error: the status alone.
    client, _ = make_client(Recorder(reply(500, {})), retries=0)
    with pytest.raises(LaunchprovError) as caught:
        client.describe("i-1")
    assert caught.value.message == "" and str(caught.value) == "500: "
    assert caught.value.request_id is None and caught.value.retry_after is None


def test_a_provider_failure_reads_as_one_line_with_the_providers_message():
    client, _ = make_client(Recorder(reply(408, FINAL_408)))
    with pytest.raises(ProviderFailed) as caught:
        client.describe("i-1")
    assert str(caught.value) == (
        "408 Request Timeout: the ec2 provider failed (InvalidAMIID.NotFound said EC2)"
    )
    # A 408 without a provider part (HAProxy's own, from another version) is still one line.
    bare = error_body(408, "the request did not arrive in time")
    client, _ = make_client(Recorder(reply(408, bare)))
    with pytest.raises(ProviderFailed) as caught:
        client.describe("i-1")
    assert str(caught.value) == "408 Request Timeout: the request did not arrive in time"
    assert caught.value.provider == {} and caught.value.code is None
    assert caught.value.retryable is False


def test_a_proxys_page_becomes_an_error_body_of_the_same_shape():
    page = httpx.Response(
        502, text="  <html>Bad Gateway from the proxy</html>\n", headers={"X-Request-ID": "r-lb"}
    )
    client, _ = make_client(Recorder(page), retries=0)
    with pytest.raises(LaunchprovError) as caught:
        client.describe("i-1")
    assert caught.value.body == {
        "status": 502,
        "error": "Bad Gateway",
        "message": "<html>Bad Gateway from the proxy</html>",
        "details": [],
    }
    assert caught.value.request_id == "r-lb"
    # An empty page: the reason phrase is the message. A long one: its first 500 characters.
    client, _ = make_client(Recorder(httpx.Response(504, text="")), retries=0)
    with pytest.raises(LaunchprovError) as caught:
        client.describe("i-1")
    assert str(caught.value) == "504 Gateway Timeout: Gateway Timeout"
    client, _ = make_client(Recorder(httpx.Response(500, text="x" * 600)), retries=0)
    with pytest.raises(LaunchprovError) as caught:
        client.describe("i-1")
    assert caught.value.message == "x" * 500


def test_retry_after_with_spaces_or_a_date_without_a_zone():
    assert parse_retry_after(" 3 ") == 3.0 and parse_retry_after("") is None
    # RFC 5322's "-0000" (no zone known) reads as UTC.
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 -0000") == 0
    later = datetime.now(UTC) + timedelta(seconds=60)
    assert 50 <= parse_retry_after(later.strftime("%a, %d %b %Y %H:%M:%S -0000")) <= 60


def test_a_retry_after_of_exactly_max_backoff_is_waited_for():
    recorder = Recorder(reply(503, error_body(503), {"Retry-After": "30"}), reply(200, ["i-1"]))
    client, waits = make_client(recorder, retries=3, backoff=0.5, max_backoff=30)
    assert client.launch("ami-760aaa0f", "t2.micro") == ["i-1"]
    assert waits == [30.5] and len(recorder.requests) == 2


def test_no_answer_is_one_line_naming_the_service_and_the_failure():
    client, _ = make_client(Recorder(httpx.ConnectError("refused")), retries=0)
    with pytest.raises(ConnectionFailed) as caught:
        client.describe("i-1")
    assert str(caught.value) == "no answer from http://launchprov.test: ConnectError: refused"
    assert caught.value.status is None and caught.value.message == str(caught.value)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize(
    ("failure", "sent"),
    [
        (httpx.ConnectError("refused"), 3),
        (httpx.ConnectTimeout("no connection"), 3),
        (httpx.PoolTimeout("no free connection"), 3),
        (httpx.ReadTimeout("no answer"), 1),
        (httpx.RemoteProtocolError("closed mid-answer"), 1),
    ],
    ids=["refused", "connect-timeout", "pool-timeout", "read-timeout", "broken"],
)
def test_a_reboot_is_sent_again_only_when_it_cannot_have_arrived(failure, sent):
    recorder = Recorder(failure)
    client, _ = make_client(recorder, retries=2)
    with pytest.raises(ConnectionFailed):
        client.reboot("i-1")
    assert len(recorder.requests) == sent


def test_retries_must_be_zero_or_more():
    with pytest.raises(ValueError, match=r"^retries must be 0 or more$"):
        Client("http://launchprov.test", retries=-1)


def test_a_client_shows_its_service():
    assert repr(Client("localhost:6543/")) == "Client('http://localhost:6543')"
    # Only the trailing slash goes: a path is kept whole, whatever it ends with.
    assert repr(Client("https://lb.test/provX/")) == "Client('https://lb.test/provX')"


def test_each_route_is_sent_with_its_method_path_and_region():
    recorder = Recorder(reply(200, {"id": "i-1"}))
    client, _ = make_client(recorder)
    client.describe("i-1", region="eu-west-1")
    client.stop("i-1", region="eu-west-1")
    client.start("i-1", region="eu-west-1")
    client.reboot("i-1", region="eu-west-1")
    client.terminate("i-1")
    client.stop("i-1")
    sent = [(r.method, r.url.path, dict(r.url.params)) for r in recorder.requests]
    eu = {"region": "eu-west-1"}
    assert sent == [
        ("GET", "/v1/instances/i-1", eu),
        ("POST", "/v1/instances/i-1/stop", eu),
        ("POST", "/v1/instances/i-1/start", eu),
        ("POST", "/v1/instances/i-1/reboot", eu),
        ("DELETE", "/v1/instances/i-1", {}),
        ("POST", "/v1/instances/i-1/stop", {}),
    ]


def test_a_launch_sends_its_parameters_as_given():
    recorder = Recorder(reply(200, ["i-1"]))
    client, _ = make_client(recorder)
    client.launch("ami-760aaa0f", "t2.micro", max_count=2, tags={"role": "web"})
    (request,) = recorder.requests
    assert (request.method, request.url.path) == ("PUT", "/v1/launch")
    assert json.loads(request.content) == {
        "ami": "ami-760aaa0f",
        "instance_type": "t2.micro",
        "max_count": 2,
        "tags": {"role": "web"},
    }


def test_filters_true_false_and_lists_of_tag_values():
    recorder = Recorder(reply(200, {"instances": [], "next": None}))
    client, _ = make_client(recorder)
    list(client.instances(expired=True, duplicate=False, tags={"role": ["web", "db"]}))
    (request,) = recorder.requests
    assert (request.method, request.url.path) == ("GET", "/v1/instances")
    assert list(request.url.params.multi_items()) == [
        ("expired", "true"),
        ("duplicate", "false"),
        ("tag:role", "web"),
        ("tag:role", "db"),
    ]


def test_wait_asks_for_each_id_once_a_hundred_at_a_time_in_the_region():
    ids = [f"i-{n:03d}" for n in range(150)]
    running = [{"id": i, "state": "running"} for i in ids]
    recorder = Recorder(reply(200, {"instances": running, "next": None}))
    client, _ = make_client(recorder)
    result = client.wait([*ids, ids[0]], region="eu-west-1")
    assert [item["id"] for item in result] == ids  # once each, in the order given
    asked = [request.url.params for request in recorder.requests]
    assert [query.get_list("id") for query in asked] == [ids[:100], ids[100:]]
    assert all(query["region"] == "eu-west-1" for query in asked)


def test_wait_on_the_clients_own_clock():
    recorder = Recorder(reply(200, {"instances": [{"id": "i-1", "state": "running"}]}))
    client = Client("http://launchprov.test", transport=httpx.MockTransport(recorder))
    assert client.wait("i-1") == [{"id": "i-1", "state": "running"}]


def test_wait_failures_name_every_instance_in_one_line():
    client, _, _ = waiting_client([[{"id": "i-1", "state": "pending"}]])
    with pytest.raises(WaitFailed) as caught:
        client.wait(["i-1", "i-2"], timeout=3.5, interval=2)
    assert str(caught.value) == "not running after 3.5 s: i-1 (pending), i-2 (not found)"
    gone = [{"id": "i-1", "state": "shutting-down"}, {"id": "i-2", "state": "terminated"}]
    client, _, _ = waiting_client([[*gone, {"id": "i-3", "state": "running"}]])
    with pytest.raises(WaitFailed) as caught:
        client.wait(["i-1", "i-2", "i-3"])
    assert str(caught.value) == "i-1, i-2 will never be running"
    assert [item["id"] for item in caught.value.instances] == ["i-1", "i-2", "i-3"]
