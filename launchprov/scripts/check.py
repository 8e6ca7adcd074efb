"""launchprov-check CONFIG.ini: check a configuration against its cloud, launching nothing.

Builds the app from the .ini as ``pserve`` does (PasteDeploy's reading of ``[app:main]``, the
environment's ``LAUNCHPROV_*`` variables, :func:`launchprov.app.create_app`), without serving,
then asks the cloud: the credentials (STS GetCallerIdentity on EC2; the driver's cheapest
authenticated call elsewhere), the default region and zone, key pair and security groups, the
images ``launchprov.policy.amis`` names, a RunInstances with DryRun of the defaults (with
``--ami``, or the policy's first image), and the Redis of the rate limits (PING). Prints a table
(check, ok / failed / skipped, why). Exit status: 0 when no check failed, 1 when one did, 2 when
the configuration itself cannot be used (one line naming the setting).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from launchprov.checks import FAILED, table
from launchprov.settings import ConfigurationError

#: Seconds each call of a check waits, by default: a cloud that takes longer fails the check.
TIMEOUT = 10.0


def build(config_uri: str):
    """The app of ``config_uri``'s ``[app:main]``, as pserve would make it, without the
    background checks of startup."""
    from pyramid.paster import get_appsettings, setup_logging  # the service's own loaders

    from launchprov.app import create_app

    try:
        raw = get_appsettings(config_uri)
        setup_logging(config_uri)
    except Exception as exc:  # a missing file, no [app:main], a broken logging section
        raise ConfigurationError(f"{config_uri}: {type(exc).__name__}: {exc}") from None
    path = Path(config_uri.partition("#")[0]).resolve()
    global_config = {"__file__": str(path), "here": str(path.parent)}
    return create_app(raw, global_config, startup_checks=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="launchprov-check", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the service's .ini (PasteDeploy), e.g. production.ini")
    parser.add_argument(
        "--ami", help="the image of the dry-run launch (default: launchprov.policy.amis' first id)"
    )
    parser.add_argument(
        "--instance-type",
        help="the instance type of the dry-run launch (default: launchprov.policy."
        "instance_types' first name, else t3.micro)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=TIMEOUT,
        help=f"seconds each call may take (default {TIMEOUT:g})",
    )
    args = parser.parse_args(argv)  # a usage error exits 2, as a configuration error does
    try:
        app = build(args.config)
    except ConfigurationError as exc:
        print(f"launchprov-check: configuration error: {exc}", file=sys.stderr)
        return 2
    results = app.registry.launchprov_configuration_checks(
        args.timeout, ami=args.ami, instance_type=args.instance_type
    )
    print(table(results), flush=True)
    return 1 if any(result.status == FAILED for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
