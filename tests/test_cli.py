"""The CLI as a user drives it: configs, fit/validate/test/predict, checkpoints, loggers, errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import seqlab
from seqlab.cli import main
from seqlab.errors import SeqlabError
from seqlab.model import SeqModel

from .conftest import CONFIGS, ROOT, tiny_text_args


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # configs write runs/<task>/... relative to the working directory


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_config_runs_fast_dev_run(config):
    """The real config, shrunk: real data source, one batch of fit, validate and test."""
    batches = 4 if config.stem == "multitask" else 1  # a batch of each task
    cli = main(["fit", "--config", str(config), f"--trainer.fast_dev_run={batches}", "--trainer.logger=false"])
    assert cli.trainer.state.finished
    assert any(k.startswith("train/") for k in cli.trainer.callback_metrics)
    cli.trainer.test(cli.model, datamodule=cli.datamodule)
    tasks = list(cli.model.specs)
    assert {f"test/{t}/acc" for t in tasks} <= set(cli.trainer.callback_metrics)
    assert not list(Path("runs").rglob("*.ckpt"))  # a smoke test leaves no checkpoint that --ckpt_path last could pick


def fit_tiny(reviews_csv, *extra):
    return main(["fit", *tiny_text_args(reviews_csv, "--trainer.max_epochs=3", *extra)])


def test_a_frozen_backbone_keeps_its_convolutional_branch_statistics(reviews_csv):
    donor = fit_tiny(reviews_csv, "--model.fcn_width=4", "--trainer.max_epochs=1")
    ckpt = donor.trainer.checkpoint_callback.best_model_path
    before = {k: v.clone() for k, v in donor.model.encoder.state_dict().items()}
    assert any(k.startswith("fcn.norms.") and k.endswith("running_var") for k in before)
    args = ["--model.fcn_width=4", f"--model.backbone_from={ckpt}", "--model.freeze_backbone_epochs=1"]
    frozen = fit_tiny(reviews_csv, *args, "--trainer.max_epochs=1").model.encoder.state_dict()
    assert all(torch.equal(frozen[k], before[k]) for k in before)  # weights and batch-norm statistics alike
    thawed = fit_tiny(reviews_csv, *args, "--trainer.max_epochs=2").model.encoder  # the second epoch trains it, statistics too
    assert not torch.equal(thawed.fcn.norms[0].running_var, before["fcn.norms.0.running_var"])


def test_fit_learns_and_checkpoint_round_trip_gives_identical_predictions(reviews_csv, tmp_path):
    cli = fit_tiny(reviews_csv, "--model.optimizer.init_args.lr=0.02", "--trainer.max_epochs=8", "--model.input_dropout=0.1")
    metrics = cli.trainer.callback_metrics
    assert {"val/imdb/acc", "val/imdb/f1", "val/imdb/auroc", "val/acc_macro"} <= set(metrics)
    assert float(metrics["val/imdb/acc"]) > 0.8  # the generated sentiment words are easy to learn
    best = Path(cli.trainer.checkpoint_callback.best_model_path)
    assert best.is_file() and (best.parent / "last.ckpt").is_file()

    texts = tmp_path / "new.txt"
    texts.write_text("a wonderful brilliant film\nthe worst and most boring plot\nthe movie was great\n")
    out = tmp_path / "preds.jsonl"
    main(["predict", *tiny_text_args(reviews_csv), f"--ckpt_path={best}", f"--data.predict_input={texts}", f"--prediction_writer.output_path={out}"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2]
    with pytest.raises(SystemExit) as exit_info:  # an output path that is a folder: said before predicting
        main(["predict", *tiny_text_args(reviews_csv), f"--ckpt_path={best}", f"--data.predict_input={texts}",
              f"--prediction_writer.output_path={tmp_path}"])  # fmt: skip
    assert exit_info.value.code == 2
    assert out.read_text().splitlines() == [json.dumps(row) for row in rows]  # the earlier predictions are untouched
    assert [r["label"] for r in rows] == ["positive", "negative", "positive"]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in rows)

    # The same checkpoint loaded in plain Python gives the same probabilities.
    model = SeqModel.load_from_checkpoint(best, map_location="cpu").eval()
    dm = cli.datamodule
    dm.predict_input = str(texts)
    batch = next(iter(dm.predict_dataloader()))
    with torch.no_grad():
        probs = model(batch["x"], batch["lengths"], "imdb").softmax(-1)
    for row, p in zip(rows, probs):
        assert row["probabilities"]["positive"] == pytest.approx(float(p[1]), abs=1e-6)


def test_validate_and_test_with_a_checkpoint_use_its_vocabulary(reviews_csv, capsys):
    cli = fit_tiny(reviews_csv)
    best = cli.trainer.checkpoint_callback.best_model_path
    capsys.readouterr()
    val = main(["validate", *tiny_text_args(reviews_csv), f"--ckpt_path={best}"])
    assert val.datamodule.preprocessing_from == best
    assert float(val.trainer.callback_metrics["val/imdb/acc"]) == pytest.approx(float(cli.trainer.checkpoint_callback.best_model_score))
    assert "data settings apply" not in capsys.readouterr().err  # the training config: nothing replaced
    test = main(["test", *tiny_text_args(reviews_csv, "--data.max_length=7", "--data.lowercase=false"), f"--ckpt_path={best}"])
    assert "test/imdb/auroc" in test.trainer.callback_metrics
    assert test.datamodule.preprocessing["max_length"] == 500  # the checkpoint's, and a line says so
    assert "seqlab: task imdb: the checkpoint's data settings apply: lowercase=True (config: False), max_length=500 (config: 7)." in (
        capsys.readouterr().err
    )


def test_an_ensemble_fit_keeps_every_member_in_its_checkpoint(reviews_csv):
    cli = fit_tiny(reviews_csv, "--model.members=2")
    best = str(Path(cli.trainer.checkpoint_callback.best_model_path).parent / "last.ckpt")  # the weights the last validation scored
    weights = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
    assert any(k.startswith("ensemble.0.encoder.") for k in weights) and not any(k.startswith("ensemble.1.") for k in weights)
    val = main(["validate", *tiny_text_args(reviews_csv), f"--ckpt_path={best}"])  # the members come back from the checkpoint
    assert val.model.hparams.members == 2
    assert float(val.trainer.callback_metrics["val/imdb/loss"]) == pytest.approx(float(cli.trainer.callback_metrics["val/imdb/loss"]), abs=1e-5)
    texts = ["a wonderful brilliant film", "the worst and most boring plot"]
    model = SeqModel.load_from_checkpoint(best, map_location="cpu").eval()
    cli.datamodule.predict_input = texts
    batch = next(iter(cli.datamodule.predict_dataloader()))
    with torch.no_grad():
        members = [model(batch["x"], batch["lengths"], "imdb", member=k).softmax(-1) for k in (0, 1)]
    assert not torch.allclose(members[0], members[1])
    torch.testing.assert_close(seqlab.load(best).predict_proba(texts), (members[0] + members[1]) / 2)


@pytest.mark.parametrize("every,best_epoch", [(1, 0), (2, 1)])
def test_last_checkpoint_holds_the_last_epoch_when_the_metric_stops_improving(reviews_csv, every, best_epoch):
    # Nothing learns (lr 0): the best stays the first validated epoch; with validation every 2nd
    # epoch the last of the 3 epochs has no validation at all.
    cli = fit_tiny(reviews_csv, "--model.optimizer.init_args.lr=0", f"--trainer.check_val_every_n_epoch={every}")
    best = Path(cli.trainer.checkpoint_callback.best_model_path)
    assert best.name == f"best-epoch={best_epoch}.ckpt"
    last = torch.load(best.parent / "last.ckpt", map_location="cpu", weights_only=False)
    assert (last["epoch"], last["global_step"]) == (2, cli.trainer.global_step)  # the fit's end, not a copy of the best


def test_a_save_cut_short_leaves_the_previous_checkpoint_whole(reviews_csv, monkeypatch):
    from seqlab.files import writer_tag

    first = fit_tiny(reviews_csv, "--trainer.max_epochs=1")
    folder = Path(first.trainer.checkpoint_callback.dirpath)
    last = folder / "last.ckpt"
    before, files = last.read_bytes(), sorted(p.name for p in folder.iterdir())

    def cut_short(obj, f, *args, **kwargs):
        Path(f).write_bytes(before[:100])  # what a save interrupted half-way leaves
        raise RuntimeError("crash while saving")

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", cut_short)
        with pytest.raises(RuntimeError, match="crash while saving"):
            fit_tiny(reviews_csv, "--trainer.max_epochs=2", "--ckpt_path=last")
    assert last.read_bytes() == before  # the partial bytes went to a temporary beside it, never to last.ckpt
    assert sorted(p.name for p in folder.iterdir()) == files  # and the temporary is gone
    assert torch.load(last, map_location="cpu", weights_only=False)["epoch"] == 0
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    host = writer_tag().rsplit("-", 1)[0]
    orphan = folder / f".best-epoch=7.ckpt.{host}-{ended}.tmp"  # what a killed fit left
    orphan.write_bytes(before[:100])
    kept = [f".last.ckpt.{host}-{os.getppid()}.tmp", f".last.ckpt.other_host-{ended}.tmp", f".notes.{host}-{ended}.txt"]
    for name in kept:  # a live writer's, another host's (a shared file system), and no temporary of a checkpoint
        (folder / name).write_bytes(b"?")
    fit_tiny(reviews_csv, "--trainer.max_epochs=2", "--ckpt_path=last")
    assert not orphan.exists() and sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == sorted(kept)


def test_resume_from_last_checkpoint(reviews_csv, capsys):
    first = fit_tiny(reviews_csv, "--trainer.max_epochs=1", "--ckpt_path=last")  # nothing to resume yet
    err = capsys.readouterr().err
    assert "seqlab: no last*.ckpt in runs/imdb/checkpoints yet: the fit starts afresh." in err and "save_last" not in err
    assert re.search(r"seqlab: checkpoints: best \S+best-epoch=0\.ckpt, last \S+last\.ckpt\n", err)  # the fit names what it wrote
    steps = first.trainer.global_step
    # Another hidden_size on the command line: the resumed model is the checkpoint's, and a line says so.
    resumed = fit_tiny(reviews_csv, "--trainer.max_epochs=2", "--ckpt_path=last", "--model.hidden_size=8")
    assert resumed.trainer.current_epoch == 2
    assert resumed.trainer.global_step == 2 * steps
    assert resumed.model.hparams.hidden_size == 16
    assert "the checkpoint's model settings apply: hidden_size=16 (config: 8)" in capsys.readouterr().err


def test_checkpoint_of_another_task_is_refused_with_its_tasks(reviews_csv, capsys):
    best = fit_tiny(reviews_csv, "--trainer.max_epochs=1").trainer.checkpoint_callback.best_model_path
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        args = ["--data.task_name=reviews2", "--model.hidden_size=8", f"--ckpt_path={best}", "--data.predict_input=[great]"]
        main(["predict", *tiny_text_args(reviews_csv), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "has no task 'reviews2'" in err and "model settings apply" not in err  # no line as if the run went ahead


def test_predict_needs_no_training_file_but_test_does(reviews_csv, tmp_path, capsys, monkeypatch):
    """A checkpoint holds all that predict reads; only what reads the training data asks for data.path."""
    best = fit_tiny(reviews_csv, "--trainer.max_epochs=1").trainer.checkpoint_callback.best_model_path
    out = tmp_path / "preds.jsonl"
    no_path = [*tiny_text_args(reviews_csv), "--data.path=null", f"--ckpt_path={best}"]
    main(["predict", *no_path, "--data.predict_input=[great, awful]", f"--prediction_writer.output_path={out}"])
    assert len(out.read_text().splitlines()) == 2
    last = [a if not a.startswith("--ckpt_path=") else "--ckpt_path=last" for a in no_path]  # the newest last*.ckpt, read as a path
    main(["predict", *last, "--data.predict_input=[great, awful]", f"--prediction_writer.output_path={out}"])
    assert len(out.read_text().splitlines()) == 2
    by_name = [a if not a.startswith("--ckpt_path=") else "--ckpt_path=best" for a in no_path]  # the best that last.ckpt records
    assert Path(main(["predict", *by_name, "--data.predict_input=[great]"]).trainer.ckpt_path) == Path(best).resolve()
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *tiny_text_args(reviews_csv), "--ckpt_path=best"])
    assert exit_info.value.code == 2 and "fit --ckpt_path best: a fit resumes from --ckpt_path last" in capsys.readouterr().err
    moved = Path(best).rename(Path(best).with_suffix(".moved"))
    with pytest.raises(SystemExit):
        main(["predict", *by_name, "--data.predict_input=[great]"])
    assert f"records no best checkpoint ({best} no longer exists)" in capsys.readouterr().err
    moved.rename(best)
    with pytest.raises(SystemExit):  # a list typed without its comma reaches the CLI as one string
        main(["predict", *no_path, '--data.predict_input=["great film" "dull"]'])
    assert "looks like a list but reached seqlab as one string" in capsys.readouterr().err
    folder = Path(best).parent
    (folder / "last-v1.ckpt").write_bytes(b"not a checkpoint")  # newer than last.ckpt: the one picked
    with pytest.raises(SystemExit):
        main(["predict", *last, "--data.predict_input=[great]"])
    assert "last-v1.ckpt could not be read" in capsys.readouterr().err
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the config's runs/imdb/checkpoints is relative: none here
    with pytest.raises(SystemExit) as exit_info:  # an error, not a run of untrained weights
        main(["predict", *last, "--data.predict_input=[great]"])
    assert exit_info.value.code == 2 and "--ckpt_path last: no last*.ckpt in" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["predict", *by_name, "--data.predict_input=[great]"])
    assert "--ckpt_path best: no last*.ckpt in" in capsys.readouterr().err
    no_checkpoint = [a for a in no_path if not a.startswith("--ckpt_path=")]
    for command in ("validate", "test", "predict"):  # no --ckpt_path at all: an error too
        with pytest.raises(SystemExit) as exit_info:
            main([command, *no_checkpoint, "--data.predict_input=[great]"])
        assert exit_info.value.code == 2 and f"python -m seqlab {command} needs a trained model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["test", *no_path])
    assert exit_info.value.code == 2
    assert "data.source=file needs data.path" in capsys.readouterr().err
    runs = folder.parent.parent
    shutil.copytree(runs, "runs")  # the run folder copied elsewhere (the checkpoints record absolute paths) and the original gone
    shutil.rmtree(runs)
    copy = Path("runs") / folder.relative_to(runs)
    (copy / "last-v1.ckpt").unlink()  # the damaged one above
    used = main(["predict", *by_name, "--data.predict_input=[great]"]).trainer.ckpt_path
    assert Path(used).resolve() == (copy / Path(best).name).resolve()


def test_help_lists_the_commands_beside_lightnings(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "{fit,validate,test,predict}" in out and "seqlab export --help" in out and "seqlab explain --help" in out
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    assert "LSTM units per direction. (type: int, default: 128)" in capsys.readouterr().out  # model options are described


def test_a_backbone_setting_that_cannot_work_is_one_line_not_a_traceback(reviews_csv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *tiny_text_args(reviews_csv, "--model.conv_kernel=4")])
    assert exit_info.value.code == 2
    assert "conv_kernel must be an odd number of steps" in capsys.readouterr().err


@pytest.mark.parametrize(
    "option,says",
    [
        ("--data.windw=3", "data.windw is not an option of seqlab.data.SpeechDataModule. Did you mean data.window_ms? "
                           "All options: python -m seqlab test --data.help seqlab.data.SpeechDataModule"),
        ("--model.hiden_size=3", "model.hiden_size is not an option. Did you mean model.hidden_size or model.chunk_size? "
                                 "All options: python -m seqlab test --help"),
        ("--trainer.max_epoch=3", "trainer.max_epoch is not an option. Did you mean trainer.max_epochs or trainer.min_epochs "
                                  "or trainer.max_steps? All options: python -m seqlab test --help"),  # no prefix matching
        ("--data.batch_size=eight", "data.batch_size must be int; got eight. "
                                    "All options: python -m seqlab test --data.help seqlab.data.SpeechDataModule"),
        ("--data.labels=5", "data.labels must be list[str] or None; got 5. "
                            "All options: python -m seqlab test --data.help seqlab.data.SpeechDataModule"),  # an optional option
        ("--data.source=bogus", "data.source must be one of 'fsdd_archive', 'japanese_vowels', 'file', 'wav_folder', 'hub'; got bogus. "
                                "All options: python -m seqlab test --data.help seqlab.data.SpeechDataModule"),
        ("--trainer.max_epochs=abc", "trainer.max_epochs must be int or None; got abc. All options: python -m seqlab test --help"),
        ("--model.hidden_size=abc", "model.hidden_size must be int; got abc. All options: python -m seqlab test --help"),
    ],
)  # fmt: skip
def test_a_misspelt_option_is_named_with_the_closest_ones(option, says, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["test", "--config", str(ROOT / "configs" / "japanese_vowels.yaml"), option])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {says}"
    typo = Path("typo.yaml")  # in a config file, reported by the top parser
    typo.write_text("trainer:\n  max_epochz: 3\n")
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(ROOT / "configs" / "japanese_vowels.yaml"), "--config", str(typo)])
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: trainer.max_epochz is not an option. Did you mean trainer.max_epochs or trainer.min_epochs or trainer.max_steps? "
        "All options: python -m seqlab fit --help"
    )
    with pytest.raises(SystemExit):  # a task's option in a multi-task config, on the command line
        main(["fit", "--config", str(ROOT / "configs" / "multitask.yaml"), "--data.tasks.imdb.init_args.batchsize=3"])
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: data.tasks.imdb.batchsize is not an option of seqlab.data.TextDataModule. Did you mean data.tasks.imdb.batch_size "
        "or data.tasks.imdb.eval_batch_size? All options: python -m seqlab fit --data.help seqlab.data.TextDataModule"
    )


MULTITASK = (ROOT / "configs" / "multitask.yaml").read_text()
JAPANESE_VOWELS = (ROOT / "configs" / "japanese_vowels.yaml").read_text()


def with_task(name: str, copy_of: str, **changes) -> str:
    """configs/multitask.yaml with one more task, a copy of another with ``changes`` to its init_args."""
    import copy

    import yaml

    config = yaml.safe_load(MULTITASK)
    task = copy.deepcopy(config["data"]["init_args"]["tasks"][copy_of])
    task["init_args"].update(changes)
    config["data"]["init_args"]["tasks"][name] = task
    return yaml.safe_dump(config, sort_keys=False)


def moved_beside(text: str, block: str) -> str:
    """``text`` with the ``init_args:`` line right below ``block`` (a class_path line) removed and
    its options dedented: written beside class_path."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        out.append(lines[i])
        if lines[i].strip() == block and i + 1 < len(lines) and lines[i + 1].strip() == "init_args:":
            indent = len(lines[i + 1]) - len(lines[i + 1].lstrip())
            i += 2
            while i < len(lines) and (len(lines[i]) - len(lines[i].lstrip()) > indent or not lines[i].strip()):
                out.append(lines[i][2:])
                i += 1
            continue
        i += 1
    return "\n".join(out) + "\n"


