"""DDP on CPU: the same fixed run in 1 process and in 2 processes (gloo), same global batch.

    python tools/bench_ddp.py [--name NAME] [config] [overrides...]     # default configs/splice.yaml, 15 epochs

Each process of the 2-process run takes half the batch, so both runs take the same number of
optimizer steps on batches of the same total size. Writes tools/results/<NAME>_1proc.json,
<NAME>_2proc.json and the comparison tools/results/<NAME>.json (NAME: ddp by default). Both runs use 2 cores in all: the
single process 2 torch threads, each DDP process 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from report import RESULTS, exit_on_help, write_result

TOOLS = Path(__file__).parent


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", default="configs/splice.yaml")
    parser.add_argument("--name", default="ddp", help="results file names: NAME.json, NAME_1proc.json, NAME_2proc.json")
    args, overrides = parser.parse_known_args(argv)
    name, config, extra = args.name, args.config, overrides or ["--trainer.max_epochs=15"]
    if not Path(config).is_file():
        parser.error(f"config {config} does not exist")
    batch = yaml.safe_load(Path(config).read_text())["data"]["init_args"]["batch_size"]
    common = ["--trainer.logger=false", "--trainer.accelerator=cpu", *extra]
    runs = {
        f"{name}_1proc": ({"OMP_NUM_THREADS": "2"}, ["--trainer.devices=1"]),
        f"{name}_2proc": ({"OMP_NUM_THREADS": "1"}, ["--trainer.devices=2", "--trainer.strategy=ddp", f"--data.batch_size={batch // 2}"]),
    }
    for run, (env, args) in runs.items():
        cmd = [sys.executable, str(TOOLS / "bench_fit.py"), "--name", run, config, *common, *args]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, env={**os.environ, **env})
    one, two = (json.loads((RESULTS / f"{n}.json").read_text()) for n in runs)
    summary = {
        "config": config,
        "overrides": extra,
        "fit_seconds": {"1 process": one["fit_seconds"], "2 processes": two["fit_seconds"]},
        "train_samples_per_second_median": {
            "1 process": sorted(one["train_samples_per_second"])[len(one["train_samples_per_second"]) // 2],
            "2 processes": sorted(two["train_samples_per_second"])[len(two["train_samples_per_second"]) // 2],
        },
        "test": {"1 process": one["test"], "2 processes": two["test"]},
        "machine": one["machine"],
    }
    rates = summary["train_samples_per_second_median"]
    summary["throughput_ratio"] = round(rates["2 processes"] / rates["1 process"], 2)
    write_result(name, summary)
    return summary


if __name__ == "__main__":
    exit_on_help(__doc__)
    main(sys.argv[1:])
