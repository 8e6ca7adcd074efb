"""Changes to launchprov, applied from outside so that they can be measured without editing it.

Each one stands for a change recommended in ANALYSIS.md:

* :class:`PooledEC2Provider`: the EC2 clients keep as many connections as waitress has threads
  (botocore keeps 10 by default; with more concurrent calls urllib3 opens a new connection for
  each extra call and throws it away afterwards, logging "Connection pool is full").
* :func:`request_class`: ``request.provider`` and ``request.validators`` as attributes of a
  Request subclass (``config.set_request_factory``) instead of ``add_request_method(reify=True)``,
  for which Pyramid builds a new class for every request.
* :func:`tuned_launchprov`: both, as a ``paste.app_factory`` (``use = call:...``).
"""

from __future__ import annotations

import os
import sys

from botocore.config import Config
from pyramid.interfaces import IRequestExtensions
from pyramid.request import Request

import launchprov
from launchprov.providers.ec2 import EC2Provider

#: Connections per EC2 client in :class:`PooledEC2Provider`: waitress's thread count.
POOL_SIZE_VARIABLE = "BENCH_MAX_POOL_CONNECTIONS"


class PooledEC2Provider(EC2Provider):
    """The boto3 adapter with ``max_pool_connections`` = the waitress thread count."""

    def __init__(self, config: Config, *args, **kwargs):
        pool = int(os.environ.get(POOL_SIZE_VARIABLE, "16"))
        super().__init__(config.merge(Config(max_pool_connections=pool)), *args, **kwargs)


#: The request properties launchprov reifies and whose value does not depend on the request.
CONSTANT_PROPERTIES = ("provider", "validators")


def request_class(app):
    """Move launchprov's constant request properties onto a Request subclass of ``app``.

    What ``config.set_request_factory(type("Request", (Request,), {...}))`` in launchprov.main
    would do. Returns ``app``; raises LookupError when launchprov no longer has the properties.
    """
    extensions = app.registry.queryUtility(IRequestExtensions)
    descriptors = extensions.descriptors if extensions is not None else {}
    missing = [name for name in CONSTANT_PROPERTIES if name not in descriptors]
    if missing:
        raise LookupError(f"launchprov has no reified request property {', '.join(missing)}")
    # reify(wrapped): launchprov's callables ignore the request, so None stands in for it.
    attributes = {name: descriptors.pop(name).wrapped(None) for name in CONSTANT_PROPERTIES}
    app.request_factory = type("Request", (app.request_factory or Request,), attributes)
    return app


#: Printed by :func:`tuned_launchprov` when launchprov has changed so that a change no longer
#: applies; the harness looks for it in the server's output and says so in RESULTS.md.
NOT_APPLIED = "benchmarks.variants: not applied:"


def tuned_launchprov(global_config, **settings):
    """launchprov with both changes (``paste.app_factory``)."""
    settings = {**settings, "launchprov.provider": "benchmarks.variants:PooledEC2Provider"}
    app = launchprov.main(global_config, **settings)
    try:
        return request_class(app)
    except LookupError as exc:
        print(f"{NOT_APPLIED} request_class: {exc}", file=sys.stderr, flush=True)
        return app
