"""The ``launchprov`` command line against a real service process (authentication and a policy
on) and a real moto server process: every command, its --json, its exit status; effects checked
at EC2 with boto3.

Most commands run in this process through click's runner (fast); a few run the installed
console script, as an operator does.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid

import pytest
from click.testing import CliRunner

from launchprov.auth import digest
from launchprov.cli import main
from launchprov.client import Client
from tests.e2e.conftest import BIN, CREDENTIALS_ENV, ec2_settings, running
from tests.support import GOOD_AMI, MISSING_AMI

pytestmark = pytest.mark.e2e

TOKEN = "cli-token-0123456789abcdef"
SETTINGS = {
    "launchprov.auth.enabled": "true",
    "launchprov.auth.tokens": f"ops {digest(TOKEN)}",
    "launchprov.policy.instance_types": "t2.*",
}
FAST = ("--interval", "0.05", "--timeout", "30")
UNKNOWN_ID = "i-0123456789abcdef0"


@pytest.fixture(scope="module")
def cli_service(moto_process):
    with running(ec2_settings(moto_process, **SETTINGS), CREDENTIALS_ENV) as service:
        yield service


@pytest.fixture
def env(cli_service) -> dict[str, str]:
    return {"LAUNCHPROV_URL": cli_service.url, "LAUNCHPROV_TOKEN": TOKEN}


@pytest.fixture
def cli(env):
    """Run ``launchprov ARGS`` in this process; the result has exit_code, stdout, stderr."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(main, list(args), env=env, input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def client(cli_service):
    with Client(cli_service.url, TOKEN) as client:
        yield client


@pytest.fixture
def run() -> str:
    return uuid.uuid4().hex


def at_ec2(moto_client, run: str) -> dict[str, dict]:
    """Id -> the instance as EC2 holds it, for the instances tagged run=``run``."""
    reservations = moto_client.describe_instances(Filters=[{"Name": "tag:run", "Values": [run]}])[
        "Reservations"
    ]
    return {i["InstanceId"]: i for r in reservations for i in r["Instances"]}


def launch(client, run: str, count: int = 1) -> list[str]:
    ids = client.launch(GOOD_AMI, "t2.micro", min_count=count, max_count=count, tags={"run": run})
    client.wait(ids, interval=0.05, timeout=30)
    return ids


def test_launch_with_every_option_and_wait_prints_the_table(cli, moto_client, run, tmp_path):
    script = tmp_path / "cloud-init.sh"
    script.write_text("#!/bin/sh\necho from a file\n")
    result = cli(
        "launch",
        *("--ami", GOOD_AMI, "--instance-type", "t2.micro", "--count", "2"),
        *("--key-name", "scalacity_dev1", "--security-group", "SSH", "--placement", "us-east-1c"),
        *("--shutdown-behavior", "stop", "--no-ebs-optimized", "--user-data", f"@{script}"),
        *("--tag", f"run={run}", "--tag", "role=web", "--wait", *FAST),
    )
    assert result.exit_code == 0, result.stderr
    instances = at_ec2(moto_client, run)
    assert len(instances) == 2
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "STATE", "TYPE", "ZONE", "PRIVATE", "IP", "PUBLIC", "IP"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == set(instances)
    for instance_id, instance in instances.items():
        assert rows[instance_id][1:4] == ["running", "t2.micro", "us-east-1c"]
        assert rows[instance_id][4] == instance["PrivateIpAddress"]
        assert instance["KeyName"] == "scalacity_dev1"
        assert [g["GroupName"] for g in instance["SecurityGroups"]] == ["SSH"]
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["role"] == "web" and tags["launchprov:caller"] == "ops"
        user_data = moto_client.describe_instance_attribute(
            InstanceId=instance_id, Attribute="userData"
        )["UserData"]["Value"]
        assert base64.b64decode(user_data).decode() == script.read_text()
        behaviour = moto_client.describe_instance_attribute(
            InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior"
        )["InstanceInitiatedShutdownBehavior"]["Value"]
        assert behaviour == "stop"
    assert "2 running" in result.stderr  # the progress display's last state


