"""The WSGI app: settings -> provider -> Configurator -> app.

:func:`create_app` builds it and raises :class:`~launchprov.settings.ConfigurationError` for a
setting that cannot be used; :func:`main`, the ``paste.app_factory`` that ``pserve`` calls
(through ``launchprov:main``), turns that error into a short message and a non-zero exit
instead of a traceback.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Mapping
from typing import Any

from pyramid.config import Configurator
from pyramid.request import Request

from launchprov import bulkhead, checks
from launchprov.auth import CALL, BearerTokenSecurityPolicy
from launchprov.bulkhead import Bulkhead, GuardedProvider
from launchprov.capacity import Capacity, OfferingMemory
from launchprov.logs import count_waitress_queue_depth, install_record_factory, use_json_lines
from launchprov.metrics import MeteredProvider, Metrics, caller_digest
from launchprov.openapi import build_document
from launchprov.ownership import Ownership
from launchprov.policy import Policy
from launchprov.providers import create_provider
from launchprov.providers.interface import IProvider
from launchprov.readiness import Readiness
from launchprov.schemas import Validators
from launchprov.serving import Drain
from launchprov.settings import ConfigurationError, env_var, launch_defaults, load

log = logging.getLogger(__name__)

#: The exit status of a process whose configuration cannot be used (sysexits' EX_CONFIG).
EXIT_CONFIGURATION = 78


def create_app(
    settings: Mapping[str, Any],
    global_config: Mapping[str, Any] | None = None,
    startup_checks: bool | None = None,
):
    """The WSGI app for ``settings`` (the .ini's ``[app:main]`` values).

    Every ``launchprov.*`` setting is parsed and the provider is built here, so that a bad
    setting raises ConfigurationError naming its key instead of failing a request later.
    ``global_config`` (PasteDeploy's) names the .ini, whose waitress threads size the
    provider slots. The configuration checks (:mod:`launchprov.checks`) run in the background
    when ``launchprov.startup_checks`` says so (``startup_checks`` overrides it:
    launchprov-check runs them itself), never for the in-process sandbox; the app's
    ``registry.launchprov_configuration_checks(timeout, ami=None, instance_type=None)`` runs
    them on demand.
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
    caller_labels = launchprov_settings["launchprov.metrics.caller_labels"]
    metrics = Metrics(caller_labels)
    if caller_labels == "hash":
        for caller in sorted(set(tokens.values())):
            log.info("caller %s is %s in the metrics' caller labels", caller, caller_digest(caller))
    count_waitress_queue_depth(metrics.waitress_queue_depth_seen)
    threads = bulkhead.server_threads(global_config)
    configured = launchprov_settings["launchprov.provider_concurrency"]
    slots = bulkhead.concurrency(configured, threads)
    lent = bulkhead.ceiling(
        slots,
        threads,
        configured,
        launchprov_settings["launchprov.provider_lend_reserve"],
        lane=bulkhead.probe_lane(global_config),
    )
    request_deadline = launchprov_settings["launchprov.request_deadline"]
    queue_timeout = launchprov_settings["launchprov.provider_queue_timeout"]
    if queue_timeout is None:
        queue_timeout = bulkhead.QUEUE_SHARE * request_deadline
    adapter = create_provider(launchprov_settings)
    # Tracing off: the adapter itself, and no OpenTelemetry module loaded.
    called, tracer = adapter, None
    if launchprov_settings["launchprov.tracing"]:
        called = tracing_module().instrument(adapter)
        tracer = called.tracer
    metered = MeteredProvider(called, metrics)
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
    # /readyz's view of the cloud, renewed by every provider call that succeeds.
    readiness = Readiness(
        provider.ping,
        launchprov_settings["launchprov.readiness_cache"],
        launchprov_settings["launchprov.readiness_timeout"],
        provider.name,
    )
    metered.on_answer = readiness.answered
    # The deployment's defaults, else the cloud's own (the seed's on EC2, none elsewhere).
    defaults = launch_defaults(launchprov_settings, getattr(adapter, "cloud_defaults", None))
    validators = Validators(defaults, provider)
    policy = Policy.from_settings(launchprov_settings)
    ownership = Ownership(policy, auth_enabled, metrics)
    capacity = Capacity(
        OfferingMemory(launchprov_settings["launchprov.capacity.unavailable_ttl"]),
        lambda name, outcome: metrics.capacity_fallbacks.labels(name, outcome).inc(),
    )
    run_checks = functools.partial(checks.run, adapter, launchprov_settings, defaults)
    with Configurator(settings=settings) as config:
        config.registry.launchprov_settings = launchprov_settings
        config.registry.launchprov_configuration_checks = run_checks
        config.registry.launchprov_startup_checks = startup_found = checks.StartupChecks()
        config.registry.launchprov_metrics = metrics
        config.registry.launchprov_policy = policy
        config.registry.launchprov_readiness = readiness
        # SIGTERM under egg:launchprov#waitress (launchprov.serving): /healthz and /readyz say
        # so while the process drains; the requests in progress get the request deadline.
        config.registry.launchprov_drain = Drain(
            launchprov_settings["launchprov.drain_delay"],
            launchprov_settings["launchprov.request_deadline"],
        )
        scrapers = launchprov_settings["launchprov.metrics.tokens"]
        config.set_security_policy(BearerTokenSecurityPolicy(tokens, auth_enabled, scrapers))
        config.set_default_permission(CALL)
        config.registry.launchprov_openapi = build_document(
            validators, provider.name, auth_enabled, metrics_token=bool(scrapers)
        )
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
        if tracer is not None:
            config.registry.launchprov_tracer = tracer
            config.include(".tracing")
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
    if startup_checks is None:
        startup_checks = launchprov_settings["launchprov.startup_checks"]
    if startup_checks and not launchprov_settings["launchprov.ec2.sandbox"]:
        timeout = launchprov_settings["launchprov.readiness_timeout"]
        checks.check_in_background(lambda: run_checks(timeout), startup_found)
    return config.make_wsgi_app()


def tracing_module():
    """launchprov.tracing, imported only when tracing is on: OpenTelemetry is an extra, and a
    process that does not trace loads none of it."""
    try:
        from launchprov import tracing
    except ImportError as exc:
        raise ConfigurationError(
            f"launchprov.tracing = true needs OpenTelemetry ({exc}): pip install "
            "'launchprov[tracing]' (and 'launchprov[tracing-otlp]' for the otlp exporter)"
        ) from None
    return tracing


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
