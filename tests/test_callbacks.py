"""Reporting callbacks: what a W&B run (read back offline) and a run without W&B (PNGs) hold; the sweep."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from seqlab.callbacks import ConfusionMatrixLogger, Redraw, TrainingCurves, precision_recall
from seqlab.cli import main
from seqlab.loggers import _leveldb_records, read_offline_run

from .conftest import ROOT, tiny_text_args

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # configs write runs/<task>/... relative to the working directory


def records(run_dir: Path, kind: str) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    found = []
    for raw in _leveldb_records(next(run_dir.glob("*.wandb"))):
        record = pb.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == kind:
            found.append(getattr(record, kind))
    return found


def test_read_offline_run_of_a_file_still_being_written(tmp_path):
    """A run file cut inside its last record reads as the rows before it, not finished."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    history, exit_ = pb.Record(), pb.Record()
    item = history.history.item.add()
    item.key, item.value_json = "val/imdb/acc", "0.75"
    exit_.exit.exit_code = 0
    frame = lambda raw: struct.pack("<IHB", 0, len(raw), 1) + raw  # noqa: E731  (full record, crc unchecked)
    data = b":W&B" + bytes(3) + frame(history.SerializeToString()) + frame(exit_.SerializeToString())
    run_file = tmp_path / "run-x.wandb"
    run_file.write_bytes(data)
    run = read_offline_run(tmp_path)
    assert run["finished"] and run["history"] == [{"val/imdb/acc": 0.75}]

    run_file.write_bytes(data[:-2])  # the exit record only half written
    run = read_offline_run(tmp_path, wait=0.3)
    assert not run["finished"] and run["history"] == [{"val/imdb/acc": 0.75}]


def test_precision_recall_of_a_known_matrix():
    counts = torch.tensor([[5, 1, 0], [2, 6, 2], [0, 0, 0]])  # rows true, columns predicted
    precision, recall = precision_recall(counts)
    assert precision.tolist() == pytest.approx([5 / 7, 6 / 7, 0.0])
    assert recall.tolist() == pytest.approx([5 / 6, 6 / 10, 0.0])


def test_wandb_offline_run_holds_metrics_config_confusion_matrix_and_checkpoint(reviews_csv, tmp_path, monkeypatch):
    """configs/imdb.yaml's own logger and callbacks, offline: everything is read back from the run file."""
    for var in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    args = [a for a in tiny_text_args(reviews_csv) if a != "--trainer.logger=false"]
    cli = main(["fit", *args, "--trainer.max_epochs=2", "--trainer.log_every_n_steps=1", f"--trainer.logger.init_args.save_dir={tmp_path / 'wb'}"])
    import wandb

    wandb.finish()  # the CLI process would end here, flushing the run file
    run_dir = next((tmp_path / "wb" / "wandb").glob("offline-run-*"))
    run = read_offline_run(run_dir, wait=60)  # W&B's background process may still be writing it
    assert run["finished"]
    rows = run["history"]
    column = lambda key: [r[key] for r in rows if key in r]  # noqa: E731

    steps = cli.trainer.global_step
    assert len(column("train/lr")) == steps and len(column("train/grad_norm")) == steps
    assert all(math.isfinite(v) and v > 0 for v in column("train/grad_norm"))
    for key in ("val/imdb/acc", "val/imdb/loss", "val/imdb/f1", "train/imdb/loss", "train/imdb/acc", "val/acc_macro"):
        assert len(column(key)) == 2, key  # once per epoch
    for kind in ("precision", "recall"):
        for label in ("negative", "positive"):
            assert len(column(f"val/imdb/{kind}/{label}")) == 2

    # The confusion matrix table of the last epoch agrees with the logged accuracy and per-class recall.
    tables = [r for r in rows if "val/imdb/confusion_matrix_table/path" in r]
    assert len(tables) == 2
    last = tables[-1]
    table = json.loads((run_dir / "files" / last["val/imdb/confusion_matrix_table/path"]).read_text())
    assert table["columns"] == ["Actual", "Predicted", "nPredictions"]
    cells = {(a, p): n for a, p, n in table["data"]}
    total = sum(cells.values())
    assert total == len(cli.datamodule.splits["val"])
    acc_row = [r for r in rows if "val/imdb/acc" in r][-1]
    assert (cells[("negative", "negative")] + cells[("positive", "positive")]) / total == pytest.approx(acc_row["val/imdb/acc"], abs=1e-6)
    recall_neg = cells[("negative", "negative")] / max(1, cells[("negative", "negative")] + cells[("negative", "positive")])
    assert recall_neg == pytest.approx([r for r in rows if "val/imdb/recall/negative" in r][-1]["val/imdb/recall/negative"], abs=1e-6)

    # The resolved CLI config (not only the model's hyperparameters) is in the run config.
    resolved = run["config"]["cli"]
    assert resolved["model"]["hidden_size"] == 16
    assert resolved["data"]["init_args"]["max_length"] == 500 and resolved["data"]["init_args"]["source"] == "file"
    assert resolved["trainer"]["max_epochs"] == 2

    # log_model: true in the config: the best checkpoint is a model artifact, staged for `wandb sync`.
    models = [a for a in records(run_dir, "artifact") if a.type == "model"]
    best = [a for a in models if "best" in a.aliases]
    assert len(best) == 1 and best[0].metadata
    staged = Path(best[0].manifest.contents[0].local_path)
    assert best[0].manifest.contents[0].path == "model.ckpt"
    assert staged.read_bytes() == Path(cli.trainer.checkpoint_callback.best_model_path).read_bytes()
    assert [r["gates/imdb/_type"] for r in rows if "gates/imdb/_type" in r] == ["image-file"]  # GateFigures, once at the end
    assert not (tmp_path / "runs" / "imdb" / "plots").exists()  # W&B active: no PNGs


