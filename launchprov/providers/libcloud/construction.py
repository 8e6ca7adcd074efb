"""Building a driver from settings, as its profile says; checking launch_kwargs at startup.

Every mistake stops startup with a message naming the setting: a required setting or
constructor argument that is missing, a setting the driver's constructor cannot take, a
driver_kwargs entry that repeats a setting, a launch_kwargs entry that ``create_node`` does not
take or that a launch parameter already sets, a ``create_node`` argument that nothing gives.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable
from typing import Any

from libcloud.common import base as libcloud_base
from libcloud.compute.base import NodeAuthPassword, NodeAuthSSHKey, NodeDriver
from libcloud.compute.providers import get_driver

from launchprov.providers.libcloud.profile import Profile
from launchprov.settings import ConfigurationError

PREFIX = "launchprov.libcloud."

#: The settings a constructor may take, by the argument's name.
CONSTRUCTOR_SETTINGS = ("secure", "host", "port", "region")

#: Constructor arguments that are settings of their own, never driver_kwargs entries.
OWN_SETTINGS = ("key", "secret", "secure", "host", "port", "timeout", "region")

#: create_node arguments launchprov always gives itself.
ALWAYS_GIVEN = ("self", "name", "size", "image")


def driver_class(profile: Profile, configured: str) -> type[NodeDriver]:
    """The class a profile builds: a libcloud provider name, or "module:Class"."""
    try:
        if ":" in profile.driver:
            module, _, attribute = profile.driver.partition(":")
            return getattr(importlib.import_module(module), attribute)
        return get_driver(profile.driver)
    except Exception as exc:  # AttributeError when unknown, Exception when retired
        raise ConfigurationError(f"{PREFIX}driver = {configured!r}: {exc}") from None


def retries_enabled() -> bool:
    return bool(
        os.environ.get("LIBCLOUD_RETRY_FAILED_HTTP_REQUESTS")
        or libcloud_base.RETRY_FAILED_HTTP_REQUESTS
    )


def factory(profile: Profile, settings: dict[str, Any]) -> Callable[[str | None], NodeDriver]:
    """``build(region)``: a new driver of the profile, from the settings.

    Raises ConfigurationError for anything the settings get wrong that can be seen without
    building one.
    """
    configured = settings[PREFIX + "driver"]
    cls = driver_class(profile, configured)
    construction = profile.construction
    driver_kwargs = dict(settings[PREFIX + "driver_kwargs"] or {})
    own = {*OWN_SETTINGS, construction.key_to, construction.secret_to} - {None}
    clashes = sorted(set(driver_kwargs) & own)
    if clashes:
        settings_of = {construction.key_to: "key", construction.secret_to: "secret"}
        raise ConfigurationError(
            f"{PREFIX}driver_kwargs: set "
            + ", ".join(f"{name} with {PREFIX}{settings_of.get(name, name)}" for name in clashes)
        )
    unset = [
        f"{PREFIX}{name} ({meaning})"
        for name, meaning in construction.required_settings.items()
        if not settings[PREFIX + name]
    ]
    if unset:
        raise ConfigurationError(
            f"{' and '.join(unset)} must be set for {PREFIX}driver = {profile.name}"
        )
    missing = [name for name in construction.required_kwargs if name not in driver_kwargs]
    if missing:
        wanted = "; ".join(f"{name} ({construction.required_kwargs[name]})" for name in missing)
        raise ConfigurationError(
            f"{PREFIX}driver_kwargs must give {wanted} for {PREFIX}driver = {profile.name}"
        )
    kwargs: dict[str, Any] = dict(construction.defaults)
    for setting, argument in (("key", construction.key_to), ("secret", construction.secret_to)):
        value = settings[PREFIX + setting]
        if value is None:
            continue
        if argument is None:
            raise ConfigurationError(
                f"{PREFIX}{setting} is set, but the {profile.name} driver takes no {setting}"
            )
        kwargs[argument] = value
    for argument in CONSTRUCTOR_SETTINGS:
        value = settings[PREFIX + argument]
        if value is None:
            continue
        if argument not in construction.settings:
            raise ConfigurationError(
                f"{PREFIX}{argument} is set, but the {profile.name} driver's constructor takes "
                f"no {argument}"
            )
        kwargs[argument] = value
    timeout = settings[PREFIX + "timeout"]
    if construction.timeout == "argument":
        kwargs["timeout"] = timeout  # requests' timeout: it bounds the connection, then each read
    kwargs.update(driver_kwargs)
    per_region = profile.calls == "ec2"

    def build(region: str | None) -> NodeDriver:
        arguments = dict(kwargs)
        if per_region:
            arguments["region"] = region
        driver = cls(**arguments)
        if construction.timeout == "connection":
            driver.connection.timeout = timeout
            driver.connection.connect()  # the connection reads its time-out when it connects
        return driver

    return build


def _auth(value: Any):
    """launch_kwargs' ``auth``: {"ssh_key": "ssh-ed25519 ..."} or {"password": "..."}."""
    if isinstance(value, dict) and set(value) == {"ssh_key"}:
        return NodeAuthSSHKey(value["ssh_key"])
    if isinstance(value, dict) and set(value) == {"password"}:
        return NodeAuthPassword(value["password"])
    raise ConfigurationError(
        f'{PREFIX}launch_kwargs: auth must be {{"ssh_key": "<public key>"}} or '
        '{"password": "..."}'
    )


