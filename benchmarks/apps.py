"""Reference apps, served by waitress under pserve exactly like launchprov, to compare with.

* ``bare_json``: a plain WSGI app that reads the body and answers the JSON launchprov answers:
  the floor of waitress and HTTP, with no framework and no provider.
* ``bare_wsgi_boto3``: a plain WSGI app that calls boto3 (one shared client with launchprov's
  botocore Config): what waitress and HTTP cost around the provider call, with no framework.
* ``bare_pyramid``: a bare Pyramid view that calls boto3 with no validation (the same client):
  the limit launchprov can approach.

``.ini``: ``use = call:benchmarks.apps:bare_json`` (``endpoint_url`` is the EC2 endpoint).
"""

from __future__ import annotations

import json
import os
import uuid

import boto3
from botocore.config import Config
from pyramid.config import Configurator

#: launchprov's botocore Config with production.ini's values, so that only launchprov's own
#: code differs between it and ``bare_pyramid`` (the pool is sized from the .ini, as there).
PROVIDER_CONFIG = {
    "connect_timeout": 5.0,
    "read_timeout": 20.0,
    "retries": {"total_max_attempts": 3, "mode": "standard"},
}

#: What launchprov sends for {"ami": "ami-760aaa0f", "instance_type": "t2.micro"} with the
#: seed's defaults (launchprov.providers.ec2.run_instances_params of that request).
RUN_INSTANCES = {
    "MinCount": 1,
    "MaxCount": 1,
    "KeyName": "scalacity_dev1",
    "Placement": {"AvailabilityZone": "us-east-1b"},
    "InstanceInitiatedShutdownBehavior": "terminate",
    "EbsOptimized": False,
    "SecurityGroups": ["SSH"],
}


def run_instances(ami: str, instance_type: str, caller: str = "bench") -> dict:
    """The RunInstances arguments launchprov sends, its two tracing tags included.

    launchprov tags every instance with its caller and request id (launchprov.launching), so
    the provider does the same work whoever calls it.
    """
    tags = [
        {"Key": "launchprov:caller", "Value": caller},
        {"Key": "launchprov:request-id", "Value": uuid.uuid4().hex},
    ]
    return {
        "ImageId": ami,
        "InstanceType": instance_type,
        **RUN_INSTANCES,
        "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}],
    }


def ec2_client(endpoint_url: str, max_pool_connections: int | None = None):
    """A boto3 EC2 client on ``endpoint_url`` with launchprov's Config."""
    extra = {"max_pool_connections": max_pool_connections} if max_pool_connections else {}
    return boto3.session.Session().client(
        "ec2",
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        config=Config(**PROVIDER_CONFIG, **extra),
    )


def bare_json(global_config, **settings):
    """WSGI app: drain the body, answer ``["i-..."]`` as launchprov does."""
    counter = iter(range(1 << 62))

    def app(environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        environ["wsgi.input"].read(length)
        body = json.dumps([f"i-{os.getpid():08x}{next(counter):09x}"]).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return app


def bare_wsgi_boto3(global_config, **settings):
    """WSGI app: parse the JSON body, launch with boto3, answer the ids; nothing else."""
    client = ec2_client(settings["endpoint_url"], int(settings["max_pool_connections"]))

    def app(environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length))
        reply = client.run_instances(**run_instances(body["ami"], body["instance_type"]))
        answer = json.dumps([instance["InstanceId"] for instance in reply["Instances"]]).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))]
        )
        return [answer]

    return app


def bare_pyramid(global_config, **settings):
    """A Pyramid app whose one view launches with boto3: no validation, no error handling."""
    client = ec2_client(settings["endpoint_url"], int(settings["max_pool_connections"]))

    def launch(request):
        body = request.json_body
        reply = client.run_instances(**run_instances(body["ami"], body["instance_type"]))
        return [instance["InstanceId"] for instance in reply["Instances"]]

    with Configurator(settings=settings) as config:
        config.add_route("launch", "/v1/launch")
        config.add_view(launch, route_name="launch", request_method="PUT", renderer="json")
    return config.make_wsgi_app()