BESIDE = "; a class's options go under its init_args (class_path: {c}, then init_args: with {o} indented below it)."
ADAMW = "All options: python -m seqlab fit --model.optimizer.help torch.optim.AdamW"


@pytest.mark.parametrize(
    "config, args, says",
    [
        (MULTITASK.replace("min_freq: 2", "min_frq: 2"), [],
         "data.tasks.imdb.min_frq is not an option of seqlab.data.TextDataModule. Did you mean data.tasks.imdb.min_freq? "
         "All options: python -m seqlab fit --data.help seqlab.data.TextDataModule"),
        (MULTITASK.replace("batch_size: 32\n      splice", "batch_size: eight\n      splice"), [],
         "data.tasks.fsdd.batch_size must be int; got eight. All options: python -m seqlab fit --data.help seqlab.data.SpeechDataModule"),
        (with_task("fsdd2", "fsdd", batch_size="abc"), [],  # two tasks of one class: the one holding the value
         "data.tasks.fsdd2.batch_size must be int; got abc. All options: python -m seqlab fit --data.help seqlab.data.SpeechDataModule"),
        (MULTITASK.replace("seqlab.data.SpeechDataModule", "SpeechDataModule").replace("normalize: true", "normalise: true"), [],
         "data.tasks.fsdd.normalise is not an option of seqlab.data.SpeechDataModule. Did you mean data.tasks.fsdd.normalize? "
         "All options: python -m seqlab fit --data.help seqlab.data.SpeechDataModule"),  # a class_path by its class name alone
        (MULTITASK.replace("    tasks:", "    task:"), [],  # a misspelt key whose value is a mapping
         "data.task is not an option of seqlab.data.MultiTaskDataModule. Did you mean data.tasks or data.only_task? "
         "All options: python -m seqlab fit --data.help seqlab.data.MultiTaskDataModule"),
        (MULTITASK.replace("seqlab.data.DnaDataModule", "seqlab.data.DnaDataModle"), [],
         "data.tasks.splice.class_path seqlab.data.DnaDataModle names no class (module 'seqlab.data' has no attribute 'DnaDataModle'). "
         "Did you mean seqlab.data.DnaDataModule?"),
        (MULTITASK.replace("        class_path: seqlab.data.SpeechDataModule\n", ""), [],
         "data.tasks.fsdd has no class_path: name the task's data module (e.g. class_path: seqlab.data.SpeechDataModule) and put its "
         "options under init_args."),
        (MULTITASK, ["--data.tasks.imdbb.batch_size=3"],
         "data.tasks.imdbb is not a task of this config; its tasks: imdb, fsdd, splice, hapt. Check the name."),
        (moved_beside(MULTITASK, "class_path: seqlab.data.SpeechDataModule"), [],
         "data.tasks.fsdd: source, normalize, test_size, val_size, batch_size stand beside class_path seqlab.data.SpeechDataModule"
         + BESIDE.format(c="seqlab.data.SpeechDataModule", o="source, normalize, test_size, val_size, batch_size")),
        (JAPANESE_VOWELS.replace("  class_path: seqlab.data.SpeechDataModule\n", "  class_path: seqlab.data.SpeechDataModule\n  deltas: 2\n"), [],
         "data: deltas stands beside class_path seqlab.data.SpeechDataModule" + BESIDE.format(c="seqlab.data.SpeechDataModule", o="deltas")),
        (moved_beside(JAPANESE_VOWELS, "class_path: torch.optim.AdamW"), [],
         "model.optimizer: lr, weight_decay stand beside class_path torch.optim.AdamW" + BESIDE.format(c="torch.optim.AdamW", o="lr, weight_decay")),
        (JAPANESE_VOWELS.replace("weight_decay: 0.01", "weight_decay: 0.01\n      betaz: [0.9, 0.99]"), [],
         f"model.optimizer.betaz is not an option of torch.optim.AdamW. Did you mean model.optimizer.betas? {ADAMW}"),
        (JAPANESE_VOWELS.replace("weight_decay: 0.01", "weight_decay: lots"), [],
         f"model.optimizer.weight_decay must be float; got lots. {ADAMW}"),
        (JAPANESE_VOWELS, ["--model.optimizer.lr=abc"], f"model.optimizer.lr must be float or torch.Tensor; got abc. {ADAMW}"),
        (JAPANESE_VOWELS.replace("class_path: torch.optim.AdamW", "class_path: torch.optimz.AdamW"), [],
         "model.optimizer.class_path torch.optimz.AdamW names no class (module 'torch' has no attribute 'optimz'). "
         "Did you mean torch.optim.AdamW?"),
        (JAPANESE_VOWELS.replace("class_path: torch.optim.AdamW", "class_path: Adamw"), [],
         "model.optimizer.class_path Adamw names no class (no class of that name is known). Did you mean torch.optim.AdamW?"),
        (JAPANESE_VOWELS, ["--model.optimizer=torch.optim.adamw"],
         "model.optimizer.class_path torch.optim.adamw names no class (torch.optim.adamw is a module, not a class). "
         "Did you mean torch.optim.AdamW?"),
        (JAPANESE_VOWELS.replace("class_path: torch.optim.AdamW", "class_path: tests.helpers.make_sgd").replace("lr:", "lrr:"), [],
         "model.optimizer.lrr is not an option of tests.helpers.make_sgd. Did you mean model.optimizer.lr? "
         "All options: python -m seqlab fit --model.optimizer.help tests.helpers.make_sgd"),  # an optimizer factory function
        (JAPANESE_VOWELS.replace("seqlab.callbacks.ProgressBar", "seqlab.callbacks.ProgresBar"), [],
         "trainer.callbacks.class_path seqlab.callbacks.ProgresBar names no class "
         "(module 'seqlab.callbacks' has no attribute 'ProgresBar'). Did you mean seqlab.callbacks.ProgressBar?"),
        (JAPANESE_VOWELS.replace("log_model: true", "log_model: sometimes"), [],
         "trainer.logger.log_model must be one of 'all' or bool; got sometimes. "
         "All options: python -m seqlab fit --trainer.logger.help seqlab.loggers.WandbLogger"),
        ("", [], None),
        ("# nothing but a comment\n", [], None),
        ("- model\n", [], None),
    ],
    ids=["task-option", "task-type", "task-type-2nd", "task-short-class", "task-mapping-key", "task-class", "task-no-class",
         "task-name", "task-beside", "beside", "optimizer-beside", "optimizer-option", "optimizer-type", "optimizer-union",
         "optimizer-module", "optimizer-short", "optimizer-case", "optimizer-function", "callback-class", "logger-literal", "empty",
         "comment", "list"],
)  # fmt: skip
def test_a_mistake_inside_a_nested_class_or_an_empty_config_is_one_line(config, args, says, tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))  # tests.helpers.make_sgd
    path = tmp_path / "mine.yaml"
    path.write_text(config)
    assert args or (config != MULTITASK and config != JAPANESE_VOWELS)  # the mistake was made
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(path), *args, "--trainer.fast_dev_run=true"])  # (each stops before any data is read)
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    if says is None:
        what = "holds a list, not keys and values" if config.startswith("-") else "is empty"
        assert last.startswith(f"seqlab: error: Config {path} {what}: a config maps trainer:, model: and data: to their settings."), last
    else:
        assert last == f"error: {says}"


