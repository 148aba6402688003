"""Activity data: windows and their labels, subject split, standardisation, user files, bad
input, the restricted HAPT unpickler, and the two pinned datasets against their documented counts."""

from __future__ import annotations

import gzip
import io
import os
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from seqlab.data.activity import (
    HAPT_ARCHIVE,
    ActivityDataModule,
    augment_windows,
    load_hapt,
    random_rotations,
    window_labels,
)
from seqlab.data.base import fetch_member
from seqlab.data.hapt_pickle import RestrictedUnpickler, read_hapt_pickle
from seqlab.data.ts import channel_stats
from seqlab.errors import SeqlabError

CLASSES = ["lie", "sit", "walk"]


def make_signals(subjects: int = 6, recordings: int = 2, length: int = 400, seed: int = 0) -> pd.DataFrame:
    """Rows of 3 channels; channel ``rec`` is a number unique to the recording (to see window
    boundaries), ``a`` and ``b`` carry a per-subject offset; labels change every 100 samples."""
    rng = np.random.default_rng(seed)
    frames = []
    for s in range(subjects):
        for r in range(recordings):
            labels = [CLASSES[(k // 100 + s + r) % 3] for k in range(length)]
            frames.append(
                pd.DataFrame(
                    {
                        "a": rng.normal(s, 1.0, length),
                        "b": rng.normal(-s, 2.0, length),
                        "rec": np.full(length, 10 * s + r, dtype=float),
                        "label": labels,
                        "subject": f"p{s}",
                        "recording": f"r{r}",
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def file_dm(path, **kwargs) -> ActivityDataModule:
    args = dict(source="file", path=str(path), window=50, overlap=0.5, test_subjects=["p0", "p1"], val_subjects=["p2"])
    return ActivityDataModule(**{**args, **kwargs})


@pytest.fixture
def signals_csv(tmp_path):
    path = tmp_path / "signals.csv"
    make_signals().to_csv(path, index=False)
    return path


def test_window_labels_drop_mixed_and_unlabelled_or_take_the_majority():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, -1, -1, -1, 2, 2])
    starts, y = window_labels(labels, 4, 2, "drop")
    assert starts.tolist() == [0] and y.tolist() == [0]  # [0,0,1,1], [1,1,1,-1], ... are mixed
    starts, y = window_labels(labels, 4, 2, "majority")
    # windows at 0: 0000, 2: 0011 (tie -> 0), 4: 111-1, 6: 1-1-1-1 (unlabelled wins), 8: -1-1 22 (tie -> -1)
    assert starts.tolist() == [0, 2, 4] and y.tolist() == [0, 0, 1]
    starts, y = window_labels(labels[:3], 4, 2, "drop")  # shorter than one window: nothing
    assert len(starts) == 0
    starts, y = window_labels(np.array([2, 2, 2]), None, 1, "drop")  # a whole recording is one window
    assert starts.tolist() == [0] and y.tolist() == [2]


def test_windows_stay_inside_recordings_and_split_by_subject(signals_csv):
    dm = file_dm(signals_csv)
    dm.setup("fit")
    assert dm.spec.labels == CLASSES and dm.spec.feature_dim == 3
    assert dm.subject_split == {"train": ["p3", "p4", "p5"], "val": ["p2"], "test": ["p0", "p1"]}
    stride = 25
    # Per recording of 400 samples, windows of 50 at stride 25 start at 0..350: 15, of which the
    # ones crossing a label change at 100, 200, 300 are dropped (starts 75, 175, 275): 12 pure.
    assert {name: len(ds) for name, ds in dm.splits.items()} == {"train": 72, "val": 24, "test": 48}
    std = dm.preprocessing["stats"]["std"][2]
    for ds in dm.splits.values():
        for _, x, _ in ds:
            assert x.shape == (50, 3)
            assert float(x[:, 2].max() - x[:, 2].min()) * std < 1e-4  # one recording per window
    rec_code = {name: {round(float(x[0, 2]) * std + dm.preprocessing["stats"]["mean"][2]) for _, x, _ in ds} for name, ds in dm.splits.items()}
    assert rec_code["test"] == {0, 1, 10, 11} and rec_code["val"] == {20, 21} and rec_code["train"] == {30, 31, 40, 41, 50, 51}
    assert dm.stride == stride


def test_majority_mode_keeps_windows_across_label_changes(signals_csv):
    dm = file_dm(signals_csv, mixed="majority", overlap=0.0)
    dm.setup("fit")
    assert len(dm.splits["test"]) == 2 * 2 * 8  # 8 windows of 50 per recording, none dropped


def test_standardisation_uses_train_subjects_only_and_applies_everywhere(signals_csv):
    dm = file_dm(signals_csv)
    dm.setup("fit")
    df = make_signals()
    train = df[df.subject.isin(["p3", "p4", "p5"])]
    expected = channel_stats([train[["a", "b", "rec"]].to_numpy()])
    assert dm.preprocessing["stats"]["mean"] == pytest.approx(expected["mean"], rel=1e-6)
    assert dm.preprocessing["stats"]["std"] == pytest.approx(expected["std"], rel=1e-6)
    # Test windows are scaled with the train statistics: subject p0's channel a sits well below 0.
    test_a = torch.cat([x[:, 0] for _, x, _ in dm.splits["test"]])
    assert float(test_a.mean()) < -1.0
    train_a = torch.cat([x[:, 0] for _, x, _ in dm.splits["train"]])
    assert abs(float(train_a.mean())) < 0.2


def test_seeded_subject_shares_when_no_lists_given(signals_csv):
    dm = ActivityDataModule(source="file", path=str(signals_csv), window=50, test_size=0.34, val_size=0.25, seed=3)
    dm.setup("fit")
    split = dm.subject_split
    assert len(split["test"]) == 2 and len(split["val"]) == 1 and len(split["train"]) == 3
    assert set(split["train"]) | set(split["val"]) | set(split["test"]) == {f"p{i}" for i in range(6)}
    again = ActivityDataModule(source="file", path=str(signals_csv), window=50, test_size=0.34, val_size=0.25, seed=3)
    again.setup("fit")
    assert again.subject_split == split


def test_subject_folds_validate_each_training_subject_once(signals_csv):
    def split(fold):
        dm = ActivityDataModule(source="file", path=str(signals_csv), window=50, test_subjects=["p0", "p1"], val_size=0.25, val_fold=fold)
        dm.setup("fit")
        return dm.subject_split

    folds = [split(k) for k in range(4)]
    assert sorted(s for f in folds for s in f["val"]) == ["p2", "p3", "p4", "p5"]
    assert all(len(f["val"]) == 1 and f["val"][0] not in f["train"] and len(f["train"]) == 3 for f in folds)
    with pytest.raises(SeqlabError, match=r"val_fold=4 holds no subject: 4 subjects in shares of data.val_size=0.25 \(folds run from 0 to 3\)"):
        split(4)
    with pytest.raises(SeqlabError, match="needs data.val_size > 0 and data.val_subjects: null"):
        dm = ActivityDataModule(source="file", path=str(signals_csv), window=50, test_subjects=["p0", "p1"], val_subjects=["p2"], val_fold=1)
        dm.setup("fit")
    with pytest.raises(SeqlabError, match="counts validation shares from 0"):
        ActivityDataModule(source="file", path=str(signals_csv), val_fold=-1)


@pytest.mark.parametrize("n,folds", [(7, 5), (21, 10), (9, 4), (3, 3)])
def test_subject_folds_cover_every_subject_once_when_the_shares_are_uneven(n, folds):
    from seqlab.data.activity import split_subjects

    subjects = [f"s{i}" for i in range(n + 1)]
    parts = [split_subjects(subjects, ["s0"], None, 0.0, 1 / folds, 0, k) for k in range(folds)]
    held = [s for p in parts for s in p["val"]]
    assert sorted(held) == sorted(subjects[1:])  # each training subject validated exactly once
    assert all(p["val"] and not set(p["val"]) & set(p["train"]) for p in parts)
    assert parts[0]["val"] == split_subjects(subjects, ["s0"], None, 0.0, 1 / folds, 0)["val"]  # fold 0: the plain validation share
    with pytest.raises(SeqlabError, match=rf"val_fold={folds} holds no subject.*folds run from 0 to {folds - 1}"):
        split_subjects(subjects, ["s0"], None, 0.0, 1 / folds, 0, folds)


def test_npz_source_matches_csv(signals_csv, tmp_path):
    df = make_signals()
    path = tmp_path / "signals.npz"
    np.savez(
        path,
        signals=df[["a", "b", "rec"]].to_numpy(),
        channels=np.array(["a", "b", "rec"]),
        label=df.label.to_numpy(dtype=str),
        subject=df.subject.to_numpy(dtype=str),
        recording=df.recording.to_numpy(dtype=str),
    )
    from_npz, from_csv = file_dm(path), file_dm(signals_csv)
    from_npz.setup("fit")
    from_csv.setup("fit")
    assert from_npz.preprocessing["labels"] == from_csv.preprocessing["labels"] == CLASSES
    assert from_npz.preprocessing["stats"]["mean"] == pytest.approx(from_csv.preprocessing["stats"]["mean"], rel=1e-5)
    assert from_npz.preprocessing["channels"] == ["a", "b", "rec"]
    assert torch.allclose(from_npz.splits["test"].items[5], from_csv.splits["test"].items[5], atol=1e-5)


def test_preprocessing_is_plain_data_for_weights_only_checkpoints(signals_csv, tmp_path):
    dm = file_dm(signals_csv)
    state = dm.state_dict()
    torch.save({"datamodule": state}, tmp_path / "x.ckpt")
    loaded = torch.load(tmp_path / "x.ckpt", weights_only=True)["datamodule"]
    assert loaded["preprocessing"] == dm.preprocessing
    assert set(loaded["preprocessing"]) == {"labels", "channels", "stats", "window", "stride", "mixed", "stack"}


def test_nan_sample_is_an_error_naming_subject_recording_and_row(tmp_path):
    df = make_signals()
    df.loc[905, "b"] = np.nan  # subject p1, recording r0, its 106th sample; data row 906 of the file
    path = tmp_path / "nan.csv"
    df.to_csv(path, index=False)
    with pytest.raises(SeqlabError, match=r"subject 'p1', recording 'r0' has a NaN value at data row 906 \(channel 'b'\)"):
        file_dm(path).ensure_preprocessing()
    df.loc[905, "b"] = np.inf
    df.to_csv(path, index=False)
    with pytest.raises(SeqlabError, match="infinite value at data row 906"):
        file_dm(path).ensure_preprocessing()


def test_one_class_and_unreadable_npz_are_errors(tmp_path):
    path = tmp_path / "one.csv"
    make_signals().assign(label="walk").to_csv(path, index=False)
    with pytest.raises(SeqlabError, match=r"column 'label' has only the label\(s\) \['walk'\]: a classifier needs at least two classes"):
        file_dm(path).ensure_preprocessing()
    npz = tmp_path / "s.npz"
    npz.write_text("a,b\n1,2\n")  # a CSV with the wrong name
    with pytest.raises(SeqlabError, match="could not be read as an .npz of numeric arrays"):
        file_dm(npz).ensure_preprocessing()
    np.savez(npz, signals=np.array([["1", "x"]] * 4))
    with pytest.raises(SeqlabError, match=r"'signals' must be numbers of shape \(samples, channels\); it is <U1 of shape \(4, 2\)"):
        file_dm(npz).ensure_preprocessing()
    np.savez(npz, signals=np.zeros(8))
    with pytest.raises(SeqlabError, match=r"it is float64 of shape \(8,\)"):
        file_dm(npz).ensure_preprocessing()


def test_missing_subject_column_with_a_subject_split(tmp_path):
    path = tmp_path / "nosubject.csv"
    make_signals().drop(columns="subject").to_csv(path, index=False)
    with pytest.raises(SeqlabError, match="no subject column 'subject'.*data.split_by=recording"):
        file_dm(path).ensure_preprocessing()
    # Without subjects, every subject's r0 is one recording: its rows are not consecutive, and windows would cross the gaps.
    dm = ActivityDataModule(source="file", path=str(path), window=50, split_by="recording")
    with pytest.raises(SeqlabError, match=r"recording 'r0' are not consecutive data rows \(data rows 400 and 801 are neighbours"):
        dm.ensure_preprocessing()
    # Split by recording instead, one subject: its 2 recordings are the groups.
    make_signals(subjects=1).drop(columns="subject").to_csv(path, index=False)
    dm = ActivityDataModule(source="file", path=str(path), window=50, split_by="recording", test_subjects=["all/r0"], val_subjects=["all/r1"])
    with pytest.raises(SeqlabError, match="train split has no subject"):
        dm.ensure_preprocessing()


def test_a_channel_value_that_is_not_a_number_is_named_by_row(tmp_path):
    path = tmp_path / "comma.csv"
    df = make_signals(subjects=2)
    df["a"] = df["a"].astype(object)
    df.loc[6, "a"] = "1,5"  # a decimal comma
    df.to_csv(path, index=False)
    with pytest.raises(SeqlabError, match=r"comma\.csv: channel 'a' holds '1,5' at data row 7, not a number \(1 such value") as err:
        file_dm(path).ensure_preprocessing()
    assert "no label column" not in str(err.value)
    renamed = tmp_path / "activity.csv"  # the label column under another name: read as a channel
    make_signals(subjects=2).rename(columns={"label": "activity"}).to_csv(renamed, index=False)
    with pytest.raises(SeqlabError, match=r"channel 'activity' holds .* no label column 'label': if 'activity' holds the labels, set data"):
        file_dm(renamed).ensure_preprocessing()


def test_file_shorter_than_one_window(signals_csv):
    with pytest.raises(SeqlabError, match=r"no recording is as long as one window \(data.window=500 samples; the longest has 400\)"):
        file_dm(signals_csv, window=500).ensure_preprocessing()


def test_unknown_subject_and_bad_overlap(signals_csv):
    with pytest.raises(SeqlabError, match=r"test_subjects names subject\(s\) \['p9'\]"):
        file_dm(signals_csv, test_subjects=["p9"]).ensure_preprocessing()
    with pytest.raises(SeqlabError, match="overlap must be at least 0 and below 1"):
        file_dm(signals_csv, overlap=1.0)


def test_predict_origins_and_channel_count_mismatch(signals_csv, tmp_path):
    dm = file_dm(signals_csv)
    dm.ensure_preprocessing()
    new = make_signals(subjects=1, recordings=2, length=120)[["a", "b", "rec", "recording"]]
    path = tmp_path / "new.csv"
    new.to_csv(path, index=False)
    dm.predict_input = str(path)
    ds = dm.predict_dataset()
    # 120 samples, windows of 50 at stride 25: starts 0, 25, 50 in each of the two recordings.
    assert len(ds) == 6 and ds.labels is None
    assert [(w["recording"], w["start"]) for w in dm.predict_origins] == [("r0", 0), ("r0", 25), ("r0", 50), ("r1", 0), ("r1", 25), ("r1", 50)]
    batch = dm.collate("predict")([ds[i] for i in range(len(ds))])
    assert batch["x"].shape == (6, 50, 3) and batch["index"].tolist() == list(range(6))
    npz = tmp_path / "four.npz"
    np.savez(npz, signals=np.zeros((200, 4), dtype=np.float32))
    dm.predict_input = str(npz)
    with pytest.raises(SeqlabError, match=r"has 4 channel\(s\).*trained on 3"):
        dm.predict_dataset()
    short = tmp_path / "short.csv"
    new.iloc[:30].to_csv(short, index=False)
    dm.predict_input = str(short)
    with pytest.raises(SeqlabError, match="shorter than one window"):
        dm.predict_dataset()
    dm.predict_input = str(tmp_path)
    with pytest.raises(SeqlabError, match="is a folder; activity reads one .csv/.tsv/.parquet table or .npz.*Give a file in it"):
        dm.predict_dataset()
    np.save(tmp_path / "signals.npy", np.zeros((200, 3), dtype=np.float32))
    dm.predict_input = str(tmp_path / "signals.npy")
    with pytest.raises(SeqlabError, match=r"not .npy \(a .npy holds no channel or recording names: save the array with numpy.savez"):
        dm.predict_dataset()


def test_restricted_unpickler_rebuilds_numpy_and_refuses_other_globals():
    array = np.arange(12, dtype=np.float64).reshape(3, 4)
    rebuilt = RestrictedUnpickler(io.BytesIO(pickle.dumps(array, protocol=2))).load()
    assert type(rebuilt).__name__ == "_Array" and np.array_equal(rebuilt.array, array) and rebuilt.array.dtype == np.float64

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    for payload in (pickle.dumps(Evil(), protocol=2), pickle.dumps({1: [Evil()]}, protocol=4), pickle.dumps(eval, protocol=2)):
        with pytest.raises(pickle.UnpicklingError, match=r"global '(posix|os|nt|builtins|__builtin__)\.(system|eval)' is forbidden"):
            RestrictedUnpickler(io.BytesIO(payload)).load()
    with pytest.raises(SeqlabError, match=r"HAPT pickle was refused.*posix\.system|HAPT pickle was refused.*os\.system"):
        read_hapt_pickle(pickle.dumps({1: [Evil()]}, protocol=2))
    with pytest.raises(SeqlabError, match="not a dict of user id -> list of DataFrames"):
        read_hapt_pickle(pickle.dumps({1: [array.shape]}, protocol=2))


def test_hapt_archive_matches_its_documented_counts():
    """The real pickle through the restricted unpickler, then the cached arrays built from it."""
    users = read_hapt_pickle(gzip.decompress(fetch_member(HAPT_ARCHIVE).read_bytes()))
    assert sorted(users) == list(range(1, 31))
    recordings = [columns for frames in users.values() for columns in frames]
    assert len(recordings) == 61
    assert sum(len(c["label"]) for c in recordings) == 1_122_772
    labels = np.concatenate([c["label"] for c in recordings])
    assert sorted(np.unique(labels).tolist()) == [-1, *range(1, 13)]
    assert int((labels == -1).sum()) == 307_158
    hapt = load_hapt()
    assert hapt["signals"].shape == (1_122_772, 6) and np.isfinite(hapt["signals"]).all()
    assert np.array_equal(hapt["labels"], labels)
    assert np.allclose(hapt["signals"][:5, 0], recordings[0]["acc-x"][:5])


def test_hapt_cache_is_read_again_only_under_the_same_parser_version(tmp_path, monkeypatch):
    import seqlab.data.activity as activity

    member = tmp_path / "hapt.pkl.gz"
    member.write_bytes(gzip.compress(b"stands for the pickle"))
    parsed = []

    def parse(raw: bytes) -> dict:
        parsed.append(raw)
        columns = {c: np.arange(4.0) + len(parsed) for c in activity.HAPT_CHANNELS}  # the values say which parse made them
        return {1: [{**columns, "label": np.array([1, 1, 2, 2])}]}

    monkeypatch.setattr(activity, "fetch_member", lambda *args: member)
    monkeypatch.setattr(activity, "read_hapt_pickle", parse)
    first = load_hapt(str(tmp_path / "cache"))
    again = load_hapt(str(tmp_path / "cache"))
    assert len(parsed) == 1 and np.array_equal(again["signals"], first["signals"])  # from the cache
    monkeypatch.setattr(activity, "HAPT_CACHE_VERSION", activity.HAPT_CACHE_VERSION + 1)  # the parser changed
    newer = load_hapt(str(tmp_path / "cache"))
    assert len(parsed) == 2 and newer["signals"][0, 0] == 2.0 and first["signals"][0, 0] == 1.0


def test_hapt_default_split_is_the_uci_har_subject_split():
    dm = ActivityDataModule(source="hapt", val_subjects=[3, 19, 30])
    dm.setup("fit")
    assert dm.subject_split["test"] == ["2", "4", "9", "10", "12", "13", "18", "20", "24"]
    assert len(dm.subject_split["train"]) == 18 and dm.subject_split["val"] == ["3", "19", "30"]
    assert dm.spec.labels == ["walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "laying"]
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 6085, "val": 1058, "test": 2874}
    assert dm.splits["test"].items[0].shape == (128, 6)
    with_transitions = ActivityDataModule(source="hapt", include_transitions=True, val_subjects=[3, 19, 30])
    assert with_transitions.spec.num_classes == 12
    by_recording = ActivityDataModule(source="hapt", split_by="recording", val_size=0.1)  # the same test subjects, all their recordings
    by_recording.setup("fit")
    assert {key.split("/")[0] for key in by_recording.subject_split["test"]} == set(dm.subject_split["test"])
    assert len(by_recording.splits["test"]) == 2874
    named = ActivityDataModule(source="hapt", split_by="recording", test_subjects=[2, 4, 9, 10, 12, 13, 18, 20, 24], val_subjects=[3, 19, 30])
    named.setup("fit")  # subjects named as in configs/hapt.yaml: each stands for all of its recordings
    assert {k: len(v) for k, v in named.splits.items()} == {"train": 6085, "val": 1058, "test": 2874}


def test_basic_motions_official_split():
    dm = ActivityDataModule(source="basic_motions", window=None, val_size=0.25)
    dm.setup("fit")
    assert dm.spec.labels == ["Badminton", "Running", "Standing", "Walking"] and dm.spec.feature_dim == 6
    sizes = {k: len(v) for k, v in dm.splits.items()}
    assert sizes["train"] + sizes["val"] == 40 and sizes["test"] == 40 and sizes["val"] == 8
    assert {tuple(x.shape) for _, x, _ in dm.splits["test"]} == {(100, 6)}
    assert np.bincount(dm.splits["test"].labels.numpy()).tolist() == [10, 10, 10, 10]
    with pytest.raises(SeqlabError, match="no recording is as long as one window"):
        ActivityDataModule(source="basic_motions", window=128).ensure_preprocessing()


def test_train_overlap_labels_subset_and_stack(signals_csv):
    dm = file_dm(signals_csv, train_overlap=0.8, labels=["sit", "walk"], stack=5)
    dm.setup("fit")
    assert dm.spec.labels == ["sit", "walk"] and dm.spec.feature_dim == 15  # 5 samples x 3 channels per step
    # train stride 10 (-> 36 windows of 50 per recording, 24 of them inside one label segment
    # of 100 samples: 6 per segment), evaluation stride 25 (3 pure windows per segment); the
    # "lie" segments are dropped: 2 or 3 of each recording's 4 segments remain.
    assert len(dm.splits["train"]) == 6 * sum(s != "lie" for s in _segments(["p3", "p4", "p5"]))
    assert len(dm.splits["test"]) == 3 * sum(s != "lie" for s in _segments(["p0", "p1"]))
    first = dm.splits["train"].items[0]
    assert first.shape == (10, 15)
    x = make_signals().query("subject == 'p3' and recording == 'r0'")[["a", "b", "rec"]].to_numpy()[100:105]  # its first segment is "lie"
    stats = dm.preprocessing["stats"]
    assert np.allclose(first[0].numpy(), ((x - stats["mean"]) / stats["std"]).reshape(-1), atol=1e-5)
    with pytest.raises(SeqlabError, match="positive divisor of data.window"):
        file_dm(signals_csv, stack=3)


def _segments(subjects):
    """The label of each 100-sample segment of the given subjects' recordings (make_signals' rule)."""
    return [CLASSES[(k + int(s[1:]) + r) % 3] for s in subjects for r in range(2) for k in range(4)]


def test_val_size_zero_keeps_every_non_test_subject_for_training(signals_csv):
    dm = ActivityDataModule(source="file", path=str(signals_csv), window=50, test_subjects=["p0", "p1"], val_size=0)
    dm.setup("fit")
    assert dm.subject_split == {"train": ["p2", "p3", "p4", "p5"], "val": [], "test": ["p0", "p1"]}
    assert len(dm.splits["val"]) == 0 and dm.val_dataloader() == []
    recordings = ActivityDataModule(source="basic_motions", window=None, val_size=0)
    recordings.setup("fit")
    assert len(recordings.splits["train"]) == 40 and len(recordings.splits["val"]) == 0


def test_random_rotations_are_rotations_within_the_angle():
    torch.manual_seed(0)
    r = random_rotations(500, 20.0)
    torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3).expand(500, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(500), atol=1e-5, rtol=0)
    angle = torch.rad2deg(torch.arccos(((r.diagonal(dim1=1, dim2=2).sum(1) - 1) / 2).clamp(-1, 1)))  # trace = 1 + 2 cos
    assert float(angle.max()) <= 20.0 + 1e-3 and float(angle.max()) > 15.0


def test_augmentation_turns_each_sensor_triple_in_raw_units_and_only_in_training(tmp_path):
    rng = np.random.default_rng(0)
    length = 400
    frames = pd.DataFrame(
        {name: rng.normal(1.0 if name == "az" else 0.0, 0.3, length * 4) for name in ["ax", "ay", "az", "gx", "gy", "gz"]}
        | {"label": np.repeat(["sit", "walk"] * 4, 200), "subject": np.repeat(["p0", "p1", "p2", "p3"], length)}
    )
    frames.to_csv(tmp_path / "imu.csv", index=False)
    dm = ActivityDataModule(source="file", path=str(tmp_path / "imu.csv"), window=40, stack=4, test_subjects=["p0"], val_subjects=["p1"],
                            augment_rotate=30.0, augment_scale=0.0)  # fmt: skip
    dm.setup("fit")
    samples = [dm.splits["train"][i] for i in range(6)]
    plain = dm.collate("val")(samples)["x"]  # (6, 10, 24): 4 samples x 6 channels per step
    torch.manual_seed(1)
    turned = dm.collate("train")(samples)["x"]
    assert turned.shape == plain.shape and not torch.allclose(turned, plain)
    stats = dm.preprocessing["stats"]
    mean, std = torch.tensor(stats["mean"]), torch.tensor(stats["std"])

    def raw(x):
        return (x.reshape(6, 40, 6) * std + mean).reshape(6, 40, 2, 3)  # (window, sample, sensor, xyz)

    torch.testing.assert_close(raw(turned).norm(dim=3), raw(plain).norm(dim=3), atol=1e-4, rtol=1e-4)  # lengths kept
    # one rotation per window, shared by the two sensors and every sample: solve it from the accelerometer, apply it to the gyroscope
    a, b = raw(plain), raw(turned)
    for w in range(6):
        rot = torch.linalg.lstsq(a[w, :, 0], b[w, :, 0]).solution  # rows: b = a @ rot
        torch.testing.assert_close(a[w, :, 1] @ rot, b[w, :, 1], atol=1e-3, rtol=1e-3)
    mixed = ActivityDataModule(source="file", path=str(tmp_path / "imu.csv"), window=40, test_subjects=["p0"], val_subjects=["p1"], augment_scale=0.2)
    mixed.setup("fit")
    batch = [mixed.splits["train"][i] for i in range(4)]
    torch.manual_seed(2)
    st = mixed.preprocessing["stats"]
    mean, std = torch.tensor(st["mean"]), torch.tensor(st["std"])
    after = mixed.collate("train")(batch)["x"] * std + mean  # (4, 40, 6) in raw units
    before = mixed.collate("val")(batch)["x"] * std + mean
    factor = (after * before).sum((1, 2)) / (before * before).sum((1, 2))  # least squares, one per window
    torch.testing.assert_close(after, factor[:, None, None] * before, atol=1e-4, rtol=1e-4)
    assert float((factor - 1).abs().min()) > 1e-3  # every window scaled, each by its own factor
    assert len(set(factor.tolist())) == 4


def test_augmentation_keeps_padding_at_zero_and_rotation_needs_channel_triples(signals_csv):
    stats = {"mean": [0.5] * 6, "std": [2.0] * 6}
    x = torch.randn(2, 5, 6)
    x[0, 3:] = 0
    torch.manual_seed(0)
    out = augment_windows(x, torch.tensor([3, 5]), stats, rotate=45.0, scale=0.1)
    assert torch.all(out[0, 3:] == 0) and not torch.allclose(out[1], x[1])
    torch.manual_seed(0)
    noisy = augment_windows(torch.zeros(2, 500, 6), torch.tensor([500, 200]), stats, noise=0.3)  # standardised units
    assert torch.all(noisy[1, 200:] == 0) and abs(float(noisy[0].std()) - 0.3) < 0.01
    dm = file_dm(signals_csv, augment_rotate=10.0)  # 3 channels a, b, rec: one triple, fine
    dm.setup("fit")
    dm.collate("train")
    two = ActivityDataModule(source="file", path=str(signals_csv), channels=["a", "b"], window=50, test_subjects=["p0"], augment_rotate=10.0)
    two.setup("fit")
    with pytest.raises(SeqlabError, match=r"augment_rotate turns \(x, y, z\) channel triples, but this data has 2 channels"):
        two.collate("train")
    assert two.collate("val").augment is None
    with pytest.raises(SeqlabError, match="must be >= 0"):
        file_dm(signals_csv, augment_scale=-0.1)
    with pytest.raises(SeqlabError, match="augment_noise must be >= 0"):
        file_dm(signals_csv, augment_noise=-0.1)


def test_predict_npz_channels_are_matched_by_name_and_a_saved_index_is_no_channel(signals_csv, tmp_path):
    dm = file_dm(signals_csv)
    dm.ensure_preprocessing()
    new = make_signals(subjects=1, recordings=1, length=120)
    new.drop(columns=["label"]).to_csv(tmp_path / "new.csv", index=False)
    dm.predict_input = str(tmp_path / "new.csv")
    from_csv = [x.clone() for x in dm.predict_dataset().items]
    swapped = dict(signals=new[["rec", "b", "a"]].to_numpy(np.float32), channels=np.array(["rec", "b", "a"]))
    np.savez(tmp_path / "swapped.npz", **swapped, subject=new.subject.to_numpy(str), recording=new.recording.to_numpy(str))
    dm.predict_input = str(tmp_path / "swapped.npz")
    assert all(torch.equal(a, b) for a, b in zip(dm.predict_dataset().items, from_csv))  # reordered by name
    np.savez(tmp_path / "other.npz", signals=swapped["signals"], channels=np.array(["rec", "b", "gx"]))
    dm.predict_input = str(tmp_path / "other.npz")
    with pytest.raises(SeqlabError, match=r"has no channel\(s\) \['a'\]"):
        dm.predict_dataset()
    new.rename(columns={"a": "acc_x"}).to_csv(tmp_path / "renamed.csv", index=False)  # a table with another channel name
    dm.predict_input = str(tmp_path / "renamed.csv")
    with pytest.raises(SeqlabError, match=r"has no channel column\(s\) \['a'\].*Name the file's signal columns as the checkpoint's channels"):
        dm.predict_dataset()
    make_signals().to_csv(tmp_path / "indexed.csv")  # pandas' default: the index as a first, unnamed column
    with pytest.raises(SeqlabError, match=r"column without a name \('Unnamed: 0'\).*index=False"):
        file_dm(tmp_path / "indexed.csv").ensure_preprocessing()


def test_test_subjects_the_data_lacks_say_how_to_draw_a_share_instead():
    from seqlab.data.activity import split_subjects

    with pytest.raises(SeqlabError, match=r"subject\(s\) \['9'\] that the data does not have; its subjects are \['p0', 'p1'\].*test_subjects: null"):
        split_subjects(["p0", "p1"], ["9"], None, 0.5, 0.0, 0)
    drawn = split_subjects(["p0", "p1", "p2", "p3"], None, None, 0.25, 0.0, 0)  # null: a seeded quarter of the subjects
    assert len(drawn["test"]) == 1 and sorted(drawn["train"] + drawn["test"]) == ["p0", "p1", "p2", "p3"]
    assert drawn == split_subjects(["p0", "p1", "p2", "p3"], None, None, 0.25, 0.0, 0)


def test_a_multitask_module_gives_the_predicted_tasks_origins():
    from seqlab.data import DnaDataModule, MultiTaskDataModule

    act = ActivityDataModule(source="basic_motions", window=None)
    act.predict_origins = [{"subject": "s", "recording": "r", "start": 0, "stop": 100}]
    dna = DnaDataModule()
    both = MultiTaskDataModule(tasks={"motion": act, "dna": dna}, only_task="motion")
    assert both.predict_origins == act.predict_origins
    both.only_task = "dna"
    assert list(both.predict_origins) == []


def test_crop_augmentation_keeps_a_contiguous_part_of_each_training_window(signals_csv):
    dm = file_dm(signals_csv, augment_crop=0.4, stack=2)
    dm.setup("fit")
    samples = [dm.splits["train"][i] for i in range(16)]
    torch.manual_seed(0)
    batch = dm.collate("train")(samples)
    assert batch["lengths"].tolist() != [25] * 16 and all(15 <= n <= 25 for n in batch["lengths"].tolist())  # steps of 2 samples
    for (_, x, _), n, cropped in zip(samples, batch["lengths"].tolist(), batch["x"]):
        starts = [s for s in range(len(x) - n + 1) if torch.equal(x[s : s + n], cropped[:n])]
        assert starts and torch.all(cropped[n:] == 0)  # a run of the window's own steps (stacked samples kept together), then padding
    assert dm.collate("val")(samples)["lengths"].tolist() == [25] * 16  # evaluation sees whole windows
    with pytest.raises(SeqlabError, match=r"augment_crop must be in \[0, 1\)"):
        file_dm(signals_csv, augment_crop=1.0)


def test_a_whole_recording_shorter_than_one_stacked_step_is_named(tmp_path):
    rows = [
        {"a": float(i), "b": 1.0, "label": CLASSES[r % 2], "subject": f"p{s}", "recording": f"r{r}"}
        for s in range(4)
        for r in range(2)
        for i in range(6)
    ]
    rows.append({"a": 0.0, "b": 0.0, "label": CLASSES[0], "subject": "p0", "recording": "short"})  # 1 sample
    path = tmp_path / "short.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    with pytest.raises(SeqlabError, match=r"recording 'short' of subject 'p0' has 1 sample\(s\), fewer than data.stack=2"):
        file_dm(path, window=None, stack=2).setup("fit")
    file_dm(path, window=None, stack=1).setup("fit")  # one sample is one step


def test_a_drawn_test_share_leaves_the_listed_validation_subjects_alone(signals_csv):
    for seed in range(12):  # some of these seeds drew p3 into test, which then stopped as "in both" lists
        dm = ActivityDataModule(source="file", path=str(signals_csv), window=50, test_subjects=None, val_subjects=["p3"], test_size=0.34, seed=seed)
        dm.setup("fit")
        assert dm.subject_split["val"] == ["p3"] and len(dm.subject_split["test"]) == 2 and "p3" not in dm.subject_split["test"]


def test_majority_windows_of_a_class_outside_data_labels_are_dropped_not_pooled(tmp_path):
    labels = ["walk"] * 4 + ["t1"] * 3 + ["t2"] * 3  # a window of 10: walk is the majority
    rows = [{"a": float(i), "label": labels[i % 10], "subject": f"p{s}", "recording": "r0"} for s in range(4) for i in range(40)]
    rows += [{"a": 0.5, "label": "sit", "subject": f"p{s}", "recording": "r1"} for s in range(4) for _ in range(20)]
    path = tmp_path / "s.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    for labels_given in (None, ["sit", "walk"]):  # restricting the label set must not change what walk windows are
        dm = ActivityDataModule(source="file", path=str(path), window=10, overlap=0.0, mixed="majority", labels=labels_given,
                                test_subjects=["p0"], val_subjects=["p1"])  # fmt: skip
        dm.setup("fit")
        names = dm.preprocessing["labels"]
        assert sorted(names[int(y)] for y in dm.splits["train"].labels) == ["sit"] * 4 + ["walk"] * 8
    codes = np.array([0, 0, 0, 3, 3, 3, 3, 2, 2, 2])  # 3: a class outside the two chosen
    assert window_labels(codes, 10, 10, "majority", classes=2)[1].tolist() == []  # its majority is dropped
    assert window_labels(codes[:7], 7, 7, "majority", classes=2)[1].tolist() == []
    assert window_labels(codes[:6], 6, 6, "majority", classes=2)[1].tolist() == [0]  # a tie goes to the smaller code


def test_npz_channel_names_and_arrays_must_fit_the_signals(tmp_path):
    df = make_signals()
    arrays = dict(signals=df[["a", "b", "rec"]].to_numpy(), label=df.label.to_numpy(dtype=str), subject=df.subject.to_numpy(dtype=str),
                  recording=df.recording.to_numpy(dtype=str))  # fmt: skip
    path = tmp_path / "s.npz"
    for names in (["a", "b"], ["a", "b", "rec", "x"], ["a", "a", "rec"]):
        np.savez(path, **arrays, channels=np.array(names))
        with pytest.raises(SeqlabError, match=rf"'channels' must name each of the 3 columns of 'signals' once; it holds \{names!r}"):
            file_dm(path).ensure_preprocessing()
    np.savez(path, **{**arrays, "subject": arrays["subject"][:, None]})  # a column vector of subjects
    with pytest.raises(SeqlabError, match=r"array 'subject' has shape \(4800, 1\); it needs one entry per sample of 'signals', shape \(4800,\)"):
        file_dm(path).ensure_preprocessing()
    upper = tmp_path / "S.NPZ"
    np.savez(path, **arrays)
    path.rename(upper)
    dm = file_dm(upper)
    assert dm.ensure_preprocessing()["channels"] == ["ch0", "ch1", "ch2"]  # read as an .npz, its columns in order


def test_a_bucket_pool_below_one_is_refused():
    with pytest.raises(SeqlabError, match=r"data.bucket_pool must be at least 1; got bucket_pool=0"):
        ActivityDataModule(source="file", path="x.csv", bucket_pool=0)


def test_the_overlap_a_checkpoint_replaces_is_named_as_the_overlap():
    stored = {"labels": CLASSES, "channels": ["a"], "stats": None, "window": 128, "stride": 64, "mixed": "drop", "stack": 1}
    dm = ActivityDataModule(source="file", path="x.csv", window=128, overlap=0.75, stack=2)
    assert dm.replaced_settings(stored) == {"overlap": (0.5, 0.75), "stack": (1, 2)}  # not the stride it becomes
    assert ActivityDataModule(source="file", path="x.csv", window=128, overlap=0.5).replaced_settings(stored) == {}
