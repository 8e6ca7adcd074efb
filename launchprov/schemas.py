"""colander schemas: the one source of request validation.

colander coerces leniently out of the box (``Int`` takes "3", 3.7 and True; a node with
``missing=`` swallows {}, [], "" and None). The types here are strict instead:

* in JSON, a value must already have its type: 3.7, true, "3", {} and null are not integers
  (3.0 is, as JSON Schema counts it),
  "yes" is not a boolean, and null is an error, never "use the default";
* in a form body or a query string every value arrives as text (a list of the strings given for
  the key), and the type parses it: integers in decimal, booleans as true/false/1/0/yes/no, lists
  by repeating the key or separating with commas; a scalar given twice is an error.

A schema is bound once at startup with ``textual`` (form and query input or not), ``defaults``
(the deployment's defaults) and ``image_id_pattern`` (the provider's AMI format).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, NamedTuple

import colander

from launchprov.exceptions import InvalidParameters, detail
from launchprov.params import Params
from launchprov.placement import REGION_PATTERN, ZONE_PATTERN, region_of, region_or_name
from launchprov.providers.interface import (
    BEYOND_SEED,
    METADATA_TOKENS,
    STATES,
    VOLUME_TYPES,
    Alternative,
    InstanceQuery,
    LaunchRequest,
)

MAX_STRING = 255
MAX_COUNT = 1000
MAX_SECURITY_GROUPS = 100
MAX_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
MAX_LIST_LIMIT = 1000
DEFAULT_LIST_LIMIT = 100
#: The longest ``next`` token: one carries up to 200 instance ids of a cut provider page (about
#: 3 KB once compressed) besides the provider's own token (launchprov.providers.paging).
MAX_PAGE_TOKEN = 8192
MAX_FILTER_VALUES = 200
#: A client token (and the Idempotency-Key header, its synonym): EC2's rule.
CLIENT_TOKEN = re.compile(r"\A[\x20-\x7e]{1,64}\Z")
IDEMPOTENCY_KEY = "Idempotency-Key"
#: A caller's request id: at most 128 characters that are safe in a header, a log and a tag.
REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID = re.compile(r"\A[A-Za-z0-9._:/+=@-]{1,128}\Z")
#: Tags that launchprov sets itself (caller, request id, client token): callers may not.
SYSTEM_TAG_PREFIX = "launchprov:"
#: In a form body or a query string a tag is a parameter ``tag:KEY`` whose value is the value.
TAG_PREFIX = "tag:"
#: Ids of instances on providers with no fixed format: safe in a path and in a log line.
GENERIC_INSTANCE_ID = re.compile(r"\A[A-Za-z0-9._:-]{1,128}\Z")
#: EC2's limit on user data, counted in bytes of the raw (not yet base64-encoded) text.
MAX_USER_DATA_BYTES = 16384
#: A VPC subnet id: ``subnet-`` and 8 or 17 hex digits.
SUBNET_ID = re.compile(r"\Asubnet-(?:[0-9a-f]{8}|[0-9a-f]{17})\Z")
#: An IAM instance profile: its name (IAM's characters), or its ARN.
INSTANCE_PROFILE = re.compile(
    r"\A(?:[\w+=,.@-]{1,128}|arn:aws[a-z-]*:iam::\d{12}:instance-profile/[\w+=,.@/-]{1,512})\Z",
    re.ASCII,  # \w and \d as JSON Schema reads them: IAM's names are ASCII
)
#: EC2's bounds on an EBS volume's size, in GiB.
MAX_VOLUME_SIZE = 16384
MAX_ALTERNATIVES = 10
#: The longest lease: a year (365 days), in seconds.
MAX_EXPIRES_IN = 31_536_000

#: An integer in text: ASCII digits only (``\d`` would take "٢", Arabic-Indic two, as 2).
_INTEGER_TEXT = re.compile(r"\A[+-]?[0-9]{1,10}\Z")
#: What text input may carry around a number or a boolean: ASCII white space, no other
#: (``str.strip`` would also drop U+2028 and the C0 separators).
_ASCII_SPACE = " \t\n\r\x0b\x0c"
_BOOLEAN_TEXT = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def json_type(value: Any) -> str:
    """The JSON name of a decoded JSON value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_textual(node) -> bool:
    return bool(getattr(node, "bindings", None) and node.bindings.get("textual"))


