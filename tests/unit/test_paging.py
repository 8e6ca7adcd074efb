"""Pages of the caller's size cut from a provider's own pages, with a stateless token."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from libcloud.compute.types import NodeState

from launchprov import settings as launchprov_settings
from launchprov.providers.interface import InstanceQuery, InvalidPageToken
from launchprov.providers.libcloud import LibcloudProvider
from launchprov.providers.paging import decode_token, encode_token, page, scope_of

SCOPE = scope_of(InstanceQuery("us-east-1"))


def same(item: str) -> str:
    return item


class Provider:
    """A provider that pages ``items`` its own way, counting its calls.

    Page n holds ``sizes[n % len(sizes)]`` items (0: an empty page that is not the last, as EC2
    gives with filters); the same token always gives the same page, its items in reverse
    order (a provider's order is not launchprov's).
    """

    def __init__(self, items, sizes):
        self.items = list(items)
        self.sizes = sizes
        self.calls = []

    def fetch(self, token, page_size):
        self.calls.append((token, page_size))
        start, number = map(int, (token or "0:0").split(":"))
        end = start + self.sizes[number % len(self.sizes)]
        following = f"{end}:{number + 1}" if end < len(self.items) else None
        return self.items[start:end][::-1], following


def items(count: int) -> list[str]:
    return [f"{n:04d}" for n in range(count)]


def read_all(provider, limit, page_size=50):
    seen, token, pages = [], None, 0
    while True:
        found, token = page(provider.fetch, limit, token, page_size, SCOPE, same)
        assert len(found) <= limit
        seen += found
        pages += 1
        if token is None:
            return seen, pages
        assert pages < 1000, "the listing never ends"


@pytest.mark.parametrize("limit", [1, 3, 7, 50, 99, 100, 101, 250, 1000])
@pytest.mark.parametrize("sizes", [[100], [7, 13], [1], [30, 0, 30]])
def test_every_item_exactly_once_in_id_order(limit, sizes):
    every = items(237)
    seen, _ = read_all(Provider(every, sizes), limit)
    assert seen == every


def test_a_single_short_page_has_no_next():
    found, token = page(Provider(items(3), [100]).fetch, 10, None, 10, SCOPE, same)
    assert (found, token) == (items(3), None)


def test_an_empty_listing():
    assert page(Provider([], [100]).fetch, 10, None, 10, SCOPE, same) == ([], None)


def test_a_token_keeps_the_page_size_it_was_made_with():
    provider = Provider(items(300), [100])
    _, token = page(provider.fetch, 10, None, 25, SCOPE, same)
    page(provider.fetch, 500, token, 999, SCOPE, same)
    assert {size for _, size in provider.calls} == {25}


def test_a_provider_page_served_whole_hands_on_the_providers_token():
    provider = Provider(items(30), [10])

    _, whole = page(provider.fetch, 10, None, 10, SCOPE, same)
    _, cut = page(provider.fetch, 4, whole, 10, SCOPE, same)

    assert decode_token(whole, SCOPE) == ("10:1", 10, None)
    # Cut: the same provider page again, from the greatest id served.
    assert decode_token(cut, SCOPE) == ("10:1", 10, "0013")


def test_a_cut_page_read_again_skips_nothing_when_served_items_leave():
    # The offset paging of old served 3, then skipped 3 of what was left after two served
    # items had gone: "0003" and "0004" were never served.
    listing = items(8)
    fetch = lambda token, size: (list(listing), None)  # noqa: E731
    first, token = page(fetch, 3, None, 100, SCOPE, same)
    listing.remove("0000")
    listing.remove("0002")
    listing.append("0001a")  # launched meanwhile, below the cursor: not this listing's

    second, token = page(fetch, 3, token, 100, SCOPE, same)
    third, token = page(fetch, 3, token, 100, SCOPE, same)

    assert first == ["0000", "0001", "0002"]
    assert second + third == ["0003", "0004", "0005", "0006", "0007"]
    assert token is None


def test_token_round_trip():
    assert decode_token(encode_token("abc", 100, "i-7", SCOPE), SCOPE) == ("abc", 100, "i-7")
    assert decode_token(encode_token(None, 5, None, SCOPE), SCOPE) == (None, 5, None)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not base64 !",
        "eyJ0IjoxfQ",  # {"t":1}
        encode_token("x", 0, None, SCOPE),
        encode_token("x", 5, 7, SCOPE),  # type: ignore[arg-type]
        encode_token("x", 5, None, None),  # type: ignore[arg-type]
        "W10",  # []
        "\u00e9",
    ],
)
def test_tokens_not_made_here_are_refused(token):
    with pytest.raises(InvalidPageToken, match="not a page token"):
        decode_token(token, SCOPE)


def test_a_token_of_another_query_is_refused():
    other = scope_of(InstanceQuery("us-east-1", states=("running",)))
    token = encode_token("x", 5, "i-1", other)

    with pytest.raises(InvalidPageToken, match="another query"):
        decode_token(token, SCOPE)
    with pytest.raises(InvalidPageToken, match="another query"):
        page(Provider(items(9), [5]).fetch, 2, token, 5, SCOPE, same)


def test_the_scope_is_the_filters_not_the_limit_nor_their_order():
    query = InstanceQuery(
        "us-east-1", ids=("i-2", "i-1"), states=("running", "pending"), tags={"a": ("1", "2")}
    )
    same_filters = InstanceQuery(
        "us-east-1",
        ids=("i-1", "i-2"),
        states=("pending", "running"),
        tags={"a": ("2", "1")},
        limit=7,
        page_token="whatever",
    )
    assert scope_of(query) == scope_of(same_filters)
    others = [
        InstanceQuery("us-west-2", ids=("i-2", "i-1"), states=("running", "pending")),
        InstanceQuery("us-east-1", ids=("i-2",), states=("running", "pending")),
        InstanceQuery("us-east-1", tags={"a": ("1", "3")}),
        InstanceQuery("us-east-1", tag_keys=("a",)),
    ]
    assert len({scope_of(query), *map(scope_of, others)}) == 1 + len(others)
    assert scope_of(query, expired=True) != scope_of(query, expired=False) != scope_of(query)


# -- the dummy driver, while instances come and go between pages -------------------------------

RUNNING = InstanceQuery("us-east-1", states=("running",))

#: What happens between two pages: how many nodes are launched, and which running ones (by
#: their rank among the running, modulo their number) are terminated.
BETWEEN_PAGES = st.tuples(st.integers(0, 3), st.lists(st.integers(0, 1000), max_size=3))


def dummy_provider() -> LibcloudProvider:
    raw = {"launchprov.provider": "libcloud", "launchprov.libcloud.driver": "dummy"}
    return LibcloudProvider.from_settings(launchprov_settings.load(raw, environ={}))


def running_ids(driver) -> list[str]:
    return sorted(str(node.id) for node in driver.list_nodes() if node.state == NodeState.RUNNING)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    initial=st.integers(0, 25),
    limit=st.integers(1, 6),
    between=st.lists(BETWEEN_PAGES, max_size=12),
)
def test_dummy_every_instance_live_throughout_once_whatever_comes_and_goes(initial, limit, between):
    provider = dummy_provider()
    driver = provider.driver(None)
    for _ in range(initial):
        driver.create_node(name="n", size=None, image=None)
    live_throughout = set(running_ids(driver))
    seen, token, events = [], None, iter(between)
    while True:
        listed = provider.list_instances(
            dataclasses.replace(RUNNING, limit=limit, page_token=token)
        )
        assert len(listed.instances) <= limit
        seen += [instance.id for instance in listed.instances]
        token = listed.next_token
        if token is None:
            break
        launches, terminations = next(events, (0, []))
        for _ in range(launches):
            driver.create_node(name="n", size=None, image=None)
        running = running_ids(driver)
        for rank in terminations:
            if running:
                node_id = running[rank % len(running)]
                driver.destroy_node(next(n for n in driver.list_nodes() if str(n.id) == node_id))
                live_throughout.discard(node_id)
        assert len(seen) < 500, "the listing never ends"

    assert len(seen) == len(set(seen)), "an instance was listed twice"
    assert live_throughout <= set(seen), "a live instance was skipped"
