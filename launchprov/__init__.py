"""launchprov: the internal REST service that launches and manages cloud instances.

Tiny on purpose: importing a part of the package (an adapter, the settings) must not load
Pyramid. The app is built in :mod:`launchprov.app`.
"""


def main(global_config, **settings):
    """The ``paste.app_factory`` (``use = egg:launchprov``): see :func:`launchprov.app.main`."""
    from launchprov.app import main as app_main

    return app_main(global_config, **settings)
