"""A local EC2 stand-in: answers RunInstances at once (or after a fixed delay) with a valid reply.

It speaks just enough of the EC2 query protocol for boto3: a form-encoded POST whose ``Action``
is ``RunInstances`` gets a ``RunInstancesResponse`` holding ``MinCount`` instances with fresh
ids, ``DescribeInstances`` gets a running instance for every id it asks for (by ``InstanceId.N`` or
an ``instance-id`` filter; none asked, none answered), anything else an EC2 error reply.
It counts the calls it receives, by action (``Action=StandInCounts`` answers and resets them).
It is asyncio on one thread, so a delay costs a timer, not a thread, and a
reply costs tens of microseconds: the provider behind the service costs about nothing.

Run it: ``python -m benchmarks.standin --port 8001 [--delay-ms 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import http.server
import itertools
import json
import os
import signal
import threading
import time
from urllib.parse import parse_qs

NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15/"
REQUEST_ID = "59dbff89-35bd-4eac-99ed-be587EXAMPLE"
OWNER_ID = "123456789012"
#: Guards each read: a client that stops mid-request is dropped, never waited for forever.
READ_TIMEOUT = 60.0

_instance_numbers = itertools.count(int.from_bytes(os.urandom(9), "big") >> 4)


def instance_id() -> str:
    """A fresh id: ``i-`` and 17 hex digits, unique in this process."""
    return f"i-{next(_instance_numbers) & (16**17 - 1):017x}"


def _instance_xml(ami: str, instance_type: str, zone: str, index: int) -> str:
    return (
        f"<item><instanceId>{instance_id()}</instanceId><imageId>{ami}</imageId>"
        "<instanceState><code>0</code><name>pending</name></instanceState>"
        f"<amiLaunchIndex>{index}</amiLaunchIndex><instanceType>{instance_type}</instanceType>"
        "<launchTime>2026-01-01T00:00:00.000Z</launchTime>"
        f"<placement><availabilityZone>{zone}</availabilityZone><tenancy>default</tenancy>"
        "</placement><monitoring><state>disabled</state></monitoring></item>"
    )


def run_instances_reply(form: dict[str, list[str]]) -> bytes:
    """The RunInstancesResponse for a RunInstances form: MinCount instances."""

    def first(key: str, default: str) -> str:
        return form.get(key, [default])[0]

    count = max(1, min(1000, int(first("MinCount", "1"))))
    ami, instance_type = first("ImageId", "ami-00000000"), first("InstanceType", "t2.micro")
    zone = first("Placement.AvailabilityZone", "us-east-1b")
    items = "".join(_instance_xml(ami, instance_type, zone, i) for i in range(count))
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<RunInstancesResponse xmlns="{NAMESPACE}">'
        f"<requestId>{REQUEST_ID}</requestId><reservationId>r-{os.urandom(9).hex()[:17]}"
        f"</reservationId><ownerId>{OWNER_ID}</ownerId><groupSet/>"
        f"<instancesSet>{items}</instancesSet></RunInstancesResponse>"
    ).encode()


def asked_ids(form: dict[str, list[str]]) -> list[str]:
    """The instance ids of a DescribeInstances: InstanceId.N, or an instance-id filter's values."""
    ids = [values[0] for key, values in form.items() if key.startswith("InstanceId.")]
    for key, values in form.items():
        if key.startswith("Filter.") and key.endswith(".Name") and values[0] == "instance-id":
            prefix = key.removesuffix("Name") + "Value."
            ids += [vals[0] for name, vals in form.items() if name.startswith(prefix)]
    return ids


def describe_instances_reply(ids: list[str] = ()) -> bytes:
    """Every asked id is a running instance (one reservation each); none asked: none."""
    reservations = "".join(
        f"<item><reservationId>r-{os.urandom(9).hex()[:17]}</reservationId>"
        f"<ownerId>{OWNER_ID}</ownerId><groupSet/><instancesSet><item>"
        f"<instanceId>{item}</instanceId><imageId>ami-760aaa0f</imageId>"
        "<instanceState><code>16</code><name>running</name></instanceState>"
        "<instanceType>t2.micro</instanceType><launchTime>2026-01-01T00:00:00.000Z</launchTime>"
        "<placement><availabilityZone>us-east-1b</availabilityZone><tenancy>default</tenancy>"
        "</placement></item></instancesSet></item>"
        for item in ids
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<DescribeInstancesResponse xmlns="{NAMESPACE}">'
        f"<requestId>{REQUEST_ID}</requestId><reservationSet>{reservations}</reservationSet>"
        "</DescribeInstancesResponse>"
    ).encode()


