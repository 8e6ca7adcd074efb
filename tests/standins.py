"""Stand-ins for a sick cloud, on 127.0.0.1: an endpoint that holds every request, one that
drops the connection once the request is in, and a recording proxy in front of moto.

Each runs in threads of the test process and is closed by its ``close``; none sleeps to
synchronise (the held connections wait on an event, released on close).
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import socket
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.support import serve_in_thread


class Endpoint:
    """A TCP listener whose connections ``handle`` serves, each in a thread of its own."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(256)
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.closed = threading.Event()
        self.accepted = 0
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self.socket.accept()
                with self._lock:
                    self.accepted += 1
                    self._connections.append(connection)
                threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket):
        with contextlib.suppress(OSError), connection:
            self.handle(connection)

    def handle(self, connection: socket.socket) -> None:
        raise NotImplementedError

    def close(self):
        self.closed.set()
        self.socket.close()
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.close()


def read_request(connection: socket.socket) -> bytes:
    """Read one HTTP request (headers, and a body of Content-Length) from ``connection``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class SlowEndpoint(Endpoint):
    """Accepts, reads the request, and answers nothing for ``hold`` seconds (then closes): a
    backend that has stopped answering in time."""

    def __init__(self, hold: float = 30.0):
        self.hold = hold
        self.requests: list[bytes] = []
        super().__init__()

    def handle(self, connection):
        self.requests.append(read_request(connection))
        self.closed.wait(self.hold)

    def actions(self) -> list[str | None]:
        """The EC2 action of every request received (from the body, or the URL)."""
        found = []
        for request in list(self.requests):
            head, _, body = request.partition(b"\r\n\r\n")
            target = head.split(b"\r\n")[0].split(b" ")[1] if head else b""
            query = body or urllib.parse.urlsplit(target).query
            params = urllib.parse.parse_qs(query.decode(errors="replace"))
            found.append((params.get("Action") or [None])[0])
        return found


class DroppingEndpoint(Endpoint):
    """Reads the whole request, then closes the connection without a word: the request may
    have been carried out, and no answer says so."""

    def handle(self, connection):
        read_request(connection)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def params(self) -> dict[str, list[str]]:
        """The EC2 query parameters, from the body (boto3) or the URL (libcloud)."""
        query = urllib.parse.urlsplit(self.path).query
        text = self.body.decode() if self.body else query
        return urllib.parse.parse_qs(text, keep_blank_values=True)

    @property
    def action(self) -> str | None:
        return (self.params.get("Action") or [None])[0]


@dataclass
class Faults:
    """What the proxy does besides forwarding: each a predicate on a recorded request."""

    #: Forward the request, then drop the connection instead of answering.
    drop_reply: Callable[[Recorded], bool] = lambda recorded: False
    #: Answer an empty DescribeInstances instead of forwarding (tags not visible yet).
    hide: Callable[[Recorded], bool] = lambda recorded: False
    #: Answer EC2's error reply (HTTP status, code) instead of forwarding; None: forward.
    refuse: Callable[[Recorded], tuple[int, str] | None] = lambda recorded: None
    #: Forward the request (it is carried out), then hold its answer until ``released`` is set
    #: (at most :data:`HOLD_LIMIT` seconds): a cloud that answers after the deadline.
    hold_reply: Callable[[Recorded], bool] = lambda recorded: False
    released: threading.Event = field(default_factory=threading.Event)
    #: Seconds to hold the request before forwarding it: a cloud that takes its time.
    delay: Callable[[Recorded], float] = lambda recorded: 0.0
    dropped: list[Recorded] = field(default_factory=list)
    held: list[Recorded] = field(default_factory=list)


#: The longest a held answer waits for its release (a test that forgets to release ends).
HOLD_LIMIT = 30.0


#: What an empty DescribeInstances reply looks like.
EMPTY_DESCRIBE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
    b"<requestId>00000000-0000-0000-0000-000000000000</requestId>"
    b"<reservationSet/></DescribeInstancesResponse>"
)


class RecordingProxy:
    """An HTTP proxy in front of an EC2 endpoint (moto) that records every request.

    It also keeps EC2's ClientToken promise, which moto does not: a RunInstances whose
    ClientToken it has forwarded before, with the same parameters, is answered with the first
    reply instead of being forwarded (EC2 answers ``IdempotentParameterMismatch`` when the
    parameters differ: so does the proxy).
    """

    #: Parameters that carry no meaning of the request (the libcloud driver signs in the URL).
    SIGNING = frozenset({"Signature", "SignatureMethod", "SignatureVersion", "Timestamp"})

    def __init__(self, upstream: str, faults: Faults | None = None):
        self.upstream = urllib.parse.urlsplit(upstream)
        self.faults = faults or Faults()
        self.recorded: list[Recorded] = []
        self._replies: dict[str, tuple[dict, int, bytes, str]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                proxy._handle(self)

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = serve_in_thread(self.server)

    def actions(self, action: str) -> list[Recorded]:
        with self._lock:
            return [recorded for recorded in self.recorded if recorded.action == action]

    def meaning(self, recorded: Recorded) -> dict[str, list[str]]:
        return {k: v for k, v in recorded.params.items() if k not in self.SIGNING}

    def _handle(self, handler: http.server.BaseHTTPRequestHandler):
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        recorded = Recorded(handler.command, handler.path, dict(handler.headers.items()), body)
        with self._lock:
            self.recorded.append(recorded)
        if recorded.action == "DescribeInstances" and self.faults.hide(recorded):
            self._answer(handler, 200, EMPTY_DESCRIBE, "text/xml")
            return
        # The cloud's own time (not a synchronisation): released early when the proxy closes.
        self._closed.wait(self.faults.delay(recorded))
        refusal = self.faults.refuse(recorded)
        if refusal is not None:
            self._answer(handler, refusal[0], _error_reply(refusal[1]), "text/xml")
            return
        token = (recorded.params.get("ClientToken") or [None])[0]
        if recorded.action == "RunInstances" and token is not None:
            with self._lock:
                first = self._replies.get(token)
            if first is not None:
                params, status, reply, content_type = first
                if params == self.meaning(recorded):
                    self._answer(handler, status, reply, content_type)
                else:
                    self._answer(handler, 400, _mismatch(), "text/xml")
                return
        status, reply, content_type = self._forward(handler.command, handler.path, handler, body)
        if recorded.action == "RunInstances" and token is not None and status == 200:
            with self._lock:
                self._replies[token] = (self.meaning(recorded), status, reply, content_type)
        if self.faults.hold_reply(recorded):
            self.faults.held.append(recorded)
            self.faults.released.wait(HOLD_LIMIT)
        if self.faults.drop_reply(recorded):
            self.faults.dropped.append(recorded)
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        self._answer(handler, status, reply, content_type)

    def _forward(self, method, path, handler, body) -> tuple[int, bytes, str]:
        connection = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, 30)
        headers = {
            name: value
            for name, value in handler.headers.items()
            if name.lower() not in ("host", "connection", "content-length")
        }
        headers["Host"] = self.upstream.netloc
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, response.read(), response.getheader("Content-Type", "")
        finally:
            connection.close()

    @staticmethod
    def _answer(handler, status: int, body: bytes, content_type: str):
        with contextlib.suppress(OSError):  # the client may have given up (a held answer)
            handler.send_response(status)
            handler.send_header("Content-Type", content_type or "text/xml")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)

    def close(self):
        self.faults.released.set()
        self._closed.set()
        self.server.shutdown()
        self.server.server_close()


def _error_reply(code: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
        f"<Message>refused by the test: {code}</Message></Error></Errors>"
        "<RequestID>0</RequestID></Response>"
    ).encode()


def _mismatch() -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
        b"<Code>IdempotentParameterMismatch</Code><Message>The client token was used with "
        b"other parameters</Message></Error></Errors><RequestID>0</RequestID></Response>"
    )
