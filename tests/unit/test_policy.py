"""The launch guardrails: the deployment's rules, a caller's own rules, and what breaks them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from launchprov.policy import Policy, PolicyViolation
from launchprov.providers.interface import Alternative
from launchprov.settings import ConfigurationError, load
from tests.support import launch_request


def policy(**settings) -> Policy:
    return Policy.from_settings(load(settings, environ={}))


REQUEST = launch_request(ami="ami-760aaa0f", instance_type="t3.micro", max_count=2)


def test_no_rule_allows_anything():
    policy().check("anyone", launch_request(ami="x", instance_type="y", max_count=1000))


@pytest.mark.parametrize(
    ("settings", "parameter", "setting"),
    [
        ({"launchprov.policy.max_count": "1"}, "max_count", "launchprov.policy.max_count"),
        (
            {"launchprov.policy.instance_types": "m5.* c5.large"},
            "instance_type",
            "launchprov.policy.instance_types",
        ),
        ({"launchprov.policy.amis": "ami-0*"}, "ami", "launchprov.policy.amis"),
        ({"launchprov.policy.placements": "eu-*"}, "placement", "launchprov.policy.placements"),
    ],
)
def test_each_rule_refuses_what_it_does_not_allow(settings, parameter, setting):
    with pytest.raises(PolicyViolation) as caught:
        policy(**settings).check("anyone", REQUEST)
    assert caught.value.parameter == parameter and caught.value.setting == setting
    assert setting in str(caught.value)


def test_globs_match_the_whole_value_in_its_case():
    rules = policy(**{"launchprov.policy.instance_types": "t3.*"})
    rules.check("anyone", REQUEST)
    with pytest.raises(PolicyViolation):
        rules.check("anyone", launch_request(ami="a", instance_type="T3.micro"))
    with pytest.raises(PolicyViolation):
        rules.check("anyone", launch_request(ami="a", instance_type="xt3.micro"))


def test_a_callers_own_rule_replaces_the_deployments_for_that_caller_only():
    rules = policy(
        **{
            "launchprov.policy.max_count": "1",
            "launchprov.policy.batch.max_count": "5",
        }
    )
    rules.check("batch", REQUEST)
    with pytest.raises(PolicyViolation) as caught:
        rules.check("web", REQUEST)
    assert caught.value.setting == "launchprov.policy.max_count"


def test_max_count_equal_to_the_limit_is_allowed():
    policy(**{"launchprov.policy.max_count": "2"}).check("anyone", REQUEST)


#: (the rule and its value, the launch that breaks it, the 403's message: what the caller reads)
BROKEN = [
    (
        ("max_count", "1"),
        {"max_count": 2},
        "max_count = 2 is not allowed by {setting} (at most 1)",
    ),
    (
        ("max_root_volume_size", "8"),
        {"root_volume_size": 9},
        "root_volume_size = 9 is not allowed by {setting} (at most 8)",
    ),
    (
        ("instance_types", "m5.* c5.large"),
        {},
        "instance_type = 't3.micro' is not allowed by {setting} (m5.* c5.large)",
    ),
    (("amis", "ami-0*"), {}, "ami = 'ami-760aaa0f' is not allowed by {setting} (ami-0*)"),
    (
        ("placements", "eu-*"),
        {},
        "placement = 'us-east-1b' is not allowed by {setting} (eu-*)",
    ),
    (
        ("placements", "eu-west-1a eu-west-1b"),
        {"placement": None},
        "placement = None is not allowed by {setting} (give a placement: eu-west-1a eu-west-1b)",
    ),
    (
        ("subnets", "subnet-0a subnet-0b"),
        {"subnet_id": "subnet-1c"},
        "subnet_id = 'subnet-1c' is not allowed by {setting} (subnet-0a subnet-0b)",
    ),
    (
        ("iam_instance_profiles", "ci-*"),
        {"iam_instance_profile": "admin"},
        "iam_instance_profile = 'admin' is not allowed by {setting} (ci-*)",
    ),
    (
        ("metadata_tokens", "required"),
        {"metadata_tokens": "optional"},
        "metadata_tokens = 'optional' is not allowed by {setting} (required)",
    ),
    (("spot", "required"), {}, "spot = False is not allowed by {setting} (required)"),
    (("spot", "forbidden"), {"spot": True}, "spot = True is not allowed by {setting} (forbidden)"),
    (
        ("require_expiry", "true"),
        {},
        "expires_in = None is not allowed by {setting} (a lease is required)",
    ),
    (
        ("max_expires_in", "3600"),
        {"expires_in": 3601},
        "expires_in = 3601 is not allowed by {setting} (at most 3600)",
    ),
    (
        ("instance_types", "t3.*"),
        {
            "fallback": (
                Alternative(instance_type="t3.small"),
                Alternative(instance_type="m5.large"),
            )
        },
        "fallback[1].instance_type = 'm5.large' is not allowed by {setting} (t3.*)",
    ),
    (
        ("placements", "us-east-1*"),
        {"fallback": (Alternative(placement="eu-west-1a"),)},
        "fallback[0].placement = 'eu-west-1a' is not allowed by {setting} (us-east-1*)",
    ),
    (
        ("subnets", "subnet-0a"),
        {"subnet_id": "subnet-0a", "fallback": (Alternative(subnet_id="subnet-1c"),)},
        "fallback[0].subnet_id = 'subnet-1c' is not allowed by {setting} (subnet-0a)",
    ),
]


@pytest.mark.parametrize(("rule", "launch", "message"), BROKEN)
def test_a_refusal_names_the_value_the_setting_and_what_it_allows(rule, launch, message):
    """The message is the 403's: the refused parameter and value, the setting, what it allows."""
    name, value = rule
    setting = f"launchprov.policy.{name}"
    with pytest.raises(PolicyViolation) as caught:
        policy(**{setting: value}).check("anyone", replace(REQUEST, **launch))
    assert str(caught.value) == message.format(setting=setting)
    assert caught.value.parameter == message.split(" = ")[0]
    assert caught.value.setting == setting


