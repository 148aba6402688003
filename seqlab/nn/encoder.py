"""LSTMEncoder: input layer, a lengths-aware (bi)LSTM stack and pooling, in plain torch.

Batches are right-padded, batch-first. The forward direction runs ``nn.LSTM`` on the padded
batch as it is: padding comes after every real step, so it never reaches a real output. The
reverse direction runs on each sequence reversed within its own length (``reverse_padded``), so
it too starts at the sequence's last real step. With ``impl="fast"`` both use the fast kernels
(cuDNN / oneDNN) without ``pack_padded_sequence``, whose backward is many times slower on CPU.
Bad settings and inputs raise ``SeqlabError``, a ``ValueError``.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace
from typing import Literal

import torch
import torch.utils.checkpoint
from torch import Tensor, nn

from seqlab.errors import SeqlabError
from seqlab.nn.lstm import check_lengths, reverse_padded, run_reference_layer

Pooling = Literal["last", "mean", "max", "mean_max", "attention"]
POOLINGS = ("last", "mean", "max", "mean_max", "attention")
IMPLS = ("fast", "reference")


def lengths_mask(lengths: Tensor, T: int) -> Tensor:
    """(B,) lengths -> (B, T) bool mask, True on real steps."""
    return torch.arange(T, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def masked_mean(x: Tensor, mask: Tensor, lengths: Tensor, dim: int) -> Tensor:
    """The mean of ``x`` over the real steps along ``dim`` (``mask`` 1/True on them, ``lengths`` (B,)
    of them), summed in at least float32 (float16 holds no length or sum past 65,504), in x's dtype."""
    wide = torch.promote_types(x.dtype, torch.float32)
    return ((x * mask).sum(dim, dtype=wide) / lengths.unsqueeze(1).to(wide)).to(x.dtype)


def make_input_layer(input_size: int, vocab_size: int | None = None, feature_dim: int | None = None, padding_idx: int = 0) -> nn.Module:
    """Token embedding (vocab_size), feature projection (feature_dim), or identity (neither)."""
    if vocab_size is not None and feature_dim is not None:
        raise SeqlabError("Give either vocab_size (token input) or feature_dim (feature input), not both.")
    if vocab_size is not None:
        return nn.Embedding(vocab_size, input_size, padding_idx=padding_idx)
    if feature_dim is not None:
        return nn.Linear(feature_dim, input_size)
    return nn.Identity()


class WithPositions(nn.Module):
    """An input layer plus a learned embedding of the absolute position (for aligned windows,
    where *where* a pattern sits matters, e.g. a splice site at the centre)."""

    def __init__(self, input_layer: nn.Module, max_positions: int, dim: int) -> None:
        super().__init__()
        self.input_layer = input_layer
        self.positions = nn.Embedding(max_positions, dim)

    def forward(self, x: Tensor, start: Tensor | None = None) -> Tensor:
        """x: (B, T) ids or (B, T, F) features -> (B, T, E). ``start`` (B,): the position of each
        row's first step, for chunks of longer sequences (default 0)."""
        T = x.size(1)
        if start is None:
            self.check(T)
            return self.input_layer(x) + self.positions.weight[:T]  # (B, T, E) + (T, E)
        steps = start.unsqueeze(1) + torch.arange(T, device=x.device)  # (B, T)
        last = self.positions.num_embeddings - 1  # padding past a sequence's end may run over: masked later
        return self.input_layer(x) + self.positions(steps.clamp(max=last))

    def check(self, steps: int) -> None:
        if steps > self.positions.num_embeddings:
            raise SeqlabError(
                f"A sequence of {steps} steps is longer than the {self.positions.num_embeddings} learned positions. To train, raise "
                "model.position_embedding or truncate the data (data.max_length); to predict, give inputs of at most that many steps."
            )


def batch_dims(x: Tensor, outputs: bool = False) -> tuple[int, int]:
    """(B, T) of an input batch, (B, T) token ids or (B, T, F) features, or with ``outputs`` of
    (B, T, D) outputs to pool; another rank is a clear error."""
    takes = "(B, T, D) outputs to pool" if outputs else "(B, T) token ids or (B, T, F) features"
    if x.dim() not in ((3,) if outputs else (2, 3)):
        raise SeqlabError(f"LSTMEncoder takes a batch, {takes}; got shape {tuple(x.shape)}. For one sequence add a batch dimension: x.unsqueeze(0).")
    return x.shape[0], x.shape[1]


