"""production.ini is the operator's checklist: every setting the service knows is decided there,
or listed below as deliberately left at its default, with the reason; and the file still makes
the service."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import plaster
import pytest
from paste.deploy.loadwsgi import SERVER, loadcontext
from webtest import TestApp

from launchprov.providers.ec2_common import SEED_DEFAULTS
from launchprov.settings import BY_KEY, SETTINGS, launch_defaults, load

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ROOT / "production.ini"

#: The settings production.ini leaves out on purpose: the default is right for a production
#: deployment on EC2, or the setting does not apply to one. Each with the reason.
LEFT_AT_DEFAULT: dict[str, str] = {
    "launchprov.capacity.unavailable_ttl": "tuning of the capacity fallback; 180 s fits EC2",
    "launchprov.retry_after": "the Retry-After of a retryable 408; 2 s is what callers expect",
    "launchprov.ec2.sandbox": "the in-process sandbox is for development.ini only",
    "launchprov.ec2.endpoint_url": "AWS's own endpoints; set only for an EC2-compatible cloud",
    "launchprov.libcloud.driver": "production.ini uses the ec2 provider (boto3), not libcloud",
    "launchprov.libcloud.key": "libcloud only (and a secret: the environment's)",
    "launchprov.libcloud.secret": "libcloud only (and a secret: the environment's)",
    "launchprov.libcloud.region": "libcloud only",
    "launchprov.libcloud.host": "libcloud only",
    "launchprov.libcloud.port": "libcloud only",
    "launchprov.libcloud.secure": "libcloud only",
    "launchprov.libcloud.timeout": "libcloud only",
    "launchprov.libcloud.driver_kwargs": "libcloud only",
    "launchprov.libcloud.launch_kwargs": "libcloud only",
    "launchprov.libcloud.catalog_ttl": "libcloud only",
    "launchprov.batch.idle_ms": "tuning of the request batching; the defaults are measured",
    "launchprov.batch.max_ms": "tuning of the request batching; the defaults are measured",
    "launchprov.batch.max_ids": "EC2's own limit on ids per call; nothing to decide",
}

#: The launch defaults production.ini writes out with the seed's values, for the operator to
#: change: on EC2 they are what an empty setting means (ec2_common.SEED_DEFAULTS).
SEED_WRITTEN_OUT = {
    "launchprov.defaults.key_name": "scalacity_dev1",
    "launchprov.defaults.security_groups": "SSH",
    "launchprov.defaults.placement": "us-east-1b",
}

#: Lines of "<caller> <digest>": what LAUNCHPROV_AUTH_TOKENS holds in a deployment.
TOKENS = "deployer " + "ab" * 32
#: production.ini checks its cloud (AWS) at startup: not from a unit test.
NO_STARTUP_CHECKS = ("LAUNCHPROV_STARTUP_CHECKS", "false")


def app_settings(path: Path = PRODUCTION) -> dict[str, str]:
    """[app:main] as PasteDeploy hands it to the app: its own keys, no [DEFAULT] ones."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    defaults = set(parser.defaults())
    return {key: value for key, value in parser["app:main"].items() if key not in defaults}


def test_every_setting_is_in_production_ini_or_left_at_its_default_with_a_reason():
    written = {key for key in app_settings() if key.startswith("launchprov.")}
    known = {setting.key for setting in SETTINGS}
    assert not written - known, "production.ini sets what the service does not know"
    assert not written & set(LEFT_AT_DEFAULT), "both written out and listed as left out"
    missing = known - written - set(LEFT_AT_DEFAULT)
    assert not missing, f"decide these in production.ini, or list them with a reason: {missing}"
    assert set(LEFT_AT_DEFAULT) <= known, "a setting listed here no longer exists"
    assert all(reason.strip() for reason in LEFT_AT_DEFAULT.values())


def test_every_setting_written_out_is_commented():
    """Each setting's line follows a comment, directly or within its group of settings."""
    lines = PRODUCTION.read_text().splitlines()
    start = lines.index("[app:main]")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("["))
    section = lines[start:end]
    for number, line in enumerate(section):
        if not line.startswith("launchprov."):
            continue
        above = section[:number]
        paragraph = above[len(above) - above[::-1].index("") :] if "" in above else above
        assert any(text.startswith("#") for text in paragraph), f"no comment above {line!r}"


