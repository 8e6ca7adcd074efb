"""PUT /v1/launch: launch instances of an AMI and instance type; answer their ids."""

from __future__ import annotations

import colander

from launchprov.errors import InvalidParameters, detail
from launchprov.params import Params, read_params
from launchprov.providers.interface import IProvider, LaunchRequest
from launchprov.schemas import bind_launch_schema, errors_by_name


class LaunchValidator:
    """Turns request parameters into a LaunchRequest; schemas are bound once, at startup."""

    def __init__(self, defaults, image_id_pattern):
        self.schemas = {
            textual: bind_launch_schema(
                textual=textual, defaults=defaults, image_id_pattern=image_id_pattern
            )
            for textual in (False, True)
        }

    def validate(self, params: Params) -> LaunchRequest:
        """Return the LaunchRequest, or raise InvalidParameters naming every bad parameter."""
        schema = self.schemas[params.textual]
        known = {child.name for child in schema.children}
        problems = {name: "unknown parameter" for name in params.values if name not in known}
        given = {name: value for name, value in params.values.items() if name in known}
        appstruct = None
        try:
            appstruct = schema.deserialize(given)
        except colander.Invalid as error:
            problems.update(errors_by_name(schema, error))
        if problems:
            details = [detail(params.location, name, text) for name, text in problems.items()]
            names = ", ".join(problems)
            raise InvalidParameters(f"invalid or missing parameters: {names}", details)
        return LaunchRequest(**appstruct, explicit=frozenset(given))


def launch(request):
    params = read_params(request, request.registry.launchprov_settings["launchprov.max_body_size"])
    request.params_location = params.location
    launch_request = request.registry.launch_validator.validate(params)
    return request.registry.getUtility(IProvider).launch(launch_request)


def includeme(config):
    settings = config.registry.launchprov_settings
    provider = config.registry.getUtility(IProvider)
    defaults = {
        name: settings[f"launchprov.defaults.{name}"]
        for name in ("key_name", "security_groups", "placement")
    }
    config.registry.launch_validator = LaunchValidator(defaults, provider.image_id_pattern)
    config.add_view(launch, route_name="launch", request_method="PUT", renderer="json")
