"""launchprov as it was before two changes, rebuilt from outside, to measure what they bought.

Both changes came out of this harness's profile (benchmarks/ANALYSIS.md) and are now in
launchprov; these variants undo them at startup, without editing launchprov:

* R1: the EC2 clients keep as many connections as waitress has threads
  (``launchprov.ec2.max_pool_connections``, production.ini 16). Before, botocore's default 10:
  beyond 10 concurrent calls urllib3 opened a connection for each extra call and threw it away
  afterwards, logging "Connection pool is full" at WARNING.
* R2: ``request.provider`` and ``request.validators`` are attributes of a Request subclass.
  Before, ``add_request_method(reify=True)`` made Pyramid build a new class for every request.

:func:`launchprov_before` is a ``paste.app_factory`` (``use = call:benchmarks.variants:...``).
"""

from __future__ import annotations

import sys

from pyramid.util import InstancePropertyHelper

import launchprov
from launchprov.settings import BY_KEY

#: The request attributes R2 moved onto the Request class.
CONSTANT_PROPERTIES = ("provider", "validators")
#: botocore's default pool, what launchprov had before R1.
BOTOCORE_DEFAULT_POOL = "10"
#: Printed when launchprov has changed so that a variant no longer applies; the harness looks
#: for it in the server's output and says so in RESULTS.md.
NOT_APPLIED = "benchmarks.variants: not applied:"


class RequestExtensions:
    """What Pyramid's router applies to every request (pyramid.interfaces.IRequestExtensions)."""

    def __init__(self):
        self.descriptors: dict = {}
        self.methods: dict = {}


def reified_properties(app):
    """Undo R2 on ``app``: its constant request attributes as reified properties again.

    What ``config.add_request_method(lambda request: value, name, reify=True)`` registers.
    Raises LookupError when launchprov's Request class has no such attributes.
    """
    request_class = app.request_factory
    values = {name: vars(request_class).get(name) for name in CONSTANT_PROPERTIES}
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise LookupError(f"launchprov's Request class has no {', '.join(missing)}")
    extensions = app.request_extensions or RequestExtensions()
    for name, value in values.items():
        _, descriptor = InstancePropertyHelper.make_property(
            lambda request, value=value: value, name=name, reify=True
        )
        extensions.descriptors[name] = descriptor
    app.request_extensions = extensions
    app.request_factory = request_class.__bases__[0]
    return app


def launchprov_before(global_config, **settings):
    """launchprov without R1 and R2 (``paste.app_factory``)."""
    if "launchprov.ec2.max_pool_connections" in BY_KEY:
        settings = {**settings, "launchprov.ec2.max_pool_connections": BOTOCORE_DEFAULT_POOL}
    else:
        print(f"{NOT_APPLIED} R1: no launchprov.ec2.max_pool_connections", file=sys.stderr)
    app = launchprov.main(global_config, **settings)
    try:
        return reified_properties(app)
    except LookupError as exc:
        print(f"{NOT_APPLIED} R2: {exc}", file=sys.stderr, flush=True)
        return app
