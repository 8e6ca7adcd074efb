"""End to end: SIGTERM drains a launchprov process (``use = egg:launchprov#waitress``, as
production.ini serves it) instead of dropping what it holds.

A waitress process in front of a fault-injecting EC2 endpoint that holds every RunInstances
LAUNCH_HELD s, over a moto server. A launch is in progress when the process gets SIGTERM: its
probes say ``draining`` while it still serves, then it stops accepting, answers the launch,
and exits 0.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import CREDENTIALS_ENV, accepts_connections, ec2_settings, running
from tests.faulty_ec2 import FaultControl, serve
from tests.support import GOOD_AMI, ec2_client, serve_in_thread

pytestmark = pytest.mark.e2e

DRAIN_DELAY = 2.5
LAUNCH_HELD = 4.0
DEADLINE = 30.0


@pytest.fixture
def slow_ec2(moto_process) -> Iterator[FaultControl]:
    """EC2 (the moto process) behind an endpoint that holds every launch LAUNCH_HELD s."""
    server = serve(moto_process)
    serve_in_thread(server)
    control = FaultControl(f"http://127.0.0.1:{server.server_address[1]}")
    control.slow_down(RunInstances=LAUNCH_HELD)
    try:
        yield control
    finally:
        server.shutdown()
        server.server_close()


def poll(check, what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > end:
            raise TimeoutError(f"{what}: not after {DEADLINE} s")
        time.sleep(0.02)  # polling interval: the check decides


def test_sigterm_fails_the_probes_stops_accepting_answers_the_launch_then_exits_0(
    slow_ec2, moto_process
):
    settings = ec2_settings(slow_ec2.url, **{"launchprov.drain_delay": str(DRAIN_DELAY)})
    with running(settings, CREDENTIALS_ENV) as service:
        launched: list = []
        launch = threading.Thread(
            target=lambda: launched.append(
                service.launch({"ami": GOOD_AMI, "instance_type": "t2.micro"})
            )
        )
        launch.start()
        poll(lambda: slow_ec2.calls("RunInstances"), "the launch reaching EC2")
        signalled = time.monotonic()
        service.process.terminate()

        # Draining: the probes fail for the load balancer, and everything is still served.
        poll(lambda: service.request("GET", "/healthz")[0] == 503, "/healthz failing")
        status, _, body = service.request("GET", "/readyz")
        assert status == 503
        assert body["details"] == [
            {"location": "process", "name": "state", "description": "draining"}
        ]
        assert "draining" in body["message"]
        status, _, body = service.request("GET", "/v1/instances?limit=1")
        assert status == 200, body
        assert time.monotonic() - signalled < DRAIN_DELAY, "too slow to see the drain"

        # Then no new connection, while the launch still waits for EC2.
        poll(lambda: not accepts_connections(service.port), "the listening socket closing")
        assert time.monotonic() - signalled >= DRAIN_DELAY
        assert launch.is_alive(), "the launch ended before the process stopped accepting"

        launch.join(timeout=DEADLINE)
        ((status, _, ids),) = launched
        assert status == 200, ids
        (instance_id,) = ids
        instance = ec2_client(moto_process).describe_instances(InstanceIds=[instance_id])
        assert instance["Reservations"][0]["Instances"][0]["InstanceId"] == instance_id
        assert service.process.wait(timeout=DEADLINE) == 0
        assert "drained: every request in progress was answered" in service.output
