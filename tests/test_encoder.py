"""LSTMEncoder: padding never leaks, fast and reference paths agree, works in plain torch."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from seqlab.errors import SeqlabError
from seqlab.nn import LSTMEncoder, ReferenceLSTM, SequenceClassificationHead
from seqlab.nn.encoder import MaskedBatchNorm

POOLINGS = ["last", "mean", "max", "mean_max", "attention"]


def encoder(pooling="last", bidirectional=True, num_layers=2, impl="fast", **kw):
    torch.manual_seed(0)
    return LSTMEncoder(6, 5, num_layers, bidirectional, pooling=pooling, impl=impl, **kw).double().eval()


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_does_not_change_the_result(pooling, bidirectional):
    enc = encoder(pooling, bidirectional, vocab_size=30)
    torch.manual_seed(1)
    seqs = [torch.randint(1, 30, (n,)) for n in (7, 3, 5, 1)]
    batch = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)
    lengths = torch.tensor([len(s) for s in seqs])
    # Garbage in the padded positions must not matter either.
    noisy = batch.clone()
    noisy[batch == 0] = 29
    together = enc(noisy, lengths)
    for i, s in enumerate(seqs):
        alone = enc(s.unsqueeze(0), torch.tensor([len(s)]))
        torch.testing.assert_close(together[i : i + 1], alone, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("conv_kernel,fcn_width", [(0, 0), (3, 0), (0, 4)])
def test_nan_in_the_padding_reaches_no_output_and_no_gradient(pooling, conv_kernel, fcn_width):
    enc = encoder(pooling, True, feature_dim=3, conv_kernel=conv_kernel, fcn_width=fcn_width).train()
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    lengths = torch.tensor([5, 3])
    clean = enc(x, lengths)
    x[1, 3:] = float("nan")  # past the second sequence's end only
    out = enc(x, lengths)
    torch.testing.assert_close(out, clean, rtol=1e-12, atol=1e-12)
    out.sum().backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in enc.parameters())


@pytest.mark.parametrize(
    "lengths,message",
    [
        (torch.tensor([5, 0]), "between 1 and the batch's padded length 5; got lengths from 0"),
        (torch.tensor([7, 2]), "got lengths from 2 to 7"),
        (torch.tensor([5.0, 3.0]), "must be integers"),
        (torch.tensor([5]), r"one length per sequence, shape \(2,\)"),
    ],
)
def test_bad_lengths_are_refused_by_name(lengths, message):
    for pooling in ("last", "mean"):
        with pytest.raises(ValueError, match=message):
            encoder(pooling, True, feature_dim=3)(torch.randn(2, 5, 3, dtype=torch.float64), lengths)
    for bidirectional in (False, True):  # the reference LSTM on its own checks them too
        with pytest.raises(ValueError, match=message):
            ReferenceLSTM(3, 4, bidirectional=bidirectional, batch_first=True)(torch.randn(2, 5, 3), lengths=lengths)


def test_lengths_may_be_a_list():
    enc = encoder("mean", True, feature_dim=3)
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    torch.testing.assert_close(enc(x, [5, 3]), enc(x, torch.tensor([5, 3])))


@pytest.mark.parametrize("conv_kernel,conv_layers", [(3, 1), (5, 2)])
def test_conv_front_end_sees_zeros_past_each_sequence_whatever_the_padding(conv_kernel, conv_layers):
    enc = encoder("max", True, feature_dim=3, conv_kernel=conv_kernel, conv_layers=conv_layers)
    torch.manual_seed(1)
    seqs = [torch.randn(n, 3, dtype=torch.float64) for n in (8, 2, 5, 1)]
    batch = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)
    lengths = torch.tensor([len(s) for s in seqs])
    batch[1, 2:] = 7.0  # garbage in the padding must not reach the real steps through the convolution
    together = enc(batch, lengths)
    for i, s in enumerate(seqs):
        alone = enc(s.unsqueeze(0), torch.tensor([len(s)]))
        torch.testing.assert_close(together[i : i + 1], alone, rtol=1e-10, atol=1e-10)
    # and it is a real layer: h + gelu(conv(h)) by hand, for the first sequence
    h = enc.input(seqs[0])  # (T, E)
    for conv in enc.convs:
        h = h + torch.nn.functional.gelu(torch.nn.functional.conv1d(h.T.unsqueeze(0), conv.weight, conv.bias, padding=conv_kernel // 2)[0].T)
    torch.testing.assert_close(enc.front(enc.input(seqs[0]).unsqueeze(0), torch.tensor([8]))[0], h)
    out = enc(batch, lengths)
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for conv in enc.convs for p in conv.parameters())


def test_conv_kernel_must_be_odd():
    with pytest.raises(ValueError, match="odd"):
        LSTMEncoder(4, 4, conv_kernel=4)
    with pytest.raises(ValueError, match="conv_layers must be at least 1"):
        LSTMEncoder(4, 4, conv_kernel=3, conv_layers=0)


def test_masked_batch_norm_is_batch_norm_over_the_real_steps():
    torch.manual_seed(0)
    ours, torchs = MaskedBatchNorm(4).double(), torch.nn.BatchNorm1d(4).double()
    with torch.no_grad():
        ours.weight.uniform_(0.5, 2), ours.bias.uniform_(-1, 1)
        torchs.weight.copy_(ours.weight), torchs.bias.copy_(ours.bias)
    x = torch.randn(3, 4, 6, dtype=torch.float64) * 3 + 2  # (B, C, T)
    lengths = torch.tensor([6, 2, 4])
    mask = (torch.arange(6) < lengths.unsqueeze(1)).unsqueeze(1).double()  # (B, 1, T)
    x_padded = torch.where(mask.bool(), x, 100.0)  # padding far off: it would move any statistic it entered
    real = torch.cat([x[b, :, :n] for b, n in enumerate(lengths)], dim=1).unsqueeze(0)  # (1, C, 12): real steps only
    tight = {"rtol": 1e-12, "atol": 1e-12}  # float64 is kept, not rounded to float32
    for _ in range(2):  # training: the batch's statistics and the running averages, as BatchNorm1d on the real steps
        out, expected = ours(x_padded, mask), torchs(real)
        got = torch.cat([out[b, :, :n] for b, n in enumerate(lengths)], dim=1).unsqueeze(0)
        torch.testing.assert_close(got, expected, **tight)
    torch.testing.assert_close(ours.running_mean, torchs.running_mean, **tight)
    torch.testing.assert_close(ours.running_var, torchs.running_var, **tight)
    ours.eval(), torchs.eval()
    torch.testing.assert_close(ours(x, torch.ones(3, 1, 6, dtype=torch.float64)), torchs(x), **tight)  # evaluation: the running averages


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_masked_batch_norm_counts_and_sums_wide_in_half_precision(dtype):
    """72 x 1000 real steps: a float16 count would overflow (65,504) and a bfloat16 one round."""
    torch.manual_seed(0)
    x = torch.randn(72, 2, 1001) * 0.1 + 5.0
    mask = torch.ones(72, 1, 1001)
    wide = MaskedBatchNorm(2)
    expected = wide(x, mask)
    half = MaskedBatchNorm(2)
    out = half(x.to(dtype), mask.to(dtype))  # activations and mask as autocast gives them
    assert out.dtype == dtype and torch.isfinite(half.running_var).all()
    torch.testing.assert_close(half.running_mean, wide.running_mean, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(out.float().mean((0, 2)), expected.mean((0, 2)), rtol=0, atol=0.02)
    weights = MaskedBatchNorm(2).to(dtype)  # the module itself in half precision (precision="bf16-true")
    assert weights(x.to(dtype), mask.to(dtype)).dtype == dtype and weights.running_mean.dtype == dtype
    assert torch.isfinite(weights.eval()(x.to(dtype), mask.to(dtype))).all()


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's own "same" padding, the reference here
@pytest.mark.parametrize("train", [False, True])
def test_fcn_branch_sees_real_steps_only_and_sits_beside_the_lstm(train):
    enc = encoder("max", True, feature_dim=3, fcn_width=4).train(train)
    assert enc.output_size == 2 * 5 + 4
    torch.manual_seed(1)
    seqs = [torch.randn(n, 3, dtype=torch.float64) for n in (9, 2, 5, 1)]
    batch, lengths = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True), torch.tensor([len(s) for s in seqs])
    longer = torch.cat([batch, torch.full((4, 3, 3), 50.0, dtype=torch.float64)], dim=1)  # more padding, of garbage
    batch[1, 2:] = 7.0
    torch.testing.assert_close(enc(batch, lengths), enc(longer, lengths), rtol=1e-10, atol=1e-10)  # batch statistics too
    enc.eval()
    together = enc(batch, lengths)
    for i, s in enumerate(seqs):
        torch.testing.assert_close(together[i : i + 1], enc(s.unsqueeze(0), torch.tensor([len(s)])), rtol=1e-10, atol=1e-10)
    # and it is the FCN: conv (kernels 8, 5, 3, widths W, 2W, W, "same" length) -> batch norm -> ReLU, then the mean over time
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in enc.fcn.convs] == [(6, 4, 8), (4, 8, 5), (8, 4, 3)]
    h = enc.input(seqs[0]).T.unsqueeze(0)  # (1, E, T)
    for conv, norm in zip(enc.fcn.convs, enc.fcn.norms):
        h = torch.nn.functional.conv1d(h, conv.weight, conv.bias, padding="same")
        h = torch.relu(torch.nn.functional.batch_norm(h, norm.running_mean, norm.running_var, norm.weight, norm.bias, eps=norm.eps))
    torch.testing.assert_close(together[0, 10:], h.mean(2)[0])
    torch.testing.assert_close(together[:, :10], LSTMEncoder.forward(enc, batch, lengths)[:, :10])
    out = enc.train()(batch, lengths)
    out[:, 10:].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.fcn.parameters())


def test_fcn_width_settings_are_checked():
    with pytest.raises(ValueError, match="fcn_width must be at least 1"):
        LSTMEncoder(4, 4, fcn_width=-1)
    with pytest.raises(ValueError, match="does not work with chunk_size"):
        LSTMEncoder(4, 4, pooling="max", fcn_width=8, chunk_size=16)


def test_weight_drop_masks_the_recurrent_weights_in_training_only():
    enc = encoder("last", False, num_layers=1, feature_dim=3, weight_drop=0.5).train()
    lstm = enc.forward_layers[0]
    x, lengths = torch.randn(2, 6, 3, dtype=torch.float64), torch.tensor([6, 6])
    torch.manual_seed(3)
    out = enc(x, lengths)
    torch.manual_seed(3)  # the same draw by hand: dropout of W_hh (scaled by 1 / (1 - p)), the rest as it is
    w_hh = torch.nn.functional.dropout(lstm.weight_hh_l0, 0.5)
    assert (w_hh == 0).any() and (w_hh != 0).any()
    by_hand = torch.nn.LSTM(6, 5, batch_first=True).double()
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            getattr(by_hand, name).copy_(w_hh if name == "weight_hh_l0" else p)
    torch.testing.assert_close(out, by_hand(enc.input(x))[0][:, -1])
    out.sum().backward()
    assert lstm.weight_hh_l0.grad.abs().sum() > 0
    assert ((lstm.weight_hh_l0.grad == 0) == (w_hh == 0)).all()  # a dropped weight gets no gradient
    plain = encoder("last", False, num_layers=1, feature_dim=3)  # same seed, same weights, no weight drop
    torch.testing.assert_close(enc.eval()(x, lengths), plain(x, lengths))  # evaluation uses every weight
    with pytest.raises(ValueError, match=r"weight_drop .* must be in \[0, 1\)"):
        LSTMEncoder(4, 4, weight_drop=1.0)


def test_last_pooling_equals_packed_final_states():
    enc = encoder("last", True, num_layers=2, feature_dim=3)
    ref = torch.nn.LSTM(6, 5, 2, batch_first=True, bidirectional=True).double()
    with torch.no_grad():
        for layer in range(2):
            for suffix, module in [("", enc.forward_layers[layer]), ("_reverse", enc.reverse_layers[layer])]:
                for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(ref, f"{kind}_l{layer}{suffix}").copy_(getattr(module, f"{kind}_l0"))
    x = torch.randn(4, 9, 3, dtype=torch.float64)
    lengths = torch.tensor([9, 4, 1, 6])
    packed = torch.nn.utils.rnn.pack_padded_sequence(enc.input(x), lengths, batch_first=True, enforce_sorted=False)
    _, (h_n, _) = ref(packed)
    expected = torch.cat([h_n[-2], h_n[-1]], dim=1)  # last layer: forward, reverse
    torch.testing.assert_close(enc(x, lengths), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "pooling,extra", [(p, {}) for p in POOLINGS] + [("max", {"conv_kernel": 3}), ("mean", {"fcn_width": 4}), ("max", {"weight_drop": 0.3})]
)
def test_fast_and_reference_paths_agree(pooling, extra):
    fast = encoder(pooling, True, num_layers=2, vocab_size=20, **extra).train("weight_drop" in extra)  # weight drop acts in training
    ref = encoder(pooling, True, num_layers=2, vocab_size=20, impl="reference", **extra).train("weight_drop" in extra)
    ref.load_state_dict(fast.state_dict())
    x = torch.randint(1, 20, (3, 8))
    lengths = torch.tensor([8, 5, 2])
    torch.manual_seed(7)  # the same dropout masks for both
    out_fast = fast(x, lengths)
    torch.manual_seed(7)
    out_ref = ref(x, lengths)
    torch.testing.assert_close(out_fast, out_ref, rtol=1e-10, atol=1e-10)
    out_fast.sum().backward()
    out_ref.sum().backward()
    grads = dict(ref.named_parameters())
    for name, p in fast.named_parameters():
        torch.testing.assert_close(p.grad, grads[name].grad, rtol=1e-9, atol=1e-9, msg=name)


def test_unknown_pooling_names_the_choices():
    with pytest.raises(ValueError, match="last, mean, max, mean_max, attention"):
        LSTMEncoder(4, 4, pooling="median")


def test_mean_max_pooling_is_the_mean_and_the_max_side_by_side():
    both, mean, top = (encoder(p, True, vocab_size=20) for p in ("mean_max", "mean", "max"))  # same seed: same weights
    assert (both.step_size, both.output_size, mean.output_size) == (10, 20, 10)
    x = torch.randint(1, 20, (3, 8))
    lengths = torch.tensor([8, 5, 2])
    torch.testing.assert_close(both(x, lengths), torch.cat([mean(x, lengths), top(x, lengths)], dim=1), rtol=0, atol=0)
    out = both.encode(x, lengths)
    torch.testing.assert_close(both(x, lengths)[1, :10], out[1, :5].mean(0), rtol=1e-12, atol=1e-12)  # real steps only
    torch.testing.assert_close(both(x, lengths)[1, 10:], out[1, :5].amax(0), rtol=0, atol=0)


def test_plain_torch_training_loop_learns():
    """The README example: LSTMEncoder + a head in an ordinary torch loop."""
    torch.manual_seed(0)
    # Label: does token 3 occur in the sequence? Lengths vary, padding is 0.
    seqs = [torch.randint(4, 10, (int(n),)) for n in torch.randint(2, 15, (256,))]
    labels = torch.tensor([i % 2 for i in range(256)])
    for s, y in zip(seqs, labels):
        if y:
            s[torch.randint(0, len(s), (1,))] = 3
    x = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)
    lengths = torch.tensor([len(s) for s in seqs])
    enc = LSTMEncoder(16, 16, bidirectional=True, pooling="max", vocab_size=10)
    head = SequenceClassificationHead(enc.output_size, 2)
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=0.01)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(head(enc(x, lengths)), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    accuracy = (head(enc(x, lengths)).argmax(1) == labels).float().mean()
    assert accuracy > 0.95


def test_backbone_import_is_light():
    code = "import sys, seqlab, seqlab.nn; print(sorted(m for m in ('lightning', 'wandb', 'datasets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_readme_plain_torch_example_runs_with_torch_alone():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"<!-- example: plain-torch -->\n```python\n(.*?)```", readme, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["encoder"](scope["x"], scope["lengths"]).shape == (8, 128)
    assert torch.isfinite(scope["loss"])
    assert all((scope["x"][i, n:] == 0).all() and (scope["x"][i, :n] > 0).all() for i, n in enumerate(scope["lengths"]))
    # as after `pip install --no-deps`: none of the training stack can be imported
    blocked = ("lightning", "pytorch_lightning", "torchmetrics", "wandb", "datasets", "pandas", "matplotlib", "jsonargparse", "rich", "yaml", "numpy")
    guard = f"import sys; sys.modules.update(dict.fromkeys({blocked!r}))\n"
    done = subprocess.run([sys.executable, "-c", guard + code + "\nprint(float(loss) > 0)"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr[-2000:]


@pytest.mark.parametrize("pooling", ["max", "mean"])
def test_chunked_encoding_equals_encoding_chunks_alone(pooling):
    """chunk_size splits a long sequence; the result combines each chunk's own summary."""
    torch.manual_seed(0)
    enc = LSTMEncoder(6, 5, 1, True, pooling=pooling, vocab_size=9, chunk_size=4, chunk_batch=3).double()
    x = torch.randint(1, 9, (2, 10))
    lengths = torch.tensor([10, 6])
    got = enc(x, lengths)
    enc.chunk_size = None
    for row, n in enumerate(lengths.tolist()):
        parts = [x[row, s : min(s + 4, n)] for s in range(0, n, 4)]
        pooled = torch.cat([enc(p.unsqueeze(0), torch.tensor([len(p)])) for p in parts])
        sizes = torch.tensor([len(p) for p in parts], dtype=torch.float64).unsqueeze(1)
        want = pooled.amax(0) if pooling == "max" else (pooled * sizes).sum(0) / sizes.sum()
        torch.testing.assert_close(got[row], want, rtol=1e-10, atol=1e-10)