def test_launch_prints_ids_or_the_services_json(cli, moto_client, run):
    result = cli("launch", "--ami", GOOD_AMI, "--instance-type", "t2.micro", "--tag", f"run={run}")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split() == list(at_ec2(moto_client, run))

    other = uuid.uuid4().hex
    args = ("launch", "--ami", GOOD_AMI, "--instance-type", "t2.micro", "--tag", f"run={other}")
    result = cli(*args, "--min-count", "1", "--max-count", "2", "--json")
    assert result.exit_code == 0, result.stderr
    ids = json.loads(result.stdout)
    assert isinstance(ids, list) and sorted(ids) == sorted(at_ec2(moto_client, other))

    waited = uuid.uuid4().hex
    args = ("launch", "--ami", GOOD_AMI, "--instance-type", "t2.micro", "--tag", f"run={waited}")
    result = cli(*args, "--param", "ebs_optimized=true", "--wait", "--json", *FAST)
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["next"] is None
    instances = at_ec2(moto_client, waited)
    assert [item["id"] for item in document["instances"]] == list(instances)
    assert document["instances"][0]["state"] == "running"
    assert [i["EbsOptimized"] for i in instances.values()] == [True]  # --param, as JSON


def test_user_data_from_standard_input(cli, moto_client, run):
    args = ("--ami", GOOD_AMI, "--instance-type", "t2.micro", "--tag", f"run={run}")
    result = cli("launch", *args, "--user-data", "@-", input="piped text\n")
    assert result.exit_code == 0, result.stderr
    (instance_id,) = at_ec2(moto_client, run)
    value = moto_client.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    assert base64.b64decode(value["UserData"]["Value"]).decode() == "piped text\n"


