"""Reference LSTM written from the gate equations, and helpers for padded batches.

The equations (W acts on the concatenation [h_{t-1}, x_t]):

    f_t = sigmoid(W_f [h_{t-1}, x_t] + b_f)          forget gate
    i_t = sigmoid(W_i [h_{t-1}, x_t] + b_i)          input gate
    g_t = tanh(W_C [h_{t-1}, x_t] + b_C)             candidate cell
    c_t = f_t * c_{t-1} + i_t * g_t                  cell update
    o_t = sigmoid(W_o [h_{t-1}, x_t] + b_o)          output gate
    h_t = o_t * tanh(c_t)

Parameters are stored with the names and gate order (i, f, g, o) of ``torch.nn.LSTM``, so the
weights of one load into the other with ``load_state_dict``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from seqlab.errors import SeqlabError


class Gates(NamedTuple):
    """Gate activations of one step, each (B, H)."""

    input: Tensor
    forget: Tensor
    candidate: Tensor
    output: Tensor


def lstm_cell(x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None) -> tuple[Tensor, Tensor, Gates]:
    """One LSTM step: x (B, I), h and c (B, H) -> new h, new c and the gates."""
    weight = torch.cat([w_hh, w_ih], dim=1)  # (4H, H + I): W acting on [h_{t-1}, x_t]
    z = torch.cat([h, x], dim=1) @ weight.T  # (B, 4H)
    if b_ih is not None:
        z = z + b_ih + b_hh
    z_i, z_f, z_g, z_o = z.chunk(4, dim=1)  # nn.LSTM's gate order
    f = torch.sigmoid(z_f)
    i = torch.sigmoid(z_i)
    g = torch.tanh(z_g)
    c = f * c + i * g
    o = torch.sigmoid(z_o)
    h = o * torch.tanh(c)
    return h, c, Gates(i, f, g, o)


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of a right-padded batch (B, T, ...) within its own length.

    Padding stays at the end, so a forward-only LSTM run on the result is the reverse direction
    of a bidirectional LSTM and never reads padding before a real step.
    """
    if lengths is None:
        return x.flip(1)
    T = x.size(1)
    steps = torch.arange(T, device=x.device).unsqueeze(0)  # (1, T)
    lengths = lengths.to(x.device).unsqueeze(1)  # (B, 1)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)  # (B, T)
    index = index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


def run_reference_layer(
    lstm: nn.Module,
    suffix: str,
    x: Tensor,
    hx: tuple[Tensor, Tensor] | None,
    lengths: Tensor | None,
    return_gates: bool = False,
) -> tuple[Tensor, tuple[Tensor, Tensor], list[tuple[Gates, Tensor]]]:
    """Run one direction of one layer step by step, with the weights ``*{suffix}`` of ``lstm``.

    x is (B, T, I) batch-first. With ``lengths``, the state stops changing after a sequence's
    last step and its outputs past that step are zero, as with a packed sequence. Returns the
    outputs (B, T, H), the final (h, c), and with ``return_gates`` each step's ``(Gates, c_t)``
    (else an empty list; past a sequence's end these are computed on its padding).
    """
    B, T, _ = x.shape
    H = lstm.hidden_size
    w_ih = getattr(lstm, f"weight_ih{suffix}")
    w_hh = getattr(lstm, f"weight_hh{suffix}")
    b_ih = getattr(lstm, f"bias_ih{suffix}", None)
    b_hh = getattr(lstm, f"bias_hh{suffix}", None)
    if hx is None:
        h = x.new_zeros(B, H)
        c = x.new_zeros(B, H)
    else:
        h, c = hx
    outputs, gates = [], []
    for t in range(T):
        h_new, c_new, g = lstm_cell(x[:, t], h, c, w_ih, w_hh, b_ih, b_hh)
        if lengths is not None:
            valid = (t < lengths).to(x.device).unsqueeze(1)  # (B, 1)
            h = torch.where(valid, h_new, h)
            c = torch.where(valid, c_new, c)
            outputs.append(torch.where(valid, h_new, torch.zeros_like(h_new)))
        else:
            h, c = h_new, c_new
            outputs.append(h_new)
        if return_gates:
            gates.append((g, c_new))
    return torch.stack(outputs, dim=1), (h, c), gates


def check_lengths(lengths: Any, B: int, T: int, device: torch.device) -> Tensor:
    """(B,) sequence lengths as a long tensor on ``device`` (all T when ``None``), each checked to
    lie in 1..T: an empty sequence has nothing to pool, and a length past T reads other memory."""
    if lengths is None:
        if B and not T:
            raise SeqlabError("The batch has 0 steps: every sequence needs at least one (drop empty sequences).")
        return torch.full((B,), T, dtype=torch.long, device=device)
    lengths = torch.as_tensor(lengths)  # on its own device until checked
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise SeqlabError(f"lengths must be integers (a long tensor), not {lengths.dtype}.")
    if lengths.shape != (B,):
        raise SeqlabError(f"lengths must hold one length per sequence, shape ({B},); got shape {tuple(lengths.shape)}.")
    # Values are checked where that costs no wait on an accelerator (lengths on the CPU, as a
    # DataLoader gives them, even for a model on a GPU); a graph (torch.jit.trace, torch.export,
    # torch.compile) keeps no Python check, and reading a value would break it (fullgraph=True).
    if B and lengths.device.type == "cpu" and not torch.jit.is_tracing() and not torch.compiler.is_compiling():
        low, high = (int(v) for v in torch.aminmax(lengths))
        if low < 1 or high > T:
            raise SeqlabError(
                f"Each length must be between 1 and the batch's padded length {T}; got lengths from {low} to {high}. "
                "Drop empty sequences, and pad the batch to its longest sequence."
            )
    return lengths.to(device=device, dtype=torch.long)


