"""End to end: leases and launchprov-reap, with a real service and a real moto server process.

The reaper is the installed console command, run on the service's own .ini and environment.
Time passing is waited for by polling the service with a deadline, never by sleeping.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from launchprov.launching import CALLER_TAG, EXPIRES_AT_TAG
from launchprov.leases import stamp
from tests.e2e.conftest import ADAPTERS, BIN, CREDENTIALS_ENV, HangingEndpoint, running
from tests.support import GOOD_AMI

pytestmark = pytest.mark.e2e

REAP = str(BIN / "launchprov-reap")
LAUNCH = {"ami": GOOD_AMI, "instance_type": "t2.micro"}
#: Bounds against a hung test, not timings under test.
RUN_BOUND = 120
#: The service signs its launches with it; the reaper reads it from the same .ini.
SIGNED = {"launchprov.tag_signing_key": "e2e-test-key-0123456789"}


def reaper(ini: Path, *args: str, env=None) -> subprocess.Popen:
    import os

    return subprocess.Popen(
        [REAP, str(ini), *args],
        env=dict(os.environ, **CREDENTIALS_ENV, **(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> tuple[int, list[dict], str]:
    """(exit status, the JSON lines of stdout, stderr) of a reaper run."""
    out, err = process.communicate(timeout=RUN_BOUND)
    return process.returncode, [json.loads(line) for line in out.splitlines()], err


def ec2_state(client, instance_id: str) -> str:
    reply = client.describe_instances(InstanceIds=[instance_id])
    return reply["Reservations"][0]["Instances"][0]["State"]["Name"]


def wait_until_expired(service, instance_id: str, deadline: float = 30.0) -> None:
    """Poll the service's expired filter until it lists the instance."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        status, _, page = service.request("GET", f"/v1/instances?expired=true&id={instance_id}")
        assert status == 200, page
        if [item["id"] for item in page["instances"]] == [instance_id]:
            return
        time.sleep(0.1)  # polling interval; the deadline decides
    raise AssertionError(f"{instance_id} never expired")


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_the_reaper_terminates_what_expired_and_nothing_else(adapter, moto_process, moto_client):
    with running({**ADAPTERS[adapter](moto_process), **SIGNED}, CREDENTIALS_ENV) as service:
        status, _, (short,) = service.launch({**LAUNCH, "expires_in": 1})
        assert status == 200
        _, _, (long,) = service.launch({**LAUNCH, "expires_in": 3600})
        _, _, (unleased,) = service.launch(LAUNCH)
        past = stamp(datetime.now(UTC) - timedelta(hours=1))
        outsider = moto_client.run_instances(
            ImageId=GOOD_AMI,
            InstanceType="t2.micro",
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": EXPIRES_AT_TAG, "Value": past}]}
            ],
        )["Instances"][0]["InstanceId"]
        # Made outside launchprov, with launchprov's caller tag and a past lease: not signed.
        forged = moto_client.run_instances(
            ImageId=GOOD_AMI,
            InstanceType="t2.micro",
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [
                        {"Key": EXPIRES_AT_TAG, "Value": past},
                        {"Key": CALLER_TAG, "Value": "anonymous"},
                    ],
                }
            ],
        )["Instances"][0]["InstanceId"]
        keep = [long, unleased, outsider, forged]
        _, _, shown = service.request("GET", f"/v1/instances/{short}")
        assert shown["expires_at"] is not None

        wait_until_expired(service, short)

        code, lines, err = finish(reaper(service.ini, "--dry-run"))
        assert code == 0, err
        (dry,) = [line for line in lines if line.get("id") == short]
        assert dry["action"] == "would-terminate" and dry["caller"] == "anonymous"
        assert dry["region"] == "us-east-1" and dry["expires_at"] == shown["expires_at"]
        assert lines[-1]["summary"] is True and lines[-1]["dry_run"] is True
        (skipped,) = [line for line in lines if line.get("id") == forged]
        assert skipped["action"] == "skipped-unsigned"
        assert not {
            line.get("id") for line in lines if line.get("action") != "skipped-unsigned"
        } & set(keep)
        assert ec2_state(moto_client, short) == "running", "a dry run terminated"

        # Two reapers at once, as cron on two hosts would: both succeed, and one of them
        # terminated the instance (the other may list it too: it says already-terminated).
        first, second = reaper(service.ini), reaper(service.ini, "--region", "us-east-1")
        results = [finish(first), finish(second)]
        for code, lines, err in results:
            assert code == 0, err
            assert lines[-1]["summary"] is True and lines[-1]["failed"] == 0
            acted = {line.get("id") for line in lines if line.get("action") != "skipped-unsigned"}
            assert not acted & set(keep)
            for line in lines[:-1]:
                assert set(line) == {"id", "region", "caller", "expires_at", "action"}
        reaped = [line for _, lines, _ in results for line in lines if line.get("id") == short]
        assert [line["action"] for line in reaped].count("terminated") == 1, reaped
        assert {line["action"] for line in reaped} <= {"terminated", "already-terminated"}
        assert sum(lines[-1]["terminated"] for _, lines, _ in results) == 1
        assert ec2_state(moto_client, short) in ("shutting-down", "terminated")
        for instance_id in keep:
            assert ec2_state(moto_client, instance_id) == "running", instance_id
        # The reaper logs as the service does: its .ini's format, on stderr.
        assert any(f"reaped instance {short}" in err for _, _, err in results)


def test_a_configuration_error_is_exit_2(tmp_path):
    code, lines, err = finish(reaper(tmp_path / "missing.ini"))
    assert code == 2 and lines == [] and "missing.ini" in err
    ini = tmp_path / "bad.ini"
    ini.write_text("[app:main]\nuse = egg:launchprov\nlaunchprov.ec2.read_timeout = soon\n")
    code, _, err = finish(reaper(ini))
    assert code == 2 and "launchprov.ec2.read_timeout" in err
    code, _, err = finish(reaper(ini, "--region", "mars"))
    assert code == 2 and "--region" in err


def test_a_hanging_provider_is_exit_1_within_the_time_outs(tmp_path):
    hanging = HangingEndpoint()
    try:
        ini = tmp_path / "hanging.ini"
        settings = {
            "launchprov.auth.enabled": "false",
            "launchprov.ec2.endpoint_url": f"http://127.0.0.1:{hanging.port}",
            "launchprov.ec2.connect_timeout": "1",
            "launchprov.ec2.read_timeout": "1",
            "launchprov.ec2.max_attempts": "1",
            **SIGNED,
        }
        lines = ["[app:main]", "use = egg:launchprov"]
        lines += [f"{key} = {value}" for key, value in settings.items()]
        ini.write_text("\n".join(lines) + "\n")
        code, out, err = finish(reaper(ini))
        assert code == 1, err
        assert out[0]["action"] == "list-failed" and out[0]["region"] == "us-east-1"
        assert "Timeout" in out[0]["error"]
        assert out[-1]["failed"] == 1
    finally:
        hanging.close()
