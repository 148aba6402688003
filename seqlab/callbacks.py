"""Callbacks the CLI adds: predictions written as JSON lines."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch


class JsonlPredictionWriter(L.Callback):
    """Writes one JSON line per predict input: index, label, probability and all class probabilities."""

    def __init__(self, output_path: str = "predictions.jsonl") -> None:
        self.output_path = output_path
        self._rows: list[dict[str, Any]] = []

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._rows = []

    def on_predict_batch_end(self, trainer, pl_module, outputs: dict[str, Any], batch, batch_idx, dataloader_idx=0) -> None:
        labels = pl_module.specs[outputs["task"]].labels
        for index, probs in zip(outputs["index"].tolist(), outputs["probs"]):
            best = int(torch.argmax(probs))
            self._rows.append(
                {
                    "index": index,
                    "task": outputs["task"],
                    "label": labels[best],
                    "probability": round(float(probs[best]), 6),
                    "probabilities": {name: round(float(p), 6) for name, p in zip(labels, probs.tolist())},
                }
            )

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        path = Path(self.output_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as f:
            for row in sorted(self._rows, key=lambda r: r["index"]):
                f.write(json.dumps(row) + "\n")
        os.replace(tmp, path)
        print(f"seqlab: wrote {len(self._rows)} predictions to {path}")


class EpochTimer(L.Callback):
    """Logs wall-clock seconds and training samples per second of every training epoch."""

    def __init__(self) -> None:
        self.epoch_seconds: list[float] = []
        self.samples_per_second: list[float] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import time

        self._start, self._samples = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._samples += len(batch["lengths"])

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import time

        seconds = time.perf_counter() - self._start
        self.epoch_seconds.append(seconds)
        self.samples_per_second.append(self._samples / seconds)
        pl_module.log_dict({"time/epoch_seconds": seconds, "time/train_samples_per_second": self._samples / seconds})
