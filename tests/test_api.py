"""seqlab.load(checkpoint).predict(...): plain Python, same numbers as the CLI's predict."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

import seqlab
from seqlab.checkpoints import task_states
from seqlab.cli import main
from seqlab.errors import SeqlabError

from .conftest import ROOT
from .test_multitask import tiny_multitask_config


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_load_predict_matches_the_cli_for_every_task(tmp_path):
    config = tiny_multitask_config(tmp_path)
    settings = yaml.safe_load(config.read_text())  # DNA cut to its last 12 bases, both strands averaged
    settings["data"]["init_args"]["tasks"]["dna"]["init_args"].update(max_length=12, truncation="tail", rc_average=True)
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
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
    # A table is read from the column the model was trained on (data.text_column: text; the family's default is review).
    (tmp_path / "new.csv").write_text("text\n" + "\n".join(inputs["reviews"]) + "\n")
    from_file = model.predict_proba(str(tmp_path / "new.csv"), task="reviews")
    torch.testing.assert_close(from_file, model.predict_proba(inputs["reviews"], task="reviews"))
    # Strings in a pandas Series or a numpy array are texts and DNA too; nothing in, nothing out.
    import pandas as pd

    torch.testing.assert_close(model.predict_proba(pd.Series(inputs["reviews"]), task="reviews"), from_file)
    torch.testing.assert_close(model.predict_proba(np.array(inputs["dna"]), task="dna"), model.predict_proba(inputs["dna"], task="dna"))
    assert model.predict([], task="dna") == [] and model.predict_proba([], task="dna").shape == (0, 2)
    with pytest.raises(SeqlabError, match="several tasks"):
        model.predict(["ACGT"])
    with pytest.raises(SeqlabError, match="nothing to encode"):
        model.encode([], task="reviews")
    for size in (0, 2.5, True):
        with pytest.raises(SeqlabError, match=rf"batch_size must be a whole number of at least 1; got {size!r}"):
            model.predict(inputs["reviews"], task="reviews", batch_size=size)
    with pytest.raises(SeqlabError, match=r"cannot use device='gpu' here \(RuntimeError: Expected one of cpu.*Use device='cpu'"):
        seqlab.load(best, device="gpu")
    with pytest.raises(SeqlabError, match=r"cannot use device='cuda:99' here \(.+\)\. Use device='cpu'"):  # no such card (or no CUDA)
        seqlab.load(best, device="cuda:99")
    by_one = model.predict(inputs["reviews"], task="reviews", batch_size=np.int64(1))  # a numpy integer is a whole number too
    assert [r["label"] for r in by_one] == ["positive", "negative"]
    assert model.encode(inputs["dna"], task="dna")[1].tolist() == [12, 12, 10]  # cut to the last 12 bases, as trained

    # An ensemble: another checkpoint of the same config (heads scaled) averages with the first.
    checkpoint = torch.load(best, map_location="cpu", weights_only=False)
    for key in [k for k in checkpoint["state_dict"] if k.startswith("heads.")]:
        checkpoint["state_dict"][key] = checkpoint["state_dict"][key] * 3.0
    torch.save(checkpoint, tmp_path / "other.ckpt")
    other = seqlab.load(tmp_path / "other.ckpt").predict_proba(inputs["dna"], task="dna")
    alone = model.predict_proba(inputs["dna"], task="dna")
    assert not torch.allclose(other, alone)
    torch.testing.assert_close(seqlab.load([best, tmp_path / "other.ckpt"]).predict_proba(inputs["dna"], task="dna"), (alone + other) / 2)
    states = task_states(checkpoint)
    assert states["dna"]["settings"] == {"rc_average": True, "sequence_column": "seq"}
    assert states["reviews"]["settings"] == {"text_column": "text"}
    assert (states["dna"]["preprocessing"]["max_length"], states["dna"]["preprocessing"]["truncation"]) == (12, "tail")
    states["dna"]["preprocessing"]["labels"] = ["plain", "motif"]  # other data settings: not one config
    torch.save(checkpoint, tmp_path / "relabelled.ckpt")
    with pytest.raises(SeqlabError, match="other data settings"):
        seqlab.load([best, tmp_path / "relabelled.ckpt"])
    with pytest.raises(SeqlabError, match="no task 'speech'; its tasks: reviews, dna"):
        model.predict(["ACGT"], task="speech")


def test_import_seqlab_stays_light():
    code = "import sys, seqlab; print(sorted(m for m in ('lightning', 'wandb', 'datasets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_arrays_for_speech_and_activity_match_the_cli_on_files(tmp_path):
    """Feature families: in-memory arrays through seqlab.load give what predict gives on the file."""

    from .test_activity import make_signals

    rng = np.random.default_rng(0)
    frames = [rng.normal(i % 2, 1.0, (int(rng.integers(5, 15)), 4)).astype(np.float32) for i in range(40)]
    np.savez(tmp_path / "frames.npz", X=np.concatenate(frames), lengths=[len(a) for a in frames], y=["lo", "hi"] * 20)
    signals = make_signals()
    signals.to_csv(tmp_path / "signals.csv", index=False)
    runs = {
        "speech": ("configs/fsdd.yaml", ["--data.source=file", f"--data.path={tmp_path / 'frames.npz'}", "--data.deltas=1"], frames[:5]),
        "activity": ("configs/hapt.yaml", ["--data.source=file", f"--data.path={tmp_path / 'signals.csv'}", "--data.window=50",
                                          "--data.stack=2", "--data.test_subjects=[p0, p1]", "--data.val_subjects=[p2]"],
                     [signals[signals.subject == "p0"][["a", "b", "rec"]].to_numpy()]),
    }  # fmt: skip
    for name, (config, args, arrays) in runs.items():
        common = ["--config", str(ROOT / config), *args, f"--data.cache_dir={tmp_path / 'cache'}", "--trainer.logger=false"]
        # checkpoints land in runs/<task>/ under tmp_path, the working directory of this test
        cli = main(["fit", *common, "--trainer.max_epochs=1", "--model.hidden_size=8", "--model.embed_dim=8",
                    f"--trainer.default_root_dir={tmp_path / name}"])  # fmt: skip
        best = cli.trainer.checkpoint_callback.best_model_path
        got = seqlab.load(best).predict_proba(arrays)
        if name == "speech":  # an error names the arrays, not the temporary file they pass through
            with pytest.raises(SeqlabError, match=r"^the given arrays sequence 0: frames of shape \(5, 3\), but the model reads \(time, 4\)") as err:
                seqlab.load(best).predict([np.zeros((5, 3), np.float32)])
            assert "/tmp" not in str(err.value)
            own = tmp_path / "mine.npz"  # the user's own file keeps its name in the error
            np.savez(own, X=np.zeros((5, 3), np.float32), lengths=np.array([5]))
            with pytest.raises(SeqlabError, match=rf"^{own} sequence 0: frames of shape \(5, 3\)"):
                seqlab.load(best).predict(str(own))
        else:  # one row a window, saying where it lies; a recording shorter than a window is an error
            assert seqlab.load(best).predict([]) == []  # nothing in, nothing out, as for texts
            one = seqlab.load(best).predict_proba(
                torch.tensor(np.array(arrays[0], dtype=np.float32))
            )  # one recording as a 2-D tensor, as a 2-D array
            torch.testing.assert_close(one, seqlab.load(best).predict_proba(arrays[0]))
            rows = seqlab.load(best).predict([arrays[0][:120], arrays[0][:50]])
            assert [(r["input"], r["start"], r["stop"]) for r in rows] == [(0, 0, 50), (0, 25, 75), (0, 50, 100), (1, 0, 50)]
            with pytest.raises(SeqlabError, match=r"Recordings \[1\] are shorter than one window \(50 samples\)"):
                seqlab.load(best).predict([arrays[0], arrays[0][:10]])
            bad = arrays[0].astype(np.float32)
            bad[5, 1] = np.nan  # named by the checkpoint's channel name, not a generic ch1
            with pytest.raises(SeqlabError, match=r"NaN value at sample index 5 \(channel 'b'\)"):
                seqlab.load(best).predict([bad])
        if name == "speech":
            np.savez(tmp_path / "new.npz", X=np.concatenate(arrays), lengths=[len(a) for a in arrays])
        else:
            signals[signals.subject == "p0"].drop(columns=["label"]).assign(recording="0").to_csv(tmp_path / "new.csv", index=False)
        # An exported model takes what encode gives: the checkpoint's deltas, windows and standardisation applied.
        from seqlab.export import export_task

        predictor = seqlab.load(best)
        exported = export_task(predictor.model, predictor.tasks[0], "torchscript", tmp_path / f"{name}.pt")
        x, lengths = predictor.encode(arrays)
        assert x.shape[2] == (8 if name == "speech" else 6)  # 4 coefficients and their deltas; 3 channels stacked by 2
        torch.testing.assert_close(torch.jit.load(str(exported))(x, lengths), got, atol=1e-5, rtol=0)
        out = tmp_path / f"{name}.jsonl"
        new = tmp_path / ("new.npz" if name == "speech" else "new.csv")
        main(["predict", *common, f"--ckpt_path={best}", f"--data.predict_input={new}", f"--prediction_writer.output_path={out}"])
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(rows) == len(got) > 0
        for row, probs in zip(rows, got):
            assert abs(row["probability"] - float(probs.max())) < 1e-5
        if name == "activity":  # a CLI row says where its window lies, as the API's rows for the same file
            where = [{k: r[k] for k in ("subject", "recording", "start", "stop")} for r in seqlab.load(best).predict(str(new))]
            assert [{k: r[k] for k in ("subject", "recording", "start", "stop")} for r in rows] == where
            assert [(w["subject"], w["recording"], w["start"], w["stop"]) for w in where[:2]] == [("p0", "0", 0, 50), ("p0", "0", 25, 75)]


def test_a_torch_file_that_is_no_checkpoint_is_refused_by_name(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(SeqlabError, match=r"plain\.pt is a torch file but not a seqlab checkpoint \(it holds \['weights'\]\)"):
        seqlab.load(tmp_path / "plain.pt")


def test_checkpoints_of_one_config_from_another_seqlab_version_still_ensemble():
    from seqlab.api import same_data

    new = {"dna": {"family": "DnaDataModule", "preprocessing": {"labels": ["a", "b"], "k": 3, "max_length": None}, "settings": {"rc_average": False}}}
    old = {"dna": {"family": "DnaDataModule", "preprocessing": {"labels": ["a", "b"], "k": 3}}}  # before max_length and settings were stored
    assert same_data(new, old) and same_data(old, new)
    assert not same_data(new, {"dna": {**old["dna"], "preprocessing": {"labels": ["b", "a"], "k": 3}}})
    assert not same_data(new, {"dna": {**new["dna"], "settings": {"rc_average": True}}})
    assert not same_data(new, {"other": old["dna"]})


def test_activity_arrays_without_a_window_are_whole_recordings(tmp_path):

    from seqlab.api import Predictor
    from seqlab.data import ActivityDataModule

    module = ActivityDataModule(source="basic_motions", window=None)
    module.preprocessing = {"window": None, "channels": [f"c{i}" for i in range(6)]}  # each recording one window (BasicMotions)
    path = Predictor._as_input(module, [np.zeros((10, 6)), np.zeros((100, 6))], tmp_path)
    assert np.load(path)["signals"].shape == (110, 6)


def test_feature_inputs_that_are_no_arrays_of_numbers_are_errors(tmp_path):

    from seqlab.api import Predictor
    from seqlab.data import SpeechDataModule

    module = SpeechDataModule(source="japanese_vowels")
    with pytest.raises(SeqlabError, match=r"2-D arrays of numbers.*These inputs are not \(could not convert string to float"):
        Predictor._as_input(module, [[["a", "b"]]], tmp_path)  # (a list of strings is a list of WAV files)
    with pytest.raises(SeqlabError, match=r"Arrays \[1\] hold no frames or samples"):
        Predictor._as_input(module, [np.zeros((3, 12)), np.zeros((0, 12))], tmp_path)
    with pytest.raises(SeqlabError, match=r"Arrays \[1\] have 5 columns, array 0 has 4: every array needs the same features"):
        Predictor._as_input(module, [np.zeros((3, 4)), np.zeros((3, 5)), np.zeros((2, 4))], tmp_path)


def test_an_unreadable_checkpoint_is_named_in_one_line(tmp_path):
    from seqlab.checkpoints import read_checkpoint

    (tmp_path / "notes.ckpt").write_text("not a checkpoint\n")
    with pytest.raises(SeqlabError) as err:
        read_checkpoint(tmp_path / "notes.ckpt")
    assert "\n" not in str(err.value) and "notes.ckpt could not be read (UnpicklingError: " in str(err.value)


def test_a_list_of_paths_goes_to_speech_as_wav_files_and_is_refused_for_activity(tmp_path):
    from seqlab.api import Predictor
    from seqlab.data import ActivityDataModule, SpeechDataModule

    assert Predictor._as_input(SpeechDataModule(), [tmp_path / "a.wav", "b.wav"], tmp_path) == [str(tmp_path / "a.wav"), "b.wav"]
    with pytest.raises(SeqlabError, match="only speech reads a list of paths"):
        Predictor._as_input(ActivityDataModule(), ["a.csv", "b.csv"], tmp_path)


def test_a_checkpoint_damaged_inside_its_weights_is_refused_by_name(tmp_path):
    from seqlab.checkpoints import check_checkpoint_file, read_checkpoint

    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"w": torch.full((1000,), 1.2345)}, "hyper_parameters": {}, "pytorch-lightning_version": "2.6"}, path)
    assert read_checkpoint(path)["state_dict"]["w"][0] == torch.tensor(1.2345)
    raw = bytearray(path.read_bytes())
    start = raw.find(torch.tensor(1.2345).numpy().tobytes() * 4)  # inside the stored tensor (torch.save does not compress)
    raw[start + 400 : start + 800] = bytes(400)
    path.write_bytes(bytes(raw))
    for read in (read_checkpoint, lambda p: check_checkpoint_file(p, "--ckpt_path")):
        with pytest.raises(SeqlabError, match=r"model.ckpt is damaged: its part '.*data/0' does not match its checksum"):
            read(path)
