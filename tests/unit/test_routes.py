"""Every route in one place, and the OpenAPI paths built from it."""

from __future__ import annotations

from launchprov import openapi, schemas, tweens
from launchprov.providers.ec2 import EC2Provider
from launchprov.routes import ROUTES, Operation, Route
from launchprov.schemas import Validators

DEFAULTS = {
    "key_name": "k",
    "security_groups": ("g",),
    "placement": "us-east-1b",
    "metadata_tokens": "required",
}


def paths():
    return openapi.build_paths(Validators(DEFAULTS, EC2Provider))


def test_a_pattern_with_alternatives_is_one_path_each():
    assert openapi.expand("/v1/instances/{id}/{action:stop|start}") == [
        ("/v1/instances/{id}/stop", {"action": "stop"}),
        ("/v1/instances/{id}/start", {"action": "start"}),
    ]
    assert openapi.expand("/v1/launch") == [("/v1/launch", {})]


def test_every_operation_of_every_route_is_a_documented_operation():
    built = paths()
    documented = {
        (path, method.upper()) for path, operations in built.items() for method in operations
    }
    expected = {
        (path, operation.method)
        for route in ROUTES.values()
        for path, _ in openapi.expand(route.pattern)
        for operation in route.operations
    }
    assert documented == expected
    assert built["/v1/instances/{id}/reboot"]["post"]["operationId"] == "rebootInstance"
    assert built["/v1/instances/{id}/reboot"]["post"]["summary"] == "Reboot an instance"


def test_a_new_route_is_one_entry(monkeypatch):
    lease = Operation("PUT", "extendLease", "Extend a lease", "target", "instance", (404,))
    monkeypatch.setitem(ROUTES, "lease", Route("/v1/instances/{id}/lease", (lease,)))
    operation = paths()["/v1/instances/{id}/lease"]["put"]
    assert operation["operationId"] == "extendLease"
    assert operation["parameters"][0]["name"] == "id"
    assert {"200", "400", "401", "404"} <= set(operation["responses"])


def test_open_operations_ask_for_no_token_and_answer_no_api_errors():
    built = paths()
    for name, route in ROUTES.items():
        for operation in route.operations:
            if not operation.open:
                continue
            documented = built[route.pattern][operation.method.lower()]
            assert documented["security"] == [], name
            assert "401" not in documented["responses"], name


def test_the_request_id_pattern_exists_once():
    assert tweens.REQUEST_ID is schemas.REQUEST_ID
    assert openapi.REQUEST_ID_PARAMETER["schema"]["pattern"] == openapi._pattern(schemas.REQUEST_ID)