def _check_text(node, value: str) -> str:
    if "\x00" in value:
        raise colander.Invalid(node, "NUL characters are not allowed")
    return value


#: Unicode categories an identifier may not hold: control and format characters (a right-to-left
#: override makes ``t2.micro\u202e`` look like ``t2.micro``), line and paragraph separators.
INVISIBLE_CATEGORIES = ("Cc", "Cf", "Zl", "Zp")


#: Every character of those categories (Unicode 15.1), as inclusive ranges: one table for the
#: check and for the JSON Schema pattern, so that both always agree. A test holds it to the
#: running Python's own Unicode data.
_INVISIBLE_RANGES = (
    (0x0000, 0x001F),
    (0x007F, 0x009F),
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
)
#: The characters themselves in a class (no escapes): JSON Schema's ECMA 262 patterns and Python's
#: re read it alike, whatever the plane of the character.
_INVISIBLE_CLASS = "".join(
    chr(low) if low == high else f"{chr(low)}-{chr(high)}" for low, high in _INVISIBLE_RANGES
)
_INVISIBLE = re.compile(f"[{_INVISIBLE_CLASS}]")
#: JSON Schema for an identifier: no control, format or separator character (NUL included).
VISIBLE_CHARACTER = f"[^{_INVISIBLE_CLASS}]"
VISIBLE = f"^{VISIBLE_CHARACTER}*$"


def _check_identifier(node, value: str, what: str = "") -> str:
    found = _INVISIBLE.search(value)
    if found is not None:
        char = found.group()
        name = unicodedata.name(char, "").lower() or unicodedata.category(char)
        raise colander.Invalid(
            node,
            f"{what}must not hold control or format characters: U+{ord(char):04X} ({name}) "
            f"at character {found.start() + 1}",
        )
    return value


class _StrictType(colander.SchemaType):
    """Absent stays absent; null is refused; text input is parsed by ``from_text``."""

    expected = "a value"

    def deserialize(self, node, cstruct):
        if cstruct is colander.null:
            return colander.null
        if cstruct is None:
            raise colander.Invalid(
                node, "null is not allowed; leave the parameter out to use its default"
            )
        if _is_textual(node):
            return self.from_text(node, cstruct)
        return self.from_json(node, cstruct)

    def serialize(self, node, appstruct):
        return colander.null if appstruct is colander.null else appstruct

    def single_text(self, node, values: list[str]) -> str:
        if len(values) != 1:
            raise colander.Invalid(node, f"given {len(values)} times; give it once")
        return _check_text(node, values[0])

    def wrong_type(self, node, value):
        return colander.Invalid(node, f"expected {self.expected}, got {json_type(value)}")


#: JSON Schema for "no NUL character", which every string parameter refuses.
NO_NUL = "^[^\\u0000]*$"


class StrictString(_StrictType):
    """A string; an identifier (no control or format character) unless ``free_text``."""

    expected = "a string"

    def __init__(self, allow_empty: bool = False, free_text: bool = False):
        self.allow_empty = allow_empty
        self.free_text = free_text

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "string",
            "pattern": NO_NUL if self.free_text else VISIBLE,
        }
        if not self.allow_empty:
            schema["minLength"] = 1
        return schema

    def from_text(self, node, values):
        return self.from_json(node, self.single_text(node, values))

    def from_json(self, node, value):
        if not isinstance(value, str):
            raise self.wrong_type(node, value)
        if not value and not self.allow_empty:
            raise colander.Invalid(node, "must not be empty")
        _check_text(node, value)
        return value if self.free_text else _check_identifier(node, value)


class StrictInteger(_StrictType):
    expected = "an integer"

    def json_schema(self) -> dict[str, Any]:
        return {"type": "integer"}

    def from_text(self, node, values):
        value = self.single_text(node, values).strip(_ASCII_SPACE)
        if not _INTEGER_TEXT.match(value):
            raise colander.Invalid(node, f"expected an integer, got {value!r}")
        return int(value)

    def from_json(self, node, value):
        # JSON Schema's "integer" is a number with no fraction: 3 and 3.0, not 3.7 or true.
        if type(value) is float and value.is_integer():
            return int(value)
        if type(value) is not int:  # bool is an int subclass: true is not 1 here
            raise self.wrong_type(node, value)
        return value


