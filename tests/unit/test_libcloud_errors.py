"""Each cloud's error replies, through its own libcloud response class, as launchprov reads them.

A reply is built as the cloud sends it (status, JSON body, headers) and given to the driver's
real response class, which raises whatever that driver raises for it (Vultr's a
VultrException without headers, Linode's a bare LibcloudError, ...); :func:`provider_error`
must say what the cloud said.
"""

from __future__ import annotations

import json
import logging
import types
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from libcloud.common.azure_arm import AzureJsonResponse
from libcloud.common.cloudstack import CloudStackResponse
from libcloud.common.digitalocean import DigitalOcean_v2_Response
from libcloud.common.google import GoogleResponse
from libcloud.common.linode import LinodeResponseV4
from libcloud.common.openstack import OpenStackResponse
from libcloud.common.vultr import VultrResponseV2
from libcloud.compute.types import NodeState
from pyramid import testing

from launchprov import errors as answers
from launchprov.providers.interface import OUTCOME_NONE, OUTCOME_UNKNOWN, ProviderError
from launchprov.providers.libcloud import instances
from launchprov.providers.libcloud.errors import (
    launch_error,
    provider_error,
    retry_after_seconds,
)
from launchprov.providers.libcloud.profile import MEANINGS
from launchprov.providers.libcloud.profiles import GENERIC, PROFILES


def raised(response_class, status: int, body, headers=None) -> Exception:
    """What ``response_class`` raises for the reply (status, JSON body, headers)."""
    reply = requests.Response()
    reply.status_code = status
    reply.reason = "Reason"
    reply._content = (body if isinstance(body, str) else json.dumps(body)).encode()
    reply.headers.update({"Content-Type": "application/json", **(headers or {})})
    connection = types.SimpleNamespace(driver=None, context={})
    try:
        response_class(reply, connection)
    except Exception as exc:
        return exc
    raise AssertionError(f"{response_class.__name__} accepted HTTP {status}")


CAPACITY = "InsufficientInstanceCapacity"
THROTTLED = "RequestLimitExceeded"

#: (profile, response class, status, body, headers) -> (code, retryable, retry_after).
REPLIES = [
    pytest.param(
        "vultr",
        VultrResponseV2,
        429,
        {"error": "Rate limit reached", "status": 429},
        {"Retry-After": "7"},
        (THROTTLED, True, 7.0),
        id="vultr-429",
    ),
    pytest.param(
        "vultr",
        VultrResponseV2,
        401,
        {"error": "Invalid API token.", "status": 401},
        {},
        (ProviderError.AUTH_FAILURE, False, None),
        id="vultr-401",
    ),
    pytest.param(
        "linode",
        LinodeResponseV4,
        429,
        {"errors": [{"reason": "Too Many Requests"}]},
        {"Retry-After": "30"},
        (THROTTLED, True, 30.0),
        id="linode-429",
    ),
    pytest.param(
        "linode",
        LinodeResponseV4,
        400,
        {"errors": [{"reason": "Region does not support this type", "field": "type"}]},
        {},
        ("HTTP400", False, None),
        id="linode-400-the-rest",
    ),
    pytest.param(
        "digitalocean",
        DigitalOcean_v2_Response,
        422,
        {"id": "unprocessable_entity", "message": "Region is not available"},
        {},
        (CAPACITY, True, None),
        id="digitalocean-region-not-available",
    ),
    pytest.param(
        "digitalocean",
        DigitalOcean_v2_Response,
        422,
        # libcloud's own fixture, digitalocean_v2/error_invalid_image.json: not capacity.
        {
            "id": "unprocessable_entity",
            "message": "You specified an invalid image for Droplet creation.",
        },
        {},
        ("unprocessable_entity", False, None),
        id="digitalocean-invalid-image",
    ),
    pytest.param(
        "digitalocean",
        DigitalOcean_v2_Response,
        404,
        {
            "id": "not_found",
            "message": "The resource you were accessing could not be found.",
        },
        {},
        ("NotFound", False, None),
        id="digitalocean-404",
    ),
    pytest.param(
        "azure_arm",
        AzureJsonResponse,
        409,
        {
            "error": {
                "code": "AllocationFailed",
                "message": "Allocation failed. We do not have sufficient capacity for the "
                "requested VM size in this region.",
            }
        },
        {},
        (CAPACITY, True, None),
        id="azure-AllocationFailed",
    ),
    pytest.param(
        "azure_arm",
        AzureJsonResponse,
        409,
        {
            "error": {
                "code": "OperationNotAllowed",
                "message": "Operation results in exceeding quota limits of Core.",
            }
        },
        {},
        ("OperationNotAllowed", False, None),
        id="azure-quota-the-rest",
    ),
    pytest.param(
        "openstack",
        OpenStackResponse,
        413,
        {
            "overLimit": {
                "code": 413,
                "message": "This request was rate-limited.",
                "retryAfter": "9",
            }
        },
        {"Retry-After": "9"},
        (THROTTLED, True, 9.0),
        id="nova-overLimit",
    ),
    pytest.param(
        "openstack",
        OpenStackResponse,
        403,
        {
            "forbidden": {
                "code": 403,
                "message": "Quota exceeded for cores: Requested 8, but already used 20 of 20 cores",
            }
        },
        {},
        ("forbidden", False, None),
        id="nova-quota-the-rest",
    ),
    pytest.param(
        "gce",
        GoogleResponse,
        403,
        {
            "error": {
                "errors": [
                    {
                        "domain": "usageLimits",
                        "reason": "userRateLimitExceeded",
                        "message": "User Rate Limit Exceeded",
                    }
                ],
                "code": 403,
                "message": "User Rate Limit Exceeded",
            }
        },
        {},
        (THROTTLED, True, None),
        id="gce-403-userRateLimitExceeded",
    ),
    pytest.param(
        "gce",
        GoogleResponse,
        200,
        {
            "kind": "compute#operation",
            "status": "DONE",
            "error": {
                "errors": [
                    {
                        "code": "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
                        "message": "The zone 'projects/p/zones/us-central1-a' does not have "
                        "enough resources available to fulfill the request.",
                    }
                ]
            },
        },
        {},
        (CAPACITY, True, None),
        id="gce-operation-exhausted",
    ),
    pytest.param(
        "cloudstack",
        CloudStackResponse,
        533,
        {
            "deployvirtualmachineresponse": {
                "uuidList": [],
                "errorcode": 533,
                "cserrorcode": 4250,
                "errortext": "Unable to create a deployment for VM[User|i-2-26-VM]",
            }
        },
        {},
        (CAPACITY, True, None),
        id="cloudstack-533",
    ),
    pytest.param(
        "generic",
        DigitalOcean_v2_Response,
        503,
        {"message": "down for maintenance"},
        {"Retry-After": "120"},
        ("HTTP503", True, 120.0),
        id="generic-503",
    ),
]