class ReferenceLSTM(nn.Module):
    """A readable stand-in for ``torch.nn.LSTM`` built on :func:`lstm_cell`.

    The same core constructor arguments (not ``proj_size``, ``device`` or ``dtype``), parameter
    names and return values, for tensor inputs (not a ``PackedSequence``); ``forward`` also takes
    ``lengths`` (B,) for right-padded batches, with the semantics of a packed sequence: each in
    1..T, else a ``SeqlabError``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = dropout
        self.bidirectional = bidirectional
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for suffix in self._suffixes(layer):
                self.register_parameter(f"weight_ih{suffix}", nn.Parameter(torch.empty(4 * hidden_size, layer_input)))
                self.register_parameter(f"weight_hh{suffix}", nn.Parameter(torch.empty(4 * hidden_size, hidden_size)))
                if bias:
                    self.register_parameter(f"bias_ih{suffix}", nn.Parameter(torch.empty(4 * hidden_size)))
                    self.register_parameter(f"bias_hh{suffix}", nn.Parameter(torch.empty(4 * hidden_size)))
        self.reset_parameters()

    def _suffixes(self, layer: int) -> list[str]:
        return [f"_l{layer}"] + ([f"_l{layer}_reverse"] if self.bidirectional else [])

    def reset_parameters(self) -> None:
        bound = self.hidden_size**-0.5
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _check_hx(self, hx: tuple[Tensor, Tensor] | None, batch: int | None) -> None:
        """(h_0, c_0) must each be (layers * directions, batch, hidden), or (layers * directions, hidden)
        for one unbatched sequence (``batch`` None)."""
        if hx is None:
            return
        layers = self.num_layers * (2 if self.bidirectional else 1)
        want = (layers, self.hidden_size) if batch is None else (layers, batch, self.hidden_size)
        if not all(tuple(t.shape) == want for t in hx):
            got = [tuple(t.shape) for t in hx]
            dims = "(layers * directions, hidden)" if batch is None else "(layers * directions, batch, hidden)"
            lead = "For one unbatched sequence, hx" if batch is None else "hx"
            raise SeqlabError(f"{lead} (h_0, c_0) must each have shape {want} {dims}; got {got}.")

    def forward(
        self,
        x: Tensor,
        hx: tuple[Tensor, Tensor] | None = None,
        lengths: Tensor | None = None,
        return_gates: bool = False,
    ):
        """x: (B, T, I) if batch_first else (T, B, I), or one unbatched (T, I) sequence; hx: (h0, c0),
        each (layers * dirs, B, H), or (layers * dirs, H) unbatched.

        Returns ``output, (h_n, c_n)`` like nn.LSTM, plus a dict ``{(layer, direction): [(Gates, c_t)]}``
        when ``return_gates`` is set: each step's gates and new cell state (direction 0 is forward,
        1 is reverse, in time order of the run).
        """
        if x.dim() == 2:  # one sequence, as nn.LSTM takes it: run it as a batch of one
            self._check_hx(hx, None)
            hx = None if hx is None else (hx[0].unsqueeze(1), hx[1].unsqueeze(1))
            batch_dim = 0 if self.batch_first else 1
            lengths = None if lengths is None else torch.as_tensor(lengths).reshape(-1)  # one length; more: the named error
            out = self.forward(x.unsqueeze(batch_dim), hx, lengths, return_gates)
            output, (h, c) = out[0].squeeze(batch_dim), out[1]
            if not return_gates:
                return output, (h.squeeze(1), c.squeeze(1))
            gates = {key: [(Gates(*(g.squeeze(0) for g in step)), c_t.squeeze(0)) for step, c_t in steps] for key, steps in out[2].items()}
            return output, (h.squeeze(1), c.squeeze(1)), gates  # each step's gates and cell (H,), as the output has no batch
        if x.dim() != 3:
            raise SeqlabError(f"ReferenceLSTM takes (B, T, I), (T, B, I) or (T, I) input, not shape {tuple(x.shape)}.")
        if not self.batch_first:
            x = x.transpose(0, 1)  # (B, T, I)
        if lengths is not None:
            lengths = check_lengths(lengths, *x.shape[:2], x.device)
        if x.size(2) != self.input_size:
            raise SeqlabError(f"ReferenceLSTM(input_size={self.input_size}) got inputs of {x.size(2)} features (shape {tuple(x.shape)}).")
        self._check_hx(hx, x.size(0))
        h_n, c_n, all_gates = [], [], {}
        for layer in range(self.num_layers):
            outs = []
            for direction, suffix in enumerate(self._suffixes(layer)):
                k = layer * len(self._suffixes(layer)) + direction
                state = None if hx is None else (hx[0][k], hx[1][k])
                inp = x if direction == 0 else reverse_padded(x, lengths)
                out, (h, c), gates = run_reference_layer(self, suffix, inp, state, lengths, return_gates)
                outs.append(out if direction == 0 else reverse_padded(out, lengths))
                h_n.append(h)
                c_n.append(c)
                all_gates[(layer, direction)] = gates
            x = torch.cat(outs, dim=2)  # (B, T, H * dirs)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = nn.functional.dropout(x, self.dropout, training=True)
        output = x if self.batch_first else x.transpose(0, 1)
        state = (torch.stack(h_n), torch.stack(c_n))
        if return_gates:
            return output, state, all_gates
        return output, state
