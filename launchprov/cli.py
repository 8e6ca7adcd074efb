"""``launchprov``: the command line of the launchprov service, built on launchprov.client.

Exit status: 0 success, 1 the service answered an error (or could not be reached, or a wait
gave up), 2 a usage error. Needs the ``client`` extra: ``pip install 'launchprov[client]'``.
"""

from __future__ import annotations

import functools
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    import click
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TimeElapsedColumn,
    )
    from rich.table import Table
    from rich.text import Text
except ImportError as exc:  # pragma: no cover - a server's install, without the extra
    raise ImportError(
        "the launchprov command line needs the client extra: pip install 'launchprov[client]'"
    ) from exc

from launchprov.client import (
    DEFAULT_RETRIES,
    DEFAULT_URL,
    TOKEN_ENV,
    URL_ENV,
    Client,
    LaunchprovError,
    ProviderFailed,
)

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: The columns of an instance table: heading -> field of the service's instance object.
COLUMNS = {
    "ID": "id",
    "STATE": "state",
    "TYPE": "instance_type",
    "ZONE": "placement",
    "PRIVATE IP": "private_ip",
    "PUBLIC IP": "public_ip",
}


def _package_version() -> str:
    try:
        return version("launchprov")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


class Output:
    """Where a command writes: tables for people, or one JSON document for programs (stdout);
    progress and errors go to stderr."""

    def __init__(self, as_json: bool):
        self.as_json = as_json
        # Not a terminal (a pipe, a file): never wrap or cut a line, so ids stay whole.
        self.out = Console(highlight=False, width=None if sys.stdout.isatty() else 10_000)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def document(self, document: Any) -> None:
        click.echo(json.dumps(document, indent=2))

    def instances(self, instances: list[dict[str, Any]]) -> None:
        """Instances: a table, or the document of ``GET /v1/instances`` holding them all."""
        if self.as_json:
            self.document({"instances": instances, "next": None})
            return
        table = Table(box=None, pad_edge=False)
        for heading in COLUMNS:
            table.add_column(heading, no_wrap=True)
        for instance in instances:
            table.add_row(*(_cell(instance.get(field)) for field in COLUMNS.values()))
        self.table(table)

    def table(self, table: Table) -> None:
        with self.out.capture() as captured:
            self.out.print(table)
        # Cells are padded to their column's width: no trailing blanks at the ends of lines.
        click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))

    def error(self, error: LaunchprovError) -> None:
        """The service's message on stderr (and the provider's code for a 408); with --json,
        the service's error body on stdout too."""
        if self.as_json and error.status is not None:
            self.document(error.body)
        self.err.print(f"error: {error.describe()}", markup=False)
        for item in error.details:
            where = " ".join(str(item.get(key) or "") for key in ("location", "name")).strip()
            self.err.print(f"  {where}: {item.get('description', '')}", markup=False)
        if isinstance(error, ProviderFailed):
            retry = "a retry can help" if error.retryable else "a retry will not help"
            name = error.provider.get("name", "provider")
            self.err.print(f"  provider {name} code: {error.code} ({retry})", markup=False)
        if error.client_token and (error.status is None or error.status in UNKNOWN_OUTCOME):
            # Never suggest a retry the provider said will not help.
            refused = isinstance(error, ProviderFailed) and not error.retryable
            note = "" if refused else f" ({SAFE_RETRY})"
            self.err.print(f"  client token: {error.client_token}{note}", markup=False)
        if error.request_id:
            self.err.print(f"  request id: {error.request_id}", markup=False)


#: Failures after which a launch may have happened: worth retrying with the same client token.
UNKNOWN_OUTCOME = frozenset({408, 500, 502, 503, 504})
SAFE_RETRY = "a retry with this same token is safe: it never launches twice"


def _cell(value: Any) -> Text:
    """A table cell: the service's text as it is (never read as rich markup), - for null."""
    return Text("-" if value is None else str(value))


def service_command(func: Callable[..., None]) -> Callable[..., None]:
    """Give a command --url, --token, --json and --retries, a Client, and the exit status 1
    on an error of the service."""

    @click.option(
        "--url",
        envvar=URL_ENV,
        default=DEFAULT_URL,
        show_default=True,
        show_envvar=True,
        help="The service's base URL.",
    )
    @click.option(
        "--token",
        envvar=TOKEN_ENV,
        show_envvar=True,
        help="The caller's bearer token (none: no Authorization header).",
    )
    @click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print exactly the service's JSON, one document, instead of a table.",
    )
    @click.option(
        "--retries",
        type=click.IntRange(min=0),
        default=DEFAULT_RETRIES,
        show_default=True,
        help="How many times to send a request again when that is safe: no connection, "
        "429, 503, a 408 the service calls retryable (honouring Retry-After).",
    )
    @functools.wraps(func)
    def command(url: str, token: str | None, as_json: bool, retries: int, **options: Any) -> None:
        output = Output(as_json)
        with Client(url, token or "", retries=retries) as client:
            try:
                func(client, output, **options)
            except LaunchprovError as error:
                output.error(error)
                raise click.exceptions.Exit(1) from None

    return command


