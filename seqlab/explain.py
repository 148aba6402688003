"""``python -m seqlab explain``: a trained LSTM's gates, cell state and token attributions over one input.

The input runs through the reference LSTM (``seqlab.nn.lstm``, ``return_gates=True``) with the
checkpoint's weights; the figure shows, over time, the forget, input and output gates and the cell
state of every unit (forward units above, reverse units below, both aligned to the input's
positions), their means, and integrated-gradient attributions of each token to the predicted class.
For an ensemble (``model.members > 1``) all of it is member 0's, its prediction included.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from seqlab.errors import SeqlabError
from seqlab.files import check_writable_file
from seqlab.nn.lstm import reverse_padded, run_reference_layer

PANELS = ("forget", "input", "output", "cell")


@dataclass
class GateTrace:
    """One input's gate activations at one layer; each (T, D), D = hidden units of all directions
    (forward first), every row aligned to input position t."""

    tokens: list[str]
    layer: int
    directions: int
    hidden_size: int
    forget: Tensor
    input: Tensor
    output: Tensor
    cell: Tensor
    hidden: Tensor
    labels: list[str]
    probs: Tensor  # (C,)
    attribution: Tensor | None = None  # (T,) for the predicted class
    members: int = 1  # an ensemble's size; everything here is member 0's

    @property
    def predicted(self) -> int:
        return int(self.probs.argmax())

    @property
    def who(self) -> str:
        return f"member 0 of {self.members} " if self.members > 1 else ""


# -- inputs ---------------------------------------------------------------------------------------
def encode_input(family: str, preprocessing: dict[str, Any], text: str) -> tuple[Tensor, list[str]]:
    """A raw text (or DNA sequence) -> (T,) token ids or (T, F) features and one label per step."""
    if not text.strip():
        raise SeqlabError("--input is empty; give the text (or DNA sequence) to explain.")
    if family == "TextDataModule":
        from seqlab.data.text import UNK, encode, tokenize

        p = preprocessing
        words = tokenize(text, p["lowercase"])
        if not words:  # as predict refuses it
            raise SeqlabError("--input holds no words (markup only), so there is nothing to explain. Give a text.")
        words = words[: p["max_length"]] if p["truncation"] == "head" else words[-p["max_length"] :]
        ids = encode([text], p["vocab"], p["max_length"], p["truncation"], p["lowercase"])[0]
        known = set(p["vocab"])
        tokens = [w if w in known else f"{w} ({UNK})" for w in words]
        return torch.from_numpy(ids.astype("int64")), tokens
    if family == "DnaDataModule":
        from seqlab.data.dna import encode_codes, to_codes, truncate

        p = preprocessing
        sequence = text.strip()  # as predict reads it: a space inside is a wrong symbol there too
        codes = to_codes(sequence, "--input")
        cut = (p.get("max_length"), p.get("truncation", "head"))  # as predict cuts it (checkpoints before these keys: uncut)
        sequence, codes = truncate(sequence, *cut), truncate(codes, *cut)
        x = encode_codes(codes, p["encoding"], p["k"], p["stride"])
        if p["encoding"] == "kmer":
            tokens = [sequence[i * p["stride"] : i * p["stride"] + p["k"]].upper() for i in range(len(x))]
        else:
            tokens = list(sequence.upper())
        return x, tokens
    raise SeqlabError(
        f"explain reads text (TextDataModule) and DNA (DnaDataModule) inputs; this task's data is {family}. For frame and signal "
        "tasks a fit draws the same figure of its first validation (or training) sequence: runs/<task>/plots/gates_<task>.png, "
        "or gates/<task> in W&B (seqlab.callbacks.GateFigures)."
    )


# -- gates and attributions -------------------------------------------------------------------------
@torch.no_grad()
def gate_trace(model: nn.Module, task: str, x: Tensor, layer: int = 0) -> dict[str, Tensor]:
    """Run one input (T,) or (T, F) through the reference LSTM with ``model``'s weights up to
    ``layer``; returns that layer's gates, cell and hidden states, each (T, D), position-aligned."""
    encoder = model.encoder
    if not 0 <= layer < encoder.num_layers:
        raise SeqlabError(f"--layer {layer} does not exist; the model has layers 0 to {encoder.num_layers - 1}.")
    h = model.inputs[task](x.unsqueeze(0))  # (1, T, I)
    c = encoder.chunk_size
    if c is not None and h.size(1) > c:  # as the model encodes it: each chunk on its own, no state across a border
        parts = [layer_trace(encoder, h[:, start : start + c], layer) for start in range(0, h.size(1), c)]
        return {k: torch.cat([part[k] for part in parts]) for k in parts[0]}
    return layer_trace(encoder, h, layer)


