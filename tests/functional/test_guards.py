"""Guards that a mutation probe found missing: each rule below is held by more than one test."""

from __future__ import annotations

import io
import json

import pytest
import webtest

from tests.support import GOOD_AMI, assert_error_body, make_app

LIMIT = 300


def body_of_size(size: int) -> bytes:
    """A valid launch body of exactly ``size`` bytes (padded in user_data)."""
    base = {"ami": GOOD_AMI, "instance_type": "t2.micro", "user_data": ""}
    padding = size - len(json.dumps(base).encode())
    assert padding >= 0
    return json.dumps({**base, "user_data": "x" * padding}).encode()


@pytest.fixture
def small_bodies(moto_ec2):
    return make_app(**{"launchprov.max_body_size": str(LIMIT)})


def test_a_body_of_exactly_max_body_size_is_accepted(small_bodies):
    body = body_of_size(LIMIT)
    assert len(body) == LIMIT
    small_bodies.put("/v1/launch", body, content_type="application/json", status=200)


def test_one_byte_more_is_a_413(small_bodies):
    body = body_of_size(LIMIT + 1)
    response = small_bodies.put("/v1/launch", body, content_type="application/json", status="*")
    assert_error_body(response, 413)


def streamed(app, body: bytes):
    """PUT /v1/launch with a body of no Content-Length, read to its end: what a server that
    passes a chunked body on as it comes (``wsgi.input_terminated``) hands the app."""
    request = webtest.TestRequest.blank(
        "/v1/launch",
        method="PUT",
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
    )
    request.environ.pop("CONTENT_LENGTH", None)
    request.environ["wsgi.input"] = io.BytesIO(body)
    request.environ["wsgi.input_terminated"] = True
    assert request.content_length is None
    return app.do_request(request, status="*", expect_errors=True)


def test_one_byte_more_without_a_content_length_is_a_413_too(small_bodies, moto_ec2):
    launched = len(moto_ec2.describe_instances()["Reservations"])
    assert_error_body(streamed(small_bodies, body_of_size(LIMIT + 1)), 413)
    assert len(moto_ec2.describe_instances()["Reservations"]) == launched  # nothing launched
    # ... and one of the limit is read whole, and launches.
    response = streamed(small_bodies, body_of_size(LIMIT))
    assert response.status_int == 200, response.text
    assert len(moto_ec2.describe_instances()["Reservations"]) == launched + 1


@pytest.mark.parametrize("ebs_optimized", [True, False])
def test_ebs_optimized_reaches_ec2_either_way(moto_ec2, ebs_optimized):
    app = make_app()
    body = {"ami": GOOD_AMI, "instance_type": "m5.large", "ebs_optimized": ebs_optimized}
    (instance_id,) = app.put(
        "/v1/launch", json.dumps(body), content_type="application/json", status=200
    ).json
    (reservation,) = moto_ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    assert reservation["Instances"][0]["EbsOptimized"] is ebs_optimized


def test_a_missing_ami_is_a_final_408(moto_ec2):
    response = make_app().put(
        "/v1/launch",
        json.dumps({"ami": "ami-12345678", "instance_type": "t2.micro"}),
        content_type="application/json",
        status=408,
    )
    body = assert_error_body(response, 408)
    assert body["provider"]["retryable"] is False
    assert "Retry-After" not in response.headers
