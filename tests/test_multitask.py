"""Multi-task training: task mixing, per-task metrics, checkpoints with every task, fine-tuning,
DDP on two CPU processes and bf16 mixed precision."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.fabric.utilities.data import _set_sampler_epoch

from seqlab.cli import main
from seqlab.data.base import BucketBatchSampler
from seqlab.data.multitask import TaskMixer
from seqlab.errors import SeqlabError
from seqlab.model import SeqModel

from .conftest import ROOT, make_reviews


def make_dna_csv(path: Path, n: int = 160, seed: int = 0) -> Path:
    """Generated DNA: class "motif" holds GGATCC somewhere, class "plain" does not."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seq", "label"])
        for i in range(n):
            seq = "".join(rng.choice("ACT") for _ in range(rng.randint(20, 40)))
            label = "motif" if i % 2 == 0 else "plain"
            if label == "motif":
                at = rng.randrange(len(seq))
                seq = seq[:at] + "GGATCC" + seq[at:]
            writer.writerow([seq, label])
    return path


def tiny_multitask_config(tmp_path: Path, **data_args) -> Path:
    """configs/multitask.yaml shrunk: generated reviews and DNA, small model, no logger."""
    reviews = tmp_path / "reviews.csv"
    with open(reviews, "w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *make_reviews(240)])
    dna = make_dna_csv(tmp_path / "dna.csv")
    config = yaml.safe_load((ROOT / "configs" / "multitask.yaml").read_text())
    config["trainer"].update(
        max_epochs=3, logger=False, enable_model_summary=False, enable_progress_bar=False, default_root_dir=str(tmp_path / "run")
    )
    config["trainer"]["callbacks"] = [c for c in config["trainer"]["callbacks"] if "ProgressBar" not in c["class_path"]]
    config["trainer"]["callbacks"][0]["init_args"]["dirpath"] = str(tmp_path / "ckpt")
    config["model"].update(embed_dim=16, hidden_size=16, position_embedding=0)
    config["model"]["optimizer"]["init_args"]["lr"] = 0.02
    cache = str(tmp_path / "cache")
    tasks = {
        "reviews": {
            "class_path": "seqlab.data.TextDataModule",
            "init_args": dict(source="file", path=str(reviews), text_column="text", label_column="label", min_freq=1, batch_size=16, cache_dir=cache),
        },
        "dna": {
            "class_path": "seqlab.data.DnaDataModule",
            "init_args": dict(source="file", path=str(dna), encoding="base", batch_size=16, cache_dir=cache),
        },
    }
    config["data"]["init_args"] = {"tasks": tasks, "mixing": "proportional", "temperature": 1.0, **data_args}
    path = tmp_path / "multitask.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


class FakeLoader(list):
    """A loader of n batches that name their task and position."""

    def __init__(self, task: str, n: int) -> None:
        super().__init__({"task": task, "i": i} for i in range(n))


def test_proportional_mixing_follows_sizes_and_temperature():
    loaders = {"big": FakeLoader("big", 300), "small": FakeLoader("small", 30)}
    by_size = TaskMixer(loaders, "proportional", temperature=1.0, seed=0).schedule()
    assert len(by_size) == 330
    assert 0.85 < by_size.count("big") / 330 < 0.96  # expected 300/330 = 0.91
    flat = TaskMixer(loaders, "proportional", temperature=1e6, seed=0).schedule()
    assert 0.4 < flat.count("big") / 330 < 0.6  # a huge temperature is uniform
    mixer = TaskMixer(loaders, "proportional", seed=0)
    first = mixer.schedule()
    _set_sampler_epoch(mixer, 1)  # what Lightning calls each epoch
    assert mixer.epoch == 1 and mixer.schedule() != first


def test_round_robin_takes_turns_and_uses_every_batch_once():
    mixer = TaskMixer({"a": FakeLoader("a", 3), "b": FakeLoader("b", 1), "c": FakeLoader("c", 2)}, "round_robin")
    assert mixer.schedule() == ["a", "b", "c", "a", "c", "a"]
    batches = list(mixer)
    assert [(b["task"], b["i"]) for b in batches] == [("a", 0), ("b", 0), ("c", 0), ("a", 1), ("c", 1), ("a", 2)]


def test_largest_cycle_gives_every_task_each_step_and_restarts_small_ones():
    mixer = TaskMixer({"a": FakeLoader("a", 4), "b": FakeLoader("b", 2)}, "largest_cycle")
    steps = list(mixer)
    assert len(mixer) == len(steps) == 4
    assert [[(b["task"], b["i"]) for b in step] for step in steps] == [
        [("a", 0), ("b", 0)], [("a", 1), ("b", 1)], [("a", 2), ("b", 0)], [("a", 3), ("b", 1)]
    ]  # fmt: skip


def test_steps_per_epoch_overrides_the_epoch_length():
    mixer = TaskMixer({"a": FakeLoader("a", 2), "b": FakeLoader("b", 2)}, "proportional", steps=7)
    assert len(mixer) == 7 and len(list(mixer)) == 7


def test_bucket_sampler_reshuffles_every_epoch_through_lightning():
    sampler = BucketBatchSampler(list(range(1, 200)), 8, shuffle=True, pool=2, seed=0)
    loader = torch.utils.data.DataLoader(list(range(199)), batch_sampler=sampler)
    first = list(sampler)
    _set_sampler_epoch(loader, 1)
    assert sampler.epoch == 1 and list(sampler) != first


def test_multitask_fit_reports_every_task_and_checkpoints_all_of_them(tmp_path, capsys):
    config = tiny_multitask_config(tmp_path)
    cli = main(["fit", "--config", str(config), "--trainer.max_epochs=4"])  # 12 validation reviews: 9, 11, 12 right after 3, 4, 5 epochs
    metrics = cli.trainer.callback_metrics
    expected = {"val/reviews/acc", "val/dna/acc", "val/reviews/auroc", "val/dna/f1", "val/acc_macro", "train/reviews/loss", "train/dna/loss"}
    assert expected <= set(metrics)
    macro = (metrics["val/reviews/acc"] + metrics["val/dna/acc"]) / 2
    assert torch.isclose(metrics["val/acc_macro"], macro)
    assert float(metrics["val/reviews/acc"]) > 0.75  # both generated tasks are learnable
    best = cli.trainer.checkpoint_callback.best_model_path
    ckpt = torch.load(best, map_location="cpu", weights_only=True)
    state = ckpt["MultiTaskDataModule"]["seqlab_tasks"]
    assert set(state) == {"reviews", "dna"}
    assert "vocab" in json.dumps(state["reviews"]) and state["dna"]["preprocessing"]["labels"] == ["motif", "plain"]
    assert {k.split(".")[1] for k in ckpt["state_dict"] if k.startswith("heads.")} == {"reviews", "dna"}

    assert {p.name for p in (tmp_path / "plots").glob("gates_*.png")} == {"gates_reviews.png", "gates_dna.png"}  # GateFigures

    # test one task by name, from the checkpoint alone
    main(["test", "--config", str(config), f"--ckpt_path={best}", "--data.only_task=dna"])
    assert "test/dna/acc" in capsys.readouterr().out

    # predict one task by name
    out = tmp_path / "preds.jsonl"
    main(["predict", "--config", str(config), f"--ckpt_path={best}", "--data.only_task=dna",
          "--data.predict_input=[GGATCCACACACTTTA, ACACACTTTACCCA]", f"--prediction_writer.output_path={out}"])  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["task"] for r in rows] == ["dna", "dna"] and all(r["label"] in ("motif", "plain") for r in rows)
    assert set(rows[0]) == {"index", "task", "label", "probability", "probabilities"}  # no window place: DNA is not cut

    with pytest.raises(SystemExit):
        main(["predict", "--config", str(config), f"--ckpt_path={best}", "--data.predict_input=[ACGT]"])
    assert "needs the task: add --data.only_task" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["test", "--config", str(config), f"--ckpt_path={best}", "--data.only_task=speech"])
    assert "not one of this run's tasks: reviews, dna" in capsys.readouterr().err


