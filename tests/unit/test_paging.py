"""Pages of the caller's size cut from a provider's own pages, with a stateless token."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import secrets
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from libcloud.compute.types import NodeState

from launchprov import settings as launchprov_settings
from launchprov.page_tokens import PageTokens
from launchprov.providers import ec2_common, paging
from launchprov.providers.interface import InstanceQuery, InvalidPageToken
from launchprov.providers.libcloud import LibcloudProvider
from launchprov.providers.paging import (
    CARRIED_IDS,
    Pages,
    Position,
    decode_token,
    encode_token,
    page,
    scope_of,
)
from launchprov.schemas import MAX_PAGE_TOKEN

SCOPE = scope_of(InstanceQuery("us-east-1"))
#: A provider that takes pages of any size (a Libcloud listing under the lease filter).
ANY = Pages()


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


def read_all(provider, limit, pages=ANY, fetch_ids=None):
    seen, token, served = [], None, 0
    while True:
        found, token = page(provider.fetch, limit, token, SCOPE, pages, same, fetch_ids)
        assert len(found) <= limit
        seen += found
        served += 1
        if token is None:
            return seen, served
        assert served < 1000, "the listing never ends"


@pytest.mark.parametrize("limit", [1, 3, 7, 50, 99, 100, 101, 250, 1000])
@pytest.mark.parametrize("sizes", [[100], [7, 13], [1], [30, 0, 30]])
def test_every_item_exactly_once_in_id_order(limit, sizes):
    every = items(237)
    seen, _ = read_all(Provider(every, sizes), limit)
    assert seen == every


def test_a_single_short_page_has_no_next():
    found, token = page(Provider(items(3), [100]).fetch, 10, None, SCOPE, ANY, same)
    assert (found, token) == (items(3), None)


def test_an_empty_listing():
    assert page(Provider([], [100]).fetch, 10, None, SCOPE, ANY, same) == ([], None)


def test_a_cut_page_read_again_skips_nothing_when_served_items_leave():
    # The offset paging of old served 3, then skipped 3 of what was left after two served
    # items had gone: "0003" and "0004" were never served.
    listing = items(8)
    fetch = lambda token, size: (list(listing), None)  # noqa: E731
    first, token = page(fetch, 3, None, SCOPE, ANY, same)
    listing.remove("0000")
    listing.remove("0002")
    listing.append("0001a")  # launched meanwhile, below the cursor: not this listing's

    second, token = page(fetch, 3, token, SCOPE, ANY, same)
    third, token = page(fetch, 3, token, SCOPE, ANY, same)

    assert first == ["0000", "0001", "0002"]
    assert second + third == ["0003", "0004", "0005", "0006", "0007"]
    assert token is None


# -- a cloud that pages by reservation (EC2, moto), read about once per listing ----------------


def instance_id(number: int) -> str:
    """An EC2-like id: launch order and id order differ."""
    return "i-" + hashlib.sha256(str(number).encode()).hexdigest()[:17]


class Reservations:
    """An EC2 account as DescribeInstances pages it: reservations in launch order, never split
    across pages; ``MaxResults`` (5 to 1000, as EC2 takes) counts reservations (moto) or
    instances (EC2: whole reservations until the count is reached); the token names the last
    reservation served. ``fetch_ids`` is the instance-id filter. Only live instances are
    listed (a state filter); every call and every instance read is counted."""

    def __init__(self, sizes, counts="reservations"):
        self.reservations: list[list[str]] = []
        self.live: set[str] = set()
        self.counts = counts
        self.calls = 0
        self.read = 0
        for size in sizes:
            self.launch(size)

    def launch(self, size: int) -> list[str]:
        first = sum(map(len, self.reservations))
        ids = [instance_id(first + n) for n in range(size)]
        self.reservations.append(ids)
        self.live.update(ids)
        return ids

    def _answer(self, ids):
        self.calls += 1
        self.read += len(ids)
        return ids

    def fetch(self, token, size):
        assert 5 <= size <= 1000
        start = 0 if token is None else int(token) + 1
        served, page, index = 0, [], start
        while index < len(self.reservations) and served < size:
            live = [i for i in self.reservations[index] if i in self.live]
            if live:  # a reservation whose instances all left is not listed
                page += live
                served += 1 if self.counts == "reservations" else len(live)
            index += 1
        more = any(i in self.live for r in self.reservations[index:] for i in r)
        return self._answer(page[::-1]), (str(index - 1) if more else None)

    def fetch_ids(self, ids):
        assert len(ids) <= 200
        return self._answer([i for i in ids if i in self.live])


@pytest.mark.parametrize("counts", ["reservations", "instances"])
@pytest.mark.parametrize(
    ("sizes", "limit"),
    [
        ([50] * 4, 10),  # reservations far larger than a page of the caller's
        ([20] * 50, 100),  # the issue's account: 1,000 instances launched 20 at a time
        ([1] * 300, 7),
        ([3, 40, 1, 17, 250, 2, 9] * 3, 25),
        ([500] * 8, 100),  # larger than a token can carry: read again, but not per slice
    ],
)
def test_each_instance_read_about_once_per_listing(sizes, limit, counts):
    """Reading a cut page again for every slice cost a whole provider page per page served
    (200 instances in reservations of 50, 10 at a time: 20 reads of all 200)."""
    cloud = Reservations(sizes, counts)
    total = sum(sizes)

    seen, served = read_all(cloud, limit, ec2_common.LISTING_PAGES, cloud.fetch_ids)

    assert sorted(seen) == sorted(cloud.live)
    assert len(seen) == total
    # Calls: one or two a page of the caller's; instances: each about once (a cut page's
    # rest is read again by id; the first page probes the reservations' size).
    assert cloud.calls <= 2 * served + 2
    if max(sizes) <= CARRIED_IDS:
        assert cloud.read <= 2 * total + 5 * max(sizes)
    else:  # read again once every CARRIED_IDS + limit served, not once a page
        pages_per_reread = (CARRIED_IDS + limit) // limit
        assert cloud.read <= 2 * total + (served // pages_per_reread + 1) * 5 * max(sizes)


def test_200_in_reservations_of_50_ten_at_a_time_makes_about_20_calls():
    cloud = Reservations([50] * 4)

    seen, served = read_all(cloud, 10, ec2_common.LISTING_PAGES, cloud.fetch_ids)

    assert len(seen) == len(set(seen)) == 200 and served == 20
    assert cloud.calls <= 200 // 10 + 5
    assert cloud.read <= 2 * 200


def test_a_page_of_the_issues_account_is_one_call_of_about_limit():
    """1,000 instances in reservations of 20: after the first pages, one DescribeInstances of
    5 reservations (100 instances) a page of 100, consumed whole."""
    cloud = Reservations([20] * 50)
    _, token = page(cloud.fetch, 100, None, SCOPE, ec2_common.LISTING_PAGES, same, cloud.fetch_ids)
    for _ in range(3):  # the first page's room: the ids it carries
        _, token = page(
            cloud.fetch, 100, token, SCOPE, ec2_common.LISTING_PAGES, same, cloud.fetch_ids
        )
    calls, read = cloud.calls, cloud.read

    found, token = page(
        cloud.fetch, 100, token, SCOPE, ec2_common.LISTING_PAGES, same, cloud.fetch_ids
    )

    assert len(found) == 100 and token is not None
    assert (cloud.calls - calls, cloud.read - read) == (1, 100)


#: What happens between two pages: the sizes of the reservations launched, and which live
#: instances (by their rank, modulo their number) are terminated.
BETWEEN = st.tuples(
    st.lists(st.integers(1, 30), max_size=2), st.lists(st.integers(0, 10_000), max_size=8)
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    sizes=st.lists(st.integers(1, 60), min_size=1, max_size=12),
    limit=st.integers(1, 40),
    counts=st.sampled_from(["reservations", "instances"]),
    carried=st.sampled_from([3, 200]),
    between=st.lists(BETWEEN, max_size=30),
)
def test_reservations_every_instance_live_throughout_once(sizes, limit, counts, carried, between):
    """Pages of the caller's size from reservations, cut pages carried by id or read again
    (a token carrying 3 ids), while reservations are launched and instances terminated."""
    cloud = Reservations(sizes, counts)
    live_throughout = set(cloud.live)
    seen, token, events = [], None, iter(between)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(paging, "CARRIED_IDS", carried)
        while True:
            found, token = page(
                cloud.fetch, limit, token, SCOPE, ec2_common.LISTING_PAGES, same, cloud.fetch_ids
            )
            assert len(found) <= limit
            seen += found
            if token is None:
                break
            launches, ranks = next(events, ([], []))
            for size in launches:
                cloud.launch(size)
            live = sorted(cloud.live)
            for rank in ranks:
                if live:
                    gone = live.pop(rank % len(live))
                    cloud.live.discard(gone)
                    live_throughout.discard(gone)
            assert len(seen) < 5000, "the listing never ends"

    assert len(seen) == len(set(seen)), "an instance was listed twice"
    assert live_throughout <= set(seen), "a live instance was skipped"


# -- the token -----------------------------------------------------------------------------


def test_token_round_trip():
    position = Position("abc", 100, "i-7", ["i-8", "i-9"], 20.0)
    assert decode_token(encode_token(position, SCOPE), SCOPE) == position
    assert decode_token(encode_token(Position(), SCOPE), SCOPE) == Position()


def test_a_token_carrying_the_most_ids_is_taken_back_by_the_service():
    ids = sorted(instance_id(n) for n in range(CARRIED_IDS))
    ec2_next_token = secrets.token_urlsafe(1500)  # EC2's NextToken is opaque and long
    position = Position(ec2_next_token, 5, ids[-1], ids, 20.0)
    tokens = PageTokens("k" * 32, "a-caller-with-a-long-name" * 10, InstanceQuery("us-east-1"))

    sealed = tokens.seal(encode_token(position, SCOPE))

    assert len(sealed) <= MAX_PAGE_TOKEN
    assert decode_token(tokens.open(sealed), SCOPE) == position


def raw_token(payload) -> str:
    text = json.dumps(payload).encode()
    return base64.urlsafe_b64encode(zlib.compress(text)).decode().rstrip("=")


GOOD = {"t": "x", "m": 5, "c": None, "r": [], "d": 1.0, "q": SCOPE}


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not base64 !",
        "eyJ0IjoxfQ",  # {"t":1}, not compressed
        raw_token({"t": 1}),
        raw_token({**GOOD, "t": 7}),  # EC2's NextToken is a string
        raw_token({**GOOD, "t": "x" * 70_000}),  # inflates beyond 64 KiB: read no further
        raw_token({**GOOD, "m": -1}),
        raw_token({**GOOD, "c": 7}),
        raw_token({**GOOD, "c": "i-1", "m": 0}),
        raw_token({**GOOD, "r": ["i-1", 2]}),
        raw_token({**GOOD, "r": ["i-1"] * (CARRIED_IDS + 1)}),
        raw_token({**GOOD, "d": 0.5}),
        raw_token({**GOOD, "d": "20"}),
        raw_token({**GOOD, "q": None}),
        raw_token([]),
        "\u00e9",
    ],
)
def test_tokens_not_made_here_are_refused(token):
    assert decode_token(raw_token(GOOD), SCOPE) == Position("x", 5, None, [], 1.0)
    with pytest.raises(InvalidPageToken, match=r"\Anot a page token of this service\Z"):
        decode_token(token, SCOPE)


def test_a_token_at_the_greatest_density_learned_is_taken_back():
    # _new_page never learns more than paging._MAX_DENSITY instances a unit.
    position = Position("x", 5, None, [], paging._MAX_DENSITY)
    assert decode_token(encode_token(position, SCOPE), SCOPE) == position


def test_a_token_naming_a_page_size_the_provider_refuses_is_refused():
    cloud = Reservations([5] * 3)
    token = encode_token(Position(None, 1001, "i-1"), SCOPE)

    with pytest.raises(InvalidPageToken, match=r"\Anot a page token of this service\Z"):
        page(cloud.fetch, 2, token, SCOPE, ec2_common.LISTING_PAGES, same, cloud.fetch_ids)
    assert cloud.calls == 0


def test_a_token_of_another_query_is_refused():
    other = scope_of(InstanceQuery("us-east-1", states=("running",)))
    token = encode_token(Position("x", 5, "i-1"), other)

    with pytest.raises(
        InvalidPageToken,
        match=r"\Aa token of another query: send the same filters as for the first page, or none\Z",
    ):
        decode_token(token, SCOPE)
    with pytest.raises(
        InvalidPageToken,
        match=r"\Aa token of another query: send the same filters as for the first page, or none\Z",
    ):
        page(Provider(items(9), [5]).fetch, 2, token, SCOPE, ANY, same)


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
    # One field changed, the rest the same.
    assert scope_of(dataclasses.replace(query, tags={"a": ("1", "3")})) != scope_of(query)
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