class StrictBoolean(_StrictType):
    expected = "a boolean"

    def json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}

    def from_text(self, node, values):
        value = self.single_text(node, values).strip(_ASCII_SPACE).lower()
        if value not in _BOOLEAN_TEXT:
            raise colander.Invalid(node, "expected one of true, false, 1, 0, yes, no")
        return _BOOLEAN_TEXT[value]

    def from_json(self, node, value):
        if not isinstance(value, bool):
            raise self.wrong_type(node, value)
        return value


class StringList(_StrictType):
    """A list of non-empty strings: a JSON array, or repeated / comma-separated text."""

    expected = "an array of strings"

    def __init__(self, max_items: int, max_length: int):
        self.max_items = max_items
        self.max_length = max_length

    def json_schema(self) -> dict[str, Any]:
        item = {"type": "string", "minLength": 1, "maxLength": self.max_length, "pattern": VISIBLE}
        return {"type": "array", "items": item, "minItems": 1, "maxItems": self.max_items}

    def from_text(self, node, values):
        # Spaces only: str.strip would also drop U+2028, U+0085 and the C0 separators, which
        # an identifier refuses.
        items = [item.strip(" ") for value in values for item in value.split(",")]
        return self.from_json(node, items)

    def from_json(self, node, value):
        if not isinstance(value, list):
            raise self.wrong_type(node, value)
        if not value:
            raise colander.Invalid(node, "must hold at least one name")
        if len(value) > self.max_items:
            raise colander.Invalid(node, f"must hold at most {self.max_items} names")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise colander.Invalid(
                    node, f"item {index}: expected a string, got {json_type(item)}"
                )
            if not item:
                raise colander.Invalid(node, f"item {index}: must not be empty")
            if len(item) > self.max_length:
                raise colander.Invalid(
                    node, f"item {index}: longer than {self.max_length} characters"
                )
            _check_text(node, item)
            _check_identifier(node, item, f"item {index}: ")
        return tuple(value)


_ALTERNATIVE_FIELDS = ("instance_type", "placement", "subnet_id")
_ZONE_RE = re.compile(rf"\A{ZONE_PATTERN}\Z")


class AlternativeList(_StrictType):
    """``fallback``: 1 to 10 objects, each replacing some of instance_type, placement and
    subnet_id. In a form body or a query string it is given as JSON text."""

    expected = "an array of objects"

    def json_schema(self) -> dict[str, Any]:
        item = {
            "type": "object",
            "properties": {
                "instance_type": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_STRING,
                    "pattern": VISIBLE,
                },
                "placement": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_STRING,
                    "pattern": VISIBLE,
                    "description": "An availability zone of the request's region (EC2), or "
                    "the cloud's location name.",
                },
                "subnet_id": {"type": "string", "pattern": _pattern_of(SUBNET_ID)},
            },
            "additionalProperties": False,
            "minProperties": 1,
        }
        return {"type": "array", "items": item, "minItems": 1, "maxItems": MAX_ALTERNATIVES}

    def from_text(self, node, values):
        value = self.single_text(node, values)
        try:
            parsed = json.loads(value)
        except ValueError:
            raise colander.Invalid(node, "in a form or query string, give it as JSON") from None
        return self.from_json(node, parsed)

    def from_json(self, node, value):
        if not isinstance(value, list):
            raise self.wrong_type(node, value)
        if not 1 <= len(value) <= MAX_ALTERNATIVES:
            raise colander.Invalid(node, f"must hold 1 to {MAX_ALTERNATIVES} alternatives")
        return tuple(self._alternative(node, index, item) for index, item in enumerate(value))

    def _alternative(self, node, index: int, item) -> Alternative:
        where = f"item {index}"
        if not isinstance(item, dict):
            raise colander.Invalid(node, f"{where}: expected an object, got {json_type(item)}")
        unknown = sorted(set(item) - set(_ALTERNATIVE_FIELDS))
        if unknown:
            raise colander.Invalid(node, f"{where}: unknown field(s) {', '.join(unknown)}")
        if not item:
            names = ", ".join(_ALTERNATIVE_FIELDS)
            raise colander.Invalid(node, f"{where}: give at least one of {names}")
        checks = {
            "instance_type": (
                lambda v: 1 <= len(v) <= MAX_STRING and "\x00" not in v,
                f"1 to {MAX_STRING} characters",
            ),
            "placement": (
                (lambda v: _ZONE_RE.match(v) is not None)
                if _placement_is_zone(node)
                else (lambda v: 1 <= len(v) <= MAX_STRING and "\x00" not in v),
                "expected an availability-zone name such as us-east-1b"
                if _placement_is_zone(node)
                else f"1 to {MAX_STRING} characters",
            ),
            "subnet_id": (
                lambda v: SUBNET_ID.match(v) is not None,
                "expected a subnet id: 'subnet-' and 8 or 17 hex digits",
            ),
        }
        for name, value in item.items():
            valid, rule = checks[name]
            if not isinstance(value, str):
                raise colander.Invalid(
                    node, f"{where}: {name}: expected a string, got {json_type(value)}"
                )
            _check_identifier(node, value, f"{where}: {name}: ")
            if not valid(value):
                raise colander.Invalid(node, f"{where}: {name}: {rule}")
        return Alternative(**item)


