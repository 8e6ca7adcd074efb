"""The generic profile of a libcloud driver launchprov has no profile for, read off its class.

libcloud's base contract says little that holds for every driver: ``create_node(name, size,
image)`` and, on most, a ``location``; ``list_images``, ``list_sizes``, ``list_locations``
where the driver implements them; a constructor that takes the key first (as libcloud's docs
call it, ``cls(key, secret)``). Drivers read more than an id from what they are given
(Scaleway the size's disk, Equinix Metal the location's metro code, gridscale the size's
cores), so a launch passes the catalog's own objects wherever the driver lists them.

What the class's signatures say becomes the profile:

* construction: ``launchprov.libcloud.key`` goes to the constructor's first argument, ``.secret``
  to its second when that one is required or is called ``secret`` (Equinix Metal's second is a
  project, which driver_kwargs gives); ``.secure``, ``.host``, ``.port``, ``.region`` where the
  constructor takes them; the time-out on the connection (few constructors take one);
* ``ami`` / ``instance_type``: the NodeImage / NodeSize from the catalog (a driver that lists
  no images or no sizes is refused: what it reads of them, no id can give);
* ``placement``: the catalog's NodeLocation, to ``create_node``'s ``location``, where the driver
  lists locations and ``create_node`` takes one (a required one makes ``needs_location``).

A driver the profile cannot launch on is refused at startup, in one line (:func:`refusal`).
"""

from __future__ import annotations

import dataclasses
import inspect

from libcloud.compute.base import NodeDriver

from launchprov.providers.libcloud.profile import (
    COUNTS,
    LOOKED_UP,
    Construction,
    Mapped,
    Profile,
    Reading,
)

#: Constructor arguments that are settings of their own (never the key or the secret).
_SETTINGS = ("secure", "host", "port", "region")

#: What a launch parameter needs of the driver: the create_node argument, the listing.
_LOOKUPS = {"ami": ("image", "list_images"), "instance_type": ("size", "list_sizes")}

LOCATION = Mapped(
    "location", "NodeLocation from the catalog, by id then name", lambda c: c.location()
)

#: The profile of the docs' driver matrix: any driver, and what each parameter may become.
GENERIC = Profile(
    name="generic",
    summary="any other libcloud compute driver",
    driver="",
    concrete="libcloud.compute.base:NodeDriver",
    construction=Construction(settings=frozenset(_SETTINGS), timeout="connection"),
    parameters={
        **LOOKED_UP,
        **COUNTS,
        "placement": Mapped(
            "location",
            "NodeLocation from the catalog, where the driver lists locations and create_node "
            "takes one",
            LOCATION.convert,
        ),
    },
    reading=Reading(
        instance_type=("flavorId", "instance_type", "size", "size_id", "machineType", "plan"),
        ami=("imageId", "image_id", "image", "os_id"),
        placement=("availability_zone", "availability", "zone", "location", "region"),
        tags="tags",
    ),
    derived=True,
)


def _parameters(function) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return {}


def _takes_any(parameters: dict[str, inspect.Parameter]) -> bool:
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _required(parameter: inspect.Parameter) -> bool:
    return parameter.default is inspect.Parameter.empty and parameter.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )


def _own(cls: type, method: str) -> bool:
    found = getattr(cls, method, None)
    return found is not None and found is not getattr(NodeDriver, method, None)


def lists(cls: type, method: str) -> bool:
    """Whether the driver implements ``method`` (list_images, ...) callable with no argument."""
    if not _own(cls, method):
        return False
    parameters = _parameters(getattr(cls, method))
    return not any(_required(p) for name, p in parameters.items() if name != "self")


def construction(cls: type) -> Construction:
    """Where the settings go in ``cls``'s constructor (see the module doc)."""
    parameters = _parameters(cls.__init__)
    parameters.pop("self", None)
    variadic = _takes_any(parameters) or any(
        p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters.values()
    )
    named = [
        name
        for name, p in parameters.items()
        if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and name not in _SETTINGS
    ]
    if named:
        key_to: str | None = named[0]
        second = parameters[named[1]] if len(named) > 1 else None
        secret_to = (
            second.name
            if second is not None and (_required(second) or second.name == "secret")
            else None
        )
    else:  # (*args, **kwargs): libcloud's BaseDriver takes them
        key_to, secret_to = ("key", "secret") if variadic else (None, None)
    required = {}
    if key_to is not None and key_to in parameters and _required(parameters[key_to]):
        required["key"] = f"{key_to}, the first argument of {cls.__name__}"
    if secret_to is not None and secret_to in parameters and _required(parameters[secret_to]):
        required["secret"] = f"{secret_to}, the second argument of {cls.__name__}"
    return Construction(
        key_to=key_to,
        secret_to=secret_to,
        settings=frozenset(s for s in _SETTINGS if s in parameters or _takes_any(parameters)),
        timeout="connection",
        required_settings=required,
    )


def profile_for(name: str, cls: type) -> Profile:
    """The generic profile of libcloud driver ``name``, whose class is ``cls``."""
    create = _parameters(cls.create_node)
    parameters: dict[str, Mapped] = {**LOOKED_UP, **COUNTS}
    location = create.get("location")
    if location is not None and lists(cls, "list_locations"):
        parameters["placement"] = LOCATION
    return dataclasses.replace(
        GENERIC,
        name=name,
        driver=name,
        concrete=f"{cls.__module__}:{cls.__qualname__}",
        construction=construction(cls),
        parameters=parameters,
        needs_location=location is not None and _required(location),
    )


def refusal(profile: Profile, cls: type) -> str | None:
    """Why the generic profile cannot launch on ``cls``, in one line; None when it can.

    A launch gives ``name``, ``size`` and ``image``: create_node must take them, and the driver
    must list images and sizes, since drivers read more than an id from them (gridscale's
    sizes are made of cores and memory, which it does not list and no instance_type names).
    """
    create = _parameters(cls.create_node)
    if not _takes_any(create):
        missing = [arg for arg in ("name", "size", "image") if arg not in create]
        if missing:
            return (
                f"the {profile.name} driver's create_node takes no {', '.join(missing)}: "
                "the generic profile gives every launch a name, a size and an image"
            )
    for parameter, (argument, listing) in _LOOKUPS.items():
        if not lists(cls, listing):
            return (
                f"the {profile.name} driver has no {listing}: the generic profile cannot turn "
                f"{parameter} into the {argument} its create_node wants"
            )
    return None


def listing(cls: type, launch_kwargs: dict) -> dict:
    """list_nodes' arguments: the launch_kwargs it takes by name, so that the nodes are listed
    where launches put them (Scaleway's ``region``, Equinix Metal's ``ex_project_id``).

    Not ``location``: a launch's placement may name another, and launch_kwargs holds its name,
    not the driver's NodeLocation."""
    parameters = _parameters(cls.list_nodes)
    return {
        name: value
        for name, value in launch_kwargs.items()
        if name in parameters and name != "location"
    }
