"""launchprov-reap CONFIG.ini: terminate the instances whose lease has run out.

Reads the same .ini and environment as the service (its ``[app:main]`` settings, its logging
sections). In every ``--region`` (default: the region of ``launchprov.defaults.placement``) it
lists the live instances that carry both ``launchprov:caller`` -- never anything launchprov did
not launch -- and a ``launchprov:expires-at`` in the past, and terminates them, up to 1000 ids
a call. Prints one JSON line per instance, then a summary line. Exit status: 0 when every
termination succeeded, 1 when some failed (each is named), 2 on a configuration error.

Several reapers may run at once (cron on several hosts, a CronJob): terminating an instance
twice is not an error, and one already gone counts as done.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from launchprov import leases
from launchprov.launching import CALLER_TAG
from launchprov.logs import install_record_factory, use_json_lines
from launchprov.placement import REGION_PATTERN, region_or_name
from launchprov.providers import create_provider
from launchprov.providers.interface import InstanceNotFound, ProviderError
from launchprov.settings import ConfigurationError, launch_defaults, load

log = logging.getLogger("launchprov.reap")

#: EC2 takes at most this many ids in one TerminateInstances.
BATCH = 1000

_REGION = re.compile(rf"\A{REGION_PATTERN}\Z")


def configure(config_uri: str) -> dict[str, Any]:
    """The parsed settings of the .ini's app, with its logging set up as the service's."""
    from pyramid.paster import get_appsettings, setup_logging  # the service's own loaders

    try:
        raw = get_appsettings(config_uri)
        setup_logging(config_uri)
    except Exception as exc:  # a missing file, no [app:main], a broken logging section
        raise ConfigurationError(f"{config_uri}: {type(exc).__name__}: {exc}") from None
    install_record_factory()
    settings = load(raw)
    if settings["launchprov.log_format"] == "json":
        use_json_lines()
    return settings


def reap(
    provider,
    regions: list[str],
    dry_run: bool,
    emit: Callable[[dict[str, Any]], None],
    now: datetime | None = None,
) -> dict[str, Any]:
    """Terminate (or, dry, only list) every expired instance of ``regions``; ``emit`` one
    record per instance (and per region that could not be listed). Returns the summary."""
    now = now or datetime.now(UTC)
    summary = {"summary": True, "dry_run": dry_run, "regions": regions, "expired": 0}
    summary.update(terminated=0, failed=0, failures=[])
    for region in regions:
        try:
            expired = leases.expired_instances(provider, region, now)
        except ProviderError as exc:
            log.error("cannot list the instances of %s: %s", region, exc)
            failure = {"region": region, "action": "list-failed", "error": str(exc)}
            summary["failed"] += 1
            summary["failures"].append(failure)
            emit(failure)
            continue
        summary["expired"] += len(expired)
        for start in range(0, len(expired), BATCH):
            batch = expired[start : start + BATCH]
            outcomes = {}
            if not dry_run:
                outcomes = terminate(provider, [instance.id for instance in batch], region)
            for instance in batch:
                record = {
                    "id": instance.id,
                    "region": region,
                    "caller": instance.tags.get(CALLER_TAG),
                    "expires_at": leases.expires_at_text(instance),
                    "action": "would-terminate" if dry_run else "terminated",
                }
                error = outcomes.get(instance.id)
                if error is not None:
                    record.update(action="failed", error=error)
                    summary["failed"] += 1
                    summary["failures"].append({"id": instance.id, "region": region})
                elif not dry_run:
                    summary["terminated"] += 1
                    log.info(
                        "reaped instance %s of %s (expired at %s)",
                        instance.id,
                        record["caller"],
                        record["expires_at"],
                    )
                emit(record)
    return summary


def terminate(provider, instance_ids: list[str], region: str) -> dict[str, str | None]:
    """Terminate ``instance_ids`` in one call; when that call fails, one by one, so that each
    failure is named. Returns id -> None (done) or the error."""
    try:
        provider.terminate_many(instance_ids, region)
        return dict.fromkeys(instance_ids)
    except (ProviderError, InstanceNotFound) as exc:
        # One bad id fails a whole TerminateInstances: find out which, one at a time.
        log.warning(
            "terminating %d instances at once failed (%s): one by one", len(instance_ids), exc
        )
    outcomes: dict[str, str | None] = {}
    for instance_id in instance_ids:
        try:
            provider.terminate(instance_id, region)
            outcomes[instance_id] = None
        except InstanceNotFound:
            outcomes[instance_id] = None  # gone already: another reaper was quicker
        except ProviderError as exc:
            log.error("cannot terminate %s: %s", instance_id, exc)
            outcomes[instance_id] = str(exc)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="launchprov-reap", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the service's .ini (PasteDeploy), e.g. production.ini")
    parser.add_argument(
        "--region",
        action="append",
        default=[],
        help="a region to reap (repeatable); default: the region of launchprov.defaults.placement",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list what would be terminated; terminate nothing"
    )
    args = parser.parse_args(argv)  # a usage error exits 2, as a configuration error does

    def emit(record: dict[str, Any]) -> None:
        print(json.dumps(record, separators=(", ", ": ")), flush=True)

    try:
        bad = [region for region in args.region if not _REGION.match(region)]
        if bad:
            raise ConfigurationError(f"--region {bad[0]!r}: expected a region such as us-east-1")
        settings = configure(args.config)
        provider = create_provider(settings)
        placement = launch_defaults(settings, getattr(provider, "cloud_defaults", None))
        regions = args.region or [region_or_name(placement["placement"])]
    except ConfigurationError as exc:
        print(f"launchprov-reap: configuration error: {exc}", file=sys.stderr)
        return 2
    summary = reap(provider, list(dict.fromkeys(regions)), args.dry_run, emit)
    emit(summary)
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
