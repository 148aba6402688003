"""Compare model variants on repeated validation splits, never on the test set.

    python tools/choose.py configs/japanese_vowels.yaml --val_size 0.1 --monitor val/japanese_vowels/loss \\
        --splits 5 --jobs 2 --variant base= --variant "conv3=--model.conv_kernel=3" [-- common overrides...]

Every variant is fitted once per split: split k sets ``data.seed=k`` (a different validation
share of the training data; for subject splits pass ``--data.init_args.val_subjects=null`` as a
common override so the validation subjects change too) and ``seed_everything=k``. ``--folds K``
cross-validates instead: ``data.val_size=1/K``, one ``data.seed`` and ``data.val_fold=k`` for
k < K, so the K validation shares are disjoint and every training case is validated exactly once
(with equal folds the mean validation accuracy is that of all training cases). Each fit runs
from a copy of the config without checkpoints, plots or W&B, logging to CSV in a temporary
folder. For each variant the script reports, averaged over splits, the best value of the
config's checkpoint metric (its ModelCheckpoint ``monitor``, or ``--monitor``), the validation
accuracy at that epoch, and the metric and the accuracy at the last epoch (what training on the
whole training split for the fixed number of epochs keeps). A config that trains without
validation (``data.val_size: 0``) needs ``--val_size`` or ``--folds``. Prints a table and writes
tools/results/choose_<config>.json. The test split is never evaluated: choose with this, then
run tools/bench_fit.py on the chosen config once.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import yaml
from report import RESULTS, write_result


def selection_config(config: dict, log_dir: Path) -> tuple[dict, str, str]:
    """The config without callbacks or W&B, logging to CSV under ``log_dir``; and the monitor and
    mode of its ModelCheckpoint (default val/acc_macro, max)."""
    trainer = config.setdefault("trainer", {})
    monitor, mode = "val/acc_macro", "max"
    for cb in trainer.get("callbacks") or []:
        if isinstance(cb, dict) and cb.get("class_path", "").endswith("ModelCheckpoint") and (cb.get("init_args") or {}).get("monitor"):
            args = cb["init_args"]
            monitor, mode = args["monitor"], args.get("mode", "min")
    trainer.update(
        callbacks=[],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(log_dir),
        logger={"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(log_dir), "name": "", "version": ""}},
    )
    return config, monitor, mode


def read_history(log_dir: Path) -> list[dict[str, float]]:
    """Per-epoch validation metrics from the CSVLogger's metrics.csv."""
    by_epoch: dict[int, dict[str, float]] = {}
    with open(next(log_dir.rglob("metrics.csv"))) as f:
        for row in csv.DictReader(f):
            values = {k: float(v) for k, v in row.items() if k.startswith("val/") and v not in ("", None)}
            if values:
                by_epoch.setdefault(int(row["epoch"]), {}).update(values)
    return [by_epoch[e] for e in sorted(by_epoch)]


def split_arguments(
    config: dict, path: str, folds: int | None, fold_seed: int, splits: int, val_size: float | None, common: list[str]
) -> tuple[list[str], list[list[str]]]:
    """The overrides every fit gets, and those of each split: seeded validation shares
    (``data.seed=k``) or, with ``folds``, the K disjoint folds of one seeded order (``data.val_fold=k``)."""
    if folds is not None:
        if folds < 2 or val_size is not None:
            raise SystemExit("--folds needs K >= 2 and sets the validation share itself (1/K): drop --val_size.")
        common = [f"--data.init_args.val_size={1 / folds!r}", f"--data.init_args.seed={fold_seed}", *common]
        return common, [[f"--data.init_args.val_fold={k}", f"--seed_everything={k}"] for k in range(folds)]
    if val_size is not None:
        common = [f"--data.init_args.val_size={val_size}", *common]
    elif ((config.get("data") or {}).get("init_args") or {}).get("val_size") == 0:
        raise SystemExit(
            f"{path} trains without a validation split (data.val_size: 0): give the share to validate on, e.g. --val_size 0.1, or --folds."
        )
    return common, [[f"--data.init_args.seed={k}", f"--seed_everything={k}"] for k in range(splits)]


def monitor_scores(history: list[dict[str, float]], monitor: str) -> list[float]:
    """``monitor`` at every validation of a fit's history; a metric the fit never logged (or a fit
    without validation) stops with the names it did log."""
    if not history or any(monitor not in epoch for epoch in history):
        seen = sorted({key for epoch in history for key in epoch})
        raise SystemExit(
            f"{monitor} is not among the validation metrics this fit logged ({', '.join(seen) or 'none: no validation ran'}); "
            "pass --monitor (and --mode) naming one of them."
        )
    return [epoch[monitor] for epoch in history]


