"""Signal recordings and a user's signal file (CSV, TSV, Parquet or NPZ) read into them.

A *recording* is one subject's continuous (T, C) signal with a label per sample (-1 =
unlabelled) and, for error messages, each sample's row number in its source. ``read_signal_file``
reads a table or an NPZ into columns; ``file_recordings`` groups its samples into recordings by
subject and recording columns and codes the labels. Problems are ``SeqlabError``s naming the file,
row and column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqlab.data.base import read_table
from seqlab.errors import SeqlabError

UNLABELLED = {"", "-1", "nan", "none"}  # label values that mark a sample unlabelled (any case)


def natural_key(value: str) -> tuple:
    """Sort key: whole numbers by value, before other names ("2" < "10" < "a")."""
    return (0, int(value), "") if value.lstrip("-").isdigit() else (1, 0, value)


@dataclass
class Recording:
    """One subject's continuous signal: ``signals`` (T, C), ``labels`` (T,) class codes (-1 =
    unlabelled), ``rows`` (T,) each sample's number in its source, as ``row_word`` counts them."""

    subject: str
    name: str
    signals: np.ndarray
    labels: np.ndarray
    rows: np.ndarray
    where: str
    row_word: str = "sample"
    official: str | None = None  # "train"/"test" where the source has an official split


def check_finite(rec: Recording, channels: list[str]) -> None:
    """Stop at the first NaN or infinite sample, naming subject, recording, row and channel."""
    bad = ~np.isfinite(rec.signals)
    if bad.any():
        row, channel = np.argwhere(bad)[0]
        kind = "a NaN" if np.isnan(rec.signals[row, channel]) else "an infinite"
        raise SeqlabError(
            f"{rec.where}: subject {rec.subject!r}, recording {rec.name!r} has {kind} value at {rec.row_word} {rec.rows[row]} "
            f"(channel {channels[channel]!r}); {int(bad.any(1).sum())} such sample(s) in this recording. seqlab does not "
            "interpolate: fill or drop those samples (and split the recording where you drop some) first."
        )


def read_signal_file(
    path: str | Path,
    channels: list[str] | None,
    label_column: str | None,
    subject_column: str | None,
    recording_column: str,
    fix: str = "Fix data.channels.",
) -> tuple[dict[str, np.ndarray], list[str], str]:
    """A CSV/TSV/Parquet table or an NPZ -> (columns as arrays, channel names, row word for errors).

    Table: one row per sample, in time order; channel columns (``channels``, else every column
    but label/subject/recording). NPZ: ``signals`` (N, C), optional ``channels`` (C,) names,
    and 1-D arrays named like the label/subject/recording columns.
    """
    path = Path(path)
    if path.suffix.lower() == ".npz":
        if not path.is_file():
            raise SeqlabError(f"Signal file {path} does not exist. Fix data.path or data.predict_input.")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as err:  # not an .npz, damaged, or holding Python objects
            raise SeqlabError(
                f"{path} could not be read as an .npz of numeric arrays ({err}). Write it with numpy.savez from numeric arrays "
                "(strings as a fixed-width str array, not dtype=object)."
            ) from None
        if "signals" not in arrays:
            raise SeqlabError(f"{path} needs an array 'signals' of shape (samples, channels); it has {sorted(arrays)}.")
        signals = arrays.pop("signals")
        if signals.ndim != 2 or not (np.issubdtype(signals.dtype, np.number) or signals.dtype == bool):
            raise SeqlabError(f"{path}: 'signals' must be numbers of shape (samples, channels); it is {signals.dtype} of shape {signals.shape}.")
        named = arrays.pop("channels", None)
        if named is not None and (named.ndim != 1 or len(named) != signals.shape[1] or len(set(named.tolist())) != len(named)):
            raise SeqlabError(
                f"{path}: 'channels' must name each of the {signals.shape[1]} columns of 'signals' once; it holds {named.tolist()}. "
                "Save one name per column, in column order (or leave 'channels' out to take the columns in order)."
            )
        names = [str(c) for c in named] if named is not None else [f"ch{i}" for i in range(signals.shape[1])]
        if channels is not None:
            missing = [c for c in channels if c not in names]
            if missing:
                raise SeqlabError(f"{path} has no channel(s) {missing}; its channels are {names}. Fix data.channels.")
            signals, names = signals[:, [names.index(c) for c in channels]], list(channels)
        for key, value in arrays.items():
            if value.ndim != 1 or value.shape[:1] != signals.shape[:1]:
                raise SeqlabError(
                    f"{path}: array {key!r} has shape {value.shape}; it needs one entry per sample of 'signals', shape ({len(signals)},)."
                )
        arrays["signals"] = signals.astype(np.float32)
        return arrays, names, "sample index"
    df = read_table(path)
    meta = {c for c in (label_column, subject_column, recording_column) if c}
    names = list(channels) if channels is not None else [c for c in df.columns if c not in meta]
    index = [c for c in names if str(c).startswith("Unnamed: ")]
    if channels is None and index:
        raise SeqlabError(
            f"{path} has a column without a name ({index[0]!r}): a saved pandas index, not a signal. "
            "Write the file with index=False, or list the signal columns in data.channels."
        )
    missing = [c for c in names if c not in df.columns]
    if missing:
        raise SeqlabError(f"{path} has no channel column(s) {missing}; its columns are {list(df.columns)}. {fix}")
    if not names:
        raise SeqlabError(f"{path} has no channel columns besides {sorted(meta)}.")
    try:
        signals = df[names].to_numpy(dtype=np.float32)
    except (ValueError, TypeError) as err:
        import pandas as pd

        for name in names:  # the first value that is not a number, by column and data row
            numbers = pd.to_numeric(df[name], errors="coerce")
            bad = np.flatnonzero(numbers.isna().to_numpy() & df[name].notna().to_numpy())
            if len(bad):
                label = (
                    f" The file has no label column {label_column!r}: if {name!r} holds the labels, set data.label_column={name}."
                    if label_column and label_column not in df.columns and channels is None
                    else ""
                )
                raise SeqlabError(
                    f"{path}: channel {name!r} holds {df[name].iloc[bad[0]]!r} at data row {bad[0] + 1}, not a number "
                    f"({len(bad)} such value(s) in it). Fix the values (a decimal comma?), or list the signal columns in data.channels.{label}"
                ) from None
        raise SeqlabError(f"{path}: channel columns {names} must hold numbers ({err}). List the signal columns in data.channels.") from None
    arrays = {c: df[c].to_numpy() for c in meta if c in df.columns}
    arrays["signals"] = signals
    return arrays, [str(n) for n in names], "data row"


