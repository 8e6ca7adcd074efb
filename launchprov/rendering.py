"""Every JSON body in one style: ``json.dumps``'s own (``", "`` and ``": "``), on one line,
ending with a newline (so that a shell prompt does not stick to it). Success bodies go through
the ``json`` renderer registered here, error bodies through :func:`json_text`."""

from __future__ import annotations

import json
from typing import Any

from pyramid.renderers import JSON


def json_text(value: Any) -> str:
    """A JSON body: one line and a newline."""
    return json.dumps(value) + "\n"


def _serialize(value: Any, **options: Any) -> str:
    return json.dumps(value, **options) + "\n"


def includeme(config):
    config.add_renderer("json", JSON(serializer=_serialize))
