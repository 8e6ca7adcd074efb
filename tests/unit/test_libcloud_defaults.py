"""Defaults belong to the deployment and the cloud: EC2's (the seed's) never reach another cloud.

Each recorded cloud (libcloud's own replies, tests/recorded.py) is launched through the app,
and the requests its driver puts on the wire are read where they land: libcloud's MockHttp.
"""

from __future__ import annotations

import json
import re

import pytest

from launchprov.launching import honest
from launchprov.providers.interface import OUTCOME_UNKNOWN, Instance, InstanceQuery, ProviderError
from launchprov.providers.libcloud import labels
from launchprov.providers.libcloud.instances import matches
from launchprov.settings import ConfigurationError
from tests.recorded import RECORDED, record_wire
from tests.support import assert_error_body, launch_request, make_app

#: EC2's defaults (the seed's): none may reach another cloud unless a deployment sets it.
EC2_VALUES = re.compile(r"scalacity_dev1|us-east-1b|\bSSH\b")


@pytest.fixture
def wire(monkeypatch) -> list[tuple[str, str, str]]:
    return record_wire(monkeypatch)


def recorded_app(name: str, monkeypatch, **defaults: str):
    """The app of a recorded cloud's deployment, with no launchprov.defaults.* but ``defaults``
    (then without launch_kwargs' location, which says the same as a default placement)."""
    cloud = RECORDED[name]
    cloud.patch(monkeypatch)
    settings = {
        key: value
        for key, value in cloud.settings.items()
        if not key.startswith("launchprov.defaults.")
    }
    if "placement" in defaults and "launchprov.libcloud.launch_kwargs" in settings:
        launch_kwargs = json.loads(settings["launchprov.libcloud.launch_kwargs"])
        launch_kwargs.pop("location", None)
        settings["launchprov.libcloud.launch_kwargs"] = json.dumps(launch_kwargs)
    settings.update({f"launchprov.defaults.{key}": value for key, value in defaults.items()})
    return make_app(
        **{"launchprov.provider": "libcloud", "launchprov.libcloud.driver": name, **settings}
    )


def launched_on_the_wire(app, wire, body: dict, status: int = 200) -> str:
    """Launch; every request the launch sent, as one text."""
    del wire[:]
    response = app.put_json("/v1/launch", body, status=status)
    assert wire, "the launch sent nothing"
    return response, "\n".join(f"{method} {url} {text}" for method, url, text in wire)


@pytest.mark.parametrize("name", list(RECORDED))
def test_a_plain_launch_sends_no_ec2_default(name, monkeypatch, wire):
    app = recorded_app(name, monkeypatch)

    response, sent = launched_on_the_wire(app, wire, RECORDED[name].launch)

    assert len(response.json) == 1
    assert not EC2_VALUES.search(sent), sent


@pytest.mark.parametrize("name", list(RECORDED))
def test_the_document_claims_no_ec2_default(name, monkeypatch):
    app = recorded_app(name, monkeypatch)
    document = app.get("/v1/openapi.json").json
    schema = document["paths"]["/v1/launch"]["put"]["requestBody"]["content"]
    properties = schema["application/json"]["schema"]["properties"]

    assert not EC2_VALUES.search(json.dumps(document))
    for parameter in ("key_name", "security_groups", "placement"):
        assert properties[parameter]["x-deployment-default"]["value"] is None
        assert "the cloud chooses" in properties[parameter]["description"]


#: Per cloud: the defaults a deployment sets, and what of them must be on the wire (the
#: converted form where the driver sends one: a key pair's id or public key), and the status
#: the recording answers (GCE's recorded insert into europe-west1-a is a conflict).
CONFIGURED = {
    "openstack": (
        {"key_name": "ops-key", "security_groups": "web db", "placement": "nova"},
        [
            '"key_name": "ops-key"',
            '[{"name": "web"}, {"name": "db"}]',
            '"availability_zone": "nova"',
        ],
        200,
    ),
    "gce": (
        {"security_groups": "web db", "placement": "europe-west1-a"},
        ['"tags": {"items": ["web", "db"]}', "/zones/europe-west1-a/instances "],
        408,
    ),
    "azure_arm": ({"placement": "eastus"}, ['"location": "eastus"'], 200),
    "digitalocean": (
        {"key_name": "test1", "placement": "sfo1"},
        ['"ssh_keys": [7717]', '"region": "sfo1"'],
        200,
    ),
    "vultr": (
        {"key_name": "tester", "placement": "ewr"},
        ['"sshkey_id": ["123"]', '"region": "ewr"'],
        200,
    ),
    "linode": (
        {"key_name": "My SSH Key", "placement": "us-west"},
        ['"authorized_keys": ["ssh-rsa AAAA_valid_public_ssh_key', '"region": "us-west"'],
        200,
    ),
    "cloudstack": (
        {"key_name": "ops-key", "security_groups": "web db", "placement": "Sydney"},
        ["keypair=ops-key", "securitygroupnames=web,db", "zoneid=1"],
        200,
    ),
}


