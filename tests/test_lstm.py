"""The reference LSTM equals torch.nn.LSTM: outputs, final state and gradients."""

from __future__ import annotations

import pytest
import torch

from seqlab.nn import ReferenceLSTM, lstm_cell, reverse_padded

SHAPES = [
    # input, hidden, layers, bidirectional, batch_first, batch, time
    (3, 4, 1, False, True, 2, 5),
    (5, 7, 2, False, False, 3, 6),
    (4, 6, 1, True, True, 4, 3),
    (6, 5, 3, True, False, 2, 7),
    (1, 3, 2, True, True, 1, 1),
]
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


def twins(I, H, L, bi, bf, dtype, seed=0):
    torch.manual_seed(seed)
    ref = torch.nn.LSTM(I, H, L, batch_first=bf, bidirectional=bi).to(dtype)
    mine = ReferenceLSTM(I, H, L, batch_first=bf, bidirectional=bi).to(dtype)
    mine.load_state_dict(ref.state_dict())
    return ref, mine


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_state", [False, True])
def test_reference_matches_nn_lstm(shape, dtype, with_state):
    I, H, L, bi, bf, B, T = shape
    ref, mine = twins(I, H, L, bi, bf, dtype)
    x = torch.randn((B, T, I) if bf else (T, B, I), dtype=dtype)
    D = 2 if bi else 1
    hx = (torch.randn(L * D, B, H, dtype=dtype), torch.randn(L * D, B, H, dtype=dtype)) if with_state else None
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out1, (h1, c1) = ref(x1, hx)
    out2, (h2, c2) = mine(x2, hx)
    tol = TOLERANCE[dtype]
    for a, b in [(out1, out2), (h1, h2), (c1, c2)]:
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    weights = torch.randn_like(out1)
    ((out1 * weights).sum() + h1.sum() + c1.pow(2).sum()).backward()
    ((out2 * weights).sum() + h2.sum() + c2.pow(2).sum()).backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=tol, atol=tol)
    grads = dict(mine.named_parameters())
    for name, p in ref.named_parameters():
        torch.testing.assert_close(p.grad, grads[name].grad, rtol=tol, atol=tol, msg=name)


