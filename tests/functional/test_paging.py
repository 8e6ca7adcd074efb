"""Listing through the app while instances come and go between pages, on moto.

Whatever is launched or terminated between two pages, every instance that stays from the
first page to the last is listed exactly once, and none twice (launchprov.providers.paging).
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from libcloud.compute.drivers.ec2 import NAMESPACE
from libcloud.utils.xml import findall

from launchprov.auth import digest
from launchprov.providers import paging
from launchprov.providers.interface import IProvider
from launchprov.providers.libcloud import ec2 as libcloud_ec2
from tests.functional.conftest import BACKENDS, Backend
from tests.functional.test_instances import launch
from tests.support import GOOD_AMI, assert_error_body, detail_names

#: Before the listing: the launches (each of 1 to 4 instances, one reservation each).
BEFORE = st.lists(st.integers(1, 4), min_size=1, max_size=6)
#: Between two pages: the launches, and which instances (by rank among the live ones,
#: modulo their number) are terminated.
BETWEEN = st.lists(
    st.tuples(st.lists(st.integers(1, 3), max_size=2), st.lists(st.integers(0, 1000), max_size=2)),
    max_size=8,
)
PROPERTY = settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    # Each example is a few seconds of moto: a failure is reported as found, not shrunk.
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def read_while_changing(
    backend, tag: str, query: str, limit: int, between
) -> tuple[list[str], set[str], set[str]]:
    """Every page of ``query``, launching (tagged run=``tag``) and terminating between pages
    as ``between`` says: (the ids listed, the ids launched meanwhile, those terminated)."""
    seen, token, events = [], None, iter(between)
    launched: set[str] = set()
    terminated: set[str] = set()
    while True:
        url = f"/v1/instances?{query}&limit={limit}" + (f"&next={token}" if token else "")
        body = backend.app.get(url, status=200).json
        assert len(body["instances"]) <= limit
        seen += [item["id"] for item in body["instances"]]
        token = body["next"]
        if token is None:
            return seen, launched, terminated
        launches, ranks = next(events, ([], []))
        for count in launches:
            launched.update(launch(backend, count, tags={"run": tag}))
        live = sorted((backend.live | launched) - terminated)
        doomed = {live[rank % len(live)] for rank in ranks if live}
        if doomed:  # at the provider, as another client would
            backend.ec2.terminate_instances(InstanceIds=sorted(doomed))
            terminated |= doomed
        assert len(seen) < 500, "the listing never ends"


@pytest.fixture
def ec2_backend(request) -> Backend:
    """The boto3 adapter alone (the pager is shared; the Libcloud EC2 adapter's EC2 pages are
    read by tests/unit/test_libcloud.py)."""
    return BACKENDS["ec2"](request)


def launched_before(backend, before) -> str:
    """Launch ``before``'s instances tagged with a new run: the run's tag. Their ids are
    ``backend.live``."""
    tag = uuid.uuid4().hex[:12]
    backend.live = {
        instance_id for count in before for instance_id in launch(backend, count, tags={"run": tag})
    }
    return tag


@PROPERTY
@given(before=BEFORE, limit=st.integers(1, 5), between=BETWEEN)
def test_live_instances_listed_once_whatever_comes_and_goes(ec2_backed, before, limit, between):
    """With a state filter, a terminated instance leaves the listing: the offsets of old
    skipped a live one then. One EC2 page (up to limit + 200 instances): exact."""
    tag = launched_before(ec2_backed, before)

    seen, launched, terminated = read_while_changing(
        ec2_backed, tag, f"tag:run={tag}&state=pending&state=running", limit, between
    )

    assert len(seen) == len(set(seen)), "an instance was listed twice"
    assert ec2_backed.live - terminated <= set(seen), "a live instance was skipped"
    assert set(seen) <= ec2_backed.live | launched


@PROPERTY
@given(
    before=st.lists(st.integers(1, 2), min_size=6, max_size=10),
    limit=st.integers(2, 5),
    between=BETWEEN,
)
def test_across_ec2_pages_every_instance_once(ec2_backend, monkeypatch, before, limit, between):
    """EC2 pages of 5 reservations (tokens carrying 2 ids: the first page has room for few):
    a page served whole hands on EC2's NextToken, a cut one hands on the ids left in it, or
    is read again above the cursor. Without a state filter, terminated instances stay listed
    (moto keeps them, as EC2 does for an hour), and every instance of the start is listed
    once. (With a state filter, moto cannot go on from a NextToken whose reservation has left
    the listing: it fails, which EC2 does not; see launchprov.providers.paging.)"""
    monkeypatch.setattr(paging, "CARRIED_IDS", 2)
    tag = launched_before(ec2_backend, before)

    seen, launched, _ = read_while_changing(ec2_backend, tag, f"tag:run={tag}", limit, between)

    assert len(seen) == len(set(seen)), "an instance was listed twice"
    assert ec2_backend.live <= set(seen), "an instance was skipped"
    assert set(seen) <= ec2_backend.live | launched


@pytest.mark.parametrize(
    "other",
    ["tag:run=other", "tag:run={tag}&state=running", "tag:run={tag}&region=us-west-2"],
)
def test_a_token_of_another_query_is_400(backend, other):
    tag = uuid.uuid4().hex[:12]
    launch(backend, 3, tags={"run": tag})
    token = backend.app.get(f"/v1/instances?tag:run={tag}&limit=1").json["next"]
    assert token is not None
    # The same query with another limit goes on.
    assert backend.app.get(f"/v1/instances?tag:run={tag}&limit=5&next={token}").json["next"] is None

    response = backend.app.get(
        f"/v1/instances?{other.format(tag=tag)}&limit=1&next={token}", status="*"
    )

    error = assert_error_body(response, 400)
    assert detail_names(error) == ["next"]
    assert "another query" in error["message"]


def test_a_token_of_the_unexpired_listing_is_refused_by_the_expired_one(backend):
    tag = uuid.uuid4().hex[:12]
    launch(backend, 3, tags={"run": tag})
    token = backend.app.get(f"/v1/instances?tag:run={tag}&expired=false&limit=1").json["next"]
    assert token is not None

    response = backend.app.get(f"/v1/instances?tag:run={tag}&limit=1&next={token}", status="*")

    assert detail_names(assert_error_body(response, 400)) == ["next"]


# -- the cloud's API budget: each instance read about once a listing -------------------------


class Wire:
    """Every DescribeInstances the adapter sends, and the instances its replies hold."""

    def __init__(self, backend, monkeypatch):
        self.calls = 0
        self.instances = 0
        if backend.name == "ec2":  # boto3: the reply as botocore parsed it
            provider = backend.app.app.registry.getUtility(IProvider)
            while hasattr(provider, "provider"):
                provider = provider.provider
            events = provider.client("us-east-1").meta.events
            events.register("after-call.ec2.DescribeInstances", self._boto3_reply)
        else:  # Libcloud: the reply's XML, as the adapter's one request function gets it
            send = libcloud_ec2.request

            def counted(driver, params, *args, **kwargs):
                reply = send(driver, params, *args, **kwargs)
                if params.get("Action") == "DescribeInstances":
                    found = findall(reply, "reservationSet/item/instancesSet/item", NAMESPACE)
                    self.count(len(found))
                return reply

            monkeypatch.setattr(libcloud_ec2, "request", counted)

    def count(self, instances: int) -> None:
        self.calls += 1
        self.instances += instances

    def _boto3_reply(self, parsed, **kwargs) -> None:
        self.count(sum(len(item["Instances"]) for item in parsed.get("Reservations", [])))


def test_a_full_listing_reads_each_instance_about_once(ec2_backed, monkeypatch):
    """200 instances in reservations of 50, read 10 at a time: a page of the caller's cut
    from a provider page of 200 cost a read of all 200 (4,000 instances read for 200); now
    the rest of a cut page is read by id, once."""
    tag = uuid.uuid4().hex[:12]
    launched = {i for _ in range(4) for i in launch(ec2_backed, 50, tags={"run": tag})}
    ec2_backed.live = launched
    wire = Wire(ec2_backed, monkeypatch)

    seen, _, _ = read_while_changing(ec2_backed, tag, f"tag:run={tag}", 10, [])

    assert len(seen) == len(set(seen)) == 200 and set(seen) == launched
    assert wire.calls <= 200 // 10 + 5
    assert wire.instances <= 2 * 200 + 50


# -- a token is its caller's --------------------------------------------------------------------


@pytest.fixture
def two_callers(request, backend_name):
    """The app with authentication on, callers ``alice`` and ``bob`` who both see every
    instance (so that their queries are the same): (backend, headers of each)."""
    tokens = {caller: f"token-{caller}-{uuid.uuid4().hex}" for caller in ("alice", "bob")}
    settings = {
        "launchprov.auth.enabled": "true",
        "launchprov.auth.tokens": "\n".join(f"{c} {digest(t)}" for c, t in tokens.items()),
        "launchprov.policy.see": "all",
        "launchprov.policy.act_on": "all",
    }
    backend = BACKENDS[backend_name](request, **settings)
    headers = {caller: {"Authorization": f"Bearer {token}"} for caller, token in tokens.items()}
    return backend, headers


@pytest.mark.parametrize("backend_name", list(BACKENDS))
def test_another_callers_token_is_400_naming_next(two_callers):
    backend, headers = two_callers
    tag = uuid.uuid4().hex[:12]
    body = {"ami": GOOD_AMI, "instance_type": "t2.micro", "min_count": 3, "max_count": 3}
    body["tags"] = {"run": tag}
    backend.app.put_json("/v1/launch", body, headers=headers["alice"], status=200)
    url = f"/v1/instances?tag:run={tag}&limit=1"
    token = backend.app.get(url, headers=headers["alice"], status=200).json["next"]
    assert token is not None

    response = backend.app.get(f"{url}&next={token}", headers=headers["bob"], status="*")

    error = assert_error_body(response, 400)
    assert detail_names(error) == ["next"]
    assert "another caller" in error["message"]
    # Its own caller goes on with it, and bob's own listing works.
    own = backend.app.get(f"{url}&next={token}", headers=headers["alice"], status=200).json
    assert len(own["instances"]) == 1
    assert backend.app.get(url, headers=headers["bob"], status=200).json["next"] is not None


def test_an_altered_token_is_400_naming_next(backend):
    tag = uuid.uuid4().hex[:12]
    launch(backend, 3, tags={"run": tag})
    token = backend.app.get(f"/v1/instances?tag:run={tag}&limit=1").json["next"]
    inner, seal = token.rsplit(".", 1)
    altered = inner[:-1] + ("A" if inner[-1] != "A" else "B")

    for bad in (f"{altered}.{seal}", inner, f"{inner}.{seal[:-1]}"):
        response = backend.app.get(f"/v1/instances?tag:run={tag}&limit=1&next={bad}", status="*")
        assert detail_names(assert_error_body(response, 400)) == ["next"]
