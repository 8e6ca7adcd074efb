"""A fault-injecting EC2 endpoint: forwards every call to an EC2 (moto), except the launches
it is told to refuse for want of capacity, and records every call it receives.

moto never runs out of capacity; real EC2 does. This endpoint answers a RunInstances whose
instance type, zone or subnet matches one of its rules with the reply EC2 itself sends (HTTP
500, ``<Response><Errors><Error><Code>InsufficientInstanceCapacity</Code>...``), and passes
everything else through. A dry run is passed through too, as EC2 checks no capacity then.

Run it as a process (``python -m tests.faulty_ec2 --upstream URL --port N``) or in a thread
(:func:`serve`). Its control routes, under ``/_faults``:

* ``PUT /_faults`` with ``{"rules": [{"instance_type": ..., "zone": ..., "subnet_id": ...,
  "code": ..., "status": ...}]}``: refuse the launches matching a rule (every field given
  must match; code defaults to InsufficientInstanceCapacity, status to EC2's 500); a rule
  ``{"every_call": true, "code": ..., "status": ...}`` refuses every call instead, dry runs
  and readiness checks included (an outage, or credentials EC2 no longer accepts); a rule
  ``{"action": "RunInstances", "delay": 1.5}`` (any of the fields above, or an action) holds
  the matching calls that many seconds and then passes them through (a slow cloud); with
  ``"delay_max": 3`` too, each call is held a time drawn uniformly between the two (a cloud
  whose answers vary); forgets the calls recorded so far;
* ``GET /_faults/calls``: every call received, in order: ``{"action", "instance_type",
  "zone", "subnet_id", "dry_run", "faulted", "seconds"}`` (``seconds``: from the call's
  arrival to its answer, upstream's time and any delay; absent while it is in progress).
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ERROR_REPLY = """<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"""

MESSAGES = {
    "InsufficientInstanceCapacity": "We currently do not have sufficient {type} capacity in the "
    "Availability Zone you requested ({where}). Our system will be working on provisioning "
    "additional capacity.",
    "Unsupported": "Your requested instance type ({type}) is not supported in your requested "
    "Availability Zone ({where}).",
    "AuthFailure": "AWS was not able to validate the provided access credentials",
}

#: Hop-by-hop headers, not forwarded.
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host"}


class FaultState:
    def __init__(self):
        self.lock = threading.Lock()
        self.rules: list[dict[str, str]] = []
        self.calls: list[dict] = []


def matches(rule: dict[str, str], call: dict) -> bool:
    if rule.get("every_call"):
        return True
    if rule.get("action"):
        return call["action"] == rule["action"] and not call["dry_run"]
    if call["action"] != "RunInstances" or call["dry_run"]:
        return False
    fields = ("instance_type", "zone", "subnet_id")
    return any(rule.get(name) for name in fields) and all(
        call.get(name) == rule[name] for name in fields if rule.get(name)
    )


def make_handler(upstream: str, state: FaultState):
    target = urllib.parse.urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # quiet: the tests read the calls instead
            pass

        def _reply(self, status: int, body: bytes, content_type: str, headers=()):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _control(self, body: bytes):
            if self.command == "PUT" and self.path == "/_faults":
                rules = json.loads(body or b"{}").get("rules", [])
                with state.lock:
                    state.rules = rules
                    state.calls = []
                return self._reply(204, b"", "application/json")
            if self.command == "GET" and self.path == "/_faults/calls":
                with state.lock:
                    calls = list(state.calls)
                return self._reply(200, json.dumps(calls).encode(), "application/json")
            return self._reply(404, b"{}", "application/json")

        def _handle(self):
            started = time.perf_counter()
            body = self._body()
            if self.path.startswith("/_faults"):
                return self._control(body)
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            values = {**query, **form}

            def first(name):
                return values.get(name, [None])[0]

            call = {
                "action": first("Action"),
                "instance_type": first("InstanceType"),
                "zone": first("Placement.AvailabilityZone"),
                "subnet_id": first("SubnetId"),
                "dry_run": (first("DryRun") or "").lower() == "true",
                "faulted": False,
            }
            with state.lock:
                rule = next((rule for rule in state.rules if matches(rule, call)), None)
            delay = float(rule.get("delay", 0)) if rule is not None else 0
            if delay and rule.get("delay_max"):
                delay = random.uniform(delay, float(rule["delay_max"]))  # noqa: S311 (a delay, not a secret)
            if delay:
                rule = None  # slow, not refused
            call["faulted"] = rule is not None
            with state.lock:
                state.calls.append(call)
            if delay:
                time.sleep(delay)  # the slow cloud itself, not a test waiting
            if rule is not None:
                code = rule.get("code", "InsufficientInstanceCapacity")
                message = MESSAGES.get(code, code).format(
                    type=call["instance_type"], where=call["zone"] or call["subnet_id"]
                )
                reply = ERROR_REPLY.format(code=code, message=message, request_id=uuid.uuid4())
                status = int(rule.get("status", 500))
                self._reply(status, reply.encode(), "text/xml;charset=UTF-8")
            else:
                self._forward(body)
            call["seconds"] = time.perf_counter() - started  # the answer time the caller saw

        def _forward(self, body: bytes):
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            try:
                headers = {
                    name: value
                    for name, value in self.headers.items()
                    if name.lower() not in HOP_HEADERS
                }
                headers["Host"] = target.netloc
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                reply = response.read()
                passed = [
                    (name, value)
                    for name, value in response.getheaders()
                    if name.lower() not in HOP_HEADERS | {"content-length", "content-type"}
                ]
                content_type = response.getheader("Content-Type", "text/xml")
                return self._reply(response.status, reply, content_type, passed)
            finally:
                connection.close()

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    return Handler


class FaultyServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A caller that went away mid-call (a launchprov process killed by a test): not news.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def serve(upstream: str, port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """A server (not yet serving: call ``serve_forever``) forwarding to ``upstream``."""
    server = FaultyServer((host, port), make_handler(upstream, FaultState()))
    server.daemon_threads = True
    return server


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="the EC2 endpoint to forward to")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    server = serve(args.upstream, args.port)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()


class FaultControl:
    """The tests' side of a fault-injecting endpoint at ``url``."""

    def __init__(self, url: str):
        self.url = url

    def _send(self, method: str, path: str, body: dict | None = None):
        connection = http.client.HTTPConnection(urllib.parse.urlsplit(self.url).netloc, timeout=10)
        try:
            data = json.dumps(body).encode() if body is not None else None
            connection.request(method, path, body=data)
            response = connection.getresponse()
            return json.loads(response.read() or b"null")
        finally:
            connection.close()

    def refuse(self, *rules: dict[str, str]) -> None:
        """Refuse the launches matching ``rules`` from now on; forget the calls so far."""
        self._send("PUT", "/_faults", {"rules": list(rules)})

    def slow_down(self, **seconds: float | tuple[float, float]) -> None:
        """Hold every call of each action (``RunInstances=1.5``) that many seconds, or a time
        drawn uniformly from a range (``RunInstances=(1, 3)``), then pass it on; forget the
        calls so far. ``refuse()`` ends it."""
        rules = []
        for action, delay in seconds.items():
            low, high = delay if isinstance(delay, tuple) else (delay, None)
            rules.append({"action": action, "delay": low, **({"delay_max": high} if high else {})})
        self._send("PUT", "/_faults", {"rules": rules})

    def calls(self, action: str | None = "RunInstances", dry_run: bool = False) -> list[dict]:
        """The calls received (of ``action``; dry runs only when asked)."""
        calls = self._send("GET", "/_faults/calls")
        return [
            call
            for call in calls
            if (action is None or call["action"] == action) and call["dry_run"] == dry_run
        ]
