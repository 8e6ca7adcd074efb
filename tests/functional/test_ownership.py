"""Ownership: a caller sees and acts on what it launched, unless granted more -- on every adapter.

Authentication is on, with one caller per allowed (see, act_on) combination and a caller
``other``; the cloud also holds an instance launchprov never launched (``foreign``: boto3's
RunInstances, or the dummy driver's create_node). Every refused action is checked where it
would have landed: the instance's state at the provider is unchanged.
"""

from __future__ import annotations

import json
import logging
import uuid

import boto3
import pytest

from launchprov.app import create_app
from launchprov.auth import digest
from launchprov.providers.interface import IProvider
from launchprov.settings import ConfigurationError
from tests.functional.conftest import BACKENDS
from tests.support import GOOD_AMI, assert_error_body, detail_names, make_app, seed_account

SCOPES = ("own", "launchprov", "all")
#: Every (see, act_on) the rules allow: act_on no wider than see.
COMBOS = [("own", "own"), ("launchprov", "own"), ("launchprov", "launchprov")]
COMBOS += [("all", "own"), ("all", "launchprov"), ("all", "all")]
#: Which targets each scope reaches: the caller's own instance, another caller's, and one
#: launchprov never launched.
REACH = {"own": {"own"}, "launchprov": {"own", "other"}, "all": {"own", "other", "foreign"}}
#: What a scope allows, as a 403 says it.
ALLOWS = {
    "own": "only instances it launched",
    "launchprov": "only instances launched through launchprov",
}
#: In an order each can follow the one before when allowed: running -> stopped -> running -> gone.
ACTIONS = ("reboot", "stop", "start", "terminate")


def matrix_caller(see: str, act_on: str) -> str:
    return f"c-{see}-{act_on}"