def test_chunked_gradients_match_without_checkpointing():
    torch.manual_seed(0)
    enc = LSTMEncoder(4, 3, 1, True, pooling="max", vocab_size=9, chunk_size=5, chunk_batch=2).double()
    x, lengths = torch.randint(1, 9, (3, 12)), torch.tensor([12, 7, 3])
    enc(x, lengths).sum().backward()
    grads = {n: p.grad.clone() for n, p in enc.named_parameters()}
    enc.zero_grad()
    with torch.no_grad():
        no_grad_out = enc(x, lengths)
    torch.testing.assert_close(no_grad_out, enc(x, lengths).detach())
    # Same sum computed by hand, chunk by chunk, without checkpointing.
    enc.chunk_size = None
    total = 0
    for row, n in enumerate(lengths.tolist()):
        parts = [x[row, s : min(s + 5, n)] for s in range(0, n, 5)]
        total = total + torch.cat([enc(p.unsqueeze(0), torch.tensor([len(p)])) for p in parts]).amax(0).sum()
    total.backward()
    for n, p in enc.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], rtol=1e-10, atol=1e-10, msg=n)


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_an_empty_batch_gives_an_empty_summary(chunk_size):
    enc = LSTMEncoder(4, 3, pooling="max", vocab_size=9, chunk_size=chunk_size)
    assert enc(torch.zeros(0, 5, dtype=torch.long), torch.zeros(0, dtype=torch.long)).shape == (0, 6)