@pytest.mark.parametrize("name", list(CONFIGURED))
def test_configured_defaults_reach_the_wire(name, monkeypatch, wire):
    defaults, expected, status = CONFIGURED[name]
    app = recorded_app(name, monkeypatch, **defaults)

    _, sent = launched_on_the_wire(app, wire, RECORDED[name].launch, status)

    for fragment in expected:
        assert fragment in sent, (fragment, sent)


def test_no_ec2_default_reaches_the_dummy(monkeypatch):
    """The dummy takes no key pair, group or placement: a default the deployment sets does not
    apply there, and none reaches its create_node."""
    from launchprov.providers.libcloud.drivers import CloudlikeDummyNodeDriver

    sent = []
    original = CloudlikeDummyNodeDriver.create_node

    def create_node(self, **kwargs):
        sent.append(kwargs)
        return original(self, **kwargs)

    monkeypatch.setattr(CloudlikeDummyNodeDriver, "create_node", create_node)
    app = make_app(**{"launchprov.provider": "libcloud", "launchprov.libcloud.driver": "dummy"})
    app.put_json("/v1/launch", {"ami": "img-1", "instance_type": "small"})

    assert not EC2_VALUES.search(repr(sent))


# -- placement: the cloud's own names, checked at startup ---------------------------------------


def test_a_default_placement_the_catalog_lacks_stops_startup(monkeypatch):
    with pytest.raises(
        ConfigurationError, match=r"launchprov\.defaults\.placement = 'europe-west9-z': .*catalog"
    ):
        recorded_app("gce", monkeypatch, placement="europe-west9-z")


def test_a_default_placement_and_a_launch_kwargs_location_stop_startup(monkeypatch):
    cloud = RECORDED["digitalocean"]
    cloud.patch(monkeypatch)
    with pytest.raises(ConfigurationError, match=r"launchprov\.defaults\.placement.*set one"):
        make_app(
            **{
                "launchprov.provider": "libcloud",
                "launchprov.libcloud.driver": "digitalocean",
                **cloud.settings,
                "launchprov.defaults.placement": "sfo1",
            }
        )


@pytest.mark.parametrize("placement", ["nova", "us-east-1"])
def test_an_ec2_default_placement_must_be_a_zone(placement, monkeypatch):
    with pytest.raises(ConfigurationError) as raised:
        make_app(**{"launchprov.defaults.placement": placement})
    assert str(raised.value) == (
        f"launchprov.defaults.placement = {placement!r}: expected an availability-zone name "
        "such as us-east-1b (the provider is EC2)"
    )


def test_a_cloud_that_needs_a_location_and_has_no_default_names_placement(monkeypatch, wire):
    cloud = RECORDED["digitalocean"]
    cloud.patch(monkeypatch)
    app = make_app(
        **{
            "launchprov.provider": "libcloud",
            "launchprov.libcloud.driver": "digitalocean",
            "launchprov.libcloud.key": cloud.settings["launchprov.libcloud.key"],
        }
    )
    del wire[:]

    response = app.put_json("/v1/launch", cloud.launch, status=400)

    body = assert_error_body(response, 400)
    assert [item["name"] for item in body["details"]] == ["placement"]
    assert not [request for request in wire if request[0] == "POST"]


# -- GCE: labels within GCE's rules, no metadata or tags it was not given -----------------------

_LABEL_KEY = re.compile(r"\A[a-z][a-z0-9_-]{0,62}\Z")
_LABEL_VALUE = re.compile(r"\A[a-z0-9_-]{0,63}\Z")


def _gce_insert(wire) -> dict:
    (insert,) = [text for method, url, text in wire if method == "POST" and "/instances" in url]
    return json.loads(insert)


def test_gce_sends_no_metadata_and_no_tags_it_was_not_given(monkeypatch, wire):
    app = recorded_app("gce", monkeypatch)
    launched_on_the_wire(app, wire, RECORDED["gce"].launch)

    body = _gce_insert(wire)

    assert "metadata" not in body and "tags" not in body, body