def instance_options(func: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "--region",
        help="The region the instances live in (default: the region of the service's "
        "default placement).",
    )(func)


def _tags(values: Iterable[str], option: str) -> dict[str, list[str]]:
    tags: dict[str, list[str]] = {}
    for value in values:
        key, equals, tag_value = value.partition("=")
        if not equals or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint=option)
        tags.setdefault(key, []).append(tag_value)
    return tags


def _launch_tags(values: Iterable[str]) -> dict[str, str]:
    tags = _tags(values, "--tag")
    twice = sorted(key for key, key_values in tags.items() if len(key_values) > 1)
    if twice:
        raise click.BadParameter(f"a tag has one value: {', '.join(twice)}", param_hint="--tag")
    return {key: key_values[0] for key, key_values in tags.items()}


def _user_data(value: str | None) -> str | None:
    """``@FILE`` reads the file (``@-``: standard input); anything else is the text itself."""
    if value is None or not value.startswith("@"):
        return value
    path = value[1:]
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="--user-data") from None


def _wait(
    client: Client,
    output: Output,
    ids: list[str],
    state: str,
    timeout: float,
    region: str | None,
    interval: float,
) -> list[dict[str, Any]]:
    """Client.wait with a live progress display on stderr."""
    columns = (
        SpinnerColumn(),
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=output.err, transient=False) as progress:
        task = progress.add_task(f"waiting for {state}", total=len(ids))

        def show(instances: list[dict[str, Any]]) -> None:
            counts = Counter(item["state"] or "not found" for item in instances)
            summary = ", ".join(f"{count} {name}" for name, count in sorted(counts.items()))
            progress.update(task, completed=counts[state], description=summary)

        return client.wait(ids, state, timeout, region=region, interval=interval, on_poll=show)


# --- Commands ------------------------------------------------------------------------------


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(_package_version(), prog_name="launchprov")
def main() -> None:
    """Launch, list and act on cloud instances through a launchprov service.

    Every command takes --url and --token (defaults: LAUNCHPROV_URL, LAUNCHPROV_TOKEN) and
    --json, which prints exactly the service's JSON, one document; lists of instances are
    printed in the shape of GET /v1/instances, {"instances": [...], "next": null}.

    Exit status: 0 success; 1 the service answered an error (its message is printed, and for
    a 408 the provider's error code), could not be reached, or a wait gave up; 2 a usage
    error.
    """


wait_options = [
    click.option(
        "--timeout",
        type=float,
        default=300.0,
        show_default=True,
        help="Seconds to wait before giving up (exit status 1).",
    ),
    click.option(
        "--interval",
        type=float,
        default=2.0,
        show_default=True,
        help="Seconds between two looks at the instances.",
    ),
]