@pytest.mark.parametrize("chunk_size", [None, 5000])
def test_mean_pooling_in_float16_holds_sequences_longer_than_float16_numbers(chunk_size, monkeypatch):
    """Lengths and sums past 65,504 overflow float16: the mean is taken in float32, chunk weights too."""
    enc = LSTMEncoder(3, 2, pooling="mean_max" if chunk_size is None else "mean", feature_dim=3, chunk_size=chunk_size)
    out = torch.ones(1, 70_000, enc.step_size, dtype=torch.float16)
    lengths = torch.tensor([70_000])
    # What a float16 run's LSTM outputs would be, without running 70,000 steps here:
    monkeypatch.setattr(enc, "_encode", lambda x, ls, layer, start=None: out[: x.size(0), : x.size(1)])
    if chunk_size is None:
        pooled = enc.pool(out, lengths)
    else:  # each chunk's mean, then their length-weighted mean
        pooled = enc(torch.zeros(1, 70_000, 3), lengths)
    assert pooled.dtype == torch.float16 and torch.equal(pooled, torch.ones_like(pooled))


def test_chunking_needs_a_combinable_pooling():
    with pytest.raises(ValueError, match="max or mean"):
        LSTMEncoder(4, 4, pooling="last", chunk_size=10)


def test_position_embedding_adds_a_learned_vector_per_step():
    from seqlab.nn import WithPositions

    layer = WithPositions(torch.nn.Embedding(5, 3), max_positions=4, dim=3)
    x = torch.tensor([[1, 1, 1]])
    out = layer(x)
    torch.testing.assert_close(out[0] - layer.input_layer(x)[0], layer.positions.weight[:3])
    with pytest.raises(SeqlabError, match="longer than the 4 learned positions.*to predict, give inputs of at most"):
        layer(torch.ones(1, 5, dtype=torch.long))
    enc = LSTMEncoder(3, 4, pooling="mean").eval()  # a batch padded past the table: only the real steps must fit
    ids, lengths = torch.tensor([[1, 2, 3, 4, 0, 0], [2, 2, 0, 0, 0, 0]]), torch.tensor([4, 2])
    torch.testing.assert_close(enc(ids, lengths, input_layer=layer), enc(ids[:, :4], lengths, input_layer=layer))
    with pytest.raises(SeqlabError, match="A sequence of 5 steps is longer than the 4 learned positions"):
        enc(torch.ones(1, 6, dtype=torch.long), torch.tensor([5]), input_layer=layer)