@pytest.mark.parametrize("bi", [False, True])
def test_reference_with_lengths_matches_packed(bi):
    ref, mine = twins(3, 5, 2, bi, True, torch.float64, seed=1)
    lengths = torch.tensor([6, 2, 4, 1])
    x = torch.randn(4, 6, 3, dtype=torch.float64)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out_p, (h_p, c_p) = ref(packed)
    out_p, _ = torch.nn.utils.rnn.pad_packed_sequence(out_p, batch_first=True)
    out_m, (h_m, c_m) = mine(x, lengths=lengths)
    torch.testing.assert_close(out_m, out_p, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(h_m, h_p, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(c_m, c_p, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("bf", [False, True])
def test_reference_takes_one_unbatched_sequence_like_nn_lstm(bf):
    ref, mine = twins(3, 4, 2, True, bf, torch.float64, seed=2)
    x = torch.randn(6, 3, dtype=torch.float64)  # (T, I): no batch dimension
    hx = (torch.randn(4, 4, dtype=torch.float64), torch.randn(4, 4, dtype=torch.float64))  # (layers * dirs, H)
    for state in (None, hx):
        out_r, (h_r, c_r) = ref(x, state)
        out_m, (h_m, c_m) = mine(x, state)
        assert out_m.shape == out_r.shape == (6, 8) and h_m.shape == h_r.shape == (4, 4)
        for a, b in [(out_m, out_r), (h_m, h_r), (c_m, c_r)]:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="not shape"):
        mine(torch.randn(2, 3, 4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"ReferenceLSTM\(input_size=3\) got inputs of 5 features"):
        mine(torch.randn(6, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"unbatched sequence, hx .* must each have shape \(4, 4\) \(layers \* directions, hidden\); got \[\(2, 4\)"):
        mine(x, (hx[0][:2], hx[1][:2]))
    _, _, steps = mine(x, hx, return_gates=True)  # gates without a batch dimension, as the output: those of a batch of one
    _, _, batched = mine(x.unsqueeze(0 if bf else 1), (hx[0].unsqueeze(1), hx[1].unsqueeze(1)), return_gates=True)
    assert sorted(steps) == sorted(batched) and all(len(steps[k]) == 6 for k in steps)
    for key in steps:
        for (gates, c_t), (gates_b, c_b) in zip(steps[key], batched[key]):
            assert c_t.shape == (4,) and all(g.shape == (4,) for g in gates)
            torch.testing.assert_close(c_t, c_b[0])
            torch.testing.assert_close(torch.stack(gates), torch.stack(gates_b)[:, 0])
    with pytest.raises(ValueError, match=r"lengths must hold one length per sequence, shape \(1,\); got shape \(2,\)"):
        mine(x, lengths=torch.tensor([6, 4]))  # one sequence takes one length
    torch.testing.assert_close(mine(x, lengths=torch.tensor(4))[0][:4], mine(x[:4])[0])  # (a 0-dim length is one too)


def test_cell_follows_the_gate_equations():
    torch.manual_seed(0)
    I, H = 3, 4
    x, h, c = torch.randn(2, I), torch.randn(2, H), torch.randn(2, H)
    w_ih, w_hh, b_ih, b_hh = torch.randn(4 * H, I), torch.randn(4 * H, H), torch.randn(4 * H), torch.randn(4 * H)
    h_new, c_new, gates = lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh)
    W = torch.cat([w_hh, w_ih], 1)
    W_i, W_f, W_g, W_o = W.chunk(4)
    b_i, b_f, b_g, b_o = (b_ih + b_hh).chunk(4)
    hx = torch.cat([h, x], 1)
    f = torch.sigmoid(hx @ W_f.T + b_f)
    i = torch.sigmoid(hx @ W_i.T + b_i)
    g = torch.tanh(hx @ W_g.T + b_g)
    o = torch.sigmoid(hx @ W_o.T + b_o)
    torch.testing.assert_close(gates.forget, f)
    torch.testing.assert_close(gates.input, i)
    torch.testing.assert_close(gates.output, o)
    torch.testing.assert_close(c_new, f * c + i * g)
    torch.testing.assert_close(h_new, o * torch.tanh(f * c + i * g))


def test_returned_gates_and_cells_rebuild_every_step():
    """return_gates: each step's (Gates, c_t) gives c_t = f c_{t-1} + i g and h_t = o tanh(c_t),
    the outputs of both directions, and the final states."""
    torch.manual_seed(0)
    lstm = ReferenceLSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    output, (h_n, c_n), steps = lstm(x, return_gates=True)
    assert sorted(steps) == [(0, 0), (0, 1), (1, 0), (1, 1)] and all(len(s) == 5 for s in steps.values())
    for direction in (0, 1):
        c = torch.zeros(2, 4, dtype=torch.float64)
        for t, (g, c_t) in enumerate(steps[(1, direction)]):  # the last layer, in the order of the run
            c = g.forget * c + g.input * g.candidate
            torch.testing.assert_close(c_t, c, rtol=1e-12, atol=1e-12)
            step = t if direction == 0 else 4 - t  # the reverse direction runs from the last step
            torch.testing.assert_close(output[:, step, 4 * direction : 4 * direction + 4], g.output * torch.tanh(c), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(c_n[2 + direction], c, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(h_n[2 + direction], g.output * torch.tanh(c), rtol=1e-12, atol=1e-12)
    assert len(lstm(x)) == 2  # without return_gates: output, (h_n, c_n) as nn.LSTM


def test_reverse_padded_flips_within_length():
    x = torch.arange(12.0).view(3, 4)
    lengths = torch.tensor([4, 2, 1])
    got = reverse_padded(x.unsqueeze(-1), lengths).squeeze(-1)
    assert got.tolist() == [[3, 2, 1, 0], [5, 4, 6, 7], [8, 9, 10, 11]]
    assert torch.equal(reverse_padded(reverse_padded(x.unsqueeze(-1), lengths), lengths).squeeze(-1), x)
