"""DNA data: symbol rules, encodings, reverse complement, FASTA/CSV sources and their errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seqlab.data.base import fetch_member
from seqlab.data.dna import (
    ONEHOT,
    SPLICE_ARCHIVE,
    DnaCollate,
    DnaDataModule,
    encode_codes,
    parse_fasta,
    reverse_complement,
    to_codes,
)
from seqlab.errors import SeqlabError


def decode(codes):
    return "".join("ACGTNRYSWKMBDHV"[c] for c in codes)


def test_codes_accept_lowercase_rna_and_iupac():
    assert decode(to_codes("acgtNRy", "r1")) == "ACGTNRY"
    assert decode(to_codes("ACGU", "r1")) == "ACGT"


def test_bad_symbol_names_record_and_position():
    with pytest.raises(SeqlabError, match=r"Record 'chr1:7' has 'X' at position 4.*2 such symbol"):
        to_codes("ACGXTTZ", "chr1:7")
    with pytest.raises(SeqlabError, match="Record 'r2' is empty"):
        to_codes("", "r2")


def test_reverse_complement_is_exact_and_an_involution():
    codes = to_codes("AACGTRYKMBDN", "r")
    assert decode(reverse_complement(codes)) == "NHVKMRYACGTT"
    assert np.array_equal(reverse_complement(reverse_complement(codes)), codes)


def test_base_kmer_and_onehot_encodings_follow_the_documented_rule():
    codes = to_codes("ACGTN", "r")
    assert encode_codes(codes, "base").tolist() == [1, 2, 3, 4, 5]
    # 2-mers: AC=1, CG=6, GT=11 (base 4) plus 2; GN has an ambiguity code -> 1.
    assert encode_codes(codes, "kmer", k=2).tolist() == [3, 8, 13, 1]
    assert encode_codes(codes, "kmer", k=2, stride=2).tolist() == [3, 13]
    assert encode_codes(to_codes("A", "r"), "kmer", k=3).tolist() == [1]
    frames = encode_codes(to_codes("ARN", "r"), "onehot")
    assert frames.tolist() == [[1, 0, 0, 0], [0.5, 0, 0.5, 0], [0.25, 0.25, 0.25, 0.25]]
    assert np.allclose(ONEHOT.sum(1), 1)


def test_onehot_of_reverse_complement_flips_time_and_channels():
    codes = to_codes("AACGTTGCAR", "r")
    forward = encode_codes(codes, "onehot")
    assert torch.equal(encode_codes(reverse_complement(codes), "onehot"), forward.flip(0).flip(1))


def test_collate_augments_in_training_and_adds_rc_view_for_evaluation():
    samples = [(0, to_codes("AAAC", "a"), torch.tensor(0)), (1, to_codes("GG", "b"), torch.tensor(1))]
    torch.manual_seed(0)
    always = DnaCollate("dna", "base", 3, 1, rc_prob=1.0)(samples)
    assert always["x"].tolist() == [[3, 4, 4, 4], [2, 2, 0, 0]]  # GTTT, CC
    views = DnaCollate("dna", "base", 3, 1, rc_views=True)(samples)
    assert views["x"].tolist() == [[1, 1, 1, 2], [3, 3, 0, 0]]
    assert views["x_rc"].tolist() == [[3, 4, 4, 4], [2, 2, 0, 0]]


def write_fasta(path, records):
    path.write_text("".join(f">{header}\n{seq[:5]}\n{seq[5:]}\n" for header, seq in records))
    return path


def fasta_records(n=60):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        seq = "".join(rng.choice(list("ACGT"), 20)) + ("GATTACA" if label == "pos" else "CCCCCCC")
        out.append((f"seq{i} label={label} source=test", seq))
    return out


def test_identical_sequences_are_dropped_as_the_model_sees_them_after_the_cut(tmp_path):
    records = fasta_records()
    records += [("copy0 label=pos", records[0][1])]  # an exact copy (of a neg record, with another label)
    records += [("tail1 label=neg", records[1][1] + "TTTT")]  # the same first 27 bases as seq1, then more

    def counts(**cut):
        dm = DnaDataModule(source="fasta", path=str(write_fasta(tmp_path / "d.fa", records)), test_size=0.25, **cut)
        dm.ensure_preprocessing()
        return sum(len(y) for _, y in dm._table["splits"].values())

    assert counts() == 61  # the copy dropped, the longer record kept
    assert counts(max_length=27) == 60  # cut to 27 bases it is seq1 again: dropped too
    assert counts(max_length=27, truncation="tail") == 61  # its last 27 bases differ from seq1's


def test_fasta_with_label_field(tmp_path):
    path = write_fasta(tmp_path / "x.fa", fasta_records())
    assert parse_fasta(path)[0][2] == fasta_records()[0][1]  # multi-line records joined
    bom = tmp_path / "bom.fa"
    bom.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # a byte-order mark, as some Windows editors save
    assert parse_fasta(bom) == parse_fasta(path)
    dm = DnaDataModule(source="fasta", path=str(path), test_size=0.25, encoding="onehot")
    spec = dm.spec
    assert spec.labels == ["neg", "pos"] and spec.input == "features" and spec.feature_dim == 4
    dm.setup("fit")
    assert sum(len(s) for s in dm.splits.values()) == 60


def test_fasta_one_file_per_class(tmp_path):
    recs = fasta_records()
    pos = write_fasta(tmp_path / "pos.fa", [(h.split()[0], s) for h, s in recs if "pos" in h])
    neg = write_fasta(tmp_path / "neg.fa", [(h.split()[0], s) for h, s in recs if "neg" in h])
    dm = DnaDataModule(source="fasta", class_files={"neg": str(neg), "pos": str(pos)}, encoding="kmer", k=4)
    assert dm.spec.vocab_size == 4**4 + 2 and dm.spec.labels == ["neg", "pos"]
    with pytest.raises(SeqlabError, match=r"^data\.class_files has only the label\(s\) \['pos'\]: a classifier needs at least two classes"):
        DnaDataModule(source="fasta", class_files={"pos": str(pos)}).ensure_preprocessing()
    one = write_fasta(tmp_path / "one.fa", [(h, s) for h, s in recs if "pos" in h])
    with pytest.raises(SeqlabError, match=r"^The FASTA header field 'label' has only the label\(s\) \['pos'\]"):
        DnaDataModule(source="fasta", path=str(one)).ensure_preprocessing()


def test_fasta_header_without_label_field(tmp_path):
    path = write_fasta(tmp_path / "x.fa", [("a label=pos", "ACGTACGTAC"), ("b other=1", "ACGTACGTAA")])
    with pytest.raises(SeqlabError, match=r"record 'b' .* no 'label=\.\.\.' field"):
        DnaDataModule(source="fasta", path=str(path)).ensure_preprocessing()


def test_fasta_duplicate_ids(tmp_path):
    path = write_fasta(tmp_path / "x.fa", [("a label=pos", "ACGTACGTAC"), ("a label=neg", "ACGTACGTAA")])
    with pytest.raises(SeqlabError, match=r"more than once: \['a'\]"):
        DnaDataModule(source="fasta", path=str(path)).ensure_preprocessing()


def test_csv_source_and_bad_symbol_error(tmp_path):
    rows = ["seq,label"] + [f"{s},{h.split('=')[1].split()[0]}" for h, s in fasta_records()]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\nACGTQ,pos\n")
    dm = DnaDataModule(source="file", path=str(tmp_path / "d.csv"))
    with pytest.raises(SeqlabError, match=r"d\.csv: Record 'data row 61' has 'Q' at position 5"):
        dm.ensure_preprocessing()


def test_predict_from_strings_and_fasta(tmp_path):
    dm = DnaDataModule(source="fasta", path=str(write_fasta(tmp_path / "x.fa", fasta_records())), rc_average=True)
    dm.predict_input = ["ACGTN", "ggatc"]
    assert len(dm.predict_dataset()) == 2
    dm.predict_input = str(tmp_path / "x.fa")
    batch = next(iter(dm.predict_dataloader()))
    assert "x_rc" in batch and batch["x"].shape == batch["x_rc"].shape
    assert [dm.collate(split).rc_views for split in ("train", "val", "test", "predict")] == [False, True, True, True]  # validation as test
    (tmp_path / "q.csv").write_text("id,seq\na,ACGTN\nb,ggatc\n")
    dm.predict_input = str(tmp_path / "q.csv")  # a table: its sequence column (data.sequence_column)
    from_table = [x.tolist() for x in dm.predict_dataset().items]
    dm.predict_input = ["ACGTN", "ggatc"]
    assert from_table == [x.tolist() for x in dm.predict_dataset().items]
    (tmp_path / "Q.CSV").write_text("id,seq\na,ACGTN\nb,ggatc\n")
    dm.predict_input = str(tmp_path / "Q.CSV")  # the suffix in any case: still a table, not 3 lines
    assert from_table == [x.tolist() for x in dm.predict_dataset().items]
    (tmp_path / "bad.fa").write_text(">r1\nACQT\n")
    dm.predict_input = str(tmp_path / "bad.fa")
    with pytest.raises(SeqlabError, match=r"bad\.fa: Record 'r1' has 'Q' at position 3"):
        dm.predict_dataset()
    dm.predict_input = ["ACQT"]  # inline: no file to name
    with pytest.raises(SeqlabError, match=r"^Record 'input 0' has 'Q' at position 3"):
        dm.predict_dataset()
    for missing in ("y.fa", "y.fa.gz"):  # not read as a sequence with a '/' in it
        dm.predict_input = str(tmp_path / missing)
        with pytest.raises(SeqlabError, match=f"{missing}'?: no such file"):
            dm.predict_dataset()


def test_splice_archive_matches_its_documented_counts():
    lines = fetch_member(SPLICE_ARCHIVE).read_text().splitlines()
    rows = [[f.strip() for f in line.split(",")] for line in lines if line.strip()]
    assert len(rows) == 3190 and all(len(r) == 61 for r in rows)
    labels = [r[-1] for r in rows]
    assert {k: labels.count(k) for k in ("EI", "IE", "N")} == {"EI": 767, "IE": 768, "N": 1655}
    seqs = ["".join(r[:-1]) for r in rows]
    assert len(seqs) - len(set(seqs)) == 185
    assert sorted({c for s in seqs for c in s} - set("ACGT")) == ["D", "N", "R", "S"]
    dm = DnaDataModule()  # the default of configs/splice.yaml
    dm.setup("fit")
    sizes = {k: len(v) for k, v in dm.splits.items()}
    assert sum(sizes.values()) == 3190 - 185 and sizes["test"] == 602


def test_hub_source_offline_names_the_offline_source(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(SeqlabError, match="data.source=splice_archive"):
        DnaDataModule(source="hub").ensure_preprocessing()


def test_reverse_complement_averaging_in_the_model():
    from seqlab.model import SeqModel

    spec = {"name": "dna", "input": "tokens", "task_type": "binary", "labels": ["a", "b"], "vocab_size": 6}
    model = SeqModel({"dna": spec}, embed_dim=8, hidden_size=8).eval()
    samples = [(0, to_codes("ACGTTA", "a"), torch.tensor(0)), (1, to_codes("GGCA", "b"), torch.tensor(1))]
    batch = DnaCollate("dna", "base", 3, 1, rc_views=True)(samples)
    with torch.no_grad():
        averaged = model.log_probabilities(batch).exp()
        forward = model(batch["x"], batch["lengths"], "dna").softmax(-1)
        reverse = model(batch["x_rc"], batch["lengths"], "dna").softmax(-1)
    torch.testing.assert_close(averaged, (forward + reverse) / 2)
    assert not torch.allclose(forward, reverse)


def test_long_records_train_and_predict_in_chunks(tmp_path, monkeypatch):
    """20,000-base records through the CLI with chunk_size: fit one batch, then predict."""
    import json

    from seqlab.cli import main

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    records = [(f"r{i} label={'pos' if i % 2 else 'neg'}", "".join(rng.choice(list("ACGT"), 20_000))) for i in range(16)]
    path = write_fasta(tmp_path / "long.fa", records)
    args = [
        "--config", str(Path(__file__).resolve().parents[1] / "configs" / "splice.yaml"),
        "--data.source=fasta", f"--data.path={path}", "--data.task_name=long", "--data.encoding=base",
        "--data.test_size=0.25", "--data.val_size=0.25", "--data.batch_size=2", "--model.embed_dim=8", "--model.hidden_size=8",
        "--model.position_embedding=0", "--model.chunk_size=1000", "--trainer.logger=false",
    ]  # fmt: skip
    cli = main(["fit", *args, "--trainer.fast_dev_run=1"])
    assert cli.trainer.state.finished
    (tmp_path / "q.txt").write_text(records[0][1] + "\n" + records[1][1][:5000] + "\n")
    ckpt = tmp_path / "m.ckpt"
    cli.trainer.save_checkpoint(ckpt)
    out = tmp_path / "p.jsonl"
    main(["predict", *args, f"--ckpt_path={ckpt}", f"--data.predict_input={tmp_path / 'q.txt'}", f"--prediction_writer.output_path={out}"])
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["label"] in ("neg", "pos") for r in rows] == [True, True]


def test_missing_labels_odd_split_values_and_bad_sizes_are_errors(tmp_path):
    rows = [f"{s},{h.split('=')[1].split()[0]}" for h, s in fasta_records()]
    (tmp_path / "nolabel.csv").write_text("seq,label\n" + "\n".join(rows) + "\nACGTACGTAAAC,\n")
    with pytest.raises(SeqlabError, match=r"'label' has 1 entries without a label.*Remove or fill them"):
        DnaDataModule(source="file", path=str(tmp_path / "nolabel.csv")).ensure_preprocessing()
    marked = [f"{r},{'test' if i % 5 == 0 else 'valid' if i % 7 == 0 else 'train'}" for i, r in enumerate(rows)]
    (tmp_path / "split.csv").write_text("seq,label,split\n" + "\n".join(marked) + "\n")
    with pytest.raises(SeqlabError, match=r"may only hold 'train' and 'test'; it also holds \['valid'\]"):
        DnaDataModule(source="file", path=str(tmp_path / "split.csv")).ensure_preprocessing()
    (tmp_path / "all_train.csv").write_text("seq,label,split\n" + "\n".join(f"{r},train" for r in rows) + "\n")
    with pytest.raises(SeqlabError, match="marks no row 'test'"):
        DnaDataModule(source="file", path=str(tmp_path / "all_train.csv")).ensure_preprocessing()
    with pytest.raises(SeqlabError, match="data.max_length must be at least 1"):
        DnaDataModule(source="file", path=str(tmp_path / "split.csv"), max_length=0)
    with pytest.raises(SeqlabError, match=r"^data.batch_size must be at least 1; got batch_size=0\.$"):
        DnaDataModule(source="file", path=str(tmp_path / "split.csv"), batch_size=0)
    with pytest.raises(SeqlabError, match=r"^data.eval_batch_size must be at least 1; got eval_batch_size=-1\.$"):
        DnaDataModule(source="file", path=str(tmp_path / "split.csv"), eval_batch_size=-1)


def test_predict_inputs_that_are_not_dna_text_are_errors(tmp_path):
    dm = DnaDataModule(source="fasta", path=str(write_fasta(tmp_path / "x.fa", fasta_records())))
    dm.predict_input = ["ACGT", 123]
    with pytest.raises(SeqlabError, match=r"inputs \[1\] \(data.predict_input items, or items given to predict\) are not strings"):
        dm.predict_dataset()
    (tmp_path / "latin1.fa").write_bytes(">a label=pos\nACGT\xe9\n".encode("latin-1"))
    dm.predict_input = str(tmp_path / "latin1.fa")
    with pytest.raises(SeqlabError, match=r"latin1\.fa is not UTF-8 text \(line 2\)\. Save it as UTF-8"):
        dm.predict_dataset()
    with pytest.raises(SeqlabError, match="not UTF-8 text"):
        DnaDataModule(source="fasta", path=str(tmp_path / "latin1.fa")).ensure_preprocessing()


def test_resuming_from_a_checkpoint_without_the_cut_keys_or_with_another_max_length(tmp_path):
    path = str(write_fasta(tmp_path / "x.fa", fasta_records()))
    state = DnaDataModule(source="fasta", path=path, max_length=20).state_dict()
    older = {**state, "preprocessing": {k: v for k, v in state["preprocessing"].items() if k not in ("max_length", "truncation")}}
    older.pop("settings")
    for stored in (older, state):
        dm = DnaDataModule(source="fasta", path=path, max_length=24)  # the resumed fit cuts as its config says
        dm.ensure_preprocessing()
        dm.load_state_dict(stored)
        assert dm.preprocessing["max_length"] == 24
    relabelled = {**state, "preprocessing": {**state["preprocessing"], "labels": ["pos", "neg"]}}
    with pytest.raises(SeqlabError, match="differs from the one built from this config's data"):
        dm.load_state_dict(relabelled)


def test_test_and_predict_cut_as_the_checkpoint_s_training_data(tmp_path):
    path = str(write_fasta(tmp_path / "x.fa", fasta_records()))
    trained = DnaDataModule(source="fasta", path=path, max_length=10, truncation="tail").state_dict()
    dm = DnaDataModule(source="fasta", path=path)  # a config without max_length, the checkpoint's preprocessing
    dm.load_state_dict(trained)
    dm.setup("test")
    assert max(dm.splits["test"].lengths()) == 10
    dm.predict_input = ["ACGT" * 6]
    assert decode(dm.predict_dataset().items[0]) == ("ACGT" * 6)[-10:]