def _profile(name: str):
    return GENERIC if name == "generic" else PROFILES[name]


@pytest.mark.parametrize(
    ("name", "response_class", "status", "body", "headers", "expected"), REPLIES
)
def test_an_error_reply_is_read_as_the_profile_says(
    name, response_class, status, body, headers, expected
):
    exc = raised(response_class, status, body, headers)

    error = provider_error(exc, _profile(name))

    assert (error.code, error.retryable, error.retry_after) == expected
    assert f"HTTP {status}" in error.message
    # A refused create launched nothing, whatever the driver made of the reply.
    assert launch_error(exc, _profile(name)).outcome == OUTCOME_NONE


def test_a_failed_cloudstack_job_is_read_by_its_text():
    """libcloud raises a bare Exception with only the errortext of a failed job."""
    exc = Exception("Unable to create a deployment for VM[User|i-2-26-VM]")

    error = launch_error(exc, PROFILES["cloudstack"])

    assert (error.code, error.retryable, error.outcome) == (CAPACITY, True, OUTCOME_NONE)


def test_what_is_no_reply_stays_unexpected_and_may_have_launched():
    exc = KeyError("flavorRef")

    error = launch_error(exc, PROFILES["openstack"])

    assert error.code == ProviderError.UNEXPECTED
    assert error.outcome == OUTCOME_UNKNOWN


def test_a_transport_failure_is_not_a_reply():
    exc = requests.exceptions.ConnectionError("connection refused")

    assert provider_error(exc, PROFILES["vultr"]).code == ProviderError.UNREACHABLE


def test_every_rule_has_a_meaning_and_a_source():
    for profile in (*PROFILES.values(), GENERIC):
        for rule in profile.errors:
            assert rule.meaning in MEANINGS, (profile.name, rule)
            assert rule.source, (profile.name, rule)
            assert rule.status or rule.code or rule.text, (profile.name, rule)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7", 7.0), ("0", 0.0), ("-3", 0.0), ("soon", None), (None, None), ("1.5", 1.5)],
)
def test_retry_after_seconds(value, seconds):
    assert retry_after_seconds(value) == seconds


def test_retry_after_as_an_http_date():
    moment = datetime.now(UTC) + timedelta(seconds=90)

    seconds = retry_after_seconds(format_datetime(moment, usegmt=True))

    assert 80 <= seconds <= 90


@pytest.mark.parametrize(("cloud", "answered"), [(7.2, "8"), (0.5, "2"), (None, "2")])
def test_the_clouds_retry_after_is_never_shortened(cloud, answered):
    request = testing.DummyRequest()
    request.request_id = "rid"
    request.registry.launchprov_settings = {"launchprov.retry_after": 2}
    exc = ProviderError("libcloud", THROTTLED, "slow down", retryable=True, retry_after=cloud)

    response = answers.error_view(exc, request)

    assert response.headers["Retry-After"] == answered


# -- node statuses the driver's table does not name ---------------------------------------------


def test_an_unnamed_status_is_unknown_and_logged_once(caplog, monkeypatch):
    monkeypatch.setattr(instances, "_UNNAMED", set())
    table = instances.TolerantStates({"running": NodeState.RUNNING}, "linode")

    with caplog.at_level(logging.WARNING, instances.__name__):
        first = table["billing_suspension"]
        second = table.get("billing_suspension", NodeState.UNKNOWN)
        named = table["running"]

    assert (first, second, named) == (NodeState.UNKNOWN, NodeState.UNKNOWN, NodeState.RUNNING)
    logged = [record.getMessage() for record in caplog.records]
    assert len(logged) == 1
    assert "'billing_suspension'" in logged[0] and "linode" in logged[0]


def test_every_profiled_drivers_table_is_made_tolerant():
    for profile in PROFILES.values():
        if profile.node_states is None:
            continue
        driver = types.SimpleNamespace(
            **{profile.node_states: dict(getattr(profile.driver_class(), profile.node_states))}
        )

        instances.tolerate_unnamed_states(driver, profile)

        assert getattr(driver, profile.node_states)["no such status"] == NodeState.UNKNOWN
