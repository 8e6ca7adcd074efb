"""The ownership scopes as provider-side filters, and EC2's shared filter builder."""

from __future__ import annotations

import pytest

from launchprov.ownership import Ownership, wildcard_match
from launchprov.policy import Policy, Rules
from launchprov.providers.ec2 import describe_filters as boto3_filters
from launchprov.providers.ec2_common import describe_filters
from launchprov.providers.interface import InstanceQuery


def scoped(see: str, query: InstanceQuery, caller: str = "web", enabled: bool = True):
    policy = Policy(Rules(see=see, act_on="own"), {})
    return Ownership(policy, enabled).visible(caller, query)


QUERY = InstanceQuery("us-east-1", states=("running",), tags={"role": ("api",)})


def test_own_is_a_tag_value_filter_beside_the_callers_filters():
    assert describe_filters(scoped("own", QUERY)) == {
        "instance-state-name": ["running"],
        "tag:role": ["api"],
        "tag:launchprov:caller": ["web"],
    }


def test_launchprov_is_a_tag_key_filter():
    assert describe_filters(scoped("launchprov", QUERY)) == {
        "instance-state-name": ["running"],
        "tag:role": ["api"],
        "tag-key": ["launchprov:caller"],
    }


@pytest.mark.parametrize(("see", "enabled"), [("all", True), ("own", False)])
def test_all_and_authentication_off_add_no_filter(see, enabled):
    assert scoped(see, QUERY, enabled=enabled) == QUERY


def test_a_filter_on_another_callers_tag_matches_nothing_for_own():
    asking = InstanceQuery("us-east-1", tags={"launchprov:caller": ("batch",)})
    assert scoped("own", asking) is None
    wildcard = InstanceQuery("us-east-1", tags={"launchprov:caller": ("w*",)})
    assert scoped("own", wildcard).tags == {"launchprov:caller": ("web",)}


def test_a_value_filter_on_the_caller_tag_makes_the_key_filter_needless():
    asking = InstanceQuery("us-east-1", tags={"launchprov:caller": ("batch",)})
    assert describe_filters(scoped("launchprov", asking)) == {"tag:launchprov:caller": ["batch"]}


def test_several_required_keys_use_one_tag_key_filter_and_wildcards():
    query = InstanceQuery("us-east-1", tag_keys=("a", "b"))
    assert describe_filters(query) == {"tag-key": ["a"], "tag:b": ["*"]}
    assert boto3_filters(query) == [
        {"Name": "tag-key", "Values": ["a"]},
        {"Name": "tag:b", "Values": ["*"]},
    ]


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [("web", "web", True), ("w*", "web", True), ("w?b", "web", True), ("[w]eb", "web", False)],
)
def test_wildcards_are_ec2s(pattern, value, expected):
    assert wildcard_match(pattern, value) is expected
