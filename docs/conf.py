"""Sphinx configuration of launchprov's documentation.

Build from the repository root: ``sphinx-build -W --keep-going -b html docs docs/_build/html``.
The reference pages are generated from the code by ``_ext/launchprov_docs.py``, so launchprov
and its dependencies must be importable (the package is installed editable in the venv).
"""

import sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The local extension; then the checkout these pages sit in, before any other launchprov.
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(1, str(HERE.parent))

project = "launchprov"
author = "launchprov maintainers"
copyright = "2012-2026, launchprov maintainers"
try:
    release = metadata.version("launchprov")
except metadata.PackageNotFoundError:
    release = "unknown"
version = release

extensions = ["launchprov_docs", "launchprov_cli_docs", "sphinx.ext.autodoc"]
# The client's reference (client.rst): signatures without annotations, whose httpx and typing
# names have no page to link to here; the docstrings say what each parameter is.
autodoc_typehints = "none"

root_doc = "index"
exclude_patterns = ["_build"]
# Every page is checked as a whole: no unknown references, no orphan page.
nitpicky = True

# The raw OpenAPI document is written into the HTML output by the extension, not a source.
linkcheck_ignore = [r"^openapi\.json$"]

html_theme = "alabaster"
html_title = "launchprov"
html_static_path = ["_static"]
html_css_files = ["launchprov.css"]
html_theme_options = {
    "description": "Launch & Provision Internal API",
    "page_width": "1100px",
    "sidebar_width": "230px",
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}