class Placed(torch.nn.Module):
    """A WithPositions layer's input layer plus its positions from ``start`` on."""

    def __init__(self, layer: torch.nn.Module, start: int) -> None:
        super().__init__()
        self.layer, self.start = layer, start

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.layer.input_layer(ids) + self.layer.positions.weight[self.start : self.start + ids.size(1)]


@pytest.mark.parametrize("pooling", ["max", "mean"])
def test_chunks_keep_their_learned_positions(pooling):
    """A chunk starting at step s adds positions s, s+1, ...: the same as encoding each chunk
    alone with its slice of the position table."""
    from seqlab.nn import WithPositions

    torch.manual_seed(0)
    layer = WithPositions(torch.nn.Embedding(6, 4), max_positions=12, dim=4)
    enc = LSTMEncoder(4, 5, pooling=pooling, chunk_size=4).eval()
    x, lengths = torch.randint(1, 6, (2, 11)), torch.tensor([11, 6])
    got = enc(x, lengths, input_layer=layer)
    for b in range(2):
        summaries, weights = [], []
        for s in range(0, int(lengths[b]), 4):
            part = x[b : b + 1, s : min(s + 4, int(lengths[b]))]
            placed = Placed(layer, s)  # the chunk with positions s.. added by hand
            summaries.append(enc.pool(enc.encode(part, None, input_layer=placed), None))
            weights.append(part.size(1))
        stacked = torch.cat(summaries)
        want = stacked.amax(0) if pooling == "max" else (stacked * torch.tensor(weights).unsqueeze(1)).sum(0) / sum(weights)
        torch.testing.assert_close(got[b], want)
    with pytest.raises(SeqlabError, match="A sequence of 13 steps is longer than the 12 learned positions"):
        enc(torch.ones(1, 13, dtype=torch.long), None, input_layer=layer)


