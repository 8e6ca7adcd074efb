"""The README stays true: every setting documented, the quick start and the sandbox AMI."""

from pathlib import Path

import pytest

from launchprov.settings import SETTINGS
from tests.support import GOOD_AMI

README = (Path(__file__).parents[2] / "README.md").read_text()


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda setting: setting.key)
def test_every_setting_is_documented_with_its_variable(setting):
    assert f"`{setting.key}` | `{setting.env_var}`" in README


def test_the_quick_start_is_two_make_commands():
    assert "make run " in README and "make test " in README


def test_the_sandbox_ami_in_the_readme_is_the_one_the_tests_launch():
    assert f"**`{GOOD_AMI}`**" in README
