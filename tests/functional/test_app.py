"""The app as a whole: startup checks, the sandbox, and errors nobody planned for."""

from __future__ import annotations

import json

import pytest

from launchprov.app import create_app
from launchprov.providers.sandbox import stop_sandbox
from launchprov.settings import ConfigurationError
from tests.support import (
    GOOD_AMI,
    MISSING_AMI,
    NO_AUTH,
    StubProvider,
    assert_error_body,
    make_app,
)


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"launchprov.provider": "gce"}, "launchprov.provider"),
        ({"launchprov.ec2.read_timeout": "-1"}, "launchprov.ec2.read_timeout"),
        ({"launchprov.ec2.readtimeout": "1"}, "launchprov.ec2.readtimeout"),
        (
            {"launchprov.ec2.sandbox": "true", "launchprov.ec2.endpoint_url": "http://x"},
            "launchprov.ec2.endpoint_url",
        ),
    ],
)
def test_a_bad_setting_stops_startup_naming_the_key(settings, key):
    with pytest.raises(ConfigurationError, match=key.replace(".", r"\.")):
        create_app({**NO_AUTH, **settings})


def test_an_environment_variable_overrides_the_ini(monkeypatch):
    monkeypatch.setenv("LAUNCHPROV_PROVIDER", "nonsense")
    with pytest.raises(ConfigurationError, match=r"launchprov\.provider = 'nonsense'"):
        create_app(NO_AUTH)


@pytest.fixture
def sandbox_app():
    try:
        yield make_app(**{"launchprov.ec2.sandbox": "true"})
    finally:
        stop_sandbox()


def test_the_sandbox_needs_no_account(sandbox_app, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    body = json.dumps({"ami": GOOD_AMI, "instance_type": "t2.micro"})
    response = sandbox_app.put("/v1/launch", body, content_type="application/json", status=200)
    assert len(response.json) == 1 and response.json[0].startswith("i-")


def test_the_sandbox_validates_like_ec2(sandbox_app):
    body = json.dumps({"ami": MISSING_AMI, "instance_type": "t2.micro"})
    response = sandbox_app.put("/v1/launch", body, content_type="application/json", status="*")
    assert assert_error_body(response, 408)["provider"]["code"] == "InvalidAMIID.NotFound"
    body = json.dumps({"ami": GOOD_AMI, "instance_type": "t2.micro", "security_groups": ["no"]})
    response = sandbox_app.put("/v1/launch", body, content_type="application/json", status="*")
    assert_error_body(response, 408)


class BrokenProvider(StubProvider):
    """An adapter with a bug: it lets a plain exception out."""

    name = "broken"

    def launch(self, request):
        raise RuntimeError("secret internal detail")


def test_an_unexpected_error_is_a_json_500_without_a_traceback(caplog):
    app = make_app(**{"launchprov.provider": f"{__name__}:BrokenProvider"})
    body = json.dumps({"ami": "x", "instance_type": "y"})
    response = app.put("/v1/launch", body, content_type="application/json", status="*")
    error = assert_error_body(response, 500)
    assert "secret internal detail" not in response.text
    assert error["message"] == "unexpected error; it has been logged"
    assert "secret internal detail" in caplog.text  # ... but the operator can find it
