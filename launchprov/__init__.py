"""launchprov: the internal REST service that launches and manages cloud instances."""

import logging

from pyramid.config import Configurator
from pyramid.request import Request

from launchprov.auth import CALL, BearerTokenSecurityPolicy
from launchprov.capacity import Capacity, OfferingMemory
from launchprov.logs import install_record_factory, use_json_lines
from launchprov.metrics import MeteredProvider, Metrics
from launchprov.openapi import build_document
from launchprov.ownership import Ownership
from launchprov.policy import Policy
from launchprov.providers import create_provider
from launchprov.providers.interface import IProvider
from launchprov.schemas import Validators
from launchprov.settings import ConfigurationError, launch_defaults, load

log = logging.getLogger(__name__)


def main(global_config, **settings):
    """The WSGI app (``paste.app_factory``): settings -> provider -> Configurator -> app.

    Every ``launchprov.*`` setting is parsed and the provider is built here, so that a bad
    setting stops startup with a message naming its key instead of failing a request later.
    """
    install_record_factory()
    launchprov_settings = load(settings)
    auth_enabled = launchprov_settings["launchprov.auth.enabled"]
    tokens = launchprov_settings["launchprov.auth.tokens"]
    if auth_enabled and not tokens:
        raise ConfigurationError(
            "launchprov.auth.enabled = true but launchprov.auth.tokens lists no caller: every "
            "request would be refused. Mint a token with `launchprov-token CALLER` and add its "
            "line, or set launchprov.auth.enabled = false (development only)."
        )
    if launchprov_settings["launchprov.log_format"] == "json":
        use_json_lines()
    metrics = Metrics()
    provider = MeteredProvider(create_provider(launchprov_settings), metrics)
    defaults = launch_defaults(launchprov_settings)
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
        config.include(".tweens")
        config.include(".ratelimit")
        config.include(".routes")
        config.include(".errors")
        config.include(".views")
    log.info("launchprov ready: provider %s", provider.name)
    return config.make_wsgi_app()
