"""explain: the figure's gate values are lstm_cell's, step by step; attributions; the command; W&B images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seqlab.cli import main
from seqlab.explain import PANELS, draw_gates, encode_input, explain, integrated_gradients, log_figure_to_wandb, trace_input
from seqlab.model import SeqModel
from seqlab.nn import lstm_cell

from .conftest import make_reviews, tiny_text_args

TOKENS = {"imdb": {"name": "imdb", "input": "tokens", "task_type": "binary", "labels": ["negative", "positive"], "vocab_size": 30}}
PNG = b"\x89PNG\r\n\x1a\n"


def stepwise(lstm: torch.nn.LSTM, xs: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """lstm_cell applied one step at a time to xs (T, I): gates and cell (T, H) and outputs (T, H)."""
    H = lstm.hidden_size
    h, c = torch.zeros(1, H), torch.zeros(1, H)
    rows = {name: [] for name in PANELS}
    outs = []
    for x in xs:
        h, c, g = lstm_cell(x.unsqueeze(0), h, c, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
        for name, value in (("forget", g.forget), ("input", g.input), ("output", g.output), ("cell", c)):
            rows[name].append(value[0])
        outs.append(h[0])
    return {k: torch.stack(v) for k, v in rows.items()}, torch.stack(outs)


@torch.no_grad()
def expected_gates(model: SeqModel, x: torch.Tensor, layer: int) -> dict[str, torch.Tensor]:
    """Both directions of every layer up to ``layer`` by hand; the reverse one on the flipped input."""
    h = model.inputs["imdb"](x.unsqueeze(0))[0]  # (T, E)
    for conv in model.encoder.convs:  # the convolutional front end: h + gelu(conv(h)), zeros past both ends
        h = h + torch.nn.functional.gelu(torch.nn.functional.conv1d(h.T.unsqueeze(0), conv.weight, conv.bias, padding=conv.kernel_size[0] // 2)[0].T)
    for index in range(layer + 1):
        fwd, out_f = stepwise(model.encoder.forward_layers[index], h)
        rev, out_r = stepwise(model.encoder.reverse_layers[index], h.flip(0))
        gates = {k: torch.cat([fwd[k], rev[k].flip(0)], dim=1) for k in PANELS}  # (T, 2H), position-aligned
        h = torch.cat([out_f, out_r.flip(0)], dim=1)
    return gates | {"hidden": h}


@pytest.mark.parametrize("layer,conv_kernel", [(0, 0), (1, 0), (1, 3)])
def test_figure_shows_the_gates_lstm_cell_computes(layer, conv_kernel):
    torch.manual_seed(0)
    model = SeqModel(TOKENS, embed_dim=6, hidden_size=5, num_layers=2, conv_kernel=conv_kernel, conv_layers=2).eval()
    x = torch.randint(2, 30, (9,))
    trace = trace_input(model, "imdb", x, [f"w{i}" for i in range(9)], layer=layer, attribution_steps=8)
    expected = expected_gates(model, x, layer)
    fig = draw_gates(trace)
    images = [ax.images[0].get_array() for ax in fig.axes if ax.images]  # attribution strip, then the four panels
    assert len(images) == 5
    for name, image in zip(PANELS, images[1:]):
        torch.testing.assert_close(getattr(trace, name), expected[name], rtol=0, atol=1e-6)
        np.testing.assert_allclose(np.asarray(image), expected[name].T.numpy(), atol=1e-6)  # (units, time) as drawn
    np.testing.assert_allclose(np.asarray(images[0])[0], trace.attribution.numpy(), atol=1e-6)
    torch.testing.assert_close(trace.hidden, expected["hidden"], rtol=0, atol=1e-6)
    if layer == 1:  # the traced layer's outputs are what the model's (fast) encoder computes
        with torch.no_grad():
            fast = model.encoder.encode(x.unsqueeze(0), torch.tensor([9]), input_layer=model.inputs["imdb"])[0]
        torch.testing.assert_close(trace.hidden, fast, rtol=0, atol=1e-5)


def test_a_chunked_model_is_traced_chunk_by_chunk_as_it_encodes():
    torch.manual_seed(0)
    model = SeqModel(TOKENS, embed_dim=6, hidden_size=5, chunk_size=4, pooling="max").eval()
    x = torch.randint(2, 30, (9,))
    trace = trace_input(model, "imdb", x, [f"w{i}" for i in range(9)], attribution_steps=0)
    with torch.no_grad():  # each chunk on its own: the state starts afresh at steps 4 and 8, the reverse direction at each chunk's end
        chunks = [
            model.encoder.encode(x[a:b].unsqueeze(0), torch.tensor([b - a]), input_layer=model.inputs["imdb"])[0] for a, b in ((0, 4), (4, 8), (8, 9))
        ]
        whole = model.encoder.encode(x.unsqueeze(0), torch.tensor([9]), input_layer=model.inputs["imdb"])[0]
    torch.testing.assert_close(trace.hidden, torch.cat(chunks), rtol=0, atol=1e-6)
    assert not torch.allclose(trace.hidden, whole, atol=1e-3)  # what an unchunked pass would have drawn
    torch.testing.assert_close(trace.hidden.amax(0), model.encoder(x.unsqueeze(0), torch.tensor([9]), model.inputs["imdb"])[0].detach())
    with pytest.raises(ValueError, match="0 \\(no attributions\\) or more; got -1"):
        trace_input(model, "imdb", x, [f"w{i}" for i in range(9)], attribution_steps=-1)


def test_an_ensemble_is_explained_through_member_0_and_says_so():
    torch.manual_seed(0)
    model = SeqModel(TOKENS, embed_dim=6, hidden_size=5, members=2).eval()
    x = torch.randint(2, 30, (9,))
    trace = trace_input(model, "imdb", x, [f"w{i}" for i in range(9)], attribution_steps=0)
    with torch.no_grad():
        first = model(x.unsqueeze(0), torch.tensor([9]), "imdb", member=0).softmax(-1)[0]
    torch.testing.assert_close(trace.probs, first)
    torch.testing.assert_close(trace.forget, expected_gates(model, x, 0)["forget"], rtol=0, atol=1e-6)
    assert "member 0 of 2 predicted" in draw_gates(trace)._suptitle.get_text()


def test_integrated_gradients_add_up_to_the_logit_difference():
    torch.manual_seed(1)
    model = SeqModel(TOKENS, embed_dim=8, hidden_size=6, pooling="mean").eval()
    x = torch.randint(2, 30, (12,))
    attribution = integrated_gradients(model, "imdb", x, target=1, steps=64)
    with torch.no_grad():
        emb = model.inputs["imdb"](x.unsqueeze(0))
        lengths = torch.tensor([12])
        logit = model.heads["imdb"](model.encoder(emb, lengths, input_layer=torch.nn.Identity()))[0, 1]
        baseline = model.heads["imdb"](model.encoder(torch.zeros_like(emb), lengths, input_layer=torch.nn.Identity()))[0, 1]
    assert attribution.shape == (12,)
    assert float(attribution.sum()) == pytest.approx(float(logit - baseline), abs=2e-3)


def test_encode_input_text_marks_unknown_words_and_dna_kmers():
    pre = {"vocab": ["<pad>", "<unk>", "a", "great", "film"], "labels": ["n", "p"], "lowercase": True, "max_length": 3, "truncation": "head"}
    x, tokens = encode_input("TextDataModule", pre, "A great zorblax film")
    assert x.tolist() == [2, 3, 1] and tokens == ["a", "great", "zorblax (<unk>)"]
    x, tokens = encode_input("DnaDataModule", {"labels": ["EI", "N"], "encoding": "kmer", "k": 3, "stride": 1}, "ACGTN")
    assert len(x) == 3 and tokens == ["ACG", "CGT", "GTN"] and int(x[2]) == 1  # ambiguous k-mer
    cut = {"labels": ["EI", "N"], "encoding": "base", "k": 1, "stride": 1, "max_length": 4, "truncation": "tail"}
    x, tokens = encode_input("DnaDataModule", cut, "AAAACGTA")  # cut as predict cuts it
    assert tokens == list("CGTA") and x.tolist() == encode_input("DnaDataModule", {**cut, "max_length": None}, "CGTA")[0].tolist()
    with pytest.raises(ValueError, match="empty"):
        encode_input("TextDataModule", pre, "   ")
    with pytest.raises(ValueError, match="holds no words"):  # as predict refuses it
        encode_input("TextDataModule", pre, "<br />")
    with pytest.raises(ValueError, match="' ' at position 5"):  # a space inside DNA: a wrong symbol, as in predict
        encode_input("DnaDataModule", cut, "ACGT ACGT")


def test_explain_command_writes_the_png_for_a_trained_checkpoint(reviews_csv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cli = main(["fit", *tiny_text_args(reviews_csv, "--trainer.max_epochs=1")])
    best = cli.trainer.checkpoint_callback.best_model_path
    out = tmp_path / "figs" / "gates.png"
    text = make_reviews(1, seed=5)[0][0]
    main(["explain", f"--ckpt_path={best}", "--input", text, f"--output={out}"])
    data = out.read_bytes()
    assert data.startswith(PNG) and len(data) > 20000
    assert "predicted" in capsys.readouterr().out

    trace = explain(best, text)
    assert len(trace.tokens) == trace.forget.shape[0] == trace.cell.shape[0]
    model = SeqModel.load_from_checkpoint(best, map_location="cpu").eval()
    x, _ = encode_input("TextDataModule", cli.datamodule.preprocessing, text)
    with torch.no_grad():
        probs = model(x.unsqueeze(0), torch.tensor([len(x)]), "imdb").softmax(-1)[0]
    torch.testing.assert_close(trace.probs, probs)

    with pytest.raises(SystemExit) as exit_info:
        main(["explain", f"--ckpt_path={best}", "--input", "fine", "--layer=3", f"--output={tmp_path / 'no.png'}"])
    assert exit_info.value.code == 2 and "layers 0 to 0" in capsys.readouterr().err
    assert not (tmp_path / "no.png").exists()


def test_log_figure_to_wandb_only_with_an_active_logger(tmp_path, monkeypatch):
    import lightning as L
    import wandb

    from seqlab.loggers import WandbLogger, read_offline_run

    for var in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))
    torch.manual_seed(0)
    model = SeqModel(TOKENS, embed_dim=4, hidden_size=3).eval()
    fig = draw_gates(trace_input(model, "imdb", torch.tensor([3, 4, 5]), ["a", "b", "c"], attribution_steps=4))
    assert not log_figure_to_wandb(L.Trainer(logger=False, default_root_dir=tmp_path), "gates", fig)

    logger = WandbLogger(mode="offline", save_dir=str(tmp_path / "wb"))
    assert log_figure_to_wandb(L.Trainer(logger=logger, default_root_dir=tmp_path), "val/gates", fig)
    run_dir = Path(logger.experiment.dir).parent
    wandb.finish()
    run = read_offline_run(run_dir, wait=60)
    assert run["finished"]
    rows = [r for r in run["history"] if "val/gates/_type" in r]
    assert len(rows) == 1 and rows[0]["val/gates/_type"] == "image-file"
    assert (run_dir / "files" / rows[0]["val/gates/path"]).read_bytes().startswith(PNG)


def test_explain_of_a_signal_task_points_to_the_figure_a_fit_draws():
    from seqlab.errors import SeqlabError

    with pytest.raises(SeqlabError, match=r"this task's data is ActivityDataModule\. .* runs/<task>/plots/gates_<task>\.png"):
        encode_input("ActivityDataModule", {}, "0.1 0.2")
