"""The suite itself: collecting it builds no app, so no app sees the developer's environment.

An app made when a test module is imported is made before the fixture that isolates every test
from the shell's LAUNCHPROV_* and AWS_* variables: with LAUNCHPROV_PROVIDER=ec2 in the shell, a
recording stub would silently become real EC2 with the shell's credentials.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def test_importing_every_test_module_builds_no_app():
    modules = sorted(
        ".".join(path.relative_to(TESTS.parent).with_suffix("").parts)
        for path in TESTS.rglob("test_*.py")
    )
    # A provider that cannot be built: any app made at import time fails to start.
    env = dict(os.environ, LAUNCHPROV_PROVIDER="no.such.module:Provider")
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    result = subprocess.run(
        [sys.executable, "-c", code, *modules],
        cwd=TESTS.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
