"""Constants and helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import boto3
import webtest
from zope.interface import implementer

from launchprov.app import create_app
from launchprov.providers.interface import IProvider, LaunchRequest

#: An AMI that moto knows (amzn-ami-hvm-2017.09.1), so it launches with AMI validation on.
GOOD_AMI = "ami-760aaa0f"
#: Well-formed, but no such image: EC2 (and moto, validating) answer InvalidAMIID.NotFound.
MISSING_AMI = "ami-12345678"
REGION = "us-east-1"
DEFAULT_KEY = "scalacity_dev1"
DEFAULT_GROUP = "SSH"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


@functools.cache
def ec2_client(endpoint_url: str | None = None):
    """The test side's boto3 EC2 client of moto (in-process mock, or a server at endpoint_url),
    made once: with the suite's fake credentials, whatever the environment of the moment."""
    return boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=endpoint_url,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
    )


def instance_states(client, ids: list[str]) -> dict[str, str]:
    """Instance id -> its state at EC2 (moto), as EC2 itself describes it."""
    reply = client.describe_instances(InstanceIds=ids)
    return {
        i["InstanceId"]: i["State"]["Name"] for r in reply["Reservations"] for i in r["Instances"]
    }


#: The public half of the seed's key pair: imported, since making one is an RSA key generation
#: (a tenth of a second in moto) and EC2 checks only that a key pair of that name exists.
PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOz9FT/t45fDvwFHz6h+w0O+8TBzbMDlTHZDncQfza9U "
    "launchprov-tests"
)


def seed_account(client) -> None:
    """The seed's default key pair and security group, as an account using launchprov has."""
    if not client.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [DEFAULT_KEY]}])[
        "KeyPairs"
    ]:
        client.import_key_pair(KeyName=DEFAULT_KEY, PublicKeyMaterial=PUBLIC_KEY.encode())
    groups = client.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [DEFAULT_GROUP]}]
    )["SecurityGroups"]
    if not groups:
        client.create_security_group(GroupName=DEFAULT_GROUP, Description="ssh")


#: The deployment defaults of launchprov.settings, which a LaunchRequest does not know.
DEFAULT_PLACEMENT = "us-east-1b"
REQUEST_DEFAULTS = {
    "key_name": DEFAULT_KEY,
    "security_groups": (DEFAULT_GROUP,),
    "placement": DEFAULT_PLACEMENT,
}


def launch_request(**fields) -> LaunchRequest:
    """A LaunchRequest with the default settings' key pair, group and placement unless given."""
    return LaunchRequest(**{**REQUEST_DEFAULTS, **fields})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def libcloud_ec2_settings(endpoint_url: str, **extra: str) -> dict[str, str]:
    """.ini settings of the libcloud adapter's EC2 driver on the moto server at
    ``endpoint_url`` (``http://host:port``), with moto's test credentials."""
    host, port = endpoint_url.removeprefix("http://").split(":")
    return {
        "launchprov.provider": "libcloud",
        "launchprov.libcloud.driver": "ec2",
        "launchprov.libcloud.key": "testing",
        "launchprov.libcloud.secret": "testing",
        "launchprov.libcloud.host": host,
        "launchprov.libcloud.port": port,
        "launchprov.libcloud.secure": "false",
        **extra,
    }


def batches_of(max_ids: int) -> dict[str, str]:
    """Batch settings under which a batch closes at ``max_ids`` ids (idle and max_wait a
    minute away): which requests share a call is decided by the test, not by timing."""
    return {
        "launchprov.batch.idle_ms": "60000",
        "launchprov.batch.max_ms": "60000",
        "launchprov.batch.max_ids": str(max_ids),
    }


def run_instances(ec2, count: int) -> list[str]:
    """Launch ``count`` instances straight through EC2 (a boto3 client): their ids."""
    reply = ec2.run_instances(
        ImageId=GOOD_AMI, InstanceType="t2.micro", MinCount=count, MaxCount=count
    )
    return [instance["InstanceId"] for instance in reply["Instances"]]


#: How long concurrent requests may take, together.
CONCURRENT_DEADLINE = 10.0


def concurrently(function, arguments: list) -> list:
    """``function`` of each argument, each in its own thread, all at once: in ``arguments``'
    order, what each returned or the exception it raised."""

    def one(argument):
        try:
            return function(argument)
        except Exception as exc:  # the test looks at what each request got
            return exc

    with threads(len(arguments)) as pool:
        return list(pool.map(one, arguments, timeout=CONCURRENT_DEADLINE))


