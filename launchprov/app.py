"""The WSGI app: settings -> provider -> Configurator -> app.

:func:`create_app` builds it and raises :class:`~launchprov.settings.ConfigurationError` for a
setting that cannot be used; :func:`main`, the ``paste.app_factory`` that ``pserve`` calls
(through ``launchprov:main``), turns that error into a short message and a non-zero exit
instead of a traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

from pyramid.config import Configurator
from pyramid.request import Request

from launchprov import bulkhead
from launchprov.auth import CALL, BearerTokenSecurityPolicy
from launchprov.bulkhead import Bulkhead, GuardedProvider
from launchprov.capacity import Capacity, OfferingMemory
from launchprov.logs import count_waitress_queue_depth, install_record_factory, use_json_lines
from launchprov.metrics import MeteredProvider, Metrics
from launchprov.openapi import build_document
from launchprov.ownership import Ownership
from launchprov.policy import Policy
from launchprov.providers import create_provider
from launchprov.providers.interface import IProvider
from launchprov.schemas import Validators
from launchprov.settings import ConfigurationError, env_var, launch_defaults, load

log = logging.getLogger(__name__)

#: The exit status of a process whose configuration cannot be used (sysexits' EX_CONFIG).
EXIT_CONFIGURATION = 78


def create_app(settings: Mapping[str, Any], global_config: Mapping[str, Any] | None = None):
    """The WSGI app for ``settings`` (the .ini's ``[app:main]`` values).

    Every ``launchprov.*`` setting is parsed and the provider is built here, so that a bad
    setting raises ConfigurationError naming its key instead of failing a request later.
    ``global_config`` (PasteDeploy's) names the .ini, whose waitress threads size the
    provider slots.
    """
    settings = dict(settings)
    install_record_factory()
    launchprov_settings = load(settings)
    auth_enabled = launchprov_settings["launchprov.auth.enabled"]
    tokens = launchprov_settings["launchprov.auth.tokens"]
    if auth_enabled and not tokens:
        raise ConfigurationError(
            "launchprov.auth.enabled = true but launchprov.auth.tokens "
            f"({env_var('launchprov.auth.tokens')}) lists no caller: every request would be "
            "refused. Mint a token with `launchprov-token CALLER` and add its line, or set "
            "launchprov.auth.enabled = false (development only)."
        )
    if launchprov_settings["launchprov.log_format"] == "json":
        use_json_lines()
    metrics = Metrics()
    count_waitress_queue_depth(metrics.waitress_queue_depth_seen)
    threads = bulkhead.server_threads(global_config)
    configured = launchprov_settings["launchprov.provider_concurrency"]
    slots = bulkhead.concurrency(configured, threads)
    lent = bulkhead.ceiling(
        slots, threads, configured, launchprov_settings["launchprov.provider_lend_reserve"]
    )
    request_deadline = launchprov_settings["launchprov.request_deadline"]
    queue_timeout = launchprov_settings["launchprov.provider_queue_timeout"]
    if queue_timeout is None:
        queue_timeout = bulkhead.QUEUE_SHARE * request_deadline
    adapter = create_provider(launchprov_settings)
    metered = MeteredProvider(adapter, metrics)
    provider = GuardedProvider(
        metered,
        Bulkhead(
            slots,
            queue_timeout,
            ceiling=lent,
            stall_timeout=launchprov_settings["launchprov.provider_stall_timeout"],
        ),
        request_deadline,
        on_rejected=metrics.provider_rejected.labels(metered.name).inc,
        on_deadline=lambda operation: metrics.provider_deadline_exceeded.labels(
            metered.name, operation
        ).inc(),
    )
    metrics.watch(provider.bulkhead)
    # The deployment's defaults, else the cloud's own (the seed's on EC2, none elsewhere).
    defaults = launch_defaults(launchprov_settings, getattr(adapter, "cloud_defaults", None))
    validators = Validators(defaults, provider)
    policy = Policy.from_settings(launchprov_settings)
    ownership = Ownership(policy, auth_enabled, metrics)
    capacity = Capacity(
        OfferingMemory(launchprov_settings["launchprov.capacity.unavailable_ttl"]),
        lambda name, outcome: metrics.capacity_fallbacks.labels(name, outcome).inc(),
    )
    with Configurator(settings=settings) as config:
        config.registry.launchprov_settings = launchprov_settings
        config.registry.launchprov_metrics = metrics
        config.registry.launchprov_policy = policy
        config.set_security_policy(BearerTokenSecurityPolicy(tokens, auth_enabled))
        config.set_default_permission(CALL)
        config.registry.launchprov_openapi = build_document(validators, provider.name, auth_enabled)
        config.registry.registerUtility(provider, IProvider)
        # Views reach the provider and the bound schemas through the request: plain class
        # attributes (add_request_method would build a new class for every request).
        attributes = {
            "provider": provider,
            "validators": validators,
            "ownership": ownership,
            "capacity": capacity,
        }
        config.set_request_factory(type("LaunchprovRequest", (Request,), attributes))
        config.include(".rendering")
        config.include(".tweens")
        config.include(".ratelimit")
        config.include(".routes")
        config.include(".errors")
        config.include(".views")
    log.info(
        "launchprov ready: provider %s, %d provider calls at once (%d while the provider "
        "stalls; waitress threads: %s), waiting at most %g s for a slot",
        provider.name,
        lent,
        slots,
        threads if threads is not None else "unknown",
        queue_timeout,
    )
    return config.make_wsgi_app()


def main(global_config, **settings):
    """The ``paste.app_factory``: :func:`create_app`, or a short message and exit status 78.

    ``pserve`` would print a configuration error as a 30-line traceback with the message on its
    last line; the message alone (it names the setting and its environment variable, and never
    holds a secret's value) is what an operator needs.
    """
    try:
        return create_app(settings, global_config)
    except ConfigurationError as exc:
        if logging.getLogger().handlers:  # pserve set logging up from the .ini
            log.critical("launchprov cannot start: %s", exc)
        else:
            print(f"launchprov cannot start: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIGURATION) from None
