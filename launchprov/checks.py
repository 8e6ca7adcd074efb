"""The deployment's configuration checked against its cloud, launching nothing.

``launchprov-check CONFIG.ini`` prints these checks as a table; the service runs them at startup
(``launchprov.startup_checks``, in the background) and logs each failure as one WARNING line:
the credentials, the default region and zone, key pair and security groups, the images that
``launchprov.policy.amis`` names (ids, not globs), a RunInstances with DryRun of the defaults,
and the Redis of the rate limits. A provider that knows how to check itself has
``configuration_checks(request, images, timeout)`` (EC2); any other is asked its
``ping`` (the driver's cheapest authenticated call) and, given an image, its ``preflight``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from launchprov.launching import CALLER_TAG, REQUEST_ID_TAG
from launchprov.providers.interface import Check, LaunchRequest, ProviderError

log = logging.getLogger(__name__)

OK, FAILED, SKIPPED = "ok", "failed", "skipped"

#: The caller the dry-run launch names in its launchprov:caller tag (as a launch tags it: an
#: IAM policy that asks for the tag is checked too).
CHECK_CALLER = "launchprov-check"
#: The instance type of the dry run when neither --instance-type nor the policy names one.
DRY_RUN_INSTANCE_TYPE = "t3.micro"

_GLOB = frozenset("*?[")


@dataclasses.dataclass(frozen=True)
class Result:
    """One row of the table: what was checked, ok / failed / skipped, and why."""

    check: str
    status: str
    why: str = ""

    @classmethod
    def of(cls, check: Check) -> Result:
        if check.ok:
            return cls(check.name, OK, check.message or "")
        why = ": ".join(part for part in (check.code, check.message) if part)
        return cls(check.name, FAILED, why)


def named(patterns) -> list[str]:
    """The names among ``patterns`` that are not globs (``ami-*`` names no image to ask for)."""
    return [pattern for pattern in patterns if not _GLOB & set(pattern)]


def probe_request(defaults: Mapping[str, Any], ami: str, instance_type: str) -> LaunchRequest:
    """The launch a request giving only ``ami`` and ``instance_type`` would make: the
    deployment's defaults, and launchprov's tags as every launch carries them."""
    return LaunchRequest(
        ami=ami,
        instance_type=instance_type,
        key_name=defaults.get("key_name"),
        security_groups=defaults.get("security_groups"),
        placement=defaults.get("placement"),
        metadata_tokens=defaults.get("metadata_tokens") or "required",
        system_tags={CALLER_TAG: CHECK_CALLER, REQUEST_ID_TAG: CHECK_CALLER},
    )


def run(
    provider,
    settings: Mapping[str, Any],
    defaults: Mapping[str, Any],
    timeout: float,
    ami: str | None = None,
    instance_type: str | None = None,
) -> list[Result]:
    """Every check of the deployment whose parsed ``settings`` built ``provider`` (the adapter,
    unguarded) and whose launch ``defaults`` are given; each call waits ``timeout`` seconds at
    most. ``ami`` and ``instance_type`` are those of the dry run (default: the first named in
    ``launchprov.policy.amis`` and ``.instance_types``)."""
    given = [ami] if ami else []
    images = list(dict.fromkeys([*given, *named(settings["launchprov.policy.amis"])]))
    types = named(settings["launchprov.policy.instance_types"])
    instance_type = instance_type or (types[0] if types else DRY_RUN_INSTANCE_TYPE)
    request = probe_request(defaults, images[0] if images else "", instance_type)
    checks = getattr(provider, "configuration_checks", None)
    if checks is not None:
        results = [Result.of(check) for check in checks(request, images, timeout)]
    else:
        results = _asked(provider, request, images, timeout)
    if not images:
        results.append(
            Result(
                "dry-run launch",
                SKIPPED,
                "no image to launch: name AMI ids in launchprov.policy.amis, or pass --ami",
            )
        )
    results += ratelimit_storage(settings["launchprov.ratelimit.storage_uri"], timeout)
    return results


def _asked(provider, request: LaunchRequest, images: list[str], timeout: float) -> list[Result]:
    """The checks of a provider without ``configuration_checks``: its ping, and the pre-flight
    of a launch of each image (the first in full, the others' image check)."""
    try:
        provider.ping(timeout)
        results = [Result("credentials", OK, f"the {provider.name} provider answered")]
    except ProviderError as exc:
        results = [Result("credentials", FAILED, f"{exc.code}: {exc.message}")]
    except Exception as exc:  # a third-party adapter's own failure: the row says what
        results = [Result("credentials", FAILED, f"{type(exc).__name__}: {exc}")]
    for number, image in enumerate(images):
        try:
            checks = provider.preflight(dataclasses.replace(request, ami=image))
        except ProviderError as exc:  # an unreachable cloud
            results.append(Result(f"image {image}", FAILED, f"{exc.code}: {exc.message}"))
            continue
        except Exception as exc:  # a default the driver refuses: the row says which
            results.append(Result(f"image {image}", FAILED, f"{type(exc).__name__}: {exc}"))
            continue
        for check in checks:
            if check.name == "image":
                results.append(Result.of(dataclasses.replace(check, name=f"image {image}")))
            elif number == 0:  # what a launch with the defaults looks up besides the image
                results.append(
                    Result.of(dataclasses.replace(check, name=f"pre-flight {check.name}"))
                )
    return results


def ratelimit_storage(uri: str, timeout: float) -> list[Result]:
    """PING the Redis of the rate limits (none to check for ``memory://``)."""
    if not uri.startswith("redis"):
        return []
    import redis

    where = uri.split("://", 1)[1].rsplit("@", 1)[-1]  # never a password of the URI
    name = f"rate-limit redis {where}"
    url = uri.replace("redis+unix://", "unix://", 1)
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # any failure is the row's reason
        return [Result(name, FAILED, f"{type(exc).__name__}: {exc}")]
    return [Result(name, OK, "PING answered")]


def warn_failures(results: list[Result]) -> None:
    """One WARNING line per failed check, and one INFO line when none failed."""
    failed = [result for result in results if result.status == FAILED]
    for result in failed:
        log.warning("startup check failed: %s: %s", result.check, result.why)
    if not failed:
        ok = sum(result.status == OK for result in results)
        log.info("startup checks: %d ok, %d skipped", ok, len(results) - ok)


class StartupChecks:
    """What the startup checks found, for /readyz: ``off``, ``running``, then ``ok`` or
    ``failed`` with each failed check and why (``broken``: they could not run)."""

    def __init__(self) -> None:
        self.state = "off"
        self.failed: list[Result] = []

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "failed": [{"check": item.check, "why": item.why} for item in self.failed],
        }


def check_in_background(
    run_checks: Callable[[], list[Result]], found: StartupChecks | None = None
) -> threading.Thread:
    """Run ``run_checks`` in a daemon thread and log its failures (and keep them in ``found``,
    which /readyz shows): the service starts (and answers) meanwhile, as it would when the
    cloud is down and may come back."""
    found = found or StartupChecks()
    found.state = "running"

    def checking() -> None:
        try:
            results = run_checks()
        except Exception:  # a check that breaks must not go unseen, nor stop the service
            log.exception("startup checks could not run")
            found.state = "broken"
            return
        found.failed = [result for result in results if result.status == FAILED]
        found.state = "failed" if found.failed else "ok"
        warn_failures(results)

    thread = threading.Thread(target=checking, name="launchprov-startup-checks", daemon=True)
    thread.start()
    return thread


def table(results: list[Result]) -> str:
    """The results as a table of three columns: check, status, why."""
    rows = [("CHECK", "STATUS", "WHY"), *((r.check, r.status, r.why) for r in results)]
    widths = [max(len(row[column]) for row in rows) for column in (0, 1)]
    return "\n".join(
        f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}".rstrip() for row in rows
    )
