"""PUT /v1/launch: launch instances of an AMI and instance type; answer their ids."""

from __future__ import annotations

from launchprov.params import read_params
from launchprov.providers.interface import IProvider
from launchprov.schemas import LaunchValidator


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
