"""launchprov's own cost per request, in one process, with no network and no server.

The app is built by ``launchprov.main`` from production.ini's [app:main] settings, with
production.ini's logging (its stream sent to /dev/null), the harness's bearer token, and a stub
EC2 client that answers RunInstances at once: what is left is launchprov and Pyramid.
Variants switch one part off or apply one change, so each row's difference from the first is
what that part costs. Rounds are interleaved and the best round of each variant is kept (the
least disturbed by the rest of the machine).

``python -m benchmarks.inprocess [--requests N] [--rounds R]`` prints JSON.
"""

from __future__ import annotations

import argparse
import configparser
import io
import json
import logging
import logging.config
import os
import sys
import time
import timeit
import uuid

from pyramid.config import Configurator
from pyramid.request import Request

import launchprov
from benchmarks.processes import CHILD_ENV, LAUNCH_BODY, LAUNCH_HEADERS, REPO, auth_env
from benchmarks.variants import reified_properties, request_attributes, without_provider_metrics
from launchprov.providers.ec2 import EC2Provider

REPLY = {"Instances": [{"InstanceId": "i-0123456789abcdef0"}]}
STUB = "benchmarks.inprocess:StubEC2Provider"


class StubClient:
    """Answers RunInstances at once, as the stand-in does, without botocore or a socket."""

    def run_instances(self, **params):
        return REPLY


class StubEC2Provider(EC2Provider):
    """launchprov's boto3 adapter (argument mapping, error translation) on a stub client."""

    def client(self, region: str):
        return StubClient()


def environ() -> dict:
    return {
        "REQUEST_METHOD": "PUT",
        "PATH_INFO": "/v1/launch",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "6543",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(LAUNCH_BODY),
        "CONTENT_TYPE": LAUNCH_HEADERS["Content-Type"],
        "CONTENT_LENGTH": str(len(LAUNCH_BODY)),
        "HTTP_AUTHORIZATION": LAUNCH_HEADERS["Authorization"],
    }


def call(app) -> bytes:
    statuses = []
    body = b"".join(app(environ(), lambda status, headers, exc_info=None: statuses.append(status)))
    if statuses != ["200 OK"] or not body.startswith(b'["i-'):
        raise RuntimeError(f"unexpected answer {statuses} {body[:200]!r}")
    return body


def production_settings(**overrides: str) -> dict[str, str]:
    """production.ini's [app:main] settings, with the stub provider and ``overrides``."""
    ini = configparser.RawConfigParser()
    ini.optionxform = str
    ini.read(REPO / "production.ini")
    settings = {
        key: value
        for key, value in ini.items("app:main")
        if key != "use" and key not in ini.defaults()
    }
    settings.update(
        {"launchprov.provider": STUB, "launchprov.ec2.endpoint_url": "http://127.0.0.1:9"}
    )
    # Unlimited, as before production.ini had its rate limits: the harness is one caller.
    settings.update(
        dict.fromkeys(("launchprov.ratelimit.default", "launchprov.ratelimit.launch.default"), "")
    )
    settings.update(overrides)
    return settings


def launchprov_app(**overrides: str):
    return launchprov.main({}, **production_settings(**overrides))


def bare_pyramid_app():
    """The floor: one Pyramid view reading the JSON body, the same stub reply, no validation."""
    client = StubClient()

    def launch(request):
        body = request.json_body
        reply = client.run_instances(ImageId=body["ami"], InstanceType=body["instance_type"])
        return [instance["InstanceId"] for instance in reply["Instances"]]

    with Configurator() as config:
        config.add_route("launch", "/v1/launch")
        config.add_view(launch, route_name="launch", request_method="PUT", renderer="json")
    return config.make_wsgi_app()


