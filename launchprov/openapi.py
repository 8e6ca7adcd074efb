"""The OpenAPI 3.1 document, generated from the same bound colander schemas that validate.

:func:`json_schema` turns a colander node into JSON Schema (draft 2020-12, OpenAPI 3.1's
dialect): the strict types of :mod:`launchprov.schemas` describe themselves, and the
validators are read for their limits (Length, Range, OneOf, Regex, All, and launchprov's own,
which carry a ``json_schema()``). A validator it cannot describe is an error, so a rule can
never be enforced without being documented. :func:`build_document` assembles the routes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import colander

from launchprov.providers.interface import STATES
from launchprov.routes import ROUTES, Operation
from launchprov.schemas import (
    CLIENT_TOKEN,
    IDEMPOTENCY_KEY,
    REQUEST_ID,
    REQUEST_ID_HEADER,
    TAG_PREFIX,
    VISIBLE_CHARACTER,
    EachItem,
    Validators,
)

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"


#: The extension that carries a deployment's default (setting and value) for tools that want
#: it, such as the docs; generators ignore it, as they must.
DEPLOYMENT_DEFAULT = "x-deployment-default"


# -- colander -> JSON Schema ------------------------------------------------------------------


def _pattern(regex: re.Pattern) -> str:
    """A Python pattern anchored with \\A and \\Z, spelt for JSON Schema (ECMA 262)."""
    pattern = regex.pattern.replace("\\A", "^").replace("\\Z", "$")
    # Named groups are spelt differently in every dialect: none is needed to match.
    return re.sub(r"\(\?P<\w+>", "(?:", pattern)


def _tighter(schema: dict[str, Any], key: str, value, pick) -> None:
    schema[key] = pick(schema[key], value) if key in schema else value


def _apply(schema: dict[str, Any], validator) -> None:
    """Add what ``validator`` checks to ``schema``."""
    if validator is None:
        return
    if isinstance(validator, colander.All):
        for inner in validator.validators:
            _apply(schema, inner)
    elif isinstance(validator, colander.Length):
        low, high = (
            ("minItems", "maxItems")
            if schema["type"] == "array"
            else (
                "minLength",
                "maxLength",
            )
        )
        if validator.min is not None:
            _tighter(schema, low, validator.min, max)
        if validator.max is not None:
            _tighter(schema, high, validator.max, min)
    elif isinstance(validator, colander.Range):
        if validator.min is not None:
            _tighter(schema, "minimum", validator.min, max)
        if validator.max is not None:
            _tighter(schema, "maximum", validator.max, min)
    elif isinstance(validator, colander.OneOf):
        schema["enum"] = list(validator.choices)
    elif isinstance(validator, colander.Regex):
        # Every launchprov pattern already excludes NUL, which replaces the type's NUL rule.
        schema["pattern"] = _pattern(validator.match_object)
    elif isinstance(validator, EachItem):
        _apply(schema["items"], validator.validator)
    elif hasattr(validator, "json_schema"):
        for key, value in validator.json_schema().items():
            if key == "maxLength":
                _tighter(schema, key, value, min)
            elif key == "description" and "description" in schema:
                schema[key] = f"{schema[key]} {value}"
            else:
                schema[key] = value
    else:
        raise TypeError(f"cannot describe validator {validator!r} in JSON Schema")


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value


def json_schema(node: colander.SchemaNode) -> dict[str, Any]:
    """The JSON Schema of a bound colander node (a mapping, or a launchprov strict type)."""
    if isinstance(node.typ, colander.Mapping):
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {child.name: json_schema(child) for child in node.children},
            "additionalProperties": False,
        }
        required = [child.name for child in node.children if child.required]
        if required:
            schema["required"] = required
    else:
        schema = node.typ.json_schema()
    _apply(schema, node.validator)
    missing = node.missing
    setting = getattr(node, "deployment_default", None)
    if node.description:
        schema["description"] = node.description
    if setting is not None:
        # In words, not as "default": a client generated from this document would send this
        # deployment's value to every other.
        value = _jsonable(missing) if missing != "" else None
        shown = ", ".join(value) if isinstance(value, list) else value
        if value is None and node.name == "region":
            words = f"the provider's own region ({setting} is not set here)"
        elif value is None:
            words = f"none is sent and the cloud chooses ({setting} is not set here)"
        elif node.name == "region":
            words = f"the region of the deployment's {setting} (here {shown})"
        else:
            words = f"the deployment's {setting} (here {shown})"
        schema["description"] = f"{schema.get('description', '')} When absent: {words}.".strip()
        schema[DEPLOYMENT_DEFAULT] = {"setting": setting, "value": value}
    # An absent list filter is "no filter", not an empty list: it has no default to show.
    elif missing not in (colander.required, colander.drop, colander.null, None, ()):
        schema["default"] = _jsonable(missing)
    return schema


# -- the document -----------------------------------------------------------------------------

_NULLABLE_STRING = {"type": ["string", "null"]}

INSTANCE = {
    "type": "object",
    "description": "An instance as every provider describes it; null where it does not know.",
    "properties": {
        "id": {"type": "string"},
        "state": {"type": "string", "enum": list(STATES)},
        "instance_type": _NULLABLE_STRING,
        "ami": _NULLABLE_STRING,
        "placement": _NULLABLE_STRING,
        "key_name": _NULLABLE_STRING,
        "security_groups": {"type": "array", "items": {"type": "string"}},
        "private_ip": _NULLABLE_STRING,
        "public_ip": _NULLABLE_STRING,
        "private_dns": _NULLABLE_STRING,
        "public_dns": _NULLABLE_STRING,
        "launch_time": {"type": ["string", "null"], "format": "date-time"},
        "expires_at": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "When the instance's lease ends (tag launchprov:expires-at; "
            "launchprov-reap terminates it after), or null without a lease.",
        },
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        "subnet_id": _NULLABLE_STRING,
        "iam_instance_profile": {
            **_NULLABLE_STRING,
            "description": "As the provider reports it (EC2: the instance profile's ARN).",
        },
        "spot": {"type": ["boolean", "null"]},
        "metadata_tokens": {"enum": ["required", "optional", None]},
    },
    "additionalProperties": False,
}
INSTANCE["required"] = list(INSTANCE["properties"])

PREFLIGHT = {
    "type": "object",
    "properties": {
        "would_launch": {"type": "boolean", "description": "Every check passed."},
        "checks": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "ok": {"type": "boolean"},
                    "code": {
                        "type": ["string", "null"],
                        "description": "The provider's error code, where the check failed.",
                    },
                    "message": {"type": ["string", "null"]},
                },
                "required": ["name", "ok", "code", "message"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["would_launch", "checks"],
    "additionalProperties": False,
}

ERROR_DETAIL = {
    "type": "object",
    "description": "What is wrong: where (body, querystring, header, path), which name, what.",
    "properties": {
        "location": {"type": "string"},
        "name": {"type": "string"},
        "description": {"type": "string"},
    },
    "required": ["location", "name", "description"],
    "additionalProperties": False,
}

ERROR = {
    "type": "object",
    "description": "The body of every non-2xx answer.",
    "properties": {
        "status": {"type": "integer", "description": "The HTTP status, repeated."},
        "error": {"type": "string", "description": "The HTTP reason phrase."},
        "message": {"type": "string"},
        "details": {"type": "array", "items": {"$ref": "#/components/schemas/ErrorDetail"}},
        "request_id": {"type": ["string", "null"]},
    },
    "required": ["status", "error", "message", "details", "request_id"],
    # Open (no additionalProperties: false) so that ProviderError can extend it with allOf.
}

#: What the provider said, in the body of a 408.
PROVIDER_FAILURE = {
    "type": "object",
    "description": "The provider's own answer: its code, its message, whether a retry can help.",
    "properties": {
        "name": {"type": "string"},
        "code": {"type": "string"},
        "message": {"type": "string"},
        "retryable": {"type": "boolean"},
        "outcome": {
            "enum": ["none", "unknown", "partial"],
            "description": "Whether the failed call may have changed something at the "
            "provider: none (it cannot have: it only reads, the provider refused it, or it "
            "never reached the provider), unknown (it timed out or lost its connection after "
            "it was sent: a launch may have started instances, a terminate, stop, start or "
            "reboot may have happened, and sending the same action again is safe), or partial "
            "(a launch of one create call per instance stopped at the request deadline: the "
            "instances it created are named in details, each kept and tagged; one create sent "
            "before the deadline may still add one). An unknown or partial launch is "
            "retryable only with a client_token.",
        },
    },
    "required": ["name", "code", "message", "retryable", "outcome"],
    "additionalProperties": False,
}

PROVIDER_ERROR = {
    "description": "The error body of a 408: the error body, with what the provider said.",
    "allOf": [
        {"$ref": "#/components/schemas/Error"},
        {
            "type": "object",
            "properties": {"provider": {"$ref": "#/components/schemas/ProviderFailure"}},
            "required": ["provider"],
        },
    ],
}

#: A known path asked with a method it does not serve: no operation of the document, so the
#: answer is described once here (and in the document's description).
METHOD_NOT_ALLOWED = {
    "description": "The path does not serve this method; Allow lists those it does.",
    "headers": {
        "Allow": {"description": "The methods the path serves.", "schema": {"type": "string"}},
    },
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}

_WHY = {
    400: "A parameter is missing or invalid; details name every one.",
    401: "No valid bearer token (when launchprov.auth.enabled): see WWW-Authenticate.",
    403: "A policy rule (launchprov.policy.*) forbids the request: a launch guardrail, or "
    "launchprov.policy.act_on for an instance the caller may see but not act on; details name "
    "it.",
    404: "No such instance, or one the caller may not see (launchprov.policy.see): both answers "
    "are the same, so that an instance's existence is not revealed (or no such route).",
    405: "The path does not serve this method; Allow lists those it does.",
    408: "The provider failed: an error reply, a refused or hung connection, or a reply that "
    "could not be parsed. Expected for valid data that the provider refuses, such as an AMI "
    "that does not exist.",
    409: "The instance's state forbids the action, a client_token was used before with "
    "other parameters, or (a lease) the instance was not launched through launchprov.",
    413: "The body is larger than launchprov.max_body_size.",
    415: "The body is neither JSON nor a form.",
    429: "The caller exceeded one of its rate limits (launchprov.ratelimit.*), or its client "
    "address failed to authenticate too often (launchprov.auth.failure_limit: refused whatever "
    "the token); no provider call was made. Retry-After says when to retry.",
    501: "The provider cannot perform this action at all.",
    503: "Every provider slot of the process stayed taken for "
    "launchprov.provider_queue_timeout: nothing was sent to the provider; retry after "
    "Retry-After. On /readyz: the provider cannot be reached.",
}

#: Why no operation lists a 500, in the document's own words.
UNEXPECTED_ERROR = (
    "No request, however malformed, is answered 500: bad input is a 4xx naming what is wrong "
    "and a provider failure a 408. A 500 (the Error body, never a traceback) means a bug in "
    "the service, which it has logged with the request id; report it."
)

#: What every route about one instance says of ownership.
OWNERSHIP_NOTE = (
    "An instance the caller may not see (launchprov.policy.see: own, launchprov or all) is a "
    "404, as if it did not exist; one it may see but not act on (launchprov.policy.act_on) is "
    "a 403 naming the rule. With authentication off, every caller reaches every instance."
)

REQUEST_ID_PARAMETER = {
    "name": REQUEST_ID_HEADER,
    "in": "header",
    "required": False,
    "description": "The caller's request id, echoed in the answer, its logs and the tags of "
    "launched instances; made when absent.",
    "schema": {"type": "string", "pattern": _pattern(REQUEST_ID)},
}

IDEMPOTENCY_KEY_PARAMETER = {
    "name": IDEMPOTENCY_KEY,
    "in": "header",
    "required": False,
    "description": "A synonym of the client_token parameter (give one, or the same in both).",
    "schema": {"type": "string", "pattern": _pattern(CLIENT_TOKEN)},
}

_REQUEST_ID_HEADER = {
    REQUEST_ID_HEADER: {"description": "The request's id.", "schema": {"type": "string"}}
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


_RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying: on a 503, and on a 408 when "
        "provider.retryable is true.",
        "schema": {"type": "integer"},
    }
}


#: The IETF draft's headers, on every answer of a route limited for its caller.
RATELIMIT_HEADERS = {
    "RateLimit-Limit": {
        "description": "Requests the limit closest to being reached allows in its window "
        "(only when a launchprov.ratelimit.* limit applies to the caller).",
        "schema": {"type": "integer"},
    },
    "RateLimit-Remaining": {
        "description": "Requests left in that window.",
        "schema": {"type": "integer"},
    },
    "RateLimit-Reset": {
        "description": "Seconds until the window lets another request through.",
        "schema": {"type": "integer"},
    },
    "RateLimit-Policy": {
        "description": "That limit as AMOUNT;w=WINDOW-SECONDS.",
        "schema": {"type": "string"},
    },
}

RATELIMIT_READINESS = {
    "type": "object",
    "description": "The rate limits: enabled, and whether their storage answers. An unreachable "
    "storage does not make the process unready: the limits fail open.",
    "properties": {
        "enabled": {"type": "boolean"},
        "storage": {"enum": ["ok", "unreachable"]},
        "failing_open": {"type": "boolean"},
    },
    "required": ["enabled"],
}


def _responses(ok: dict[str, Any], *statuses: int) -> dict[str, Any]:
    """The answers of an API operation: ``ok``, ``statuses``, and 400, 401 and 429 (and 503
    where the provider is called: 408 is among ``statuses``).

    No operation lists 500: it is no answer of the API but the trace of a bug (see
    ``UNEXPECTED_ERROR``, in the document's description)."""
    responses = {"200": {**ok, "headers": {**_REQUEST_ID_HEADER, **RATELIMIT_HEADERS}}}
    if 408 in statuses:  # the routes that call the provider may find every slot taken
        statuses = (*statuses, 503)
    for status in sorted({*statuses, 400, 401, 429}):
        ref = "ProviderError" if status == 408 else "Error"
        headers = dict(_REQUEST_ID_HEADER)
        if status in (408, 503):
            headers.update(_RETRY_AFTER_HEADER)
        if status == 429:
            headers.update(RATELIMIT_HEADERS)
            headers["Retry-After"] = {
                "description": "Seconds until the limit lets this caller through again.",
                "schema": {"type": "integer"},
            }
        if status == 401:
            headers["WWW-Authenticate"] = {"description": "Bearer", "schema": {"type": "string"}}
        responses[str(status)] = {
            "description": _WHY[status],
            "headers": headers,
            **_json({"$ref": f"#/components/schemas/{ref}"}),
        }
    return responses


def _tag_parameter(node: colander.SchemaNode) -> dict[str, Any]:
    """``tag:KEY=VALUE`` parameters as one exploded form object whose names start with tag:."""
    tags = json_schema(node)
    names = dict(tags["propertyNames"])
    names["pattern"] = f"^{TAG_PREFIX}{VISIBLE_CHARACTER}*$"
    names["maxLength"] += len(TAG_PREFIX)
    names["minLength"] += len(TAG_PREFIX)
    names.pop("not", None)  # the reserved prefixes are said in words
    return {
        "name": "tags",
        "in": "query",
        "required": False,
        "style": "form",
        "explode": True,
        "description": f"Tags as {TAG_PREFIX}KEY=VALUE parameters: each member of this object "
        f"is one (its name starts with {TAG_PREFIX}), for example {TAG_PREFIX}role=web.",
        "schema": {
            "type": "object",
            "propertyNames": names,
            "additionalProperties": tags["additionalProperties"],
            "maxProperties": tags["maxProperties"],
        },
    }


def _query_parameters(schema: colander.SchemaNode) -> list[dict[str, Any]]:
    parameters = []
    for child in schema.children:
        if child.name == "tags":
            parameters.append(_tag_parameter(child))
            continue
        child_schema = json_schema(child)
        parameter = {"name": child.name, "in": "query", "required": False, "schema": child_schema}
        if child_schema.get("type") == "array":
            parameter.update(style="form", explode=True)
        parameters.append(parameter)
    return parameters


def _instance_id(validators: Validators) -> dict[str, Any]:
    pattern = _pattern(validators.instance_id_pattern)
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": pattern},
    }


