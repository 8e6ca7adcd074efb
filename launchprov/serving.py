"""``use = egg:launchprov#waitress``: waitress, stopped on SIGTERM without losing an answer.

waitress alone dies on SIGTERM (Python's default action): the requests in progress get no
answer (HAProxy answers them 502), and even its Ctrl-C handling stops the loop that writes the
answers the worker threads hand it (Pylons/waitress#198, #269). A rolling restart would lose
answers, launches among them. This server runner starts waitress as ``waitress.serve`` does,
with the same ``[server:main]`` options, and on SIGTERM drains the process:

1. for ``launchprov.drain_delay`` seconds it still serves every request, while /healthz and
   /readyz answer 503 ``draining``: the load balancer's health checks take the process out,
   so nothing new is sent to it;
2. it closes its listening sockets (accepting what already waits in the backlog first): a
   connection from a balancer that has not noticed yet is refused, which HAProxy retries on
   another process whatever the method, as nothing reached this one;
3. it finishes the requests in progress and writes their answers, closing each connection
   once it is idle, for at most ``launchprov.request_deadline`` seconds (by when every request
   that calls the provider has its answer);
4. it exits with status 0.

SIGINT (Ctrl-C) stops at once, as waitress does.

The *probe lane*: ``GET /healthz`` and ``GET /metrics`` are answered in the server's own loop
thread, through the WSGI app (its tweens, access log and metrics included), as soon as they
are parsed: they never wait for a worker thread. So every waitress thread may hold a provider
call while the cloud answers (:func:`launchprov.bulkhead.ceiling`): the liveness probe and the
scrape still answer while the cloud hangs and every thread is held. Both are answered from
memory -- no provider, storage or network call -- so the loop is held for about a millisecond
each. Everything else (``/readyz`` among them: it may make the readiness call, and asks the
rate-limit storage) goes to the worker threads as in waitress.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import waitress
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, MultiSocketServer

log = logging.getLogger(__name__)

#: The paths whose GET is answered in the loop thread (:class:`ProbeLane`) for an app that
#: does not say (launchprov's says through ``registry.launchprov_lane``: /readyz too, when
#: its answer is known).
LANE = frozenset({"/healthz", "/metrics"})

#: The exit status when the [server:main] address cannot be listened on (sysexits' EX_OSERR).
EXIT_CANNOT_LISTEN = 71


class Drain:
    """The process's shutdown, shared by the server runner (which starts it on SIGTERM) and the
    health views (which answer 503 while it runs).

    ``delay``: seconds between the signal and closing the listening sockets; ``timeout``:
    seconds after that within which the requests in progress must end.
    """

    def __init__(self, delay: float, timeout: float):
        self.delay, self.timeout = delay, timeout
        #: time.monotonic() at SIGTERM; None while serving. Set by a signal handler: a plain
        #: assignment (no lock, no logging) is all a handler may safely do.
        self.since: float | None = None

    @property
    def draining(self) -> bool:
        return self.since is not None

    def begin(self, *_signal_args: Any) -> None:
        if self.since is None:
            self.since = time.monotonic()


def drain_of(app) -> Drain:
    """The app's Drain (launchprov's app registers one, from its settings); another WSGI app
    (the benchmarks' reference apps) is drained with no delay and the default deadline."""
    drain = getattr(getattr(app, "registry", None), "launchprov_drain", None)
    return drain if isinstance(drain, Drain) else Drain(delay=0, timeout=25)


def serve(app, global_conf=None, **options) -> int:
    """The ``paste.server_runner``: waitress with ``options`` (the [server:main] keys), until
    SIGTERM has drained it (see the module) or SIGINT stopped it."""
    logging.basicConfig()  # as waitress.serve: idempotent once pserve has set logging up
    try:
        server = waitress.create_server(app, **options)
    except OSError as exc:  # a taken port or an address not of this host: one line, not a trace
        where = options.get("listen") or f"{options.get('host', '')}:{options.get('port')}"
        log.critical("launchprov cannot listen on %s: %s", where, exc.strerror or exc)
        # pserve answers a server's SystemExit with "Exiting" and status 0: a supervisor
        # (systemd, a script) must see the failure. Nothing is serving yet: end here.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_CANNOT_LISTEN)
    drain = drain_of(app)
    ProbeLane(server, lane_of(app)).install()
    signal.signal(signal.SIGTERM, drain.begin)
    server.print_listen("Serving on http://{}:{}")
    Shutdown(server, drain).run()
    return 0


class LaneChannel(HTTPChannel):
    """waitress's channel, whose probes due in the lane are served in the loop thread once the
    data that completed them has been read (never inside ``received``: it holds the lock that
    serving takes)."""

    lane_due = False

    def received(self, data):
        result = super().received(data)
        # Serving a probe may find the next pipelined request due in the lane too.
        while self.lane_due:
            self.lane_due = False
            self.service()
        return result


class ProbeLane:
    """Dispatches a channel's next request to the loop thread when it is one of :data:`LANE`
    and the loop thread is the one that found it (a request found by a worker thread, after
    the one it served on the same connection, stays with the workers)."""

    def __init__(self, server, lane):
        self.server = server
        self.lane = lane
        self.loop_thread: int | None = None

    def install(self) -> None:
        self.loop_thread = threading.get_ident()  # serve() runs the loop in this thread
        if isinstance(self.server, MultiSocketServer):
            listeners = [d for d in self.server.map.values() if isinstance(d, BaseWSGIServer)]
        else:
            listeners = [self.server]
        for listener in listeners:
            listener.channel_class = LaneChannel
            listener.add_task = self.dispatcher(listener.task_dispatcher)

    def dispatcher(self, task_dispatcher):
        def add_task(channel) -> None:
            if (
                isinstance(channel, LaneChannel)
                and threading.get_ident() == self.loop_thread
                and channel.requests
                and self.in_lane(channel.requests[0])
            ):
                channel.lane_due = True
            else:
                task_dispatcher.add_task(channel)

        return add_task

    def in_lane(self, request) -> bool:
        """Whether a parsed request is served in the loop thread: a GET with no body, parsed
        without error, of a path the app's lane takes."""
        return (
            not request.error
            and request.command == "GET"
            and not request.content_length
            and self.lane(request.path)
        )


def lane_of(app) -> Callable[[str], bool]:
    """Which paths' GETs the app answers in the loop thread: its registry's
    ``launchprov_lane``, else :data:`LANE`."""
    lane = getattr(getattr(app, "registry", None), "launchprov_lane", None)
    return lane if callable(lane) else LANE.__contains__


class Shutdown:
    """waitress's main loop, one poll at a time, checking the drain between polls."""

    def __init__(self, server, drain: Drain):
        self.server, self.drain = server, drain
        # One listening socket: the server is its dispatcher; several: a MultiSocketServer.
        self.map = server.map if isinstance(server, MultiSocketServer) else server._map
        self.accepting = True
        self.announced = False

    def dispatchers(self, kind) -> list:
        return [
            dispatcher for dispatcher in list(self.map.values()) if isinstance(dispatcher, kind)
        ]

    def run(self) -> None:
        adj = self.server.adj
        try:
            while not self.finished():
                # A signal interrupts the poll; at the latest the poll ends after
                # asyncore_loop_timeout (1 s), and a finished task wakes it through the trigger.
                wasyncore.loop(
                    timeout=adj.asyncore_loop_timeout,
                    map=self.map,
                    use_poll=adj.asyncore_use_poll,
                    count=1,
                )
        except (SystemExit, KeyboardInterrupt):
            pass
        finally:
            self.server.task_dispatcher.shutdown()
            wasyncore.close_all(self.map)

    def finished(self) -> bool:
        if self.drain.since is None:
            return False
        if not self.announced:
            self.announced = True
            log.warning(
                "SIGTERM: draining; /healthz and /readyz answer 503 for %g s, then no new "
                "connection is accepted and the requests in progress are finished",
                self.drain.delay,
            )
        elapsed = time.monotonic() - self.drain.since
        if elapsed < self.drain.delay:
            return False
        if self.accepting:
            self.stop_accepting()
        busy = []
        for channel in self.dispatchers(HTTPChannel):
            if channel.requests or channel.request is not None or channel.total_outbufs_len:
                busy.append(channel)
            else:
                channel.will_close = True  # idle: closed by the loop's next poll
        if not busy:
            log.warning("drained: every request in progress was answered; stopping")
            return True
        if elapsed >= self.drain.delay + self.drain.timeout:
            log.warning(
                "stopping with %d connection(s) still busy after %g s of draining",
                len(busy),
                elapsed,
            )
            return True
        return False

    def stop_accepting(self) -> None:
        for listener in self.dispatchers(BaseWSGIServer):
            # What the kernel accepted already is served rather than reset by the close (at
            # most a backlog's worth: accept() failing for want of descriptors stays readable).
            for _ in range(listener.adj.backlog):
                if not select.select([listener.socket], [], [], 0)[0]:
                    break
                listener.handle_accept()
            # The dispatcher's own close() would close its trigger too, which the worker
            # threads still pull to hand their answers to this loop.
            wasyncore.dispatcher.close(listener)
        self.accepting = False
        log.warning("no longer accepting connections; finishing the requests in progress")
