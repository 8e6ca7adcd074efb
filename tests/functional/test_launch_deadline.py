"""A launch of one create call per instance stops at the request deadline.

libcloud's drivers (but EC2) create one node a call. A driver whose replies are slow used to go
on creating after the caller had its 408: 4 nodes at the 408, 20 some seconds later. Now no
create is sent after the deadline, the 408 names the instances created so far (``partial``),
and the one whose create was in flight is logged by id when its reply comes.

The dummy driver here creates each node at once (the request reached the cloud) and holds its
reply until the test lets it go: the test, not the clock, says how far the launch gets.
"""

from __future__ import annotations

import json
import logging
import threading

import pytest

from launchprov.launching import CLIENT_TOKEN_TAG, REQUEST_ID_TAG
from launchprov.providers.libcloud import drivers
from tests.support import assert_error_body, make_app

PATIENCE = 10.0
DEADLINE = "1"


class SlowReplies(drivers.CloudlikeDummyNodeDriver):
    """The dummy, each create_node's node made at once and its reply held until a permit."""

    replies = threading.Semaphore(0)
    instance: SlowReplies | None = None

    def create_node(self, name, size, image, ex_metadata=None):
        SlowReplies.instance = self
        node = super().create_node(name, size, image, ex_metadata)
        assert SlowReplies.replies.acquire(timeout=PATIENCE), "the test never let it answer"
        return node


class Reported(logging.Handler):
    """Sets ``done`` when the bulkhead reports how a call answered 408 has ended: the last
    thing the launch's thread does."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.done = threading.Event()

    def emit(self, record):
        if "answered 408 at the deadline has since" in record.getMessage() and (
            "succeeded" in record.getMessage() or "failed" in record.getMessage()
        ):
            self.done.set()


@pytest.fixture
def slow(monkeypatch, caplog):
    """An app on the slow dummy, request_deadline 1 s; ``launch_done`` is set when the
    launch's thread has reported how it ended, after the 408."""
    SlowReplies.replies = threading.Semaphore(0)
    SlowReplies.instance = None
    monkeypatch.setattr(drivers, "CloudlikeDummyNodeDriver", SlowReplies)
    app = make_app(
        **{
            "launchprov.provider": "libcloud",
            "launchprov.libcloud.driver": "dummy",
            "launchprov.request_deadline": DEADLINE,
        }
    )
    caplog.set_level(logging.INFO, logger="launchprov.bulkhead")
    reported = Reported()
    logging.getLogger("launchprov.bulkhead").addHandler(reported)
    app.launch_done = reported.done
    yield app
    SlowReplies.replies.release(100)
    logging.getLogger("launchprov.bulkhead").removeHandler(reported)


def tagged(value: str, key: str = REQUEST_ID_TAG) -> list[str]:
    """The ids of the nodes at the provider whose tag ``key`` is ``value``."""
    nodes = SlowReplies.instance.list_nodes()
    return [str(n.id) for n in nodes if n.extra.get("tags", {}).get(key) == value]


def put(app, **body):
    launch = {"ami": "img-1", "instance_type": "small", **body}
    return app.put("/v1/launch", json.dumps(launch), content_type="application/json", status="*")


@pytest.mark.parametrize("min_count", [1, 10])
def test_no_create_after_the_deadline_and_the_408_names_what_was_created(slow, caplog, min_count):
    SlowReplies.replies.release(4)  # four replies come; the fifth is still awaited at 408

    response = put(slow, min_count=min_count, max_count=20)

    error = assert_error_body(response, 408)
    request_id = error["request_id"]
    at_the_408 = tagged(request_id)
    named = [item["name"] for item in error["details"]]
    assert error["provider"]["outcome"] == "partial"
    assert error["provider"]["code"] == "Timeout"
    assert {item["location"] for item in error["details"]} == {"provider"}
    assert len(named) == 4 and len(at_the_408) == 5
    assert named == at_the_408[:4]  # the fifth node exists; its reply has not come
    assert "named in details" in error["message"]

    SlowReplies.replies.release(100)  # every reply now comes at once
    assert slow.launch_done.wait(PATIENCE)

    assert tagged(request_id) == at_the_408  # no create after the deadline
    late = [record for record in caplog.records if "has since launched" in record.getMessage()]
    assert len(late) == 1
    assert late[0].args[0] == at_the_408[4]  # the one the 408 could not name, by its id
    assert ", ".join(named) in late[0].getMessage()


def test_a_client_token_retry_answers_what_the_stopped_launch_created(slow):
    SlowReplies.replies.release(2)
    first = assert_error_body(put(slow, min_count=5, max_count=5, client_token="deadline-1"), 408)
    assert first["provider"]["retryable"] is True  # with a client token a retry is safe
    SlowReplies.replies.release(100)
    assert slow.launch_done.wait(PATIENCE)
    kept = tagged("deadline-1", CLIENT_TOKEN_TAG)
    assert len(kept) == 3  # two answered before the 408, one in flight
    assert [item["name"] for item in first["details"]] == kept[:2]

    retry = put(slow, min_count=5, max_count=5, client_token="deadline-1")

    assert retry.status_int == 200
    assert sorted(retry.json) == sorted(kept)
