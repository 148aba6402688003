"""``python -m seqlab export``: one task of a checkpoint (input layer, encoder, head) as TorchScript or ONNX.

The exported graph takes right-padded ``x`` (B, T) int64 token ids or (B, T, F) float32 features
and ``lengths`` (B,) int64, both with dynamic batch and length, and returns ``probs`` (B, C): class
probabilities (softmax of the head's logits) in the order of the checkpoint's labels. A JSON file
next to the model (``<output>.json``) holds the labels and the preprocessing (vocabulary, ...).

TorchScript comes from ``torch.jit.trace``, ONNX from torch's TorchScript-based exporter
(``dynamo=False``): ``torch.export`` specialises the sequence length of ``nn.LSTM`` to the
example's, while the TorchScript-based exporter emits ONNX ``LSTM`` ops whose length stays free.
"""

from __future__ import annotations

import argparse
import copy
import json
import warnings
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from seqlab.errors import SeqlabError
from seqlab.files import check_writable_file, sha256_of, write_file

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
INPUT_NAMES = ["x", "lengths"]
OUTPUT_NAMES = ["probs"]


class ExportedTask(nn.Module):
    """One task of a SeqModel on its own: (x, lengths) -> (B, C) class probabilities (for an
    ensemble, ``model.members > 1``, the mean of its members')."""

    def __init__(self, model: nn.Module, task: str) -> None:
        super().__init__()
        if task not in model.heads:
            raise SeqlabError(f"The checkpoint has no task {task!r}; its tasks are: {', '.join(model.heads)}. Set --task to one of them.")
        if model.encoder.chunk_size is not None:
            raise SeqlabError(
                f"This model encodes sequences in chunks (model.chunk_size={model.encoder.chunk_size}); a chunked encoder has a "
                "data-dependent loop that TorchScript tracing and ONNX cannot hold. Export a model trained without chunk_size."
            )
        self.input_layers, self.encoders, self.heads = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for inputs, encoder, heads in model.member_modules():
            encoder = copy.deepcopy(encoder)
            encoder.impl = "fast"  # same weights and numbers as the reference cell, one traceable kernel per layer
            self.input_layers.append(copy.deepcopy(inputs[task]))
            self.encoders.append(encoder)
            self.heads.append(copy.deepcopy(heads[task]))
        self.eval()

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        probs = [
            head(encoder(x, lengths, input_layer=layer)).softmax(-1)  # (B, C)
            for layer, encoder, head in zip(self.input_layers, self.encoders, self.heads)
        ]
        return torch.stack(probs).mean(0)  # (B, C)


def example_inputs(spec: dict[str, Any], model: nn.Module, task: str) -> tuple[Tensor, Tensor]:
    """A padded batch of two (lengths 8 and 5) to trace with; the result works for any B and T."""
    T = 8
    positions = getattr(model.inputs[task], "positions", None)
    if positions is not None:
        T = min(T, positions.num_embeddings)
    lengths = torch.tensor([T, max(1, T - 3)])
    if spec["input"] == "tokens":
        x = torch.randint(1, max(2, spec["vocab_size"]), (2, T))
    else:
        x = torch.randn(2, T, spec["feature_dim"])
    return x, lengths