class QuietAccessLog:
    """An app whose access-log lines are not emitted (logger launchprov.access at WARNING)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        access = logging.getLogger("launchprov.access")
        level = access.level
        access.setLevel(logging.WARNING)
        try:
            return self.app(environ, start_response)
        finally:
            access.setLevel(level)


#: name -> (what it is, how to build it). The first is the reference for differences.
VARIANTS = {
    "launchprov": ("launchprov as built (production.ini logging)", launchprov_app),
    "no_access_log": (
        "launchprov without its access-log line",
        lambda: QuietAccessLog(launchprov_app()),
    ),
    "auth_off": (
        "launchprov with launchprov.auth.enabled = false",
        lambda: launchprov_app(**{"launchprov.auth.enabled": "false"}),
    ),
    "no_provider_metrics": (
        "launchprov without MeteredProvider",
        lambda: without_provider_metrics(launchprov_app()),
    ),
    "reified_properties": (
        "launchprov before R2: the request's attributes reified per request (add_request_method)",
        lambda: reified_properties(launchprov_app()),
    ),
    "bare_pyramid": ("a bare Pyramid view, no validation (the floor)", bare_pyramid_app),
}


def cpu_per_request(app, requests: int) -> float:
    """Microseconds of CPU per request over ``requests`` calls."""
    started = time.process_time()
    for _ in range(requests):
        call(app)
    return (time.process_time() - started) / requests * 1e6


def parts(app) -> dict[str, float]:
    """Microseconds per call of launchprov's steps, each alone."""
    from launchprov.params import read_params
    from launchprov.providers.ec2 import run_instances_params

    max_body = 65536

    def read():
        return read_params(Request(environ()), max_body)

    params = read()
    bound = bound_validators(app)
    launch_request = bound.launch(params)
    steps = {
        "Request(environ) + read_params": read,
        "validators.launch (colander)": lambda: bound.launch(params),
        "run_instances_params": lambda: run_instances_params(launch_request),
        "uuid.uuid4().hex (request id)": lambda: uuid.uuid4().hex,
        "access-log line (production.ini's handler and format)": lambda: logging.getLogger(
            "launchprov.access"
        ).info(
            "%s %s %s %.1fms caller=%s request_id=%s",
            "PUT",
            "launch",
            200,
            1.0,
            "-",
            "0" * 32,
            extra={"method": "PUT", "route": "launch", "status": 200, "duration_ms": 1.0},
        ),
    }
    result = {}
    for name, step in steps.items():
        number = 5000
        result[name] = min(timeit.repeat(step, number=number, repeat=3)) / number * 1e6
    return result


def bound_validators(app):
    """The bound schemas launchprov hands its views as ``request.validators``."""
    return request_attributes(app)["validators"]


def production_logging() -> None:
    logging.config.fileConfig(REPO / "production.ini", disable_existing_loggers=False)
    sink = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the process)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sink)


def measure(requests: int, rounds: int) -> dict:
    os.environ.update({key: value for key, value in CHILD_ENV.items() if key != "PYTHONPATH"})
    os.environ.update(auth_env())
    production_logging()
    apps = {}
    errors = {}
    for name, (_, build) in VARIANTS.items():
        try:
            apps[name] = build()
            for _ in range(300):  # warm-up: caches, first-call imports
                call(apps[name])
        except Exception as exc:  # reported with the others; the exit status says so
            errors[name] = f"{type(exc).__name__}: {exc}"
            apps.pop(name, None)
    samples: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(rounds):
        for name, app in apps.items():
            samples[name].append(cpu_per_request(app, requests))
    return {
        "requests_per_round": requests,
        "rounds": rounds,
        "variants": {
            name: {"description": VARIANTS[name][0], "us": min(values), "rounds_us": values}
            for name, values in samples.items()
        },
        "errors": errors,
        "parts_us": parts(apps["launchprov"]) if "launchprov" in apps else {},
    }


def main(argv: list[str] | None = None) -> int:
    """Print the JSON; exit status 1 when a variant could not be built (its error is in it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    result = measure(args.requests, args.rounds)
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
