"""The libcloud conformance matrix: every profiled driver through launchprov's public surface.

Each driver runs behind the app that ``launchprov.main`` builds from ``launchprov.provider =
libcloud`` settings, over webtest, with its connection class pointed at the MockHttp and the
recorded replies that Apache Libcloud ships for its own driver tests (``tests/recorded.py``);
``ec2`` runs against a moto server (behind the fault-injecting endpoint, which answers EC2's
capacity error when told to) and ``dummy`` in memory. One app per driver serves the module.

Every cell of the docs' driver matrix (launch parameter x driver, action x driver) is checked
by its effect, as the verification table (``launchprov.providers.libcloud.conformance``) says:
what reached the recorded cloud's wire (:class:`tests.recorded.Traffic`), the instance at the
provider (EC2, the dummy), or the answer that names the limit. Each parameter is given a value
other than its default, so the effect proves the value was carried. A cell the table does not
back is "not verified" in the docs, and its test says so (skipped, after checking that the
launch is at least accepted).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
from collections.abc import Callable
from typing import Any

import boto3
import moto.settings
import pytest
import requests

from launchprov.launching import idempotency_key
from launchprov.providers.interface import LaunchRequest
from launchprov.providers.libcloud import provider
from launchprov.providers.libcloud.conformance import (
    CREATE,
    MATRIX_DRIVERS,
    NOT_IMPLEMENTED,
    REFUSED,
    SUPPORTED,
    UNVERIFIED,
    VERIFIED,
    Answer,
    AtProvider,
    CapacityFallback,
    Check,
    NotVerified,
    OnTheWire,
    docs_cell,
    verification,
)
from launchprov.providers.libcloud.drivers import CloudlikeDummyNodeDriver
from launchprov.providers.libcloud.profiles import PROFILES, action_matrix, parameter_matrix
from launchprov.schemas import LaunchSchema
from launchprov.settings import SETTINGS
from tests.conftest import reset_moto
from tests.faulty_ec2 import FaultControl, serve
from tests.recorded import CAPACITY_FAULTS, RECORDED, Traffic, wire
from tests.support import (
    FAKE_CREDENTIALS,
    GOOD_AMI,
    assert_error_body,
    detail_names,
    ec2_client,
    libcloud_ec2_settings,
    make_app,
    seed_account,
    serve_in_thread,
)

#: Every launch parameter, in the API's order.
PARAMETERS = [node.name for node in LaunchSchema().children]

#: The actions, terminate last: it ends the known node, which the others act on.
ACTIONS = ["reboot", "stop", "start", "terminate"]

DRIVERS = MATRIX_DRIVERS

#: A value of each parameter other than its default (placement: per driver). min_count is
#: given with max_count 2; the second create is refused, so min_count 2 cannot be met.
EXPLICIT = {
    "min_count": 2,
    "max_count": 2,
    "key_name": "matrix-key",
    "security_groups": ["matrix-web", "matrix-db"],
    "user_data": "#cloud-config\nmatrix: true\n",
    "placement_group": "matrix-group",
    "instance_initiated_shutdown_behavior": "stop",
    "ebs_optimized": True,
    "tags": {"role": "matrix"},
    "client_token": "matrix-token-1",
    "subnet_id": "subnet-12345678",  # EC2's: one of moto's, below
    "iam_instance_profile": "matrix-profile",
    "root_volume_size": 20,
    "root_volume_type": "gp3",
    "metadata_tokens": "optional",
    "spot": True,
    "fallback": [{"instance_type": "t3.micro"}],
    "expires_in": 3600,
}

#: A create request refused by the recorded cloud (min_count): a 500 with an error body in
#: DigitalOcean's shape (id, message), which every driver reads as an error reply.
REFUSAL_REPLY = (500, '{"id": "server_error", "message": "refused by the conformance matrix"}')


@dataclasses.dataclass
class Cloud:
    name: str
    app: Any
    launch: dict
    explicit: dict
    known_id: str
    known_state: str
    known_fields: dict
    wire: Traffic
    #: parameter -> what the given value is where the effect is read, where it is not itself.
    on_the_wire: dict
    #: How the actions' requests name the known node.
    node: str
    #: parameter -> the node name its launch must create (RecordedCloud.node_names).
    node_names: dict = dataclasses.field(default_factory=dict)
    #: A recorded cloud's error replies to serve in place of its recordings (tests.recorded.wire).
    errors: Any = None
    #: EC2: moto's boto3 client and the fault-injecting endpoint; dummy: its driver.
    client: Any = None
    faults: FaultControl | None = None
    dummy: list = dataclasses.field(default_factory=list)


def _expires_within(seconds: int) -> Callable[[Any], bool]:
    """A lease's end tag ``seconds`` from now, the launch just done (a minute's slack)."""

    def holds(tags) -> bool:
        value = tags.get("launchprov:expires-at") if isinstance(tags, dict) else None
        if value is None:
            return False
        wanted = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
        moment = datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.UTC
        )
        return abs((moment - wanted).total_seconds()) < 60

    return holds


#: Where launchprov's own tags carry a parameter, on every driver that tags.
TAGGED = {
    "client_token": {"launchprov:client-token": EXPLICIT["client_token"]},
    "expires_in": _expires_within(EXPLICIT["expires_in"]),
}


def _launched(app, launch) -> str:
    return app.put_json("/v1/launch", launch).json[0]


def _recorded_cloud(name: str, patch: pytest.MonkeyPatch, traffic: Traffic) -> Cloud:
    recorded = RECORDED[name]
    recorded.patch(patch)
    errors = wire(patch, name)
    app = make_app(**recorded.app_settings())
    return Cloud(
        name,
        app,
        dict(recorded.launch),
        {**EXPLICIT, **recorded.explicit},
        recorded.known_id,
        recorded.known_state,
        recorded.known_fields,
        traffic,
        {**TAGGED, **recorded.on_the_wire},
        recorded.node_on_the_wire or recorded.known_id,
        recorded.node_names,
        errors=errors,
    )


def _dummy_cloud(patch: pytest.MonkeyPatch, traffic: Traffic) -> Cloud:
    drivers: list = []
    built = CloudlikeDummyNodeDriver.__init__

    def building(driver, *args, **kwargs):
        built(driver, *args, **kwargs)
        drivers.append(driver)

    patch.setattr(CloudlikeDummyNodeDriver, "__init__", building)
    app = make_app(**{"launchprov.provider": "libcloud", "launchprov.libcloud.driver": "dummy"})
    launch = {"ami": "img-1", "instance_type": "small"}
    known = _launched(app, launch)
    return Cloud(
        "dummy",
        app,
        launch,
        {**EXPLICIT, "placement": "us-east-1c"},
        known,
        "running",
        {"instance_type": "small", "ami": "img-1"},
        traffic,
        dict(TAGGED),
        known,
        dummy=drivers,
    )


@contextlib.contextmanager
def _ec2_cloud(patch: pytest.MonkeyPatch, traffic: Traffic, endpoint: str):
    for flag in (
        "ENABLE_AMI_VALIDATION",
        "EC2_ENABLE_INSTANCE_TYPE_VALIDATION",
        "ENABLE_KEYPAIR_VALIDATION",
    ):
        patch.setattr(moto.settings, flag, True)
    reset_moto()
    client = ec2_client(endpoint)
    seed_account(client)
    # What the explicit values name, as an account using them has it.
    client.create_key_pair(KeyName=EXPLICIT["key_name"])
    for group in EXPLICIT["security_groups"]:
        client.create_security_group(GroupName=group, Description=group)
    iam = boto3.client(
        "iam",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_instance_profile(InstanceProfileName=EXPLICIT["iam_instance_profile"])
    subnet = client.describe_subnets(
        Filters=[{"Name": "availability-zone", "Values": ["us-east-1c"]}]
    )["Subnets"][0]["SubnetId"]
    server = serve(endpoint)
    serve_in_thread(server)
    faults = FaultControl(f"http://127.0.0.1:{server.server_address[1]}")
    try:
        app = make_app(**libcloud_ec2_settings(faults.url))
        launch = {"ami": GOOD_AMI, "instance_type": "t2.micro"}
        known = _launched(app, launch)
        profile = f"/{EXPLICIT['iam_instance_profile']}"
        yield Cloud(
            "ec2",
            app,
            launch,
            {**EXPLICIT, "placement": "us-east-1c", "subnet_id": subnet},
            known,
            "running",
            {"instance_type": "t2.micro", "ami": GOOD_AMI, "placement": "us-east-1b"},
            traffic,
            {
                **TAGGED,
                # EC2's ClientToken: launchprov's idempotency key of the caller's token.
                "client_token": idempotency_key("anonymous", EXPLICIT["client_token"]),
                "iam_instance_profile": lambda arn: str(arn).endswith(profile),
                "spot": "spot",
            },
            known,
            client=client,
            faults=faults,
        )
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module", params=DRIVERS)
def cloud(request) -> Cloud:
    """One app per driver for the whole module, its wire recorded."""
    name = request.param
    with pytest.MonkeyPatch.context() as patch:
        traffic = Traffic().install(patch)
        if name == "ec2":
            endpoint = request.getfixturevalue("moto_server_endpoint")
            with _ec2_cloud(patch, traffic, endpoint) as ec2:
                yield ec2
        elif name == "dummy":
            yield _dummy_cloud(patch, traffic)
        else:
            yield _recorded_cloud(name, patch, traffic)


@pytest.fixture
def sent(cloud) -> Traffic:
    """The cloud's wire, from the start of the test; no fault injected."""
    cloud.wire.clear()
    if cloud.faults is not None:
        cloud.faults.refuse()
    if cloud.errors is not None:
        cloud.errors.clear()
    return cloud.wire


