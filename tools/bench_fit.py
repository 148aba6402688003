"""Train a config to completion, test its best checkpoint, report accuracy, speed and memory.

    python tools/bench_fit.py [--name NAME] configs/imdb.yaml [extra CLI overrides...]

Prints a JSON summary and writes it to tools/results/<config name>.json. fit_seconds is the
whole `fit` command, data loading included; on a first run it also includes the one-time
download and cache build, so time a second run. The fit runs without a logger
(``--trainer.logger=false``, which an override can turn back on): W&B is not timed, and the
PNG callbacks draw instead.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from pathlib import Path

import torch
from report import exit_on_help, write_result

from seqlab.callbacks import EpochTimer
from seqlab.cli import main


def machine() -> str:
    """CPU model, cores and torch build, for the README table."""
    cpu = platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads){gpu}"


def run(config: str, name: str, overrides: list[str]) -> dict:
    start = time.perf_counter()
    cli = main(["fit", "--config", config, "--trainer.logger=false", "--trainer.callbacks+=seqlab.callbacks.EpochTimer", *overrides])
    fit_seconds = time.perf_counter() - start
    trainer = cli.trainer
    timer = next(cb for cb in trainer.callbacks if isinstance(cb, EpochTimer))
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path or checkpoint.last_model_path if checkpoint is not None else ""
    if trainer.fast_dev_run or not best:
        raise SystemExit(
            "bench_fit: the fit saved no checkpoint to test (fast_dev_run, max_epochs=0, checkpointing off, or a monitored "
            "metric that was never logged); no results written. Benchmark a full fit."
        )
    test_start = time.perf_counter()
    results = trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=best)[0]
    summary = {
        "config": config,
        "overrides": overrides,
        "machine": machine(),
        "epochs": len(timer.epoch_seconds),
        "fit_seconds": round(fit_seconds, 1),
        "seconds_per_epoch": [round(s, 1) for s in timer.epoch_seconds],
        "world_size": trainer.world_size,
        "train_samples_per_second": [round(s * trainer.world_size, 1) for s in timer.samples_per_second],  # all processes
        "test_seconds": round(time.perf_counter() - test_start, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "best_checkpoint": best,
        "monitor": trainer.checkpoint_callback.monitor,  # None: no validation, the last epoch is tested
        "best_val_score": None if trainer.checkpoint_callback.best_model_score is None else float(trainer.checkpoint_callback.best_model_score),
        "test": {k: round(v, 4) for k, v in results.items()},
    }
    if not trainer.is_global_zero:
        return summary
    write_result(name, summary)
    return summary


if __name__ == "__main__":
    exit_on_help(__doc__)
    argv = sys.argv[1:]
    name = None
    if argv[:1] == ["--name"]:
        name, argv = argv[1], argv[2:]
    if not argv:
        raise SystemExit("usage: python tools/bench_fit.py [--name NAME] configs/<task>.yaml [overrides...]")
    run(argv[0], name or Path(argv[0]).stem, argv[1:])
