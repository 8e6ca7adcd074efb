"""PUT /v1/launch: launch instances of an AMI and instance type; answer their ids."""

from __future__ import annotations

from launchprov.params import read_params


def launch(request):
    params = read_params(request, request.registry.launchprov_settings["launchprov.max_body_size"])
    request.params_location = params.location
    return request.provider.launch(request.validators.launch(params))


def includeme(config):
    config.add_view(launch, route_name="launch", request_method="PUT", renderer="json")