@pytest.mark.parametrize(("rule", "launch", "message"), BROKEN)
def test_each_rule_of_a_callers_own_binds_that_caller_alone(rule, launch, message):
    name, value = rule
    setting = f"launchprov.policy.ci.{name}"
    rules = policy(**{setting: value})
    with pytest.raises(PolicyViolation) as caught:
        rules.check("ci", replace(REQUEST, **launch))
    assert str(caught.value) == message.format(setting=setting)
    rules.check("web", replace(REQUEST, **launch))


@pytest.mark.parametrize(
    ("rule", "launch"),
    [
        (("max_root_volume_size", "8"), {"root_volume_size": 8}),
        (("max_root_volume_size", "8"), {}),  # the image's own size: nothing asked for
        (("max_expires_in", "3600"), {"expires_in": 3600}),
        (("max_expires_in", "3600"), {}),
        (("require_expiry", "true"), {"expires_in": 60}),
        (("metadata_tokens", "required"), {"metadata_tokens": "required"}),
        (("spot", "required"), {"spot": True}),
        (("spot", "forbidden"), {"spot": False}),
        (("spot", "allowed"), {"spot": True}),
        (("spot", "allowed"), {"spot": False}),
        (("placements", "us-east-1*"), {"fallback": (Alternative(instance_type="t3.small"),)}),
        (("subnets", "subnet-0*"), {"subnet_id": "subnet-0a"}),
        (("subnets", "subnet-0*"), {}),  # no subnet asked for: the default VPC
    ],
)
def test_a_launch_within_the_rule_is_allowed(rule, launch):
    name, value = rule
    policy(**{f"launchprov.policy.{name}": value}).check("anyone", replace(REQUEST, **launch))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"launchprov.policy.act_on": "launchprov"},
            "launchprov.policy.act_on = launchprov is wider than launchprov.policy.see = own: a "
            "caller cannot act on instances it may not see",
        ),
        (
            {
                "launchprov.policy.see": "all",
                "launchprov.policy.ops.act_on": "all",
                "launchprov.policy.ops.see": "launchprov",
            },
            "launchprov.policy.ops.act_on = all is wider than launchprov.policy.ops.see = "
            "launchprov: a caller cannot act on instances it may not see",
        ),
    ],
)
def test_acting_on_more_than_a_caller_may_see_stops_startup_naming_both_settings(settings, message):
    with pytest.raises(ConfigurationError) as raised:
        policy(**settings)
    assert str(raised.value) == message