def _placement_is_zone(node) -> bool:
    """Whether the bound provider's placements are EC2 availability zones."""
    return (getattr(node, "bindings", None) or {}).get("placement_is_zone", True)


def _pattern_of(regex: re.Pattern) -> str:
    """A Python pattern spelt for JSON Schema (the OpenAPI converter's rule)."""
    pattern = regex.pattern.replace("\\A", "^").replace("\\Z", "$")
    return re.sub(r"\(\?P<\w+>", "(?:", pattern)


def _any_case(prefix: str) -> str:
    """A regex matching ``prefix`` in any case, without flags (JSON Schema has none)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in prefix)


class TagMap(_StrictType):
    """Tags: a JSON object of key to value, or ``tag:KEY=VALUE`` parameters in text input.

    EC2's rules: at most 50 pairs, keys of 1 to 128 characters not starting with ``aws:``,
    values of at most 256. With ``several_values`` (list filters) a key may be given more than
    once in text, and each key maps to the tuple of its values.
    """

    expected = "an object of tag keys to string values"

    def __init__(self, several_values: bool = False, reserved: tuple[str, ...] = ()):
        self.several_values = several_values
        self.reserved = reserved  # key prefixes callers may not set, beside aws:

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "maxProperties": MAX_TAGS,
            "propertyNames": {
                "minLength": 1,
                "maxLength": MAX_TAG_KEY,
                "pattern": VISIBLE,
                "not": {"pattern": "^(" + "|".join(map(_any_case, ("aws:", *self.reserved))) + ")"},
            },
            "additionalProperties": {
                "type": "string",
                "maxLength": MAX_TAG_VALUE,
                "pattern": VISIBLE,
            },
        }

    def from_text(self, node, values):
        if not isinstance(values, dict):  # a parameter named "tags" itself
            raise colander.Invalid(node, f"give tags as {TAG_PREFIX}KEY=VALUE parameters")
        if self.several_values:
            return self.check(node, {key: tuple(given) for key, given in values.items()})
        tags = {}
        for key, given in values.items():
            if len(given) != 1:
                raise colander.Invalid(node, f"tag {key!r} given {len(given)} times; give it once")
            tags[key] = given[0]
        return self.check(node, tags)

    def from_json(self, node, value):
        if not isinstance(value, dict):
            raise self.wrong_type(node, value)
        for key, item in value.items():
            if not isinstance(item, str):
                raise colander.Invalid(
                    node, f"tag {key!r}: expected a string value, got {json_type(item)}"
                )
        return self.check(node, value)

    def check(self, node, tags: dict):
        if len(tags) > MAX_TAGS:
            raise colander.Invalid(node, f"at most {MAX_TAGS} tags, got {len(tags)}")
        for key, value in tags.items():
            if not 1 <= len(key) <= MAX_TAG_KEY:
                raise colander.Invalid(node, f"tag keys have 1 to {MAX_TAG_KEY} characters")
            for prefix in ("aws:", *self.reserved):
                if key.lower().startswith(prefix):
                    message = f"tag {key!r}: keys starting with {prefix} are reserved"
                    raise colander.Invalid(node, message)
            for item in value if isinstance(value, tuple) else (value,):
                if len(item) > MAX_TAG_VALUE:
                    raise colander.Invalid(
                        node, f"tag {key!r}: values have at most {MAX_TAG_VALUE} characters"
                    )
                _check_text(node, item)
                _check_identifier(node, item, f"tag {key!r}: value: ")
            _check_text(node, key)
            _check_identifier(node, key, f"tag key {key!r}: ")
        return dict(tags)


class MaxUtf8Bytes:
    """At most ``limit`` bytes once UTF-8 encoded (JSON Schema can only say characters)."""

    def __init__(self, limit: int):
        self.limit = limit

    def __call__(self, node, value):
        size = len(value.encode("utf-8"))
        if size > self.limit:
            message = f"is {size} bytes once UTF-8 encoded; at most {self.limit}"
            raise colander.Invalid(node, message)

    def json_schema(self) -> dict[str, Any]:
        return {"maxLength": self.limit}


class EachItem:
    """Applies a validator to every item of a list."""

    def __init__(self, validator):
        self.validator = validator

    def __call__(self, node, values):
        for index, value in enumerate(values):
            try:
                self.validator(node, value)
            except colander.Invalid as error:
                raise colander.Invalid(node, f"item {index}: {message_text(error.msg)}") from None


def message_text(message) -> str:
    """A colander message as text: a TranslationString's ``${val}`` and ``${choices}`` filled."""
    interpolate = getattr(message, "interpolate", None)
    return interpolate() if interpolate is not None else str(message)


