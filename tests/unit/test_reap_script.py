"""launchprov-reap, run in process (``main``) on moto's in-process EC2: what it terminates at the
provider, what it prints, its exit status, and its refusals before any cloud is asked. The
installed command itself runs against a moto server in tests/e2e/test_leases_e2e.py."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from launchprov import signing
from launchprov.launching import CALLER_TAG, EXPIRES_AT_TAG, REQUEST_ID_TAG
from launchprov.leases import stamp
from launchprov.logs import JSONFormatter
from launchprov.providers import ec2 as ec2_provider
from launchprov.providers.interface import (
    Instance,
    InstanceNotFound,
    InstancePage,
    ProviderError,
)
from launchprov.scripts import reap
from tests.support import GOOD_AMI, StubProvider, ec2_client, instance_states

KEY = "reaper-test-key-0123456789"
PAST = stamp(datetime.now(UTC) - timedelta(minutes=5))
#: Where a terminated instance is at EC2 (moto goes straight to terminated).
GONE = {"shutting-down", "terminated"}
FUTURE = stamp(datetime.now(UTC) + timedelta(hours=1))


def write_ini(tmp_path, **settings: str):
    lines = ["[app:main]", "use = egg:launchprov", "launchprov.provider = ec2"]
    lines += [f"{key} = {value}" for key, value in settings.items()]
    ini = tmp_path / "reaper.ini"
    ini.write_text("\n".join(lines) + "\n")
    return str(ini)


@pytest.fixture
def ini(tmp_path):
    return write_ini(tmp_path, **{"launchprov.tag_signing_key": KEY})


def launched(region="us-east-1", expires=PAST, caller="team-a", key=KEY, request_id="r-1"):
    """An instance at EC2 as launchprov leaves it: caller, request id, lease, and (unless
    ``key`` is None) the signature."""
    tags = {CALLER_TAG: caller, REQUEST_ID_TAG: request_id, EXPIRES_AT_TAG: expires}
    if key is not None:
        tags = signing.signed(tags, key)
    client = ec2_client() if region == "us-east-1" else ec2_client_in(region)
    reply = client.run_instances(
        ImageId=GOOD_AMI,
        InstanceType="t2.micro",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
    )
    return reply["Instances"][0]["InstanceId"]


def ec2_client_in(region):
    return boto3.client("ec2", region_name=region)


def state(instance_id, region="us-east-1"):
    client = ec2_client() if region == "us-east-1" else ec2_client_in(region)
    return instance_states(client, [instance_id])[instance_id]


def output(capsys) -> tuple[list[dict], dict, str]:
    """The JSON lines of one run's standard output (instances, summary) and its raw text."""
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines()]
    return lines[:-1], lines[-1], out


def record(instance_id, action, region="us-east-1", caller="team-a", expires_at=PAST):
    return {
        "id": instance_id,
        "region": region,
        "caller": caller,
        "expires_at": expires_at,
        "action": action,
    }


def summary(**counts):
    base = {"summary": True, "dry_run": False, "regions": ["us-east-1"], "expired": 0}
    base |= {"terminated": 0, "already_terminated": 0, "unsigned": 0, "failed": 0}
    return base | {"failures": []} | counts


def test_the_reaper_terminates_what_expired_signed_and_says_so(moto_ec2, ini, capsys, caplog):
    first, second = launched(caller="team-a"), launched(caller="team-b", request_id="r-2")
    unsigned = launched(key=None)
    leased = launched(expires=FUTURE)
    caplog.set_level(logging.INFO, logger="launchprov.reap")

    assert reap.main([ini]) == 0
    records, last, out = output(capsys)
    assert sorted(records, key=lambda r: r["id"]) == sorted(
        [
            record(unsigned, "skipped-unsigned"),
            record(first, "terminated"),
            record(second, "terminated", caller="team-b"),
        ],
        key=lambda r: r["id"],
    )
    assert last == summary(expired=3, terminated=2, unsigned=1)
    assert out.endswith(
        '{"summary": true, "dry_run": false, "regions": ["us-east-1"], "expired": 3, '
        '"terminated": 2, "already_terminated": 0, "unsigned": 1, "failed": 0, "failures": []}\n'
    )
    assert {state(first), state(second)} <= GONE
    assert state(unsigned) == state(leased) == "running"
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("INFO", f"reaped instance {first} of team-a (expired at {PAST})") in messages
    assert ("INFO", f"reaped instance {second} of team-b (expired at {PAST})") in messages
    assert (
        "WARNING",
        f"not reaping instance {unsigned}: its launchprov tags carry no valid launchprov:signature",
    ) in messages


