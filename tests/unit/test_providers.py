"""The provider registry: a setting names the adapter, which is built and checked at startup."""

from __future__ import annotations

import pytest

from launchprov.providers import PROVIDERS, create_provider
from launchprov.providers.ec2 import EC2Provider
from launchprov.settings import ConfigurationError, load
from tests.support import StubProvider


class ThirdPartyProvider(StubProvider):
    name = "third-party"

    def launch(self, request):
        return ["x-1"]


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
