"""Export: TorchScript and ONNX graphs of one task give PyTorch's probabilities for any batch and length."""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import seqlab
from seqlab.cli import main
from seqlab.data.text import encode
from seqlab.errors import SeqlabError
from seqlab.export import export_task
from seqlab.model import SeqModel

from .conftest import make_reviews, tiny_text_args

ort = pytest.importorskip("onnxruntime")

TOKENS = {"imdb": {"name": "imdb", "input": "tokens", "task_type": "binary", "labels": ["negative", "positive"], "vocab_size": 40}}
FEATURES = {"act": {"name": "act", "input": "features", "task_type": "multiclass", "labels": ["a", "b", "c"], "feature_dim": 5}}


def run_exported(path: Path, fmt: str, x: torch.Tensor, lengths: torch.Tensor) -> np.ndarray:
    if fmt == "torchscript":
        return torch.jit.load(str(path))(x, lengths).detach().numpy()
    session = ort.InferenceSession(str(path))
    return session.run(["probs"], {"x": x.numpy(), "lengths": lengths.numpy()})[0]


def padded(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(r) for r in rows])
    return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True), lengths


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize(
    "specs,kwargs",
    [
        (TOKENS, {"num_layers": 2, "pooling": "max"}),
        (TOKENS, {"pooling": "last", "impl": "reference"}),
        (FEATURES, {"pooling": "attention", "position_embedding": 40}),
        (FEATURES, {"pooling": "mean", "bidirectional": False}),
        (FEATURES, {"pooling": "mean", "conv_kernel": 5, "conv_layers": 2}),
        (FEATURES, {"pooling": "max", "members": 3}),
        (FEATURES, {"pooling": "max", "fcn_width": 4}),
    ],
    ids=[
        "tokens-2layer-max",
        "tokens-last-reference",
        "features-attention-positions",
        "features-mean-unidirectional",
        "features-conv",
        "features-ensemble",
        "features-fcn",
    ],
)
def test_export_matches_pytorch_for_other_batch_sizes_and_lengths(tmp_path, fmt, specs, kwargs):
    """Traced with a batch of 2 of length 8; run on batches of 5 and 1 of other lengths, the padding
    holding garbage: the reverse direction must start at each row's own last step."""
    torch.manual_seed(0)
    model = SeqModel(specs, embed_dim=12, hidden_size=10, **kwargs).eval()
    task = next(iter(specs))
    path = export_task(model, task, fmt, tmp_path / f"model.{fmt}")
    gen = torch.Generator().manual_seed(1)
    for lengths in ([13, 3, 9, 1, 6], [21]):
        if specs is TOKENS:
            rows = [torch.randint(1, 40, (n,), generator=gen) for n in lengths]
        else:
            rows = [torch.randn(n, 5, generator=gen) for n in lengths]
        x, lengths_t = padded(rows)
        garbage = torch.arange(x.size(1)).unsqueeze(0) >= lengths_t.unsqueeze(1)  # (B, T) padded steps
        x[garbage] = 7 if specs is TOKENS else 3.0
        with torch.no_grad():
            expected = model.log_probabilities({"x": x, "lengths": lengths_t, "task": task}).exp().numpy()  # an ensemble's mean
            alone = model.log_probabilities({"x": x[:1, : lengths[0]], "lengths": lengths_t[:1], "task": task}).exp().numpy()
        got = run_exported(path, fmt, x, lengths_t)
        assert got.shape == (len(lengths), len(specs[task]["labels"]))
        np.testing.assert_allclose(got, expected, atol=1e-4)
        np.testing.assert_allclose(got[:1], alone, atol=1e-4)  # padding does not change a row