def launch_kwargs(profile: Profile, driver: NodeDriver, settings: dict[str, Any]) -> dict[str, Any]:
    """The deployment-wide create_node arguments, checked against the driver's create_node.

    ``location`` is not passed as is: it is the location looked up when a launch gives no
    placement. Returns the arguments ready for create_node, ``location`` kept as the name.
    """
    given = dict(settings[PREFIX + "launch_kwargs"] or {})
    parameters = inspect.signature(type(driver).create_node).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    mapped = {
        mapped.argument: parameter
        for parameter, mapped in profile.parameters.items()
        if mapped.argument is not None
    }
    for name in given:
        if name in ALWAYS_GIVEN:
            raise ConfigurationError(
                f"{PREFIX}launch_kwargs: {name} is given by every launch, not by the deployment"
            )
        if name in mapped and not (name == "location" and mapped[name] == "placement"):
            raise ConfigurationError(
                f"{PREFIX}launch_kwargs: {name} is the launch parameter {mapped[name]}'s "
                "(set its default with launchprov.defaults.* where there is one)"
            )
        if name in profile.launch_arguments:
            raise ConfigurationError(
                f"{PREFIX}launch_kwargs: launchprov always sends {name} to the "
                f"{profile.name} driver"
            )
        if name not in parameters and not takes_any:
            raise ConfigurationError(
                f"{PREFIX}launch_kwargs: the {profile.name} driver's create_node takes no {name}"
            )
    if "auth" in given:
        given["auth"] = _auth(given["auth"])
    required = [
        name
        for name, parameter in parameters.items()
        if parameter.default is inspect.Parameter.empty
        and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
        and name not in ALWAYS_GIVEN
        and name not in mapped
        and name not in given
        and name not in profile.launch_arguments
    ]
    if required:
        raise ConfigurationError(
            f"{PREFIX}launch_kwargs must give {', '.join(required)}: the {profile.name} "
            "driver's create_node requires it"
        )
    # What a launch sends, by name: a driver whose create_node cannot take it (a TypeError,
    # before anything is sent) is refused here rather than failing every launch.
    sent = {**dict.fromkeys(mapped), **dict.fromkeys(profile.launch_arguments), **given}
    try:
        inspect.signature(type(driver).create_node).bind(driver, name=None, **sent)
    except TypeError as exc:
        raise ConfigurationError(
            f"{PREFIX}driver = {profile.name}: launchprov cannot call its create_node: {exc}"
        ) from None
    return given
