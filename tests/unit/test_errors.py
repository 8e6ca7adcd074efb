"""The one error contract: one table, one view, one body."""

from __future__ import annotations

import inspect
import logging
import types

import pytest
from pyramid import testing
from pyramid.httpexceptions import HTTPForbidden, HTTPMethodNotAllowed, HTTPNotFound
from pyramid.security import Denied

from launchprov import errors
from launchprov.auth import TooManyFailures
from launchprov.bulkhead import ProviderBusy
from launchprov.capacity import Attempt, CapacityExhausted
from launchprov.exceptions import APIError, BodyTooLarge, InvalidParameters, detail
from launchprov.policy import PolicyViolation
from launchprov.providers.interface import (
    ActionNotSupported,
    IdempotencyConflict,
    InstanceNotFound,
    InvalidPageToken,
    InvalidState,
    ProviderError,
    UnsupportedParameters,
)
from tests.support import ERROR_KEYS


def request(**headers):
    made = testing.DummyRequest(headers=headers)
    made.request_id = "rid-1"
    made.matched_route = None
    made.registry.launchprov_settings = {"launchprov.retry_after": 7}
    return made


#: One instance of every kind in the table, and the status it must be answered with.
SAMPLES = [
    (InvalidParameters("bad", [detail("body", "ami", "missing")]), 400),
    (BodyTooLarge("too big"), 413),
    (APIError("teapot", status=418), 418),
    (UnsupportedParameters("dummy", {"key_name": "no key pairs"}), 400),
    (ProviderError("ec2", "Throttling", "slow down", retryable=True), 408),
    (InstanceNotFound("ec2", "i-1"), 404),
    (InvalidState("ec2", "i-1", "start", "it is terminated"), 409),
    (ActionNotSupported("dummy", "stop", "the driver cannot"), 501),
    (InvalidPageToken("not ours"), 400),
    (PolicyViolation("launchprov.policy.amis", "ami", "ami-1", "ami-2*"), 403),
    (IdempotencyConflict("ec2", "other parameters"), 409),
    (ProviderBusy("ec2", 12, "the ec2 provider is busy"), 503),
    (HTTPForbidden(), 401),
    (TooManyFailures("10.0.0.7", "10 failures per 60 s", 42), 429),
    (HTTPNotFound(), 404),
    (HTTPMethodNotAllowed(headers={"Allow": "GET"}), 405),
    (RuntimeError("boom"), 500),
    (
        CapacityExhausted(
            "ec2",
            [
                Attempt(0, ("t3.large", "us-east-1a"), "InsufficientInstanceCapacity", True, 180),
                Attempt(1, ("m5.large", "us-east-1a"), "Unsupported", False, 41.5),
            ],
        ),
        408,
    ),
]


def test_every_alternative_out_is_a_408_listing_each_attempt():
    exc, _ = SAMPLES[-1]
    response = errors.error_view(exc, request())
    body = response.json_body
    assert response.headers["Retry-After"] == "42"  # when the first comes back
    assert body["provider"]["code"] == "InsufficientInstanceCapacity"
    assert body["provider"]["retryable"] is True
    assert [(item["location"], item["name"]) for item in body["details"]] == [
        ("provider", "alternative 0"),
        ("provider", "alternative 1"),
    ]
    assert (
        "m5.large in us-east-1a: known out, not asked: Unsupported"
        in (body["details"][1]["description"])
    )


def test_every_kind_in_the_table_has_a_sample():
    sampled = {type(exc) for exc, _ in SAMPLES}
    for kind in errors.ERRORS:
        assert any(issubclass(sample, kind) for sample in sampled), kind


@pytest.mark.parametrize(("exc", "status"), SAMPLES, ids=lambda item: type(item).__name__)
def test_every_kind_is_answered_with_the_one_body(exc, status, caplog):
    caplog.set_level(logging.CRITICAL, logger="launchprov.errors")
    response = errors.error_view(exc, request())
    assert response.status_int == status
    assert response.content_type == "application/json"
    body = response.json_body
    assert set(body) == ERROR_KEYS | ({"provider"} if status == 408 else set())
    assert body["status"] == status and body["request_id"] == "rid-1"
    assert body["message"] and isinstance(body["details"], list)
    assert "boom" not in response.text  # an unexpected error's text stays in the log