def export_task(
    model: nn.Module,
    task: str,
    fmt: Literal["onnx", "torchscript"],
    output: str | Path,
    metadata: dict[str, Any] | None = None,
    opset: int = 17,
) -> Path:
    """Write ``task`` of ``model`` to ``output`` (and ``<output>.json`` with ``metadata``); returns the path."""
    if fmt not in FORMATS:
        raise SeqlabError(f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    if fmt == "onnx":
        import importlib.util

        if importlib.util.find_spec("onnx") is None:
            raise SeqlabError('ONNX export needs the onnx package: pip install -e ".[export]" (or use --format torchscript).')
    module = ExportedTask(model, task).cpu()  # traced with CPU example inputs, whatever device the model is on
    spec = model.specs[task].to_dict()
    x, lengths = example_inputs(spec, model, task)
    output = Path(output)
    with warnings.catch_warnings(), torch.no_grad():
        # Tracing warns about nn.LSTM's internal weight checks and its own deprecation; neither changes the graph.
        warnings.simplefilter("ignore")
        if fmt == "torchscript":
            traced = torch.jit.trace(module, (x, lengths))
            extra = {"seqlab.json": json.dumps(metadata or {})}
            write_file(output, lambda tmp: torch.jit.save(traced, str(tmp), _extra_files=extra))
        else:
            write_file(
                output,
                lambda tmp: torch.onnx.export(
                    module,
                    (x, lengths),
                    str(tmp),
                    dynamo=False,
                    input_names=INPUT_NAMES,
                    output_names=OUTPUT_NAMES,
                    dynamic_axes={"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "probs": {0: "batch"}},
                    opset_version=opset,
                ),
            )
    if metadata is not None:
        sidecar = output.with_name(output.name + ".json")  # model_sha256 pairs it with its model (two files, two renames)
        paired = {**metadata, "model_sha256": sha256_of(output)}
        write_file(sidecar, lambda tmp: tmp.write_text(json.dumps(paired, indent=1)))
    return output


def load_model(ckpt_path: str | Path):
    """A checkpoint's SeqModel (eval, CPU) and its data states (task -> preprocessing), with clear errors."""
    from seqlab.checkpoints import read_checkpoint, task_states
    from seqlab.model import SeqModel

    checkpoint = read_checkpoint(ckpt_path)
    if "hyper_parameters" not in checkpoint or "specs" not in checkpoint["hyper_parameters"]:
        raise SeqlabError(f"Checkpoint {ckpt_path} holds no seqlab model (no hyper_parameters.specs). Use a checkpoint written by `seqlab fit`.")
    model = SeqModel.load_from_checkpoint(ckpt_path, map_location="cpu").eval()
    return model, task_states(checkpoint)


def pick_task(model, task: str | None) -> str:
    if task is None:
        if len(model.specs) > 1:
            raise SeqlabError(f"The checkpoint has several tasks ({', '.join(model.specs)}); choose one with --task.")
        return next(iter(model.specs))
    if task not in model.specs:
        raise SeqlabError(f"The checkpoint has no task {task!r}; its tasks are: {', '.join(model.specs)}. Set --task to one of them.")
    return task


def main(args: list[str]) -> Path:
    parser = argparse.ArgumentParser(prog="seqlab export", description="Export one task of a checkpoint to ONNX or TorchScript.")
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint written by `seqlab fit`")
    parser.add_argument("--task", help="the task to export (default: the checkpoint's only task)")
    parser.add_argument("--format", choices=list(FORMATS), default="onnx")
    parser.add_argument("--output", help="file to write (default: <checkpoint dir>/<task>.onnx or .pt)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    ns = parser.parse_args(args)
    model, states = load_model(ns.ckpt_path)
    task = pick_task(model, ns.task)
    output = Path(ns.output) if ns.output else Path(ns.ckpt_path).parent / f"{task}{FORMATS[ns.format]}"
    check_writable_file(output, "--output")
    spec = model.specs[task].to_dict()
    metadata = {
        "task": task,
        "labels": spec["labels"],
        "input": spec["input"],
        "inputs": {
            "x": "(B, T) int64 token ids"
            if spec["input"] == "tokens"
            else f"(B, T, {spec['feature_dim']}) float32 features, standardised with preprocessing.stats (seqlab.load(ckpt).encode gives them)",
            "lengths": "(B,) int64",
        },
        "output": "probs (B, C): class probabilities in the order of labels",
        "padding_idx": spec["padding_idx"],
        "preprocessing": states.get(task, {}).get("preprocessing"),
        "settings": states.get(task, {}).get("settings"),  # e.g. DNA's rc_average: predict averages both strands, the graph one
        "family": states.get(task, {}).get("family"),
        "checkpoint": str(ns.ckpt_path),
    }
    export_task(model, task, ns.format, output, metadata, ns.opset)
    print(f"seqlab: wrote {ns.format} model of task {task!r} to {output} (labels and preprocessing in {output}.json)")
    return output
