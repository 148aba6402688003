"""tools/choose.py: the config copy it fits, the split overrides, and the per-epoch history it reads back;
tools/bench_seeds.py: the misclassified cases it records; every tool's --help."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import yaml

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from bench_seeds import wrong_cases  # noqa: E402
from choose import monitor_scores, read_history, selection_config, split_arguments  # noqa: E402


def test_selection_config_drops_callbacks_and_logs_to_csv(tmp_path):
    config = yaml.safe_load((ROOT / "configs" / "hapt.yaml").read_text())
    copy, monitor, mode = selection_config(config, tmp_path)
    assert (monitor, mode) == ("val/acc_macro", "max")  # the config's ModelCheckpoint
    trainer = copy["trainer"]
    assert trainer["callbacks"] == [] and trainer["enable_checkpointing"] is False
    assert trainer["logger"]["class_path"].endswith("CSVLogger") and trainer["logger"]["init_args"]["save_dir"] == str(tmp_path)
    assert copy["model"] == config["model"] and copy["data"] == config["data"]
    no_monitor = yaml.safe_load((ROOT / "configs" / "basic_motions.yaml").read_text())  # monitor: null
    assert selection_config(no_monitor, tmp_path)[1:] == ("val/acc_macro", "max")


def test_read_history_merges_the_validation_rows_of_each_epoch(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,step,train/loss,val/t/loss,val/t/acc\n0,3,0.9,,\n0,3,,0.7,0.5\n1,7,0.5,,\n1,7,,0.4,0.75\n")
    assert read_history(tmp_path) == [{"val/t/loss": 0.7, "val/t/acc": 0.5}, {"val/t/loss": 0.4, "val/t/acc": 0.75}]


def test_a_monitor_the_fit_never_logged_names_those_it_did():
    history = [{"val/t/loss": 0.7, "val/t/acc": 0.5}, {"val/t/loss": 0.4, "val/t/acc": 0.75}]
    assert monitor_scores(history, "val/t/loss") == [0.7, 0.4]
    with pytest.raises(SystemExit, match=r"val/t/los is not among the validation metrics this fit logged \(val/t/acc, val/t/loss\)"):
        monitor_scores(history, "val/t/los")
    with pytest.raises(SystemExit, match="none: no validation ran"):
        monitor_scores([], "val/t/loss")


def test_bench_fit_without_a_checkpoint_to_test_says_so(reviews_csv, tmp_path, monkeypatch):
    from bench_fit import run

    from .conftest import tiny_text_args

    monkeypatch.chdir(tmp_path)
    args = tiny_text_args(reviews_csv, "--trainer.fast_dev_run=1")
    with pytest.raises(SystemExit, match="the fit saved no checkpoint to test .* no results written"):
        run(args[1], "never_written", args[2:])
    assert not (ROOT / "tools" / "results" / "never_written.json").exists()


def test_split_arguments_for_seeded_shares_and_for_folds():
    config = {"data": {"init_args": {"val_size": 0}}}
    common, splits = split_arguments(config, "c.yaml", None, 0, 3, 0.1, ["--x=1"])
    assert common == ["--data.init_args.val_size=0.1", "--x=1"]
    assert splits == [[f"--data.init_args.seed={k}", f"--seed_everything={k}"] for k in range(3)]
    common, splits = split_arguments(config, "c.yaml", 4, 7, 3, None, [])
    assert common == ["--data.init_args.val_size=0.25", "--data.init_args.seed=7"]  # one fold assignment for all folds
    assert splits == [[f"--data.init_args.val_fold={k}", f"--seed_everything={k}"] for k in range(4)]
    with pytest.raises(SystemExit, match="trains without a validation split"):
        split_arguments(config, "c.yaml", None, 0, 3, None, [])
    with pytest.raises(SystemExit, match="drop --val_size"):
        split_arguments(config, "c.yaml", 4, 0, 3, 0.1, [])


def test_wrong_cases_name_test_indices_not_loader_positions():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])  # predicted 0, 1, 0
    labels = torch.tensor([0, 0, 1])
    index = torch.tensor([5, 9, 2])  # the loader's order is not the dataset's
    assert wrong_cases(probs, labels, index, ["a", "b"]) == [
        {"index": 2, "true": "b", "predicted": "a"},
        {"index": 9, "true": "a", "predicted": "b"},
    ]


@pytest.mark.parametrize("tool", ["bench_lstm_speed.py", "bench_ddp.py", "bench_fit.py", "bench_long_dna.py"])
def test_help_prints_the_docstring_and_runs_nothing(tool):
    results = ROOT / "tools" / "results"
    before = {p.name: p.stat().st_mtime_ns for p in results.iterdir()}
    done = subprocess.run([sys.executable, str(ROOT / "tools" / tool), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == (ROOT / "tools" / tool).read_text().split('"""')[1].splitlines()[0]
    assert {p.name: p.stat().st_mtime_ns for p in results.iterdir()} == before  # no benchmark ran, no results file written