def describe_availability_zones_reply() -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<DescribeAvailabilityZonesResponse '
        f'xmlns="{NAMESPACE}"><requestId>{REQUEST_ID}</requestId><availabilityZoneInfo>'
        "<item><zoneName>us-east-1b</zoneName><zoneState>available</zoneState>"
        "<regionName>us-east-1</regionName></item></availabilityZoneInfo>"
        "</DescribeAvailabilityZonesResponse>"
    ).encode()


def error_reply(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
        f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
        f"<RequestID>{REQUEST_ID}</RequestID></Response>"
    ).encode()


#: Calls received, by action; ``Action=StandInCounts`` answers them as JSON (and resets them).
CALLS: collections.Counter = collections.Counter()


def answer(body: bytes) -> tuple[int, bytes]:
    """(HTTP status, XML body) for one EC2 query-protocol request body."""
    form = parse_qs(body.decode("utf-8", "replace"))
    action = form.get("Action", [""])[0]
    if action == "StandInCounts":
        counts = json.dumps(dict(CALLS)).encode()
        CALLS.clear()
        return 200, counts
    CALLS[action] += 1
    if action == "RunInstances":
        return 200, run_instances_reply(form)
    if action == "DescribeInstances":
        return 200, describe_instances_reply(asked_ids(form))
    if action == "DescribeAvailabilityZones":  # launchprov's readiness call (/readyz)
        return 200, describe_availability_zones_reply()
    return 400, error_reply("InvalidAction", f"the stand-in does not implement {action!r}")


class StandIn:
    """The server: keep-alive HTTP/1.1, one coroutine per connection, an optional delay."""

    def __init__(self, delay_ms: float = 0.0):
        self.delay = delay_ms / 1000.0

    async def serve_connection(self, reader, writer):
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            while True:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
                length, close = 0, False
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True
                body = await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT)
                status, reply = answer(body)
                if self.delay:
                    await asyncio.sleep(self.delay)
                reason = b"OK" if status == 200 else b"Bad Request"
                writer.write(
                    b"HTTP/1.1 %d %s\r\nContent-Type: text/xml;charset=UTF-8\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (status, reason, len(reply), reply)
                )
                await writer.drain()
                if close:
                    break
        writer.close()

    async def serve(self, host: str, port: int):
        server = await asyncio.start_server(self.serve_connection, host, port, backlog=1024)
        stop = asyncio.get_running_loop().create_future()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, None)
        async with server:
            await stop


class ThreadingHandler(http.server.BaseHTTPRequestHandler):
    """The same answers from the standard library's thread-per-connection server."""

    protocol_version = "HTTP/1.1"
    wbufsize = -1  # one write per reply: unbuffered, headers and body meet Nagle's delayed ACK
    delay = 0.0

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, reply = answer(body)
        if self.delay:
            time.sleep(self.delay)
        self.send_response(status)
        self.send_header("Content-Type", "text/xml;charset=UTF-8")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format, *args):
        pass


def serve_threading(host: str, port: int, delay_ms: float) -> None:
    handler = type("Handler", (ThreadingHandler,), {"delay": delay_ms / 1000.0})
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    with server:
        server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument(
        "--server",
        choices=("asyncio", "threading"),
        default="asyncio",
        help="asyncio (the default, cheapest) or http.server's ThreadingHTTPServer",
    )
    args = parser.parse_args(argv)
    if args.server == "threading":
        serve_threading(args.host, args.port, args.delay_ms)
    else:
        asyncio.run(StandIn(args.delay_ms).serve(args.host, args.port))


if __name__ == "__main__":
    main()