@contextlib.contextmanager
def threads(count: int):
    """A thread pool of ``count`` threads that, when the test fails, is not waited for: a call
    that never returns (a batch never answered) fails the test at its deadline instead of
    hanging it in the pool's exit."""
    pool = ThreadPoolExecutor(count)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def serve_in_thread(server) -> threading.Thread:
    """Serve a socketserver in a daemon thread that ``server.shutdown()`` stops at once: the
    serve loop looks for the shutdown every 50 ms instead of the default half second, which
    every test's teardown would otherwise wait."""
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return thread


#: What the sandbox's development.ini says; the authentication tests turn it on.
NO_AUTH = {"launchprov.auth.enabled": "false"}


#: The in-process apps' batch window: 1 ms instead of the default 10. Every describe and
#: termination still goes through the batcher (as one-id batches), but a test making hundreds
#: of calls does not wait 10 ms for each; the batching tests set their own window, and the e2e
#: processes run with the default.
QUICK_BATCHES = {"launchprov.batch.idle_ms": "1"}


#: The readiness probe's own time-out, for apps whose tests are not about it: the default 2 s
#: is for a production cloud, and the in-process moto of a loaded 2-core machine (or one traced
#: by make mutate) can take longer. Tests of a hanging cloud set their own.
PATIENT_PROBES = {"launchprov.readiness_timeout": "30"}


#: The in-process apps do not check their cloud at startup: the checks' calls, in a thread of
#: their own, would mix with the calls a test counts or replays. The e2e processes check, and
#: the tests of the checks turn them on.
NO_STARTUP_CHECKS = {"launchprov.startup_checks": "false"}


def make_app(**settings) -> webtest.TestApp:
    """The app as PasteDeploy makes it (launchprov.main builds it with create_app), from
    .ini-style settings (authentication off, a 1 ms batch window, a patient readiness probe and
    no startup checks unless the settings say otherwise)."""
    defaults = {**NO_AUTH, **QUICK_BATCHES, **PATIENT_PROBES, **NO_STARTUP_CHECKS}
    return webtest.TestApp(create_app({**defaults, **settings}))


ERROR_KEYS = {"status", "error", "message", "details", "request_id"}


def assert_error_body(response, status: int) -> dict:
    """Check the one error contract: JSON, the status repeated, details a list of entries."""
    assert response.status_int == status, response.text
    assert response.content_type == "application/json"
    body = response.json
    expected_keys = ERROR_KEYS | ({"provider"} if status == 408 else set())
    assert set(body) == expected_keys, body
    assert body["status"] == status
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], list)
    for item in body["details"]:
        assert set(item) == {"location", "name", "description"}
    if status == 408:
        assert set(body["provider"]) == {"name", "code", "message", "retryable", "outcome"}
        assert body["provider"]["code"] and body["provider"]["message"]
        assert body["provider"]["outcome"] in ("none", "unknown", "partial")
    assert "Traceback" not in response.text
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def detail_names(body: dict) -> list[str]:
    return [item["name"] for item in body["details"]]


@implementer(IProvider)
class StubProvider:
    """A third-party adapter that keeps the contract's shape and does nothing: tests subclass
    it and override what they exercise."""

    name = "stub"
    image_id_pattern = None
    instance_id_pattern = None
    can_tag = True
    reports_capacity = True

    @classmethod
    def from_settings(cls, settings):
        return cls()

    def ping(self, timeout):
        return None

    def launch(self, request):
        raise NotImplementedError

    def preflight(self, request):
        raise NotImplementedError

    def describe(self, instance_id, region):
        raise NotImplementedError

    def list_instances(self, query):
        raise NotImplementedError

    def terminate(self, instance_id, region):
        raise NotImplementedError

    def stop(self, instance_id, region):
        raise NotImplementedError

    def start(self, instance_id, region):
        raise NotImplementedError

    def reboot(self, instance_id, region):
        raise NotImplementedError

    def terminate_many(self, instance_ids, region):
        raise NotImplementedError

    def tag(self, instance_id, region, tags):
        raise NotImplementedError

    def untag(self, instance_id, region, keys):
        raise NotImplementedError
