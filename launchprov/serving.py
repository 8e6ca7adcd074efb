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
each. launchprov's app also sends ``/readyz`` there (answered from what is remembered of the
cloud and the rate-limit storage, renewed by threads of their own). Everything else goes to the
worker threads as in waitress.

The lane also *sheds*: when no worker thread is idle, a request bound for the provider waits in
waitress's queue as it would wait for a slot; when the cloud stops answering (the bulkhead
refuses a waiting request: every slot taken and none answered for 0.5 s, or the stall) it would
wait there for the deadline of the stuck calls to free a thread, and then be refused. The loop
thread refuses it at once instead, with the bulkhead's 503 and Retry-After (the app answers it
from memory when the environ carries :data:`SHED`), both when it arrives and when it already
waits in the queue (:meth:`ProbeLane.sweep`, once a poll: at most ``asyncore_loop_timeout``,
1 s). What to shed is the app's decision
(``registry.launchprov_shed``); another WSGI app is never shed.
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
from waitress.task import WSGITask

from launchprov.tweens import SHED

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
    lane = ProbeLane(server, lane_of(app), shed_of(app))
    lane.install()
    signal.signal(signal.SIGTERM, drain.begin)
    server.print_listen("Serving on http://{}:{}")
    Shutdown(server, drain, lane).run()
    return 0


class LaneTask(WSGITask):
    """waitress's WSGI task, whose environ carries :data:`SHED` when the lane refuses it."""

    def get_environment(self):
        environ = super().get_environment()
        if self.channel.shed_reason is not None:
            environ[SHED] = self.channel.shed_reason
        return environ


class LaneChannel(HTTPChannel):
    """waitress's channel, whose requests due in the lane (a probe, or a request it sheds) are
    served in the loop thread once the data that completed them has been read (never inside
    ``received``: it holds the lock that serving takes)."""

    task_class = LaneTask
    lane_due = False
    #: Why the request being served in the lane is refused (:data:`SHED`); None: served.
    shed_reason: str | None = None

    def received(self, data):
        result = super().received(data)
        self.serve_due()
        return result

    def serve_due(self) -> None:
        # Serving one may find the next pipelined request due in the lane too.
        while self.lane_due:
            self.lane_due = False
            try:
                self.service()
            finally:
                self.shed_reason = None


class ProbeLane:
    """Dispatches a channel's next request to the loop thread when it is one of :data:`LANE`
    and the loop thread is the one that found it (a request found by a worker thread, after
    the one it served on the same connection, stays with the workers), or when the app sheds
    it (``shed(path, idle_workers)`` says why; None: not shed)."""

    def __init__(self, server, lane, shed: Callable[[str, int], str | None] = lambda *_: None):
        self.server = server
        self.lane = lane
        self.shed = shed
        self.loop_thread: int | None = None
        self.listeners: list = []

    def install(self) -> None:
        self.loop_thread = threading.get_ident()  # serve() runs the loop in this thread
        if isinstance(self.server, MultiSocketServer):
            listeners = [d for d in self.server.map.values() if isinstance(d, BaseWSGIServer)]
        else:
            listeners = [self.server]
        self.listeners = listeners
        for listener in listeners:
            listener.channel_class = LaneChannel
            listener.add_task = self.dispatcher(listener.task_dispatcher)

    def dispatcher(self, task_dispatcher):
        def add_task(channel) -> None:
            if (
                isinstance(channel, LaneChannel)
                and threading.get_ident() == self.loop_thread
                and channel.requests
            ):
                request = channel.requests[0]
                if self.in_lane(request):
                    channel.lane_due = True
                    return
                reason = self.shed_reason(request, idle_workers(task_dispatcher))
                if reason is not None:
                    channel.shed_reason, channel.lane_due = reason, True
                    return
            task_dispatcher.add_task(channel)

        return add_task

    def shed_reason(self, request, idle: int) -> str | None:
        """Why the lane refuses a parsed request now, with ``idle`` worker threads free; None
        when it does not (a request waiting for its body, or parsed with an error, never)."""
        if request.error or not request.completed:
            return None
        return self.shed(request.path, idle)

    def sweep(self) -> None:
        """Refuse, in the loop thread, the requests waiting in waitress's queue that the app
        sheds now (those queued before the cloud stalled): each would otherwise wait for a
        worker thread -- until the deadline of the stuck calls -- to be refused then."""
        for listener in self.listeners:
            dispatcher = listener.task_dispatcher
            if not dispatcher.queue:  # the usual case: no lock taken
                continue
            shed = []
            with dispatcher.lock:
                # The first ``idle`` queued requests are about to be taken by idle workers.
                idle = idle_workers(dispatcher) + len(dispatcher.queue)
                kept = []
                for position, channel in enumerate(dispatcher.queue):
                    reason = None
                    if isinstance(channel, LaneChannel) and channel.requests:
                        reason = self.shed_reason(channel.requests[0], idle - position)
                    if reason is None:
                        kept.append(channel)
                    else:
                        shed.append((channel, reason))
                if shed:
                    dispatcher.queue.clear()
                    dispatcher.queue.extend(kept)
            for channel, reason in shed:
                channel.shed_reason, channel.lane_due = reason, True
                channel.serve_due()

    def in_lane(self, request) -> bool:
        """Whether a parsed request is served in the loop thread: a GET with no body, parsed
        without error, of a path the app's lane takes."""
        return (
            not request.error
            and request.command == "GET"
            and not request.content_length
            and self.lane(request.path)
        )


def idle_workers(dispatcher) -> int:
    """waitress's worker threads free for a new task: waiting for one, less the tasks queued
    (which they are about to take); 0 or less when every thread is taken."""
    waiting = len(dispatcher.threads) - dispatcher.stop_count - dispatcher.active_count
    return waiting - len(dispatcher.queue)


def shed_of(app) -> Callable[[str, int], str | None]:
    """Which requests the app has the loop thread refuse at once: its registry's
    ``launchprov_shed`` (path, idle worker threads -> why, or None), else none."""
    shed = getattr(getattr(app, "registry", None), "launchprov_shed", None)
    return shed if callable(shed) else lambda path, idle: None


def lane_of(app) -> Callable[[str], bool]:
    """Which paths' GETs the app answers in the loop thread: its registry's
    ``launchprov_lane``, else :data:`LANE`."""
    lane = getattr(getattr(app, "registry", None), "launchprov_lane", None)
    return lane if callable(lane) else LANE.__contains__


class Shutdown:
    """waitress's main loop, one poll at a time, checking the drain (and sweeping the lane's
    queue: :meth:`ProbeLane.sweep`) between polls."""

    def __init__(self, server, drain: Drain, lane: ProbeLane | None = None):
        self.server, self.drain, self.lane = server, drain, lane
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
                if self.lane is not None:
                    self.lane.sweep()
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
