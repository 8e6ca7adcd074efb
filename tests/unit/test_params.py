"""Reading parameters from a JSON body, a form body or the query string; refusing bad bodies."""

from __future__ import annotations

import io

import pytest
from webob import Request

from launchprov.errors import BodyTooLarge, InvalidParameters, UnsupportedMediaType
from launchprov.exceptions import detail
from launchprov.params import read_params, read_query

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
    params = read_params(put(), LIMIT)
    assert (params.location, params.textual, params.values) == ("querystring", True, {})


def test_an_empty_json_body_is_an_empty_body():
    """What is missing is then missing from the body (the 400's details say so)."""
    params = read_params(put(content_type="application/json"), LIMIT)
    assert (params.location, params.textual, params.values) == ("body", False, {})


def test_an_empty_json_body_with_a_query_string_reads_the_query_string():
    params = read_params(put(content_type="application/json", query="ami=ami-1"), LIMIT)
    assert (params.location, params.textual) == ("querystring", True)
    assert params.values == {"ami": ["ami-1"]}


def test_an_environ_without_a_query_string_has_no_parameters():
    """PEP 3333 lets a server leave QUERY_STRING out when it is empty."""
    request = put()
    del request.environ["QUERY_STRING"]
    assert read_params(request, LIMIT).values == {}
    assert read_query(request).values == {}


def test_body_and_query_string_together_are_refused():
    with pytest.raises(InvalidParameters) as raised:
        read_params(put(b'{"ami": "x"}', "application/json", query="min_count=2"), LIMIT)
    message = "give parameters in the body or in the query string, not both"
    assert raised.value.message == message
    assert raised.value.details == [detail("querystring", "", message)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"ami": ', "the body is not valid JSON: Expecting value at line 1 column 9"),
        (b"[1, 2]", "the JSON body must be an object of parameter names to values"),
        (b'"ami"', "the JSON body must be an object of parameter names to values"),
        (b"null", "the JSON body must be an object of parameter names to values"),
        (b'{"ami": "a", "ami": "b"}', "the JSON body gives 'ami' more than once"),
        (b'{"min_count": NaN}', "the JSON body holds NaN, which is not JSON"),
        (b'{"min_count": Infinity}', "the JSON body holds Infinity, which is not JSON"),
        (b'{"ami": "\xff"}', "the body is not valid UTF-8 (byte 9)"),
        (b"[" * 100000 + b"]" * 100000, "the JSON body is nested too deeply"),
    ],
)
def test_bad_json_bodies(body, message):
    with pytest.raises(InvalidParameters) as raised:
        read_params(put(body, "application/json"), 10**6)
    assert raised.value.status == 400
    assert raised.value.message == message
    assert raised.value.details == [detail("body", "", message)]


def test_blank_values_are_kept():
    params = read_params(put(b"ami=ami-1&key_name=", "application/x-www-form-urlencoded"), LIMIT)
    assert params.values == {"ami": ["ami-1"], "key_name": [""]}
    assert read_params(put(query="key_name="), LIMIT).values == {"key_name": [""]}


def test_invalid_utf8_in_a_form_body():
    with pytest.raises(InvalidParameters) as raised:
        read_params(put(b"ami=%FF", "application/x-www-form-urlencoded"), LIMIT)
    message = "the body is not valid UTF-8 once percent-decoded"
    assert raised.value.message == message
    assert raised.value.details == [detail("body", "", message)]


def test_raw_bytes_of_invalid_utf8_in_a_form_body():
    with pytest.raises(InvalidParameters) as raised:
        read_params(put(b"ami=\xff", "application/x-www-form-urlencoded"), LIMIT)
    message = "the body is not valid UTF-8 (byte 4)"
    assert raised.value.message == message
    assert raised.value.details == [detail("body", "", message)]


@pytest.mark.parametrize("read", [lambda r: read_params(r, LIMIT), read_query])
def test_invalid_utf8_in_the_query_string(read):
    with pytest.raises(InvalidParameters) as raised:
        read(put(query="ami=%FF"))
    message = "the querystring is not valid UTF-8 once percent-decoded"
    assert raised.value.message == message
    assert raised.value.details == [detail("querystring", "", message)]


@pytest.mark.parametrize("read", [lambda r: read_params(r, LIMIT), read_query])
def test_raw_bytes_of_invalid_utf8_in_the_query_string(read):
    request = put()
    request.environ["QUERY_STRING"] = "ami=\xff"  # WSGI's latin-1 text of the raw byte 0xff
    with pytest.raises(InvalidParameters) as raised:
        read(request)
    message = "the querystring is not valid UTF-8 (byte 4)"
    assert raised.value.message == message
    assert raised.value.details == [detail("querystring", "", message)]