_zone = colander.Regex(
    rf"\A{ZONE_PATTERN}\Z", msg="expected an availability-zone name such as us-east-1b"
)


@colander.deferred
def _placement_validator(node, kw):
    """An availability-zone name, unless the provider's locations are named otherwise
    (``placement_is_zone`` false: a libcloud driver other than EC2, ``eastus``, ``nyc3``)."""
    length = colander.Length(1, MAX_STRING)
    if not kw.get("placement_is_zone", True):
        return length
    return colander.All(length, _zone)


@colander.deferred
def _image_id_validator(node, kw):
    pattern = kw.get("image_id_pattern")
    length = colander.Length(1, MAX_STRING)
    if pattern is None:
        return length
    regex = colander.Regex(pattern, msg="expected an AMI id: 'ami-' and 8 or 17 hex digits")
    return colander.All(length, regex)


#: A node whose default is the deployment's own carries ``deployment_default``: the setting it
#: comes from. The document says it in words: a generated client must not send one
#: deployment's default to another.
def _default(name: str):
    return colander.deferred(lambda node, kw: kw["defaults"][name])


def _text(validator=None, **kw) -> colander.SchemaNode:
    length = colander.Length(1, MAX_STRING)
    validator = length if validator is None else colander.All(length, validator)
    return colander.SchemaNode(StrictString(), validator=validator, **kw)


def _between(low: int, high: int) -> colander.Range:
    message = f"must be from {low} to {high}, got ${{val}}"
    return colander.Range(low, high, min_err=message, max_err=message)


def _count(name: str) -> colander.SchemaNode:
    return colander.SchemaNode(
        StrictInteger(), name=name, missing=1, validator=_between(1, MAX_COUNT)
    )


class CountsInOrder:
    """min_count <= max_count: a rule across two parameters."""

    def __call__(self, node, value):
        if value["min_count"] > value["max_count"]:
            error = colander.Invalid(node)
            error["min_count"] = f"must not be greater than max_count ({value['max_count']})"
            raise error

    def json_schema(self) -> dict[str, Any]:
        return {"description": "min_count must not be greater than max_count."}


class AlternativesInRegion:
    """Every fallback placement is in the request's region: a retry by client token looks
    for the first attempt's instances in that one region."""

    def __call__(self, node, value):
        if not value.get("fallback") or not _placement_is_zone(node):
            return  # off EC2, a placement is the cloud's location name: no region in it
        region = region_of(value["placement"])
        for index, alternative in enumerate(value.get("fallback") or ()):
            if alternative.placement and region_of(alternative.placement) != region:
                error = colander.Invalid(node)
                error["fallback"] = (
                    f"item {index}: placement {alternative.placement} is not in the "
                    f"request's region {region}"
                )
                raise error

    def json_schema(self) -> dict[str, Any]:
        return {"description": "Every fallback placement is in the region of placement."}