def launch_body(cloud: Cloud, **extra) -> dict:
    return {**cloud.launch, **extra}


def creates(cloud: Cloud) -> list:
    return cloud.wire.matching(*CREATE[cloud.name]) if cloud.name in CREATE else []


# -- what every driver answers ----------------------------------------------------------------


def test_launch_one(cloud, sent):
    ids = cloud.app.put_json("/v1/launch", launch_body(cloud)).json

    assert len(ids) == 1 and all(isinstance(i, str) and i for i in ids)
    if cloud.name in CREATE:
        assert len(creates(cloud)) == 1


def test_launch_two(cloud, sent):
    ids = cloud.app.put_json("/v1/launch", launch_body(cloud, min_count=2, max_count=2)).json

    assert len(ids) == 2
    # One RunInstances for both on EC2; one create request per node elsewhere.
    if cloud.name == "ec2":
        assert len(sent.matching("GET", "Action=RunInstances")) == 1
    elif cloud.name in CREATE:
        assert len(creates(cloud)) == 2


def test_describe(cloud):
    instance = cloud.app.get(f"/v1/instances/{cloud.known_id}").json

    assert instance["id"] == cloud.known_id
    assert instance["state"] == cloud.known_state
    for field, value in cloud.known_fields.items():
        assert instance[field] == value, field


