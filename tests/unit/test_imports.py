"""Arrows for the package as a whole: importing an adapter loads no web framework."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import launchprov.providers


def provider_modules() -> list[str]:
    prefix = launchprov.providers.__name__ + "."
    found = pkgutil.walk_packages(launchprov.providers.__path__, prefix)
    return [launchprov.providers.__name__, *sorted(module.name for module in found)]


def test_the_adapters_load_neither_pyramid_nor_webob():
    modules = provider_modules()
    assert "launchprov.providers.ec2" in modules and "launchprov.providers.interface" in modules
    code = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted({name.split('.')[0] for name in sys.modules} & {'pyramid', 'webob'})\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *modules], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "", f"{result.stdout.strip()} loaded by {modules}"


def test_the_package_itself_is_tiny():
    result = subprocess.run(
        [sys.executable, "-c", "import sys, launchprov; print('pyramid' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "False", result.stderr[-2000:]
