"""Backends for the functional suite: every adapter behind the app that launchprov.main makes.

The shared tests take the ``backend`` fixture, so each runs once per adapter; a new adapter is
added here and is checked by the same tests.
"""

from __future__ import annotations

import dataclasses

import pytest
import webtest

from tests.support import libcloud_ec2_settings, make_app


@dataclasses.dataclass
class Backend:
    name: str
    app: webtest.TestApp
    #: A boto3 client of the EC2 the adapter talks to, or None for a backend with no EC2.
    ec2: object | None
    #: Where that EC2 listens; None for moto's in-process mock.
    endpoint_url: str | None = None
    #: A well-formed id of no instance.
    missing_id: str = "i-0123456789abcdef0"
    #: Whether the provider can stop and start instances (the dummy driver cannot: 501).
    can_stop: bool = True


def ec2_backend(request, **settings) -> Backend:
    client = request.getfixturevalue("moto_ec2")
    return Backend("ec2", make_app(**{"launchprov.provider": "ec2", **settings}), client)


def libcloud_ec2_backend(request, **settings) -> Backend:
    client = request.getfixturevalue("moto_server_ec2")
    app = make_app(**libcloud_ec2_settings(client.meta.endpoint_url, **settings))
    return Backend("libcloud-ec2", app, client, client.meta.endpoint_url)


def libcloud_dummy_backend(request, **settings) -> Backend:
    app = make_app(
        **{"launchprov.provider": "libcloud", "launchprov.libcloud.driver": "dummy", **settings}
    )
    return Backend("libcloud-dummy", app, None, missing_id="987654", can_stop=False)


#: name -> factory(request, **settings): the backend's app, made with extra .ini settings.
BACKENDS = {
    "ec2": ec2_backend,
    "libcloud-ec2": libcloud_ec2_backend,
    "libcloud-dummy": libcloud_dummy_backend,
}
EC2_BACKENDS = ["ec2", "libcloud-ec2"]


@pytest.fixture(params=list(BACKENDS))
def backend(request) -> Backend:
    return BACKENDS[request.param](request)


@pytest.fixture(params=EC2_BACKENDS)
def ec2_backed(request) -> Backend:
    """Only the adapters with an EC2 behind them: what EC2 keeps can be described."""
    return BACKENDS[request.param](request)


@pytest.fixture(scope="session")
def span_exporter():
    """The SDK's in-memory exporter on the process's tracer provider, which an app with
    launchprov.tracing = true uses as it is (as under opentelemetry-instrument). Set once: the
    global tracer provider cannot be replaced."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    exporter = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(span_exporter):
    """The exporter, empty at the start of the test; boto3 no longer traced after it (a traced
    app instruments botocore for the whole process)."""
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

    span_exporter.clear()
    yield span_exporter
    BotocoreInstrumentor().uninstrument()
    span_exporter.clear()