def test_describe_unknown_is_404(cloud):
    missing = "i-0123456789abcdef0" if cloud.name == "ec2" else "no-such-node"
    assert_error_body(cloud.app.get(f"/v1/instances/{missing}", status=404), 404)


def test_list_with_a_state_filter(cloud):
    listed = cloud.app.get("/v1/instances", {"state": cloud.known_state}).json["instances"]
    others = [state for state in ("running", "pending") if state != cloud.known_state]
    unlisted = cloud.app.get("/v1/instances", {"state": others[0]}).json["instances"]

    assert cloud.known_id in [instance["id"] for instance in listed]
    assert {instance["state"] for instance in listed} == {cloud.known_state}
    assert cloud.known_id not in [instance["id"] for instance in unlisted]


@pytest.mark.parametrize(
    ("looked_up", "parameter", "value", "code"),
    [
        ("images", "ami", "no-such-image-anywhere", "ImageNotFound"),
        ("sizes", "instance_type", "no-such-size", "SizeNotFound"),
    ],
)
def test_an_unknown_image_or_size_is_said_before_any_node_is_created(
    cloud, sent, looked_up, parameter, value, code
):
    if cloud.name in ("ec2", "dummy"):
        pytest.skip(f"the {cloud.name} driver does not look {looked_up} up")

    response = cloud.app.put_json(
        "/v1/launch", launch_body(cloud, **{parameter: value}), status="*"
    )

    body = assert_error_body(response, 408)
    assert body["provider"]["code"] == code
    assert body["provider"]["retryable"] is False
    assert creates(cloud) == []


