"""Logging: the request id and the caller on every line, and JSON lines on demand.

The request id and caller live in context variables set for the duration of a request (one
waitress thread serves one request at a time), and a log-record factory copies them onto every
record, whichever library logs it. ``%(request_id)s`` and ``%(caller)s`` can therefore be used
in any format of the .ini's logging section.
"""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
caller_var: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="-")

#: Attributes of a record that a JSON line carries when they are set (access lines set most).
JSON_FIELDS = (
    "request_id",
    "caller",
    "method",
    "route",
    "status",
    "duration_ms",
    "action",
    "instance",
    "owner",
)


def install_record_factory() -> None:
    """Make every log record carry ``request_id`` and ``caller`` (once per process)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "launchprov", False):
        return

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        record.request_id = request_id_var.get()
        record.caller = caller_var.get()
        return record

    factory.launchprov = True
    logging.setLogRecordFactory(factory)


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the request's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in JSON_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def use_json_lines() -> None:
    """Format every handler of the root logger as JSON lines (launchprov.log_format = json)."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JSONFormatter())


#: waitress's logger of "Task queue depth is N", a WARNING whenever a request found every
#: thread busy: about a thousand a minute under ordinary load.
WAITRESS_QUEUE_LOGGER = "waitress.queue"
queue_log = logging.getLogger("launchprov.waitress")


class WaitressQueueDepth(logging.Filter):
    """Turns waitress's queue-depth warnings into a metric and a DEBUG line.

    ``seen(depth)`` is called for each; the warning itself is dropped, and
    ``launchprov.waitress`` logs the depth at DEBUG. Other records of the logger pass.
    """

    def __init__(self, seen):
        super().__init__()
        self.seen = seen

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Task queue depth"):
            return True
        depth = record.args[0] if isinstance(record.args, tuple) and record.args else None
        if isinstance(depth, int):
            self.seen(depth)
        queue_log.debug("waitress task queue depth %s: a request waits for a thread", depth)
        return False


def count_waitress_queue_depth(seen) -> None:
    """Install :class:`WaitressQueueDepth` on waitress's logger (replacing an earlier one:
    the latest app of the process counts)."""
    logger = logging.getLogger(WAITRESS_QUEUE_LOGGER)
    for old in [f for f in logger.filters if isinstance(f, WaitressQueueDepth)]:
        logger.removeFilter(old)
    logger.addFilter(WaitressQueueDepth(seen))
