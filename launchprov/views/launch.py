"""PUT /v1/launch: launch instances of an AMI and instance type; answer their ids."""

from __future__ import annotations

from launchprov import launching
from launchprov.params import read_params
from launchprov.providers.interface import ProviderError
from launchprov.schemas import IDEMPOTENCY_KEY


def launch(request):
    params = read_params(request, request.registry.launchprov_settings["launchprov.max_body_size"])
    request.params_location = params.location
    launch_request = request.validators.launch(params, request.headers.get(IDEMPOTENCY_KEY))
    request.registry.launchprov_policy.check(request.identity, launch_request)
    provider = request.provider
    try:
        # The client-token lookup and the launch: one provider slot, one deadline.
        return provider.run(
            "launch",
            launching.launch,
            provider,
            launch_request,
            request.identity,
            request.request_id,
        )
    except ProviderError as exc:
        raise launching.honest(exc, launch_request, request.request_id) from exc


def includeme(config):
    config.add_view(launch, route_name="launch", request_method="PUT", renderer="json")
