"""A stand-in HTTP proxy in front of a launchprov process: it can refuse a request once with a
retryable 408, the way the service answers a provider failure, then forwards as a proxy does.

It is a real HTTP server on 127.0.0.1 (a thread of the test process), so the client under test
goes through its whole stack: connection pool, headers, time-outs, Retry-After.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from tests.support import serve_in_thread

#: The body launchprov answers when EC2 throttles: a failure a retry can mend.
RETRYABLE_408 = {
    "status": 408,
    "error": "Request Timeout",
    "message": "the ec2 provider failed: RequestLimitExceeded",
    "details": [],
    "request_id": "standin",
    "provider": {
        "name": "ec2",
        "code": "RequestLimitExceeded",
        "message": "Request limit exceeded.",
        "retryable": True,
    },
}


@dataclass
class Seen:
    """One request as the stand-in received it, and what it did with it."""

    method: str
    path: str
    headers: dict[str, str]
    at: float
    answered_408: bool
    forwarded: bool


@dataclass
class FlakyProxy:
    """Forwards to ``target``; answers the first ``failures`` requests of ``path`` with a
    retryable 408 and ``Retry-After: 1``. With ``forward_failed``, those requests reach the
    service first and only its answer is lost: the launch happened, the caller was told 408."""

    target: str
    path: str = "/v1/launch"
    failures: int = 1
    forward_failed: bool = False
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self):
        proxy = self
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: the tests read ``seen``
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    fail = self.path.split("?")[0] == proxy.path and proxy.failures > 0
                    if fail:
                        proxy.failures -= 1
                forward = not fail or proxy.forward_failed
                answer = (
                    proxy._forward(self.command, self.path, self.headers, body) if forward else None
                )
                proxy.seen.append(
                    Seen(
                        self.command, self.path, dict(self.headers), time.monotonic(), fail, forward
                    )
                )
                if fail:
                    payload = json.dumps(RETRYABLE_408).encode()
                    status, headers = 408, {"Content-Type": "application/json", "Retry-After": "1"}
                else:
                    status, headers, payload = answer
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = serve_in_thread(self.server)

    def _forward(self, method, path, headers, body):
        target = urlsplit(self.target)
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
            connection.request(method, path, body=body or None, headers=sent)
            response = connection.getresponse()
            payload = response.read()
            keep = ("content-type", "retry-after", "x-request-id", "www-authenticate")
            kept = {k: v for k, v in response.getheaders() if k.lower() in keep}
            return response.status, kept, payload
        finally:
            connection.close()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
