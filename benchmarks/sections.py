"""The sections of benchmarks/RESULTS.md that each benchmark writes between its own markers."""

from __future__ import annotations

from pathlib import Path


def write_section(text: str, path: Path, begin: str, end: str) -> None:
    """Put ``text`` (which starts with ``begin`` and ends with ``end``) in place of what stands
    between those markers in ``path``, or after it when it has none; the rest is left as it is."""
    current = path.read_text() if path.exists() else ""
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        current = head.rstrip("\n") + "\n\n" + text + rest.split(end, 1)[1]
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(current)
