"""SeqModel: one LightningModule for every task: input layer per task, shared encoder, head per task."""

from __future__ import annotations

import functools
import importlib
import math
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import AUROC, Accuracy, F1Score

from seqlab.errors import SeqlabError, out_of_range
from seqlab.nn import LSTMEncoder, WithPositions, make_head, make_input_layer
from seqlab.nn.encoder import MaskedBatchNorm
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


def storable_optimizer(optimizer: Any) -> Any:
    """The optimizer as a checkpoint stores it, ``{"class_path", "init_args"}`` as the CLI's config
    has it: a checkpoint holding a class cannot be read with ``torch.load(weights_only=True)``. An
    optimizer class or a ``functools.partial`` of one (keywords only) converts; another callable is
    kept as its text, for the record."""
    if isinstance(optimizer, functools.partial) and isinstance(optimizer.func, type) and not optimizer.args:
        return {"class_path": f"{optimizer.func.__module__}.{optimizer.func.__qualname__}", "init_args": dict(optimizer.keywords)}
    if isinstance(optimizer, type):
        return {"class_path": f"{optimizer.__module__}.{optimizer.__qualname__}", "init_args": {}}
    return optimizer if isinstance(optimizer, (dict, str)) else repr(optimizer)  # (a str: such a record, loaded again)


def build_optimizer(optimizer: Any, params) -> torch.optim.Optimizer:
    """An optimizer from a callable, or from ``{"class_path", "init_args"}`` (a checkpoint's record)."""
    if callable(optimizer):
        return optimizer(params)
    if isinstance(optimizer, dict) and "class_path" in optimizer:
        module, _, name = optimizer["class_path"].rpartition(".")
        return getattr(importlib.import_module(module), name)(params, **(optimizer.get("init_args") or {}))
    raise SeqlabError(
        f"The model's optimizer is recorded only as {optimizer!r}, which cannot be rebuilt. "
        "Pass optimizer= (a class or functools.partial) when loading the model to train it further."
    )


