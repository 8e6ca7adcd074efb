"""Settings: declared once, parsed at startup, overridable from the environment."""

from __future__ import annotations

import pytest

from launchprov.providers.ec2_common import SEED_DEFAULTS
from launchprov.settings import (
    CLIENT_ENV_VARS,
    SETTINGS,
    ConfigurationError,
    env_var,
    launch_defaults,
    load,
)


def test_defaults_are_the_seeds_on_ec2_and_unset_elsewhere():
    values = load({}, environ={})
    assert values["launchprov.provider"] == "ec2"
    assert values["launchprov.defaults.key_name"] is None
    assert values["launchprov.defaults.security_groups"] is None
    assert values["launchprov.defaults.placement"] is None
    seed = {"key_name": "scalacity_dev1", "security_groups": ("SSH",), "placement": "us-east-1b"}
    assert {
        name: value
        for name, value in launch_defaults(values, SEED_DEFAULTS).items()
        if name in seed
    } == seed
    assert all(launch_defaults(values)[name] is None for name in seed)
    assert values["launchprov.ec2.sandbox"] is False
    assert values["launchprov.ec2.endpoint_url"] is None


def test_every_declared_setting_has_a_value_and_a_doc():
    values = load({}, environ={})
    assert set(values) == {setting.key for setting in SETTINGS}
    assert all(setting.doc for setting in SETTINGS)


@pytest.mark.parametrize(
    ("key", "variable"),
    [
        ("launchprov.ec2.endpoint_url", "LAUNCHPROV_EC2_ENDPOINT_URL"),
        ("launchprov.provider", "LAUNCHPROV_PROVIDER"),
        ("launchprov.libcloud.driver_kwargs", "LAUNCHPROV_LIBCLOUD_DRIVER_KWARGS"),
        ("launchprov.some-thing.x", "LAUNCHPROV_SOME_THING_X"),
    ],
)
def test_environment_variable_names(key, variable):
    assert env_var(key) == variable


def test_ini_values_are_parsed_into_types():
    values = load(
        {
            "launchprov.ec2.read_timeout": "2.5",
            "launchprov.ec2.max_attempts": "1",
            "launchprov.ec2.sandbox": "yes",
            "launchprov.defaults.security_groups": "web, ssh\n  db",
            "launchprov.libcloud.port": "5000",
            "launchprov.libcloud.driver_kwargs": '{"ex_force_auth_url": "http://k"}',
        },
        environ={},
    )
    assert values["launchprov.ec2.read_timeout"] == 2.5
    assert values["launchprov.ec2.max_attempts"] == 1
    assert values["launchprov.ec2.sandbox"] is True
    assert values["launchprov.defaults.security_groups"] == ("web", "ssh", "db")
    assert values["launchprov.libcloud.port"] == 5000
    assert values["launchprov.libcloud.driver_kwargs"] == {"ex_force_auth_url": "http://k"}


def test_the_environment_wins_over_the_ini():
    values = load(
        {"launchprov.ec2.endpoint_url": "http://ini"},
        environ={"LAUNCHPROV_EC2_ENDPOINT_URL": "http://env"},
    )
    assert values["launchprov.ec2.endpoint_url"] == "http://env"


def test_typed_values_from_python_are_checked_too():
    values = load({"launchprov.ec2.sandbox": True, "launchprov.ec2.max_attempts": 2}, environ={})
    assert values["launchprov.ec2.sandbox"] is True and values["launchprov.ec2.max_attempts"] == 2


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("launchprov.ec2.read_timeout", "soon"),
        ("launchprov.ec2.read_timeout", "0"),
        ("launchprov.ec2.max_attempts", "0"),
        ("launchprov.ec2.retry_mode", "eager"),
        ("launchprov.ec2.sandbox", "perhaps"),
        ("launchprov.libcloud.port", "70000"),
        ("launchprov.libcloud.driver_kwargs", "[1]"),
        ("launchprov.libcloud.driver_kwargs", "{nope"),
        ("launchprov.max_body_size", "-5"),
    ],
)
def test_a_bad_value_names_its_key(key, value):
    with pytest.raises(ConfigurationError, match=key.replace(".", r"\.")):
        load({key: value}, environ={})


def test_a_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigurationError, match="LAUNCHPROV_EC2_READ_TIMEOUT"):
        load({}, environ={"LAUNCHPROV_EC2_READ_TIMEOUT": "x"})


