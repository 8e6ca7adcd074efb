"""The life of an instance: describe, list, terminate, stop, start, reboot."""

from __future__ import annotations

from typing import Any

from launchprov.params import read_query
from launchprov.providers.interface import Instance


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
        "tags": dict(instance.tags),
        "subnet_id": instance.subnet_id,
        "iam_instance_profile": instance.iam_instance_profile,
        "spot": instance.spot,
        "metadata_tokens": instance.metadata_tokens,
    }


def _target(request) -> tuple[str, str]:
    return request.validators.instance_target(request.matchdict["id"], read_query(request))


def describe(request):
    return instance_json(request.provider.describe(*_target(request)))


def list_instances(request):
    page = request.provider.list_instances(request.validators.instance_query(read_query(request)))
    return {"instances": [instance_json(item) for item in page.instances], "next": page.next_token}


def terminate(request):
    return instance_json(request.provider.terminate(*_target(request)))


def act(request):
    action = getattr(request.provider, request.matchdict["action"])  # stop, start or reboot
    return instance_json(action(*_target(request)))


def includeme(config):
    config.add_view(describe, route_name="instance", request_method="GET", renderer="json")
    config.add_view(terminate, route_name="instance", request_method="DELETE", renderer="json")
    config.add_view(list_instances, route_name="instances", request_method="GET", renderer="json")
    config.add_view(act, route_name="instance_action", request_method="POST", renderer="json")