def _with(options: list[Callable[..., Any]]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


#: The options of a launch, shared by launch and preflight: each one a parameter of the API.
launch_options = [
    click.option("--ami", required=True, help="The image to launch (ami-...)."),
    click.option("--instance-type", required=True, help="The instance type (t2.micro, ...)."),
    click.option(
        "--count", type=int, help="How many instances: exactly N (min_count = max_count)."
    ),
    click.option("--min-count", type=int, help="At least N instances, or none (default 1)."),
    click.option("--max-count", type=int, help="At most N instances (default 1)."),
    click.option("--key-name", help="The key pair (default: the service's)."),
    click.option(
        "--security-group",
        "security_groups",
        multiple=True,
        help="A security group name or sg- id; repeat for several (default: the service's).",
    ),
    click.option("--placement", help="The availability zone (default: the service's)."),
    click.option("--placement-group", help="The placement group."),
    click.option(
        "--shutdown-behavior",
        help="What an instance's own shutdown does: stop or terminate (default terminate).",
    ),
    click.option(
        "--ebs-optimized/--no-ebs-optimized", default=None, help="EBS-optimised instances."
    ),
    click.option(
        "--user-data", help="User data: the text, or @FILE to read it from a file (@- stdin)."
    ),
    click.option("--tag", "tags", multiple=True, help="A tag KEY=VALUE; repeat for several."),
    click.option(
        "--expires-in", type=int, help="A lease: terminate the instances after N seconds."
    ),
    click.option(
        "--param",
        "extra_params",
        multiple=True,
        help="Any other launch parameter NAME=VALUE, VALUE as JSON where it parses "
        '(subnet_id=subnet-1a2b, spot=true, fallback=\'[{"instance_type": "t3.micro"}]\'); '
        "repeat for several.",
    ),
]


def _launch_params(options: dict[str, Any]) -> dict[str, Any]:
    """The API parameters of the launch options given (None: not given, so not sent)."""
    count, min_count, max_count = options["count"], options["min_count"], options["max_count"]
    if count is not None and (min_count is not None or max_count is not None):
        raise click.UsageError("give --count, or --min-count and --max-count, not both")
    if count is not None:
        min_count = max_count = count
    params: dict[str, Any] = {
        "min_count": min_count,
        "max_count": max_count,
        "key_name": options["key_name"],
        "security_groups": list(options["security_groups"]) or None,
        "placement": options["placement"],
        "placement_group": options["placement_group"],
        "instance_initiated_shutdown_behavior": options["shutdown_behavior"],
        "ebs_optimized": options["ebs_optimized"],
        "user_data": _user_data(options["user_data"]),
        "tags": _launch_tags(options["tags"]) or None,
        "expires_in": options["expires_in"],
    }
    given = {name: value for name, value in params.items() if value is not None}
    for name, value in _extra_params(options["extra_params"]).items():
        if name in given or name in ("ami", "instance_type", "client_token"):
            raise click.BadParameter(f"{name} has an option of its own", param_hint="--param")
        given[name] = value
    return given


def _extra_params(values: Iterable[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in values:
        name, equals, text = item.partition("=")
        if not equals or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--param")
        if name in params:
            raise click.BadParameter(f"{name} given twice", param_hint="--param")
        try:
            params[name] = json.loads(text)
        except ValueError:
            params[name] = text  # not JSON: the text itself
    return params


@main.command()
@_with(launch_options)
@click.option(
    "--client-token",
    help="Idempotency key: a retry with the same token never launches twice "
    "(default: a fresh one, reused by this command's own retries).",
)
@click.option(
    "--wait",
    "wait_for_running",
    is_flag=True,
    help="Wait until every instance runs (live progress), then print a table of them.",
)
@_with(wait_options)
@service_command
def launch(
    client: Client,
    output: Output,
    client_token: str | None,
    wait_for_running: bool,
    timeout: float,
    interval: float,
    **options: Any,
) -> None:
    """Launch instances (PUT /v1/launch) and print their ids.

    Only the options given are sent; the service applies its defaults and checks every value.
    With --wait, shows the instances' progress until they all run, then prints a table of id,
    state, type, zone and IP addresses.

    \b
    Example:
      launchprov launch --ami ami-760aaa0f --instance-type t2.micro --count 2 \\
          --tag role=web --user-data @cloud-init.yaml --wait
    """
    params = _launch_params(options)
    if client_token is not None:
        params["client_token"] = client_token
    ids = client.launch(options["ami"], options["instance_type"], **params)
    if not wait_for_running:
        if output.as_json:
            output.document(ids)
        else:
            for instance_id in ids:
                click.echo(instance_id)
        return
    region = _region_of(options["placement"])
    output.instances(_wait(client, output, ids, "running", timeout, region, interval))


@main.command()
@_with(launch_options)
@service_command
def preflight(client: Client, output: Output, **options: Any) -> None:
    """Would this launch succeed? (POST /v1/launch/preflight) Launches nothing.

    Takes the options of launch; prints each check the service made (name, ok, the provider's
    error code and message where it failed). Exit status 0 when the launch would succeed, 1
    when a check failed (or the service answered an error).
    """
    answer = client.preflight(options["ami"], options["instance_type"], **_launch_params(options))
    if output.as_json:
        output.document(answer)
    else:
        table = Table(box=None, pad_edge=False)
        for heading in ("CHECK", "OK", "CODE", "MESSAGE"):
            table.add_column(heading, no_wrap=True)
        for check in answer["checks"]:
            ok = "yes" if check.get("ok") else "no"
            row = (check.get("name"), ok, check.get("code"), check.get("message"))
            table.add_row(*map(_cell, row))
        output.table(table)
    if not answer.get("would_launch"):
        output.err.print("error: the launch would not succeed", markup=False)
        raise click.exceptions.Exit(1)


def _region_of(placement: str | None) -> str | None:
    """The region of a zone given to --placement, where the instances are to be found."""
    if placement is None:
        return None
    from launchprov.placement import region_of  # the service's own rule, not a copy

    try:
        return region_of(placement)
    except ValueError:
        return None  # not a zone name (another cloud's location): the service's default


@main.command(name="ls")
@click.option(
    "--state", "states", multiple=True, help="Only instances in this state; repeat for several."
)
@click.option(
    "--tag", "tags", multiple=True, help="Only instances with tag KEY=VALUE; repeat for several."
)
@click.option("--id", "ids", multiple=True, help="Only this instance; repeat for several.")
@click.option("--page-size", type=int, help="Instances per request (the service's limit).")
@instance_options
@service_command
def list_instances(
    client: Client,
    output: Output,
    states: tuple[str, ...],
    tags: tuple[str, ...],
    ids: tuple[str, ...],
    page_size: int | None,
    region: str | None,
) -> None:
    """List instances (GET /v1/instances), walking every page.

    Filters of different kinds must all match; the values of one kind are alternatives.
    """
    filters: dict[str, Any] = {"state": list(states), "id": list(ids)}
    if page_size is not None:
        filters["limit"] = page_size
    if region is not None:
        filters["region"] = region
    output.instances(list(client.instances(tags=_tags(tags, "--tag"), **filters)))


@main.command()
@click.argument("instance_id", metavar="ID")
@instance_options
@service_command
def show(client: Client, output: Output, instance_id: str, region: str | None) -> None:
    """Show one instance (GET /v1/instances/ID)."""
    instance = client.describe(instance_id, region=region)
    if output.as_json:
        output.document(instance)
        return
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(no_wrap=True)
    for field, value in instance.items():
        if field == "tags":
            value = "\n".join(f"{key}={tag}" for key, tag in sorted(value.items())) or None
        elif isinstance(value, list):
            value = ", ".join(value) or None
        table.add_row(field, _cell(value))
    output.table(table)


def _action_command(name: str, call: Callable[[Client], Callable[..., dict[str, Any]]], doc: str):
    @main.command(name=name, help=doc)
    @click.argument("instance_ids", metavar="ID...", nargs=-1, required=True)
    @instance_options
    @service_command
    def command(
        client: Client, output: Output, instance_ids: tuple[str, ...], region: str | None
    ) -> None:
        output.instances([call(client)(id_, region=region) for id_ in instance_ids])

    return command


_ACTION_DOC = (
    "{what} (POST /v1/instances/ID/{action}); print the instances after the call.\n\n"
    "Stops at the first instance the service refuses (exit status 1)."
)
stop = _action_command(
    "stop", lambda client: client.stop, _ACTION_DOC.format(what="Stop instances", action="stop")
)
start = _action_command(
    "start", lambda client: client.start, _ACTION_DOC.format(what="Start instances", action="start")
)
reboot = _action_command(
    "reboot",
    lambda client: client.reboot,
    _ACTION_DOC.format(what="Reboot instances", action="reboot"),
)
rm = _action_command(
    "rm",
    lambda client: client.terminate,
    "Terminate instances (DELETE /v1/instances/ID); print the instances after the call.\n\n"
    "Terminating an instance twice is not an error. Stops at the first instance the service "
    "refuses (exit status 1).",
)


@main.command(name="wait")
@click.argument("instance_ids", metavar="ID...", nargs=-1, required=True)
@click.option(
    "--state",
    default="running",
    show_default=True,
    help="The state to wait for (running, stopped, terminated, ...).",
)
@_with(wait_options)
@instance_options
@service_command
def wait_command(
    client: Client,
    output: Output,
    instance_ids: tuple[str, ...],
    state: str,
    timeout: float,
    interval: float,
    region: str | None,
) -> None:
    """Wait until every instance is in a state, with live progress; then print them.

    Gives up (exit status 1) when the time-out passes, or at once when an instance is shutting
    down or terminated and the state wanted is neither.
    """
    output.instances(_wait(client, output, list(instance_ids), state, timeout, region, interval))


@main.group()
def token() -> None:
    """Bearer tokens for calling services (same as launchprov-token)."""


@token.command()
@click.argument("caller")
def mint(caller: str) -> None:
    """Mint a bearer token for CALLER (letters, digits, _ or -).

    Prints the token, to give to the caller (it is stored nowhere), and the line to add to
    launchprov.auth.tokens (or LAUNCHPROV_AUTH_TOKENS), which holds only its digest.
    """
    from launchprov.scripts import token as token_script  # the service's own minting

    try:
        status = token_script.main([caller])
    except SystemExit as exit_:  # argparse's usage error
        status = 2 if exit_.code else 0
    raise click.exceptions.Exit(status)


if __name__ == "__main__":  # pragma: no cover
    main()