class EveryRule:
    """Rules across parameters, each naming the parameters it faults: all of them reported."""

    def __init__(self, *rules):
        self.rules = rules

    def __call__(self, node, value):
        children = []
        for rule in self.rules:
            try:
                rule(node, value)
            except colander.Invalid as exc:
                children.extend(exc.children)
        if children:
            error = colander.Invalid(node)  # made only when needed: it costs microseconds
            error.children.extend(children)
            raise error

    def json_schema(self) -> dict[str, Any]:
        return {"description": " ".join(rule.json_schema()["description"] for rule in self.rules)}


class LaunchSchema(colander.MappingSchema):
    """The parameters of PUT /v1/launch: the seed's table, with its defaults and types."""

    ami = colander.SchemaNode(StrictString(), validator=_image_id_validator)
    instance_type = _text()
    min_count = _count("min_count")
    max_count = _count("max_count")
    key_name = _text(
        missing=_default("key_name"), deployment_default="launchprov.defaults.key_name"
    )
    security_groups = colander.SchemaNode(
        StringList(MAX_SECURITY_GROUPS, MAX_STRING),
        missing=_default("security_groups"),
        deployment_default="launchprov.defaults.security_groups",
    )
    user_data = colander.SchemaNode(
        StrictString(allow_empty=True, free_text=True),
        missing=None,
        validator=MaxUtf8Bytes(MAX_USER_DATA_BYTES),
    )
    placement = colander.SchemaNode(
        StrictString(),
        missing=_default("placement"),
        validator=_placement_validator,
        deployment_default="launchprov.defaults.placement",
    )
    placement_group = _text(missing=None)
    instance_initiated_shutdown_behavior = colander.SchemaNode(
        StrictString(), missing="terminate", validator=colander.OneOf(["stop", "terminate"])
    )
    ebs_optimized = colander.SchemaNode(StrictBoolean(), missing=False)
    expires_in = colander.SchemaNode(
        StrictInteger(), missing=None, validator=_between(1, MAX_EXPIRES_IN)
    )
    tags = colander.SchemaNode(
        TagMap(reserved=(SYSTEM_TAG_PREFIX,)), missing=colander.deferred(lambda node, kw: {})
    )
    client_token = colander.SchemaNode(
        StrictString(),
        missing=None,
        validator=colander.Regex(
            CLIENT_TOKEN, msg="1 to 64 printable ASCII characters (EC2's rule)"
        ),
    )
    # Beyond the seed: launching into a VPC, as a real account does.
    subnet_id = colander.SchemaNode(
        StrictString(),
        missing=None,
        validator=colander.Regex(SUBNET_ID, msg="expected 'subnet-' and 8 or 17 hex digits"),
    )
    iam_instance_profile = colander.SchemaNode(
        StrictString(),
        missing=None,
        validator=colander.Regex(
            INSTANCE_PROFILE,
            msg="expected an instance profile's name or its ARN "
            "(arn:aws:iam::ACCOUNT:instance-profile/NAME)",
        ),
    )
    root_volume_size = colander.SchemaNode(
        StrictInteger(), missing=None, validator=_between(1, MAX_VOLUME_SIZE)
    )
    root_volume_type = colander.SchemaNode(
        StrictString(), missing=None, validator=colander.OneOf(VOLUME_TYPES)
    )
    metadata_tokens = colander.SchemaNode(
        StrictString(),
        missing=_default("metadata_tokens"),
        validator=colander.OneOf(METADATA_TOKENS),
    )
    spot = colander.SchemaNode(StrictBoolean(), missing=False)
    fallback = colander.SchemaNode(AlternativeList(), missing=())

    def __init__(self, *args, **kw):
        kw.setdefault("validator", EveryRule(CountsInOrder(), AlternativesInRegion()))
        super().__init__(*args, **kw)


@colander.deferred
def _instance_ids_validator(node, kw):
    pattern = kw.get("instance_id_pattern") or GENERIC_INSTANCE_ID
    return EachItem(colander.Regex(pattern, msg="not an instance id of this provider"))


_region = colander.Regex(rf"\A{REGION_PATTERN}\Z", msg="expected a region name such as us-east-1")