# -- reading an effect ------------------------------------------------------------------------


def _pairs(value: Any) -> Any:
    """A list of key/value pairs (GCE's metadata items, EC2's tags) as a mapping."""
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        for key, val in (("key", "value"), ("Key", "Value")):
            if all(set(item) == {key, val} for item in value):
                return {item[key]: item[val] for item in value}
    return value


def read(document: Any, path: str) -> Any:
    """The value at a dotted ``path``: through lists item by item, pairs as mappings."""
    value = _pairs(document)
    for key in path.split(".") if path else ():
        if isinstance(value, list):
            value = [_pairs(item.get(key)) for item in value if isinstance(item, dict)]
        elif isinstance(value, dict):
            value = _pairs(value.get(key))
        else:
            value = getattr(value, key, None)
    return value


def decoded(value: Any, encoding: str) -> Any:
    if value is None or not encoding:
        return value
    if encoding == "comma list":
        return str(value).split(",")
    if isinstance(value, list):
        return [decoded(item, encoding) for item in value]
    if encoding == "base64":
        return base64.b64decode(value).decode()
    if encoding == "last segment":
        return str(value).rsplit("/", 1)[-1]
    raise AssertionError(f"no encoding {encoding!r}")


def holds(found: Any, expected: Any) -> bool:
    """``found`` shows ``expected``: every item of a mapping or list (more may be there), a
    scalar as itself (or among a list's items, or a mapping's keys), a predicate true."""
    if callable(expected):
        return bool(expected(found))
    if isinstance(expected, dict):
        return isinstance(found, dict) and all(
            key in found and holds(found[key], value) for key, value in expected.items()
        )
    if isinstance(expected, list | tuple):
        return isinstance(found, list) and all(
            any(holds(item, wanted) for item in found) for wanted in expected
        )
    if isinstance(found, list):
        return any(holds(item, expected) for item in found)
    if isinstance(found, dict):
        return expected in found
    if isinstance(expected, bool):
        return str(found).lower() == str(expected).lower()
    return found is not None and str(found) == str(expected)


def on_the_wire(
    cloud: Cloud, check: OnTheWire, expected: Any, node: str | None = None, index: int = 0
):
    """Assert the request of ``check`` (the ``index``-th of them) reached the cloud, carrying
    ``expected``."""
    request = check.request or CREATE[cloud.name]
    requests = cloud.wire.matching(*request)
    if check.field == "count":
        assert len(requests) == expected, (request, [r.url for r in cloud.wire.sent])
        return
    assert len(requests) > index, (
        f"no {request} among {[(r.method, r.url) for r in cloud.wire.sent]}"
    )
    sent = requests[index]
    if node is not None:
        assert node in sent.url or node in sent.text, (node, sent)
    if check.field == "node":
        return
    kind, _, path = check.field.partition(":")
    if kind == "path":
        found = sent.path.split("/")
    elif kind == "query":
        found = sent.query.get(path)
    else:
        found = read(sent.json, path)
    found = decoded(found, check.encoding)
    assert holds(found, expected), (check.field, found, expected)


def ec2_instance(cloud: Cloud, instance_id: str) -> dict:
    reservations = cloud.client.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservations[0]["Instances"][0]


