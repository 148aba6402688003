"""Where the tools put their figures: tools/results/<name>.json, written atomically (a run killed
mid-write leaves the previous file, never half of one)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from seqlab.files import write_file

RESULTS = Path(__file__).parent / "results"


def write_result(name: str, data: dict, echo: bool = True) -> Path:
    """Write ``data`` to tools/results/<name>.json (and print it, unless ``echo`` is False)."""
    out = write_file(RESULTS / f"{name}.json", lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))
    if echo:
        print(json.dumps(data, indent=2))
    return out


def exit_on_help(doc: str | None) -> None:
    """``-h``/``--help`` prints the tool's docstring and exits: asking for help never runs a
    benchmark (nor overwrites its results file)."""
    if any(arg in ("-h", "--help") for arg in sys.argv[1:]):
        print((doc or "").strip())
        raise SystemExit(0)
