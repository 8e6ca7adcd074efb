"""Bearer tokens: a caller is known by the SHA-256 digest of its token, and only by that."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pyramid import testing

from launchprov.auth import ANONYMOUS, BearerTokenSecurityPolicy, digest

TOKEN = "Fx_yNAM-7pjkQzW3t1gQvSQNoTGLmod4BEvw7dkP50E"


def caller(policy, authorization=None):
    headers = {} if authorization is None else {"Authorization": authorization}
    return policy._caller(testing.DummyRequest(headers=headers))


def test_the_digest_is_sha256_hex():
    assert digest(TOKEN) == hashlib.sha256(TOKEN.encode()).hexdigest()


def test_the_token_of_a_listed_digest_names_its_caller():
    policy = BearerTokenSecurityPolicy({digest(TOKEN): "deployer"}, enabled=True)
    assert caller(policy, f"Bearer {TOKEN}") == "deployer"
    assert caller(policy, f"bearer   {TOKEN}") == "deployer"  # the scheme in any case


def test_a_digest_differing_only_in_its_last_character_does_not_match():
    known = digest(TOKEN)
    for last in "0123456789abcdef".replace(known[-1], ""):
        policy = BearerTokenSecurityPolicy({known[:-1] + last: "deployer"}, enabled=True)
        assert caller(policy, f"Bearer {TOKEN}") is None, last


def test_a_token_differing_only_in_its_last_character_does_not_match():
    policy = BearerTokenSecurityPolicy({digest(TOKEN): "deployer"}, enabled=True)
    assert caller(policy, f"Bearer {TOKEN[:-1]}F") is None
    assert caller(policy, f"Bearer {TOKEN}x") is None


@pytest.mark.parametrize(
    "authorization", [None, "", TOKEN, f"Basic {TOKEN}", "Bearer", "Bearer a b", "Bearer \u00e9"]
)
def test_no_well_formed_bearer_token_is_no_caller(authorization):
    policy = BearerTokenSecurityPolicy({digest(TOKEN): "deployer"}, enabled=True)
    assert caller(policy, authorization) is None


def test_with_authentication_off_everyone_is_anonymous():
    policy = BearerTokenSecurityPolicy({}, enabled=False)
    assert caller(policy) == ANONYMOUS


class Request(testing.DummyRequest):
    identity = None  # set below from the policy, as Pyramid would


def test_permits_only_a_known_caller():
    policy = BearerTokenSecurityPolicy({digest(TOKEN): "deployer"}, enabled=True)
    request = Request(headers={"Authorization": f"Bearer {TOKEN}"})
    request.identity = policy._caller(request)
    assert policy.permits(request, None, "call")
    stranger = Request()
    stranger.identity = policy._caller(stranger)
    assert not policy.permits(stranger, None, "call")


# -- constant time ----------------------------------------------------------------------------

CALLERS = {digest(f"{TOKEN}-{name}"): name for name in ("ci", "deployer", "ops")}


@pytest.fixture
def comparisons(monkeypatch):
    """Every hmac.compare_digest call, recorded, then made."""
    made: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def compare_digest(a, b):
        made.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", compare_digest)
    return made


@pytest.mark.parametrize(
    "presented",
    [f"{TOKEN}-ci", f"{TOKEN}-ops", f"{TOKEN}-nobody"],
    ids=["first-known", "last-known", "unknown"],
)
def test_every_token_check_compares_in_constant_time_with_every_digest(comparisons, presented):
    policy = BearerTokenSecurityPolicy(CALLERS, enabled=True)
    found = caller(policy, f"Bearer {presented}")
    assert found == CALLERS.get(digest(presented))
    # Each known digest, compared with the presented token's: none skipped after a match, and
    # no other comparison decides (an == would leak how many leading characters match).
    presented_digest = digest(presented).encode()
    assert sorted(comparisons) == sorted((presented_digest, known.encode()) for known in CALLERS)


def test_a_token_differing_in_any_one_position_is_refused():
    policy = BearerTokenSecurityPolicy({digest(TOKEN): "deployer"}, enabled=True)
    for position, character in enumerate(TOKEN):
        other = "A" if character != "A" else "B"
        changed = TOKEN[:position] + other + TOKEN[position + 1 :]
        assert caller(policy, f"Bearer {changed}") is None, position
    assert caller(policy, f"Bearer {TOKEN[:-1]}") is None
    assert caller(policy, f"Bearer {TOKEN}") == "deployer"