def test_the_seeds_defaults_are_written_out_to_be_changed():
    settings = app_settings()
    for key, value in SEED_WRITTEN_OUT.items():
        assert settings[key] == value, key
    text = PRODUCTION.read_text()
    assert "CHANGE THEM" in text.split("launchprov.defaults.key_name")[0].rsplit("\n\n", 1)[1]


def test_the_seeds_defaults_written_out_launch_as_the_empty_settings_do_on_ec2():
    """On EC2 an empty launchprov.defaults.* means the seed's value: writing it out explicitly
    changes nothing (elsewhere, empty sends nothing: production.ini is EC2's)."""
    written = load(app_settings(), environ={})
    emptied = load({**app_settings(), **dict.fromkeys(SEED_WRITTEN_OUT, "")}, environ={})
    assert written["launchprov.provider"] == "ec2"
    assert launch_defaults(written, SEED_DEFAULTS) == launch_defaults(emptied, SEED_DEFAULTS)
    assert launch_defaults(written) == launch_defaults(emptied, SEED_DEFAULTS)


def test_the_service_made_with_the_seeds_defaults_written_out_is_the_one_made_without(
    monkeypatch, tmp_path
):
    """The apps made from production.ini and from a copy with those lines empty publish the
    same launch defaults (the OpenAPI document shows each parameter's)."""
    monkeypatch.setenv("LAUNCHPROV_AUTH_TOKENS", TOKENS)
    monkeypatch.setenv(*NO_STARTUP_CHECKS)
    emptied = tmp_path / "production.ini"
    text = PRODUCTION.read_text()
    for key, value in SEED_WRITTEN_OUT.items():
        text = text.replace(f"{key} = {value}\n", f"{key} =\n")
    emptied.write_text(text)
    documents = [
        plaster.get_loader(str(path), protocols=["wsgi"]).get_wsgi_app().registry.launchprov_openapi
        for path in (PRODUCTION, emptied)
    ]
    assert "scalacity_dev1" in json.dumps(documents[0])
    assert documents[0] == documents[1]


@pytest.fixture
def production_app(monkeypatch):
    monkeypatch.setenv("LAUNCHPROV_AUTH_TOKENS", TOKENS)
    monkeypatch.setenv(*NO_STARTUP_CHECKS)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    loader = plaster.get_loader(str(PRODUCTION), protocols=["wsgi"])
    return TestApp(loader.get_wsgi_app())


def test_production_ini_makes_the_service_with_its_settings(production_app):
    registry = production_app.app.registry
    values = registry.launchprov_settings
    assert values["launchprov.auth.tokens"] == {"ab" * 32: "deployer"}
    assert values["launchprov.defaults.key_name"] == "scalacity_dev1"
    assert values["launchprov.ratelimit.launch.default"]
    # The rest of the launchprov.* keys as written, parsed as the service parses them.
    overridden = {"launchprov.auth.tokens", "launchprov.startup_checks"}  # by the fixture
    for key, value in app_settings().items():
        if key in BY_KEY and key not in overridden:
            assert values[key] == BY_KEY[key].parse(value), key
    assert app_settings()["launchprov.startup_checks"] == "true"
    assert production_app.get("/healthz").status_int == 200
    assert production_app.get("/v1/instances", expect_errors=True).status_int == 401


def served_address(**pserve_vars: str) -> tuple[str, int]:
    """waitress's host and port as pserve loads [server:main]: PasteDeploy's context, given
    pserve's variables (``pserve production.ini http_port=6545``) as its global_conf."""
    context = loadcontext(
        SERVER, f"config:{PRODUCTION}", global_conf={"here": str(ROOT), **pserve_vars}
    )
    return context.config()["host"], int(context.config()["port"])


def test_the_port_is_6543_unless_pserve_is_given_http_port():
    """`pserve production.ini http_port=6545` (deploy/launchprov@6545.service) listens there."""
    assert served_address() == ("0.0.0.0", 6543)
    assert served_address(http_port="6545") == ("0.0.0.0", 6545)