def test_largest_cycle_and_loss_weights_train_both_tasks(tmp_path, capsys):
    config = tiny_multitask_config(tmp_path, mixing="largest_cycle")
    cli = main(["fit", "--config", str(config), "--trainer.max_epochs=1", "--model.loss_weights={reviews: 2.0, dna: 0.5}"])
    assert cli.model.loss_weights == {"reviews": 2.0, "dna": 0.5}
    assert {"train/reviews/loss", "train/dna/loss"} <= set(cli.trainer.callback_metrics)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--model.loss_weights={speech: 1.0}"])
    assert exit_info.value.code == 2 and "loss_weights names task(s) speech this run does not have" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # a misspelt task in position_embedding would silently give no positions
        main(["fit", "--config", str(config), "--model.position_embedding={dnaa: 64}"])
    assert exit_info.value.code == 2 and "position_embedding names task(s) dnaa this run does not have" in capsys.readouterr().err


def test_checkpoint_without_the_asked_task_lists_the_tasks_it_has(tmp_path, capsys):
    config = tiny_multitask_config(tmp_path)
    cli = main(["fit", "--config", str(config), "--trainer.max_epochs=1"])
    best = cli.trainer.checkpoint_callback.best_model_path
    single = tmp_path / "single.yaml"
    text = yaml.safe_load(config.read_text())
    text["data"]["init_args"]["tasks"].pop("dna")
    text["data"]["init_args"]["tasks"]["other"] = text["data"]["init_args"]["tasks"].pop("reviews")
    single.write_text(yaml.safe_dump(text, sort_keys=False))
    with pytest.raises(SystemExit):
        main(["test", "--config", str(single), f"--ckpt_path={best}"])
    err = capsys.readouterr().err
    assert "has no task(s) other of this multi-task config; its tasks: reviews, dna" in err and "use that task's config" in err
    one_task = yaml.safe_load(config.read_text())  # a single-task config of a task the checkpoint has, under another name
    one_task["data"] = one_task["data"]["init_args"]["tasks"]["reviews"]
    one_task["data"]["init_args"]["task_name"] = "imdb"
    single.write_text(yaml.safe_dump(one_task, sort_keys=False))
    with pytest.raises(SystemExit):
        main(["test", "--config", str(single), f"--ckpt_path={best}"])
    err = capsys.readouterr().err
    assert "has no task 'imdb'" in err and "A multi-task checkpoint runs with its multi-task config" in err and "--data.task_name" not in err