def test_without_wandb_png_confusion_matrix_and_training_curves(reviews_csv, tmp_path, capsys):
    cli = main(["fit", *tiny_text_args(reviews_csv), "--trainer.max_epochs=2"])
    plots = tmp_path / "runs" / "imdb" / "plots"  # beside runs/imdb/checkpoints of configs/imdb.yaml
    named = re.search(r"seqlab: figures: (.*)\n", capsys.readouterr().err).group(1).split(", ")  # the command names them, once
    assert sorted(Path(p).name for p in named) == ["curves.png", "gates_imdb.png", "val_imdb_confusion.png"]
    for name in ("val_imdb_confusion.png", "curves.png"):
        data = (plots / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, name
    assert sorted(p.name for p in plots.iterdir()) == ["curves.png", "gates_imdb.png", "val_imdb_confusion.png"]  # no temp files left

    callbacks = {type(c): c for c in cli.trainer.callbacks}
    counts = callbacks[ConfusionMatrixLogger].counts["imdb"]
    metrics = cli.trainer.callback_metrics
    assert int(counts.sum()) == len(cli.datamodule.splits["val"])
    assert float(counts.diagonal().sum() / counts.sum()) == pytest.approx(float(metrics["val/imdb/acc"]), abs=1e-6)
    precision, recall = precision_recall(counts)
    assert float(metrics["val/imdb/precision/positive"]) == pytest.approx(float(precision[1]), abs=1e-6)
    assert float(metrics["val/imdb/recall/negative"]) == pytest.approx(float(recall[0]), abs=1e-6)

    assert callbacks[TrainingCurves].redraw.pending == {} and callbacks[ConfusionMatrixLogger].redraw.pending == {}  # drawn at the end
    history = callbacks[TrainingCurves].history
    for key in ("train/imdb/loss", "train/imdb/acc", "val/imdb/loss", "val/imdb/acc"):
        assert [epoch for epoch, _ in history[key]] == [0, 1], key
    assert history["val/imdb/acc"][-1][1] == pytest.approx(float(metrics["val/imdb/acc"]))

    import seqlab.callbacks

    titles = []
    drawn = seqlab.callbacks.confusion_figure
    seqlab.callbacks.confusion_figure = lambda counts, labels, title: titles.append(title) or drawn(counts, labels, title)
    try:
        cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best")
    finally:
        seqlab.callbacks.confusion_figure = drawn
    assert (plots / "test_imdb_confusion.png").read_bytes().startswith(PNG)
    best = Path(cli.trainer.checkpoint_callback.best_model_path).name
    assert titles == [f"test imdb · {best}"]  # the weights tested, not the epoch counter (0 outside a fit)

    # A fit resumed from last.ckpt draws its curves from epoch 0, not from where it resumed.
    resumed = main(["fit", *tiny_text_args(reviews_csv), "--trainer.max_epochs=3", "--ckpt_path=last"])
    history = next(c for c in resumed.trainer.callbacks if isinstance(c, TrainingCurves)).history
    assert [epoch for epoch, _ in history["val/imdb/acc"]] == [0, 1, 2]
    # A smoke test (fast_dev_run) overwrites none of the run's figures.
    before = {p.name: p.read_bytes() for p in plots.iterdir()}
    main(["fit", *tiny_text_args(reviews_csv), "--trainer.fast_dev_run=1"])
    assert {p.name: p.read_bytes() for p in plots.iterdir()} == before


def test_redraw_runs_the_newest_drawing_per_key_at_most_once_per_interval():
    drawn = []
    redraw = Redraw(every_seconds=1e9)
    redraw.later("curves", lambda: drawn.append("curves 0"))  # nothing drawn yet: at once
    for epoch in (1, 2):
        redraw.later("curves", lambda epoch=epoch: drawn.append(f"curves {epoch}"))
        redraw.later("confusion", lambda epoch=epoch: drawn.append(f"confusion {epoch}"))
    assert drawn == ["curves 0"]
    redraw.flush()  # end of fit: the newest of each
    assert drawn == ["curves 0", "curves 2", "confusion 2"] and redraw.pending == {}
    every_time = Redraw(every_seconds=0)
    for epoch in range(3):
        every_time.later("curves", lambda epoch=epoch: drawn.append(epoch))
    assert drawn[-3:] == [0, 1, 2]


def flatten(config: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in config.items():
        keys.add(prefix + key)
        if isinstance(value, dict):
            keys |= flatten(value, f"{prefix}{key}.")
    return keys


def test_sweep_parameters_are_cli_keys_and_reach_the_config(capsys):
    sweep = yaml.safe_load((ROOT / "configs" / "sweeps" / "imdb.yaml").read_text())
    assert sweep["command"][-1] == "${args}" and "configs/imdb.yaml" in sweep["command"]
    assert sweep["metric"]["name"] == "val/acc_macro"
    config = str(ROOT / "configs" / "imdb.yaml")
    with pytest.raises(SystemExit):
        main(["fit", "--config", config, "--print_config"])
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert sweep["project"] == resolved["trainer"]["logger"]["init_args"]["project"]  # the sweep lives where its runs log
    keys = flatten(resolved)
    params = sweep["parameters"]
    assert {"model.hidden_size", "model.num_layers", "model.optimizer.init_args.lr", "data.init_args.max_length"} <= set(params)
    assert set(params) <= keys, set(params) - keys

    # The agent's ${args} (--key=value after the config) lands on those keys.
    chosen = {name: p["values"][-1] if "values" in p else p["min"] for name, p in params.items()}
    with pytest.raises(SystemExit):
        main(["fit", "--config", config, *[f"--{k}={v}" for k, v in chosen.items()], "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    for name, value in chosen.items():
        node = printed
        for part in name.split("."):
            node = node[part]
        assert node == value, name


def test_checkpoints_are_renamed_into_place_only_where_one_file_is_written_at_once():
    from lightning.pytorch.plugins.io import AsyncCheckpointIO

    from seqlab.callbacks import one_file_saved_now

    plain = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    assert one_file_saved_now(plain)
    later = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, plugins=[AsyncCheckpointIO()])
    assert not one_file_saved_now(later)  # its file appears after save_checkpoint returns: Lightning's own saving


def test_confusion_figure_says_n_a_for_a_class_never_true_or_never_predicted():
    from seqlab.callbacks import confusion_figure

    counts = torch.tensor([[3, 1, 0], [0, 2, 0], [0, 0, 0]])  # class c: no true sample, never predicted
    ax = confusion_figure(counts, ["a", "b", "c"], "t").axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a R=0.75", "b R=1.00", "c R=n/a"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a\nP=1.00", "b\nP=0.67", "c\nP=n/a"]


def test_progress_bar_prints_plain_lines_where_its_output_is_no_terminal(reviews_csv, tmp_path, capsys, monkeypatch):
    config = yaml.safe_load((ROOT / "configs" / "imdb.yaml").read_text())
    bar = next(c for c in config["trainer"]["callbacks"] if c["class_path"] == "seqlab.callbacks.ProgressBar")
    bar["init_args"] = {"every_seconds": 0}  # a line after every batch (30 s by default)
    (tmp_path / "imdb.yaml").write_text(yaml.safe_dump(config))
    args = tiny_text_args(reviews_csv, "--trainer.max_epochs=2")
    args[args.index("--config") + 1] = str(tmp_path / "imdb.yaml")
    main(["fit", *args])  # pytest captures the output: no terminal
    err = capsys.readouterr().err
    assert re.search(r"^seqlab: epoch 0/1: batch 1/\d+ \(\d+ s\), train/loss \d", err, re.M)
    assert re.search(r"^seqlab: validation: batch 1/\d+$", err, re.M)
    done = re.findall(r"^seqlab: epoch (\d)/1 done in \d+ s: (.*)$", err, re.M)
    assert [e for e, _ in done] == ["0", "1"] and all(re.search(r"val/acc_macro 0?\.\d+|val/acc_macro 1", m) for _, m in done)
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich takes the output for a terminal and draws the bar live: no lines
    monkeypatch.setenv("FORCE_COLOR", "1")  # (how rich before 14 is told so)
    monkeypatch.setenv("TERM", "xterm")
    main(["fit", *args])
    assert "done in" not in "".join(capsys.readouterr())  # (rich's live display sends stderr to its console)
    monkeypatch.setenv("TERM", "dumb")  # a terminal that rich draws nothing live on: the lines again
    main(["fit", *args])
    assert "seqlab: epoch 1/1 done in" in "".join(capsys.readouterr())
    main(["fit", *args, "--trainer.enable_progress_bar=false"])  # the config's bar is dropped (Lightning would refuse the run)
    assert "done in" not in "".join(capsys.readouterr())
