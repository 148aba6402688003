"""Where the tools put their figures: tools/results/<name>.json, written atomically (a run killed
mid-write leaves the previous file, never half of one)."""

from __future__ import annotations

import json
import os
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def write_result(name: str, data: dict, echo: bool = True) -> Path:
    """Write ``data`` to tools/results/<name>.json (and print it, unless ``echo`` is False)."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, out)
    if echo:
        print(json.dumps(data, indent=2))
    return out
