"""launchprov as it was before two changes, rebuilt on its public seams, to measure what they
bought.

Both changes came out of this harness's profile (benchmarks/ANALYSIS.md) and are now in
launchprov; these variants undo them at startup, without editing launchprov:

* R1: the EC2 clients keep as many connections as waitress has threads
  (``launchprov.ec2.max_pool_connections``, production.ini 16). Before, botocore's default 10:
  beyond 10 concurrent calls urllib3 opened a connection for each extra call and threw it away
  afterwards, logging "Connection pool is full" at WARNING.
* R2: what views reach through the request (``request.provider``, ``request.validators`` and
  whatever else launchprov hands them) are attributes of the Request class launchprov registers
  as its request factory. Before, ``add_request_method(reify=True)`` made Pyramid build a new
  class for every request.

Each variant rests on a seam that lasts as long as the change it undoes: a setting (R1), and
Pyramid's own API on the app's registry (R2: the request factory and its attributes, whatever
they are, registered again as reified request methods). A variant whose seam is gone raises
:class:`NotApplicable`: the harness then fails instead of measuring launchprov as it is under
the variant's name. (R3, the caller worked out once per request, had no such seam: the cache
lives inside the security policy. It was dropped; see benchmarks/README.md.)

:func:`launchprov_before` is a ``paste.app_factory`` (``use = call:benchmarks.variants:...``).
"""

from __future__ import annotations

from pyramid.config import Configurator
from pyramid.interfaces import IRequestFactory
from pyramid.request import Request

import launchprov
from launchprov.metrics import MeteredProvider
from launchprov.providers.interface import IProvider
from launchprov.settings import BY_KEY

#: The setting R1 added, and botocore's default pool: what launchprov had before R1.
POOL_SETTING = "launchprov.ec2.max_pool_connections"
BOTOCORE_DEFAULT_POOL = "10"


class NotApplicable(LookupError):
    """launchprov changed so that a variant can no longer be rebuilt."""


def request_attributes(app) -> dict:
    """What launchprov hands its views through the request: the attributes its request factory
    adds to Pyramid's Request (R2). Raises NotApplicable when it adds none."""
    factory = app.registry.queryUtility(IRequestFactory)
    if not (isinstance(factory, type) and issubclass(factory, Request) and factory is not Request):
        raise NotApplicable(f"R2: launchprov's request factory is {factory!r}, no Request class")
    attributes = {
        name: value
        for klass in factory.__mro__[: factory.__mro__.index(Request)]
        for name, value in vars(klass).items()
        if not name.startswith("__")
    }
    if not attributes:
        raise NotApplicable(f"R2: launchprov's request class {factory.__name__} adds nothing")
    return attributes


def reified_properties(app):
    """Undo R2 on ``app``: its request attributes as reified request methods again.

    What ``config.add_request_method(lambda request: value, name, reify=True)`` registered
    before R2, on Pyramid's default request factory; the rest of the app (its registry: routes,
    views, tweens, security policy) is the same. Raises NotApplicable (see request_attributes).
    """
    attributes = request_attributes(app)
    config = Configurator(registry=app.registry)
    config.set_request_factory(Request)
    for name, value in attributes.items():
        config.add_request_method(lambda request, value=value: value, name, reify=True)
    return config.make_wsgi_app()


def without_provider_metrics(app):
    """``app`` without the :class:`~launchprov.metrics.MeteredProvider` around its adapter.

    Its wrapper (the provider registered for IProvider, or one below it: each wrapper holds
    the next in ``provider``) calls the adapter directly. Raises NotApplicable without one.
    """
    outer = app.registry.getUtility(IProvider)
    while (inner := getattr(outer, "provider", None)) is not None:
        if isinstance(inner, MeteredProvider):
            outer.provider = inner.provider
            return app
        outer = inner
    raise NotApplicable("launchprov's provider has no MeteredProvider to take out")


def launchprov_before(global_config, **settings):
    """launchprov without R1 and R2 (``paste.app_factory``). Raises NotApplicable."""
    if POOL_SETTING not in BY_KEY:
        raise NotApplicable(f"R1: launchprov has no setting {POOL_SETTING}")
    settings = {**settings, POOL_SETTING: BOTOCORE_DEFAULT_POOL}
    return reified_properties(launchprov.main(global_config, **settings))