def test_a_dry_run_terminates_nothing(moto_ec2, ini, capsys):
    expired = launched()
    assert reap.main([ini, "--dry-run"]) == 0
    records, last, _ = output(capsys)
    assert records == [record(expired, "would-terminate")]
    assert last == summary(dry_run=True, expired=1)
    assert state(expired) == "running"


def test_every_region_named_is_reaped_once(moto_ec2, ini, capsys):
    here, there = launched(), launched(region="eu-west-1")
    argv = [ini, "--region", "us-east-1", "--region", "eu-west-1", "--region", "us-east-1"]
    assert reap.main(argv) == 0
    records, last, _ = output(capsys)
    assert records == [record(here, "terminated"), record(there, "terminated", "eu-west-1")]
    assert last == summary(regions=["us-east-1", "eu-west-1"], expired=2, terminated=2)
    assert {state(here), state(there, "eu-west-1")} <= GONE


def test_without_a_key_only_trust_unsigned_reaps_and_then_what_carries_the_caller(
    moto_ec2, tmp_path, capsys
):
    ini = write_ini(tmp_path)
    unsigned = launched(key=None)
    assert reap.main([ini]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and state(unsigned) == "running"
    assert captured.err == (
        "launchprov-reap: configuration error: launchprov.tag_signing_key "
        "(LAUNCHPROV_TAG_SIGNING_KEY) is not set: the reaper terminates only instances whose "
        "launchprov tags are signed with the service's key; set it as the service has it, or "
        "pass --trust-unsigned\n"
    )
    assert reap.main([ini, "--trust-unsigned"]) == 0
    records, last, _ = output(capsys)
    assert records == [record(unsigned, "terminated")]
    assert last == summary(expired=1, terminated=1)
    assert state(unsigned) in GONE


def provider_of_main(monkeypatch):
    """The provider main() makes, handed to the test to break parts of it."""
    made = []
    real = reap.create_provider

    def create(settings):
        made.append(real(settings))
        return made[-1]

    monkeypatch.setattr(reap, "create_provider", create)
    return made


def test_each_failure_is_named_counted_and_makes_the_exit_status_1(moto_ec2, ini, capsys, caplog):
    here, refused, gone = launched(), launched(request_id="r-2"), launched(request_id="r-3")
    there = launched(region="eu-west-1")
    real_terminate = ec2_provider.EC2Provider.terminate

    def refuse_batch(self, instance_ids, region):
        raise ProviderError("ec2", "InternalError", "no batch today", retryable=True)

    def terminate_one(self, instance_id, region):
        if instance_id == refused:
            raise ProviderError("ec2", "UnauthorizedOperation", "protected")
        if instance_id == gone:
            raise InstanceNotFound("ec2", instance_id)
        return real_terminate(self, instance_id, region)

    def list_nowhere(self, query):
        raise ProviderError("ec2", "RequestLimitExceeded", "slow down", retryable=True)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ec2_provider.EC2Provider, "terminate_many", refuse_batch)
        patch.setattr(ec2_provider.EC2Provider, "terminate", terminate_one)
        real_list = ec2_provider.EC2Provider.list_instances
        patch.setattr(
            ec2_provider.EC2Provider,
            "list_instances",
            lambda self, query: (
                list_nowhere(self, query)
                if query.region == "ap-south-1"
                else real_list(self, query)
            ),
        )
        argv = [ini, "--region", "ap-south-1", "--region", "us-east-1", "--region", "eu-west-1"]
        assert reap.main(argv) == 1
    records, last, _ = output(capsys)
    listing_error = str(ProviderError("ec2", "RequestLimitExceeded", "slow down", retryable=True))
    refusal = str(ProviderError("ec2", "UnauthorizedOperation", "protected"))
    assert records[0] == {"region": "ap-south-1", "action": "list-failed", "error": listing_error}
    by_id = {r["id"]: r for r in records[1:]}
    assert by_id == {
        here: record(here, "terminated"),
        refused: record(refused, "failed") | {"error": refusal},
        gone: record(gone, "already-terminated"),
        there: record(there, "terminated", "eu-west-1"),
    }
    assert last == summary(
        regions=["ap-south-1", "us-east-1", "eu-west-1"],
        expired=4,
        terminated=2,
        already_terminated=1,
        failed=2,
        failures=[records[0], {"id": refused, "region": "us-east-1"}],
    )
    assert {state(here), state(there, "eu-west-1")} <= GONE
    assert state(refused) == "running"
    logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "launchprov.reap"]
    assert logged[:3] == [
        ("ERROR", f"cannot list the instances of ap-south-1: {listing_error}"),
        (
            "WARNING",
            "terminating 3 instances at once failed (ec2: InternalError: no batch today): "
            "one by one",
        ),
        ("ERROR", f"cannot terminate {refused}: {refusal}"),
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--region", "mars"], "--region 'mars': expected a region such as us-east-1"),
        (["--region", "us-east-1", "--region", "moon"], "--region 'moon': expected a region"),
    ],
)
def test_a_bad_region_is_refused_by_name(ini, capsys, argv, message):
    assert reap.main([ini, *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"launchprov-reap: configuration error: {message}")


def test_a_missing_ini_is_one_line_naming_it(tmp_path, capsys):
    missing = tmp_path / "missing.ini"
    assert reap.main([str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"launchprov-reap: configuration error: {missing}: FileNotFoundError: [Errno 2] "
        f"No such file or directory: '{missing}'\n"
    )


def test_the_help_says_what_the_reaper_and_each_option_do(capsys):
    with pytest.raises(SystemExit) as stopped:
        reap.main(["--help"])
    assert stopped.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: launchprov-reap [-h] [--region REGION] [--dry-run]")
    assert (
        "launchprov-reap CONFIG.ini: terminate the instances whose lease has run out. "
        "positional arguments: config the service's .ini (PasteDeploy), e.g. production.ini "
        "options: -h, --help show this help message and exit --region REGION a region to reap "
        "(repeatable); default: the region of launchprov.defaults.placement --dry-run list what "
        "would be terminated; terminate nothing --trust-unsigned terminate expired instances "
        "that carry launchprov:caller without a valid launchprov:signature too (instances "
        "launched before launchprov.tag_signing_key was set); an instance someone else tagged "
        "so is terminated as well"
    ) in text
    assert text.endswith("is terminated as well")


@pytest.fixture(autouse=True)
def root_formatters():
    """The root logger's handlers keep their formatters after the test (the reaper's
    log_format = json sets them, as the service's does)."""
    root = logging.getLogger()
    kept = [(handler, handler.formatter) for handler in root.handlers]
    yield
    for handler, formatter in kept:
        handler.setFormatter(formatter)


def test_the_reaper_logs_json_lines_when_the_ini_says_so(moto_ec2, tmp_path, ini, caplog):
    caplog.set_level(logging.INFO, logger="launchprov.reap")
    # pytest keeps one capture handler per process: an earlier test of this worker that set up
    # JSON lines (an app or a command run in-process) may have left it a JSONFormatter.
    caplog.handler.setFormatter(logging.Formatter())
    assert reap.main([ini]) == 0  # no log_format: plain lines
    assert not isinstance(caplog.handler.formatter, JSONFormatter)
    ini = write_ini(
        tmp_path, **{"launchprov.tag_signing_key": KEY, "launchprov.log_format": "json"}
    )
    expired = launched()
    assert reap.main([ini]) == 0
    assert isinstance(caplog.handler.formatter, JSONFormatter)
    (line,) = [text for text in caplog.text.splitlines() if expired in text]
    entry = json.loads(line)
    assert entry["logger"] == "launchprov.reap" and entry["level"] == "INFO"
    assert entry["message"] == f"reaped instance {expired} of team-a (expired at {PAST})"


def test_the_reaper_refuses_the_in_process_sandbox_naming_the_setting(tmp_path, capsys):
    ini = tmp_path / "sandbox.ini"
    ini.write_text(
        "[app:main]\nuse = egg:launchprov\nlaunchprov.ec2.sandbox = true\n"
        "launchprov.tag_signing_key = a-key-of-sixteen-or-more\n"
    )
    assert reap.main([str(ini), "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no summary: it reaped nothing, not "0 expired"
    assert captured.err == (
        "launchprov-reap: configuration error: launchprov.ec2.sandbox = true: the sandbox's "
        "cloud lives inside each service process, so a reaper would reap an empty cloud of its "
        "own; run it with the .ini of a deployment whose cloud is shared (EC2, a moto server, a "
        "Libcloud cloud)\n"
    )


class ThirdPartyCloud(StubProvider):
    """An adapter of another house: its expired instances in one page, each TerminateInstances
    recorded; ``answer`` is what its terminate_many says (None: it does not say)."""

    def __init__(self, count: int, answer=None):
        tags = {CALLER_TAG: "team-a", EXPIRES_AT_TAG: PAST}
        self.instances = [Instance(f"n-{n}", "running", tags=tags) for n in range(count)]
        self.answer = answer
        self.calls: list[list[str]] = []

    def list_instances(self, query):
        return InstancePage(list(self.instances), None)

    def terminate_many(self, instance_ids, region):
        self.calls.append(list(instance_ids))
        return None if self.answer is None else self.answer(instance_ids)


def test_a_thousand_ids_a_call_and_an_adapter_that_does_not_say_counts_each_as_terminated():
    cloud = ThirdPartyCloud(1001)
    records = []
    summary = reap.reap(cloud, ["r1"], False, records.append, trust_unsigned=True)
    assert [len(ids) for ids in cloud.calls] == [1000, 1]
    assert [ids for call in cloud.calls for ids in call] == [i.id for i in cloud.instances]
    assert {r["action"] for r in records} == {"terminated"} and len(records) == 1001
    assert summary["terminated"] == 1001 and summary["already_terminated"] == 0


def test_an_id_the_providers_answer_leaves_out_is_not_counted_as_this_reapers():
    cloud = ThirdPartyCloud(2, answer=lambda ids: {ids[0]: True})
    records = []
    summary = reap.reap(cloud, ["r1"], False, records.append, trust_unsigned=True)
    assert [r["action"] for r in records] == ["terminated", "already-terminated"]
    assert summary["terminated"] == summary["already_terminated"] == 1


def test_an_adapter_without_cloud_defaults_is_reaped_in_the_deployments_region(
    tmp_path, capsys, monkeypatch
):
    ini = write_ini(
        tmp_path,
        **{"launchprov.tag_signing_key": KEY, "launchprov.defaults.placement": "eu-west-1a"},
    )
    cloud = ThirdPartyCloud(1)  # cloud_defaults is optional: it has none
    monkeypatch.setattr(reap, "create_provider", lambda settings: cloud)
    assert reap.main([ini, "--trust-unsigned"]) == 0
    records, last, _ = output(capsys)
    assert [r["region"] for r in records] == ["eu-west-1"] and cloud.calls == [["n-0"]]
    assert last["regions"] == ["eu-west-1"] and last["terminated"] == 1