def test_a_misspelt_option_of_a_logger_or_callback_names_the_class(tmp_path, capsys):
    nested = {  # inside a logger's or a callback's init_args: the class is named, and init arguments passed on by **kwargs count
        "logger:\n    class_path: seqlab.loggers.WandbLogger\n    init_args:\n      projct: x\n": (
            "trainer.logger.projct is not an option of seqlab.loggers.WandbLogger. Did you mean trainer.logger.project? "
            "All options: python -m seqlab fit --trainer.logger.help seqlab.loggers.WandbLogger"
        ),
        "callbacks:\n    - class_path: seqlab.callbacks.ProgressBar\n      init_args:\n        every_secondz: 3\n": (
            "trainer.callbacks.every_secondz is not an option of seqlab.callbacks.ProgressBar. Did you mean "
            "trainer.callbacks.every_seconds? All options: python -m seqlab fit --trainer.callbacks.help seqlab.callbacks.ProgressBar"
        ),
    }
    for text, says in nested.items():
        typo = tmp_path / "typo.yaml"
        typo.write_text("trainer:\n  " + text)
        with pytest.raises(SystemExit):
            main(["fit", "--config", str(ROOT / "configs" / "japanese_vowels.yaml"), "--config", str(typo)])
        assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {says}"
    with pytest.raises(SystemExit):  # on the command line, a callback option goes to the last callback: say so
        main(["fit", "--config", str(ROOT / "configs" / "japanese_vowels.yaml"), "--trainer.callbacks.monitor", "val/loss"])
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .endswith(
            "(--trainer.callbacks.<option> goes to the last callback in the list, here seqlab.callbacks.GateFigures; "
            "to change another one, edit it in a copy of the config.)"
        )
    )


