"""Benchmarks of launchprov: ``make bench`` (``python -m benchmarks.run`` from the repo root).

Not part of ``make test``: the tests keep no timing assertions. See benchmarks/README.md.
"""