class SeqModel(L.LightningModule):
    """Sequence classifier over any number of tasks sharing one LSTMEncoder.

    ``specs`` (task name -> TaskSpec dict) comes from the DataModule; the CLI links it in.
    ``label_smoothing`` applies to the training loss only: validation and test losses stay the
    plain negative log-likelihood, comparable between settings. ``members > 1`` trains a deep
    ensemble in one fit: that many independently initialised copies of the input layers, encoder
    and heads, each with its own loss on the same batches; the model predicts their mean
    probabilities. Member 0 is ``inputs``/``encoder``/``heads``, the others ``ensemble[k - 1]``.

    Args:
        specs: Task name -> TaskSpec dict; filled from the data module by the CLI.
        embed_dim: Width of each task's input layer (token embedding or feature projection) and of the LSTM input.
        hidden_size: LSTM units per direction.
        num_layers: Stacked LSTM layers.
        bidirectional: Also run each layer backwards over every sequence (within its own length).
        dropout: Dropout between LSTM layers.
        input_dropout: Dropout on the input layer's output.
        head_dropout: Dropout before each task's classification head.
        pooling: How per-step outputs become one vector: last step, mean, max, both (mean_max) or attention.
        impl: fast (nn.LSTM kernels) or reference (the step-by-step gate equations; same numbers, slower).
        chunk_size: Encode long sequences in chunks of this many steps (bounded memory; max or mean pooling).
        chunk_batch: Chunks encoded at a time with chunk_size.
        position_embedding: Learned absolute positions for inputs up to this length (0: none); a dict sets it per task.
        float32_lstm: Keep the recurrence in float32 under mixed precision.
        conv_kernel: Odd kernel width of residual convolutions over time before the LSTM (0: none).
        conv_layers: Number of those convolutions.
        fcn_width: Width W of a convolutional branch beside the LSTM, as in LSTM-FCN: convolutions of widths W, 2W, W
            (kernels 8, 5, 3) with batch normalisation over real steps, averaged over time and set beside the pooled LSTM output
            (0: none; one-task models only).
        weight_drop: DropConnect rate of the LSTM's recurrent weights in training (AWD-LSTM): one mask per batch, layer and direction.
        loss_weights: Task name -> weight of its loss in multi-task training (default 1 each).
        label_smoothing: Label smoothing of the training loss (validation and test losses stay plain).
        backbone_from: Checkpoint whose encoder (and input layers and heads of tasks with the same spec) to start from.
        freeze_backbone_epochs: Keep the shared encoder fixed for this many first epochs.
        members: Models trained side by side as a deep ensemble (1: one model).
        optimizer: The optimizer class and its arguments (class_path / init_args).
        lr_schedule: Learning rate over the run: constant, or cosine decay to 0.
        warmup: Share of all steps, in [0, 1], over which the learning rate rises linearly to its peak
            (step k of n warmup steps trains at (k + 1) / n of it).
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
        pooling: Literal["last", "mean", "max", "mean_max", "attention"] = "max",
        impl: Literal["fast", "reference"] = "fast",
        chunk_size: int | None = None,
        chunk_batch: int = 32,
        position_embedding: int | dict[str, int] = 0,
        float32_lstm: bool = False,
        conv_kernel: int = 0,
        conv_layers: int = 1,
        fcn_width: int = 0,
        weight_drop: float = 0.0,
        loss_weights: dict[str, float] | None = None,
        label_smoothing: float = 0.0,
        backbone_from: str | None = None,
        freeze_backbone_epochs: int = 0,
        members: int = 1,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_schedule: Literal["constant", "cosine"] = "cosine",
        warmup: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.hparams["optimizer"] = storable_optimizer(self.hparams["optimizer"])
        if not specs:
            raise SeqlabError("The model has no task: model.specs is empty. It is filled from the data module; check the data section of the config.")
        self.specs = {name: TaskSpec.from_dict(s) for name, s in specs.items()}
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.warmup = warmup
        for key, named in {"loss_weights": loss_weights, "position_embedding": position_embedding}.items():
            unknown = sorted(set(named) - set(self.specs)) if isinstance(named, dict) else []
            if unknown:
                raise SeqlabError(f"model.{key} names task(s) {', '.join(unknown)} this run does not have; its tasks: {', '.join(self.specs)}.")
        self.loss_weights = {name: float((loss_weights or {}).get(name, 1.0)) for name in self.specs}
        if not 0 <= warmup <= 1:
            raise SeqlabError(f"model.warmup is a share of all training steps and must be in [0, 1] (0.05: the first 5%); got {warmup}.")
        if not 0 <= label_smoothing < 1:
            raise SeqlabError(f"model.label_smoothing must be in [0, 1); got {label_smoothing}.")
        self.label_smoothing = label_smoothing
        sizes = {"embed_dim": embed_dim, "hidden_size": hidden_size, "num_layers": num_layers, "chunk_batch": chunk_batch}
        if chunk_size is not None:
            sizes["chunk_size"] = chunk_size
        small = {k: v for k, v in sizes.items() if v < 1}
        if small:
            raise out_of_range("model", small, "at least 1")
        rates = {
            k: v
            for k, v in {"dropout": dropout, "input_dropout": input_dropout, "head_dropout": head_dropout, "weight_drop": weight_drop}.items()
            if not 0 <= v < 1
        }
        if rates:
            raise out_of_range("model", rates, "in [0, 1)")
        if members < 1:
            raise SeqlabError(f"model.members must be at least 1 (1: one model; 5: an ensemble of five); got {members}.")
        if fcn_width and len(self.specs) > 1:
            raise SeqlabError(
                f"model.fcn_width works in a one-task model: its batch normalisation would blend the statistics of the tasks' "
                f"different inputs ({', '.join(self.specs)}). Set model.fcn_width: 0, or train the tasks apart."
            )
        if members > 1 and backbone_from:
            raise SeqlabError("model.backbone_from copies one backbone; it works with model.members: 1 only.")
        self.backbone_from = backbone_from
        self.freeze_backbone_epochs = freeze_backbone_epochs

        def build_member() -> nn.ModuleDict:
            inputs = nn.ModuleDict()
            for name, s in self.specs.items():
                layer = make_input_layer(embed_dim, s.vocab_size, s.feature_dim, s.padding_idx)
                positions = position_embedding.get(name, 0) if isinstance(position_embedding, dict) else position_embedding
                inputs[name] = WithPositions(layer, positions, embed_dim) if positions else layer
            encoder = LSTMEncoder(
                embed_dim, hidden_size=hidden_size, num_layers=num_layers, bidirectional=bidirectional, dropout=dropout,
                input_dropout=input_dropout, pooling=pooling, impl=impl, chunk_size=chunk_size, chunk_batch=chunk_batch,
                float32_lstm=float32_lstm, conv_kernel=conv_kernel, conv_layers=conv_layers, fcn_width=fcn_width,
                weight_drop=weight_drop,
            )  # fmt: skip
            heads = nn.ModuleDict({name: make_head(s.task_type, encoder.output_size, s.num_classes, head_dropout) for name, s in self.specs.items()})
            return nn.ModuleDict({"inputs": inputs, "encoder": encoder, "heads": heads})

        first = build_member()
        self.inputs, self.encoder, self.heads = first["inputs"], first["encoder"], first["heads"]
        self.ensemble = nn.ModuleList(build_member() for _ in range(members - 1))  # drawn after member 0: its weights are those of members=1
        self._step_tasks: set[str] = set()  # tasks with a batch since the last optimizer step
        self.metrics = nn.ModuleDict({f"{stage}_{name}": classification_metrics(s) for stage in ("val", "test") for name, s in self.specs.items()})
        self.train_acc = nn.ModuleDict({name: classification_metrics(s)["acc"].clone() for name, s in self.specs.items()})

    @property
    def n_members(self) -> int:
        """The ensemble's size (``model.members``); 1 for one model."""
        return len(self.ensemble) + 1

    def member_modules(self) -> list[tuple[nn.ModuleDict, LSTMEncoder, nn.ModuleDict]]:
        """(inputs, encoder, heads) of every ensemble member, member 0 first."""
        return [(self.inputs, self.encoder, self.heads)] + [(m["inputs"], m["encoder"], m["heads"]) for m in self.ensemble]

    def forward(self, x: Tensor, lengths: Tensor, task: str, member: int = 0) -> Tensor:
        """(B, T) ids or (B, T, F) features -> (B, num_classes) logits of one member for ``task``."""
        if task not in self.heads:
            raise SeqlabError(f"This model has no task {task!r}; its tasks are: {', '.join(self.heads)}.")
        inputs, encoder, heads = self.member_modules()[member]
        return heads[task](encoder(x, lengths, input_layer=inputs[task]))

    def member_log_probabilities(self, batch: dict[str, Any]) -> Tensor:
        """(M, B, C) log class probabilities of each member; with a reverse-complement view
        ``x_rc`` in the batch, the log of the mean of both views' probabilities."""
        out = []
        for member in range(self.n_members):
            logp = self(batch["x"], batch["lengths"], batch["task"], member).float().log_softmax(-1)
            if "x_rc" in batch:
                logp_rc = self(batch["x_rc"], batch["lengths"], batch["task"], member).float().log_softmax(-1)
                logp = torch.logaddexp(logp, logp_rc) - math.log(2)
            out.append(logp)
        return torch.stack(out)

    @staticmethod
    def mean_of_members(logps: Tensor) -> Tensor:
        """(M, B, C) members' log probabilities -> (B, C) log of their mean probabilities."""
        return torch.logsumexp(logps, 0) - math.log(len(logps))

    def log_probabilities(self, batch: dict[str, Any]) -> Tensor:
        """(B, C) log of the members' mean class probabilities (one member: its own)."""
        return self.mean_of_members(self.member_log_probabilities(batch))

    def model_step(self, batch: dict[str, Any], label_smoothing: float = 0.0, training: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """Loss, (B, C) probabilities and labels. In training the loss is the mean of the members'
        own losses; evaluation scores the ensemble's mean probabilities."""
        logps = self.member_log_probabilities(batch)  # (M, B, C), normalised: cross_entropy's log_softmax leaves them as they are
        logp = self.mean_of_members(logps)  # (B, C)
        y = batch["y"]
        if training:
            loss = torch.stack([nn.functional.cross_entropy(lp, y, label_smoothing=label_smoothing) for lp in logps]).mean()
        else:
            loss = nn.functional.cross_entropy(logp, y, label_smoothing=label_smoothing)
        return loss, logp.exp(), y

    @staticmethod
    def _scores(probs: Tensor, spec: TaskSpec) -> Tensor:
        return probs[:, 1] if spec.task_type == "binary" else probs

    def training_step(self, batch: dict[str, Any] | list[dict[str, Any]], batch_idx: int) -> Tensor:
        """One task's batch, or a list of batches of several tasks (their weighted losses add up)."""
        batches = batch if isinstance(batch, list) else [batch]
        total = 0.0
        for b in batches:
            task = b["task"]
            loss, probs, y = self.model_step(b, self.label_smoothing, training=True)
            self.train_acc[task](self._scores(probs, self.specs[task]), y)
            self.log(f"train/{task}/loss", loss, on_step=False, on_epoch=True, batch_size=len(y), sync_dist=True)
            self.log(f"train/{task}/acc", self.train_acc[task], on_step=False, on_epoch=True, batch_size=len(y))
            total = total + self.loss_weights[task] * loss
        tasks = {b["task"] for b in batches}
        self._step_tasks |= tasks  # (with accumulate_grad_batches, several batches make one step)
        if self._trainer is not None and self.trainer.world_size > 1:
            # Every parameter takes part in the backward pass, so distributed gradient reduction
            # never waits for the heads of tasks this batch has none of; the optimizer step drops
            # the zero gradients of tasks no batch since the last step had (on_before_optimizer_step).
            total = total + sum(p.sum() for p in self._idle_parameters(tasks)) * 0.0
        bs = sum(len(b["y"]) for b in batches)
        self.log("train/loss", total, prog_bar=True, batch_size=bs)
        if self._trainer is not None and self.trainer.optimizers:
            self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=bs)
        # The sum of the members' losses: each member's gradient is that of its own loss, as if it
        # trained alone (and configure_gradient_clipping clips each member on its own).
        return total * self.n_members

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """``trainer.gradient_clip_val`` applies to each ensemble member on its own, so no member's
        gradient scales another's."""
        if self.n_members == 1 or not gradient_clip_val:
            return super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        for modules in self.member_modules():
            params = [p for module in modules for p in module.parameters() if p.grad is not None]
            if gradient_clip_algorithm == "value":  # Lightning's GradClipAlgorithmType is a str enum
                nn.utils.clip_grad_value_(params, gradient_clip_val)
            else:
                nn.utils.clip_grad_norm_(params, gradient_clip_val)

    def _idle_parameters(self, tasks: set[str]) -> list[nn.Parameter]:
        """Parameters a step on ``tasks`` must not update: other tasks' input layers and heads, and
        the shared encoder while it is frozen."""
        frozen = self._trainer is not None and self.current_epoch < self.freeze_backbone_epochs
        idle = []
        for inputs, encoder, heads in self.member_modules():
            idle += [p for name in self.specs if name not in tasks for p in (*inputs[name].parameters(), *heads[name].parameters())]
            if frozen:
                idle += list(encoder.parameters())
        return idle

    def idle_parameters(self) -> list[nn.Parameter]:
        """Parameters the coming optimizer step leaves as they are: their gradients are dropped."""
        return self._idle_parameters(self._step_tasks)

    def on_before_optimizer_step(self, optimizer) -> None:
        for p in self.idle_parameters():
            p.grad = None  # AdamW skips a parameter without gradient: no decay, no momentum step
        self._step_tasks = set()

    def on_train_epoch_start(self) -> None:
        """A frozen encoder keeps its batch-norm statistics too (Lightning sets train mode once per fit, so set it both ways)."""
        if self.freeze_backbone_epochs:
            frozen = self.current_epoch < self.freeze_backbone_epochs
            for _, encoder, _ in self.member_modules():
                for module in encoder.modules():
                    if isinstance(module, MaskedBatchNorm):
                        module.train(not frozen)

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.backbone_from:
            self.load_backbone(self.backbone_from)

    def load_backbone(self, path: str) -> list[str]:
        """Copy the shared encoder, and the input layer and head of every task with an identical
        spec, from another checkpoint. Returns what was copied. (A resumed fit then restores its own
        checkpoint on top.)"""
        from seqlab.checkpoints import read_checkpoint

        checkpoint = read_checkpoint(path)
        weights = checkpoint.get("state_dict", {})
        theirs = checkpoint.get("hyper_parameters", {}).get("specs", {})
        theirs = {name: TaskSpec.from_dict(spec).to_dict() for name, spec in theirs.items()}  # with defaults, as ours
        same = [name for name, s in self.specs.items() if theirs.get(name) == s.to_dict()]  # tasks whose input layer and head fit too
        prefixes = ["encoder."] + [f"{kind}.{name}." for name in same for kind in ("inputs", "heads")]
        mine = self.state_dict()
        chosen = {k: v for k, v in weights.items() if any(k.startswith(p) for p in prefixes)}
        wrong = [f"{k} {tuple(v.shape)} vs {tuple(mine[k].shape)}" for k, v in chosen.items() if k in mine and mine[k].shape != v.shape]
        wrong += [f"{k} only in the checkpoint" for k in chosen if k not in mine]
        wrong += [f"{k} only in this model" for k in mine if any(k.startswith(p) for p in prefixes) and k not in chosen]
        if not any(k.startswith("encoder.") for k in chosen) or wrong:
            raise SeqlabError(
                f"The backbone in {path} does not fit this model ({'; '.join(wrong[:3]) or 'no encoder weights'}). "
                "Use the same model.embed_dim, hidden_size, num_layers, bidirectional and pooling as the checkpoint."
            )
        self.load_state_dict(chosen, strict=False)
        copied = sorted({".".join(k.split(".")[:2]) if not k.startswith("encoder.") else "encoder" for k in chosen})
        print(f"seqlab: loaded {', '.join(copied)} from {path}")
        return copied

    def _eval_step(self, stage: str, batch: dict[str, Any]) -> dict[str, Any]:
        task = batch["task"]
        loss, probs, y = self.model_step(batch)
        self.metrics[f"{stage}_{task}"].update(self._scores(probs, self.specs[task]), y)
        self.log(f"{stage}/{task}/loss", loss, on_step=False, on_epoch=True, batch_size=len(y), sync_dist=True)
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
        optimizer = build_optimizer(self.optimizer, self.parameters())
        if self.lr_schedule == "constant" and self.warmup == 0:
            return optimizer
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):  # trainer.max_epochs: -1 (and max_steps: -1): stopped by max_time or a callback
            raise SeqlabError(
                f"model.lr_schedule={self.lr_schedule!r} with model.warmup={self.warmup} needs a known number of steps, but the trainer "
                "runs without an end (trainer.max_epochs: -1). Set trainer.max_epochs or trainer.max_steps, or use model.lr_schedule: "
                "constant with model.warmup: 0."
            )
        total = max(1, int(total))
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
        stored = {name: TaskSpec.from_dict(spec).to_dict() for name, spec in stored.items()}  # with defaults, as mine
        for name in mine:
            if stored[name] != mine[name]:
                theirs, ours = stored[name], mine[name]
                keys = [k for k in sorted(set(theirs) | set(ours), key=str) if theirs.get(k) != ours.get(k)]
                diff = "; ".join(f"{k}: {theirs.get(k)!r} there, {ours.get(k)!r} here" for k in keys)
                raise SeqlabError(
                    f"Task {name!r} in the checkpoint differs from this run's data ({diff}). "
                    "Use the data settings the checkpoint was trained with (e.g. the same data.k, encoding, labels or features)."
                )