def test_gce_labels_of_a_client_token_launch_keep_gce_rules(monkeypatch, wire):
    app = recorded_app("gce", monkeypatch)
    launch = {
        **RECORDED["gce"].launch,
        "client_token": "Deploy/Web #42 " + "x" * 49,  # 64 characters, upper case, spaces
        "tags": {"Team": "Platform:Web", "role": "web"},
    }
    launched_on_the_wire(app, wire, launch)

    found = _gce_insert(wire)["labels"]

    assert len(found) == 6
    for key, value in found.items():
        assert _LABEL_KEY.match(key), key
        assert _LABEL_VALUE.match(value), value
    assert {labels.decode_key(key): labels.decode_value(value) for key, value in found.items()}[
        "Team"
    ] == "Platform:Web"


@pytest.mark.parametrize(
    "value",
    [
        "web",
        "Platform:Web",
        "b--looks-encoded",
        "a" * 63,
        "0123456789abcdef" * 4,  # a request hash: 64 hex digits
        "Deploy/Web #42 " + "x" * 49,  # a client token too long to keep: hashed
        "Deploy/Web #42 " + "x" * 22,  # 37 bytes: the longest kept whole
        "",
        "x--abc",  # a caller's values that look like launchprov's forms
        "h--abc",
    ],
)
def test_a_gce_label_value_fits_and_reads_back_or_matches_its_lookup(value):
    label = labels.encode_value(value)
    assert _LABEL_VALUE.match(label), label
    assert labels.encode_value(value) == label  # deterministic
    instance = Instance(
        id="1",
        state="running",
        tags={"launchprov:client-token": labels.decode_value(label)},
    )
    query = InstanceQuery("", tags={"launchprov:client-token": (value,)})

    assert matches(instance, query, labels.canonical)
    if len(value.encode()) <= 37 or re.fullmatch(r"[0-9a-f]{64}", value):
        assert labels.decode_value(label) == value  # reversible
    other = InstanceQuery("", tags={"launchprov:client-token": (value + "1",)})
    assert not matches(instance, other, labels.canonical)


def test_a_hex_value_of_up_to_37_bytes_reads_back_and_a_longer_one_is_hashed():
    kept = "ab" * 37
    label = labels.encode_value(kept)
    assert _LABEL_VALUE.match(label) and label.startswith("x--"), label
    assert labels.decode_value(label) == kept
    hashed = labels.encode_value("ab" * 38)
    assert _LABEL_VALUE.match(hashed) and hashed.startswith("h--"), hashed
    assert labels.decode_value(hashed) == hashed


@pytest.mark.parametrize("label", ["b--0", "x--0", "b--74", "h--abc"])
def test_a_label_launchprov_did_not_write_reads_as_it_is(label):
    # Not base32 ("0"), or bytes that are not UTF-8 ("74" is 0xff): someone else's label.
    assert labels.decode_value(label) == label


@pytest.mark.parametrize(
    "key",
    [
        "role",
        "Team",
        "launchprov:request-hash",
        "launchprov-x",
        "a" * 80,
        "b--x",
        "x--y",
        "h--y",
        "launchprov:" + "k" * 60,
    ],
)
def test_a_gce_label_key_fits(key):
    label = labels.encode_key(key)
    assert _LABEL_KEY.match(label), label
    if len(key) <= 37:
        assert labels.decode_key(label) == key
    if key.startswith("launchprov:") and len(key) <= 63:
        assert label == "launchprov-" + key.removeprefix("launchprov:")


def test_a_placement_policy_needs_a_placement_when_the_cloud_would_choose(monkeypatch, wire):
    cloud = RECORDED["openstack"]
    cloud.patch(monkeypatch)
    app = make_app(
        **{
            "launchprov.provider": "libcloud",
            "launchprov.libcloud.driver": "openstack",
            **cloud.settings,
            "launchprov.policy.placements": "nova",
        }
    )
    del wire[:]

    response = app.put_json("/v1/launch", cloud.launch, status=403)

    assert "placement" in response.json["message"]
    assert not [request for request in wire if request[0] == "POST" and "servers" in request[1]]
    app.put_json("/v1/launch", {**cloud.launch, "placement": "nova"}, status=200)


@pytest.mark.parametrize(
    ("placement", "named"),
    [(None, None), ("nova", None), ("us-west-2a", "&region=us-west-2 ")],
)
def test_an_unknown_outcome_names_a_region_only_where_there_is_one(placement, named):
    error = ProviderError("libcloud", "Timeout", "no answer", outcome=OUTCOME_UNKNOWN)

    message = honest(error, launch_request(ami="13", instance_type="1", placement=placement), "r1")

    assert "tag:launchprov:request-id=r1" in message.message
    assert ("&region=" in message.message) is (named is not None)
    if named:
        assert named in message.message
