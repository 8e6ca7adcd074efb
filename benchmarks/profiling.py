"""Where the service's time goes: a summary of py-spy's raw (collapsed-stack) output.

Each sample is one stack of the thread holding the GIL (``py-spy record --gil``): CPU spent in
Python. A sample is charged to a layer by its innermost frame that belongs to a known package;
frames of the standard library (``socket``, ``threading``, ``json``, ...) are charged to the
package that called them, except ``logging``, kept apart because launchprov logs every request.

``python -m benchmarks.profiling profile-launchprov.txt`` prints the summary as JSON.
"""

from __future__ import annotations

import collections
import json
import re
import sys
from pathlib import Path

#: First path component of a frame's file -> layer.
LAYERS = {
    "launchprov": "launchprov",
    "colander": "colander (launchprov's validation)",
    "prometheus_client": "prometheus_client (launchprov's metrics)",
    "logging": "logging (stdlib)",
    "pyramid": "Pyramid + WebOb",
    "webob": "Pyramid + WebOb",
    "zope": "Pyramid + WebOb",
    "translationstring": "Pyramid + WebOb",
    "waitress": "waitress",
    "botocore": "boto3/botocore/urllib3",
    "boto3": "boto3/botocore/urllib3",
    "urllib3": "boto3/botocore/urllib3",
    "dateutil": "boto3/botocore/urllib3",
    "jmespath": "boto3/botocore/urllib3",
}
OTHER = "other (stdlib at top level, interpreter)"
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^():]+):(?P<line>\d+)\)$")


def layer_of(path: str) -> str | None:
    head = path.split("/", 1)[0] if "/" in path else ""
    return LAYERS.get(head)


def parse(raw: Path):
    """(frames, count) per line of py-spy's raw format: ``a (f.py:1);b (g.py:2) 17``."""
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for frame in stack.split(";"):
            match = FRAME.match(frame)
            if match:
                frames.append((match["function"], match["file"]))
        yield frames, int(count)


def summarise(raw: Path, top: int = 15) -> dict:
    total = 0
    by_layer: collections.Counter[str] = collections.Counter()
    own_functions: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    below_provider = 0
    for frames, count in parse(raw):
        total += count
        layer = OTHER
        for _, path in reversed(frames):
            found = layer_of(path)
            if found:
                layer = found
                break
        by_layer[layer] += count
        if frames:
            function, path = frames[-1]
            leaves[f"{function} ({path})"] += count
        # launchprov's functions, inclusive, and the part of it spent inside the SDK
        seen = set()
        for function, path in frames:
            if path.startswith("launchprov/") and (function, path) not in seen:
                seen.add((function, path))
                own_functions[f"{function} ({path})"] += count
        if any(path.startswith("launchprov/providers/") for _, path in frames) and any(
            layer_of(path) == "boto3/botocore/urllib3" for _, path in frames
        ):
            below_provider += count
    if not total:
        return {"samples": 0, "layers": {}, "launchprov_inclusive": {}, "top_frames": {}}
    share = {name: count / total for name, count in by_layer.most_common()}
    return {
        "samples": total,
        "layers": share,
        "sdk_under_launchprov_provider": below_provider / total,
        "launchprov_inclusive": {
            name: count / total for name, count in own_functions.most_common(top)
        },
        "top_frames": {name: count / total for name, count in leaves.most_common(top)},
    }


if __name__ == "__main__":
    json.dump(summarise(Path(sys.argv[1])), sys.stdout, indent=1)
    sys.stdout.write("\n")