def test_backbone_from_copies_the_encoder_and_freezing_keeps_it(tmp_path, capsys):
    config = tiny_multitask_config(tmp_path)
    donor = main(["fit", "--config", str(config), "--trainer.max_epochs=1"])
    ckpt = donor.trainer.checkpoint_callback.best_model_path
    donor_encoder = {k: v.clone() for k, v in donor.model.encoder.state_dict().items()}

    # a new task (DNA alone, new name) starts from the trained backbone, frozen for its one epoch
    text = yaml.safe_load(config.read_text())
    tasks = text["data"]["init_args"]["tasks"]
    text["data"]["init_args"]["tasks"] = {"dna2": tasks["dna"]}
    text["trainer"]["callbacks"][0]["init_args"]["dirpath"] = str(tmp_path / "ckpt2")
    new = tmp_path / "new.yaml"
    new.write_text(yaml.safe_dump(text, sort_keys=False))
    cli = main(["fit", "--config", str(new), "--trainer.max_epochs=1", f"--model.backbone_from={ckpt}", "--model.freeze_backbone_epochs=1"])
    after = cli.model.encoder.state_dict()
    assert all(torch.equal(after[k], donor_encoder[k]) for k in donor_encoder)  # copied, then frozen
    cli2 = main(["fit", "--config", str(new), "--trainer.max_epochs=1", f"--model.backbone_from={ckpt}"])
    assert not all(torch.equal(cli2.model.encoder.state_dict()[k], donor_encoder[k]) for k in donor_encoder)  # copied, then trained

    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(new), "--trainer.max_epochs=1", f"--model.backbone_from={ckpt}", "--model.hidden_size=8"])
    assert exit_info.value.code == 2 and "does not fit this model" in capsys.readouterr().err
    for change in ({"num_layers": 2}, {"pooling": "attention"}):  # a model with more encoder weights is not filled half
        hparams = {k: v for k, v in cli2.model.hparams.items() if not k.startswith("_")}
        model = SeqModel(**{**hparams, **change, "backbone_from": None})
        with pytest.raises(SeqlabError, match=r"does not fit this model \(encoder\.\S+ only in this model"):
            model.load_backbone(ckpt)
    donor = {"state_dict": model.state_dict(), "hyper_parameters": {"specs": hparams["specs"]}, "pytorch-lightning_version": L.__version__}
    torch.save(donor, tmp_path / "attention.ckpt")  # and the other way round: a checkpoint with weights this model lacks
    with pytest.raises(SeqlabError, match=r"encoder\.\S+ only in the checkpoint"):
        cli2.model.load_backbone(str(tmp_path / "attention.ckpt"))


