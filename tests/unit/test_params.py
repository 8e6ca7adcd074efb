"""Reading parameters from a JSON body, a form body or the query string; refusing bad bodies."""

from __future__ import annotations

import pytest
from webob import Request

from launchprov.errors import BodyTooLarge, InvalidParameters, UnsupportedMediaType
from launchprov.params import read_params

LIMIT = 1024


def put(body: bytes = b"", content_type: str | None = None, query: str = "") -> Request:
    request = Request.blank("/v1/launch" + (f"?{query}" if query else ""), method="PUT")
    if body:
        request.body = body
    if content_type is not None:
        request.content_type = content_type
    elif body:
        del request.content_type
    return request


def test_json_object_body():
    params = read_params(put(b'{"ami": "ami-1", "min_count": 2}', "application/json"), LIMIT)
    assert (params.location, params.textual) == ("body", False)
    assert params.values == {"ami": "ami-1", "min_count": 2}


def test_json_with_utf8_charset_parameter():
    request = put(b'{"ami": "x"}', "application/json; charset=UTF-8")
    assert read_params(request, LIMIT).values == {"ami": "x"}


def test_form_body_keeps_every_value_as_text():
    body = b"ami=ami-1&security_groups=a&security_groups=b%2Cc&user_data=caf%C3%A9"
    params = read_params(put(body, "application/x-www-form-urlencoded"), LIMIT)
    assert (params.location, params.textual) == ("body", True)
    assert params.values == {
        "ami": ["ami-1"],
        "security_groups": ["a", "b,c"],
        "user_data": ["café"],
    }


def test_query_string_when_there_is_no_body():
    params = read_params(put(query="ami=ami-1&min_count=2&user_data=caf%C3%A9"), LIMIT)
    assert (params.location, params.textual) == ("querystring", True)
    assert params.values == {"ami": ["ami-1"], "min_count": ["2"], "user_data": ["café"]}


def test_no_body_and_no_query_is_an_empty_parameter_set():
    assert read_params(put(), LIMIT).values == {}


def test_body_and_query_string_together_are_refused():
    with pytest.raises(InvalidParameters) as raised:
        read_params(put(b'{"ami": "x"}', "application/json", query="min_count=2"), LIMIT)
    assert "not both" in raised.value.message


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"ami": ', "not valid JSON"),
        (b"[1, 2]", "must be an object"),
        (b'"ami"', "must be an object"),
        (b"null", "must be an object"),
        (b'{"ami": "a", "ami": "b"}', "'ami' more than once"),
        (b'{"min_count": NaN}', "NaN, which is not JSON"),
        (b'{"min_count": Infinity}', "Infinity, which is not JSON"),
        (b'{"ami": "\xff"}', "not valid UTF-8"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    ],
)
def test_bad_json_bodies(body, fragment):
    with pytest.raises(InvalidParameters) as raised:
        read_params(put(body, "application/json"), 10**6)
    assert fragment in raised.value.message
    assert raised.value.status == 400
    assert raised.value.details[0]["location"] == "body"


def test_invalid_utf8_in_a_form_body():
    with pytest.raises(InvalidParameters) as raised:
        read_params(put(b"ami=%FF", "application/x-www-form-urlencoded"), LIMIT)
    assert "not valid UTF-8" in raised.value.message


def test_invalid_utf8_in_the_query_string():
    with pytest.raises(InvalidParameters) as raised:
        read_params(put(query="ami=%FF"), LIMIT)
    assert raised.value.details[0]["location"] == "querystring"


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
def test_unsupported_content_types(content_type):
    with pytest.raises(UnsupportedMediaType) as raised:
        read_params(put(b"ami=x", content_type), LIMIT)
    assert raised.value.status == 415
    assert "application/json" in raised.value.message


def test_a_charset_other_than_utf8_is_unsupported():
    with pytest.raises(UnsupportedMediaType):
        read_params(put(b'{"ami": "x"}', "application/json; charset=latin-1"), LIMIT)


def test_a_body_over_the_limit():
    with pytest.raises(BodyTooLarge) as raised:
        read_params(put(b'{"a": "' + b"x" * LIMIT + b'"}', "application/json"), LIMIT)
    assert raised.value.status == 413
