"""The libcloud drivers launchprov builds instead of libcloud's own.

:class:`TolerantEC2NodeDriver` is libcloud's EC2 driver, made to read moto's replies and to
tag instances with exactly the caller's tags; :class:`CloudlikeDummyNodeDriver` is libcloud's
dummy driver, made to behave as a cloud does where launchprov looks (ids never reused, tags
kept, terminated nodes still listed). :data:`DRIVER_CLASSES` says which replaces which.

The EC2 namespace fix
---------------------

libcloud finds elements of EC2 replies in the namespace
``http://ec2.amazonaws.com/doc/2016-11-15/`` (:data:`libcloud.compute.drivers.ec2.NAMESPACE`,
with a trailing slash). moto writes ``http://ec2.amazonaws.com/doc/2016-11-15``, without it, so
with libcloud's own classes every success reply parses as empty (``create_node`` returns ``[]``
although instances were launched), and every error reply
(``<Response><Errors><Error><Code>...``, in that namespace) is missed by libcloud's
``findall("Errors/Error")`` and surfaces as ``BaseHTTPError('')``. :class:`TolerantEC2Response`
rewrites that namespace to libcloud's in every parsed reply, and reads ``Error/Code`` and
``Error/Message`` whatever their namespace, raising :class:`EC2ErrorReply` (the EC2 code, its
message and the HTTP status). :class:`TolerantEC2Connection` uses that response class and
:class:`TolerantEC2NodeDriver` that connection. Real EC2 replies, which already use libcloud's
namespace, pass through unchanged.
"""

from __future__ import annotations

import itertools
import logging
import re
from datetime import UTC, datetime
from typing import Any

from libcloud.common.exceptions import BaseHTTPError
from libcloud.common.google import JsonParseError
from libcloud.common.types import InvalidCredsError, MalformedResponseError
from libcloud.compute.base import Node, NodeDriver
from libcloud.compute.drivers.dummy import DummyNodeDriver
from libcloud.compute.drivers.ec2 import (
    NAMESPACE,
    EC2Connection,
    EC2NodeDriver,
    EC2Response,
)
from libcloud.compute.drivers.gce import GCEConnection, GCENodeDriver, GCEResponse
from libcloud.compute.types import NodeState
from libcloud.utils.py3 import ET

log = logging.getLogger(__name__)

#: The name given to the EC2 driver's create_node when the caller set no Name tag: libcloud
#: tags every instance Name=<name>, and TolerantEC2Connection removes a Name tag of this value
#: from RunInstances. No caller's tag can hold it: request validation refuses "\x00".
UNNAMED = "\x00launchprov-unnamed\x00"

_TITLE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)


# -- the EC2 driver's fixes: replies, Name tags ---------------------------------------------


class EC2ErrorReply(BaseHTTPError):
    """EC2 answered a call with an error reply.

    ``error_code`` is EC2's code (``InvalidAMIID.NotFound``), ``message`` its message and
    ``status`` the HTTP status. (``code`` keeps libcloud's meaning: the HTTP status.)
    """

    def __init__(self, status: int, error_code: str, message: str, headers=None):
        super().__init__(status, message, headers)
        self.status = status
        self.error_code = error_code

    def __str__(self) -> str:
        return f"{self.error_code}: {self.message}"


def _local_name(tag) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _normalise_namespace(root) -> None:
    """Rewrite the EC2 namespace spelt without its trailing slash (moto) to libcloud's."""
    bare = NAMESPACE.rstrip("/")
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.startswith("{" + bare + "}"):
            element.tag = "{" + NAMESPACE + "}" + _local_name(element.tag)


def _parse_xml(body: str):
    try:
        return ET.XML(body)
    except ValueError:  # a str with an encoding declaration, for parsers that refuse it
        return ET.XML(body.encode("utf-8"))


