"""Page tokens sealed to their caller and query (launchprov.page_tokens)."""

from __future__ import annotations

import dataclasses

import pytest

from launchprov.page_tokens import PageTokens
from launchprov.providers.interface import InstanceQuery, InvalidPageToken

KEY = "k" * 32
QUERY = InstanceQuery("us-east-1", tags={"run": ("a",)})
INNER = "eJyrVipRslJKVNJRSlWyUgKS"  # what a provider's pager made: opaque here


def test_a_token_opens_for_its_caller_and_query_only():
    sealed = PageTokens(KEY, "alice", QUERY).seal(INNER)
    same_listing = dataclasses.replace(QUERY, limit=7)  # another limit: the same listing
    assert PageTokens(KEY, "alice", same_listing).open(sealed) == INNER
    others = [
        PageTokens(KEY, "bob", QUERY),
        PageTokens(KEY, "alice", InstanceQuery("us-east-1", tags={"run": ("b",)})),
        PageTokens(KEY, "alice", InstanceQuery("us-west-2", tags={"run": ("a",)})),
        PageTokens(KEY, "alice", QUERY, expired=True),
        PageTokens("x" * 32, "alice", QUERY),  # another deployment's key
        PageTokens(None, "alice", QUERY),
    ]
    for other in others:
        with pytest.raises(InvalidPageToken, match="another caller"):
            other.open(sealed)


def test_without_a_key_the_seal_still_binds_the_caller():
    sealed = PageTokens(None, "alice", QUERY).seal(INNER)
    assert PageTokens(None, "alice", QUERY).open(sealed) == INNER
    with pytest.raises(InvalidPageToken, match="another caller"):
        PageTokens(None, "bob", QUERY).open(sealed)


@pytest.mark.parametrize(
    "bad", [INNER, f"{INNER}.", f".{INNER}", "", "\u00e9.\u00e9", f"{INNER}.\udcff"]
)
def test_a_token_without_its_seal_is_refused(bad):
    with pytest.raises(InvalidPageToken):
        PageTokens(KEY, "alice", QUERY).open(bad)


def test_an_altered_token_is_refused():
    tokens = PageTokens(KEY, "alice", QUERY)
    inner, seal = tokens.seal(INNER).rsplit(".", 1)
    with pytest.raises(InvalidPageToken):
        tokens.open(f"{inner}x.{seal}")
    with pytest.raises(InvalidPageToken):
        tokens.open(f"{inner}.{seal[:-1]}")


def test_no_token_is_no_token():
    tokens = PageTokens(KEY, "alice", QUERY)
    assert tokens.seal(None) is None
    assert tokens.open(None) is None
