"""launchprov.tracing: which exporters the OTEL_* variables ask for, and a clear stop when one
cannot be had; the provider wrapper keeps the interface."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from zope.interface.verify import verifyObject

from launchprov import tracing
from launchprov.providers.interface import IProvider
from launchprov.settings import ConfigurationError
from tests.support import StubProvider


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({}, ["otlp_proto_http"]),  # the specification's defaults: otlp, over http/protobuf
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "console, otlp"}, ["console", "otlp_proto_http"]),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, ["otlp_proto_grpc"]),
        (
            {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            },
            ["otlp_proto_http"],
        ),
    ],
)
def test_the_exporters_are_those_of_the_standard_variables(environ, names):
    assert tracing.exporter_names(environ) == names


def test_the_console_exporter_is_the_sdks():
    assert tracing.exporters({"OTEL_TRACES_EXPORTER": "console"}) == [ConsoleSpanExporter]


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, ["OTEL_TRACES_EXPORTER", "'zipkin'", "console"]),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, ["OTEL_TRACES_EXPORTER", "otlp_proto_grpc"]),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"}, ["OTEL_EXPORTER_OTLP_PROTOCOL", "thrift"]),
    ],
    ids=["unknown", "not-installed", "bad-protocol"],
)
def test_an_exporter_that_cannot_be_had_stops_startup_naming_the_variable(environ, named):
    with pytest.raises(ConfigurationError) as raised:
        tracing.exporters(environ)
    for name in named:
        assert name in str(raised.value)
    assert "launchprov.tracing" in str(raised.value)


def test_the_traced_provider_keeps_the_interface_and_the_adapters_description():
    adapter = StubProvider()
    traced = tracing.TracedProvider(adapter, tracing.trace.get_tracer("test"))
    verifyObject(IProvider, traced)
    assert (traced.name, traced.can_tag) == (adapter.name, adapter.can_tag)