def summarise_body(body) -> str:
    """A one-line digest of an unparseable reply: its HTML title, or its first line."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    match = _TITLE.search(text)
    line = match.group(1) if match else next((ln for ln in text.splitlines() if ln.strip()), "")
    line = " ".join(line.split())
    return line[:200] or "(empty body)"


class TolerantEC2Response(EC2Response):
    """An EC2 reply that parses whichever way the EC2 namespace is spelt (see the module doc)."""

    def parse_body(self):
        if not self.body:
            return self.body
        try:
            root = _parse_xml(self.body)
        except Exception:
            raise MalformedResponseError(
                f"HTTP {self.status} reply is not XML",
                body=self.body,
                driver=self.connection.driver,
            ) from None
        _normalise_namespace(root)
        return root

    def parse_error(self):
        status = int(self.status)
        try:
            root = _parse_xml(self.body)
        except Exception:
            if status in (401, 403):
                # A gateway refusing the credentials before EC2 saw the call.
                raise InvalidCredsError(
                    f"HTTP {status}: {summarise_body(self.body)}", driver=self.connection.driver
                ) from None
            raise MalformedResponseError(
                f"HTTP {status} reply is not XML", body=self.body, driver=self.connection.driver
            ) from None
        for element in root.iter():
            if _local_name(element.tag) != "Error":
                continue
            code = message = ""
            for child in element:
                if _local_name(child.tag) == "Code":
                    code = (child.text or "").strip()
                elif _local_name(child.tag) == "Message":
                    message = (child.text or "").strip()
            if code:
                raise EC2ErrorReply(status, code, message, headers=self.headers)
        # XML, but no EC2 error in it: name it by its status, as the boto3 adapter does.
        raise EC2ErrorReply(status, f"HTTP{status}", summarise_body(self.body), self.headers)


class TolerantEC2Connection(EC2Connection):
    """The EC2 connection with :class:`TolerantEC2Response`, and never a retried request."""

    responseCls = TolerantEC2Response

    #: RunInstances parameters libcloud's create_node cannot send, for the call under way
    #: (set by :meth:`TolerantEC2NodeDriver.create_node`; a driver serves one thread).
    run_instances_extra: dict[str, str] = {}

    def request(self, action, params=None, *args, **kwargs):
        # libcloud retries a failed request when LIBCLOUD_RETRY_FAILED_HTTP_REQUESTS is set in
        # the environment. A RunInstances sent again without a client token can launch a second
        # set of instances, so every call goes once; the caller decides about retrying.
        kwargs["retry_failed"] = False
        if params and params.get("Action") == "RunInstances":
            params = {**without_unnamed_tag(params), **self.run_instances_extra}
        return super().request(action, params, *args, **kwargs)


_TAG_SPECIFICATION = "TagSpecification.1."
_TAG_PARAMETER = re.compile(r"\ATagSpecification\.1\.Tag\.(\d+)\.(Key|Value)\Z")


def without_unnamed_tag(params: dict[str, Any]) -> dict[str, Any]:
    """RunInstances parameters without the tag Name=:data:`UNNAMED`.

    The other tags are renumbered from 1; with none left, no TagSpecification is sent at all.
    """
    tags: dict[int, dict[str, str]] = {}
    others = {}
    for key, value in params.items():
        match = _TAG_PARAMETER.match(key)
        if match:
            tags.setdefault(int(match[1]), {})[match[2]] = value
        elif key != _TAG_SPECIFICATION + "ResourceType":
            others[key] = value
    kept = [tags[number] for number in sorted(tags)]
    kept = [tag for tag in kept if tag != {"Key": "Name", "Value": UNNAMED}]
    if len(kept) == len(tags):
        return params
    if kept:
        others[_TAG_SPECIFICATION + "ResourceType"] = params[_TAG_SPECIFICATION + "ResourceType"]
    for number, tag in enumerate(kept, start=1):
        for field, value in tag.items():
            others[f"{_TAG_SPECIFICATION}Tag.{number}.{field}"] = value
    return others


def as_list(created) -> list[Node]:
    """What create_node returned as a list: a Node when one was created, a list when several."""
    return created if isinstance(created, list) else [created]


class TolerantEC2NodeDriver(EC2NodeDriver):
    """libcloud's EC2 driver on :class:`TolerantEC2Connection`, with Name tags left optional."""

    connectionCls = TolerantEC2Connection

    def create_node(self, name=None, ex_metadata_options=None, **kwargs):
        """libcloud's create_node; with ``name`` None the instances get no Name tag.

        ``ex_metadata_options`` (``{"HttpTokens": "required"}``) is EC2's MetadataOptions,
        which libcloud's create_node does not know: sent as ``MetadataOptions.<key>``.
        """
        extra = {
            f"MetadataOptions.{key}": value for key, value in (ex_metadata_options or {}).items()
        }
        self.connection.run_instances_extra = extra
        try:
            created = super().create_node(name=UNNAMED if name is None else name, **kwargs)
        finally:
            self.connection.run_instances_extra = {}
        if name is None:  # libcloud names and tags the nodes it returns after the sentinel
            for node in as_list(created):
                node.name = node.id
                node.extra["tags"] = {
                    key: value for key, value in node.extra["tags"].items() if key != "Name"
                }
        return created


