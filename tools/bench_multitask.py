"""The multi-task model against the single-task ones: test metric per task, parameters, fit time.

    python tools/bench_multitask.py            # trains configs/multitask.yaml, then compares
    python tools/bench_multitask.py --compare  # only compares existing results

Single-task figures come from tools/results/<task>.json (``python tools/bench_fit.py
configs/<task>.yaml``); the multi-task run is written to tools/results/multitask.json and the
comparison to tools/results/multitask_table.json. Parameters are counted on freshly built models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
from report import RESULTS, exit_on_help, write_result

from seqlab.cli import SeqlabCLI
from seqlab.model import SeqModel

CONFIGS = Path(__file__).parents[1] / "configs"


def parameters(config: Path) -> int:
    cli = SeqlabCLI(
        SeqModel, L.LightningDataModule, subclass_mode_data=True, auto_configure_optimizers=False, run=False,
        args=["--config", str(config), "--trainer.logger=false"],
    )  # fmt: skip
    return sum(p.numel() for p in cli.model.parameters())


def compare() -> dict:
    multi = json.loads((RESULTS / "multitask.json").read_text())
    tasks = sorted({k.split("/")[1] for k in multi["test"] if k.startswith("test/") and k.endswith("/acc")})
    rows, alone_params, alone_seconds = [], 0, 0.0
    for task in tasks:
        single = json.loads((RESULTS / f"{task}.json").read_text())
        n = parameters(CONFIGS / f"{task}.yaml")
        alone_params += n
        alone_seconds += single["fit_seconds"]
        rows.append(
            {
                "task": task,
                "test_acc_alone": single["test"][f"test/{task}/acc"],
                "test_acc_multitask": multi["test"][f"test/{task}/acc"],
                "difference_points": round(100 * (multi["test"][f"test/{task}/acc"] - single["test"][f"test/{task}/acc"]), 2),
                "parameters_alone": n,
                "fit_seconds_alone": single["fit_seconds"],
            }
        )
    table = {
        "rows": rows,
        "parameters_alone_total": alone_params,
        "parameters_multitask": parameters(CONFIGS / "multitask.yaml"),
        "fit_seconds_alone_total": round(alone_seconds, 1),
        "fit_seconds_multitask": multi["fit_seconds"],
        "machine": multi["machine"],
    }
    write_result("multitask_table", table)
    return table


if __name__ == "__main__":
    exit_on_help(__doc__)
    if "--compare" not in sys.argv:
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_fit import run

        run(str(CONFIGS / "multitask.yaml"), "multitask", sys.argv[1:])
    compare()
