"""Sphinx extension: launchprov's reference pages, generated from the code at build time.

Nothing here restates the code: the API reference is the OpenAPI document that the service
serves (``launchprov.openapi.build_document``), the configuration reference is
``launchprov.settings.SETTINGS``, the providers' tables are the adapters' own tables, and the
boto3 mapping is found by calling ``run_instances_params``. A change in the code changes the
pages; a change that the pages cannot follow stops the build.

Directives
    ``launchprov-api``                   every route and schema of the OpenAPI document
    ``launchprov-routes``                one table of every route
    ``launchprov-api-providers``         what in the document depends on the provider
    ``launchprov-settings``              every ``launchprov.*`` setting (and patterned keys)
    ``launchprov-parameter-matrix``      every launch parameter on every provider
    ``launchprov-ec2-mapping``           the boto3 adapter's RunInstances arguments
    ``launchprov-libcloud-parameters``   one libcloud parameter table (the argument names it)
    ``launchprov-states``                the state vocabulary and what each state forbids
    ``launchprov-state-map``             an adapter's state table (``ec2`` or ``libcloud``)
    ``launchprov-actions``               how each action reaches each provider
    ``launchprov-provider-codes``        the codes of a provider failure
    ``launchprov-metrics``               the Prometheus metrics
    ``launchprov-log-fields``            the fields of a JSON log line
    ``launchprov-ini``                   one section of an .ini file, with its comments
    ``launchprov-ini-compare``           the ``launchprov.*`` keys of .ini files side by side

Roles
    ``:launchprov-setting:`key```        the key, checked, linked to its row
    ``:launchprov-env:`key```            its environment variable
    ``:launchprov-default:`key```        its default
    ``:launchprov-const:`module.NAME```  the value of a constant of launchprov
    ``:launchprov-ini:`file section key``` a value of an .ini file of the repository
    ``:launchprov-ec2-call-bound:`x```   how long a boto3 call may take with the defaults

The build also writes the OpenAPI document to ``openapi.json`` in the HTML output, and checks
the seed's parameter and answer tables (in the root document) against the document.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import os
import re
import types
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

#: The provider of the documented deployment: launchprov.provider's default.
DEFAULT_PROVIDER = "ec2"

#: Provider kinds whose OpenAPI documents differ: (label, adapter name, EC2 id formats?).
PROVIDER_KINDS = {
    "ec2": ("ec2 (boto3)", "ec2", True),
    "libcloud-ec2": ("libcloud, ec2 driver", "libcloud", True),
    "libcloud-other": ("libcloud, any other driver", "libcloud", False),
}

#: Schema keywords that are shown elsewhere than in the rules column (or mean nothing there).
_NOT_RULES = frozenset(
    {
        "type",
        "description",
        "default",
        "x-deployment-default",
        "properties",
        "required",
        "$ref",
        "title",
        "examples",
        "items",
        "additionalProperties",
    }
)


class Unavailable(ExtensionError):
    """The code cannot give what a page needs: the build stops with the reason."""


# -- what the code says -------------------------------------------------------------------------


def _settings_module():
    from launchprov import settings

    return settings


@functools.cache
def default_settings() -> dict[str, Any]:
    """Every setting parsed from its default alone, as ``main()`` would parse an empty .ini."""
    return _settings_module().load({}, environ={})


def _defaults(kind: str = DEFAULT_PROVIDER) -> dict[str, Any]:
    """The launch defaults of a deployment of ``kind`` with default settings, keyed as
    ``Validators`` binds them: the seed's on EC2, none (the cloud's own) elsewhere."""
    from launchprov.providers.ec2_common import SEED_DEFAULTS

    ec2_ids = PROVIDER_KINDS[kind][2]
    return _settings_module().launch_defaults(
        default_settings(), SEED_DEFAULTS if ec2_ids else None
    )


def provider_stand_in(kind: str) -> types.SimpleNamespace:
    """What ``Validators`` and ``build_document`` read of a provider, with no SDK or network."""
    from launchprov.providers.ec2_common import IMAGE_ID, INSTANCE_ID

    _, name, ec2_ids = PROVIDER_KINDS[kind]
    stand_in = types.SimpleNamespace(
        name=name,
        image_id_pattern=IMAGE_ID if ec2_ids else None,
        instance_id_pattern=INSTANCE_ID if ec2_ids else None,
    )
    if kind == "ec2":  # the adapter declares these on its class: they must agree
        from launchprov.providers.ec2 import EC2Provider

        for attribute, value in vars(stand_in).items():
            real = getattr(EC2Provider, attribute, value)
            if real != value:
                raise Unavailable(
                    f"launchprov-docs: EC2Provider.{attribute} is {real!r}, the pages "
                    f"assume {value!r}: update provider_stand_in()"
                )
    return stand_in


@functools.cache
def openapi_document(kind: str = DEFAULT_PROVIDER) -> dict[str, Any]:
    """The OpenAPI document that a deployment of ``kind`` with default settings serves."""
    from launchprov.openapi import build_document
    from launchprov.schemas import Validators

    provider = provider_stand_in(kind)
    try:
        document = build_document(Validators(_defaults(kind), provider), provider.name)
        json.dumps(document)  # what the service does with it
    except Exception as exc:
        raise Unavailable(
            f"launchprov-docs: cannot build the OpenAPI document ({kind}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return document


def launch_schema(document: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON Schema of the launch parameters in ``document``."""
    try:
        body = document["paths"]["/v1/launch"]["put"]["requestBody"]
        return body["content"]["application/json"]["schema"]
    except KeyError as exc:
        raise Unavailable(f"launchprov-docs: PUT /v1/launch has no JSON body: {exc}") from None


def launch_parameters() -> list[str]:
    """The names of the launch parameters, in the API's order."""
    return list(launch_schema(openapi_document())["properties"])


def _source_files() -> list[str]:
    import launchprov

    package = Path(launchprov.__file__).parent
    return [__file__, *sorted(str(path) for path in package.rglob("*.py"))]


def _reset(app: Sphinx) -> None:
    """Forget what an earlier build in this process computed, and check the code now."""
    default_settings.cache_clear()
    openapi_document.cache_clear()
    setting_rows.cache_clear()
    try:
        default_settings()
    except Exception as exc:
        raise Unavailable(
            f"launchprov-docs: the settings' defaults do not load: {type(exc).__name__}: {exc}"
        ) from exc
    setting_rows()
    for kind in PROVIDER_KINDS:
        openapi_document(kind)


# -- docutils building blocks -------------------------------------------------------------------

Inline = str | nodes.Node
Cell = Inline | list[Inline] | None


def lit(text: Any) -> nodes.literal:
    text = str(text)
    return nodes.literal(text, text)


def _json_literal(value: Any) -> nodes.literal:
    return lit(json.dumps(value, ensure_ascii=False))


def _inlines(content: Cell) -> list[nodes.Node]:
    if content is None:
        return []
    if isinstance(content, str | nodes.Node):
        content = [content]
    return [nodes.Text(item) if isinstance(item, str) else item for item in content]


def para(content: Cell) -> nodes.paragraph:
    paragraph = nodes.paragraph()
    paragraph.extend(_inlines(content))
    return paragraph


def joined(items: Iterable[Cell], separator: str = ", ") -> list[nodes.Node]:
    out: list[nodes.Node] = []
    for index, item in enumerate(items):
        if index:
            out.append(nodes.Text(separator))
        out.extend(_inlines(item))
    return out