class MaskedBatchNorm(nn.Module):
    """Batch normalisation of (B, C, T) activations whose statistics come from real steps only:
    padding past a sequence's end takes no part, so a sequence's output does not depend on how
    far its batch is padded. Training normalises with the batch's statistics and keeps running
    averages (momentum 0.1, as ``nn.BatchNorm1d``); evaluation uses those. Batch statistics are
    per process (not synchronised under DDP, which copies rank 0's running averages to the other
    processes at each step). Not a ``_BatchNorm`` subclass, so Lightning's
    ``sync_batchnorm`` leaves it alone instead of swapping in a layer that cannot take a mask."""

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x (B, C, T), mask (B, 1, T) of 1.0 on real steps and 0.0 on padding -> (B, C, T)."""
        wide = torch.promote_types(x.dtype, torch.float32)  # statistics in at least float32 (float64 stays float64)
        h, mask = x.to(wide), mask.to(wide)  # the count too: a float16 mask sums to inf past 65,504 steps, bfloat16 rounds past 256
        if self.training:
            n = mask.sum()
            mean = (h * mask).sum((0, 2)) / n  # (C,)
            var = ((h - mean[:, None]) ** 2 * mask).sum((0, 2)) / n  # biased, as BatchNorm normalises
            with torch.no_grad():
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
                self.running_var.lerp_((var * n / (n - 1).clamp(min=1)).to(self.running_var.dtype), self.momentum)  # unbiased, as BatchNorm keeps
        else:
            mean, var = self.running_mean.to(wide), self.running_var.to(wide)
        scale = self.weight.to(wide) * torch.rsqrt(var + self.eps)  # (C,)
        return ((h - mean[:, None]) * scale[:, None] + self.bias.to(wide)[:, None]).to(x.dtype)


class FCNBranch(nn.Module):
    """The fully convolutional network of Wang et al. (2017), as the parallel branch of LSTM-FCN
    (Karim et al., 2018): three convolutions over time of kernels 8, 5 and 3 and widths W, 2W
    and W, each followed by batch normalisation (``MaskedBatchNorm``) and ReLU, then the mean over
    each sequence's real steps. (B, T, I) inputs -> (B, W). Padded steps are zeroed before every
    convolution, so each sequence sees zeros past its end whatever its batch's padding."""

    KERNELS = (8, 5, 3)

    def __init__(self, input_size: int, width: int) -> None:
        super().__init__()
        widths = [input_size, width, 2 * width, width]
        self.convs = nn.ModuleList(nn.Conv1d(a, b, k) for a, b, k in zip(widths, widths[1:], self.KERNELS))
        self.norms = nn.ModuleList(MaskedBatchNorm(b) for b in widths[1:])

    def forward(self, h: Tensor, lengths: Tensor) -> Tensor:
        mask = lengths_mask(lengths.to(h.device), h.size(1)).unsqueeze(1).to(h.dtype)  # (B, 1, T)
        h = h.transpose(1, 2)  # (B, I, T)
        for conv, norm in zip(self.convs, self.norms):
            k = conv.kernel_size[0]  # "same" length: (k - 1) // 2 zeros before, k // 2 after
            h = nn.functional.relu(norm(conv(nn.functional.pad(h * mask, ((k - 1) // 2, k // 2))), mask))
        return masked_mean(h, mask, lengths, dim=2)  # (B, W)


class LSTMEncoder(nn.Module):
    """Embeds or projects a padded batch, runs a (bi)LSTM stack and pools it to (B, output_size).

    ``input_size`` is the width the LSTM reads: the output of the input layer (token embedding of
    ``vocab_size`` ids, or projection of ``feature_dim`` features; neither: the input as it is).

    ``pooling`` defaults to ``"last"``, the final hidden states as in a plain LSTM classifier
    (both directions' ends when bidirectional); ``SeqModel`` defaults to ``"max"``, which every config
    but BasicMotions (``"mean"``) uses.

    ``output_size`` is the pooled width: the per-step width (``step_size``: hidden_size, twice that
    bidirectional), doubled by ``pooling="mean_max"`` (the mean and the max side by side), plus
    ``fcn_width`` with the parallel convolutional branch (``FCNBranch``, as in LSTM-FCN), which
    reads the input layer's output beside the LSTM and is set beside its pooled vector.

    ``impl="fast"`` uses ``nn.LSTM`` kernels, ``impl="reference"`` the step-by-step cell of
    ``seqlab.nn.lstm`` with the same weights; both give the same numbers.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        pooling: Pooling = "last",
        impl: Literal["fast", "reference"] = "fast",
        vocab_size: int | None = None,
        feature_dim: int | None = None,
        padding_idx: int = 0,
        chunk_size: int | None = None,
        chunk_batch: int = 32,
        float32_lstm: bool = False,
        conv_kernel: int = 0,
        conv_layers: int = 1,
        fcn_width: int = 0,
        weight_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if conv_kernel and (conv_kernel < 0 or conv_kernel % 2 == 0):
            raise SeqlabError(f"conv_kernel must be an odd number of steps (3, 5, 7, ...) or 0 for none, not {conv_kernel}.")
        if conv_kernel and conv_layers < 1:
            raise SeqlabError(f"conv_layers must be at least 1 with a conv_kernel, not {conv_layers}.")
        if not 0 <= weight_drop < 1:
            raise SeqlabError(f"weight_drop is a dropout rate of the recurrent weights and must be in [0, 1); got {weight_drop}.")
        if fcn_width < 0:
            raise SeqlabError(f"fcn_width must be at least 1 for the convolutional branch (128: the FCN of LSTM-FCN) or 0 for none, not {fcn_width}.")
        if fcn_width and chunk_size is not None:
            raise SeqlabError("The convolutional branch (fcn_width) reads whole sequences; it does not work with chunk_size. Set one of them only.")
        if pooling not in POOLINGS:
            raise SeqlabError(f"Unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}.")
        if chunk_size is not None and pooling not in ("max", "mean"):
            raise SeqlabError(f"chunk_size works with max or mean pooling (they combine over chunks), not {pooling!r}.")
        if impl not in IMPLS:
            raise SeqlabError(f"Unknown impl {impl!r}; choose one of {', '.join(IMPLS)}.")
        sizes = {"input_size": input_size, "hidden_size": hidden_size, "num_layers": num_layers, "chunk_batch": chunk_batch}
        small = {k: v for k, v in {**sizes, "chunk_size": 1 if chunk_size is None else chunk_size}.items() if v < 1}
        if small:
            raise SeqlabError(f"LSTMEncoder sizes must be at least 1 (chunk_size: or None for whole sequences); got {small}.")
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.pooling = pooling
        self.impl = impl
        self.chunk_size = chunk_size
        self.chunk_batch = chunk_batch
        self.float32_lstm = float32_lstm
        self.weight_drop = weight_drop
        self.step_size = hidden_size * (2 if bidirectional else 1)  # width of each step's output
        self.output_size = self.step_size * (2 if pooling == "mean_max" else 1) + fcn_width  # width of the pooled vector
        self.input = make_input_layer(input_size, vocab_size, feature_dim, padding_idx)
        # Optional local front end: residual 1-D convolutions over time before the recurrence.
        self.convs = nn.ModuleList(
            nn.Conv1d(input_size, input_size, conv_kernel, padding=conv_kernel // 2) for _ in range(conv_layers if conv_kernel else 0)
        )
        self.input_dropout = nn.Dropout(input_dropout)
        self.dropout = nn.Dropout(dropout)
        sizes = [input_size] + [self.step_size] * (num_layers - 1)
        # One single-layer nn.LSTM per layer and direction, so each direction runs on its own input.
        self.forward_layers = nn.ModuleList(nn.LSTM(n, hidden_size, batch_first=True) for n in sizes)
        self.reverse_layers = nn.ModuleList(nn.LSTM(n, hidden_size, batch_first=True) for n in sizes) if bidirectional else None
        self.attention = nn.Linear(self.step_size, 1) if pooling == "attention" else None
        self.fcn = FCNBranch(input_size, fcn_width) if fcn_width else None

    def _run(self, lstm: nn.LSTM, x: Tensor, lengths: Tensor) -> Tensor:
        device = x.device.type
        autocast = torch.is_autocast_enabled(device)
        if autocast and self.float32_lstm:  # mixed precision around it, the recurrence itself in float32
            with torch.autocast(device, enabled=False):
                return self._run(lstm, x.float(), lengths)
        dropped = None  # DropConnect of the recurrent weights (AWD-LSTM): one mask per batch, training only
        if self.training and self.weight_drop:
            dropped = {"weight_hh_l0": nn.functional.dropout(lstm.weight_hh_l0, self.weight_drop)}
        if self.impl == "reference":
            weights = lstm if dropped is None else SimpleNamespace(**{**dict(lstm.named_parameters()), **dropped}, hidden_size=lstm.hidden_size)
            return run_reference_layer(weights, "_l0", x, None, lengths)[0]
        if autocast:  # under CPU autocast, oneDNN's LSTM takes its input in the autocast dtype only
            x = x.to(torch.get_autocast_dtype(device))
        if dropped is None:
            return lstm(x)[0]
        with warnings.catch_warnings():  # cuDNN: the dropped matrix is not in the module's flat weight buffer (a copy per batch)
            warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous chunk")
            return torch.func.functional_call(lstm, dropped, (x,))[0]

    def front(self, h: Tensor, lengths: Tensor) -> Tensor:
        """The convolutional front end on (B, T, I) inputs: ``h + gelu(conv(h))`` per layer. Padded
        steps are zeroed before every convolution, so each sequence sees zeros past its end
        whatever the batch's padding ("same" padding on the sequence alone)."""
        if not len(self.convs):
            return h
        mask = lengths_mask(lengths.to(h.device), h.size(1)).unsqueeze(2).to(h.dtype)  # (B, T, 1)
        for conv in self.convs:
            h = h * mask
            h = h + nn.functional.gelu(conv(h.transpose(1, 2)).transpose(1, 2))
        return h * mask

    def encode(self, x: Tensor, lengths: Tensor | None = None, input_layer: nn.Module | None = None) -> Tensor:
        """x: (B, T) token ids or (B, T, F) features -> (B, T, step_size) per-step outputs.

        Outputs at padded steps are not meaningful; pool with ``lengths``. ``input_layer``
        replaces the encoder's own input layer (a multi-task model keeps one per task).
        """
        return self._encode(x, check_lengths(lengths, *batch_dims(x), x.device), input_layer)

    def _encode(self, x: Tensor, lengths: Tensor, input_layer: nn.Module | None, start: Tensor | None = None) -> Tensor:
        """``encode`` with lengths already checked (check_lengths); ``start`` (B,) places chunks
        for an input layer with learned positions."""
        return self._recur(self._embed(x, lengths, input_layer, start), lengths)

    def _embed(self, x: Tensor, lengths: Tensor, input_layer: nn.Module | None, start: Tensor | None = None) -> Tensor:
        """The input layer's (B, T, I) output, what the LSTM (and the convolutional branch) read."""
        B, T = x.shape[:2]
        if x.is_floating_point():  # zeros past each end: a NaN in the padding reaches no output or gradient
            x = torch.where(lengths_mask(lengths, T).view(B, T, *[1] * (x.dim() - 2)), x, 0.0)
        first = self.input if input_layer is None else input_layer
        if start is None and isinstance(first, WithPositions) and T > first.positions.num_embeddings:  # padded past the table
            first.check(int(lengths.max()))  # the real steps must fit; padding past them takes the last position (masked)
            start = torch.zeros(B, dtype=torch.long, device=x.device)
        return first(x) if start is None else first(x, start)  # (B, T, I)

    def _recur(self, h: Tensor, lengths: Tensor) -> Tensor:
        """The front end and the (bi)LSTM stack: (B, T, I) -> (B, T, step_size)."""
        h = self.input_dropout(self.front(h, lengths))
        for layer in range(self.num_layers):
            if layer > 0:
                h = self.dropout(h)
            out = self._run(self.forward_layers[layer], h, lengths)  # (B, T, H)
            if self.reverse_layers is not None:
                back = self._run(self.reverse_layers[layer], reverse_padded(h, lengths), lengths)
                out = torch.cat([out, reverse_padded(back, lengths)], dim=2)  # (B, T, 2H)
            h = out
        return h

    def pool(self, out: Tensor, lengths: Tensor | None) -> Tensor:
        """(B, T, D) outputs -> (B, output_size - fcn_width): the LSTM's pooled vector, looking only at real steps."""
        return self._pool(out, check_lengths(lengths, *batch_dims(out, outputs=True), out.device))

    def _pool(self, out: Tensor, lengths: Tensor) -> Tensor:
        """``pool`` with lengths already checked (check_lengths)."""
        B, T, D = out.shape
        mask = lengths_mask(lengths, T).unsqueeze(2)  # (B, T, 1)
        if self.pooling == "last":
            last = out[torch.arange(B, device=out.device), lengths - 1]  # (B, D)
            if self.reverse_layers is None:
                return last
            H = self.hidden_size
            return torch.cat([last[:, :H], out[:, 0, H:]], dim=1)  # reverse direction ends at step 0
        if self.pooling in ("mean", "max", "mean_max"):
            parts = []
            if self.pooling != "max":
                parts.append(masked_mean(out, mask, lengths, dim=1))
            if self.pooling != "mean":
                parts.append(out.masked_fill(~mask, float("-inf")).amax(1))
            return torch.cat(parts, dim=1)  # (B, D), or (B, 2D) for mean_max
        scores = self.attention(out).masked_fill(~mask, float("-inf"))  # (B, T, 1)
        return (scores.softmax(1) * out).sum(1)

    def forward(self, x: Tensor, lengths: Tensor | None = None, input_layer: nn.Module | None = None) -> Tensor:
        """x: (B, T) token ids or (B, T, F) features, lengths (B,) -> (B, output_size).

        ``lengths`` are the real steps of each right-padded sequence, each in 1..T (``None``: all
        T); anything else is a ``SeqlabError``, as is an input of another rank."""
        batch_dims(x)
        if self.chunk_size is not None and x.size(1) > self.chunk_size and x.size(0):  # (an empty batch has no chunks)
            return self._chunked(x, lengths, input_layer)
        lengths = check_lengths(lengths, *batch_dims(x), x.device)  # once for all steps
        h = self._embed(x, lengths, input_layer)
        pooled = self._pool(self._recur(h, lengths), lengths)
        if self.fcn is None:
            return pooled
        return torch.cat([pooled, self.fcn(h, lengths).to(pooled.dtype)], dim=1)  # (B, output_size)

    def _chunked(self, x: Tensor, lengths: Tensor | None, input_layer: nn.Module | None) -> Tensor:
        """Long sequences in bounded memory. Every sequence is cut into chunks of ``chunk_size``
        steps; chunks are encoded (a convolutional front end too) and pooled on their own, ``chunk_batch`` chunks at a time (under
        activation checkpointing whenever gradients are enabled: training, and attributions), and each sequence's chunk summaries are combined
        (max, or length-weighted mean). Peak memory depends on chunk_size * chunk_batch, not on
        the sequence length.
        """
        B, T = x.shape[:2]
        c = self.chunk_size
        n = -(-T // c)  # chunks per sequence
        lengths = check_lengths(lengths, B, T, x.device)
        x = nn.functional.pad(x, (0, 0) * (x.dim() - 2) + (0, n * c - T))  # (B, n*c, ...)
        chunks = x.reshape(B * n, c, *x.shape[2:])  # (B*n, c, ...)
        starts = torch.arange(n, device=x.device) * c  # (n,)
        chunk_lengths = (lengths.unsqueeze(1) - starts).clamp(0, c).reshape(B * n)  # (B*n,)
        chunk_starts = starts.repeat(B)  # (B*n,): where each chunk begins in its sequence
        rows = chunk_lengths.nonzero().squeeze(1)  # chunks holding real steps
        positions = isinstance(input_layer, WithPositions)  # a chunk's steps keep their places in the sequence
        if positions:
            input_layer.check(int(lengths.max()))

        def encode_chunks(xs: Tensor, ls: Tensor, at: Tensor) -> Tensor:
            out = self._encode(xs[:, : int(ls.max())], ls, input_layer, at if positions else None)  # chunk lengths: 1..c by construction
            return self._pool(out, ls)

        pooled = []
        for group in rows.split(self.chunk_batch):
            xs, ls, at = chunks[group], chunk_lengths[group], chunk_starts[group]
            if torch.is_grad_enabled():
                pooled.append(torch.utils.checkpoint.checkpoint(encode_chunks, xs, ls, at, use_reentrant=False))
            else:
                pooled.append(encode_chunks(xs, ls, at))
        pooled = torch.cat(pooled)  # (R, D)
        fill = float("-inf") if self.pooling == "max" else 0.0
        summaries = pooled.new_full((B * n, self.output_size), fill).index_put((rows,), pooled).view(B, n, -1)  # (B, n, D)
        if self.pooling == "max":
            return summaries.amax(1)
        wide = torch.promote_types(summaries.dtype, torch.float32)  # weights and sums in at least float32, as in _pool
        w = chunk_lengths.view(B, n, 1).to(wide)
        return ((summaries.to(wide) * w).sum(1) / w.sum(1)).to(summaries.dtype)
