"""The launch guardrails: the deployment's rules, a caller's own rules, and what breaks them."""

from __future__ import annotations

import pytest

from launchprov.policy import Policy, PolicyViolation
from launchprov.settings import load
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