def at_the_provider(cloud: Cloud, field: str, ids: list[str]) -> Any:
    """What the provider holds at ``field`` for the instances ``ids`` (of the first, unless the
    field counts them)."""
    if cloud.name == "dummy":
        (driver,) = cloud.dummy
        nodes = [node for node in driver.list_nodes() if node.id in ids]
        if field == "nodes":
            return len(nodes)
        return read(nodes[0], field)
    kind, _, name = field.partition(":")
    if kind == "attribute":
        answer = cloud.client.describe_instance_attribute(InstanceId=ids[0], Attribute=name)
        value = next(v for k, v in answer.items() if k.lower() == name.lower())["Value"]
        return base64.b64decode(value).decode() if name == "userData" else value
    instance = ec2_instance(cloud, ids[0])
    if kind == "volume":
        root = instance["RootDeviceName"]
        (mapping,) = [m for m in instance["BlockDeviceMappings"] if m["DeviceName"] == root]
        volume_id = mapping["Ebs"]["VolumeId"]
        return cloud.client.describe_volumes(VolumeIds=[volume_id])["Volumes"][0][name]
    return read(instance, field)


# -- the checks of a parameter ----------------------------------------------------------------


def given(cloud: Cloud, parameter: str) -> Any:
    """The value the matrix gives: the launch's own (ami, instance_type), or the explicit."""
    return cloud.launch[parameter] if parameter in cloud.launch else cloud.explicit[parameter]


def _given(cloud: Cloud, parameter: str) -> dict:
    body = launch_body(cloud)
    body[parameter] = given(cloud, parameter)
    if parameter == "min_count":
        body["max_count"] = cloud.explicit["max_count"]
    return body


def _expected(cloud: Cloud, parameter: str) -> Any:
    return cloud.on_the_wire.get(parameter, given(cloud, parameter))


def _refuse_the_second_create(cloud: Cloud, monkeypatch) -> None:
    if cloud.name == "dummy":
        (driver,) = cloud.dummy
        create = driver.create_node
        calls = []

        def refusing(*args, **kwargs):
            calls.append(1)
            if len(calls) > 1:
                raise RuntimeError("the provider refused the second create")
            return create(*args, **kwargs)

        monkeypatch.setattr(driver, "create_node", refusing)
        return
    cloud.wire.refuse(*CREATE[cloud.name], REFUSAL_REPLY, after=1)


def check_answer(cloud: Cloud, parameter: str, check: Answer, monkeypatch) -> None:
    if check.status == 400:  # refused by name, before anything is sent
        known = len(cloud.dummy[0].list_nodes()) if cloud.dummy else None
        response = cloud.app.put_json("/v1/launch", _given(cloud, parameter), status="*")
        error = assert_error_body(response, 400)
        assert detail_names(error) == [parameter]
        # Nothing is created (a client token is looked up by its tag first).
        assert creates(cloud) == []
        if parameter != "client_token":
            assert cloud.wire.sent == []
        if cloud.name == "dummy":
            assert len(cloud.dummy[0].list_nodes()) == known
        return
    # min_count: the second create is refused; the first node is destroyed and the launch
    # fails, naming the partial launch (with min_count ignored it would answer one id).
    assert parameter == "min_count", check
    _refuse_the_second_create(cloud, monkeypatch)
    before = {node.id for node in cloud.dummy[0].list_nodes()} if cloud.dummy else set()
    response = cloud.app.put_json("/v1/launch", _given(cloud, parameter), status="*")
    body = assert_error_body(response, check.status)
    assert body["provider"]["code"] == "PartialLaunch", body
    if cloud.dummy:
        (first,) = [node for node in cloud.dummy[0].list_nodes() if node.id not in before]
        assert first.state == "terminated"
    else:
        assert len(creates(cloud)) == 2


def check_capacity_fallback(cloud: Cloud, body: dict) -> None:
    """The first launch answered the provider's own capacity error; the alternative's instance
    type reached the provider (EC2: the instance at moto; another cloud: its second create
    request, as the cloud received it)."""
    (alternative,) = cloud.explicit["fallback"]
    if cloud.faults is not None:
        cloud.faults.refuse({"instance_type": cloud.launch["instance_type"]})
    else:
        cloud.errors.fail_create(CAPACITY_FAULTS[cloud.name])
    response = cloud.app.put_json("/v1/launch", body, status="*")
    assert response.status_int == 200, response.text
    if cloud.faults is None:
        sizes = cloud.errors.created_sizes()
        assert sizes == [cloud.launch["instance_type"], alternative["instance_type"]], sizes
        return
    assert at_the_provider(cloud, "InstanceType", response.json) == alternative["instance_type"]
    faulted = [call["faulted"] for call in cloud.faults.calls()]
    assert faulted == [True, False], faulted


