"""SeqModel: one LightningModule for every task: input layer per task, shared encoder, head per task."""

from __future__ import annotations

import math
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import AUROC, Accuracy, F1Score

from seqlab.errors import SeqlabError
from seqlab.nn import LSTMEncoder, WithPositions, make_head, make_input_layer
from seqlab.spec import TaskSpec


def classification_metrics(spec: TaskSpec) -> MetricCollection:
    if spec.task_type == "binary":
        return MetricCollection({"acc": Accuracy(task="binary"), "f1": F1Score(task="binary"), "auroc": AUROC(task="binary")})
    n = spec.num_classes
    return MetricCollection(
        {
            "acc": Accuracy(task="multiclass", num_classes=n),
            "f1": F1Score(task="multiclass", num_classes=n, average="macro"),
            "auroc": AUROC(task="multiclass", num_classes=n),
        }
    )


class SeqModel(L.LightningModule):
    """Sequence classifier over any number of tasks sharing one LSTMEncoder.

    ``specs`` (task name -> TaskSpec dict) comes from the DataModule; the CLI links it in.
    """

    def __init__(
        self,
        specs: dict[str, dict[str, Any]],
        embed_dim: int = 128,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        head_dropout: float = 0.0,
        pooling: Literal["last", "mean", "max", "attention"] = "max",
        impl: Literal["fast", "reference"] = "fast",
        chunk_size: int | None = None,
        chunk_batch: int = 32,
        position_embedding: int = 0,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_schedule: Literal["constant", "cosine"] = "cosine",
        warmup: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if not specs:
            raise SeqlabError("The model has no task: model.specs is empty. It is filled from the data module; check the data section of the config.")
        self.specs = {name: TaskSpec.from_dict(s) for name, s in specs.items()}
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.warmup = warmup
        self.inputs = nn.ModuleDict()
        for name, s in self.specs.items():
            layer = make_input_layer(embed_dim, s.vocab_size, s.feature_dim, s.padding_idx)
            self.inputs[name] = WithPositions(layer, position_embedding, embed_dim) if position_embedding else layer
        self.encoder = LSTMEncoder(
            embed_dim, hidden_size, num_layers, bidirectional, dropout, input_dropout, pooling, impl, chunk_size=chunk_size, chunk_batch=chunk_batch
        )
        self.heads = nn.ModuleDict(
            {name: make_head(s.task_type, self.encoder.output_size, s.num_classes, head_dropout) for name, s in self.specs.items()}
        )
        self.metrics = nn.ModuleDict({f"{stage}_{name}": classification_metrics(s) for stage in ("val", "test") for name, s in self.specs.items()})
        self.train_acc = nn.ModuleDict({name: classification_metrics(s)["acc"].clone() for name, s in self.specs.items()})

    def forward(self, x: Tensor, lengths: Tensor, task: str) -> Tensor:
        """(B, T) ids or (B, T, F) features -> (B, num_classes) logits for ``task``."""
        if task not in self.heads:
            raise SeqlabError(f"This model has no task {task!r}; its tasks are: {', '.join(self.heads)}.")
        return self.heads[task](self.encoder(x, lengths, input_layer=self.inputs[task]))

    def log_probabilities(self, batch: dict[str, Any]) -> Tensor:
        """(B, C) log class probabilities; with a reverse-complement view ``x_rc`` in the batch,
        the log of the mean of both views' probabilities."""
        logp = self(batch["x"], batch["lengths"], batch["task"]).float().log_softmax(-1)
        if "x_rc" in batch:
            logp_rc = self(batch["x_rc"], batch["lengths"], batch["task"]).float().log_softmax(-1)
            logp = torch.logaddexp(logp, logp_rc) - math.log(2)
        return logp

    def model_step(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        logp = self.log_probabilities(batch)  # (B, C)
        return nn.functional.nll_loss(logp, batch["y"]), logp.exp(), batch["y"]

    @staticmethod
    def _scores(probs: Tensor, spec: TaskSpec) -> Tensor:
        return probs[:, 1] if spec.task_type == "binary" else probs

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        task = batch["task"]
        loss, probs, y = self.model_step(batch)
        self.train_acc[task](self._scores(probs, self.specs[task]), y)
        bs = len(y)
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        if self._trainer is not None and self.trainer.optimizers:
            self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=bs)
        self.log(f"train/{task}/loss", loss, on_step=False, on_epoch=True, batch_size=bs)
        self.log(f"train/{task}/acc", self.train_acc[task], on_step=False, on_epoch=True, batch_size=bs)
        return loss

    def _eval_step(self, stage: str, batch: dict[str, Any]) -> dict[str, Any]:
        task = batch["task"]
        loss, probs, y = self.model_step(batch)
        self.metrics[f"{stage}_{task}"].update(self._scores(probs, self.specs[task]), y)
        self.log(f"{stage}/{task}/loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return {"task": task, "probs": probs.detach(), "y": y}  # for callbacks (confusion matrices)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step("val", batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step("test", batch)

    def _eval_epoch_end(self, stage: str) -> None:
        accs = []
        for task in self.specs:
            metrics = self.metrics[f"{stage}_{task}"]
            if not any(m.update_called for m in metrics.values()):
                continue  # this task had no batch in this run
            values = metrics.compute()
            metrics.reset()
            self.log_dict({f"{stage}/{task}/{k}": v for k, v in values.items()}, prog_bar=False)
            accs.append(values["acc"])
        if accs:
            self.log(f"{stage}/acc_macro", torch.stack(accs).mean(), prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return {"task": batch["task"], "index": batch["index"], "probs": self.log_probabilities(batch).exp()}

    def configure_optimizers(self):
        optimizer = self.optimizer(self.parameters())
        if self.lr_schedule == "constant" and self.warmup == 0:
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(self.warmup * total)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if self.lr_schedule == "constant":
                return 1.0
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        stored = checkpoint.get("hyper_parameters", {}).get("specs")
        if stored is None:
            return
        mine = {name: s.to_dict() for name, s in self.specs.items()}
        if set(stored) != set(mine):
            raise SeqlabError(
                f"The checkpoint was trained on task(s) {', '.join(stored)}; this run has task(s) {', '.join(mine)}. "
                "Use the config of the task the checkpoint was trained on, or a checkpoint of this task."
            )
        for name in mine:
            if stored[name] != mine[name]:
                raise SeqlabError(
                    f"Task {name!r} in the checkpoint ({stored[name]}) differs from this run's data ({mine[name]}). "
                    "Use the data settings the checkpoint was trained with."
                )
