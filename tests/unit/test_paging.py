"""Pages of the caller's size cut from a provider's own pages, with a stateless token."""

from __future__ import annotations

import pytest

from launchprov.providers.interface import InvalidPageToken
from launchprov.providers.paging import decode_token, encode_token, page


class Provider:
    """A provider that pages ``items`` its own way, counting its calls.

    Page n holds ``sizes[n % len(sizes)]`` items (0: an empty page that is not the last, as EC2
    gives with filters); the same token always gives the same page.
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
        return self.items[start:end], following


def read_all(provider, limit, page_size=50):
    seen, token, pages = [], None, 0
    while True:
        items, token = page(provider.fetch, limit, token, page_size)
        assert len(items) <= limit
        seen += items
        pages += 1
        if token is None:
            return seen, pages
        assert pages < 1000, "the listing never ends"


@pytest.mark.parametrize("limit", [1, 3, 7, 50, 99, 100, 101, 250, 1000])
@pytest.mark.parametrize("sizes", [[100], [7, 13], [1], [30, 0, 30]])
def test_every_item_exactly_once_in_order(limit, sizes):
    items = list(range(237))
    seen, _ = read_all(Provider(items, sizes), limit)
    assert seen == items


def test_a_single_short_page_has_no_next():
    items, token = page(Provider(range(3), [100]).fetch, 10, None, 10)
    assert (items, token) == ([0, 1, 2], None)


def test_an_empty_listing():
    assert page(Provider([], [100]).fetch, 10, None, 10) == ([], None)


def test_a_token_keeps_the_page_size_it_was_made_with():
    provider = Provider(range(300), [100])
    _, token = page(provider.fetch, 10, None, 25)
    page(provider.fetch, 500, token, 999)
    assert {size for _, size in provider.calls} == {25}


def test_token_round_trip():
    assert decode_token(encode_token("abc", 100, 7)) == ("abc", 100, 7)
    assert decode_token(encode_token(None, 5, 0)) == (None, 5, 0)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not base64 !",
        "eyJ0IjoxfQ",  # {"t":1}
        encode_token("x", 0, 0),
        encode_token("x", 5, -1),
        "W10",  # []
        "\u00e9",
    ],
)
def test_tokens_not_made_here_are_refused(token):
    with pytest.raises(InvalidPageToken):
        decode_token(token)