def test_export_refuses_a_chunked_encoder(tmp_path):
    model = SeqModel(TOKENS, embed_dim=8, hidden_size=8, chunk_size=16).eval()
    with pytest.raises(ValueError, match="chunk_size"):
        export_task(model, "imdb", "onnx", tmp_path / "m.onnx")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A checkpoint of configs/imdb.yaml shrunk to two epochs on generated reviews (one fit for this file)."""
    import csv

    root = tmp_path_factory.mktemp("fit")
    path = root / "reviews.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *make_reviews(240)])
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        cli = main(["fit", *tiny_text_args(path, "--trainer.max_epochs=2", "--model.optimizer.init_args.lr=0.02")])
        return Path(cli.trainer.checkpoint_callback.best_model_path).resolve()


def test_export_command_onnx_and_torchscript_on_encoded_reviews(trained, tmp_path, capsys):
    onnx_path, ts_path = tmp_path / "out" / "imdb.onnx", tmp_path / "out" / "imdb.pt"
    main(["export", f"--ckpt_path={trained}", "--task=imdb", "--format=onnx", f"--output={onnx_path}"])
    main(["export", f"--ckpt_path={trained}", "--format", "torchscript", "--output", str(ts_path)])
    meta = json.loads((tmp_path / "out" / "imdb.onnx.json").read_text())
    assert meta["labels"] == ["negative", "positive"] and meta["input"] == "tokens"
    assert meta["settings"] == {"text_column": "text"}  # the data settings beside the preprocessing (DNA: rc_average)
    assert meta["model_sha256"] == hashlib.sha256(onnx_path.read_bytes()).hexdigest()  # the sidecar names its model
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["imdb.onnx", "imdb.onnx.json", "imdb.pt", "imdb.pt.json"]  # no temp files left

    # Reviews the checkpoint never saw, encoded with the vocabulary that travels with the export.
    texts = [text for text, _ in make_reviews(7, seed=123)]
    p = meta["preprocessing"]
    x, lengths = padded([torch.from_numpy(a.astype(np.int64)) for a in encode(texts, p["vocab"], p["max_length"], p["truncation"], p["lowercase"])])
    assert len(set(lengths.tolist())) > 3
    model = SeqModel.load_from_checkpoint(trained, map_location="cpu").eval()
    with torch.no_grad():
        expected = model(x, lengths, "imdb").softmax(-1).numpy()
    np.testing.assert_allclose(run_exported(onnx_path, "onnx", x, lengths), expected, atol=1e-4)
    np.testing.assert_allclose(run_exported(ts_path, "torchscript", x, lengths), expected, atol=1e-4)
    files = {"seqlab.json": ""}
    torch.jit.load(str(ts_path), _extra_files=files)
    assert json.loads(files["seqlab.json"])["labels"] == ["negative", "positive"]
    for path, kind, runner in [(ts_path, "TorchScript", "torch.jit.load"), (onnx_path, "ONNX", "onnxruntime")]:
        with pytest.raises(SeqlabError, match=rf"is a {kind} model written by `seqlab export`, not a checkpoint: run it with {runner}"):
            seqlab.load(path)  # an export given where a checkpoint belongs
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", *tiny_text_args(tmp_path / "none.csv"), f"--ckpt_path={ts_path}"])
    assert exit_info.value.code == 2 and "is a TorchScript model written by `seqlab export`" in capsys.readouterr().err
    damaged = tmp_path / "damaged.ckpt"  # the end of a zip archive (so is_zipfile says yes) after bytes that are none
    damaged.write_bytes(b"x" * 60 + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, 46, 0, 0))
    with pytest.raises(SeqlabError, match=r"could not be read \(UnpicklingError: Unsupported operand 120\)\. It is not a seqlab/Lightning"):
        seqlab.load(damaged)


def test_onnx_export_without_the_onnx_package_says_how_to_get_it(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed
    with pytest.raises(SystemExit) as exit_info:
        main(["export", f"--ckpt_path={trained}", f"--output={tmp_path / 'out' / 'x.onnx'}"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and 'ONNX export needs the onnx package: pip install -e ".[export]" (or use --format torchscript)' in err
    assert not (tmp_path / "out" / "x.onnx").exists()


def test_export_command_user_errors_exit_2_with_one_paragraph(trained, tmp_path, capsys):
    for args, says in [
        ([f"--ckpt_path={tmp_path / 'missing.ckpt'}"], "does not exist"),
        ([f"--ckpt_path={trained}", "--task=dna"], "no task 'dna'"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(["export", *args, f"--output={tmp_path / 'x.onnx'}"])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["export", f"--ckpt_path={trained}", f"--output={tmp_path}"])
    assert exit_info.value.code == 2 and f"--output {tmp_path} is a folder" in capsys.readouterr().err
