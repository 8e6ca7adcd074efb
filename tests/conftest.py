"""Fixtures shared by every layer of the suite.

Speed: two things cost most in a test that talks to moto, and both are shared here.

* A boto3 session parses botocore's service models (megabytes of JSON) when it makes its first
  client: half a second for every app a test builds. Every session of the test process shares
  one botocore data loader (:func:`shared_botocore_loader`), which caches what it parsed; each
  app still builds its own session and clients, as in production.
* moto's backends: one ``mock_aws`` for the whole session, patched in only for the tests that
  ask for it, and its backends reset once before each of them (moto's reset rebuilds only the
  backends a test touched) instead of a start and a stop that each reset everything.
* moto's EC2 backend of a region loads its AMI catalogue when it is built, after each reset:
  the default catalogue plus over a thousand region-specific ones. The suite gives moto its
  default catalogue alone (``MOTO_AMIS_PATH``, read when moto's EC2 models are imported, so set
  before), which holds every AMI the tests use; AMI validation works as before.
* A boto3 client costs about 50 ms to make (botocore builds a class of some 800 methods for
  EC2). The clients the tests use to look at moto (``tests.support.ec2_client``) are made once per
  endpoint and kept: a client holds no state of moto's, only how to reach it. The clients each
  app makes are its own, but their class is made once per service model
  (:func:`shared_botocore_client_classes`): a third of an EC2 app's build.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import tempfile

import botocore.client
import botocore.loaders
import botocore.session
import moto.settings
import pytest
from moto import mock_aws
from moto.core.base_backend import BackendDict
from moto.core.model_instances import reset_model_data
from moto.server import ThreadedMotoServer
from moto.utilities.utils import load_resource

from tests.support import (
    FAKE_CREDENTIALS,
    ec2_client,
    free_port,
    seed_account,
)


def _default_amis_only() -> None:
    """moto's default AMI catalogue alone; none of the imports above loads moto's EC2 models."""
    if "MOTO_AMIS_PATH" in os.environ:
        return
    with tempfile.NamedTemporaryFile("w", suffix="-amis.json", delete=False) as catalogue:
        json.dump(load_resource("ec2/resources/amis.json"), catalogue)
    os.environ["MOTO_AMIS_PATH"] = catalogue.name
    atexit.register(os.unlink, catalogue.name)


_default_amis_only()


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: -p no:xdist (make mutate) has none
def pytest_xdist_make_scheduler(config, log):
    """make test's scheduler (``--dist loadgroup``): the tests of an e2e module run on one
    worker, so that its module-scoped services (pserve processes, the IAM policy's recording,
    the README's sandbox) start once instead of once on each worker that runs one of its tests.
    The other tests are spread as ``--dist load`` spreads them.

    Not xdist's own loadgroup: it reads the ``xdist_group`` marks through a node id suffix that
    pytest 9 no longer lets a plugin set, and, like loadscope, it keys tests by node id, so it
    runs one of the cases that share a node id (schemathesis's, one per operation).
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScheduling

    class E2EModules(LoadScheduling):
        def schedule(self) -> None:
            if self.collection is not None or not self._check_nodes_have_same_collection():
                return super().schedule()
            collection = next(iter(self.node2collection.values()))
            modules: dict[str, list[int]] = {}
            for index, nodeid in enumerate(collection):
                module = nodeid.split("::", 1)[0]
                if module.startswith("tests/e2e/"):
                    modules.setdefault(module, []).append(index)
            # Each module whole, the largest first, to the worker with the fewest tests so far;
            # then LoadScheduling's own first chunks of the rest, and more as workers ask.
            for indices in sorted(modules.values(), key=len, reverse=True):
                node = min(self.nodes, key=lambda node: len(self.node2pending[node]))
                self.node2pending[node].extend(indices)
                node.send_runtest_some(indices)
            grouped = {index for indices in modules.values() for index in indices}
            rest = [index for index in range(len(collection)) if index not in grouped]
            self.collection = collection
            self.pending[:] = rest
            if self.maxschedchunk is None:
                self.maxschedchunk = len(collection)
            chunk = max(min(len(rest) // len(self.nodes) // 4, self.maxschedchunk), 2)
            for node in self.nodes:
                self._send_tests(node, chunk)
            if not self.pending:
                for node in self.nodes:
                    node.shutdown()

    return E2EModules(config, log)


@pytest.fixture(autouse=True)
def log_formatters(request):
    """A test that sets up JSON lines in-process (an app, the reaper or launchprov-check with
    launchprov.log_format = json) formats every root handler as JSON -- pytest's capture
    handlers too, which it keeps for the whole process: each gets its formatter back after the
    test, so that the next test's ``caplog.text`` is in pytest's own format."""
    plugin = request.config.pluginmanager.get_plugin("logging-plugin")
    handlers = [*logging.getLogger().handlers]
    handlers += [getattr(plugin, name, None) for name in ("caplog_handler", "report_handler")]
    kept = [(handler, handler.formatter) for handler in handlers if handler is not None]
    yield
    for handler, formatter in kept:
        handler.setFormatter(formatter)


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch):
    """No test sees the machine's LAUNCHPROV_*, AWS_* or OTEL_* variables, or a real AWS
    account."""
    for name in list(os.environ):
        if name.startswith(("LAUNCHPROV_", "AWS_", "OTEL_")):
            monkeypatch.delenv(name)
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture(scope="session", autouse=True)
def shared_botocore_loader():
    """Every botocore session of the test process shares one data loader (read-only models).

    Credentials, configuration and clients stay per session: only the parsed JSON is shared.
    """
    create = functools.cache(botocore.loaders.create_loader)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session, "create_loader", create)
        yield


@pytest.fixture(scope="session", autouse=True)
def shared_botocore_client_classes(shared_botocore_loader):
    """Every botocore client of one service model is of one class, made once in the process.

    botocore makes a new class for each client (a method per operation, from the service model:
    pure functions of the model, which the shared loader parses once). Instances, their
    configuration, endpoint and event handlers stay per client. No test registers a
    ``creating-client-class`` handler of its own, whose effect this would keep from the first.
    """
    make_class = botocore.client.ClientCreator._create_client_class
    classes = {}

    def shared_class(creator, service_name, service_model):
        description = service_model._service_description  # kept below: its id stays its own
        key = (service_name, id(description))
        if key not in classes:
            classes[key] = (description, make_class(creator, service_name, service_model))
        return classes[key][1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.client.ClientCreator, "_create_client_class", shared_class)
        yield


def reset_moto() -> None:
    """Every moto backend as new: what one test made, the next does not see."""
    BackendDict.reset()
    reset_model_data()


@pytest.fixture
def moto_validation(monkeypatch):
    """moto validates AMIs, instance types and key pairs the way EC2 does."""
    monkeypatch.setattr(moto.settings, "ENABLE_AMI_VALIDATION", True)
    monkeypatch.setattr(moto.settings, "EC2_ENABLE_INSTANCE_TYPE_VALIDATION", True)
    monkeypatch.setattr(moto.settings, "ENABLE_KEYPAIR_VALIDATION", True)


@pytest.fixture(scope="session")
def moto_mock():
    """moto's in-process mock, made once; tests that use it patch it in with ``moto_ec2``."""
    return mock_aws()


@pytest.fixture
def moto_ec2(moto_mock, moto_validation):
    """moto's in-process EC2 mock holding the seed's key pair and group; yields a client.

    The backends are reset before the test, not after: the next test that uses moto resets
    them again, and a test that does not never looks.
    """
    moto_mock.start(reset=False)
    try:
        reset_moto()
        client = ec2_client()
        seed_account(client)
        yield client
    finally:
        moto_mock.stop(remove_data=False)


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
    """A boto3 client of the threaded moto server, reset and holding the seed's key pair and
    group (the server keeps its state in this process's moto backends)."""
    reset_moto()
    client = ec2_client(moto_server_endpoint)
    seed_account(client)
    return client
