"""The Apache Libcloud adapter: launches through any libcloud compute driver.

``launchprov.libcloud.driver`` names the driver (``ec2``, ``openstack``, ``gce``,
``azure_arm``, ``digitalocean``, ``vultr``, ``linode``, ``cloudstack``, ``dummy``, or any other
libcloud compute provider through the generic profile). One module per job:

:mod:`.profile`, :mod:`.profiles`
    what differs per driver: one declarative profile each (construction, parameter mapping,
    launch arguments, actions, reading back);
:mod:`.construction`
    building a driver from settings, checking ``launch_kwargs`` at startup;
:mod:`.catalog`
    images, sizes and locations by id or name, remembered for ``catalog_ttl``;
:mod:`.instances`
    nodes read back as launchprov's Instance, tolerantly;
:mod:`.errors`
    every driver failure as a ProviderError;
:mod:`.ec2`
    libcloud's EC2 driver: its profile and the EC2 calls sent directly;
:mod:`.drivers`
    the drivers launchprov builds instead of libcloud's (EC2 reading moto, a cloudlike dummy);
:mod:`.provider`
    :class:`LibcloudProvider`, the IProvider.

This package is called ``libcloud`` inside ``launchprov.providers``; absolute imports keep
``import libcloud`` meaning the library.
"""

from launchprov.providers.libcloud.errors import NAME
from launchprov.providers.libcloud.provider import LibcloudProvider

__all__ = ["NAME", "LibcloudProvider"]