def test_the_provider_failure_says_whether_and_when_to_retry():
    retryable = errors.error_view(
        ProviderError("ec2", "Throttling", "x", retryable=True), request()
    )
    assert retryable.json_body["provider"] == {
        "name": "ec2",
        "code": "Throttling",
        "message": "x",
        "retryable": True,
        "outcome": "none",
    }
    assert retryable.headers["Retry-After"] == "7"
    final = errors.error_view(ProviderError("ec2", "InvalidAMIID.NotFound", "x"), request())
    assert final.json_body["provider"]["retryable"] is False
    assert "Retry-After" not in final.headers


def test_a_token_given_but_unknown_is_challenged_as_invalid():
    response = errors.error_view(HTTPForbidden(), request(Authorization="Bearer x"))
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert errors.error_view(HTTPForbidden(), request()).headers["WWW-Authenticate"] == "Bearer"


def test_the_most_specific_entry_wins():
    class Special(InvalidParameters):
        pass

    assert errors.answer_for(Special("x"), request()).status == 400
    assert errors.answer_for(HTTPForbidden(), request()).status == 401  # not HTTPException's 403


def test_error_body_takes_no_request_id():
    assert "request_id" not in inspect.signature(errors.error_body).parameters
    assert errors.error_body(409, "m")["request_id"] is None


def test_a_new_kind_is_one_entry(monkeypatch):
    class Gone(Exception):
        pass

    monkeypatch.setitem(errors.ERRORS, Gone, lambda exc, request: errors.Answer(410, "gone"))
    response = errors.error_view(Gone(), request())
    assert response.status_int == 410 and response.json_body["error"] == "Gone"


def test_a_busy_provider_is_a_503_that_says_when_to_retry():
    response = errors.error_view(ProviderBusy("ec2", 12, "busy"), request())
    assert response.status_int == 503 and response.headers["Retry-After"] == "7"
    assert response.json_body["details"] == [
        {"location": "provider", "name": "ec2", "description": "all 12 provider slots are taken"}
    ]


def test_a_launch_that_may_have_started_instances_says_so():
    error = ProviderError("ec2", "Timeout", "x", retryable=False, outcome="unknown")
    body = errors.error_view(error, request()).json_body
    assert body["provider"]["outcome"] == "unknown"
    assert "may have started instances" in body["message"]


def test_a_partial_launch_names_each_instance_it_created():
    exc = ProviderError(
        "libcloud", "Timeout", "stopped", retryable=True, outcome="partial", instances=("7", "9")
    )

    body = errors.error_view(exc, request()).json_body

    assert body["provider"]["outcome"] == "partial"
    assert body["details"] == [
        {"location": "provider", "name": "7", "description": "created"},
        {"location": "provider", "name": "9", "description": "created"},
    ]
    assert "created 2 instance(s), named in details" in body["message"]
    # Any other failure names none.
    assert (
        errors.error_view(ProviderError("ec2", "Timeout", "x"), request()).json_body["details"]
        == []
    )


def test_what_a_provider_cannot_honour_is_named_where_it_was_given():
    exc = UnsupportedParameters("dummy", {"key_name": "no key pairs", "iam": "no profiles"})
    in_body = request()
    in_body.params_location = "body"
    body = errors.error_view(exc, in_body).json_body
    assert (body["status"], body["message"]) == (
        400,
        "the dummy provider cannot honour: iam, key_name",
    )
    assert body["details"] == [
        detail("body", "iam", "no profiles"),
        detail("body", "key_name", "no key pairs"),
    ]
    # A request that read no body (GET, DELETE, POST of an instance): its query string.
    queried = errors.error_view(exc, request()).json_body
    assert [item["location"] for item in queried["details"]] == ["querystring"] * 2


