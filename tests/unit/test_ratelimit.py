"""The limits themselves: which counters a request counts against, the figures of the RateLimit-*
headers, and failing open -- with a fake clock (the ``limits`` library's and launchprov's)."""

from __future__ import annotations

import logging
import types

import pytest
from limits import parse
from limits.storage import memory

from launchprov import ratelimit
from launchprov.ratelimit import LAUNCHES, REQUESTS, RateLimits, Verdict
from tests.redis_server import running_redis
from tests.support import free_port

PER_MINUTE = parse("2/minute")


class Clock:
    """Stands for time.time (the moving windows') and time.monotonic (failing open)."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def module(self):
        return types.SimpleNamespace(time=self, monotonic=self)


@pytest.fixture
def clock(monkeypatch):
    made = Clock()
    monkeypatch.setattr(memory, "time", made.module())
    monkeypatch.setattr(ratelimit, "time", made.module())
    return made


def headers(allowed: bool, remaining: int, reset_after: float) -> dict[str, str]:
    return Verdict(allowed, REQUESTS, parse("5/minute"), remaining, reset_after).headers()


def test_the_headers_of_a_request_let_through():
    assert headers(True, 3, 2.2) == {
        "RateLimit-Limit": "5",
        "RateLimit-Remaining": "3",
        "RateLimit-Reset": "3",
        "RateLimit-Policy": "5;w=60",
    }


@pytest.mark.parametrize(
    ("reset_after", "reset", "retry_after"),
    [(41.2, "42", "42"), (0.3, "1", "1"), (-0.4, "0", "1")],
)
def test_a_refusal_says_when_to_retry_never_sooner_than_a_second(reset_after, reset, retry_after):
    refused = headers(False, 0, reset_after)
    assert (refused["RateLimit-Reset"], refused["Retry-After"]) == (reset, retry_after)
    assert refused["RateLimit-Remaining"] == "0"


def test_the_retry_after_counts_from_the_oldest_request_in_the_window(clock):
    limits = RateLimits({"default": (PER_MINUTE,)}, {}, "memory://")
    first = limits.check("web", False)
    assert (first.allowed, first.remaining, first.reset_after) == (True, 1, 60)
    clock.now += 15
    second = limits.check("web", False)
    assert (second.allowed, second.remaining, second.reset_after) == (True, 0, 45)
    clock.now += 25
    refused = limits.check("web", False)
    assert (refused.allowed, refused.scope, refused.remaining) == (False, REQUESTS, 0)
    assert refused.headers()["Retry-After"] == "20"  # the first request leaves the window then
    clock.now += 21
    assert limits.check("web", False).allowed


def test_a_launch_counts_against_the_launch_limits_and_the_request_limits_apart(clock):
    limits = RateLimits({"default": (PER_MINUTE,)}, {"default": (PER_MINUTE,)}, "memory://")
    assert [limits.check("web", True).allowed for _ in range(2)] == [True, True]
    refused = limits.check("web", True)
    assert (refused.allowed, refused.scope) == (False, LAUNCHES)
    # The refused launch counted once, against the launches: the requests' counter is full too.
    assert (limits.check("web", False).allowed, limits.check("web", False).scope) == (
        False,
        REQUESTS,
    )


def test_a_launch_without_launch_limits_counts_as_a_request(clock):
    limits = RateLimits({"default": (PER_MINUTE,)}, {"batch": (parse("1/hour"),)}, "memory://")
    verdict = limits.check("web", True)
    assert (verdict.allowed, verdict.scope, verdict.remaining) == (True, REQUESTS, 1)


def test_of_limits_as_close_the_first_written_answers(clock):
    limits = RateLimits({"default": (parse("2/second"), PER_MINUTE)}, {}, "memory://")
    verdict = limits.check("web", False)
    assert verdict.headers()["RateLimit-Policy"] == "2;w=1"


def test_failed_authentications_retry_after_the_oldest_failure(clock):
    limits = RateLimits({}, {}, "memory://", auth_failures=(PER_MINUTE,))
    assert limits.authentication("10.0.0.7", failed=True) is None
    clock.now += 30
    assert limits.authentication("10.0.0.7", failed=True) is None
    clock.now += 10
    refused = limits.authentication("10.0.0.7", failed=False)
    assert (refused.allowed, refused.remaining) == (False, 0)
    assert refused.headers()["Retry-After"] == "20"
    assert limits.authentication("10.0.0.8", failed=False) is None


# -- failing open ------------------------------------------------------------------------------


def unreachable_redis() -> str:
    """A Redis URI whose password holds an @, on a port nothing listens on."""
    return f"redis://:p@ss@127.0.0.1:{free_port()}/0"


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "launchprov.ratelimit"]


def test_an_unreachable_storage_warns_once_a_minute_without_its_password(caplog):
    caplog.set_level(logging.WARNING, logger="launchprov.ratelimit")
    clock = Clock(1000.0)  # steps of halves: exact in binary, so exactly a minute is a minute
    uri = unreachable_redis()
    limits = RateLimits({"default": (PER_MINUTE,)}, {}, uri, clock=clock)
    assert limits.check("web", False) is None
    [warning] = warnings(caplog)
    where = uri.rsplit("@", 1)[1]
    assert warning.startswith(f"rate-limit storage {where} unreachable (Error "), (
        warning
    )  # redis-py's own words follow
    assert warning.endswith("): requests are let through unlimited until it answers")
    assert "p@ss" not in warning and "ss@" not in warning
    clock.now += 1.5  # asked again, failed again: no second warning within the minute
    assert limits.check("web", False) is None
    clock.now += 57.5
    assert limits.check("web", False) is None
    assert len(warnings(caplog)) == 1
    clock.now += 1.0  # asked again, a minute after the first warning
    assert limits.check("web", False) is None
    assert len(warnings(caplog)) == 2


def test_the_storage_is_asked_again_a_second_after_it_failed():
    clock = Clock(1000.0)
    with running_redis() as redis:
        once = (parse("1/minute"),)
        limits = RateLimits({"default": once}, {}, redis.uri, clock=clock, auth_failures=once)
        assert limits.check("web", False).allowed
        redis.stop()
        assert limits.check("web", False) is None
        redis.start()  # back, with empty counters
        clock.now += 0.75
        assert limits.check("web", False) is None  # failing open: not asked yet
        for _ in range(2):  # not counted either
            assert limits.authentication("10.0.0.7", failed=True) is None
        clock.now += 0.25
        verdict = limits.check("web", False)
        assert (verdict.allowed, verdict.remaining) == (True, 0)
        assert not limits.check("web", False).allowed


def test_the_counters_live_under_launchprovs_prefix_in_redis():
    """So that an operator sharing a Redis can tell them apart (and flush only them)."""
    import redis as redis_client

    with running_redis() as redis:
        limits = RateLimits({"default": (PER_MINUTE,)}, {}, redis.uri)
        limits.check("web", False)
        client = redis_client.Redis.from_url(redis.uri)
        try:
            keys = client.keys("*")
        finally:
            client.close()
        assert keys and all(key.startswith(b"launchprov:") for key in keys), keys