def test_inputs_and_sizes_of_the_wrong_kind_are_refused_by_name():
    enc = LSTMEncoder(8, hidden_size=4, vocab_size=20)
    for x, message in [
        (torch.randint(1, 20, (7,)), r"takes a batch, \(B, T\) token ids or \(B, T, F\) features; got shape \(7,\).*unsqueeze\(0\)"),
        (torch.zeros(3, 0, dtype=torch.long), "The batch has 0 steps"),
    ]:
        with pytest.raises(SeqlabError, match=message):
            enc(x)
    with pytest.raises(SeqlabError, match=r"\(B, T, D\) outputs to pool; got shape \(5, 8\)"):
        enc.pool(torch.randn(5, 8), None)
    for size in ({"num_layers": 0}, {"chunk_size": 0}, {"chunk_batch": 0}, {"hidden_size": -1}):
        with pytest.raises(SeqlabError, match=rf"sizes must be at least 1.*got \{{'{next(iter(size))}'"):
            LSTMEncoder(8, pooling="max", **size)


@pytest.mark.filterwarnings("ignore:The tensor attributes:UserWarning")  # torch's note on nn.LSTM's flat weights
def test_torch_export_with_lengths_gives_the_eager_outputs():
    torch.manual_seed(0)
    enc = LSTMEncoder(3, hidden_size=4, feature_dim=3, pooling="mean").eval()
    x, lengths = torch.randn(2, 5, 3), torch.tensor([5, 3])
    program = torch.export.export(enc, (x, lengths))  # the value check on lengths stays out of the graph
    torch.testing.assert_close(program.module()(x, lengths), enc(x, lengths))
