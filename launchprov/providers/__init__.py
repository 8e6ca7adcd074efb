"""Provider registry: a setting names the adapter; it is built and checked at startup.

``launchprov.provider`` is a short name from :data:`PROVIDERS` or the dotted path of a class
that implements :class:`~launchprov.providers.interface.IProvider`. Each adapter class is built
with ``from_settings(settings)`` (the parsed ``launchprov.*`` settings).
"""

from __future__ import annotations

import importlib
from typing import Any

from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

from launchprov.providers.interface import IProvider
from launchprov.settings import ConfigurationError

#: Short name -> dotted path of the adapter class, imported only when chosen.
PROVIDERS: dict[str, str] = {
    "ec2": "launchprov.providers.ec2:EC2Provider",
    "libcloud": "launchprov.providers.libcloud:LibcloudProvider",
}


def _import(path: str):
    if ":" in path:
        module_name, _, attribute = path.partition(":")
    else:
        module_name, _, attribute = path.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


def create_provider(settings: dict[str, Any]):
    """Build the provider that ``launchprov.provider`` names, and check it keeps the contract."""
    name = settings["launchprov.provider"]
    path = PROVIDERS.get(name, name)
    if path == name and "." not in name:
        known = ", ".join(sorted(PROVIDERS))
        raise ConfigurationError(
            f"launchprov.provider = {name!r}: unknown provider; use one of {known} "
            "or the dotted path of an IProvider class"
        )
    try:
        factory = _import(path)
    except (ImportError, AttributeError, ValueError) as exc:
        message = f"launchprov.provider = {name!r}: cannot import {path}: {exc}"
        raise ConfigurationError(message) from None
    if not hasattr(factory, "from_settings"):
        raise ConfigurationError(
            f"launchprov.provider = {name!r}: {path} has no from_settings(settings) constructor"
        )
    provider = factory.from_settings(settings)
    try:
        verifyObject(IProvider, provider)
    except Invalid as exc:
        raise ConfigurationError(
            f"launchprov.provider = {name!r}: {path} does not implement IProvider: {exc}"
        ) from None
    return provider