def layer_trace(encoder: nn.Module, h: Tensor, layer: int) -> dict[str, Tensor]:
    """``gate_trace`` of one whole (1, T, I) input layer output (a chunk of it with ``chunk_size``)."""
    lengths = torch.tensor([h.size(1)], device=h.device)
    h = encoder.front(h, lengths)  # the convolutional front end, if the model has one
    for index in range(layer + 1):
        runs = [(encoder.forward_layers[index], h)]
        if encoder.reverse_layers is not None:
            runs.append((encoder.reverse_layers[index], reverse_padded(h, lengths)))
        outs, parts = [], {name: [] for name in PANELS}
        for direction, (lstm, inp) in enumerate(runs):
            out, _, steps = run_reference_layer(lstm, "_l0", inp, None, lengths, return_gates=True)  # [(Gates, c_t)] per step
            stacked = {
                "forget": torch.stack([g.forget for g, _ in steps], 1),
                "input": torch.stack([g.input for g, _ in steps], 1),
                "output": torch.stack([g.output for g, _ in steps], 1),
                "cell": torch.stack([c for _, c in steps], 1),
            }  # each (1, T, H) in the order of this direction's run
            if direction == 1:
                stacked = {k: reverse_padded(v, lengths) for k, v in stacked.items()}
                out = reverse_padded(out, lengths)
            for k, v in stacked.items():
                parts[k].append(v)
            outs.append(out)
        h = torch.cat(outs, dim=2)  # (1, T, D)
    result = {k: torch.cat(v, dim=2)[0] for k, v in parts.items()}  # (T, D)
    result["hidden"] = h[0]
    return result


def integrated_gradients(model: nn.Module, task: str, x: Tensor, target: int, steps: int = 32) -> Tensor:
    """(T,) attribution of each step to the ``target`` logit: integrated gradients on the input
    layer's output, from an all-zero baseline; they add up to logit(x) - logit(baseline)."""
    with torch.no_grad():
        emb = model.inputs[task](x.unsqueeze(0))  # (1, T, E)
    alphas = (torch.arange(steps, dtype=emb.dtype, device=emb.device) + 0.5) / steps  # midpoint rule
    path = (alphas.view(-1, 1, 1) * emb).requires_grad_(True)  # (S, T, E)
    lengths = torch.full((steps,), emb.size(1), device=emb.device)
    with torch.backends.cudnn.flags(enabled=False):  # cuDNN's LSTM has no backward in eval mode
        logits = model.heads[task](model.encoder(path, lengths, input_layer=nn.Identity()))  # (S, C)
    (grad,) = torch.autograd.grad(logits[:, target].sum(), path)
    return (grad.mean(0) * emb[0]).sum(-1)  # (T,)


def trace_input(model: nn.Module, task: str, x: Tensor, tokens: list[str], layer: int = 0, attribution_steps: int = 32) -> GateTrace:
    """Gates, prediction and attributions of one encoded input."""
    if attribution_steps < 0:
        raise SeqlabError(f"--steps is the number of integrated-gradient steps: 0 (no attributions) or more; got {attribution_steps}.")
    model.eval()
    with torch.no_grad():
        probs = model(x.unsqueeze(0), torch.tensor([len(x)], device=x.device), task).float().softmax(-1)[0]
    gates = gate_trace(model, task, x, layer)
    attribution = integrated_gradients(model, task, x, int(probs.argmax()), attribution_steps) if attribution_steps else None
    return GateTrace(
        tokens=tokens,
        layer=layer,
        directions=2 if model.encoder.reverse_layers is not None else 1,
        hidden_size=model.encoder.hidden_size,
        labels=list(model.specs[task].labels),
        probs=probs.cpu(),
        attribution=None if attribution is None else attribution.detach().cpu(),
        members=getattr(model, "n_members", 1),
        **{k: v.cpu() for k, v in gates.items()},
    )  # on the CPU whatever the model's device: the figure reads them as numpy arrays