def test_the_query_string_of_the_instance_routes():
    params = read_query(put(query="state=running&tag%3Arole=web&tag%3Arole=db&next="))
    assert (params.location, params.textual) == ("querystring", True)
    assert params.values == {"state": ["running"], "tag:role": ["web", "db"], "next": [""]}


SEND = "send application/json (or application/x-www-form-urlencoded)"


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        ("text/plain", f"text/plain is not supported; {SEND}"),
        ("application/xml", f"application/xml is not supported; {SEND}"),
        ("text/plain; charset=latin-1", f"text/plain is not supported; {SEND}"),
        (None, f"no Content-Type is not supported; {SEND}"),
    ],
)
def test_unsupported_content_types(content_type, message):
    with pytest.raises(UnsupportedMediaType) as raised:
        read_params(put(b"ami=x", content_type), LIMIT)
    assert raised.value.status == 415
    assert raised.value.message == message


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"ami": "x"}', "application/json; charset=latin-1"),
        (b"ami=x", "application/x-www-form-urlencoded; charset=latin-1"),
    ],
)
def test_a_charset_other_than_utf8_is_unsupported(body, content_type):
    with pytest.raises(UnsupportedMediaType) as raised:
        read_params(put(body, content_type), LIMIT)
    assert raised.value.message == "charset latin-1 is not supported; send UTF-8"


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "utf8", "UTF8", "Utf-8", ""])
def test_every_spelling_of_utf8_is_accepted(charset):
    suffix = f"; charset={charset}" if charset else ""
    assert read_params(put(b'{"ami": "x"}', "application/json" + suffix), LIMIT).values == {
        "ami": "x"
    }
    form = "application/x-www-form-urlencoded" + suffix
    assert read_params(put(b"ami=x", form), LIMIT).values == {"ami": ["x"]}


@pytest.mark.parametrize("body", [b'{"ami": "x"}', b"[1]", b' \n {"ami": "x"}'])
def test_json_sent_as_a_form_says_which_content_type_to_send(body):
    with pytest.raises(InvalidParameters) as raised:
        read_params(put(body, "application/x-www-form-urlencoded"), LIMIT)
    message = (
        "the body looks like JSON but was sent as application/x-www-form-urlencoded: "
        "send Content-Type: application/json"
    )
    assert raised.value.message == message
    assert raised.value.details == [detail("header", "Content-Type", message)]


def test_a_form_value_may_hold_braces():
    body = b"ami=ami-1&tag%3Anote={x}"
    assert read_params(put(body, "application/x-www-form-urlencoded"), LIMIT).values == {
        "ami": ["ami-1"],
        "tag:note": ["{x}"],
    }


def json_of_size(size: int) -> bytes:
    body = b'{"a": "' + b"x" * (size - 9) + b'"}'
    assert len(body) == size
    return body


def test_a_body_over_the_limit():
    read_params(put(json_of_size(LIMIT), "application/json"), LIMIT)  # at the limit: read
    with pytest.raises(BodyTooLarge) as raised:
        read_params(put(json_of_size(LIMIT + 1), "application/json"), LIMIT)
    assert raised.value.status == 413
    assert raised.value.message == f"the body is larger than {LIMIT} bytes"


def chunked(body: bytes) -> Request:
    """A request whose body has no Content-Length (Transfer-Encoding: chunked, as waitress
    hands it over: the input ends where the body does)."""
    request = put(content_type="application/json")
    request.environ.pop("CONTENT_LENGTH", None)
    request.environ["wsgi.input"] = io.BytesIO(body)
    request.environ["wsgi.input_terminated"] = True
    return request


def test_a_body_without_content_length_over_the_limit():
    assert read_params(chunked(json_of_size(LIMIT)), LIMIT).values == {"a": "x" * (LIMIT - 9)}
    with pytest.raises(BodyTooLarge) as raised:
        read_params(chunked(json_of_size(LIMIT + 1)), LIMIT)
    assert raised.value.message == f"the body is larger than {LIMIT} bytes"


class Unreadable(io.RawIOBase):
    def readable(self):
        return True

    def readinto(self, buffer):
        raise AssertionError("the body was read")


def test_a_declared_length_over_the_limit_is_refused_before_reading_the_body():
    request = put(content_type="application/json")
    request.environ["CONTENT_LENGTH"] = str(10**9)  # a gigabyte never read into memory
    request.environ["wsgi.input"] = Unreadable()
    with pytest.raises(BodyTooLarge) as raised:
        read_params(request, LIMIT)
    assert raised.value.message == f"the body is larger than {LIMIT} bytes"
