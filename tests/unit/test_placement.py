"""Availability zones and their regions."""

import pytest

from launchprov.placement import is_zone, region_of


@pytest.mark.parametrize(
    ("zone", "region"),
    [
        ("us-east-1b", "us-east-1"),
        ("eu-central-1c", "eu-central-1"),
        ("ap-southeast-2a", "ap-southeast-2"),
        ("us-gov-west-1a", "us-gov-west-1"),
        ("us-west-2-lax-1a", "us-west-2"),
        ("us-east-1-wl1-bos-wlz-1", "us-east-1"),
    ],
)
def test_region_of_a_zone(zone, region):
    assert is_zone(zone)
    assert region_of(zone) == region


@pytest.mark.parametrize("name", ["us-east-1", "us-east-1B", "useast1b", "", "us-east-1b\n"])
def test_not_zones(name):
    assert not is_zone(name)
    with pytest.raises(ValueError, match="not an availability-zone name"):
        region_of(name)