def check_parameter(cloud: Cloud, parameter: str, check: Check, monkeypatch) -> None:
    if isinstance(check, Answer):
        check_answer(cloud, parameter, check, monkeypatch)
        return
    body = _given(cloud, parameter)
    if parameter in cloud.node_names:
        monkeypatch.setattr(provider, "node_name", lambda profile: cloud.node_names[parameter])
    if isinstance(check, CapacityFallback):
        check_capacity_fallback(cloud, body)
        return
    response = cloud.app.put_json("/v1/launch", body, status="*")
    assert response.status_int == 200, response.text
    ids = response.json
    if isinstance(check, NotVerified):
        pytest.skip(f"accepted; not verified: {check.why}")
    expected = _expected(cloud, parameter)
    if isinstance(check, AtProvider):
        found = at_the_provider(cloud, check.field, ids)
        assert holds(found, expected), (check.field, found, expected)
        return
    on_the_wire(cloud, check, expected)


def _seed_default(parameter: str) -> Any:
    """The default of a parameter: the deployment's (settings) or the request's own."""
    settings = {setting.key: setting for setting in SETTINGS}
    setting = settings.get(f"launchprov.defaults.{parameter}")
    if setting is not None:
        return setting.parse(setting.default)
    field = {field.name: field for field in dataclasses.fields(LaunchRequest)}[parameter]
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _same(given: Any, default: Any) -> bool:
    if isinstance(given, list):
        given = tuple(given)
    return given == default


@pytest.mark.parametrize("parameter", PARAMETERS)
def test_every_parameter_has_the_effect_the_docs_say(cloud, sent, parameter, monkeypatch):
    """The docs' driver matrix cell, checked by its effect (see the verification table)."""
    assert not _same(given(cloud, parameter), _seed_default(parameter)), (
        f"{parameter}: the matrix must give a value other than the default"
    )
    check_parameter(cloud, parameter, verification(cloud.name, parameter), monkeypatch)


# -- the actions ------------------------------------------------------------------------------

#: The EC2 state an action leaves the instance in (at once, or once done).
EC2_STATES = {
    "terminate": {"shutting-down", "terminated"},
    "stop": {"stopping", "stopped"},
    "start": {"pending", "running"},
}

#: The dummy's node state after an action.
DUMMY_STATES = {"terminate": "terminated", "reboot": "rebooting"}


def _act(cloud: Cloud, action: str, instance_id: str):
    path = f"/v1/instances/{instance_id}"
    if action == "terminate":
        return cloud.app.delete(path, status="*")
    return cloud.app.post(f"{path}/{action}", status="*")


@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_has_the_effect_the_docs_say(cloud, sent, action):
    check = verification(cloud.name, action)
    if isinstance(check, Answer):  # 501 naming the action, nothing sent
        body = assert_error_body(_act(cloud, action, cloud.known_id), check.status)
        assert action in body["message"]
        assert sent.sent == []
        return
    # An instance of its own where the effect is read at the provider: the module's apps are
    # shared, and another action (a terminate) must not decide what this one finds.
    instance_id = (
        _launched(cloud.app, cloud.launch) if isinstance(check, AtProvider) else cloud.known_id
    )
    if cloud.name == "ec2" and action == "start":
        cloud.app.post(f"/v1/instances/{instance_id}/stop", status="*")
    response = _act(cloud, action, instance_id)
    assert response.status_int == 200, response.text
    assert response.json["id"] == instance_id
    if isinstance(check, NotVerified):
        pytest.skip(f"accepted; not verified: {check.why}")
    if isinstance(check, AtProvider):
        found = at_the_provider(cloud, check.field, [instance_id])
        wanted = EC2_STATES[action] if cloud.name == "ec2" else {DUMMY_STATES[action]}
        assert found in wanted, (action, found)
        return
    on_the_wire(cloud, check, check.value, node=cloud.node)