def table(
    headers: list[str], rows: Iterable[list[Cell]], widths: list[int] | None = None, name=""
) -> nodes.table:
    """A table of inline content; every cell a paragraph (or empty)."""
    result = nodes.table(classes=["launchprov", *([name] if name else [])])
    group = nodes.tgroup(cols=len(headers))
    result += group
    for width in widths or [1] * len(headers):
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    head += _row(headers)
    group += head
    body = nodes.tbody()
    for cells in rows:
        if len(cells) != len(headers):
            raise Unavailable(f"launchprov-docs: a row of {len(cells)} cells for {headers}")
        body += _row(cells)
    group += body
    return result


def _row(cells: list[Cell]) -> nodes.row:
    row = nodes.row()
    for cell in cells:
        entry = nodes.entry()
        if cell is not None and cell != []:
            entry += para(cell)
        row += entry
    return row


def xref(objtype: str, target: str, content: nodes.Node) -> addnodes.pending_xref:
    """A link to an object noted with :func:`note_object` (on any page)."""
    ref = addnodes.pending_xref(
        "", refdomain="std", reftype=objtype, reftarget=target, refexplicit=True, refwarn=True
    )
    ref += content
    return ref


def _words(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


class LaunchprovDirective(SphinxDirective):
    """A directive whose output depends on launchprov's code: re-read when the code changes."""

    def run(self) -> list[nodes.Node]:
        for path in _source_files():
            self.env.note_dependency(path)
        return self.render()

    def render(self) -> list[nodes.Node]:
        raise NotImplementedError

    def section(self, title: str, title_nodes: list[nodes.Node] | None = None) -> nodes.section:
        """A section with an id of its own, which Sphinx's tables of contents list."""
        section = nodes.section()
        section += nodes.title(title, "", *(title_nodes or [nodes.Text(title)]))
        section["names"].append(nodes.fully_normalize_name(title))
        self.state.document.note_implicit_target(section, section)
        return section

    def note_object(self, objtype: str, name: str, node: nodes.Element) -> str:
        """Register ``node`` as the target of ``name`` (an ``objtype``) and return its id."""
        node_id = f"{objtype}-{_words(name)}"
        if node_id in self.state.document.ids:
            node_id = f"{node_id}-{len(self.state.document.ids)}"
        node["ids"].append(node_id)
        self.state.document.ids[node_id] = node
        self.env.get_domain("std").note_object(objtype, name, node_id, location=node)
        return node_id


# -- JSON Schema, in words ----------------------------------------------------------------------


def _no_nul_pattern() -> str | None:
    from launchprov import schemas

    return getattr(schemas, "NO_NUL", None)


def _visible_pattern() -> str | None:
    from launchprov import schemas

    return getattr(schemas, "VISIBLE", None)


def _visible_character() -> str | None:
    from launchprov import schemas

    return getattr(schemas, "VISIBLE_CHARACTER", None)


def schema_type(schema: Mapping[str, Any]) -> list[Inline]:
    """The type of a schema in words: ``string``, ``array of string``, a link to a component."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return [xref("schema", name, lit(name))]
    kind = schema.get("type")
    if isinstance(kind, list):
        return joined(kind, " or ")
    if kind == "array":
        return ["array of ", *schema_type(schema.get("items", {}))]
    if kind == "object" and isinstance(schema.get("additionalProperties"), Mapping):
        return ["object of ", *schema_type(schema["additionalProperties"])]
    if kind is not None:
        return [str(kind)]
    for combinator in ("oneOf", "anyOf"):
        if combinator in schema:
            return joined((schema_type(item) for item in schema[combinator]), " or ")
    values = schema.get("enum") or ([schema["const"]] if "const" in schema else [])
    if values:
        return [_json_type(values[0])]
    return ["any"]


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _bounds(low, high, unit: str, plural: str) -> str | None:
    if low is None and high is None:
        return None
    noun = unit if (high if high is not None else low) == 1 else plural
    if low is not None and high is not None:
        return f"{low} {unit}" if low == high else f"{low} to {high} {noun}"
    return f"at least {low} {noun}" if high is None else f"at most {high} {noun}"


def schema_rules(schema: Mapping[str, Any]) -> list[list[Inline]]:
    """Every constraint of a schema, one phrase each (unknown keywords shown as they are)."""
    phrases: list[list[Inline]] = []
    handled = set(_NOT_RULES)

    def bounded(low_key, high_key, unit, plural):
        handled.update((low_key, high_key))
        text = _bounds(schema.get(low_key), schema.get(high_key), unit, plural)
        if text:
            phrases.append([text])

    bounded("minLength", "maxLength", "character", "characters")
    bounded("minItems", "maxItems", "item", "items")
    bounded("minProperties", "maxProperties", "entry", "entries")
    handled.update(("minimum", "maximum"))
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        phrases.append([f"from {low} to {high}"])
    elif low is not None:
        phrases.append([f"at least {low}"])
    elif high is not None:
        phrases.append([f"at most {high}"])
    if "enum" in schema:
        handled.add("enum")
        phrases.append(["one of ", *joined(_json_literal(value) for value in schema["enum"])])
    if "const" in schema:
        handled.add("const")
        phrases.append(["always ", _json_literal(schema["const"])])
    if "pattern" in schema:
        handled.add("pattern")
        if schema["pattern"] == _no_nul_pattern():
            phrases.append(["no NUL character"])
        elif schema["pattern"] == _visible_pattern():
            phrases.append(["no control or format character (Unicode Cc, Cf, Zl, Zp)"])
        elif _visible_pattern() and _visible_character() in schema["pattern"]:
            shown = schema["pattern"].replace(_visible_character(), "[visible]")
            phrases.append(["matches ", lit(shown), " ([visible]: no control or format character)"])
        else:
            phrases.append(["matches ", lit(schema["pattern"])])
    if "format" in schema:
        handled.add("format")
        phrases.append(["format ", lit(schema["format"])])
    if isinstance(schema.get("not"), Mapping) and set(schema["not"]) == {"pattern"}:
        handled.add("not")
        phrases.append(["does not match ", lit(schema["not"]["pattern"])])
    if "propertyNames" in schema:
        handled.add("propertyNames")
        inner = schema_rules(schema["propertyNames"])
        if inner:
            phrases.append(["keys: ", *joined(inner, ", ")])
    for key, label in (("items", "each item"), ("additionalProperties", "each value")):
        inner_schema = schema.get(key)
        if isinstance(inner_schema, Mapping) and "$ref" not in inner_schema:
            inner = schema_rules(inner_schema)
            if inner:
                phrases.append([f"{label}: ", *joined(inner, ", ")])
    for key in schema:
        if key not in handled and key not in ("style", "explode"):
            phrases.append([lit(f"{key}: {json.dumps(schema[key])}")])
    return phrases


def rules_cell(schema: Mapping[str, Any], description: str | None = None) -> list:
    cell: list[Inline] = joined(schema_rules(schema), "; ")
    text = " ".join(part for part in (schema.get("description"), description) if part)
    if text:
        cell += [". ", text] if cell else [text]
    return cell


#: Where the document puts a default that is the deployment's own (a setting), not the API's.
DEPLOYMENT_DEFAULT = "x-deployment-default"


def default_of(schema: Mapping[str, Any]) -> tuple[bool, Any]:
    """(has a default, the default): the API's, or the deployment's (said in words there)."""
    if "default" in schema:
        return True, schema["default"]
    if DEPLOYMENT_DEFAULT in schema:
        return True, schema[DEPLOYMENT_DEFAULT]["value"]
    return False, None


def default_cell(schema: Mapping[str, Any], required: bool) -> Cell:
    if required:
        return "required"
    present, default = default_of(schema)
    if present:
        return _json_literal(default)
    return "(none)"


# -- the API reference --------------------------------------------------------------------------


def _operations(document: Mapping[str, Any]):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, Mapping) and "responses" in operation:
                yield method.upper(), path, operation


def _body_schema(content: Mapping[str, Any] | None) -> tuple[str, Mapping[str, Any]] | None:
    for media_type, value in (content or {}).items():
        return media_type, value.get("schema", {})
    return None


def _inline_object(schema: Mapping[str, Any]) -> list[Inline]:
    properties = schema.get("properties") or {}
    parts = [[lit(name), " (", *schema_type(value), ")"] for name, value in properties.items()]
    return ["object: ", *joined(parts)]


def _security(document: Mapping[str, Any], operation: Mapping[str, Any]) -> Cell:
    """Who may call an operation, from ``security`` (operation's, else the document's)."""
    requirements = operation.get("security", document.get("security"))
    if requirements is None:
        return None
    if not requirements or any(not requirement for requirement in requirements):
        return "open: no credentials needed"
    names = [name for requirement in requirements for name in requirement]
    return ["needs ", *joined(lit(name) for name in names)]


class APIDirective(LaunchprovDirective):
    """The OpenAPI document, in two parts that go in sections of their own.

    ``routes``: every operation (parameters, request body, answers), one subsection each.
    ``schemas``: every component schema, and the security schemes if any.
    """

    required_arguments = 1
    option_spec = {"provider": lambda value: directives.choice(value, tuple(PROVIDER_KINDS))}

    def render(self):
        document = openapi_document(self.options.get("provider", DEFAULT_PROVIDER))
        part = self.arguments[0]
        if part == "routes":
            return self.routes(document)
        if part == "schemas":
            return self.schemas(document)
        raise self.error(f"unknown part {part!r}: use routes or schemas")

    def routes(self, document) -> list[nodes.Node]:
        info = document.get("info", {})
        out: list[nodes.Node] = [
            para(
                [
                    f"OpenAPI {document.get('openapi', '?')} document ",
                    lit(info.get("title", "")),
                    f", API version {info.get('version', '?')}. ",
                    info.get("description", ""),
                ]
            )
        ]
        for method, path, operation in _operations(document):
            out.append(self.operation(document, method, path, operation))
        return out

    def schemas(self, document) -> list[nodes.Node]:
        out: list[nodes.Node] = []
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            section = self.section(name, [lit(name)])
            self.note_object("schema", name, section)
            if schema.get("description"):
                section += para(schema["description"])
            section += table(
                ["Property", "Type", "Required", "Rules"], schema_rows(schema), [22, 18, 10, 50]
            )
            out.append(section)
        schemes = document.get("components", {}).get("securitySchemes", {})
        if schemes:
            section = self.section("Security schemes")
            rows = [
                [lit(name), scheme.get("type"), scheme.get("scheme"), scheme.get("description")]
                for name, scheme in schemes.items()
            ]
            section += table(["Name", "Type", "Scheme", "Description"], rows, [20, 15, 15, 50])
            out.append(section)
        return out

    def operation(self, document, method, path, operation) -> nodes.section:
        title = f"{method} {path}"
        section = self.section(title, [lit(title)])
        self.note_object("route", title, section)
        if operation.get("summary"):
            section += para(nodes.strong(operation["summary"], operation["summary"]))
        if operation.get("description"):
            section += para(operation["description"])
        facts: list[Inline] = ["operationId ", lit(operation.get("operationId", "-"))]
        security = _security(document, operation)
        if security:
            facts += ["; ", *_inlines(security)]
        section += para(facts)

        parameters = operation.get("parameters", [])
        if parameters:
            section += nodes.rubric("", "Parameters")
            rows = [
                [
                    lit(parameter["name"]),
                    parameter.get("in"),
                    default_cell(parameter.get("schema", {}), parameter.get("required", False)),
                    schema_type(parameter.get("schema", {})),
                    rules_cell(parameter.get("schema", {}), parameter.get("description")),
                ]
                for parameter in parameters
            ]
            section += table(
                ["Parameter", "In", "Default", "Type", "Rules"], rows, [20, 9, 14, 14, 43]
            )

        body = operation.get("requestBody")
        if body:
            media_type, schema = _body_schema(body.get("content")) or ("", {})
            section += nodes.rubric("", "Request body")
            types_ = joined(lit(name) for name in body.get("content", {}))
            required = "required" if body.get("required") else "optional"
            section += para(["Media type ", *types_, f" ({required}). "])
            if schema.get("description"):
                section += para(schema["description"])
            required_names = set(schema.get("required", []))
            rows = [
                [
                    lit(name),
                    default_cell(value, name in required_names),
                    schema_type(value),
                    rules_cell(value),
                ]
                for name, value in schema.get("properties", {}).items()
            ]
            if rows:
                section += table(["Parameter", "Default", "Type", "Rules"], rows, [24, 16, 16, 44])
            if schema.get("additionalProperties") is False:
                section += para("Any other parameter is refused (400), by name.")

        section += nodes.rubric("", "Answers")
        rows = []
        for status, response in operation["responses"].items():
            found = _body_schema(response.get("content"))
            if found is None:
                body_cell: list[Inline] = ["(no body)"]
            else:
                media_type, schema = found
                if schema.get("type") == "object" and schema.get("properties"):
                    body_cell = _inline_object(schema)
                else:
                    body_cell = schema_type(schema)
                if media_type != "application/json":
                    body_cell = [lit(media_type), ": ", *body_cell]
            meaning: list[Inline] = [response.get("description", "")]
            headers = list(response.get("headers", {}))
            if headers:
                meaning += [" Headers: ", *joined(lit(name) for name in headers), "."]
            rows.append([lit(status), body_cell, meaning])
        section += table(["Status", "Body", "Meaning"], rows, [8, 32, 60])
        return section


def schema_rows(schema: Mapping[str, Any], prefix: str = "") -> list[list[Cell]]:
    """Rows of a component schema's properties, nested objects flattened with dotted names."""
    rows: list[list[Cell]] = []
    required = set(schema.get("required", []))
    for name, value in (schema.get("properties") or {}).items():
        full = f"{prefix}{name}"
        needed = "yes" if name in required else "no"
        rows.append([lit(full), schema_type(value), needed, rules_cell(value)])
        if value.get("type") == "object" and value.get("properties"):
            rows += schema_rows(value, f"{full}.")
        items = value.get("items") or {}
        if value.get("type") == "array" and items.get("properties"):
            rows += schema_rows(items, f"{full}[].")
    return rows


class RoutesDirective(LaunchprovDirective):
    """One row per operation: method, path (linked to its section), summary, statuses."""

    def render(self):
        rows = []
        for method, path, operation in _operations(openapi_document()):
            title = f"{method} {path}"
            rows.append(
                [
                    xref("route", title, lit(title)),
                    operation.get("summary", ""),
                    joined(lit(status) for status in operation["responses"]),
                ]
            )
        return [table(["Route", "Does", "Answers"], rows, [34, 40, 26])]


class ProviderDifferencesDirective(LaunchprovDirective):
    """Where the documents of the provider kinds differ, found by comparing them."""

    def render(self):
        flat = {kind: _leaves(openapi_document(kind)) for kind in PROVIDER_KINDS}
        places = sorted({place for leaves in flat.values() for place in leaves})
        differing: dict[str, list[tuple[str, ...]]] = {}
        for place in places:
            if place[:1] == ("info",):
                continue  # the provider's name, in words
            values = [flat[kind].get(place) for kind in PROVIDER_KINDS]
            if len({json.dumps(value, sort_keys=True) for value in values}) > 1:
                differing.setdefault(json.dumps(values), []).append(place)
        rows = []
        for values_json, where in differing.items():
            cells: list[Cell] = [joined((_place(place) for place in where), "; ")]
            for value in json.loads(values_json):
                if value is None:
                    cells.append("(absent)")
                else:
                    shown = _readable(value)
                    cells.append(lit(shown) if isinstance(shown, str) else _json_literal(shown))
            rows.append(cells)
        if not rows:
            return [para("The document is the same for every provider.")]
        headers = ["Where in the document", *(label for label, _, _ in PROVIDER_KINDS.values())]
        return [table(headers, rows, [40, 20, 20, 20])]


def _readable(value: Any) -> Any:
    """A pattern with the class of visible characters (control characters in it) in words."""
    visible = _visible_character()
    if isinstance(value, str) and visible and visible in value:
        return value.replace(visible, "[visible]")
    return value


def _leaves(value: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """A nested document as ``{path: leaf}``; list items by their ``name``, else by index."""
    if isinstance(value, Mapping) and value:
        out: dict[tuple[str, ...], Any] = {}
        for key, item in value.items():
            out.update(_leaves(item, (*prefix, str(key))))
        return out
    if isinstance(value, list) and value and all(isinstance(item, Mapping) for item in value):
        out = {}
        for index, item in enumerate(value):
            name = item.get("name") if isinstance(item.get("name"), str) else str(index)
            out.update(_leaves(item, (*prefix, f"[{name}]")))
        return out
    return {prefix: value}


def _place(place: tuple[str, ...]) -> list[Inline]:
    """A place in the OpenAPI document in words: route, parameter, keyword."""
    if len(place) < 3 or place[0] != "paths":
        return [lit(".".join(place))]
    route = f"{place[2].upper()} {place[1]}"
    rest = list(place[3:])
    if rest[:1] == ["parameters"] and len(rest) > 1:
        what: list[Inline] = ["parameter ", lit(rest[1].strip("[]"))]
        rest = rest[2:]
    elif rest[:1] == ["requestBody"] and "properties" in rest:
        at = rest.index("properties")
        what = ["body parameter ", lit(rest[at + 1])] if at + 1 < len(rest) else ["body"]
        rest = rest[at + 2 :]
    else:
        what = []
    if rest and rest[0] == "schema":
        rest = rest[1:]
    out: list[Inline] = [xref("route", route, lit(route))]
    if what:
        out += [", ", *what]
    if rest:
        out += [": ", lit(".".join(rest))]
    return out


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``{"A.B": leaf}`` (lists are leaves): RunInstances arguments."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


# -- the configuration reference ----------------------------------------------------------------

#: How each parser of launchprov.settings reads a value, by the parser's name.
PARSER_WORDS = {
    "text": "non-empty text",
    "optional_text": "text; empty for none",
    "boolean": "true or false (also yes/no, on/off, 1/0)",
    "positive_int": "a whole number, at least 1",
    "optional_positive_int": "a whole number, at least 1; empty for none",
    "optional_port": "a port number, 1 to 65535; empty for the driver's own",
    "positive_float": "a number greater than 0",
    "word_list": "words separated by spaces, commas or new lines; empty for none",
    "non_empty_word_list": "words separated by spaces, commas or new lines; at least one",
    "zone": "an availability-zone name",
    "json_object": "a JSON object; empty for {}",
    "token_lines": "lines of '<caller-name> <sha256 hex digest>'",
}


def parser_words(parse: Callable) -> str:
    name = getattr(parse, "__name__", "")
    if name in PARSER_WORDS:
        return PARSER_WORDS[name]
    doc = (getattr(parse, "__doc__", None) or "").strip()
    if doc:
        return doc.splitlines()[0].rstrip(".")
    return name.replace("_", " ") or "text"


def _group(key: str) -> str:
    parts = key.split(".")
    return f"{'.'.join(parts[:2])}.*" if len(parts) > 2 else "General"


@dataclasses.dataclass(frozen=True)
class SettingRow:
    key: str
    env_var: str | None
    default: str
    meaning: str
    value: str


def patterned_settings() -> list[SettingRow]:
    """Keys with a variable part, as ``launchprov.settings`` declares them (if it does)."""
    module = _settings_module()
    rows = []
    for attribute in ("PATTERNS", "PATTERNED_SETTINGS"):
        for item in getattr(module, attribute, None) or ():
            key = getattr(item, "key", None) or getattr(item, "pattern", None) or str(item)
            rows.append(
                SettingRow(
                    key=key if isinstance(key, str) else getattr(key, "pattern", str(key)),
                    env_var=getattr(item, "env_var", None),
                    default=str(getattr(item, "default", "")),
                    meaning=str(getattr(item, "doc", "")),
                    value=parser_words(item.parse) if hasattr(item, "parse") else "",
                )
            )
    rules = getattr(module, "POLICY_RULES", None)
    regex = getattr(module, "CALLER_POLICY", None)
    if rules and regex is not None:
        for rule in rules:
            sample = f"launchprov.policy.some-caller.{rule}"
            if not regex.match(sample):
                raise Unavailable(f"launchprov-docs: CALLER_POLICY does not match {sample}")
        rows.append(
            SettingRow(
                key="launchprov.policy.<caller>.<rule>",
                env_var=None,
                default="",
                meaning=(
                    "The rule <rule> for one caller only (the name in its "
                    "launchprov.auth.tokens line), in place of launchprov.policy.<rule>. "
                    f"<rule> is one of {', '.join(rules)}; the value is read as that "
                    "rule's. In the .ini only: an environment variable cannot tell a "
                    "caller's name from a rule's."
                ),
                value="as launchprov.policy.<rule>",
            )
        )
    return rows


@functools.cache
def setting_rows() -> list[SettingRow]:
    module = _settings_module()
    rows = []
    for setting in module.SETTINGS:
        try:
            setting.parse(setting.default)
        except ValueError as exc:
            raise Unavailable(
                f"launchprov-docs: the default of {setting.key} does not parse: {exc}"
            ) from None
        rows.append(
            SettingRow(
                key=setting.key,
                env_var=setting.env_var,
                default=setting.default,
                meaning=setting.doc,
                value=parser_words(setting.parse),
            )
        )
    return rows + patterned_settings()


def known_setting(key: str) -> SettingRow | None:
    return next((row for row in setting_rows() if row.key == key), None)


class SettingsDirective(LaunchprovDirective):
    """Every setting: key, environment variable, default and meaning, grouped by prefix."""

    def render(self):
        groups: dict[str, list[SettingRow]] = {}
        for row in setting_rows():
            groups.setdefault(_group(row.key), []).append(row)
        out: list[nodes.Node] = []
        for group, rows in groups.items():
            out.append(nodes.rubric("", group))
            cells = []
            for row in rows:
                target = nodes.inline()
                node_id = self.note_object("setting", row.key, target)
                index = addnodes.index(entries=[("pair", f"{row.key}; setting", node_id, "", None)])
                key_cell = [target, index, lit(row.key)]
                env_cell = lit(row.env_var) if row.env_var else "(none: .ini only)"
                if "<" in row.key:
                    default = "the deployment's rule"
                else:
                    default = lit(row.default) if row.default else "(empty)"
                meaning = [row.meaning, " " if row.meaning else "", "Value: ", row.value, "."]
                cells.append([key_cell, env_cell, default, meaning])
            out.append(
                table(
                    ["Setting", "Environment variable", "Default", "Meaning"],
                    cells,
                    [30, 30, 12, 48],
                    "launchprov-settings",
                )
            )
        return out


def _setting_role(render: Callable[[SettingRow], nodes.Node]):
    def role(name, rawtext, text, lineno, inliner, options=None, content=None):
        row = known_setting(text.strip())
        if row is None:
            message = inliner.reporter.error(
                f"launchprov-docs: {text!r} is not a launchprov setting", line=lineno
            )
            problem = inliner.problematic(rawtext, rawtext, message)
            return [problem], [message]
        return [render(row)], []

    return role


def _link_setting(row: SettingRow) -> nodes.Node:
    return xref("setting", row.key, lit(row.key))


def _env_of(row: SettingRow) -> nodes.Node:
    return lit(row.env_var) if row.env_var else nodes.Text("(no environment variable)")


def _default_of(row: SettingRow) -> nodes.Node:
    return lit(row.default) if row.default else nodes.Text("(empty)")


# -- providers ----------------------------------------------------------------------------------

#: Two values of each LaunchRequest field: the mapping of a field is what changes between them.
SAMPLES: dict[str, tuple[Any, Any]] = {
    "ami": ("ami-760aaa0f", "ami-0123456789abcdef0"),
    "instance_type": ("t2.micro", "m5.large"),
    "min_count": (1, 2),
    "max_count": (3, 4),
    "key_name": ("scalacity_dev1", "ops"),
    "security_groups": (("SSH", "sg-0123456789abcdef0"), ("web",)),
    "user_data": ("#!/bin/sh\necho hello\n", None),
    "placement": ("us-east-1b", "us-west-2a"),
    "placement_group": ("analytics", None),
    "instance_initiated_shutdown_behavior": ("terminate", "stop"),
    "ebs_optimized": (True, False),
    "tags": ({"role": "web"}, {}),
    "client_token": ("retry-7f3a", None),
    "system_tags": ({"launchprov:caller": "billing"}, {}),
    "subnet_id": ("subnet-0123456789abcdef0", None),
    "iam_instance_profile": ("web-role", None),
    "root_volume_size": (30, None),
    "root_volume_type": ("gp3", None),
    "metadata_tokens": ("required", "optional"),
    "spot": (True, False),
    # Not a RunInstances argument: each alternative is a RunInstances of its own.
    "fallback": ((), ()),
}


def _samples_by_type(annotation: str) -> tuple[Any, Any] | None:
    """Two values for a field that :data:`SAMPLES` does not know, from its annotation."""
    text = str(annotation).replace(" ", "")
    for prefix, pair in (
        ("bool", (True, False)),
        ("int", (2, 3)),
        ("float", (1.5, 2.5)),
        ("tuple[str", (("a",), ("b",))),
        ("dict[str,str]", ({"k": "v"}, {})),
        ("str|None", ("sample", None)),
        ("str", ("sample-a", "sample-b")),
    ):
        if text.startswith(prefix):
            return pair
    return None


def _launch_request_fields() -> list[dataclasses.Field]:
    from launchprov.providers.interface import LaunchRequest

    return [field for field in dataclasses.fields(LaunchRequest) if field.name != "explicit"]


def ec2_mapping() -> tuple[dict[str, Any], list[tuple[str, Any, dict[str, Any]]]]:
    """(RunInstances of a fully populated request, [(field, its value, what it set)]).

    Each field's share of RunInstances is found by changing that field alone and seeing which
    arguments change, so the table follows ``run_instances_params`` wherever it goes.
    """
    from launchprov.providers.ec2 import run_instances_params
    from launchprov.providers.interface import LaunchRequest

    fields = _launch_request_fields()
    pairs = {}
    for field in fields:
        pair = SAMPLES.get(field.name) or _samples_by_type(field.type)
        if pair is None:
            raise Unavailable(
                f"launchprov-docs: no sample values for LaunchRequest.{field.name} "
                f"({field.type}); add them to SAMPLES in docs/_ext/launchprov_docs.py"
            )
        pairs[field.name] = pair
    full = LaunchRequest(
        **{name: pair[0] for name, pair in pairs.items()}, explicit=frozenset(pairs)
    )
    try:
        params = run_instances_params(full)
        base = _flatten(params)
        mapping = []
        for field in fields:
            other = dataclasses.replace(full, **{field.name: pairs[field.name][1]})
            changed = _flatten(run_instances_params(other))
            keys = sorted(
                key for key in set(base) | set(changed) if base.get(key) != changed.get(key)
            )
            mapping.append((field.name, pairs[field.name][0], {key: base.get(key) for key in keys}))
    except Exception as exc:
        raise Unavailable(
            f"launchprov-docs: run_instances_params failed on a sample request: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return params, mapping


def _sent(fields: Mapping[str, Any]) -> list[Inline]:
    present = [lit(key) for key, value in fields.items() if value is not None]
    if not present:
        return ["not sent"]
    return joined(present)


class EC2MappingDirective(LaunchprovDirective):
    """LaunchRequest field -> RunInstances arguments, found by calling the adapter."""

    def render(self):
        params, mapping = ec2_mapping()
        api = set(launch_parameters())
        rows = []
        for name, value, fields in mapping:
            label: list[Inline] = [lit(name)]
            if name not in api:
                label.append(" (set by launchprov)")
            example = [
                lit(f"{key} = {json.dumps(sent, ensure_ascii=False)}")
                for key, sent in fields.items()
                if sent is not None
            ]
            rows.append(
                [
                    label,
                    _sent(fields),
                    [_json_literal(_jsonable(value)), " gives ", *joined(example)],
                ]
                if example
                else [label, _sent(fields), _json_literal(_jsonable(value))]
            )
        listing = json.dumps(params, indent=2, ensure_ascii=False, default=_jsonable)
        block = nodes.literal_block(listing, listing, language="json")
        return [
            table(["Field", "RunInstances", "Example"], rows, [24, 30, 46]),
            para("The RunInstances arguments of the request with every field of the first value:"),
            block,
        ]


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    return value


def _libcloud_profiles() -> dict[str, Any]:
    from launchprov.providers.libcloud.profiles import GENERIC, PROFILES

    return {**PROFILES, "generic": GENERIC}


def _check_table(name: str, mapped: Mapping[str, Any], location) -> None:
    strangers = sorted(set(mapped) - set(launch_parameters()))
    if strangers:
        logger.warning(
            "launchprov-docs: %s maps %s, which are not launch parameters",
            name,
            ", ".join(strangers),
            location=location,
        )


class LibcloudParametersDirective(LaunchprovDirective):
    """One driver profile's parameter table: parameter, create_node argument, how; refusals."""

    required_arguments = 1

    def render(self):
        profiles = _libcloud_profiles()
        name = self.arguments[0]
        if name not in profiles:
            raise self.error(f"no driver profile {name} (there are {', '.join(profiles)})")
        profile = profiles[name]
        mapped = profile.parameters
        _check_table(name, mapped, self.get_location())
        rows = [
            [
                lit(parameter),
                lit(entry.argument) if entry.argument else "(used by the adapter itself)",
                entry.doc,
            ]
            for parameter, entry in mapped.items()
        ]
        out: list[nodes.Node] = [
            table(["Parameter", "create_node argument", "How"], rows, [28, 24, 48])
        ]
        if profile.launch_arguments:
            out.append(
                para(
                    [
                        "Always sent: ",
                        *joined(
                            lit(f"{key}={value!r}")
                            if not callable(value)
                            else [lit(key), f": {(value.__doc__ or '').split(':')[0].strip()}"]
                            for key, value in profile.launch_arguments.items()
                        ),
                        ".",
                    ]
                )
            )
        refused = [parameter for parameter in launch_parameters() if parameter not in mapped]
        if refused:
            out.append(
                para(
                    [
                        "Cannot honour, so refused with 400 when the caller gives it: ",
                        *joined(lit(parameter) for parameter in refused),
                        ". Left out, these parameters' defaults simply do not apply.",
                    ]
                )
            )
        else:
            out.append(para("Honours every launch parameter."))
        return out


class ParameterMatrixDirective(LaunchprovDirective):
    """Every launch parameter against every provider: what it becomes, or that it is refused."""

    def render(self):
        _, mapping = ec2_mapping()
        boto3 = {name: fields for name, _, fields in mapping}
        rows = []
        for parameter in launch_parameters():
            fields = boto3.get(parameter)
            boto3_cell: Cell = _sent(fields) if fields is not None else "(not a field)"
            rows.append([lit(parameter), boto3_cell])
        return [table(["Parameter", "ec2 (boto3): RunInstances"], rows, [30, 70])]


class DriverMatrixDirective(LaunchprovDirective):
    """Every libcloud driver profile: parameter -> create_node argument or refused; action ->
    the method that performs it or 501. Each cell as the conformance table proves it
    (``launchprov.providers.libcloud.conformance``, which the conformance matrix's tests run):
    a cell no test proves is "not verified", never shown as supported."""

    def render(self):
        from launchprov.providers.libcloud.conformance import (
            CREATE,
            NOT_IMPLEMENTED,
            REFUSED,
            SUPPORTED,
            docs_cell,
            request_words,
        )
        from launchprov.providers.libcloud.profiles import action_matrix, parameter_matrix

        def cell(driver: str, name: str, claim: str | None) -> Cell:
            shown = docs_cell(driver, name, claim)
            if shown.kind == REFUSED:
                return nodes.emphasis("refused", "refused")
            if shown.kind == NOT_IMPLEMENTED:
                return nodes.strong("501", "501")
            if shown.kind != SUPPORTED:  # what the profile claims, no test proves
                words = "not verified" if shown.claim else "refused, not verified"
                return nodes.emphasis(words, words)
            return [lit(shown.claim), f" ({shown.how})"]

        parameters = parameter_matrix(launch_parameters())
        drivers = list(parameters)
        rows = [
            [
                lit(parameter),
                *(cell(driver, parameter, parameters[driver][parameter]) for driver in drivers),
            ]
            for parameter in launch_parameters()
        ]
        width = 80 // len(drivers)
        out = [table(["Parameter", *drivers], rows, [20, *([width] * len(drivers))])]
        actions = action_matrix()
        names = list(next(iter(actions.values())))
        action_rows = [
            [lit(driver), *(cell(driver, action, actions[driver][action]) for action in names)]
            for driver in actions
        ]
        out.append(table(["Driver", *names], action_rows, [20, 20, 20, 20, 20]))
        out.append(
            para(
                [
                    "The create request whose fields the wire checks read: ",
                    *joined(
                        [lit(driver), ": ", lit(request_words(request))]
                        for driver, request in CREATE.items()
                    ),
                    ".",
                ]
            )
        )
        return out


class StatesDirective(LaunchprovDirective):
    """The state vocabulary, and which actions each state refuses (409)."""

    def render(self):
        from launchprov.providers.interface import ACTIONS, FORBIDDEN_STATES, STATES

        rows = []
        for state in STATES:
            cells: list[Cell] = [lit(state)]
            for action in ACTIONS:
                forbidden = state in FORBIDDEN_STATES.get(action, ())
                cells.append(nodes.strong("409", "409") if forbidden else "yes")
            rows.append(cells)
        width = 60 // len(ACTIONS)
        return [table(["State", *ACTIONS], rows, [20, *([width] * len(ACTIONS))])]


class StateMapDirective(LaunchprovDirective):
    """An adapter's own states in launchprov's vocabulary: ``ec2`` or ``libcloud``."""

    required_arguments = 1

    def render(self):
        which = self.arguments[0]
        if which == "ec2":
            from launchprov.providers.ec2_common import STATES

            rows = [[lit(native), lit(state)] for native, state in STATES.items()]
            rows.append(["anything else", lit("unknown")])
            return [table(["EC2 state name", "launchprov state"], rows, [50, 50])]
        if which == "libcloud":
            from libcloud.compute.types import NodeState

            from launchprov.providers.libcloud.instances import NODE_STATES

            names = {
                getattr(NodeState, attribute): attribute
                for attribute in dir(NodeState)
                if attribute.isupper()
            }
            rows = [
                [lit(f"NodeState.{names.get(native, native)}"), lit(state)]
                for native, state in NODE_STATES.items()
            ]
            unmapped = [name for value, name in sorted(names.items()) if value not in NODE_STATES]
            rows += [
                [lit(f"NodeState.{name}"), [lit("unknown"), " (not in the table)"]]
                for name in unmapped
            ]
            return [table(["libcloud NodeState", "launchprov state"], rows, [50, 50])]
        raise self.error(f"unknown state table {which!r}: use ec2 or libcloud")


class ActionsDirective(LaunchprovDirective):
    """Each action: its route, the EC2 call, the NodeDriver method, the states it refuses."""

    def render(self):
        from launchprov.providers.interface import ACTIONS, FORBIDDEN_STATES
        from launchprov.providers.libcloud.ec2 import EC2_CALLS
        from launchprov.providers.libcloud.profile import ACTION_METHODS

        rows = []
        for action in ACTIONS:
            method, ec2_call = ACTION_METHODS.get(action), EC2_CALLS.get(action)
            route = (
                "DELETE /v1/instances/{id}"
                if action == "terminate"
                else f"POST /v1/instances/{{id}}/{action}"
            )
            forbidden = sorted(FORBIDDEN_STATES.get(action, ()))
            rows.append(
                [
                    lit(action),
                    xref("route", route, lit(route)),
                    lit(ec2_call) if ec2_call else "-",
                    lit(method) if method else "-",
                    joined(lit(state) for state in forbidden) if forbidden else "none",
                ]
            )
        return [
            table(
                ["Action", "Route", "EC2 call", "NodeDriver method", "Refused (409) from"],
                rows,
                [12, 30, 20, 18, 20],
            )
        ]


#: What each transport code of ProviderError means, and whether a retry can help.
TRANSPORT_CODES = {
    "UNREACHABLE": ("a refused connection, a DNS failure, a reset", "yes"),
    "TIMEOUT": ("no answer within the configured time-out", "yes"),
    "MALFORMED_RESPONSE": (
        "a reply that could not be parsed (an HTML page from a proxy, a truncated body)",
        "only for a reply of HTTP 429, 502, 503 or 504 (libcloud; boto3 has retried those "
        "itself): an HTML 500 page repeats, and so does a 2xx reply that does not parse",
    ),
    "AUTH_FAILURE": ("no usable credentials, or credentials the endpoint refused", "no"),
    "UNEXPECTED": ("an SDK failure it does not classify itself", "no"),
}


class ProviderCodesDirective(LaunchprovDirective):
    """The codes a 408 carries besides the provider's own, and EC2's retryable codes."""

    def render(self):
        from launchprov.providers.ec2_common import RETRYABLE_CODES
        from launchprov.providers.interface import ProviderError
        from launchprov.providers.libcloud import errors as libcloud_errors

        codes = {
            attribute: value
            for attribute, value in vars(ProviderError).items()
            if attribute.isupper() and isinstance(value, str)
        }
        rows = []
        for attribute, code in codes.items():
            if attribute not in TRANSPORT_CODES:
                logger.warning(
                    "launchprov-docs: ProviderError.%s (%s) has no meaning in TRANSPORT_CODES",
                    attribute,
                    code,
                    location=self.get_location(),
                )
                continue
            meaning, retryable = TRANSPORT_CODES[attribute]
            rows.append([lit(code), "every provider", meaning, retryable])
        for attribute, meaning, retryable in (
            (
                "PARTIAL_LAUNCH",
                "a driver other than EC2 created fewer than min_count nodes; those created "
                "were destroyed (the message says if destroying failed)",
                "as the failure that stopped it",
            ),
            (
                "ACTION_REFUSED",
                "the provider answered an action with a refusal: EC2's <return>false</return>, "
                "or another driver's method returning False",
                "no for EC2, yes for other drivers",
            ),
        ):
            code = getattr(libcloud_errors, attribute, None)
            if code is not None:
                rows.append([lit(code), "libcloud", meaning, retryable])
        for kind, code in libcloud_errors.CATALOG_CODES.items():
            rows.append(
                [
                    lit(code),
                    "libcloud",
                    f"the cloud knows no {kind} of that id or name; said before any node is "
                    "created",
                    "no",
                ]
            )
        return [
            table(["Code", "From", "Meaning", "retryable"], rows, [22, 14, 44, 20]),
            para(
                [
                    "Any other code is the provider's own (EC2's ",
                    lit("InvalidAMIID.NotFound"),
                    ", libcloud's ",
                    lit("HTTP<status>"),
                    " for drivers that give only a status). EC2 codes a retry can mend, and "
                    "any HTTP status of 500 or more, or 429: ",
                    *joined(lit(code) for code in sorted(RETRYABLE_CODES)),
                    ".",
                ]
            ),
        ]


class CloudErrorsDirective(LaunchprovDirective):
    """Each libcloud profile's error table: which of its cloud's error replies mean out of
    capacity, throttled, credentials refused or not found, and the code each becomes."""

    def render(self):
        from launchprov.providers.libcloud.errors import MEANING_CODES
        from launchprov.providers.libcloud.profile import COMMON_ERRORS
        from launchprov.providers.libcloud.profiles import GENERIC, PROFILES

        def reply(rule) -> list[Inline]:
            parts: list[Inline] = []
            if rule.status is not None:
                statuses = (
                    sorted(rule.status) if isinstance(rule.status, frozenset) else [rule.status]
                )
                parts += ["HTTP ", *joined((str(status) for status in statuses), " or ")]
            if rule.code is not None:
                parts += [", " if parts else "", "code ", lit(rule.code)]
            if rule.text is not None:
                parts += [", " if parts else "", "message matching ", lit(rule.text)]
            return parts

        def row(driver: Cell, rule) -> list[Cell]:
            code, retryable = MEANING_CODES[rule.meaning]
            return [
                driver,
                reply(rule),
                rule.meaning,
                lit(code),
                "yes" if retryable else "no",
                rule.source,
            ]

        rows = [
            row(lit(name), rule)
            for name, profile in {**PROFILES, "generic": GENERIC}.items()
            for rule in profile.errors
        ]
        rows += [row("every driver, after its own", rule) for rule in COMMON_ERRORS]
        return [
            table(
                ["Driver", "Reply", "Meaning", "Code", "retryable", "Shape from"],
                rows,
                [12, 30, 12, 18, 8, 20],
            ),
            para(
                [
                    "Any other error reply keeps the cloud's own code where it gives one "
                    "(Azure's and DigitalOcean's codes, nova's fault name, CloudStack's "
                    "errorcode), else ",
                    lit("HTTP<status>"),
                    ", retryable when the status is 500 or more. A retryable 408 carries the "
                    "cloud's own ",
                    lit("Retry-After"),
                    " when it gave a longer one than launchprov's. Nothing is launched when the "
                    "cloud answered a create with an error (",
                    lit("outcome"),
                    " ",
                    lit("none"),
                    ").",
                ]
            ),
        ]


# -- operations ---------------------------------------------------------------------------------


class MetricsDirective(LaunchprovDirective):
    """The metrics of /metrics, read from a fresh ``launchprov.metrics.Metrics``."""

    def render(self):
        from launchprov.metrics import Metrics

        metrics = Metrics()
        labels = {}
        for value in vars(metrics).values():
            name = getattr(value, "_name", None)
            if name:
                labels[name] = tuple(getattr(value, "_labelnames", ()))
        rows = []
        for family in metrics.registry.collect():
            exposed = {
                "counter": [f"{family.name}_total"],
                "histogram": [
                    f"{family.name}_bucket",
                    f"{family.name}_sum",
                    f"{family.name}_count",
                ],
            }.get(family.type, [family.name])
            family_labels = labels.get(family.name, labels.get(f"{family.name}_total", ()))
            rows.append(
                [
                    joined((lit(name) for name in exposed), " ")
                    if len(exposed) > 1
                    else lit(exposed[0]),
                    family.type,
                    joined(lit(label) for label in family_labels) if family_labels else "-",
                    family.documentation,
                ]
            )
        from launchprov.routes import ROUTES

        names = [*ROUTES, "unmatched"]
        return [
            table(["Metric", "Type", "Labels", "Meaning"], rows, [34, 10, 22, 34]),
            para(
                [
                    "The values of ",
                    lit("route"),
                    " are the names of the routes, or ",
                    lit("unmatched"),
                    " for a path that matches none: ",
                    *joined(lit(name) for name in names),
                    ".",
                ]
            ),
        ]


class LogFieldsDirective(LaunchprovDirective):
    """The fields of a JSON log line."""

    def render(self):
        from launchprov.logs import JSON_FIELDS

        base = ["time", "level", "logger", "message"]
        return [
            para(
                [
                    "Always ",
                    *joined(lit(name) for name in base),
                    "; when the line has them ",
                    *joined(lit(name) for name in JSON_FIELDS),
                    "; and ",
                    lit("exception"),
                    " with the traceback of a logged exception.",
                ]
            )
        ]


# -- the .ini files --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class IniEntry:
    key: str
    value: str
    comment: str


def read_ini(path: Path) -> dict[str, dict[str, IniEntry]]:
    """Every section's entries, each with the comment lines written just above it.

    (configparser drops comments, and the comments of launchprov's .ini files are the reasons
    for their values.)
    """
    sections: dict[str, dict[str, IniEntry]] = {}
    section: dict[str, IniEntry] | None = None
    comment: list[str] = []
    last: str | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if line[:1].isspace() and stripped and section is not None and last is not None:
            entry = section[last]  # a continuation line of a value
            section[last] = dataclasses.replace(entry, value=f"{entry.value}\n{stripped}")
        elif stripped.startswith("[") and stripped.endswith("]"):
            section = sections.setdefault(stripped[1:-1], {})
            comment, last = [], None
        elif stripped.startswith(("#", ";")):
            text = stripped.lstrip("#;").strip()
            if text and set(text) != {"#"}:
                comment.append(text)
        elif not stripped:
            comment, last = [], None
        elif section is not None and "=" in stripped:
            key, _, value = stripped.partition("=")
            last = key.strip()
            section[last] = IniEntry(last, value.strip(), " ".join(comment))
            comment = []
    return sections


def _ini_path(env, name: str) -> Path:
    path = Path(env.srcdir).parent / name
    if not path.is_file():
        raise Unavailable(f"launchprov-docs: no {name} next to docs/")
    env.note_dependency(str(path))
    return path


class IniDirective(LaunchprovDirective):
    """The entries of one section of an .ini file of the repository, with their comments."""

    required_arguments = 1
    option_spec = {"section": directives.unchanged_required}

    def render(self):
        name = self.arguments[0]
        wanted = self.options.get("section", "app:main")
        sections = read_ini(_ini_path(self.env, name))
        if wanted not in sections:
            raise self.error(f"{name} has no [{wanted}] section")
        rows = [
            [lit(entry.key), lit(entry.value) if entry.value else "(empty)", entry.comment]
            for entry in sections[wanted].values()
        ]
        return [table(["Key", f"Value in {name}", "Why (its comment)"], rows, [26, 22, 52])]


class IniCompareDirective(LaunchprovDirective):
    """The ``launchprov.*`` keys of several .ini files side by side, with the defaults."""

    required_arguments = 1
    final_argument_whitespace = True

    def render(self):
        names = self.arguments[0].split()
        files = {name: read_ini(_ini_path(self.env, name)).get("app:main", {}) for name in names}
        keys = [row.key for row in setting_rows() if "<" not in row.key]
        keys += sorted(
            {key for entries in files.values() for key in entries if key.startswith("launchprov.")}
            - set(keys)
        )
        rows = []
        for key in keys:
            if not any(key in entries for entries in files.values()):
                continue
            row = known_setting(key)
            cells: list[Cell] = [
                xref("setting", key, lit(key)) if row else lit(key),
                (lit(row.default) if row.default else "(empty)") if row else "-",
            ]
            for entries in files.values():
                entry = entries.get(key)
                cells.append(
                    "-" if entry is None else (lit(entry.value) if entry.value else "(empty)")
                )
            rows.append(cells)
        width = 50 // len(names)
        return [table(["Setting", "Default", *names], rows, [34, 16, *([width] * len(names))])]


def _ini_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``:launchprov-ini:`production.ini server:main threads```: that value, checked."""
    env = inliner.document.settings.env
    try:
        file_name, section, key = text.split()
        value = read_ini(_ini_path(env, file_name))[section][key].value
    except (ValueError, KeyError, Unavailable) as exc:
        message = inliner.reporter.error(
            f"launchprov-docs: no value for {text!r}: {exc}", line=lineno
        )
        return [inliner.problematic(rawtext, rawtext, message)], [message]
    return [lit(value)], []


def _const_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``:launchprov-const:`launchprov.launching.CALLER_TAG```: that constant's value."""
    module_name, _, attribute = text.strip().rpartition(".")
    try:
        value = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        message = inliner.reporter.error(
            f"launchprov-docs: no constant {text!r}: {exc}", line=lineno
        )
        return [inliner.problematic(rawtext, rawtext, message)], [message]
    return [lit(value)], []


def check_modules(app: Sphinx, env) -> None:
    """Every module the pages declare (``py:module``) must still exist."""
    for module_name in sorted(env.get_domain("py").modules):
        try:
            importlib.import_module(module_name)
        except ImportError as exc:
            logger.warning(
                "launchprov-docs: the pages name module %s, which does not import: %s",
                module_name,
                exc,
                location=env.get_domain("py").modules[module_name][0],
            )


def _ec2_call_bound_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """The longest a boto3 call may wait with the default settings (back-off aside)."""
    values = default_settings()
    bound = values["launchprov.ec2.max_attempts"] * (
        values["launchprov.ec2.connect_timeout"] + values["launchprov.ec2.read_timeout"]
    )
    return [nodes.Text(f"{bound:g} s")], []


# -- checks and output --------------------------------------------------------------------------

_SEED_TYPES = {
    "string": {"type": "string"},
    "int": {"type": "integer"},
    "bool": {"type": "boolean"},
    "list of strings": {"type": "array", "items": "string"},
}


def _seed_default_matches(seed: str, schema: Mapping[str, Any], required: bool) -> bool:
    if seed == "required":
        return required
    present, default = default_of(schema)
    if not present:
        return seed == "" and not required
    if isinstance(default, list):
        return seed == ", ".join(map(str, default))
    return seed == str(default)


def _seed_type_matches(seed: str, schema: Mapping[str, Any]) -> bool:
    expected = _SEED_TYPES.get(seed)
    if expected is None:
        return False
    if schema.get("type") != expected["type"]:
        return False
    return "items" not in expected or schema.get("items", {}).get("type") == expected["items"]


def _table_rows(node: nodes.table) -> tuple[list[str], list[list[str]]]:
    head = [
        entry.astext().strip()
        for entry in next(iter(node.findall(nodes.thead))).findall(nodes.entry)
    ]
    body = [
        [entry.astext().strip() for entry in row.findall(nodes.entry)]
        for row in next(iter(node.findall(nodes.tbody))).findall(nodes.row)
    ]
    return head, body


def check_seed(app: Sphinx, doctree: nodes.document) -> None:
    """The seed's tables in the root document must still be true of the OpenAPI document."""
    if _docname(app) != app.config.root_doc:
        return
    launch = openapi_document()["paths"]["/v1/launch"]["put"]
    schema = launch_schema(openapi_document())
    checked = set()
    for node in doctree.findall(nodes.table):
        if not list(node.findall(nodes.thead)):
            continue
        head, body = _table_rows(node)
        if head == ["Parameter", "Default", "Type"]:
            checked.add("parameters")
            required = set(schema.get("required", []))
            for name, default, kind in body:
                property_ = schema["properties"].get(name)
                if property_ is None:
                    problem = "is not a launch parameter"
                elif not _seed_default_matches(default, property_, name in required):
                    api_default = default_text(property_, name in required)
                    problem = f"default {default!r} differs from the API's {api_default}"
                elif not _seed_type_matches(kind, property_):
                    problem = (
                        f"type {kind!r} differs from the API's {json.dumps(property_.get('type'))}"
                    )
                else:
                    continue
                logger.warning(
                    "launchprov-docs: seed parameter %s: %s", name, problem, location=node
                )
        elif head == ["Status", "Body"]:
            checked.add("answers")
            for status, _ in body:
                if status not in launch["responses"]:
                    logger.warning(
                        "launchprov-docs: the seed's status %s is not an answer of PUT /v1/launch",
                        status,
                        location=node,
                    )
    for missing in sorted({"parameters", "answers"} - checked):
        logger.warning(
            "launchprov-docs: the seed's %s table is not in %s",
            missing,
            app.config.root_doc,
            location=app.config.root_doc,
        )


def _docname(app: Sphinx) -> str | None:
    current = getattr(app.env, "current_document", None)  # Sphinx 8.2+; env.docname before
    return getattr(current, "docname", None) or getattr(app.env, "docname", None)


def default_text(schema: Mapping[str, Any], required: bool) -> str:
    if required:
        return "required"
    present, default = default_of(schema)
    return json.dumps(default) if present else "(none)"


def write_openapi(app: Sphinx, exception: Exception | None) -> None:
    """The raw document next to the HTML pages, as ``openapi.json``."""
    if exception is not None or app.builder.format != "html":
        return
    target = os.path.join(app.outdir, "openapi.json")
    with open(target, "w", encoding="utf-8") as output:
        json.dump(openapi_document(), output, indent=2, ensure_ascii=False)
        output.write("\n")


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_object_type("setting", "setting", indextemplate="pair: %s; setting")
    app.add_object_type("route", "route", indextemplate="pair: %s; route")
    app.add_object_type("schema", "schema", indextemplate="pair: %s; schema")
    for name, directive in (
        ("launchprov-api", APIDirective),
        ("launchprov-routes", RoutesDirective),
        ("launchprov-api-providers", ProviderDifferencesDirective),
        ("launchprov-settings", SettingsDirective),
        ("launchprov-parameter-matrix", ParameterMatrixDirective),
        ("launchprov-driver-matrix", DriverMatrixDirective),
        ("launchprov-ec2-mapping", EC2MappingDirective),
        ("launchprov-libcloud-parameters", LibcloudParametersDirective),
        ("launchprov-states", StatesDirective),
        ("launchprov-state-map", StateMapDirective),
        ("launchprov-actions", ActionsDirective),
        ("launchprov-provider-codes", ProviderCodesDirective),
        ("launchprov-libcloud-errors", CloudErrorsDirective),
        ("launchprov-metrics", MetricsDirective),
        ("launchprov-log-fields", LogFieldsDirective),
        ("launchprov-ini", IniDirective),
        ("launchprov-ini-compare", IniCompareDirective),
    ):
        app.add_directive(name, directive)
    app.add_role("launchprov-setting", _setting_role(_link_setting))
    app.add_role("launchprov-env", _setting_role(_env_of))
    app.add_role("launchprov-default", _setting_role(_default_of))
    app.add_role("launchprov-ini", _ini_role)
    app.add_role("launchprov-ec2-call-bound", _ec2_call_bound_role)
    app.add_role("launchprov-const", _const_role)
    app.connect("builder-inited", _reset)
    app.connect("doctree-read", check_seed)
    app.connect("env-check-consistency", check_modules)
    app.connect("build-finished", write_openapi)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
