"""``.. launchprov-cli-help::``: the ``--help`` of every ``launchprov`` command, generated.

The texts are those the command line prints (click renders them from launchprov/cli.py), so
the page cannot drift from the commands.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import click
from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

WIDTH = 96


def commands(
    command: click.Command, path: tuple[str, ...] = ("launchprov",)
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command under ``command``, itself first, depth first, in the order of --help."""
    yield path, command
    if isinstance(command, click.Group):
        for name in command.list_commands(click.Context(command)):
            yield from commands(command.commands[name], (*path, name))


def help_text(path: tuple[str, ...], command: click.Command) -> str:
    context = click.Context(
        command, info_name=" ".join(path), terminal_width=WIDTH, max_content_width=WIDTH
    )
    return command.get_help(context)


class CliHelp(SphinxDirective):
    """A rubric and the --help text of each command."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from launchprov.cli import main

        result: list[nodes.Node] = []
        for path, command in commands(main):
            name = " ".join(path)
            result.append(nodes.rubric(text=name, ids=[nodes.make_id(f"cli {name}")]))
            text = help_text(path, command)
            result.append(nodes.literal_block(text, text))
        return result


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("launchprov-cli-help", CliHelp)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
