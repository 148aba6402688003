"""The sktime/UEA ``.ts`` text format, and per-channel statistics for frame sequences.

A ``.ts`` file has ``#`` comments, ``@key value`` header lines, ``@data``, then one case a line:
dimensions separated by ``:``, values by ``,``, the class label last. Japanese Vowels (speech)
and BasicMotions (activity) ship this way inside the pinned sktime wheel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from seqlab.data.base import PinnedArchive, fetch_member
from seqlab.errors import SeqlabError

SKTIME_ARCHIVE = PinnedArchive(
    package="sktime",
    version="1.2.0",
    sha256="dbffc6731d2d683b668dceb5e2bbc5804bebc8446b4c580803a281684d90e4ae",
    member="",  # one wheel, many datasets: see ts_member
)


def ts_member(dataset: str, split: str) -> PinnedArchive:
    """The pinned sktime wheel's ``.ts`` file of one dataset split (``TRAIN`` or ``TEST``)."""
    return replace(SKTIME_ARCHIVE, member=f"sktime/datasets/data/{dataset}/{dataset}_{split}.ts")


def read_ts(path: str | Path) -> tuple[list[np.ndarray], list[str], dict[str, str]]:
    """(cases as float32 arrays (T, channels), labels, header) of a ``.ts`` file with class labels."""
    path = Path(path)
    header: dict[str, str] = {}
    cases: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if line.lower() == "@data":
                in_data = True
            elif line.startswith("@"):
                key, _, value = line[1:].partition(" ")
                header[key.lower()] = value.strip()
            continue
        *dims, label = line.split(":")
        if not dims:
            raise SeqlabError(f"{path} line {n}: a case needs at least one dimension and a class label after ':'.")
        try:
            channels = [np.array(d.split(","), dtype=np.float32) for d in dims]
        except ValueError as err:
            raise SeqlabError(f"{path} line {n}: {err}. Values must be numbers separated by ','.") from err
        if len({len(c) for c in channels}) != 1:
            raise SeqlabError(f"{path} line {n}: dimensions have different lengths {[len(c) for c in channels]}.")
        cases.append(np.stack(channels, axis=1))  # (T, channels)
        labels.append(label.strip())
    if not cases:
        raise SeqlabError(f"{path} holds no cases after @data.")
    return cases, labels, header


def load_ts_dataset(dataset: str, cache_dir: str | None = None, archive_path: str | None = None) -> dict[str, tuple[list[np.ndarray], list[str]]]:
    """Official split of a dataset in the pinned sktime wheel: split -> (cases, labels)."""
    out = {}
    for split in ("TRAIN", "TEST"):
        cases, labels, _ = read_ts(fetch_member(ts_member(dataset, split), cache_dir, archive_path))
        out[split.lower()] = (cases, labels)
    return out


def channel_stats(arrays: Sequence[np.ndarray]) -> dict[str, Any]:
    """Per-channel mean and standard deviation over every frame of (T, C) arrays, as plain lists
    (they go into checkpoints). A constant channel gets std 1 so standardising leaves it at 0."""
    frames = np.concatenate([np.asarray(a, dtype=np.float64) for a in arrays], axis=0)  # (sum T, C)
    mean, std = frames.mean(0), frames.std(0)
    std[std < 1e-8] = 1.0
    return {"mean": mean.tolist(), "std": std.tolist()}


def standardize(array: np.ndarray, stats: dict[str, Any]) -> np.ndarray:
    """(T, C) -> (T, C) float32 with the stored per-channel mean and std."""
    mean = np.asarray(stats["mean"], dtype=np.float32)
    std = np.asarray(stats["std"], dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != len(mean):
        raise SeqlabError(
            f"Got frames of shape {tuple(array.shape)}, expected (time, {len(mean)}): the data has a different "
            "number of channels/coefficients than the model was trained with."
        )
    return ((array - mean) / std).astype(np.float32)