# -- the table itself -------------------------------------------------------------------------


def test_the_table_covers_every_driver_the_matrix_runs():
    assert set(DRIVERS) == {"ec2", "dummy", *RECORDED}
    assert set(DRIVERS) <= set(PROFILES)
    for driver, checks in VERIFIED.items():
        assert set(checks) <= {*PARAMETERS, *ACTIONS}, driver


#: The checks the tests above run; a cell backed by anything else proves nothing.
RUN = (OnTheWire, AtProvider, Answer, CapacityFallback)


def _docs_cells(driver: str):
    """(cell, what the profile claims, what the docs' driver matrix shows) of ``driver``."""
    claims = {**parameter_matrix(PARAMETERS)[driver], **action_matrix().get(driver, {})}
    return [(name, claim, docs_cell(driver, name, claim)) for name, claim in claims.items()]


@pytest.mark.parametrize("driver", list(parameter_matrix(PARAMETERS)))
def test_the_docs_claim_no_cell_the_verification_table_does_not_back(driver):
    """Every cell the docs' driver matrix shows supported, refused or 501 is one the tests
    above check by effect, as the table says; every other cell is shown "not verified"."""
    for name, claim, shown in _docs_cells(driver):
        where = (driver, name, shown)
        if shown.kind == UNVERIFIED:
            continue
        assert driver in DRIVERS, where  # the matrix runs this driver
        assert name in (*PARAMETERS, *ACTIONS), where
        if shown.kind == SUPPORTED:
            check = VERIFIED[driver].get(name)
            assert isinstance(check, RUN), where
            assert claim is not None, where  # the profile maps it
            assert not (isinstance(check, Answer) and check.status in (400, 501)), where
        else:
            assert shown.kind in (REFUSED, NOT_IMPLEMENTED), where
            assert claim is None, where  # the profile does not map it
            assert not isinstance(VERIFIED[driver].get(name), RUN), where


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_cell_the_table_leaves_unproven_is_not_verified_in_the_docs(driver):
    for name, claim, shown in _docs_cells(driver):
        check = VERIFIED[driver].get(name)
        if claim is not None and not isinstance(check, RUN):
            assert shown.kind == UNVERIFIED, (driver, name, shown)


def test_the_capacity_fallback_is_verified_only_where_a_capacity_error_is_injected():
    """The fallback's alternative is tried only after a capacity error: a cloud whose capacity
    error the matrix cannot give shows "not verified"."""
    for driver in parameter_matrix(PARAMETERS):
        shown = docs_cell(driver, "fallback", "(launchprov)")
        injected = driver == "ec2" or driver in CAPACITY_FAULTS
        assert (shown.kind == SUPPORTED) == injected, (driver, shown)
        if injected:
            assert isinstance(VERIFIED[driver]["fallback"], CapacityFallback), driver


@pytest.mark.parametrize(
    "lookup", ["list_images", "ex_get_image", "get_image", "list_sizes", "list_locations"]
)
def test_a_transport_failure_of_a_preflight_lookup_is_a_408_not_a_failed_check(
    cloud, lookup, monkeypatch
):
    if cloud.name in ("ec2", "dummy"):
        pytest.skip(f"the {cloud.name} driver has no catalog lookups (EC2: test_capacity)")
    driver_class = PROFILES[cloud.name].driver_class()
    if not hasattr(driver_class, lookup):
        pytest.skip(f"the {cloud.name} driver has no {lookup}")
    refused = []

    def refuse(self, *args, **kwargs):
        refused.append(lookup)
        raise requests.exceptions.ConnectionError("[Errno 111] Connection refused")

    monkeypatch.setattr(driver_class, lookup, refuse)
    response = cloud.app.post_json("/v1/launch/preflight", launch_body(cloud), status="*")
    if not refused:  # the launch needs no such lookup: the pre-flight passes without it
        assert response.json["would_launch"] is True, response.json
        return
    body = assert_error_body(response, 408)
    assert body["provider"]["code"] == "EndpointUnreachable", body
