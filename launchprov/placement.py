"""Availability-zone names and the EC2 regions they belong to."""

import re

# A region is ``us-east-1``, ``us-gov-west-1``, ``cn-north-1``, ``us-isob-east-1``. A zone is the
# region plus a letter (``us-east-1b``) or plus a local-zone / wavelength suffix
# (``us-west-2-lax-1a``, ``us-east-1-wl1-bos-wlz-1``).
REGION_PATTERN = r"[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-[0-9]+"  # [0-9]: \d takes any digit
ZONE_PATTERN = rf"(?P<region>{REGION_PATTERN})(?:[a-z]|(?:-[a-z0-9]+)+)"
_ZONE = re.compile(rf"\A{ZONE_PATTERN}\Z")


def is_zone(name: str) -> bool:
    """True when ``name`` has the shape of an availability-zone name."""
    return _ZONE.match(name) is not None


def region_of(zone: str) -> str:
    """The region of an availability zone: ``us-east-1b`` -> ``us-east-1``.

    Raises ValueError when ``zone`` is not an availability-zone name.
    """
    match = _ZONE.match(zone)
    if match is None:
        raise ValueError(f"not an availability-zone name: {zone!r}")
    return match.group("region")


def region_or_name(placement: str | None) -> str:
    """The region of a placement: an availability zone's EC2 region, another cloud's location
    name itself (``eastus`` is its own region), and "" for no placement (the cloud chooses)."""
    if placement is None:
        return ""
    try:
        return region_of(placement)
    except ValueError:
        return placement
