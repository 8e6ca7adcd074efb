"""Every route in one place: name -> (pattern, methods it serves)."""

from typing import NamedTuple


class Route(NamedTuple):
    pattern: str
    methods: tuple[str, ...]


ROUTES: dict[str, Route] = {
    "launch": Route("/v1/launch", ("PUT",)),
    "preflight": Route("/v1/launch/preflight", ("POST",)),
    "instances": Route("/v1/instances", ("GET",)),
    "instance": Route("/v1/instances/{id}", ("GET", "DELETE")),
    "instance_action": Route("/v1/instances/{id}/{action:stop|start|reboot}", ("POST",)),
    "openapi": Route("/v1/openapi.json", ("GET",)),
    "healthz": Route("/healthz", ("GET",)),
    "readyz": Route("/readyz", ("GET",)),
    "metrics": Route("/metrics", ("GET",)),
}


def includeme(config):
    for name, route in ROUTES.items():
        config.add_route(name, route.pattern)