_region_node = colander.SchemaNode(
    StrictString(),
    name="region",
    validator=_region,
    missing=colander.deferred(lambda node, kw: region_or_name(kw["defaults"]["placement"])),
    deployment_default="launchprov.defaults.placement",
)


class InstanceQuerySchema(colander.MappingSchema):
    """The query string of GET /v1/instances."""

    id = colander.SchemaNode(
        StringList(MAX_FILTER_VALUES, MAX_STRING), missing=(), validator=_instance_ids_validator
    )
    state = colander.SchemaNode(
        StringList(len(STATES), MAX_STRING),
        missing=(),
        validator=EachItem(colander.OneOf(STATES)),
    )
    tags = colander.SchemaNode(TagMap(several_values=True), missing={})
    limit = colander.SchemaNode(
        StrictInteger(), missing=DEFAULT_LIST_LIMIT, validator=_between(1, MAX_LIST_LIMIT)
    )
    next = colander.SchemaNode(
        StrictString(), missing=None, validator=colander.Length(1, MAX_PAGE_TOKEN)
    )
    region = _region_node.clone()
    expired = colander.SchemaNode(
        StrictBoolean(),
        missing=None,
        description="true: only the instances whose lease has ended; false: the others "
        "(leases that run, and no lease).",
    )
    duplicate = colander.SchemaNode(
        StrictBoolean(),
        missing=None,
        description="true: only the duplicates a client-token retry found beyond its "
        "max_count (tagged launchprov:duplicate-of with the id of the launch's first "
        "instance); false: the others.",
    )


class ExpirySchema(colander.MappingSchema):
    """The parameters of PUT /v1/instances/{id}/expiry: a new lease, from now."""

    expires_in = colander.SchemaNode(StrictInteger(), validator=_between(1, MAX_EXPIRES_IN))
    region = _region_node.clone()


class InstanceTargetSchema(colander.MappingSchema):
    """The query string of the routes of one instance: which region it lives in."""

    region = _region_node.clone()


def errors_by_name(schema: colander.SchemaNode, error: colander.Invalid) -> dict[str, str]:
    """Flatten a colander error to ``{parameter name: description}`` in schema order."""
    flat = error.asdict()
    order = {child.name: index for index, child in enumerate(schema.children)}
    return dict(sorted(flat.items(), key=lambda item: order.get(item[0], len(order))))


def _fold_tags(values: dict[str, Any]) -> dict[str, Any]:
    """Text input: gather the ``tag:KEY`` parameters into one ``tags`` parameter."""
    tags = {
        key[len(TAG_PREFIX) :]: value for key, value in values.items() if key.startswith(TAG_PREFIX)
    }
    if not tags or "tags" in values:
        return values
    folded = {key: value for key, value in values.items() if not key.startswith(TAG_PREFIX)}
    folded["tags"] = tags
    return folded


def deserialize(schema: colander.SchemaNode, params: Params) -> tuple[dict[str, Any], set[str]]:
    """Validate ``params`` with a bound schema: (values, names the caller gave).

    Raises InvalidParameters naming every unknown, missing or invalid parameter at once.
    """
    known = {child.name for child in schema.children}
    values = _fold_tags(params.values) if params.textual and "tags" in known else params.values
    problems = {name: "unknown parameter" for name in values if name not in known}
    given = {name: value for name, value in values.items() if name in known}
    appstruct = None
    try:
        appstruct = schema.deserialize(given)
    except colander.Invalid as error:
        problems.update(errors_by_name(schema, error))
    if problems:
        details = [detail(params.location, name, text) for name, text in problems.items()]
        raise InvalidParameters(f"invalid or missing parameters: {', '.join(problems)}", details)
    return appstruct, set(given)


_BEYOND_SEED = frozenset(BEYOND_SEED)


def _without(schema: colander.SchemaNode, names) -> colander.SchemaNode:
    """A copy of a bound mapping schema without the children called ``names``."""
    copy = schema.clone()
    copy.children = [child for child in copy.children if child.name not in names]
    return copy


class Listing(NamedTuple):
    """What GET /v1/instances asks: the provider's query, and the filters launchprov applies
    itself (None: not given)."""

    query: InstanceQuery
    expired: bool | None
    duplicate: bool | None


