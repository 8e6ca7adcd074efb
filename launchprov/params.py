"""Reading a request's parameters: a JSON object body, a form body, or the query string.

JSON is the canonical form. A form body (``application/x-www-form-urlencoded``) and the query
string are accepted so that ``curl -X PUT -d ami=... -d instance_type=...`` works; their values
arrive as text, each key mapped to the list of strings given for it, for the textual schema to
parse. Parameters come from one place: a request that has both a body and a query string is
refused rather than merged.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from launchprov.exceptions import BodyTooLarge, InvalidParameters, UnsupportedMediaType, detail

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


class Params:
    """Parameters read from a request: where they came from and their raw values."""

    __slots__ = ("location", "textual", "values")

    def __init__(self, location: str, textual: bool, values: dict[str, Any]):
        self.location = location  # "body" or "querystring", for error details
        self.textual = textual  # values are lists of strings to be parsed
        self.values = values


def _bad_body(message: str) -> InvalidParameters:
    return InvalidParameters(message, [detail("body", "", message)])


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _bad_body(f"the JSON body gives {key!r} more than once")
        result[key] = value
    return result


def _reject_constant(name: str):
    raise _bad_body(f"the JSON body holds {name}, which is not JSON")


def _decode(raw: bytes, location: str = "body") -> str:
    try:
        return raw.decode()  # UTF-8, strictly: bytes.decode's defaults
    except UnicodeDecodeError as exc:
        message = f"the {location} is not valid UTF-8 (byte {exc.start})"
        raise InvalidParameters(message, [detail(location, "", message)]) from None


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Decode a JSON object body strictly: UTF-8, no duplicate keys, no NaN, an object."""
    text = _decode(body)
    try:
        value = json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        raise _bad_body(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise _bad_body("the JSON body is nested too deeply") from None
    if not isinstance(value, dict):
        raise _bad_body("the JSON body must be an object of parameter names to values")
    return value


def parse_text_pairs(text: str, location: str) -> dict[str, list[str]]:
    """Decode ``a=1&b=2&b=3`` into ``{"a": ["1"], "b": ["2", "3"]}``."""
    try:
        # Percent-escapes decode as UTF-8 (parse_qsl's default), strictly (not its default).
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        message = f"the {location} is not valid UTF-8 once percent-decoded"
        raise InvalidParameters(message, [detail(location, "", message)]) from None
    values: dict[str, list[str]] = {}
    for key, value in pairs:
        values.setdefault(key, []).append(value)
    return values


def _query_text(request) -> str:
    # WSGI hands the query string over as latin-1 text of the raw bytes.
    return _decode(request.environ.get("QUERY_STRING", "").encode("latin-1"), "querystring")


def read_query(request) -> Params:
    """The query string's parameters (GET, DELETE and POST of the instance routes)."""
    return Params("querystring", True, parse_text_pairs(_query_text(request), "querystring"))


def read_params(request, max_body_size: int) -> Params:
    """Read the parameters of ``request``; raise an APIError for a body that cannot be read."""
    if request.content_length is not None and request.content_length > max_body_size:
        raise BodyTooLarge(f"the body is larger than {max_body_size} bytes")
    body = request.body
    if len(body) > max_body_size:
        raise BodyTooLarge(f"the body is larger than {max_body_size} bytes")
    query = _query_text(request)

    content_type = request.content_type
    if not body:
        if content_type == JSON and not query:
            # A JSON request whose body is empty: what is missing is missing from the body.
            return Params("body", False, {})
        return Params("querystring", True, parse_text_pairs(query, "querystring"))
    if query:
        message = "give parameters in the body or in the query string, not both"
        raise InvalidParameters(message, [detail("querystring", "", message)])

    # WebOb reads every spelling of UTF-8 (utf8, Utf-8...), and no charset at all, as "UTF-8".
    if content_type in (JSON, FORM) and request.charset != "UTF-8":
        raise UnsupportedMediaType(f"charset {request.charset} is not supported; send UTF-8")
    if content_type == JSON:
        return Params("body", False, parse_json_object(body))
    if content_type == FORM:
        text = _decode(body)
        if text.lstrip().startswith(("{", "[")):
            # curl -d '{"ami": ...}' sends its default form type: say what to send instead.
            message = f"the body looks like JSON but was sent as {FORM}: send Content-Type: {JSON}"
            raise InvalidParameters(message, [detail("header", "Content-Type", message)])
        return Params("body", True, parse_text_pairs(text, "body"))
    shown = content_type or "no Content-Type"
    raise UnsupportedMediaType(f"{shown} is not supported; send {JSON} (or {FORM})")
