"""Train a config with several seeds: the spread of test accuracy, and the seeds' ensemble.

    python tools/bench_seeds.py configs/japanese_vowels.yaml [--seeds 0 1 2 3 4] [overrides...]

Each seed (``seed_everything``: initial weights, dropout) trains the config as it is; the data
split and batch order stay those of ``data.seed``. For every run the checkpoint the config keeps
is tested; the ensemble averages the runs' test probabilities (``seqlab.load([...])`` predicts
the same way). Writes tools/results/seeds_<config>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from report import write_result

from seqlab.cli import main as cli_main
from seqlab.model import SeqModel


@torch.no_grad()
def test_probabilities(checkpoint: str, datamodule) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, C) test probabilities of a checkpoint, the (N,) labels and the (N,) test-set indices,
    in the test loader's order."""
    model = SeqModel.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    probs, ys, index = [], [], []
    for batch in datamodule.test_dataloader():
        probs.append(model.log_probabilities(batch).exp())
        ys.append(batch["y"])
        index.append(batch["index"])
    return torch.cat(probs), torch.cat(ys), torch.cat(index)


def wrong_cases(probs: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, classes: list[str]) -> list[dict]:
    """The misclassified test cases: test-set index, true and predicted class, ordered by index."""
    predicted = probs.argmax(1)
    rows = [{"index": int(i), "true": classes[int(t)], "predicted": classes[int(p)]} for i, t, p in zip(index, labels, predicted) if t != p]
    return sorted(rows, key=lambda row: row["index"])


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--name", help="results file name (default seeds_<config>)")
    args, overrides = parser.parse_known_args()
    runs, total = [], None
    labels = None
    for seed in args.seeds:
        start = time.perf_counter()
        cli = cli_main(["fit", "--config", args.config, f"--seed_everything={seed}", "--trainer.logger=false", *overrides])
        seconds = time.perf_counter() - start
        if len(cli.model.specs) != 1:
            raise SystemExit(
                f"bench_seeds.py scores one task; {args.config} trains {len(cli.model.specs)} ({', '.join(cli.model.specs)}). "
                "Use tools/bench_fit.py --name <name> <config> --seed_everything=<seed> per seed for a multi-task config."
            )
        checkpoint = cli.trainer.checkpoint_callback.best_model_path
        probs, y, index = test_probabilities(checkpoint, cli.datamodule)
        (spec,) = cli.model.specs.values()
        classes = list(spec.labels)
        if labels is not None and not torch.equal(labels, y):
            raise SystemExit("The test batches came in another order for another seed; cannot average them.")
        labels = y
        total = probs if total is None else total + probs
        acc = float((probs.argmax(1) == y).float().mean())
        runs.append(
            {
                "seed": seed,
                "checkpoint": checkpoint,
                "test_acc": round(acc, 4),
                "errors": int((probs.argmax(1) != y).sum()),
                "fit_seconds": round(seconds, 1),
                "wrong": wrong_cases(probs, y, index, classes),
            }
        )
        print(json.dumps(runs[-1]), flush=True)
    accs = [r["test_acc"] for r in runs]
    ensemble = total / len(runs)
    summary = {
        "config": args.config,
        "overrides": overrides,
        "test_cases": len(labels),
        "runs": runs,
        "test_acc_mean": round(statistics.mean(accs), 4),
        "test_acc_std": round(statistics.stdev(accs), 4) if len(accs) > 1 else 0.0,
        "test_acc_min": min(accs),
        "test_acc_max": max(accs),
        "ensemble_test_acc": round(float((ensemble.argmax(1) == labels).float().mean()), 4),
        "ensemble_errors": int((ensemble.argmax(1) != labels).sum()),
        "ensemble_wrong": wrong_cases(ensemble, labels, index, classes),
    }
    write_result(args.name or "seeds_" + Path(args.config).stem, summary, echo=False)
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))
    return summary


if __name__ == "__main__":
    sys.exit(main() and 0)
