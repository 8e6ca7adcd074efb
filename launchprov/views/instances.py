"""The life of an instance: describe, list, terminate, stop, start, reboot.

Every route about one instance goes through the one ownership check
(:meth:`launchprov.ownership.Ownership.admit`) before it reaches the provider; a listing is
narrowed to what the caller may see by filters the provider applies.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from launchprov import leases, listing
from launchprov.page_tokens import PageTokens
from launchprov.params import read_params, read_query
from launchprov.providers.interface import Instance, InstancePage


def instance_json(instance: Instance) -> dict[str, Any]:
    """An instance as the API shows it: every field, null where the provider does not know."""
    launch_time = instance.launch_time
    return {
        "id": instance.id,
        "state": instance.state,
        "instance_type": instance.instance_type,
        "ami": instance.ami,
        "placement": instance.placement,
        "key_name": instance.key_name,
        "security_groups": list(instance.security_groups),
        "private_ip": instance.private_ip,
        "public_ip": instance.public_ip,
        "private_dns": instance.private_dns,
        "public_dns": instance.public_dns,
        "launch_time": launch_time.isoformat().replace("+00:00", "Z") if launch_time else None,
        "expires_at": leases.expires_at_text(instance),
        "tags": dict(instance.tags),
        "subnet_id": instance.subnet_id,
        "iam_instance_profile": instance.iam_instance_profile,
        "spot": instance.spot,
        "metadata_tokens": instance.metadata_tokens,
    }


def _target(request) -> tuple[str, str]:
    instance_id, region = request.validators.instance_target(
        request.matchdict["id"], read_query(request)
    )
    request.target_region = region  # a 404 names the region it looked in
    return instance_id, region


def describe(request):
    instance_id, region = _target(request)
    admitted = request.ownership.admit(
        request.provider, request.identity, instance_id, region, "describe"
    )
    return instance_json(admitted or request.provider.describe(instance_id, region))


def list_instances(request):
    query, expired, duplicate = request.validators.instance_listing(read_query(request))
    key = request.registry.launchprov_settings["launchprov.tag_signing_key"]
    tokens = PageTokens(key, request.identity, query, expired=expired, duplicate=duplicate)
    query = dataclasses.replace(query, page_token=tokens.open(query.page_token))
    visible = request.ownership.visible(request.identity, query)
    if visible is None:
        page = InstancePage([], None)
    else:
        page = listing.list_instances(request.provider, visible, expired, duplicate)
    return {
        "instances": [instance_json(item) for item in page.instances],
        "next": tokens.seal(page.next_token),
    }


def perform(request, action: str) -> Instance:
    """Do ``action`` (terminate, stop, start, reboot) on the request's instance, if the caller
    may; log and count it when the instance is another's."""
    instance_id, region = _target(request)
    request.ownership.admit(request.provider, request.identity, instance_id, region, action)
    instance = getattr(request.provider, action)(instance_id, region)
    request.ownership.record(request.identity, instance, action)
    return instance


def terminate(request):
    return instance_json(perform(request, "terminate"))


def act(request):
    return instance_json(perform(request, request.matchdict["action"]))  # stop, start, reboot


def set_expiry(request):
    params = read_params(request, request.registry.launchprov_settings["launchprov.max_body_size"])
    request.params_location = params.location
    instance_id, region, expires_in = request.validators.expiry(request.matchdict["id"], params)
    return instance_json(_change_lease(request, instance_id, region, expires_in))


def remove_expiry(request):
    return instance_json(_change_lease(request, *_target(request), None))


def _change_lease(request, instance_id: str, region: str, expires_in: int | None) -> Instance:
    return leases.change(
        request.provider,
        request.ownership,
        request.registry.launchprov_policy,
        request.identity,
        instance_id,
        region,
        expires_in,
    )


def includeme(config):
    config.add_view(describe, route_name="instance", request_method="GET", renderer="json")
    config.add_view(terminate, route_name="instance", request_method="DELETE", renderer="json")
    config.add_view(list_instances, route_name="instances", request_method="GET", renderer="json")
    config.add_view(act, route_name="instance_action", request_method="POST", renderer="json")
    config.add_view(set_expiry, route_name="instance_expiry", request_method="PUT", renderer="json")
    config.add_view(
        remove_expiry, route_name="instance_expiry", request_method="DELETE", renderer="json"
    )