# -- the GCE driver: replies that are not JSON ----------------------------------------------


class StrictGCEResponse(GCEResponse):
    """A GCE reply; a 2xx one that is empty or not JSON is a MalformedResponseError.

    Every GCE API reply is a JSON document (a resource, a list, an operation). libcloud reads an
    empty body as ``""``, which its listings take for a list of nothing, and a body that is not
    JSON as a JsonParseError carrying the HTTP status, which reads as an error reply.
    """

    def parse_body(self):
        if int(self.status) // 100 == 2 and not (self.body or "").strip():
            raise MalformedResponseError(
                f"HTTP {self.status} reply is empty", body=self.body, driver=self.connection.driver
            )
        try:
            return super().parse_body()
        except JsonParseError:
            raise MalformedResponseError(
                f"HTTP {self.status} reply is not JSON",
                body=self.body,
                driver=self.connection.driver,
            ) from None


class StrictGCEConnection(GCEConnection):
    responseCls = StrictGCEResponse


class StrictGCENodeDriver(GCENodeDriver):
    """libcloud's GCE driver on :class:`StrictGCEResponse`."""

    connectionCls = StrictGCEConnection


# -- the dummy driver -----------------------------------------------------------------------


class CloudlikeDummyNodeDriver(DummyNodeDriver):
    """libcloud's dummy driver, behaving as a cloud does where launchprov looks.

    Node ids come from a counter (libcloud's are len(nodes) + 1, which repeat after a
    destroy); a node keeps the image and size it was created with and its launch time; a
    destroyed node stays listed, terminated, as EC2 keeps a terminated instance visible.
    """

    def __init__(self, creds):
        super().__init__(creds)
        # next() of a count is atomic: threads sharing the driver never get the same id.
        self._numbers = itertools.count(len(self.nl) + 1)

    def create_node(self, name, size, image, ex_metadata=None):
        node = Node(
            id=str(next(self._numbers)),
            name=name,
            state=NodeState.RUNNING,
            public_ips=[],
            private_ips=[],
            driver=self,
            size=size,
            image=image,
            created_at=datetime.now(UTC),
            # Tags, kept where libcloud's drivers keep them, so that listing by tag works.
            extra={"tags": dict(ex_metadata or {})},
        )
        self.nl.append(node)
        return node

    def destroy_node(self, node):
        node.state = NodeState.TERMINATED
        return True


#: The drivers launchprov builds instead of libcloud's own.
DRIVER_CLASSES: dict[str, type[NodeDriver]] = {
    "ec2": TolerantEC2NodeDriver,
    "dummy": CloudlikeDummyNodeDriver,
    "gce": StrictGCENodeDriver,
}