def test_a_run_from_a_checkpoint_keeps_the_configs_runtime_settings_and_names_the_others(reviews_csv, capsys):
    best = fit_tiny(reviews_csv, "--trainer.max_epochs=1").trainer.checkpoint_callback.best_model_path
    fast = main(["test", *tiny_text_args(reviews_csv), f"--ckpt_path={best}"])
    capsys.readouterr()
    reference = main(["test", *tiny_text_args(reviews_csv), f"--ckpt_path={best}", "--model.impl=reference", "--model.hidden_size=32"])
    assert reference.model.encoder.impl == "reference" and reference.model.encoder.hidden_size == 16  # the weights' own size
    assert "the checkpoint's model settings apply: hidden_size=16 (config: 32)" in capsys.readouterr().err
    same = ["test/imdb/acc", "test/imdb/loss"]
    assert [float(reference.trainer.callback_metrics[k]) for k in same] == pytest.approx(
        [float(fast.trainer.callback_metrics[k]) for k in same], abs=1e-5
    )
    assert "chunk_size" not in capsys.readouterr().err
    chunked = main(["test", *tiny_text_args(reviews_csv), f"--ckpt_path={best}", "--model.chunk_size=4"])
    assert chunked.model.encoder.chunk_size == 4  # memory is the config's call, and a line says the outputs change
    assert "model.chunk_size=4 from the config, the checkpoint was trained with None" in capsys.readouterr().err