def test_a_provider_failure_is_logged_and_worded_by_its_outcome(caplog):
    caplog.set_level(logging.WARNING, logger="launchprov.errors")
    failed = ProviderError("ec2", "Throttling", "slow down", retryable=True)
    assert errors.error_view(failed, request()).json_body["message"] == (
        "the ec2 provider failed: Throttling"
    )
    assert [r.getMessage() for r in caplog.records] == [
        "provider call failed: ec2 Throttling: slow down"
    ]
    unknown = ProviderError("ec2", "Timeout", "x", outcome="unknown", operation="terminate")
    assert errors.error_view(unknown, request()).json_body["message"] == (
        "the ec2 provider failed: Timeout; the terminate may have been carried out "
        "(see provider.message)"
    )
    launch = ProviderError("ec2", "Timeout", "x", outcome="unknown")
    assert errors.error_view(launch, request()).json_body["message"] == (
        "the ec2 provider failed: Timeout; the launch may have started instances "
        "(see provider.message)"
    )
    partial = ProviderError("ec2", "Timeout", "x", outcome="partial", instances=("i-1",))
    assert errors.error_view(partial, request()).json_body["message"] == (
        "the ec2 provider failed: Timeout; the launch created 1 instance(s), named in details "
        "(see provider.message)"
    )


@pytest.mark.parametrize(("given", "header"), [(12.2, "13"), (3, "7"), (None, "7")])
def test_the_providers_retry_after_is_kept_never_shortened(given, header):
    exc = ProviderError("ec2", "Throttling", "x", retryable=True, retry_after=given)
    assert errors.error_view(exc, request()).headers["Retry-After"] == header


def test_a_busy_provider_says_so_in_its_message():
    response = errors.error_view(ProviderBusy("ec2", 12, "the ec2 provider is busy"), request())
    assert response.json_body["message"] == "the ec2 provider is busy"


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (HTTPForbidden(result=Denied("the token is unknown")), "the token is unknown"),
        (HTTPForbidden(detail="no caller"), "no caller"),
        (HTTPForbidden(), "Forbidden"),
    ],
)
def test_the_401_says_why(exc, message):
    response = errors.error_view(exc, request())
    assert response.status_int == 401
    assert response.json_body["message"] == message
    assert response.json_body["details"] == [detail("header", "Authorization", message)]


def test_a_known_route_asked_with_another_method_is_a_405_naming_the_methods():
    exc = HTTPMethodNotAllowed(detail="PATCH is not allowed", headers={"Allow": "GET, DELETE"})
    response = errors.error_view(exc, request())
    assert response.status_int == 405
    assert response.headers["Allow"] == "GET, DELETE"
    assert response.json_body["message"] == "PATCH is not allowed"


def test_a_path_of_no_route_says_where_the_routes_are():
    made = request()
    made.method, made.path = "GET", "/v2/launch"
    assert errors.error_view(HTTPNotFound(), made).json_body["message"] == (
        "no route for GET /v2/launch; GET /v1/openapi.json describes every route"
    )
    made.matched_route = object()  # a route's view raised it: its own words
    assert errors.error_view(HTTPNotFound(), made).json_body["message"] == (
        HTTPNotFound.explanation
    )


@pytest.mark.parametrize(
    ("zones", "region", "suffix"),
    [
        (
            True,
            "eu-west-1",
            " in region eu-west-1; one launched in another region is found with ?region=",
        ),
        (True, None, ""),
        (False, "eu-west-1", ""),
    ],
)
def test_a_404_names_the_region_it_looked_in_where_ids_live_in_regions(zones, region, suffix):
    made = request()
    made.provider = types.SimpleNamespace(placement_is_zone=zones)
    made.target_region = region
    body = errors.error_view(InstanceNotFound("ec2", "i-1"), made).json_body
    assert body["message"] == "the ec2 provider knows no instance i-1" + suffix
    assert body["details"] == [detail("path", "id", "no such instance")]


def test_an_unexpected_error_is_logged_with_its_traceback_and_not_told(caplog):
    made = request()
    made.method, made.path = "PUT", "/v1/launch"
    failure = RuntimeError("boom")
    try:
        raise failure
    except RuntimeError as exc:
        response = errors.error_view(exc, made)
    assert response.json_body["message"] == "unexpected error; it has been logged"
    [record] = caplog.records
    assert record.getMessage() == "unexpected error answering PUT /v1/launch"
    assert record.exc_info[1] is failure


def test_capacity_exhausted_retries_when_the_first_offering_comes_back_even_sooner():
    """Sooner than launchprov.retry_after (7 here): the offering is known out for 2.5 s only."""
    exc = CapacityExhausted(
        "ec2", [Attempt(0, ("t3.large", "us-east-1a"), "InsufficientInstanceCapacity", True, 2.5)]
    )
    assert errors.error_view(exc, request()).headers["Retry-After"] == "3"