def test_unknown_settings_are_refused_not_ignored():
    with pytest.raises(ConfigurationError, match=r"launchprov\.ec2\.readtimeout"):
        load({"launchprov.ec2.readtimeout": "3", "pyramid.includes": ""}, environ={})


def test_the_client_variables_are_not_settings_and_do_not_stop_startup():
    """A shell that uses the command line (LAUNCHPROV_URL, LAUNCHPROV_TOKEN) can run the service."""
    assert not {setting.env_var for setting in SETTINGS} & CLIENT_ENV_VARS
    values = load({}, environ={"LAUNCHPROV_URL": "http://x", "LAUNCHPROV_TOKEN": "t"})
    assert values == load({}, environ={})


def test_unknown_environment_variables_are_refused():
    with pytest.raises(ConfigurationError, match="LAUNCHPROV_EC2_READTIMEOUT"):
        load({}, environ={"LAUNCHPROV_EC2_READTIMEOUT": "3"})


# -- a configuration error is one short line, and never shows a secret -------------------------

#: What `launchprov-token deployer` prints as the token: pasted where its digest belongs.
PASTED_TOKEN = "Fx_yNAM-7pjkQzW3t1gQvSQNoTGLmod4BEvw7dkP50E"


@pytest.mark.parametrize("from_environment", [False, True])
def test_a_token_pasted_for_its_digest_is_named_but_never_shown(from_environment):
    line = f"deployer {PASTED_TOKEN}"
    raw, environ = ({}, {"LAUNCHPROV_AUTH_TOKENS": line}) if from_environment else ({}, {})
    if not from_environment:
        raw = {"launchprov.auth.tokens": line}
    with pytest.raises(ConfigurationError) as caught:
        load(raw, environ=environ)
    message = str(caught.value)
    assert "launchprov.auth.tokens" in message and "LAUNCHPROV_AUTH_TOKENS" in message
    assert PASTED_TOKEN not in message
    assert "\n" not in message


DIGEST_A, DIGEST_B = "a" * 64, "b" * 64


@pytest.mark.parametrize(
    "value",
    [
        f"ci {DIGEST_A}, web {DIGEST_B}",
        f"ci {DIGEST_A},web {DIGEST_B}",
        f"ci {DIGEST_A},",
        f"ci,{DIGEST_A}",
    ],
)
@pytest.mark.parametrize("from_environment", [False, True])
def test_comma_separated_tokens_are_refused_saying_one_per_line(value, from_environment):
    raw, environ = ({}, {"LAUNCHPROV_AUTH_TOKENS": value})
    if not from_environment:
        raw, environ = {"launchprov.auth.tokens": value}, {}
    with pytest.raises(ConfigurationError) as caught:
        load(raw, environ=environ)
    message = str(caught.value)
    assert "launchprov.auth.tokens" in message and "one per line" in message
    assert "not separated by commas" in message
    assert "\n" not in message and DIGEST_A not in message


def test_tokens_one_per_line_are_read():
    digests = load({"launchprov.auth.tokens": f"ci {DIGEST_A}\nweb {DIGEST_B}"}, environ={})
    assert digests["launchprov.auth.tokens"] == {DIGEST_A: "ci", DIGEST_B: "web"}


def test_a_secrets_parse_error_does_not_repeat_the_value():
    with pytest.raises(ConfigurationError) as caught:
        load({"launchprov.ratelimit.storage_uri": "mongodb://user:hunter2@db"}, environ={})
    assert "hunter2" not in str(caught.value)
    assert "LAUNCHPROV_RATELIMIT_STORAGE_URI" in str(caught.value)


def test_a_plain_settings_bad_value_is_shown_with_its_variable():
    with pytest.raises(ConfigurationError) as caught:
        load({}, environ={"LAUNCHPROV_RETRY_AFTER": "soon"})
    message = str(caught.value)
    assert "launchprov.retry_after = 'soon'" in message
    assert "environment variable LAUNCHPROV_RETRY_AFTER" in message


def test_main_exits_with_a_short_message(capsys, monkeypatch):
    import logging

    from launchprov.app import EXIT_CONFIGURATION, main

    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # no logging set up: stderr
    with pytest.raises(SystemExit) as caught:
        main({}, **{"launchprov.auth.tokens": f"deployer {PASTED_TOKEN}"})
    assert caught.value.code == EXIT_CONFIGURATION != 0
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "LAUNCHPROV_AUTH_TOKENS" in error
    assert PASTED_TOKEN not in error and "Traceback" not in error