def test_a_yaml_syntax_error_names_the_config_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  hidden_size: 8\n   embed_dim: 4\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", f"--config={bad}"])
    assert exit_info.value.code == 2
    assert f"Config {bad} is not valid YAML" in (err := capsys.readouterr().err) and f'in "{bad}", line 3' in err


def test_a_file_that_is_no_checkpoint_is_refused_with_a_message(reviews_csv, tmp_path, capsys):
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"PK\x03\x04 not a checkpoint")
    with pytest.raises(SystemExit) as exit_info:
        main(["test", *tiny_text_args(reviews_csv), f"--ckpt_path={broken}"])
    assert exit_info.value.code == 2
    assert f"Checkpoint {broken} could not be read" in capsys.readouterr().err


def test_checkpoint_of_another_task_message(reviews_csv, capsys):
    best = fit_tiny(reviews_csv, "--trainer.max_epochs=1").trainer.checkpoint_callback.best_model_path
    with pytest.raises(SystemExit):
        main(["test", *tiny_text_args(reviews_csv), "--data.task_name=other", f"--ckpt_path={best}"])
    err = capsys.readouterr().err
    assert "has no task 'other'" in err and "the tasks it has: imdb (TextDataModule)" in err
    assert "add --data.task_name imdb" in err  # the one task of this family: perhaps a config with another task_name


