"""The provider registry: a setting names the adapter, which is built and checked at startup."""

from __future__ import annotations

import pytest
from zope.interface import implementer

from launchprov.providers import PROVIDERS, create_provider
from launchprov.providers.ec2 import EC2Provider
from launchprov.providers.interface import IProvider
from launchprov.settings import ConfigurationError, load


@implementer(IProvider)
class ThirdPartyProvider:
    name = "third-party"
    image_id_pattern = None
    instance_id_pattern = None

    @classmethod
    def from_settings(cls, settings):
        return cls()

    def launch(self, request):
        return ["x-1"]

    def ping(self, timeout):
        return None

    def describe(self, instance_id, region):
        raise NotImplementedError

    def list_instances(self, query):
        raise NotImplementedError

    def terminate(self, instance_id, region):
        raise NotImplementedError

    def stop(self, instance_id, region):
        raise NotImplementedError

    def start(self, instance_id, region):
        raise NotImplementedError

    def reboot(self, instance_id, region):
        raise NotImplementedError


class NotAProvider:
    @classmethod
    def from_settings(cls, settings):
        return cls()


class NoFactory:
    pass


def provider_for(name: str):
    return create_provider(load({"launchprov.provider": name}, environ={}))


def test_short_names_are_registered():
    assert set(PROVIDERS) == {"ec2", "libcloud"}
    assert isinstance(provider_for("ec2"), EC2Provider)


@pytest.mark.parametrize(
    "path", [f"{__name__}:ThirdPartyProvider", f"{__name__}.ThirdPartyProvider"]
)
def test_a_third_party_adapter_by_dotted_path(path):
    provider = provider_for(path)
    assert isinstance(provider, ThirdPartyProvider)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("azure", "unknown provider"),
        ("nowhere.module:Provider", "cannot import"),
        (f"{__name__}:Missing", "cannot import"),
        (f"{__name__}:NotAProvider", "does not implement IProvider"),
        (f"{__name__}:NoFactory", "no from_settings"),
    ],
)
def test_a_bad_provider_stops_startup_naming_the_key(name, fragment):
    with pytest.raises(ConfigurationError, match=r"launchprov\.provider") as raised:
        provider_for(name)
    assert fragment in str(raised.value)