def test_bf16_mixed_trains_and_agrees_with_float32(tmp_path):
    """A fixed small run in bf16-mixed and in float32: same data order, close losses and accuracy."""
    config = tiny_multitask_config(tmp_path)
    results = {}
    for precision in ("32-true", "bf16-mixed"):
        cli = main(["fit", "--config", str(config), f"--trainer.precision={precision}", "--trainer.max_epochs=2",
                    f"--trainer.default_root_dir={tmp_path / precision}", "--model.float32_lstm=false"])  # fmt: skip
        m = cli.trainer.callback_metrics
        results[precision] = {k: float(m[k]) for k in ("train/reviews/loss", "val/reviews/acc", "val/dna/acc")}
    fp32, bf16 = results["32-true"], results["bf16-mixed"]
    assert abs(fp32["train/reviews/loss"] - bf16["train/reviews/loss"]) < 0.05
    assert abs(fp32["val/reviews/acc"] - bf16["val/reviews/acc"]) <= 0.1
    assert abs(fp32["val/dna/acc"] - bf16["val/dna/acc"]) <= 0.1


def test_float32_lstm_keeps_the_recurrence_in_float32_under_autocast():
    from seqlab.nn import LSTMEncoder

    seen = []
    for keep in (False, True):
        enc = LSTMEncoder(8, 8, bidirectional=True, feature_dim=3, pooling="mean", float32_lstm=keep)
        enc.forward_layers[0].register_forward_hook(lambda m, i, o: seen.append(o[0].dtype))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            enc(torch.randn(2, 5, 3), torch.tensor([5, 3]))
    assert seen == [torch.bfloat16, torch.float32]
    # The reference recurrence too: with float32_lstm its steps give the float32 numbers exactly.
    torch.manual_seed(0)
    h, lengths = torch.randn(2, 30, 8), torch.tensor([30, 30])
    for keep in (True, False):
        enc = LSTMEncoder(8, 8, bidirectional=False, feature_dim=3, impl="reference", float32_lstm=keep)
        full = enc._run(enc.forward_layers[0], h, lengths)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = enc._run(enc.forward_layers[0], h, lengths)
        assert torch.equal(mixed.float(), full) == keep


