"""End to end: metrics under concurrent load, JSON log lines, readiness -- as operators see them."""

from __future__ import annotations

import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import CREDENTIALS_ENV, ec2_settings, running
from tests.support import GOOD_AMI

pytestmark = pytest.mark.e2e

LAUNCH = {"ami": GOOD_AMI, "instance_type": "t2.micro"}


def metric(service, name: str, **labels) -> float:
    with urllib.request.urlopen(f"{service.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def wait_for_output(service, predicate, deadline=10.0):
    end = time.monotonic() + deadline
    while not predicate(service.output):
        assert time.monotonic() < end, service.output[-2000:]
        time.sleep(0.05)  # polling interval; the deadline decides


def test_metrics_count_every_request_of_concurrent_threads(moto_process, moto_client):
    with running(ec2_settings(moto_process), CREDENTIALS_ENV) as service:
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda _: service.launch(LAUNCH), range(48)))
        assert [status for status, _, _ in answers] == [200] * 48
        labels = {"route": "launch", "method": "PUT", "status": "200"}
        assert metric(service, "launchprov_http_requests_total", **labels) == 48
        assert metric(service, "launchprov_instances_launched_total", provider="ec2") == 48
        calls = {"provider": "ec2", "operation": "launch", "outcome": "ok"}
        assert metric(service, "launchprov_provider_calls_total", **calls) == 48
        count = metric(
            service, "launchprov_http_request_duration_seconds_count", route="launch", method="PUT"
        )
        assert count == 48


def test_json_log_lines_carry_the_request(moto_process, moto_client):
    settings = ec2_settings(moto_process, **{"launchprov.log_format": "json"})
    with running(settings, CREDENTIALS_ENV) as service:
        service.request("PUT", "/v1/launch", {**LAUNCH, "ami": "ami-12345678"})
        wait_for_output(service, lambda out: '"route": "launch"' in out)
    lines = [json.loads(line) for line in service.output.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "launchprov.access"]
    warning = [line for line in lines if line["level"] == "WARNING"]
    assert access[0]["status"] == 408 and access[0]["route"] == "launch"
    assert access[0]["request_id"] == warning[0]["request_id"] != "-"
    assert access[0]["caller"] == "anonymous"


def test_readiness_follows_the_provider(moto_process, refusing_endpoint):
    with running(ec2_settings(moto_process), CREDENTIALS_ENV) as service:
        assert service.readyz()[0] == 200
    settings = ec2_settings(refusing_endpoint, **{"launchprov.readiness_timeout": "1"})
    with running(settings, CREDENTIALS_ENV) as service:
        status, _, body = service.readyz()
        assert status == 503 and body["details"][0]["description"] == "EndpointUnreachable"
        assert service.request("GET", "/healthz")[0] == 200