# -- the figure -------------------------------------------------------------------------------------
def draw_gates(trace: GateTrace, title: str = ""):
    """A matplotlib Figure: attribution strip, forget/input/output/cell heatmaps, mean curves."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    T, D = trace.forget.shape
    H = trace.hidden_size
    width = min(32.0, max(10.0, 3.0 + 0.22 * T))
    heights = [0.45] + [min(2.2, max(1.2, 0.03 * D))] * 4 + [1.6]
    fig = Figure(figsize=(width, sum(heights) + 1.6), layout="constrained")
    axes = fig.subplots(len(heights), 1, sharex=True, gridspec_kw={"height_ratios": heights})
    every = max(1, -(-T // 90))  # at most ~90 token labels
    ticks = list(range(0, T, every))

    label = trace.labels[trace.predicted]
    head = f"{title}  " if title else ""
    fig.suptitle(f"{head}{trace.who}predicted {label} (p={float(trace.probs[trace.predicted]):.3f}) · layer {trace.layer} · {T} steps", fontsize=12)

    ax = axes[0]
    if trace.attribution is not None:
        a = trace.attribution.detach().float()
        limit = float(a.abs().max()) or 1.0
        im = ax.imshow(a.unsqueeze(0).numpy(), aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        fig.colorbar(im, ax=ax, pad=0.01, label=f"→ {label}")
        ax.set_ylabel("attribution", rotation=0, ha="right", va="center")
    else:  # (attribution steps 0) the strip still carries the token labels
        ax.imshow(torch.zeros(1, T).numpy(), aspect="auto", cmap="Greys", vmin=0, vmax=1)
        ax.set_ylabel("no attribution\n(steps 0)", rotation=0, ha="right", va="center")
    ax.set_yticks([])
    ax.xaxis.set_tick_params(labeltop=True, labelbottom=False, top=True)
    ax.set_xticks(ticks, [trace.tokens[t] for t in ticks], rotation=90, fontsize=8)

    for ax, name in zip(axes[1:5], PANELS):
        values = getattr(trace, name).detach().float().T.numpy()  # (D, T)
        if name == "cell":
            limit = float(abs(values).max()) or 1.0
            im = ax.imshow(values, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        else:
            im = ax.imshow(values, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        fig.colorbar(im, ax=ax, pad=0.01)
        ax.set_ylabel(f"{name}{' gate' if name != 'cell' else ' state'}\nunit", rotation=0, ha="right", va="center")
        if trace.directions == 2:
            ax.axhline(H - 0.5, color="white", linewidth=1.5)
            ax.set_yticks([H / 2 - 0.5, H + H / 2 - 0.5], ["fwd →", "← rev"])
        else:
            ax.set_yticks([])

    ax = axes[5]
    colours = {"forget": "tab:blue", "input": "tab:orange", "output": "tab:green"}
    steps = range(T)
    for name, colour in colours.items():
        values = getattr(trace, name).detach().float()
        for d, style in zip(range(trace.directions), ("-", "--")):
            arrow = ("fwd", "rev")[d] if trace.directions == 2 else ""
            ax.plot(steps, values[:, d * H : (d + 1) * H].mean(1).numpy(), style, color=colour, label=f"{name} {arrow}".strip())
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean gate", rotation=0, ha="right", va="center")
    twin = ax.twinx()
    twin.plot(steps, trace.cell.detach().float().abs().mean(1).numpy(), ":", color="black", label="mean |cell|")
    twin.set_ylabel("mean |cell|")
    lines = ax.get_legend_handles_labels()
    extra = twin.get_legend_handles_labels()
    ax.legend(lines[0] + extra[0], lines[1] + extra[1], loc="upper left", ncol=4, fontsize=8, framealpha=0.8)
    ax.set_xticks(ticks, [trace.tokens[t] for t in ticks], rotation=90, fontsize=8)
    ax.set_xlim(-0.5, T - 0.5)
    return fig


def save_figure(fig, path: str | Path) -> Path:
    """Write a figure as PNG atomically (temporary file, then rename)."""
    from seqlab.callbacks import save_png

    return save_png(fig, Path(path))


def log_figure_to_wandb(trainer, key: str, fig) -> bool:
    """Log a figure as ``wandb.Image`` under ``key`` when the trainer has an active WandbLogger; True if it did."""
    from seqlab.callbacks import active_wandb_logger

    logger = active_wandb_logger(trainer)
    if logger is None:
        return False
    import wandb

    logger.log_metrics({key: wandb.Image(fig)}, step=trainer.global_step)
    return True


# -- the command ------------------------------------------------------------------------------------
def explain(ckpt_path: str | Path, text: str, task: str | None = None, layer: int = 0, attribution_steps: int = 32) -> GateTrace:
    """Load a checkpoint, encode ``text`` with the preprocessing stored in it, trace the gates."""
    from seqlab.export import load_model, pick_task

    model, states = load_model(ckpt_path)
    task = pick_task(model, task)
    state = states.get(task)
    if state is None:
        raise SeqlabError(f"Checkpoint {ckpt_path} holds no data preprocessing for task {task!r}, so the input cannot be encoded.")
    x, tokens = encode_input(state["family"], state["preprocessing"], text)
    return trace_input(model, task, x, tokens, layer, attribution_steps)


def main(args: list[str]) -> Path:
    parser = argparse.ArgumentParser(prog="seqlab explain", description="Draw a trained LSTM's gates and cell state over one input.")
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint written by `seqlab fit`")
    parser.add_argument("--input", required=True, help="the text (or DNA sequence) to explain")
    parser.add_argument("--task", help="the task (default: the checkpoint's only task)")
    parser.add_argument("--layer", type=int, default=0, help="LSTM layer to draw (default 0)")
    parser.add_argument("--steps", type=int, default=32, help="integrated-gradient steps; 0 turns attributions off")
    parser.add_argument("--output", default="gates.png", help="PNG to write (default gates.png)")
    ns = parser.parse_args(args)
    check_writable_file(ns.output, "--output")
    trace = explain(ns.ckpt_path, ns.input, ns.task, ns.layer, ns.steps)
    path = save_figure(draw_gates(trace), ns.output)
    p = float(trace.probs[trace.predicted])
    print(f"seqlab: {trace.who}predicted {trace.labels[trace.predicted]} (p={p:.3f}) over {len(trace.tokens)} steps; wrote {path}")
    return path