def test_ls_filters_and_walks_every_page(cli, client, run):
    ids = launch(client, run, count=3)
    result = cli("ls", "--tag", f"run={run}", "--page-size", "1", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert sorted(item["id"] for item in document["instances"]) == sorted(ids)
    assert document["next"] is None

    result = cli("ls", "--tag", f"run={run}", "--state", "running", "--id", ids[1], "--id", ids[2])
    assert result.exit_code == 0, result.stderr
    listed = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    assert sorted(listed) == sorted(ids[1:])

    result = cli("ls", "--tag", f"run={run}", "--state", "stopped", "--json")
    assert json.loads(result.stdout) == {"instances": [], "next": None}


def test_show_prints_the_instance(cli, client, run):
    (instance_id,) = launch(client, run)
    result = cli("show", instance_id, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == client.describe(instance_id)

    result = cli("show", instance_id)
    assert result.exit_code == 0, result.stderr
    fields = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if line}
    assert fields["id"] == [instance_id] and fields["instance_type"] == ["t2.micro"]
    assert f"run={run}" in result.stdout


def test_stop_start_reboot_rm_and_wait(cli, client, moto_client, run):
    first, second = launch(client, run, count=2)

    def state_at_ec2(instance_id: str) -> str:
        return at_ec2(moto_client, run)[instance_id]["State"]["Name"]

    result = cli("stop", first, "--json")
    assert result.exit_code == 0, result.stderr
    (stopped,) = json.loads(result.stdout)["instances"]
    assert stopped["id"] == first and stopped["state"] in ("stopping", "stopped")
    result = cli("wait", first, "--state", "stopped", *FAST)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[:2] == [first, "stopped"]
    assert state_at_ec2(first) == "stopped"

    result = cli("reboot", first)  # a stopped instance cannot reboot: the service says 409
    assert result.exit_code == 1
    assert result.stderr.startswith("error: 409 Conflict:")

    result = cli("start", first)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[0] == first
    assert cli("wait", first, *FAST).exit_code == 0
    assert state_at_ec2(first) == "running"
    assert cli("reboot", first).exit_code == 0

    result = cli("rm", first, second, "--json")
    assert result.exit_code == 0, result.stderr
    assert [item["id"] for item in json.loads(result.stdout)["instances"]] == [first, second]
    result = cli("wait", first, second, "--state", "terminated", "--json", *FAST)
    assert result.exit_code == 0, result.stderr
    assert {i["state"] for i in json.loads(result.stdout)["instances"]} == {"terminated"}
    assert {state_at_ec2(first), state_at_ec2(second)} == {"terminated"}


def test_a_wait_that_times_out_exits_1(cli, client, run):
    (instance_id,) = launch(client, run)
    result = cli(
        "wait", instance_id, "--state", "stopped", "--timeout", "0.2", "--interval", "0.05"
    )
    assert result.exit_code == 1
    assert f"not stopped after 0.2 s: {instance_id} (running)" in result.stderr


def test_api_errors_print_the_services_message_and_exit_1(cli, moto_client, run):
    tag = ("--tag", f"run={run}")
    result = cli("launch", "--ami", "not-an-ami", "--instance-type", "t2.micro", *tag)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: 400 Bad Request: invalid or missing parameters: ami")
    assert "body ami:" in result.stderr and "request id:" in result.stderr

    result = cli("launch", "--ami", MISSING_AMI, "--instance-type", "t2.micro", *tag)
    assert result.exit_code == 1
    assert "error: 408 Request Timeout: the ec2 provider failed: InvalidAMIID.NotFound" in (
        result.stderr
    )
    assert "provider ec2 code: InvalidAMIID.NotFound (a retry will not help)" in result.stderr
    assert "client token: " in result.stderr and "retry with" not in result.stderr

    result = cli("launch", "--ami", MISSING_AMI, "--instance-type", "t2.micro", *tag, "--json")
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["status"] == 408 and body["provider"]["code"] == "InvalidAMIID.NotFound"

    result = cli("launch", "--ami", GOOD_AMI, "--instance-type", "m5.large", *tag)
    assert result.exit_code == 1 and "error: 403 Forbidden: policy:" in result.stderr
    assert at_ec2(moto_client, run) == {}

    result = cli("show", UNKNOWN_ID)
    assert result.exit_code == 1 and result.stderr.startswith("error: 404 Not Found:")

    result = cli("ls", "--token", "not-the-token")
    assert result.exit_code == 1 and result.stderr.startswith("error: 401 Unauthorized:")


def test_the_installed_console_script(cli_service, moto_client, run):
    """``launchprov`` as an operator runs it: the console_scripts entry point, in a process."""
    env = dict(CREDENTIALS_ENV, LAUNCHPROV_URL=cli_service.url, LAUNCHPROV_TOKEN=TOKEN)

    def launchprov(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "launchprov"), *args], env=env, capture_output=True, text=True, timeout=60
        )

    done = launchprov(
        "launch", "--ami", GOOD_AMI, "--instance-type", "t2.micro", "--tag", f"run={run}", "--json"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == list(at_ec2(moto_client, run))
    done = launchprov("show", UNKNOWN_ID)
    assert done.returncode == 1 and "404 Not Found" in done.stderr
    done = launchprov("launch", "--ami", GOOD_AMI)
    assert done.returncode == 2 and "Missing option" in done.stderr


def test_preflight_exits_0_when_the_launch_would_succeed_and_1_when_not(cli, moto_client, run):
    result = cli(
        "preflight", "--ami", GOOD_AMI, "--instance-type", "t2.micro", "--tag", f"run={run}"
    )
    assert result.exit_code == 0, result.stderr
    rows = [line.split()[:2] for line in result.stdout.splitlines()[1:]]
    assert rows and all(ok == "yes" for _, ok in rows)
    result = cli("preflight", "--ami", MISSING_AMI, "--instance-type", "t2.micro", "--json")
    assert result.exit_code == 1
    answer = json.loads(result.stdout)
    assert answer["would_launch"] is False
    assert "InvalidAMIID.NotFound" in {check["code"] for check in answer["checks"]}
    assert at_ec2(moto_client, run) == {}
