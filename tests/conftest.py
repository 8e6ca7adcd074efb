"""Fixtures shared by every layer of the suite."""

from __future__ import annotations

import os

import boto3
import moto.settings
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer

from tests.support import (
    FAKE_CREDENTIALS,
    REGION,
    free_port,
    seed_account,
)


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch):
    """No test sees the machine's LAUNCHPROV_* or AWS_* variables, or a real AWS account."""
    for name in list(os.environ):
        if name.startswith(("LAUNCHPROV_", "AWS_")):
            monkeypatch.delenv(name)
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture
def moto_validation(monkeypatch):
    """moto validates AMIs, instance types and key pairs the way EC2 does."""
    monkeypatch.setattr(moto.settings, "ENABLE_AMI_VALIDATION", True)
    monkeypatch.setattr(moto.settings, "EC2_ENABLE_INSTANCE_TYPE_VALIDATION", True)
    monkeypatch.setattr(moto.settings, "ENABLE_KEYPAIR_VALIDATION", True)


@pytest.fixture
def moto_ec2(moto_validation):
    """moto's in-process EC2 mock holding the seed's key pair and group; yields a client."""
    with mock_aws():
        client = boto3.client("ec2", region_name=REGION)
        seed_account(client)
        yield client


@pytest.fixture(scope="session")
def moto_server_endpoint():
    """A moto server on 127.0.0.1 in a thread of this process (real HTTP, in-process state)."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def moto_server_ec2(moto_server_endpoint, moto_validation):
    """A boto3 client of the threaded moto server, with the seed's key pair and group in it.

    moto's in-process mock resets every backend when it starts, the threaded server's too, so
    the account is seeded again for each test.
    """
    client = boto3.client("ec2", region_name=REGION, endpoint_url=moto_server_endpoint)
    seed_account(client)
    return client
