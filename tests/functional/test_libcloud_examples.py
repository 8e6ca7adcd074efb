"""The worked configurations of docs/providers.rst, each read from the page and run.

Each ``.. code-block:: ini`` of the page's "Worked configurations" is parsed as PasteDeploy
would (its ``[app:main]``), with the environment its ``# environment:`` lines name; the app is
built from it against that driver's recorded replies (tests/recorded.py), and one launch goes
through, its request checked where it lands: libcloud's MockHttp, or the dummy's nodes.
"""

from __future__ import annotations

import configparser
import re
import textwrap
from pathlib import Path

import pytest

from launchprov.providers.libcloud.profiles import PROFILES
from tests.recorded import RECORDED, record_wire
from tests.support import make_app

#: EC2's defaults (the seed's): none may reach another cloud unless a deployment sets it.
EC2_VALUES = re.compile(r"scalacity_dev1|us-east-1b|\bSSH\b")

PAGE = Path(__file__).parents[2] / "docs" / "providers.rst"


def examples() -> dict[str, str]:
    """Driver name -> the text of its worked configuration on the page."""
    text = PAGE.read_text()
    section = text[text.index(".. _worked-configurations:") :]
    blocks = re.findall(r"\.\. code-block:: ini\n\n((?:   .*\n|\n)+)", section)
    found = {}
    for block in blocks:
        block = textwrap.dedent(block)
        driver = re.search(r"^launchprov\.libcloud\.driver = (\S+)$", block, re.MULTILINE)
        found[driver[1]] = block
    return found


EXAMPLES = examples()

#: The driver whose worked configuration shows the generic profile.
GENERIC = "brightbox"

#: What each example's deployment defaults become on the wire (the converted form where the
#: driver sends one: a key pair's id or public key, a zone's id).
ON_THE_WIRE = {
    "openstack": ['"availability_zone": "nova"', '"key_name": "ops"', '[{"name": "default"}]'],
    "gce": ['"tags": {"items": ["launchprov-ssh"]}'],
    "azure_arm": ['"location": "eastus"'],
    "digitalocean": ['"region": "nyc1"', '"ssh_keys": [7717]'],
    "vultr": ['"region": "ewr"', '"sshkey_id": ["123"]'],
    "linode": ['"region": "us-west"', '"authorized_keys": ["ssh-rsa AAAA_valid_public_ssh_key'],
    "cloudstack": ["zoneid=1", "keypair=ops"],
    GENERIC: ['"image": "img-99q79"', '"server_type": "typ-4nssg"'],
}


def test_every_profile_but_ec2_has_a_worked_configuration():
    assert set(EXAMPLES) == set(PROFILES) - {"ec2"} | {GENERIC}
    assert GENERIC not in PROFILES


def brightbox(monkeypatch) -> None:
    """Brightbox's recorded replies, as libcloud's own test's setUp points the driver at them."""
    from libcloud.compute.drivers.brightbox import BrightboxNodeDriver

    from tests.recorded import libcloud_test_module

    mock = libcloud_test_module("test_brightbox").BrightboxMockHttp
    monkeypatch.setattr(BrightboxNodeDriver.connectionCls, "conn_class", mock)
    monkeypatch.setattr(BrightboxNodeDriver.connectionCls, "token", "test", raising=False)
    monkeypatch.setattr(mock, "type", None)


#: The recorded cloud of each example: its patch and a launch body it accepts.
CLOUDS = {
    **{name: (cloud.patch, cloud.launch) for name, cloud in RECORDED.items()},
    GENERIC: (brightbox, {"ami": "img-99q79", "instance_type": "typ-4nssg"}),
}


def settings_of(example: str, monkeypatch) -> dict[str, str]:
    """The [app:main] settings of an example; its ``# environment:`` lines set."""
    for name, value in re.findall(r"^# environment: (\w+)=(.*)$", example, re.MULTILINE):
        monkeypatch.setenv(name, value)
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys as written
    parser.read_string(example)
    return dict(parser["app:main"])


@pytest.mark.parametrize("name", sorted(set(EXAMPLES) - {"dummy"}))
def test_a_worked_configuration_launches_on_its_recorded_cloud(name, monkeypatch):
    patch, launch = CLOUDS[name]
    patch(monkeypatch)
    app = make_app(**settings_of(EXAMPLES[name], monkeypatch))
    wire = record_wire(monkeypatch)

    ids = app.put_json("/v1/launch", launch).json

    sent = "\n".join(f"{method} {url} {body}" for method, url, body in wire)
    assert len(ids) == 1
    for fragment in ON_THE_WIRE[name]:
        assert fragment in sent, (fragment, sent)
    assert not EC2_VALUES.search(sent), sent


def test_the_dummys_worked_configuration_launches(monkeypatch):
    app = make_app(**settings_of(EXAMPLES["dummy"], monkeypatch))

    (launched,) = app.put_json("/v1/launch", {"ami": "img-1", "instance_type": "small"}).json

    instance = app.get(f"/v1/instances/{launched}").json
    assert (instance["ami"], instance["instance_type"]) == ("img-1", "small")
    assert instance["placement"] is None and instance["key_name"] is None
