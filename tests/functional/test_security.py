"""Safe to expose: bearer tokens, policy guardrails, idempotent retries, Retry-After."""

from __future__ import annotations

import hashlib
import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from launchprov.app import create_app
from launchprov.auth import digest
from launchprov.scripts import token as token_script
from launchprov.settings import ConfigurationError
from tests.redis_server import running_redis
from tests.support import GOOD_AMI, assert_error_body, detail_names, free_port, make_app

WEB_TOKEN = "web-token-0123456789"
BATCH_TOKEN = "batch-token-9876543210"
TOKENS = f"web {digest(WEB_TOKEN)}\nbatch {digest(BATCH_TOKEN)}"
AUTH = {"launchprov.auth.enabled": "true", "launchprov.auth.tokens": TOKENS}
LAUNCH = {"ami": GOOD_AMI, "instance_type": "t2.micro"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def put(app, body, status="*", **headers):
    return app.put(
        "/v1/launch",
        json.dumps(body),
        content_type="application/json",
        headers=headers,
        status=status,
    )


def samples(app, name: str, **headers) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of ``name`` on /metrics."""
    text = app.get("/metrics", headers=headers, status=200).text
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def provider_calls(app) -> float:
    text = app.get("/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("launchprov_provider_calls_total{")
    )


@pytest.fixture
def secured(moto_ec2):
    return make_app(**AUTH)


# -- authentication ---------------------------------------------------------------------------


def test_enabled_without_tokens_refuses_to_start():
    with pytest.raises(ConfigurationError, match="launchprov-token"):
        create_app({"launchprov.auth.enabled": "true"})


def test_authentication_is_on_unless_turned_off():
    with pytest.raises(ConfigurationError, match=r"launchprov\.auth\.tokens"):
        create_app({})


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic d2ViOnB3"},
        {"Authorization": "Bearer a b"},
        bearer("not-a-known-token"),
        bearer(WEB_TOKEN + "x"),
    ],
)
def test_no_valid_token_is_a_401_with_a_challenge(secured, headers):
    response = put(secured, LAUNCH, **headers)
    body = assert_error_body(response, 401)
    # RFC 6750: a request without credentials gets the bare challenge; a token that is not
    # valid, the invalid_token error. The message says which one the caller has to fix.
    if headers:
        assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        assert body["message"] == "a valid bearer token is required"
    else:
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert body["message"] == "a bearer token is required"
    assert body["details"][0]["description"] == body["message"]
    assert detail_names(body) == ["Authorization"]
    assert provider_calls(secured) == 0


@pytest.mark.parametrize("path", ["/v1/instances", "/v1/instances/i-0123456789abcdef0"])
def test_every_api_route_needs_a_token(secured, path):
    assert_error_body(secured.get(path, status="*"), 401)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/v1/openapi.json"])
def test_probes_metrics_and_the_document_stay_open(secured, path):
    assert secured.get(path, status=200)


def test_a_known_token_names_the_caller(secured):
    ids = put(secured, LAUNCH, status=200, **bearer(WEB_TOKEN)).json
    instance = secured.get(f"/v1/instances/{ids[0]}", headers=bearer(WEB_TOKEN)).json
    assert instance["tags"]["launchprov:caller"] == "web"


def test_tokens_from_the_environment(moto_ec2, monkeypatch):
    monkeypatch.setenv("LAUNCHPROV_AUTH_TOKENS", f"ci {digest('ci-secret')}")
    app = make_app(**{"launchprov.auth.enabled": "true"})
    assert put(app, LAUNCH, status=200, **bearer("ci-secret")).json


@pytest.mark.parametrize(
    "tokens",
    ["web", "web nothex", f"web {digest('a')}\nbatch {digest('a')}", f"a.b {digest('a')}"],
)
def test_malformed_token_lines_stop_startup(tokens):
    with pytest.raises(ConfigurationError, match=r"launchprov\.auth\.tokens"):
        create_app({"launchprov.auth.enabled": "true", "launchprov.auth.tokens": tokens})


def test_a_caller_may_hold_two_tokens_while_one_is_rotated(moto_ec2):
    tokens = f"web {digest('old-token')}\nweb {digest('new-token')}"
    app = make_app(**{"launchprov.auth.enabled": "true", "launchprov.auth.tokens": tokens})
    for token in ("old-token", "new-token"):
        ids = put(app, LAUNCH, status=200, **bearer(token)).json
        tags = app.get(f"/v1/instances/{ids[0]}", headers=bearer(token)).json["tags"]
        assert tags["launchprov:caller"] == "web"


def test_the_token_command_prints_a_token_and_its_line(capsys, moto_ec2):
    assert token_script.main(["deployer"]) == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    token, line = lines[1], lines[3]
    assert line == f"deployer {digest(token)}" and len(token) >= 40
    app = make_app(**{"launchprov.auth.enabled": "true", "launchprov.auth.tokens": line})
    assert put(app, LAUNCH, status=200, **bearer(token)).json


def test_the_token_command_refuses_a_bad_name(capsys):
    with pytest.raises(SystemExit):
        token_script.main(["no spaces"])


# -- /metrics and token guessing ----------------------------------------------------------------

SCRAPER_TOKEN = "scraper-token-0123456789"
METRICS_TOKENS = f"prometheus {digest(SCRAPER_TOKEN)}"


def test_metrics_tokens_open_the_metrics_and_nothing_else(moto_ec2):
    app = make_app(**AUTH, **{"launchprov.metrics.tokens": METRICS_TOKENS})
    refused = app.get("/metrics", status="*")
    body = assert_error_body(refused, 401)
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert "launchprov.metrics.tokens" in body["message"]
    # A caller's token is not a scraper's, nor a scraper's a caller's.
    assert_error_body(app.get("/metrics", headers=bearer(WEB_TOKEN), status="*"), 401)
    assert_error_body(app.get("/v1/instances", headers=bearer(SCRAPER_TOKEN), status="*"), 401)
    page = app.get("/metrics", headers=bearer(SCRAPER_TOKEN), status=200)
    assert 'launchprov_http_requests_total{method="GET",route="metrics",status="401"} 2.0' in (
        page.text
    )
    assert app.get("/healthz", status=200) and app.get("/readyz", status=200)
    scrape = app.get("/v1/openapi.json").json["paths"]["/metrics"]["get"]
    assert scrape["security"] == [{"bearer": []}] and "401" in scrape["responses"]


#: The caller label of "web" under each launchprov.metrics.caller_labels.
WEB_LABELS = {
    "name": {"caller": "web"},
    "hash": {"caller": hashlib.sha256(b"web").hexdigest()[:8]},
    "drop": {},
}


@pytest.mark.parametrize("labels", list(WEB_LABELS))
def test_caller_labels_name_hash_or_drop_the_caller(moto_ec2, labels):
    app = make_app(
        **AUTH,
        **{"launchprov.metrics.caller_labels": labels, "launchprov.ratelimit.web": "1/minute"},
    )
    app.get("/v1/instances", headers=bearer(WEB_TOKEN), status=200)
    app.get("/v1/instances", headers=bearer(WEB_TOKEN), status=429)
    refused = samples(app, "launchprov_ratelimit_refused_total")
    assert refused == [({**WEB_LABELS[labels], "scope": "requests"}, 1.0)]
    if labels != "name":
        assert 'caller="web"' not in app.get("/metrics").text


#: Requests from two client addresses (REMOTE_ADDR, as waitress gives it).
GUESSER = {"REMOTE_ADDR": "10.0.0.7"}
NEIGHBOUR = {"REMOTE_ADDR": "10.0.0.8"}


def guess(app, token: str, address: dict[str, str]):
    return app.get("/v1/instances", headers=bearer(token), extra_environ=address, status="*")


def test_too_many_failed_authentications_from_one_address_are_a_429(moto_ec2):
    app = make_app(**AUTH, **{"launchprov.auth.failure_limit": "3/minute"})
    for number in range(3):
        assert_error_body(guess(app, f"guess-{number}", GUESSER), 401)
    refused = guess(app, "guess-3", GUESSER)
    body = assert_error_body(refused, 429)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "too many failed authentications from 10.0.0.7" in body["message"]
    assert detail_names(body) == ["Authorization"]
    # The right token from that address too: a 200 would tell a guesser which guess was right.
    assert_error_body(guess(app, WEB_TOKEN, GUESSER), 429)
    # Another address is not held back by it.
    assert_error_body(guess(app, "guess-4", NEIGHBOUR), 401)
    assert guess(app, WEB_TOKEN, NEIGHBOUR).status_int == 200
    assert samples(app, "launchprov_auth_refused_total") == [({}, 2.0)]
    assert provider_calls(app) == 1  # the neighbour's listing only


def test_failed_authentications_are_counted_in_the_shared_storage(moto_ec2):
    with running_redis() as redis:
        settings = {
            **AUTH,
            "launchprov.auth.failure_limit": "2/minute",
            "launchprov.ratelimit.storage_uri": redis.uri,
        }
        one, other = make_app(**settings), make_app(**settings)  # two processes
        assert_error_body(guess(one, "guess-0", GUESSER), 401)
        assert_error_body(guess(other, "guess-1", GUESSER), 401)
        assert_error_body(guess(one, "guess-2", GUESSER), 429)
        assert_error_body(guess(other, WEB_TOKEN, GUESSER), 429)
        assert guess(other, WEB_TOKEN, NEIGHBOUR).status_int == 200


# -- policy -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "body", "parameter", "setting"),
    [
        (
            {"launchprov.policy.max_count": "2"},
            {"min_count": 1, "max_count": 3},
            "max_count",
            "launchprov.policy.max_count",
        ),
        (
            {"launchprov.policy.instance_types": "t3.* m5.large"},
            {"instance_type": "t2.micro"},
            "instance_type",
            "launchprov.policy.instance_types",
        ),
        ({"launchprov.policy.amis": "ami-1*"}, {}, "ami", "launchprov.policy.amis"),
        (
            {"launchprov.policy.placements": "us-east-1a us-east-1c"},
            {},
            "placement",
            "launchprov.policy.placements",
        ),
    ],
)
def test_a_request_breaking_a_rule_is_a_403_before_any_provider_call(
    moto_ec2, settings, body, parameter, setting
):
    app = make_app(**settings)
    response = put(app, {**LAUNCH, **body})
    error = assert_error_body(response, 403)
    assert detail_names(error) == [parameter]
    assert setting in error["message"]
    assert provider_calls(app) == 0


def test_requests_within_the_rules_launch(moto_ec2):
    app = make_app(
        **{
            "launchprov.policy.max_count": "3",
            "launchprov.policy.instance_types": "t2.* m5.large",
            "launchprov.policy.amis": "ami-760aaa0f",
            "launchprov.policy.placements": "us-east-1*",
        }
    )
    assert len(put(app, {**LAUNCH, "min_count": 3, "max_count": 3}, status=200).json) == 3


def test_a_callers_own_rule_replaces_the_deployments(moto_ec2):
    app = make_app(
        **AUTH,
        **{
            "launchprov.policy.instance_types": "t3.*",
            "launchprov.policy.batch.instance_types": "t2.* c5.*",
        },
    )
    assert put(app, LAUNCH, status=200, **bearer(BATCH_TOKEN)).json
    error = assert_error_body(put(app, LAUNCH, **bearer(WEB_TOKEN)), 403)
    assert "launchprov.policy.instance_types" in error["message"]


def test_an_unknown_policy_rule_stops_startup():
    with pytest.raises(ConfigurationError, match=r"launchprov\.policy\.web\.colours"):
        create_app({"launchprov.auth.enabled": "false", "launchprov.policy.web.colours": "red"})


# -- idempotent retries -----------------------------------------------------------------------


def launched_with(client, token: str) -> set[str]:
    reply = client.describe_instances(
        Filters=[{"Name": "tag:launchprov:client-token", "Values": [token]}]
    )
    return {i["InstanceId"] for r in reply["Reservations"] for i in r["Instances"]}


def test_a_retry_with_the_same_token_launches_nothing_new(moto_ec2):
    app = make_app()
    body = {**LAUNCH, "min_count": 2, "max_count": 2, "client_token": "deploy-17"}
    first = put(app, body, status=200).json
    again = put(app, body, status=200).json
    assert sorted(first) == sorted(again)
    assert launched_with(moto_ec2, "deploy-17") == set(first)


def test_the_idempotency_key_header_is_a_synonym(moto_ec2):
    app = make_app()
    first = put(app, LAUNCH, status=200, **{"Idempotency-Key": "hdr-1"}).json
    again = put(app, {**LAUNCH, "client_token": "hdr-1"}, status=200).json
    assert first == again
    assert launched_with(moto_ec2, "hdr-1") == set(first)


def test_a_header_and_a_parameter_that_differ_are_a_400(moto_ec2):
    app = make_app()
    response = put(app, {**LAUNCH, "client_token": "a"}, **{"Idempotency-Key": "b"})
    assert detail_names(assert_error_body(response, 400)) == ["Idempotency-Key"]


@pytest.mark.parametrize("token", ["", "x" * 65, "caf\u00e9", "tab\there"])
def test_client_tokens_follow_ec2s_rule(moto_ec2, token):
    response = put(make_app(), {**LAUNCH, "client_token": token})
    assert detail_names(assert_error_body(response, 400)) == ["client_token"]


def test_the_same_token_with_other_parameters_is_a_409(moto_ec2):
    app = make_app()
    put(app, {**LAUNCH, "client_token": "t-1"}, status=200)
    response = put(app, {**LAUNCH, "client_token": "t-1", "instance_type": "t2.small"})
    body = assert_error_body(response, 409)
    assert detail_names(body) == ["client_token"]
    assert len(launched_with(moto_ec2, "t-1")) == 1


def test_tokens_belong_to_their_caller(moto_ec2):
    app = make_app(**AUTH)
    body = {**LAUNCH, "client_token": "shared"}
    web = put(app, body, status=200, **bearer(WEB_TOKEN)).json
    batch = put(app, body, status=200, **bearer(BATCH_TOKEN)).json
    assert set(web).isdisjoint(batch)
    assert put(app, body, status=200, **bearer(WEB_TOKEN)).json == web


def test_idempotency_holds_on_every_backend(backend):
    body = {**LAUNCH, "client_token": "any-backend-1"}
    first = put(backend.app, body, status=200).json
    assert put(backend.app, body, status=200).json == first


# -- bounded failures -------------------------------------------------------------------------


def test_a_retryable_408_says_when_to_retry():
    app = make_app(
        **{
            "launchprov.ec2.endpoint_url": f"http://127.0.0.1:{free_port()}",
            "launchprov.ec2.max_attempts": "1",
            "launchprov.retry_after": "7",
        }
    )
    response = put(app, LAUNCH)
    body = assert_error_body(response, 408)
    assert body["provider"]["retryable"] is True
    assert response.headers["Retry-After"] == "7"


def test_a_final_408_has_no_retry_after(moto_ec2):
    response = put(make_app(), {**LAUNCH, "ami": "ami-12345678"})
    assert assert_error_body(response, 408)["provider"]["retryable"] is False
    assert "Retry-After" not in response.headers
