"""Tracing with OpenTelemetry (``launchprov.tracing = true``; the extra ``launchprov[tracing]``).

Imported only when tracing is on: with it off (the default) no OpenTelemetry module is loaded
and nothing wraps a request. When on:

* every request is a SERVER span named ``METHOD /route/pattern``, child of the caller's span
  when the request carries a W3C ``traceparent`` (the propagators of ``OTEL_PROPAGATORS``, by
  default tracecontext and baggage), with the request id and the caller as attributes;
* every call of the provider interface is a span (``ec2.launch``, ``libcloud.describe``),
  made by one wrapper generated from :class:`IProvider`, whatever the adapter or driver;
* every boto3 call is a CLIENT span (``EC2.RunInstances``) with the cloud's request id
  (``aws.request_id``), by opentelemetry-instrumentation-botocore, which also passes the trace
  on to AWS in ``X-Amzn-Trace-Id``.

Provider calls run in the bulkhead's threads with the request's context copied, so their spans
are children of the request's. The SDK is configured from the standard variables: the
exporter from ``OTEL_TRACES_EXPORTER`` (``otlp``, the default, needs
``launchprov[tracing-otlp]``; ``console``; ``none``), its endpoint from
``OTEL_EXPORTER_OTLP_*``, the sampler from ``OTEL_TRACES_SAMPLER``, the resource from
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``. A process whose tracer provider is
already the SDK's (run under ``opentelemetry-instrument``, or a test's) keeps it as it is.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from launchprov.providers.interface import ProviderError
from launchprov.providers.wrappers import LAUNCHING, ProviderWrapper, launched_ids
from launchprov.settings import ConfigurationError

#: The instrumentation scope of launchprov's own spans.
SCOPE = "launchprov"
#: The request span's attributes of launchprov's own (beside HTTP's semantic conventions).
REQUEST_ID = "launchprov.request_id"
CALLER = "launchprov.caller"

#: The entry points of the SDK's exporters, as OTEL_TRACES_EXPORTER names them.
EXPORTER_GROUP = "opentelemetry_traces_exporter"
#: ``otlp`` is the exporter of OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL; http/protobuf (the
#: specification's default) unless it says grpc.
OTLP_BY_PROTOCOL = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}
OTLP_EXTRA = "launchprov[tracing-otlp]"


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The entry-point names of the exporters OTEL_TRACES_EXPORTER asks for (default otlp)."""
    names = [name.strip() for name in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    names = [name for name in names if name and name != "none"]
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    resolved = []
    for name in names:
        if name == "otlp":
            if protocol not in OTLP_BY_PROTOCOL:
                raise ConfigurationError(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL = {protocol!r}: expected one of "
                    f"{', '.join(OTLP_BY_PROTOCOL)} (launchprov.tracing = true)"
                )
            name = OTLP_BY_PROTOCOL[protocol]
        resolved.append(name)
    return resolved


def exporters(environ: Mapping[str, str]) -> list[type[SpanExporter]]:
    """The exporter classes of OTEL_TRACES_EXPORTER; ConfigurationError naming the variable for
    one that is not installed."""
    classes = []
    for name in exporter_names(environ):
        found = entry_points(group=EXPORTER_GROUP, name=name)
        if not found:
            installed = sorted({point.name for point in entry_points(group=EXPORTER_GROUP)})
            hint = f": pip install '{OTLP_EXTRA}'" if name == "otlp_proto_http" else ""
            raise ConfigurationError(
                f"OTEL_TRACES_EXPORTER = {environ.get('OTEL_TRACES_EXPORTER', 'otlp')!r} "
                f"(launchprov.tracing = true): no trace exporter {name!r} is installed{hint} "
                f"(installed: {', '.join([*installed, 'none'])})"
            )
        classes.append(next(iter(found)).load())
    return classes


def tracer_provider(environ: Mapping[str, str] | None = None) -> trace.TracerProvider:
    """The process's SDK tracer provider: the one already set, else one configured from the
    ``OTEL_*`` variables of ``environ`` and set as the global one (once per process)."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    environ = os.environ if environ is None else environ
    classes = exporters(environ)  # a bad variable stops startup before anything is set
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "launchprov"}))
    provider = TracerProvider(resource=resource)  # the sampler: OTEL_TRACES_SAMPLER
    for exporter in classes:
        provider.add_span_processor(BatchSpanProcessor(exporter()))
    trace.set_tracer_provider(provider)
    return trace.get_tracer_provider()


# -- the request span -------------------------------------------------------------------------


def trace_factory(handler, registry):
    """The tween that makes each request's span: outermost, so that every answer has one
    (launchprov's own 400 for a bad X-Request-ID, a 429, an error view's)."""
    tracer = registry.launchprov_tracer

    def traced(request):
        parent = propagate.extract(request.headers)
        with tracer.start_as_current_span(
            request.method, context=parent, kind=SpanKind.SERVER
        ) as span:
            span.set_attribute("http.request.method", request.method)
            span.set_attribute("url.path", request.path)
            response = handler(request)
            route = request.matched_route
            if route is not None:
                span.update_name(f"{request.method} {route.pattern}")
                span.set_attribute("http.route", route.pattern)
            span.set_attribute("http.response.status_code", response.status_int)
            if response.status_int >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.set_attribute(REQUEST_ID, getattr(request, "request_id", ""))
            if request.identity is not None:
                span.set_attribute(CALLER, request.identity)
            return response

    return traced


# -- a span per provider call -----------------------------------------------------------------


def _call_attributes(parameters: tuple[str, ...], args: tuple) -> dict[str, Any]:
    """What a span says of a call's arguments: its region and instance ids."""
    attributes: dict[str, Any] = {}
    for name, value in zip(parameters, args, strict=False):
        if name == "region" and value:
            attributes["cloud.region"] = value
        elif name == "instance_id":
            attributes["launchprov.instance_ids"] = (value,)
        elif name == "instance_ids":
            attributes["launchprov.instance_ids"] = tuple(value)
        elif region := getattr(value, "region", None):  # a LaunchRequest, an InstanceQuery
            attributes["cloud.region"] = region
    return attributes


class TracedProvider(ProviderWrapper):
    """An IProvider whose every call is a span; generated from the interface
    (:class:`~launchprov.providers.wrappers.ProviderWrapper`)."""

    def __init__(self, provider, tracer: trace.Tracer):
        super().__init__(provider)
        self.tracer = tracer

    @classmethod
    def wrap(cls, operation: str) -> Callable:
        parameters = tuple(cls.interface[operation].positional)
        launching = operation in LAUNCHING

        def traced(self, *args):
            with self.tracer.start_as_current_span(
                f"{self.name}.{operation}",
                attributes={
                    "launchprov.provider": self.name,
                    "launchprov.operation": operation,
                    **_call_attributes(parameters, args),
                },
            ) as span:
                try:
                    result = getattr(self.provider, operation)(*args)
                except ProviderError as exc:
                    span.set_attribute("launchprov.provider.error_code", exc.code)
                    raise
                if launching:
                    span.set_attribute("launchprov.instance_ids", tuple(launched_ids(result)))
                return result

        return traced


def instrument(provider, environ: Mapping[str, str] | None = None) -> TracedProvider:
    """Set tracing up for the process (the SDK, boto3's calls) and wrap ``provider``."""
    tracers = tracer_provider(environ)
    # Process-wide, once: every boto3 client's calls are spans from now on.
    BotocoreInstrumentor().instrument(tracer_provider=tracers)
    return TracedProvider(provider, tracers.get_tracer(SCOPE))


def includeme(config):
    config.add_tween("launchprov.tracing.trace_factory", over="launchprov.tweens.observe_factory")
