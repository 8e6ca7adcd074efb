"""launchprov-reap CONFIG.ini: terminate the instances whose lease has run out.

Reads the same .ini and environment as the service (its ``[app:main]`` settings, its logging
sections). In every ``--region`` (default: the region of ``launchprov.defaults.placement``) it
lists the live instances that carry both ``launchprov:caller`` and a ``launchprov:expires-at``
in the past, and terminates those whose launchprov tags are signed with
``launchprov.tag_signing_key`` (:mod:`launchprov.signing`) -- never an instance launchprov did
not launch, whatever tags someone wrote on it -- up to 1000 ids a call. Without a key it refuses
to run, unless ``--trust-unsigned`` says to take ``launchprov:caller`` alone as the proof (what
it did before signatures). Prints one JSON line per instance, then a summary line. Exit status: 0
when every termination succeeded, 1 when some failed (each is named), 2 on a configuration
error.

Several reapers may run at once (cron on several hosts, a CronJob): terminating an instance
twice is not an error, and each reports only what its own call terminated (EC2 answers each
instance's previous state): an instance another reaper was first to terminate is
``already-terminated``, not counted twice.
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

from launchprov import leases, signing
from launchprov.launching import CALLER_TAG
from launchprov.logs import install_record_factory, use_json_lines
from launchprov.placement import REGION_PATTERN, region_or_name
from launchprov.providers import create_provider
from launchprov.providers.interface import InstanceNotFound, ProviderError
from launchprov.settings import ConfigurationError, env_var, launch_defaults, load

log = logging.getLogger("launchprov.reap")

SIGNING_KEY = "launchprov.tag_signing_key"
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
    signing_key: str | None = None,
    trust_unsigned: bool = False,
) -> dict[str, Any]:
    """Terminate (or, dry, only list) every expired instance of ``regions`` whose tags are
    signed with ``signing_key`` (every one, signed or not, with ``trust_unsigned``); ``emit``
    one record per instance (and per region that could not be listed). Returns the summary."""
    now = now or datetime.now(UTC)
    summary = {"summary": True, "dry_run": dry_run, "regions": regions, "expired": 0}
    summary.update(terminated=0, already_terminated=0, unsigned=0, failed=0, failures=[])

    def trusted(instance) -> bool:
        if trust_unsigned:
            return True
        return signing_key is not None and signing.is_signed(instance.tags, signing_key)

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
        reapable = []
        for instance in expired:
            if trusted(instance):
                reapable.append(instance)
                continue
            log.warning(
                "not reaping instance %s: its launchprov tags carry no valid %s",
                instance.id,
                signing.SIGNATURE_TAG,
            )
            summary["unsigned"] += 1
            emit(_record(instance, region, "skipped-unsigned"))
        for start in range(0, len(reapable), BATCH):
            batch = reapable[start : start + BATCH]
            outcomes = {}
            if not dry_run:
                outcomes = terminate(provider, [instance.id for instance in batch], region)
            for instance in batch:
                record = _record(instance, region, "would-terminate" if dry_run else "terminated")
                outcome = outcomes.get(instance.id)
                if isinstance(outcome, str):
                    record.update(action="failed", error=outcome)
                    summary["failed"] += 1
                    summary["failures"].append({"id": instance.id, "region": region})
                elif outcome is False:  # another reaper's call began it: not counted twice
                    record.update(action="already-terminated")
                    summary["already_terminated"] += 1
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


def _record(instance, region: str, action: str) -> dict[str, Any]:
    return {
        "id": instance.id,
        "region": region,
        "caller": instance.tags.get(CALLER_TAG),
        "expires_at": leases.expires_at_text(instance),
        "action": action,
    }


def terminate(provider, instance_ids: list[str], region: str) -> dict[str, bool | str]:
    """Terminate ``instance_ids`` in one call; when that call fails, one by one, so that each
    failure is named. Returns id -> True (this call began its termination), False (it had begun
    already: another reaper's work, or the instance is gone) or the error."""
    try:
        began = provider.terminate_many(instance_ids, region)
        if began is None:  # a provider that does not say: each counts as this call's
            return dict.fromkeys(instance_ids, True)
        return {instance_id: began.get(instance_id, False) for instance_id in instance_ids}
    except (ProviderError, InstanceNotFound) as exc:
        # One bad id fails a whole TerminateInstances: find out which, one at a time.
        log.warning(
            "terminating %d instances at once failed (%s): one by one", len(instance_ids), exc
        )
    outcomes: dict[str, bool | str] = {}
    for instance_id in instance_ids:
        try:
            provider.terminate(instance_id, region)
            outcomes[instance_id] = True
        except InstanceNotFound:
            outcomes[instance_id] = False  # gone already: another reaper was quicker
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
    parser.add_argument(
        "--trust-unsigned",
        action="store_true",
        help="terminate expired instances that carry launchprov:caller without a valid "
        "launchprov:signature too (instances launched before launchprov.tag_signing_key was "
        "set); an instance someone else tagged so is terminated as well",
    )
    args = parser.parse_args(argv)  # a usage error exits 2, as a configuration error does

    def emit(record: dict[str, Any]) -> None:
        print(json.dumps(record), flush=True)

    try:
        bad = [region for region in args.region if not _REGION.match(region)]
        if bad:
            raise ConfigurationError(f"--region {bad[0]!r}: expected a region such as us-east-1")
        settings = configure(args.config)
        if settings["launchprov.ec2.sandbox"]:
            raise ConfigurationError(
                "launchprov.ec2.sandbox = true: the sandbox's cloud lives inside each service "
                "process, so a reaper would reap an empty cloud of its own; run it with the .ini "
                "of a deployment whose cloud is shared (EC2, a moto server, a Libcloud cloud)"
            )
        key = settings[SIGNING_KEY]
        if key is None and not args.trust_unsigned:
            raise ConfigurationError(
                f"{SIGNING_KEY} ({env_var(SIGNING_KEY)}) is not set: the reaper terminates only "
                "instances whose launchprov tags are signed with the service's key; set it as "
                "the service has it, or pass --trust-unsigned"
            )
        provider = create_provider(settings)
        placement = launch_defaults(settings, getattr(provider, "cloud_defaults", None))
        regions = args.region or [region_or_name(placement["placement"])]
    except ConfigurationError as exc:
        print(f"launchprov-reap: configuration error: {exc}", file=sys.stderr)
        return 2
    summary = reap(
        provider, list(dict.fromkeys(regions)), args.dry_run, emit, None, key, args.trust_unsigned
    )
    emit(summary)
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
