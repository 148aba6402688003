"""seqlab.load(checkpoint).predict(...): plain Python, same numbers as the CLI's predict."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import seqlab
from seqlab.cli import main
from seqlab.errors import SeqlabError

from .test_multitask import tiny_multitask_config


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_load_predict_matches_the_cli_for_every_task(tmp_path):
    config = tiny_multitask_config(tmp_path)
    cli = main(["fit", "--config", str(config)])
    best = cli.trainer.checkpoint_callback.best_model_path
    model = seqlab.load(best)
    assert model.tasks == ["reviews", "dna"] and model.labels("dna") == ["motif", "plain"]
    inputs = {"reviews": ["a wonderful brilliant film", "the worst and most boring plot"], "dna": ["ACACGGATCCTTTA", "ACACACTTTACCCA", "TTGGATCCAA"]}
    for task, items in inputs.items():
        rows = model.predict(items, task=task)
        out = tmp_path / f"{task}.jsonl"
        main(["predict", "--config", str(config), f"--ckpt_path={best}", f"--data.only_task={task}",
              f"--data.predict_input={json.dumps(items)}", f"--prediction_writer.output_path={out}"])  # fmt: skip
        expected = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["label"] for r in rows] == [e["label"] for e in expected]
        for r, e in zip(rows, expected):
            assert all(abs(r["probabilities"][k] - v) < 1e-5 for k, v in e["probabilities"].items())
    assert [r["label"] for r in model.predict(inputs["reviews"], task="reviews")] == ["positive", "negative"]
    with pytest.raises(SeqlabError, match="several tasks"):
        model.predict(["ACGT"])
    with pytest.raises(SeqlabError, match="no task 'speech'; its tasks: reviews, dna"):
        model.predict(["ACGT"], task="speech")


def test_import_seqlab_stays_light():
    code = "import sys, seqlab; print(sorted(m for m in ('lightning', 'wandb', 'datasets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
