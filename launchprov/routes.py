"""Every route in one place: name -> (pattern, methods it serves)."""

from typing import NamedTuple


class Route(NamedTuple):
    pattern: str
    methods: tuple[str, ...]


ROUTES: dict[str, Route] = {
    "launch": Route("/v1/launch", ("PUT",)),
}


def includeme(config):
    for name, route in ROUTES.items():
        config.add_route(name, route.pattern)