def file_recordings(
    arrays: dict[str, np.ndarray], where: str, row_word: str, subject_column: str | None, recording_column: str, label_column: str | None
) -> tuple[list[Recording], list[str]]:
    """Group a file's samples into recordings ((subject, recording) keys, in order of first
    appearance) and code the labels. Returns (recordings, the label names found, in natural order)."""
    n = len(arrays["signals"])
    subjects = _text(arrays[subject_column]) if subject_column and subject_column in arrays else np.full(n, "all", dtype=object)
    recs = _text(arrays[recording_column]) if recording_column in arrays else np.full(n, "1", dtype=object)
    for name, values in (("subject", subjects), ("recording", recs)):
        empty = np.flatnonzero(np.isin(values, ["", "nan", "None"]))
        if len(empty):
            raise SeqlabError(f"{where}: {row_word} {_row_number(empty[0], row_word)} has no {name} value. Every sample needs one.")
    if label_column and label_column in arrays:
        raw = _text(arrays[label_column])
        unlabelled = np.isin(np.char.lower(raw.astype(str)), list(UNLABELLED))
        names = sorted(set(raw[~unlabelled].tolist()), key=natural_key)
        index = {name: i for i, name in enumerate(names)}
        codes = np.array([-1 if u else index[v] for v, u in zip(raw.tolist(), unlabelled.tolist())], dtype=np.int64)
    else:
        names, codes = [], np.full(n, -1, dtype=np.int64)
    keys = np.char.add(np.char.add(subjects.astype(str), "\x1f"), recs.astype(str))  # (subject, recording) as one string
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    recordings = []
    for k in np.argsort(first):
        rows = np.flatnonzero(inverse == k)
        gap = np.flatnonzero(np.diff(rows) != 1)
        if len(gap):  # windows follow the file's order: another recording's rows in between would be cut into them
            raise SeqlabError(
                f"{where}: the samples of subject {subjects[rows[0]]!r}, recording {recs[rows[0]]!r} are not consecutive "
                f"{row_word}s ({row_word}s {_row_number(rows[gap[0]], row_word)} and {_row_number(rows[gap[0] + 1], row_word)} are "
                f"neighbours in it, with other samples between them). Sort the file by subject, recording and time, or give each "
                f"stretch its own value in data.recording_column ({recording_column!r})."
            )
        recordings.append(
            Recording(str(subjects[rows[0]]), str(recs[rows[0]]), arrays["signals"][rows], codes[rows], _row_number(rows, row_word), where, row_word)
        )
    return recordings, names


def _text(values: np.ndarray) -> np.ndarray:
    """Values as strings; whole floats (a pandas int column with gaps) lose their '.0'."""
    out = []
    for v in values.tolist():
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        out.append("" if v is None else str(v))
    return np.array(out, dtype=object)


def _row_number(i: Any, row_word: str) -> Any:
    """Data rows of a table count from 1 (after the header); NPZ sample indices from 0."""
    return i + 1 if row_word == "data row" else i
