"""The launch schema: the seed's parameters, defaults and types, strictly, in JSON and as text."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from launchprov.errors import InvalidParameters
from launchprov.params import Params
from launchprov.providers.ec2_common import IMAGE_ID, INSTANCE_ID
from launchprov.providers.interface import LaunchRequest
from launchprov.schemas import MAX_USER_DATA_BYTES, Validators

SEED_DEFAULTS = {
    "key_name": "scalacity_dev1",
    "security_groups": ("SSH",),
    "placement": "us-east-1b",
    "metadata_tokens": "required",
}
REQUIRED = {"ami": "ami-760aaa0f", "instance_type": "t2.micro"}


class LaunchValidator:
    """The launch validation of :class:`Validators` for a provider with this AMI format."""

    def __init__(self, defaults, image_id_pattern, instance_id_pattern=INSTANCE_ID):
        provider = SimpleNamespace(
            image_id_pattern=image_id_pattern, instance_id_pattern=instance_id_pattern
        )
        self.validators = Validators(defaults, provider)

    def validate(self, params):
        return self.validators.launch(params)


@pytest.fixture
def validator():
    return LaunchValidator(SEED_DEFAULTS, IMAGE_ID)


def json_params(**values) -> Params:
    return Params("body", False, values)


def text_params(location="body", **values) -> Params:
    return Params(location, True, {k: v if isinstance(v, list) else [v] for k, v in values.items()})


def problems(validator, params) -> dict[str, str]:
    with pytest.raises(InvalidParameters) as raised:
        validator.validate(params)
    return {item["name"]: item["description"] for item in raised.value.details}


# -- defaults ---------------------------------------------------------------------------------


def test_only_required_gives_the_seed_defaults(validator):
    request = validator.validate(json_params(**REQUIRED))
    assert request == LaunchRequest(
        ami="ami-760aaa0f",
        instance_type="t2.micro",
        min_count=1,
        max_count=1,
        key_name="scalacity_dev1",
        security_groups=("SSH",),
        user_data=None,
        placement="us-east-1b",
        placement_group=None,
        instance_initiated_shutdown_behavior="terminate",
        ebs_optimized=False,
        tags={},
        explicit=frozenset({"ami", "instance_type"}),
    )


def test_deployment_defaults_replace_the_seed_defaults():
    defaults = {
        "key_name": "ops",
        "security_groups": ("web", "ssh"),
        "placement": "eu-west-1a",
        "metadata_tokens": "optional",
    }
    request = LaunchValidator(defaults, IMAGE_ID).validate(json_params(**REQUIRED))
    assert (request.key_name, request.security_groups, request.placement) == (
        "ops",
        ("web", "ssh"),
        "eu-west-1a",
    )
    assert request.metadata_tokens == "optional"
    assert request.region == "eu-west-1"


def test_every_parameter_given_in_json(validator):
    request = validator.validate(
        json_params(
            **REQUIRED,
            min_count=2,
            max_count=5,
            key_name="k",
            security_groups=["a", "sg-0123456789abcdef0"],
            user_data="#!/bin/sh\necho hi\n",
            placement="us-west-2-lax-1a",
            placement_group="pg",
            instance_initiated_shutdown_behavior="stop",
            ebs_optimized=True,
        )
    )
    assert request.min_count == 2 and request.max_count == 5
    assert request.security_groups == ("a", "sg-0123456789abcdef0")
    assert request.user_data == "#!/bin/sh\necho hi\n"
    assert request.region == "us-west-2"
    assert request.placement_group == "pg"
    assert request.instance_initiated_shutdown_behavior == "stop"
    assert request.ebs_optimized is True
    assert len(request.explicit) == 11


# -- required and unknown ---------------------------------------------------------------------


def test_missing_required_are_all_named(validator):
    assert problems(validator, json_params()) == {"ami": "Required", "instance_type": "Required"}


def test_unknown_parameters_are_named_with_the_other_problems(validator):
    found = problems(validator, json_params(ami="ami-760aaa0f", instancetype="t2.micro"))
    assert found == {"instancetype": "unknown parameter", "instance_type": "Required"}


def test_unknown_parameter_alone_is_rejected(validator):
    found = problems(validator, text_params(**REQUIRED, flavour="x"))
    assert found == {"flavour": "unknown parameter"}


# -- strict JSON types ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("min_count", 3.7, "expected an integer, got number"),
        ("min_count", 3.5e0, "expected an integer, got number"),
        ("min_count", True, "expected an integer, got boolean"),
        ("min_count", "3", "expected an integer, got string"),
        ("min_count", {}, "expected an integer, got object"),
        ("max_count", [], "expected an integer, got array"),
        ("min_count", None, "null is not allowed; leave the parameter out to use its default"),
        ("ebs_optimized", "yes", "expected a boolean, got string"),
        ("ebs_optimized", 1, "expected a boolean, got number"),
        ("ebs_optimized", None, "null is not allowed; leave the parameter out to use its default"),
        ("key_name", None, "null is not allowed; leave the parameter out to use its default"),
        ("key_name", "", "must not be empty"),
        ("key_name", 7, "expected a string, got number"),
        ("key_name", ["k"], "expected a string, got array"),
        ("key_name", "k" * 256, "Longer than maximum length 255"),
        ("key_name", "a\x00b", "NUL characters are not allowed"),
        ("security_groups", "SSH", "expected an array of strings, got string"),
        ("security_groups", [], "must hold at least one name"),
        ("security_groups", ["SSH", ""], "item 1: must not be empty"),
        ("security_groups", ["SSH", 3], "item 1: expected a string, got number"),
        (
            "security_groups",
            None,
            "null is not allowed; leave the parameter out to use its default",
        ),
        ("user_data", 5, "expected a string, got number"),
        ("user_data", None, "null is not allowed; leave the parameter out to use its default"),
        ("placement", "us-east-1", "expected an availability-zone name such as us-east-1b"),
        ("placement", "somewhere", "expected an availability-zone name such as us-east-1b"),
        ("placement_group", "", "must not be empty"),
        (
            "placement_group",
            None,
            "null is not allowed; leave the parameter out to use its default",
        ),
        (
            "instance_initiated_shutdown_behavior",
            "hibernate",
            '"hibernate" is not one of stop, terminate',
        ),
    ],
)
def test_json_values_of_the_wrong_type_or_shape(validator, name, value, expected):
    assert problems(validator, json_params(**REQUIRED, **{name: value})) == {name: expected}


@pytest.mark.parametrize(
    ("name", "value"),
    [("min_count", 0), ("min_count", 1001), ("max_count", -1), ("max_count", 10**12)],
)
def test_counts_are_from_1_to_1000(validator, name, value):
    found = problems(validator, json_params(**REQUIRED, **{name: value}))
    assert list(found) == [name]
    assert "1" in found[name] and "1000" in found[name]


def test_an_integral_number_is_an_integer_as_json_schema_says(validator):
    request = validator.validate(json_params(**REQUIRED, min_count=2.0, max_count=3e0))
    assert (request.min_count, request.max_count) == (2, 3)
    assert type(request.min_count) is int


def test_min_count_above_max_count(validator):
    found = problems(validator, json_params(**REQUIRED, min_count=3, max_count=2))
    assert found == {"min_count": "must not be greater than max_count (2)"}


def test_every_invalid_parameter_is_named_not_only_the_first(validator):
    found = problems(
        validator,
        json_params(ami="nope", instance_type="", min_count="1", ebs_optimized=None, typo=1),
    )
    assert set(found) == {"typo", "ami", "instance_type", "min_count", "ebs_optimized"}


# -- the AMI format ---------------------------------------------------------------------------


@pytest.mark.parametrize("ami", ["ami-0123abcd", "ami-0123456789abcdef0"])
def test_ec2_ami_ids_of_8_or_17_hex_digits(validator, ami):
    assert validator.validate(json_params(ami=ami, instance_type="t2.micro")).ami == ami


@pytest.mark.parametrize(
    "ami", ["ami-123", "ami-0123ABCD", "ami-0123456789", "image-0123abcd", "ami-0123abcg", ""]
)
def test_malformed_ami_ids(validator, ami):
    found = problems(validator, json_params(ami=ami, instance_type="t2.micro"))
    assert list(found) == ["ami"]


def test_a_provider_without_an_ami_format_takes_any_image_id():
    validator = LaunchValidator(SEED_DEFAULTS, None)
    assert validator.validate(json_params(ami="2", instance_type="small")).ami == "2"


# -- user data --------------------------------------------------------------------------------


def test_user_data_limit_counts_utf8_bytes(validator):
    at_limit = "é" * (MAX_USER_DATA_BYTES // 2)  # 2 bytes each
    assert validator.validate(json_params(**REQUIRED, user_data=at_limit)).user_data == at_limit
    found = problems(validator, json_params(**REQUIRED, user_data=at_limit + "x"))
    assert found == {
        "user_data": f"is {MAX_USER_DATA_BYTES + 1} bytes once UTF-8 encoded; at most 16384"
    }


def test_empty_user_data_means_none(validator):
    assert validator.validate(json_params(**REQUIRED, user_data="")).user_data == ""


# -- form and query-string text ---------------------------------------------------------------


def test_text_values_are_parsed(validator):
    request = validator.validate(
        text_params(
            **REQUIRED,
            min_count="2",
            max_count=" 3 ",
            ebs_optimized="Yes",
            security_groups=["a,b", " c "],
        )
    )
    assert (request.min_count, request.max_count, request.ebs_optimized) == (2, 3, True)
    assert request.security_groups == ("a", "b", "c")


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("1", True), ("yes", True), ("FALSE", False), ("0", False), ("no", False)],
)
def test_text_booleans(validator, text, value):
    assert validator.validate(text_params(**REQUIRED, ebs_optimized=text)).ebs_optimized is value


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("min_count", "3.7", "expected an integer, got '3.7'"),
        ("min_count", "", "expected an integer, got ''"),
        ("min_count", "three", "expected an integer, got 'three'"),
        ("ebs_optimized", "maybe", "expected one of true, false, 1, 0, yes, no"),
        ("key_name", "", "must not be empty"),
        ("key_name", ["a", "b"], "given 2 times; give it once"),
        ("security_groups", "a,,b", "item 1: must not be empty"),
        ("security_groups", "", "item 0: must not be empty"),
    ],
)
def test_text_values_that_do_not_parse(validator, name, value, expected):
    assert problems(validator, text_params(**REQUIRED, **{name: value})) == {name: expected}


def test_details_carry_the_location(validator):
    with pytest.raises(InvalidParameters) as raised:
        validator.validate(text_params(location="querystring", ami="ami-760aaa0f"))
    assert raised.value.details == [
        {"location": "querystring", "name": "instance_type", "description": "Required"}
    ]


@pytest.mark.parametrize("make", [json_params, text_params])
def test_a_seed_launch_is_validated_as_the_whole_schema_would(validator, make):
    """A launch with none of the parameters beyond the seed's takes the seed's nodes alone (the
    others' defaults filled in): the same LaunchRequest as the whole schema gives."""
    from launchprov.schemas import deserialize

    if make is json_params:
        params = make(**REQUIRED, min_count=2, max_count=3, tags={"a": "b"})
    else:
        params = make(**REQUIRED, max_count="3")
    whole, given = deserialize(validator.validators.launch_schemas[params.textual], params)
    assert validator.validate(params) == LaunchRequest(**whole, explicit=frozenset(given))
    assert validator.validate(params).metadata_tokens == "required"


# -- identifiers refuse what cannot be seen -------------------------------------------------------


def test_the_invisible_table_covers_this_pythons_unicode_data():
    import sys
    import unicodedata

    from launchprov import schemas

    covered = {code for low, high in schemas._INVISIBLE_RANGES for code in range(low, high + 1)}
    invisible = {
        code
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in schemas.INVISIBLE_CATEGORIES
    }
    missing = sorted(invisible - covered)
    assert not missing, f"add to _INVISIBLE_RANGES: {[f'U+{code:04X}' for code in missing]}"


def test_the_document_pattern_and_the_check_agree():
    import re

    from launchprov import schemas

    pattern = re.compile(schemas.VISIBLE)
    for low, high in schemas._INVISIBLE_RANGES:
        for code in {low, high}:
            assert not pattern.match(f"a{chr(code)}b")
            assert schemas._INVISIBLE.search(chr(code))
    assert pattern.match("t2.micro") and pattern.match("clé é")


# -- every string of every schema, nested ones too, refuses what cannot be seen ---------------

#: One character of each category an identifier refuses: Cc (BEL, a C0 separator, NEL),
#: Cf (right-to-left override, zero-width space), Zl, Zp.
INVISIBLE = ("\x07", "\x1f", "\x85", "\u202e", "\u200b", "\u2028", "\u2029")
#: A valid value of every string-holding parameter of every schema: a new one must be added here.
VALID = {
    "launch": {
        **REQUIRED,
        "key_name": "ops",
        "security_groups": ["SSH", "web"],
        "user_data": "#!/bin/sh\n",
        "placement": "us-east-1b",
        "placement_group": "cluster",
        "instance_initiated_shutdown_behavior": "stop",
        "tags": {"role": "web"},
        "client_token": "token-1",
        "subnet_id": "subnet-12345678",
        "iam_instance_profile": "web",
        "root_volume_type": "gp3",
        "metadata_tokens": "optional",
        "fallback": [
            {"instance_type": "t3.micro", "placement": "us-east-1c", "subnet_id": "subnet-87654321"}
        ],
    },
    "query": {
        "id": ["i-12345678"],
        "state": ["running"],
        "tags": {"role": "web"},
        "next": "token",
        "region": "us-east-1",
    },
    "expiry": {"expires_in": 60, "region": "us-east-1"},
    "target": {"region": "us-east-1"},
}
#: The free text parameters: what they hold is never an identifier (a script).
FREE_TEXT = {("launch", "user_data")}
KEY, VALUE = "<key>", "<value>"


def bound_schemas(validators) -> dict:
    return {
        "launch": validators.launch_schemas[False],
        "query": validators.query_schema,
        "expiry": validators.expiry_schemas[False],
        "target": validators.target_schema,
    }


def string_places(document: dict, path: tuple = ()):
    """Every place of a JSON Schema that holds a string: property, item, key or value."""
    if document.get("type") == "string":
        yield path
    if document.get("type") == "array":
        yield from string_places(document["items"], (*path, 0))
    if document.get("type") == "object":
        for name, inner in document.get("properties", {}).items():
            yield from string_places(inner, (*path, name))
        if "propertyNames" in document:
            yield (*path, KEY)
        if isinstance(document.get("additionalProperties"), dict):
            yield from string_places(document["additionalProperties"], (*path, VALUE))


def every_string_place():
    validators = LaunchValidator(SEED_DEFAULTS, IMAGE_ID).validators
    for schema_name, schema in bound_schemas(validators).items():
        for child in schema.children:
            for path in string_places(child.typ.json_schema(), (child.name,)):
                yield schema_name, path


STRING_PLACES = sorted(set(every_string_place()), key=str)


def test_the_walk_finds_the_nested_places():
    places = set(STRING_PLACES)
    assert ("launch", ("fallback", 0, "instance_type")) in places
    assert ("launch", ("tags", KEY)) in places and ("launch", ("tags", VALUE)) in places
    assert ("query", ("id", 0)) in places and ("expiry", ("region",)) in places


def with_char(values: dict, path: tuple, char: str) -> dict:
    """A deep copy of ``values`` with ``char`` appended to the string at ``path``."""
    values = json.loads(json.dumps(values))
    *outer, last = path
    holder = values
    for step in outer:
        holder = holder[step]
    if last == KEY:
        holder.update({f"{key}{char}": holder.pop(key) for key in list(holder)})
    elif last == VALUE:
        holder.update({key: f"{value}{char}" for key, value in holder.items()})
    else:
        holder[last] = f"{holder[last]}{char}"
    return values


def as_text(values: dict) -> dict[str, list[str]]:
    """``values`` as a form body or a query string gives them."""
    text: dict[str, list[str]] = {}
    for name, value in values.items():
        if name == "tags":
            text.update({f"tag:{key}": [item] for key, item in value.items()})
        elif name == "fallback":
            text[name] = [json.dumps(value)]
        else:
            text[name] = list(value) if isinstance(value, list) else [str(value)]
    return text


def validate(validators, schema_name: str, params: Params):
    if schema_name == "launch":
        return validators.launch(params)
    if schema_name == "query":
        return validators.instance_listing(params)
    if schema_name == "expiry":
        return validators.expiry("i-12345678", params)
    return validators.instance_target("i-12345678", params)


@pytest.mark.parametrize(
    ("schema_name", "path"),
    STRING_PLACES,
    ids=[f"{name}:{'.'.join(map(str, path))}" for name, path in STRING_PLACES],
)
def test_every_string_refuses_control_format_and_separator_characters(schema_name, path):
    validators = LaunchValidator(SEED_DEFAULTS, IMAGE_ID).validators
    base = VALID[schema_name]
    assert path[0] in base, f"teach VALID a value of {schema_name} {path[0]}"
    forms = {"querystring": True} if schema_name in ("query", "target") else {}
    forms = forms or {"body": False, "body ": True}
    for location, textual in forms.items():
        values = base if not textual else as_text(base)
        validate(validators, schema_name, Params(location.strip(), textual, values))  # valid
    if (schema_name, path[0]) in FREE_TEXT:
        return
    for char in INVISIBLE:
        bad = with_char(base, path, char)
        for location, textual in forms.items():
            params = Params(location.strip(), textual, as_text(bad) if textual else bad)
            with pytest.raises(InvalidParameters) as raised:
                validate(validators, schema_name, params)
            named = {item["name"]: item["description"] for item in raised.value.details}
            assert list(named) == [path[0]], (char, location, named)
            assert "control or format characters" in named[path[0]], (char, named)
            assert f"U+{ord(char):04X}" in named[path[0]]


@pytest.mark.parametrize("char", INVISIBLE)
def test_an_instance_id_in_the_path_refuses_them_too(char):
    for pattern in (INSTANCE_ID, None):  # EC2's ids, and a provider's of no fixed format
        validators = LaunchValidator(SEED_DEFAULTS, IMAGE_ID, pattern).validators
        with pytest.raises(InvalidParameters) as raised:
            validators.instance_target(f"i-12345678{char}", Params("querystring", True, {}))
        assert [(item["location"], item["name"]) for item in raised.value.details] == [
            ("path", "id")
        ]


# -- integers and regions in text: ASCII digits only -----------------------------------------

#: Two in Arabic-Indic, Devanagari, fullwidth and mathematical bold digits: each is \d to Python.
OTHER_TWOS = ("\u0662", "\u0968", "\uff12", "\U0001d7d0")


@pytest.mark.parametrize("two", OTHER_TWOS)
def test_form_and_query_integers_take_ascii_digits_only(validator, two):
    assert problems(validator, text_params(**REQUIRED, min_count=two, max_count="2")) == {
        "min_count": f"expected an integer, got {two!r}"
    }
    validators = validator.validators
    for location, call in (
        ("querystring", lambda p: validators.instance_listing(p)),
        ("body", lambda p: validators.expiry("i-12345678", p)),
    ):
        name = "limit" if location == "querystring" else "expires_in"
        with pytest.raises(InvalidParameters) as raised:
            call(Params(location, True, {name: [f"1{two}"]}))
        assert [item["name"] for item in raised.value.details] == [name]
    assert (
        validator.validate(text_params(**REQUIRED, min_count=" 2 ", max_count="2")).min_count == 2
    )


@pytest.mark.parametrize("two", OTHER_TWOS)
def test_a_region_takes_ascii_digits_only(validator, two):
    with pytest.raises(InvalidParameters) as raised:
        validator.validators.instance_listing(
            Params("querystring", True, {"region": [f"us-east-{two}"]})
        )
    assert [item["name"] for item in raised.value.details] == ["region"]
    assert problems(validator, json_params(**REQUIRED, placement=f"us-east-{two}b")) == {
        "placement": "expected an availability-zone name such as us-east-1b"
    }
