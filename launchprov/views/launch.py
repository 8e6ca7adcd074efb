"""PUT /v1/launch: launch instances of an AMI and instance type; answer their ids.
POST /v1/launch/preflight: whether that launch would succeed, launching nothing."""

from __future__ import annotations

import dataclasses

from launchprov import launching
from launchprov.capacity import alternatives, refuse_untried_fallback
from launchprov.params import read_params
from launchprov.providers.interface import LaunchRequest, ProviderError
from launchprov.schemas import IDEMPOTENCY_KEY
from launchprov.signing import signer


def launch_request(request) -> LaunchRequest:
    """The request's validated LaunchRequest, within policy (400 and 403 otherwise)."""
    params = read_params(request, request.registry.launchprov_settings["launchprov.max_body_size"])
    request.params_location = params.location
    launch_request = request.validators.launch(params, request.headers.get(IDEMPOTENCY_KEY))
    request.registry.launchprov_policy.check(request.identity, launch_request)
    refuse_untried_fallback(request.provider, launch_request)
    return launch_request


def launch(request):
    launching_request = launch_request(request)
    provider = request.provider
    try:
        # The client-token lookup, the launch and its fallbacks: one provider slot, one
        # deadline (launchprov.bulkhead).
        launched = provider.run(
            "launch",
            launching.launched,
            provider,
            launching_request,
            request.identity,
            request.request_id,
            request.capacity,
            None,  # now
            signer(request.registry.launchprov_settings["launchprov.tag_signing_key"]),
        )
    except ProviderError as exc:
        raise launching.honest(exc, launching_request, request.request_id) from exc
    request.launch_alternative = launched.alternative  # for the access log
    return launched.ids


def preflight(request):
    key = request.registry.launchprov_settings["launchprov.tag_signing_key"]
    traced = launching.traced(
        launch_request(request), request.identity, request.request_id, sign=signer(key)
    )
    # The request itself, as its first attempt would be sent (its fallback checked by policy).
    checks = request.provider.preflight(alternatives(traced)[0])
    return {
        "would_launch": all(check.ok for check in checks),
        "checks": [dataclasses.asdict(check) for check in checks],
    }


def includeme(config):
    config.add_view(launch, route_name="launch", request_method="PUT", renderer="json")
    config.add_view(preflight, route_name="preflight", request_method="POST", renderer="json")