class World:
    """One backend's app with authentication on and several callers, and the cloud behind it."""

    def __init__(self, request, backend_name, policy, callers: list[str], auth: bool = True):
        self.tokens = {caller: f"token-{caller}-{uuid.uuid4().hex}" for caller in callers}
        lines = "\n".join(f"{caller} {digest(token)}" for caller, token in self.tokens.items())
        settings = {"launchprov.auth.enabled": str(auth).lower(), "launchprov.auth.tokens": lines}
        settings.update(policy)
        self.backend = BACKENDS[backend_name](request, **settings)
        self.app = self.backend.app

    def headers(self, caller: str | None) -> dict[str, str]:
        return {} if caller is None else {"Authorization": f"Bearer {self.tokens[caller]}"}

    def launch(self, caller: str, count: int = 1) -> list[str]:
        body = {"ami": GOOD_AMI, "instance_type": "t2.micro", "min_count": count}
        body["max_count"] = count
        response = self.app.put(
            "/v1/launch",
            json.dumps(body),
            content_type="application/json",
            headers=self.headers(caller),
            status=200,
        )
        return response.json

    @property
    def provider(self):
        """The adapter itself, under the app's wrappers (the bulkhead, the metrics)."""
        provider = self.app.app.registry.getUtility(IProvider)
        while hasattr(provider, "provider"):
            provider = provider.provider
        return provider

    def foreign(self, tags: dict[str, str] | None = None) -> str:
        """An instance launched without launchprov: no launchprov:caller tag, unless ``tags``
        give it one (as if launchprov had launched it)."""
        tags = tags or {"team": "prod"}
        if self.backend.ec2 is not None:
            reply = self.backend.ec2.run_instances(
                ImageId=GOOD_AMI,
                InstanceType="t2.micro",
                MinCount=1,
                MaxCount=1,
                TagSpecifications=[
                    {
                        "ResourceType": "instance",
                        "Tags": [{"Key": key, "Value": value} for key, value in tags.items()],
                    }
                ],
            )
            return reply["Instances"][0]["InstanceId"]
        driver = self.provider.driver(None)
        node = driver.create_node("foreign", driver.list_sizes()[0], driver.list_images()[0], tags)
        return str(node.id)

    def state(self, instance_id: str) -> str:
        """The instance's state as the provider itself keeps it (not as launchprov says)."""
        if self.backend.ec2 is not None:
            reply = self.backend.ec2.describe_instances(InstanceIds=[instance_id])
            return reply["Reservations"][0]["Instances"][0]["State"]["Name"]
        nodes = self.provider.driver(None).list_nodes()
        return next(str(node.state) for node in nodes if str(node.id) == instance_id)

    def get(self, caller: str, path: str):
        return self.app.get(path, headers=self.headers(caller), status="*")

    def act(self, caller: str, instance_id: str, action: str):
        if action == "terminate":
            return self.app.delete(
                f"/v1/instances/{instance_id}", headers=self.headers(caller), status="*"
            )
        return self.app.post(
            f"/v1/instances/{instance_id}/{action}", headers=self.headers(caller), status="*"
        )

    def list_all(self, caller: str, query: str = "", limit: int = 100) -> list[str]:
        """Every id of a listing, page by page."""
        ids, token = [], None
        for _ in range(200):
            url = f"/v1/instances?limit={limit}{query}" + (f"&next={token}" if token else "")
            body = self.get(caller, url).json
            assert len(body["instances"]) <= limit
            ids += [item["id"] for item in body["instances"]]
            token = body["next"]
            if token is None:
                return ids
        raise AssertionError("the listing never ended")

    def metric(self, name: str, **labels) -> float:
        wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
        for line in self.app.get("/metrics").text.splitlines():
            if line.startswith(f"{name}{{{wanted}}} "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


@pytest.fixture(params=list(BACKENDS))
def backend_name(request) -> str:
    return request.param


@pytest.fixture
def world(request, backend_name) -> World:
    """Every matrix caller with its own rules, and ``other`` with the defaults (own, own)."""
    policy = {}
    for see, act_on in COMBOS:
        caller = matrix_caller(see, act_on)
        policy[f"launchprov.policy.{caller}.see"] = see
        policy[f"launchprov.policy.{caller}.act_on"] = act_on
    callers = [matrix_caller(*combo) for combo in COMBOS] + ["other"]
    return World(request, backend_name, policy, callers)


def allowed_status(world: World, action: str) -> int:
    if action in ("stop", "start") and not world.backend.can_stop:
        return 501  # the dummy driver cannot: past the ownership check, the provider says no
    return 200


@pytest.mark.parametrize(("see", "act_on"), COMBOS, ids=[f"{s}-{a}" for s, a in COMBOS])
def test_every_cell_of_the_matrix(world, see, act_on):
    caller = matrix_caller(see, act_on)
    targets = {
        "own": world.launch(caller)[0],
        "other": world.launch("other")[0],
        "foreign": world.foreign(),
    }
    missing = assert_error_body(world.get(caller, f"/v1/instances/{world.backend.missing_id}"), 404)
    id_filter = "".join(f"&id={instance_id}" for instance_id in targets.values())
    listed = world.list_all(caller, id_filter)
    assert sorted(listed) == sorted(targets[target] for target in REACH[see])

    for target, instance_id in targets.items():
        visible = target in REACH[see]
        response = world.get(caller, f"/v1/instances/{instance_id}")
        if visible:
            assert response.status_int == 200 and response.json["id"] == instance_id
        else:
            body = assert_error_body(response, 404)
            # Word for word the answer for an id that does not exist: nothing is revealed.
            assert body["message"] == missing["message"].replace(
                world.backend.missing_id, instance_id
            )
            assert body["details"] == missing["details"]

        for action in ACTIONS:
            before = world.state(instance_id)
            response = world.act(caller, instance_id, action)
            if not visible:
                body = assert_error_body(response, 404)
                assert body["message"] == missing["message"].replace(
                    world.backend.missing_id, instance_id
                )
            elif target not in REACH[act_on]:
                body = assert_error_body(response, 403)
                assert body["message"] == (
                    f"policy: caller {caller} may not {action} instance {instance_id}: "
                    f"launchprov.policy.{caller}.act_on = {act_on} allows {ALLOWS[act_on]}"
                )
                assert detail_names(body) == ["id"]
                assert body["details"][0]["location"] == "path"
            else:
                assert response.status_int == allowed_status(world, action), response.text
            if response.status_int == 200:
                if action == "terminate":
                    assert world.state(instance_id) in ("shutting-down", "terminated")
            else:
                assert world.state(instance_id) == before, f"{action} on {target} acted"


def test_foreign_actions_are_logged_and_counted(world, caplog):
    caller = matrix_caller("all", "all")
    others = world.launch("other")[0]
    foreign = world.foreign()
    own = world.launch(caller)[0]
    with caplog.at_level(logging.INFO, logger="launchprov.ownership"):
        for instance_id in (others, foreign, own):
            assert world.act(caller, instance_id, "reboot").status_int == 200
    lines = [record for record in caplog.records if record.name == "launchprov.ownership"]
    assert [(record.instance, record.owner, record.action) for record in lines] == [
        (others, "other", "reboot"),
        (foreign, None, "reboot"),
    ]
    assert all(record.levelno == logging.INFO for record in lines)
    assert lines[0].getMessage() == f"caller {caller} did reboot on instance {others} of other"
    assert lines[1].getMessage() == (
        f"caller {caller} did reboot on instance {foreign} of no launchprov caller "
        "(not launched through launchprov)"
    )
    counted = world.metric("launchprov_foreign_actions_total", caller=caller, action="reboot")
    assert counted == 2.0
    # Its own instance is not a foreign action; another caller's own actions are not either.
    assert world.act("other", others, "terminate").status_int == 200
    assert world.metric("launchprov_foreign_actions_total", caller="other", action="terminate") == 0


def describes(world: World) -> float:
    """How many times the app has asked the provider to describe an instance, by any outcome."""
    lines = world.app.get("/metrics").text.splitlines()
    calls = [line for line in lines if line.startswith("launchprov_provider_calls_total{")]
    return sum(float(line.rsplit(" ", 1)[1]) for line in calls if 'operation="describe"' in line)


def test_the_ownership_check_asks_the_provider_no_more_than_it_needs(world):
    # A caller no rule can refuse costs no describe before its action; a refusable one costs one
    # describe, whose answer a GET then reuses: no request asks the provider the same thing twice.
    unlimited, limited = matrix_caller("all", "all"), matrix_caller("all", "own")
    others = world.launch("other")[0]
    before = describes(world)
    assert world.act(unlimited, others, "reboot").status_int == 200
    assert describes(world) == before
    assert world.get(unlimited, f"/v1/instances/{others}").json["id"] == others
    assert describes(world) == before + 1
    assert world.get(limited, f"/v1/instances/{others}").json["id"] == others
    assert describes(world) == before + 2
    assert world.get("other", f"/v1/instances/{others}").json["id"] == others
    assert describes(world) == before + 3


def test_an_own_instance_in_another_region_is_reached_there(request):
    # The ownership check describes the instance in the region the request names, not in the
    # default one (where it would not be found: a 404 for the caller's own instance).
    world = World(request, "ec2", {}, ["web"])
    eu = boto3.client("ec2", region_name="eu-west-1")  # moto's in-process mock, as world's
    seed_account(eu)
    body = {"ami": GOOD_AMI, "instance_type": "t2.micro", "placement": "eu-west-1a"}
    launched = world.app.put(
        "/v1/launch",
        json.dumps(body),
        content_type="application/json",
        headers=world.headers("web"),
    )
    (instance_id,) = launched.json
    assert world.get("web", f"/v1/instances/{instance_id}?region=eu-west-1").status_int == 200
    response = world.act("web", f"{instance_id}?region=eu-west-1", "terminate")
    assert response.status_int == 200, response.text
    (reservation,) = eu.describe_instances(InstanceIds=[instance_id])["Reservations"]
    assert reservation["Instances"][0]["State"]["Name"] in ("shutting-down", "terminated")


def test_filters_combine_with_the_scope(world):
    caller = matrix_caller("launchprov", "own")
    mine = world.launch(caller)[0]
    others = world.launch("other")[0]
    world.foreign()
    pair = f"&id={mine}&id={others}"
    assert sorted(world.list_all(caller, pair)) == sorted([mine, others])
    assert world.list_all(caller, f"{pair}&tag:launchprov:caller=other") == [others]
    # An own-scoped caller asking for another's instances gets none, without error.
    assert world.list_all("other", f"{pair}&tag:launchprov:caller={caller}") == []
    assert world.list_all("other", f"{pair}&tag:launchprov:caller=other") == [others]


def test_paging_an_own_listing_among_many_of_other_callers(request, backend_name):
    suffix = uuid.uuid4().hex[:8]
    pager, busy = f"pager-{suffix}", f"busy-{suffix}"
    world = World(request, backend_name, {}, [pager, busy])
    mine = []
    for _ in range(3):
        world.launch(busy, count=8)
        mine += world.launch(pager, count=2)
        world.foreign()
    mine += world.launch(pager)
    world.launch(busy, count=8)
    listed = world.list_all(pager, limit=2)
    assert len(listed) == len(set(listed)), "an instance was listed twice"
    assert sorted(listed) == sorted(mine)


def test_authentication_off_sees_and_acts_on_everything(request, backend_name):
    # The default rules (own, own) are in force, but with no caller to tell apart they let
    # everyone reach everything, as before ownership existed.
    world = World(request, backend_name, {}, [], auth=False)
    foreign = world.foreign()
    # One launched through launchprov by a caller, while authentication was still on.
    launched = world.foreign({"launchprov:caller": "web"})
    for instance_id in (foreign, launched):
        assert world.app.get(f"/v1/instances/{instance_id}").json["id"] == instance_id
        assert instance_id in world.list_all(None, f"&id={instance_id}")
        assert world.app.delete(f"/v1/instances/{instance_id}").json["id"] == instance_id
        assert world.state(instance_id) in ("shutting-down", "terminated")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"act_on": "launchprov"},
            "launchprov.policy.act_on = launchprov is wider than launchprov.policy.see = own",
        ),
        (
            {"see": "all", "act_on": "all", "ops.see": "launchprov"},
            "launchprov.policy.act_on = all is wider than launchprov.policy.ops.see = launchprov",
        ),
        (
            {"ops.act_on": "all"},
            "launchprov.policy.ops.act_on = all is wider than launchprov.policy.see = own",
        ),
    ],
)
def test_act_on_wider_than_see_stops_startup(settings, message):
    ini = {f"launchprov.policy.{key}": value for key, value in settings.items()}
    with pytest.raises(ConfigurationError, match="wider than") as raised:
        create_app({"launchprov.auth.enabled": "false", **ini})
    assert message in str(raised.value)


@pytest.mark.parametrize("value", ["mine", "ALL", ""])
def test_an_unknown_scope_stops_startup(value):
    with pytest.raises(ConfigurationError, match=r"launchprov\.policy\.see"):
        make_app(**{"launchprov.policy.see": value})
