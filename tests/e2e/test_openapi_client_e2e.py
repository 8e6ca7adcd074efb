"""A client that knows only the OpenAPI document drives the running service.

aiopenapi3 builds its operations and models from /v1/openapi.json alone: if the document and
the service disagree (a path, a parameter, a body, a response schema), these calls fail.
"""

from __future__ import annotations

import pytest
from aiopenapi3 import OpenAPI
from aiopenapi3.errors import HTTPClientError

from tests.support import GOOD_AMI, MISSING_AMI

pytestmark = pytest.mark.e2e


def test_a_client_made_from_the_document_alone(service, moto_client):
    api = OpenAPI.load_sync(f"{service.url}/v1/openapi.json")
    ids = api._.launch(data={"ami": GOOD_AMI, "instance_type": "t2.micro", "tags": {"via": "doc"}})
    assert len(ids) == 1
    instance = api._.describeInstance(parameters={"id": ids[0]})
    assert instance.id == ids[0] and instance.ami == GOOD_AMI
    assert instance.tags.root["via"] == "doc"
    assert instance.launch_time.tzinfo is not None
    page = api._.listInstances(parameters={"id": [ids[0]], "limit": 5})
    assert [item.id for item in page.instances] == ids and page.next is None
    assert api._.stopInstance(parameters={"id": ids[0]}).state in ("stopping", "stopped")
    assert api._.startInstance(parameters={"id": ids[0]}).state in ("pending", "running")
    ended = api._.terminateInstance(parameters={"id": ids[0]})
    assert ended.state in ("shutting-down", "terminated")
    assert api._.liveness().status == "ok"

    with pytest.raises(HTTPClientError) as refused:
        api._.launch(data={"ami": MISSING_AMI, "instance_type": "t2.micro"})
    assert refused.value.status_code == 408
    assert refused.value.data.provider.code == "InvalidAMIID.NotFound"

    with pytest.raises(HTTPClientError) as missing:
        api._.describeInstance(parameters={"id": "i-0123456789abcdef0"})
    assert missing.value.status_code == 404