class Validators:
    """Every schema, bound once at startup for this deployment's defaults and provider."""

    def __init__(self, defaults: Mapping[str, Any], provider):
        bindings = {
            "defaults": dict(defaults),
            "image_id_pattern": provider.image_id_pattern,
            "placement_is_zone": getattr(provider, "placement_is_zone", True),
            "instance_id_pattern": provider.instance_id_pattern,
        }
        self.instance_id_pattern = provider.instance_id_pattern or GENERIC_INSTANCE_ID
        self.launch_schemas = {
            textual: LaunchSchema().bind(textual=textual, **bindings) for textual in (False, True)
        }
        # A launch that gives none of the parameters beyond the seed's (most launches) is
        # validated by the seed's nodes alone, and the others take their defaults: a colander
        # node costs some microseconds even for a parameter that is absent, and the seed's
        # launch should cost what it did before they existed.
        self.seed_launch_schemas = {
            textual: _without(schema, BEYOND_SEED)
            for textual, schema in self.launch_schemas.items()
        }
        self.beyond_seed_defaults = {
            child.name: child.missing
            for child in self.launch_schemas[False].children
            if child.name in BEYOND_SEED
        }
        self.query_schema = InstanceQuerySchema().bind(textual=True, **bindings)
        self.target_schema = InstanceTargetSchema().bind(textual=True, **bindings)
        self.expiry_schemas = {
            textual: ExpirySchema().bind(textual=textual, **bindings) for textual in (False, True)
        }

    def launch(self, params: Params, idempotency_key: str | None = None) -> LaunchRequest:
        """The LaunchRequest of a request; ``idempotency_key`` is its Idempotency-Key header,
        a synonym of the client_token parameter."""
        if _BEYOND_SEED.isdisjoint(params.values):
            values, given = deserialize(self.seed_launch_schemas[params.textual], params)
            values.update(self.beyond_seed_defaults)
        else:
            values, given = deserialize(self.launch_schemas[params.textual], params)
        if idempotency_key is not None:
            problem = None
            if not CLIENT_TOKEN.match(idempotency_key):
                problem = "1 to 64 printable ASCII characters (EC2's rule)"
            elif values["client_token"] not in (None, idempotency_key):
                problem = "differs from the client_token parameter; give one, or the same"
            if problem:
                detail_ = detail("header", IDEMPOTENCY_KEY, problem)
                raise InvalidParameters(f"invalid {IDEMPOTENCY_KEY}: {problem}", [detail_])
            values["client_token"] = idempotency_key
            given.add("client_token")
        return LaunchRequest(**values, explicit=frozenset(given))

    def instance_query(self, params: Params) -> InstanceQuery:
        return self.instance_listing(params)[0]

    def instance_listing(self, params: Params) -> Listing:
        """The query of GET /v1/instances, and its ``expired`` and ``duplicate`` filters
        (None: not given)."""
        values, _ = deserialize(self.query_schema, params)
        query = InstanceQuery(
            region=values["region"],
            ids=values["id"],
            states=values["state"],
            tags=values["tags"],
            limit=values["limit"],
            page_token=values["next"],
        )
        return Listing(query, values["expired"], values["duplicate"])

    def expiry(self, instance_id: str, params: Params) -> tuple[str, str, int]:
        """(instance id, region, expires_in) of PUT /v1/instances/{id}/expiry."""
        values = self._about_one(instance_id, self.expiry_schemas[params.textual], params)
        return instance_id, values["region"], values["expires_in"]

    def instance_target(self, instance_id: str, params: Params) -> tuple[str, str]:
        """(instance id, region) of a request about one instance."""
        return instance_id, self._about_one(instance_id, self.target_schema, params)["region"]

    def _about_one(self, instance_id: str, schema, params: Params) -> dict[str, Any]:
        """The values of a request about one instance; every bad one, the id too, named."""
        details = []
        if not self.instance_id_pattern.match(instance_id):
            details.append(detail("path", "id", "not an instance id of this provider"))
        values = None
        try:
            values, _ = deserialize(schema, params)
        except InvalidParameters as error:
            details += error.details
        if details:
            names = ", ".join(item["name"] for item in details)
            raise InvalidParameters(f"invalid or missing parameters: {names}", details)
        return values