def _launch_parameters(validators: Validators) -> dict[str, Any]:
    launch_schema = json_schema(validators.launch_schemas[False])
    launch_schema["description"] = (
        "The parameters of a launch: the seed's table, with this deployment's defaults. "
        "A form body or the query string may carry the same parameters as text (lists by "
        f"repeating the key or with commas; tags as {TAG_PREFIX}KEY=VALUE). "
        + launch_schema.get("description", "")
    ).strip()
    return {
        "parameters": [
            REQUEST_ID_PARAMETER,
            IDEMPOTENCY_KEY_PARAMETER,
            *_without_defaults(_query_parameters(validators.launch_schemas[True])),
        ],
        "requestBody": {
            # Or the query string: parameters come from one place, never both.
            "required": False,
            "description": "The parameters as a JSON object, or as a form (lists by repeating "
            f"the key, tags as {TAG_PREFIX}KEY=VALUE). Without a body, the query string carries "
            "them instead; a request with both is refused.",
            "content": {
                "application/json": {"schema": launch_schema},
                "application/x-www-form-urlencoded": {"schema": _form_schema(launch_schema)},
            },
        },
    }


def _without_defaults(parameters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Query parameters whose defaults are said in words: a generated client sends a parameter
    with a default on every call, and a launch with a body must have no query string."""
    for parameter in parameters:
        schema = parameter["schema"]
        if "default" in schema:
            default = json.dumps(schema.pop("default"))
            schema["description"] = f"{schema.get('description', '')} When absent: {default}."
            schema["description"] = schema["description"].strip()
    return parameters


def _form_schema(launch_schema: dict[str, Any]) -> dict[str, Any]:
    """The launch parameters as a form: tags are tag:KEY=VALUE fields, not one ``tags`` field."""
    form = {key: value for key, value in launch_schema.items() if key != "additionalProperties"}
    properties = dict(launch_schema["properties"])
    tags = properties.pop("tags")
    form["properties"] = properties
    form["patternProperties"] = {
        f"^{TAG_PREFIX}{VISIBLE_CHARACTER}+$": tags["additionalProperties"]
    }
    form["additionalProperties"] = False
    return form


def _listing_parameters(validators: Validators) -> dict[str, Any]:
    return {
        "parameters": [*_query_parameters(validators.query_schema), REQUEST_ID_PARAMETER],
        "description": "Only the instances the caller may see "
        "(launchprov.policy.see: own, launchprov or all). "
        "Filters combine with AND; the values of one filter with OR. "
        f"Tags filter as {TAG_PREFIX}KEY=VALUE parameters (for example {TAG_PREFIX}role=web). "
        "expired and duplicate are applied by launchprov as each page is read. "
        "next is the token of the previous page.",
    }


def _target_parameters(validators: Validators) -> dict[str, Any]:
    return {
        "parameters": [
            _instance_id(validators),
            *_query_parameters(validators.target_schema),
            REQUEST_ID_PARAMETER,
        ],
        "description": OWNERSHIP_NOTE,
    }


def _expiry_parameters(validators: Validators) -> dict[str, Any]:
    return {
        "parameters": [_instance_id(validators), REQUEST_ID_PARAMETER],
        "requestBody": {
            "required": True,
            **_json(json_schema(validators.expiry_schemas[False])),
        },
        "description": OWNERSHIP_NOTE,
    }


#: What an operation reads (routes.Operation.params) -> its parameters and request body, made
#: from the bound schemas.
PARAMETERS: dict[str, Callable[[Validators], dict[str, Any]]] = {
    "launch": _launch_parameters,
    "query": _listing_parameters,
    "target": _target_parameters,
    "expiry": _expiry_parameters,
}

_INSTANCE_REF = {"$ref": "#/components/schemas/Instance"}

#: An operation's 200 answer (routes.Operation.answer): its description and content.
ANSWERS: dict[str, dict[str, Any]] = {
    "ids": {
        "description": "The ids of the launched instances.",
        **_json({"type": "array", "items": {"type": "string"}, "minItems": 1}),
    },
    "page": {
        "description": "One page of instances.",
        **_json(
            {
                "type": "object",
                "properties": {
                    "instances": {"type": "array", "items": _INSTANCE_REF},
                    "next": {"type": ["string", "null"]},
                },
                "required": ["instances", "next"],
                "additionalProperties": False,
            }
        ),
    },
    "instance": {"description": "The instance.", **_json(_INSTANCE_REF)},
    "alive": {
        "description": "Alive.",
        **_json(
            {"type": "object", "properties": {"status": {"const": "ok"}}, "required": ["status"]}
        ),
    },
    "ready": {
        "description": "The provider answered.",
        **_json(
            {
                "type": "object",
                "properties": {
                    "status": {"const": "ready"},
                    "provider": {"type": "string"},
                    "slots": {
                        "type": "object",
                        "description": "The provider slots of the process: the limit now "
                        "(every waitress thread while the provider answers), the base "
                        "kept while it stalls (launchprov.provider_concurrency), in use, "
                        "requests waiting, and seconds the provider has stalled (calls in "
                        "progress, none answered).",
                        "properties": {
                            "limit": {"type": "integer"},
                            "base": {"type": "integer"},
                            "in_use": {"type": "integer"},
                            "waiting": {"type": "integer"},
                            "stalled_for": {"type": "number"},
                        },
                        "required": ["limit", "base", "in_use", "waiting", "stalled_for"],
                    },
                    "ratelimit": RATELIMIT_READINESS,
                    "startup_checks": {
                        "type": "object",
                        "description": "What launchprov-check's checks found at startup "
                        "(launchprov.startup_checks): off, running, ok, failed (each failure "
                        "named) or broken (they could not run). The process stays ready.",
                        "properties": {
                            "state": {
                                "enum": ["off", "running", "ok", "failed", "broken"],
                            },
                            "failed": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "check": {"type": "string"},
                                        "why": {"type": "string"},
                                    },
                                    "required": ["check", "why"],
                                },
                            },
                        },
                        "required": ["state", "failed"],
                    },
                },
                "required": ["status", "provider", "slots", "startup_checks"],
            }
        ),
    },
    "metrics": {
        "description": "The metrics.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
    "document": {"description": "The OpenAPI document.", **_json({"type": "object"})},
    "preflight": {"description": "Every check, named.", **_json(PREFLIGHT)},
    "index": {
        "description": "Where to go next.",
        **_json(
            {
                "type": "object",
                "properties": {
                    "service": {"const": "launchprov"},
                    "openapi": {"type": "string", "description": "The path of this document."},
                    "docs": {"type": "string", "description": "Where the documentation is."},
                },
                "required": ["service", "openapi", "docs"],
            }
        ),
    },
}


def _open_responses(operation: Operation) -> dict[str, Any]:
    """The answers of an operation open to every caller: its 200 and its own statuses."""
    responses = {"200": ANSWERS[operation.answer]}
    for status in operation.statuses:
        responses[str(status)] = {
            "description": _WHY[status],
            **_json({"$ref": "#/components/schemas/Error"}),
        }
    return responses


_ALTERNATIVES = re.compile(r"\{(\w+):([\w|-]+)\}")


def expand(pattern: str) -> list[tuple[str, dict[str, str]]]:
    """The OpenAPI paths of a route pattern, each with the values its alternatives took.

    ``/v1/instances/{id}/{action:stop|start}`` -> ``/v1/instances/{id}/stop`` with
    ``{"action": "stop"}``, and ``/v1/instances/{id}/start`` with ``{"action": "start"}``.
    """
    match = _ALTERNATIVES.search(pattern)
    if match is None:
        return [(pattern, {})]
    name, alternatives = match.groups()
    expanded = []
    for value in alternatives.split("|"):
        path = pattern[: match.start()] + value + pattern[match.end() :]
        expanded += [(full, {name: value, **values}) for full, values in expand(path)]
    return expanded


def _operation(route: Operation, values: dict[str, str], validators: Validators) -> dict:
    names = {**values, **{name.capitalize(): value.capitalize() for name, value in values.items()}}
    operation: dict[str, Any] = {
        "operationId": route.operation_id.format(**names),
        "summary": route.summary.format(**names),
    }
    if route.open:
        operation["security"] = []
    inputs = PARAMETERS[route.params](validators) if route.params else {}
    description = " ".join(filter(None, (route.description, inputs.pop("description", ""))))
    if description:
        operation["description"] = description
    operation.update(inputs)
    if route.open:
        operation["responses"] = _open_responses(route)
    else:
        operation["responses"] = _responses(ANSWERS[route.answer], *route.statuses)
    return operation


def build_paths(validators: Validators) -> dict[str, Any]:
    """Every path of :data:`launchprov.routes.ROUTES`, with its operations."""
    paths: dict[str, Any] = {}
    for route in ROUTES.values():
        for path, values in expand(route.pattern):
            operations = paths.setdefault(path, {})
            for operation in route.operations:
                operations[operation.method.lower()] = _operation(operation, values, validators)
    return paths


def build_document(
    validators: Validators,
    provider_name: str,
    auth_enabled: bool = True,
    metrics_token: bool = False,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route, for this deployment's provider, defaults and
    authentication (with it off, no operation requires a token and none answers 401; with
    ``metrics_token``, GET /metrics requires one of launchprov.metrics.tokens)."""
    paths = build_paths(validators)
    document = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "launchprov",
            "version": API_VERSION,
            "description": "Internal REST API to launch and manage cloud instances. "
            f"This deployment's provider: {provider_name}. {UNEXPECTED_ERROR} A known path "
            "asked with a method it does not serve answers 405 "
            "(components.responses.MethodNotAllowed). Defaults that depend on the deployment "
            "(launchprov.defaults.*) are described in words, not as default values: leave those "
            "parameters out to get them.",
        },
        # Relative: the server that served this document.
        "servers": [{"url": "/"}],
        # Every operation but the probes, the metrics and this document (security: []).
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": {
                "Instance": INSTANCE,
                "Error": ERROR,
                "ErrorDetail": ERROR_DETAIL,
                "ProviderError": PROVIDER_ERROR,
                "ProviderFailure": PROVIDER_FAILURE,
            },
            "responses": {"MethodNotAllowed": METHOD_NOT_ALLOWED},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "One token per calling service (launchprov-token CALLER). "
                    "Not required when the deployment sets launchprov.auth.enabled = false. "
                    "GET /metrics takes a scraper's token of launchprov.metrics.tokens instead, "
                    "when the deployment sets them.",
                }
            },
        },
    }
    if not auth_enabled:
        del document["security"]
        for operations in paths.values():
            for operation in operations.values():
                operation["responses"].pop("401", None)
                operation.pop("security", None)
    if metrics_token:
        scrape = paths[ROUTES["metrics"].pattern]["get"]
        scrape["security"] = [{"bearer": []}]
        scrape["responses"]["401"] = _responses({})["401"]
    elif not auth_enabled:
        del document["components"]["securitySchemes"]
    return document
