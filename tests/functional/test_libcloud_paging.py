"""Paging on every recorded Libcloud cloud while a node goes away between pages.

250 nodes, read 100 at a time; after the first page one of the nodes it served is deleted.
With offset paging the next page started one node too far, and a live node was never listed.
The nodes are the recording's own, parsed by the driver, copied under 250 ids.
"""

from __future__ import annotations

import copy

import pytest

from launchprov.providers.libcloud.profiles import PROFILES
from tests.recorded import RECORDED
from tests.support import make_app


def recorded_app(name: str, monkeypatch):
    """The app on a recorded cloud's replies."""
    recorded = RECORDED[name]
    recorded.patch(monkeypatch)
    return make_app(**recorded.app_settings())


def pages(app, limit: int, between=lambda served: None) -> list[list[str]]:
    found, token = [], None
    while True:
        url = f"/v1/instances?limit={limit}" + (f"&next={token}" if token else "")
        body = app.get(url, status=200).json
        found.append([item["id"] for item in body["instances"]])
        token = body["next"]
        if token is None:
            return found
        between(found[-1])
        assert len(found) < 20, "the listing never ends"


@pytest.mark.parametrize("name", list(RECORDED))
def test_a_node_deleted_between_pages_hides_no_other(name, monkeypatch):
    app = recorded_app(name, monkeypatch)
    driver_class = PROFILES[name].driver_class()
    recorded = driver_class.list_nodes
    public_id = PROFILES[name].reading.public_id
    nodes: list = []

    def listing(self, *args, **kwargs):
        if not nodes:  # the recording's first node, 250 times
            model = recorded(self, *args, **kwargs)[0]
            for number in range(250):
                node = copy.copy(model)
                node.id = f"{model.id}-{number:03d}"
                nodes.append(node)
        return list(nodes)

    monkeypatch.setattr(driver_class, "list_nodes", listing)
    everyone: set[str] = set()

    def delete_one_served(served: list[str]) -> None:
        if not everyone:
            everyone.update(public_id(str(node.id)) for node in nodes)
            nodes.remove(next(node for node in nodes if public_id(str(node.id)) == served[1]))

    listed = pages(app, 100, delete_one_served)

    seen = [instance_id for page in listed for instance_id in page]
    assert len(everyone) == 250
    assert [len(page) for page in listed] == [100, 100, 50]
    assert len(seen) == len(set(seen)) == 250  # the deleted one was served before it went
    assert set(seen) == everyone
