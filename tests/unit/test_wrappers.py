"""The provider's wrappers are generated from the interface: a method added to it is guarded,
metered and traced without a line of wrapper code, and nothing else of the adapter is reached.

``IResizable`` stands for the next change of the contract: IProvider with one more method.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from zope.interface.verify import verifyObject

from launchprov.bulkhead import Bulkhead, GuardedProvider, ProviderBusy
from launchprov.metrics import MeteredProvider, Metrics
from launchprov.providers.interface import IProvider, ProviderError
from launchprov.tracing import TracedProvider
from tests.unit.test_bulkhead import PATIENCE, Blocking, guarded, wait_for


class IResizable(IProvider):
    """IProvider and one more operation, as the next change of the contract would add it."""

    def resize(instance_id, region, instance_type):
        """Give an instance another type; return it as it is after the call."""


class Resizable(Blocking):
    """An adapter of IResizable whose calls block until released; it has one more method that
    is in no interface."""

    def resize(self, instance_id, region, instance_type):
        return self._block("resize", instance_type)

    def detach_volumes(self, instance_id, region):
        return self._block("detach_volumes", instance_id)


def test_a_new_operation_takes_a_slot_and_is_answered_at_the_deadline():
    provider = Resizable()
    metrics = Metrics()
    # Composed as create_app composes them: the guards outside, the metrics inside.
    metered = MeteredProvider.for_interface(IResizable)(provider, metrics)
    bulkhead = Bulkhead(1, 0.2, stall_timeout=PATIENCE, patience=PATIENCE)
    service = GuardedProvider.for_interface(IResizable)(metered, bulkhead, 1.0)
    assert verifyObject(IResizable, service)
    with ThreadPoolExecutor(1) as pool:
        resizing = pool.submit(service.resize, "i-1", "us-east-1", "m5.large")
        assert provider.started.acquire(timeout=PATIENCE)
        assert bulkhead.state().in_use == 1  # the resize holds the one slot
        with pytest.raises(ProviderBusy):
            service.describe("i-2", "us-east-1")
        error = resizing.exception(PATIENCE)
    # Answered at the deadline, in a thread of the bulkhead; not a read, so it may have been
    # carried out.
    assert isinstance(error, ProviderError)
    assert (error.code, error.outcome, error.operation) == ("Timeout", "unknown", "resize")
    assert provider.calls == ["resize"]
    assert 0 < provider.deadlines[0] <= 1.0  # the call was told the request's deadline
    provider.release.set()
    wait_for(lambda: bulkhead.state().in_use == 0, "the resize gives its slot back")
    labels = {"provider": "blocking", "operation": "resize", "outcome": "ok"}
    wait_for(
        lambda: metrics.registry.get_sample_value("launchprov_provider_calls_total", labels) == 1,
        "the resize is counted once it ends",
    )
    duration = {"provider": "blocking", "operation": "resize"}
    assert (
        metrics.registry.get_sample_value(
            "launchprov_provider_call_duration_seconds_count", duration
        )
        == 1
    )


def test_a_new_operation_is_a_span():
    exporter = InMemorySpanExporter()
    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(exporter))
    provider = Resizable()
    provider.release.set()
    traced = TracedProvider.for_interface(IResizable)(provider, tracers.get_tracer("test"))
    assert traced.resize("i-1", "eu-west-1", "m5.large") == "m5.large"
    (span,) = exporter.get_finished_spans()
    assert span.name == "blocking.resize"
    assert span.attributes["launchprov.operation"] == "resize"
    assert span.attributes["cloud.region"] == "eu-west-1"
    assert span.attributes["launchprov.instance_ids"] == ("i-1",)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda provider: guarded(provider),
        lambda provider: MeteredProvider(provider, Metrics()),
        lambda provider: TracedProvider(provider, TracerProvider().get_tracer("test")),
    ],
    ids=["guarded", "metered", "traced"],
)
def test_nothing_outside_the_interface_is_reached_through_a_wrapper(wrap):
    provider = Resizable()
    provider.release.set()
    wrapper = wrap(provider)
    # Methods of the adapter that IProvider does not declare would run outside the guards.
    for name in ("resize", "detach_volumes"):
        with pytest.raises(AttributeError):
            getattr(wrapper, name)
    assert provider.calls == []
    # What an adapter says of itself is passed on, with what is assumed when it says nothing.
    assert (wrapper.name, wrapper.can_tag, wrapper.placement_is_zone) == ("blocking", True, True)


def test_an_operation_written_by_hand_is_refused():
    with pytest.raises(TypeError, match=r"GuardedByHand\.untag is written by hand"):

        class GuardedByHand(GuardedProvider):
            def untag(self, instance_id, region, keys):
                return self.provider.untag(instance_id, region, keys)