def fit_once(
    config: Path, variant: list[str], common: list[str], split: int, split_args: list[str], threads: int, monitor: str, mode: str, log_dir: Path
) -> dict:
    """Fit split number ``split`` with its overrides (``data.seed``/``data.val_fold``, ``seed_everything``)."""
    cmd = [
        sys.executable,
        "-m",
        "seqlab",
        "fit",
        "--config",
        str(config),
        *common,
        *variant,
        *split_args,
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), WANDB_MODE="disabled", PYTHONWARNINGS="ignore")
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"fit failed ({shlex.join(cmd)}):\n{done.stderr[-3000:]}")
    history = read_history(log_dir)
    scores = monitor_scores(history, monitor)
    best = (min if mode == "min" else max)(range(len(scores)), key=scores.__getitem__)
    acc_key = monitor.rsplit("/", 1)[0] + "/acc" if monitor.endswith("/loss") else monitor
    return {
        "split": split,
        "best_epoch": best,
        "best_monitor": scores[best],
        "val_acc_at_best": history[best].get(acc_key),
        "last_monitor": scores[-1],  # what a fit that keeps its last epoch (data.val_size: 0, monitor: null) would have
        "val_acc_last": history[-1].get(acc_key),
        "seconds": round(time.perf_counter() - start, 1),
    }


def mean_std(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / max(1, len(values) - 1))


def main() -> None:
    argv = sys.argv[1:]
    common = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("--splits", type=int, default=5, help="seeded validation splits (data.seed = 0..splits-1)")
    parser.add_argument("--folds", type=int, help="K-fold cross-validation instead of --splits: data.val_size 1/K, data.val_fold 0..K-1")
    parser.add_argument("--fold_seed", type=int, default=0, help="data.seed of the fold assignment (--folds)")
    parser.add_argument("--jobs", type=int, default=1, help="fits run side by side")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per fit (default: cores / jobs)")
    parser.add_argument(
        "--variant", action="append", required=True, metavar="NAME=OVERRIDES", type=lambda v: tuple(v.split("=", 1)) if "=" in v else (v, "")
    )
    parser.add_argument("--name", help="results file name (default choose_<config>)")
    parser.add_argument("--val_size", type=float, help="validation share of every split (needed when the config trains with data.val_size 0)")
    parser.add_argument("--monitor", help="metric to compare (default: the config's checkpoint monitor, else val/acc_macro)")
    parser.add_argument("--mode", choices=("min", "max"), help="min or max for --monitor (default: the config's, else max)")
    args = parser.parse_args(argv)
    threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.threads is None else args.threads
    if not Path(args.config).is_file():
        parser.error(f"config {args.config} does not exist")
    base = yaml.safe_load(Path(args.config).read_text())
    common, splits = split_arguments(base, args.config, args.folds, args.fold_seed, args.splits, args.val_size, common)
    work = Path(tempfile.mkdtemp(prefix="seqlab-select-"))
    jobs = []
    for name, overrides in args.variant:
        for split, split_args in enumerate(splits):
            log_dir = work / f"{name}-{split}"
            config, monitor, mode = selection_config(json.loads(json.dumps(base)), log_dir)
            if args.monitor:
                monitor, mode = args.monitor, args.mode or ("min" if args.monitor.endswith("loss") else "max")
            path = work / f"{name}-{split}.yaml"
            path.write_text(yaml.safe_dump(config))
            jobs.append((name, (path, shlex.split(overrides), common, split, split_args, threads, monitor, mode, log_dir)))
    result_name = args.name or "choose_" + Path(args.config).stem
    runs: dict[str, list[dict]] = {}

    def write() -> dict:  # after every fit, so an interrupted comparison keeps what it has
        summary = {"config": args.config, "common": common, "monitor": monitor, "mode": mode, "splits": len(splits), "folds": args.folds}
        summary["variants"] = {}
        for name, overrides in args.variant:
            done = runs.get(name, [])
            if not done:
                continue
            m, s = mean_std([r["best_monitor"] for r in done])
            accs = [r["val_acc_at_best"] for r in done if r["val_acc_at_best"] is not None]
            am, as_ = mean_std(accs) if accs else (float("nan"), float("nan"))
            lm, ls = mean_std([r["last_monitor"] for r in done])
            last_accs = [r["val_acc_last"] for r in done if r.get("val_acc_last") is not None]
            summary["variants"][name] = {
                "overrides": overrides,
                "monitor_mean": m,
                "monitor_std": s,
                "val_acc_mean": am,
                "val_acc_std": as_,
                "last_monitor_mean": lm,
                "last_monitor_std": ls,
                "val_acc_last_mean": mean_std(last_accs)[0] if last_accs else float("nan"),
                "runs": done,
            }
        write_result(result_name, summary, echo=False)
        return summary

    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(fit_once, *job): name for name, job in jobs}
        try:
            for future in as_completed(futures):
                name = futures[future]
                runs.setdefault(name, []).append(future.result())
                print(f"{name} split {runs[name][-1]['split']}: {runs[name][-1]}", flush=True)
                summary = write()
        except BaseException:  # a failed fit (or Ctrl-C): the queued fits do not run before the error is shown
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    print(f"\n{'variant':<16} {monitor + ' (best)':>32} {'val acc at best':>18} {'last epoch':>18} {'acc at last':>12}")
    for name, v in summary["variants"].items():
        print(
            f"{name:<16} {v['monitor_mean']:>23.4f} ± {v['monitor_std']:.4f} {v['val_acc_mean']:>9.4f} ± {v['val_acc_std']:.4f}"
            f" {v['last_monitor_mean']:>9.4f} ± {v['last_monitor_std']:.4f} {v['val_acc_last_mean']:>12.4f}"
        )
    print(f"\nwritten to {RESULTS / (result_name + '.json')}")


if __name__ == "__main__":
    main()