class RecordBatches(L.Callback):
    """Writes, per rank, the task and sample indices of every training step and the synced
    validation metrics (used by the DDP test through the CLI)."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir, self.steps, self.val = out_dir, [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps.append([batch["task"], batch["index"].tolist()])

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.val.append({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")})

    def on_fit_end(self, trainer, pl_module) -> None:
        path = Path(self.out_dir) / f"rank{trainer.global_rank}.json"
        path.write_text(json.dumps({"world": trainer.world_size, "steps": self.steps, "val": self.val}))


def run_cli(args: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "seqlab", *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


def test_ddp_two_cpu_processes_split_every_task_and_sync_metrics(tmp_path):
    config = tiny_multitask_config(tmp_path)
    out = tmp_path / "ddp"
    out.mkdir()
    result = run_cli(["fit", "--config", str(config), "--trainer.max_epochs=2", "--trainer.accelerator=cpu", "--trainer.devices=2",
                      "--trainer.strategy=ddp", "--trainer.callbacks+=tests.test_multitask.RecordBatches",
                      f"--trainer.callbacks.out_dir={out}"])  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 for r in ranks)
    steps0, steps1 = ranks[0]["steps"], ranks[1]["steps"]
    assert len(steps0) == len(steps1) > 0
    assert [s[0] for s in steps0] == [s[0] for s in steps1]  # the same task at every step
    assert {s[0] for s in steps0} == {"reviews", "dna"}
    per_epoch = len(steps0) // 2

    def first_pass(steps: list, task: str) -> set[int]:
        """The rows of the task's first pass (a task that runs out starts a new order, on every rank alike)."""
        seen: set[int] = set()
        for t, idx in steps[:per_epoch]:
            if t == task:
                if seen & set(idx):
                    break
                seen |= set(idx)
        return seen

    for task in ("reviews", "dna"):
        seen0, seen1 = first_pass(steps0, task), first_pass(steps1, task)
        assert seen0 and seen1 and len(seen0 & seen1) <= 1  # distinct shares (at most one wrap-around sample shared)
    # Each rank validates its own half; losses and metrics are synchronised, so both report the same.
    assert ranks[0]["val"] == ranks[1]["val"] and "val/dna/acc" in ranks[0]["val"][-1]


def test_validate_without_any_validation_split_says_so(tmp_path):
    from types import SimpleNamespace

    from seqlab.data import DnaDataModule, MultiTaskDataModule
    from seqlab.errors import SeqlabError

    dna = str(make_dna_csv(tmp_path / "dna.csv"))

    def val_loader(val_sizes: dict[str, float], only_task: str | None = None):
        tasks = {
            name: DnaDataModule(task_name=name, source="file", path=dna, val_size=v, cache_dir=str(tmp_path / "c")) for name, v in val_sizes.items()
        }
        dm = MultiTaskDataModule(tasks=tasks, only_task=only_task)
        dm.trainer = SimpleNamespace(state=SimpleNamespace(fn="validate"), datamodule=dm, world_size=1, global_rank=0)
        dm.setup("validate")
        return dm.val_dataloader()

    with pytest.raises(SeqlabError, match="No task of this config has a validation split"):
        val_loader({"a": 0, "b": 0})
    assert len(val_loader({"a": 0, "b": 0.2})) > 0  # one task with a validation split is enough
    with pytest.raises(SeqlabError, match=r"Task 'a' \(data.only_task\) has no validation split"):
        val_loader({"a": 0, "b": 0.2}, only_task="a")


def test_a_batch_limit_below_the_task_count_is_named(capsys):
    from types import SimpleNamespace

    from seqlab.data import DnaDataModule
    from seqlab.data.multitask import Interleaved, MultiTaskDataModule

    dm = MultiTaskDataModule(tasks={"a": DnaDataModule(), "b": DnaDataModule(), "c": DnaDataModule()})
    loaders = Interleaved([[1, 2], [3], [4]])  # three tasks with batches
    dm.trainer = SimpleNamespace(limit_test_batches=2)
    dm._warn_if_limited("test", loaders)
    assert capsys.readouterr().err == (
        "seqlab: trainer.limit_test_batches=2 is below the 3 tasks evaluated: the tasks take turns a batch each, "
        "so only the first 2 are evaluated and test/acc_macro averages those.\n"
    )
    dm.trainer = SimpleNamespace(limit_test_batches=3)
    dm._warn_if_limited("test", loaders)  # every task gets a batch: nothing to say
    assert capsys.readouterr().err == ""