def test_missing_checkpoint_path(reviews_csv, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["test", *tiny_text_args(reviews_csv), "--ckpt_path=nowhere/best.ckpt"])
    assert exit_info.value.code == 2
    assert "Checkpoint nowhere/best.ckpt does not exist" in capsys.readouterr().err
    (tmp_path / "ckpts").mkdir()
    (tmp_path / "ckpts" / "last.ckpt").write_bytes(b"")
    with pytest.raises(SystemExit):  # a folder is named as one, with the checkpoints in it
        main(["test", *tiny_text_args(reviews_csv), f"--ckpt_path={tmp_path / 'ckpts'}"])
    assert "ckpts is a folder. Give --ckpt_path a .ckpt file in it (last.ckpt)" in capsys.readouterr().err


def test_unknown_config_key_and_wrong_type_are_named(reviews_csv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *tiny_text_args(reviews_csv), "--model.hiden_size=8"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "error: model.hiden_size is not an option. Did you mean model.hidden_size" in err
    assert len(err.splitlines()) <= 4, err  # the error, not the usage of every option
    with pytest.raises(SystemExit):
        main(["fit", *tiny_text_args(reviews_csv), "--model.hidden_size=big"])
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == "error: model.hidden_size must be int; got big. All options: python -m seqlab fit --help", err


def test_print_config_shows_linked_defaults(reviews_csv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *tiny_text_args(reviews_csv), "--print_config"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "class_path: seqlab.data.TextDataModule" in out and "hidden_size: 16" in out


def test_csv_logger(reviews_csv, tmp_path):
    fit_tiny(
        reviews_csv, "--trainer.max_epochs=1", "--trainer.logger=lightning.pytorch.loggers.CSVLogger", f"--trainer.logger.save_dir={tmp_path}/csv"
    )
    metrics = next((tmp_path / "csv").rglob("metrics.csv")).read_text()
    assert "val/imdb/acc" in metrics.splitlines()[0]


def test_wandb_offline_run_is_written_and_readable(reviews_csv, tmp_path, monkeypatch, capsys):
    from seqlab.loggers import read_offline_run

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: no credentials
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    args = tiny_text_args(reviews_csv, "--trainer.max_epochs=2")
    args.remove("--trainer.logger=false")
    cli = main(["fit", *args, f"--trainer.logger.init_args.save_dir={tmp_path}/wb"])
    err = capsys.readouterr().err
    assert "logs offline" in err and "wandb sync" in err
    import wandb

    wandb.finish()  # end the run as the end of a CLI process does
    predict = [*args, f"--ckpt_path={cli.trainer.checkpoint_callback.last_model_path}", "--data.predict_input=a fine film"]
    main(["predict", *predict, f"--trainer.logger.init_args.save_dir={tmp_path}/wb", f"--prediction_writer.output_path={tmp_path}/p.jsonl"])
    assert "wandb sync" not in capsys.readouterr().err  # predict logs nothing: no W&B run to upload
    (run_dir,) = (tmp_path / "wb" / "wandb").glob("offline-run-*")
    run = read_offline_run(run_dir, wait=60)  # W&B's background process may still be writing it
    assert run["finished"], "the offline run's exit record was not written within 60 s"
    accs = [row["val/imdb/acc"] for row in run["history"] if "val/imdb/acc" in row]
    assert len(accs) == 2 and all(0 <= a <= 1 for a in accs), run["history"][:3]
    assert run["config"]["hidden_size"] == 16, sorted(run["config"])


def test_python_dash_m_seqlab_in_a_subprocess(reviews_csv, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "seqlab", "fit", *tiny_text_args(reviews_csv, "--trainer.fast_dev_run=1")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "LeafSpec" not in result.stderr and "💡 Tip" not in result.stdout + result.stderr  # Lightning's notices, quietened
    bad = subprocess.run([sys.executable, "-m", "seqlab", "fit", "--data.no_such_key=1"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "no_such_key" in bad.stderr


def test_fit_without_validation_keeps_the_last_epoch(reviews_csv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:  # imdb.yaml's checkpoint waits for validation metrics
        main(["fit", *tiny_text_args(reviews_csv, "--data.val_size=0", "--trainer.max_epochs=1")])
    assert exit_info.value.code == 2
    assert "monitors 'val/" in capsys.readouterr().err
    last_epoch = tmp_path / "last_epoch.yaml"
    checkpoint = {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"dirpath": str(tmp_path / "ckpt"), "monitor": None}}
    gates = {"class_path": "seqlab.callbacks.GateFigures"}
    last_epoch.write_text(json.dumps({"trainer": {"callbacks": [checkpoint, gates]}}))
    cli = main(["fit", *tiny_text_args(reviews_csv, "--data.val_size=0", "--trainer.max_epochs=2", "--config", str(last_epoch))])
    assert len(cli.datamodule.splits["val"]) == 0 and sum(cli.trainer.num_val_batches) == 0
    assert (tmp_path / "plots" / "gates_imdb.png").read_bytes().startswith(b"\x89PNG")  # of the first training text
    # the last epoch's checkpoint; all 180 training texts, 12 batches an epoch
    assert Path(cli.trainer.checkpoint_callback.best_model_path).name == "epoch=1-step=24.ckpt"
    trained = cli.trainer.test(cli.model, datamodule=cli.datamodule)[0]  # the weights the fit ended with
    assert cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best")[0] == trained  # are the ones kept
    with pytest.raises(SeqlabError, match="no validation split"):  # validate says why it has nothing to run
        cli.trainer.validate(cli.model, datamodule=cli.datamodule)


def test_no_command_an_unknown_one_or_no_config_name_the_commands_and_configs(capsys):
    for args, says in [
        ([], r"Give a command: fit, validate, test, predict, export or explain; e\.g\. python -m seqlab fit --config configs/imdb\.yaml"),
        (["train", "--config", str(ROOT / "configs" / "imdb.yaml")], r"Unknown command 'train': python -m seqlab takes fit, validate, test, predict"),
        (["fit"], r"python -m seqlab fit needs a config \(--config\) naming the data and the model; shipped: .*configs/imdb\.yaml"),
        (["predict", "--ckpt_path=x.ckpt"], r"python -m seqlab predict needs a config"),
        (["--config", str(ROOT / "configs" / "imdb.yaml")], r"Give a command"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == 2 and re.search(says, capsys.readouterr().err), args
    with pytest.raises(SystemExit) as exit_info:  # a class's options, with no config: still listed
        main(["fit", "--trainer.logger.help", "lightning.pytorch.loggers.CSVLogger"])
    assert exit_info.value.code == 0 and "--trainer.logger.flush_logs_every_n_steps" in capsys.readouterr().out


def test_trainer_settings_lightning_refuses_are_one_line_errors(capsys):
    config = str(ROOT / "configs" / "basic_motions.yaml")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", config, "--trainer.strategy=foo"])
    assert exit_info.value.code == 2
    assert "seqlab: error: Lightning refused the trainer settings: ValueError: You selected an invalid strategy name" in capsys.readouterr().err
    if not torch.backends.mps.is_available():  # an accelerator this machine lacks
        with pytest.raises(SystemExit):
            main(["fit", "--config", config, "--trainer.accelerator=mps"])
        err = capsys.readouterr().err
        assert "`MPSAccelerator` can not run on your system" in err and err.rstrip().endswith("Use --trainer.accelerator auto (or cpu).")


def test_a_tasks_refused_setting_in_a_multi_task_config_names_the_task(tmp_path, capsys):
    path = tmp_path / "mine.yaml"
    path.write_text(MULTITASK.replace("k: 3", "k: 0"))
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(path)])
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "seqlab: error: data.tasks.splice: data.k and data.stride must be at least 1 (got k=0, stride=1)."
    )
    with pytest.raises(SystemExit):  # on the command line
        main(["fit", "--config", str(ROOT / "configs" / "multitask.yaml"), "--data.tasks.fsdd.init_args.batch_size=0"])
    assert capsys.readouterr().err.strip().splitlines()[-1] == "seqlab: error: data.tasks.fsdd: data.batch_size must be at least 1; got batch_size=0."
    with pytest.raises(SystemExit):  # a config of one task has no task to name
        main(["fit", "--config", str(ROOT / "configs" / "splice.yaml"), "--data.k=0"])
    assert capsys.readouterr().err.strip().splitlines()[-1] == "seqlab: error: data.k and data.stride must be at least 1 (got k=0, stride=1)."
    path.write_text(with_task("hapt2", "hapt", stack=5))  # two tasks of one class: the one whose settings were refused
    for extra in ([], ["--data.tasks.hapt.init_args.batch_size=8"]):  # (an override of the other one is not the cause)
        with pytest.raises(SystemExit):
            main(["fit", "--config", str(path), *extra])
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            "seqlab: error: data.tasks.hapt2: data.stack must be a positive divisor of data.window (got stack=5, window=128)."
        )
    with pytest.raises(SystemExit):  # refused in setup, not as it was built
        main(
            ["fit", "--config", str(ROOT / "configs" / "multitask.yaml"), "--data.tasks.fsdd.init_args.test_size=1.5", "--trainer.fast_dev_run=true"]
        )
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("seqlab: error: data.tasks.fsdd: A split fraction")
