"""Callbacks: predictions as JSON lines, the last-epoch checkpoint, a progress bar that also prints
plain lines, and the reports of a fit (timing, confusion matrices, curves, gates)."""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint as _LightningModelCheckpoint
from lightning.pytorch.callbacks import RichProgressBar

from seqlab.files import check_writable_file, sweep_orphans, write_file


class JsonlPredictionWriter(L.Callback):
    """Writes one JSON line per predict input: index, label, probability and all class
    probabilities; and where the input came from when its order does not say it (an activity
    window's subject, recording, ``start`` and ``stop``; a WAV file's path)."""

    def __init__(self, output_path: str = "predictions.jsonl") -> None:
        self.output_path = output_path
        self._rows: list[dict[str, Any]] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "predict":  # before any prediction is computed
            check_writable_file(self.output_path, "--prediction_writer.output_path")

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._rows = []

    def on_predict_batch_end(self, trainer, pl_module, outputs: dict[str, Any], batch, batch_idx, dataloader_idx=0) -> None:
        spec = pl_module.specs[outputs["task"]]
        origins = getattr(trainer.datamodule, "predict_origins", ())  # activity windows' places, WAV files
        for index, probs in zip(outputs["index"].tolist(), outputs["probs"].tolist()):
            row = {"index": index, "task": outputs["task"], **spec.prediction(probs, digits=6)}
            self._rows.append(row | origins[index] if index < len(origins) else row)

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return  # (every process of a distributed run predicts every input; one writes them)
        rows = sorted(self._rows, key=lambda r: r["index"])
        path = write_file(self.output_path, lambda tmp: tmp.write_text("".join(json.dumps(row) + "\n" for row in rows)))
        print(f"seqlab: wrote {len(self._rows)} predictions to {path}")


def one_file_saved_now(trainer: L.Trainer) -> bool:
    """Whether a checkpoint is what ``trainer.save_checkpoint`` would make of Lightning's own parts:
    one file, written when the call returns. That is the plain torch checkpoint IO (not an
    asynchronous one) under a strategy that does not shard the state, where neither the trainer's
    nor the strategy's ``save_checkpoint`` is overridden; ``ModelCheckpoint`` then writes the same
    dictionary itself, in place."""
    from lightning.pytorch.plugins.io import TorchCheckpointIO
    from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy, SingleDeviceStrategy, Strategy

    strategy = trainer.strategy
    single = isinstance(strategy, (SingleDeviceStrategy, DDPStrategy)) and not isinstance(strategy, DeepSpeedStrategy)
    plain = type(strategy).save_checkpoint is Strategy.save_checkpoint and type(trainer).save_checkpoint is L.Trainer.save_checkpoint
    return single and plain and type(strategy.checkpoint_io) is TorchCheckpointIO


class ModelCheckpoint(_LightningModelCheckpoint):
    """Lightning's ModelCheckpoint with three changes.

    - ``save_last`` keeps the weights of the last epoch. Lightning 2.6 rewrites ``last.ckpt`` only
      when a top-k checkpoint is written at the same step, so with ``save_top_k=1`` it stays a copy
      of the best once the monitored metric stops improving, and ``--ckpt_path last`` would resume
      from there.
    - A checkpoint is written to a temporary file in its own folder and renamed into place
      (``seqlab.files.write_file``); a killed writer's temporaries are removed when the next fit
      starts saving there. Lightning writes to a temporary file in the system's temp folder and
      moves it: a kill leaks that file, and where the temp folder is another file system the move
      is a copy into the final name, which a crash can cut short.
    - ``fast_dev_run`` writes no checkpoint at all, as Lightning's message says.
    """

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        from weakref import proxy

        from fsspec.implementations.local import LocalFileSystem

        if not (isinstance(self._fs, LocalFileSystem) and one_file_saved_now(trainer)):  # object storage, async or sharded saving
            return super()._save_checkpoint(trainer, filepath)
        checkpoint = trainer._checkpoint_connector.dump_checkpoint(self.save_weights_only)  # what trainer.save_checkpoint saves
        if trainer.is_global_zero:
            if not getattr(self, "_swept", False):  # a killed fit's temporaries, whatever checkpoint they were
                sweep_orphans(Path(filepath), every_target=True)
                self._swept = True
            write_file(filepath, lambda tmp: torch.save(checkpoint, tmp))  # beside the target, then renamed: old or whole new
        trainer.strategy.barrier("seqlab_checkpoint_in_place")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:  # as Lightning's: the loggers hear of it (W&B artifacts)
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run:  # a smoke test writes no checkpoint (Lightning 2.6 saves last.ckpt here regardless),
            return  # so it never becomes the newest last*.ckpt that --ckpt_path last resumes from
        super().on_train_end(trainer, pl_module)
        newest = "" if self.monitor else self.best_model_path  # without a metric, the top-k files are the newest epochs
        written = {"best": self.best_model_path if self.monitor else "", "last": self.last_model_path or newest}
        if trainer.is_global_zero and any(written.values()):  # the names a second fit into the folder gives are -v1, -v2, ...
            print("seqlab: checkpoints: " + ", ".join(f"{k} {v}" for k, v in written.items() if v), file=sys.stderr)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._keep_last(trainer)  # after this epoch's validation and top-k save, if any

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):  # else the top-k save comes at epoch end: not before it
            self._keep_last(trainer)

    def _keep_last(self, trainer: L.Trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):  # skips a step that is saved already
            candidates = self._monitor_candidates(trainer)
            if self.monitor:
                self.current_score = candidates.get(self.monitor)  # the score W&B's artifact of last.ckpt carries
            self._save_last_checkpoint(trainer, candidates)


class ProgressBar(RichProgressBar):
    """Lightning's ``RichProgressBar``, which draws nothing until the end where its output is not a
    terminal (a log file, a pipe, a CI job). There it also prints a plain line to stderr at most
    every ``every_seconds`` of a stage's batches and at the end of every training epoch (with the
    bar's metrics), so a run in the background shows that it is moving."""

    def __init__(self, every_seconds: float = 30.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.every_seconds = every_seconds
        self._plain: bool | None = None
        self._last = self._epoch_start = 0.0

    def plain_lines(self, trainer: L.Trainer) -> bool:
        """Whether to print the lines: rank 0, the bar enabled, and its console not one that rich
        draws on live (a terminal other than a dumb one, or Jupyter)."""
        if self._plain is None:
            from rich import get_console

            console = getattr(self, "_console", None) or get_console()
            self._plain = not console.is_jupyter and (not console.is_terminal or console.is_dumb_terminal)
        return self._plain and self.is_enabled and trainer.is_global_zero

    def _line(self, text: str) -> None:
        print(f"seqlab: {text}", file=sys.stderr, flush=True)
        self._last = time.monotonic()

    def _due(self, trainer: L.Trainer) -> bool:
        return self.plain_lines(trainer) and time.monotonic() - self._last >= self.every_seconds

    def _tick(self, where: str, batch_idx: int, total: float | int, extra: str = "") -> None:
        of = f"/{total}" if isinstance(total, int) or math.isfinite(total) else ""
        self._line(f"{where}: batch {batch_idx + 1}{of}{extra}")

    def _epoch(self, trainer: L.Trainer) -> str:
        last = f"/{trainer.max_epochs - 1}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        return f"epoch {trainer.current_epoch}{last}"

    def _metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str:
        shown = {k: v for k, v in self.get_metrics(trainer, pl_module).items() if k != "v_num"}
        return ", ".join(f"{k} {float(v):.4g}" if isinstance(v, (int, float, torch.Tensor)) else f"{k} {v}" for k, v in shown.items())

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self._epoch_start = self._last = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self._due(trainer):
            seconds, metrics = time.monotonic() - self._epoch_start, self._metrics(trainer, pl_module)
            self._tick(self._epoch(trainer), batch_idx, self.total_train_batches, f" ({seconds:.0f} s){', ' + metrics if metrics else ''}")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)  # after this epoch's validation: its metrics are in
        if self.plain_lines(trainer):
            metrics = self._metrics(trainer, pl_module)
            self._line(f"{self._epoch(trainer)} done in {time.monotonic() - self._epoch_start:.0f} s{': ' + metrics if metrics else ''}")

    def _eval_tick(self, trainer: L.Trainer, stage: str, several: bool, batch_idx: int, dataloader_idx: int, total: float | int) -> None:
        """A validation/test/predict line when one is due, naming the dataloader when there are several."""
        if self._due(trainer):
            self._tick(f"{stage} (dataloader {dataloader_idx})" if several else stage, batch_idx, total)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)
        if not trainer.sanity_checking:
            several = len(trainer.num_val_batches) > 1
            self._eval_tick(trainer, "validation", several, batch_idx, dataloader_idx, self.total_val_batches_current_dataloader)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        super().on_test_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)
        self._eval_tick(trainer, "test", len(trainer.num_test_batches) > 1, batch_idx, dataloader_idx, self.total_test_batches_current_dataloader)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        super().on_predict_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)
        self._eval_tick(trainer, "predict", False, batch_idx, dataloader_idx, self.total_predict_batches_current_dataloader)


class EpochTimer(L.Callback):
    """Logs wall-clock seconds and training samples per second of every training epoch."""

    def __init__(self) -> None:
        self.epoch_seconds: list[float] = []
        self.samples_per_second: list[float] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._samples = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._samples += sum(len(b["lengths"]) for b in (batch if isinstance(batch, list) else [batch]))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = time.perf_counter() - self._start
        self.epoch_seconds.append(seconds)
        self.samples_per_second.append(self._samples / seconds)
        pl_module.log_dict({"time/epoch_seconds": seconds, "time/train_samples_per_second": self._samples / seconds})


# -- W&B-or-PNG reporting -----------------------------------------------------------------------------
def active_wandb_logger(trainer: L.Trainer):
    """The trainer's WandbLogger when it logs somewhere (online or offline), else None."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and getattr(logger, "mode", None) != "disabled":
            return logger
    return None


def plots_dir(trainer: L.Trainer) -> Path:
    """Where PNG reports go: ``plots/`` beside the checkpoint directory, else under default_root_dir."""
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and getattr(checkpoint, "dirpath", None):
        return Path(checkpoint.dirpath).parent / "plots"
    return Path(trainer.default_root_dir) / "plots"


def confusion_figure(counts: torch.Tensor, labels: list[str], title: str):
    """Heatmap of a (C, C) confusion matrix (rows true, columns predicted) with counts, recall per
    row and precision per column."""
    from matplotlib.figure import Figure

    C = len(labels)
    precision, recall = precision_recall(counts)
    fig = Figure(figsize=(2.2 + 0.9 * C, 1.8 + 0.8 * C), layout="constrained")
    ax = fig.subplots()
    share = counts.float() / counts.sum(1, keepdim=True).clamp(min=1)  # row-normalised: colour = recall share
    ax.imshow(share.numpy(), cmap="Blues", vmin=0, vmax=1)
    for i in range(C):
        for j in range(C):
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", color="white" if share[i, j] > 0.5 else "black")
    true, predicted = counts.sum(1).tolist(), counts.sum(0).tolist()  # a class never true (or never predicted): n/a
    ax.set_xticks(range(C), [f"{name}\nP={p:.2f}" if n else f"{name}\nP=n/a" for name, p, n in zip(labels, precision.tolist(), predicted)])
    ax.set_yticks(range(C), [f"{name} R={r:.2f}" if n else f"{name} R=n/a" for name, r, n in zip(labels, recall.tolist(), true)])
    ax.set_xlabel("predicted (precision)")
    ax.set_ylabel("true (recall)")
    ax.set_title(title)
    return fig


def precision_recall(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class precision and recall of a (C, C) confusion matrix, rows true; 0 where undefined."""
    counts = counts.double()
    hits = counts.diagonal()
    return hits / counts.sum(0).clamp(min=1), hits / counts.sum(1).clamp(min=1)


class Redraw:
    """Drawings during a fit at most once per ``every_seconds``, the latest of each always at the end.

    A matplotlib PNG takes 0.2-0.5 s, longer than a whole epoch of a small dataset: redrawn every
    epoch it would double the fit. ``later(key, draw)`` keeps the newest ``draw`` per key and runs
    the pending ones when ``every_seconds`` have passed since the last run; ``flush()`` runs them now.
    """

    def __init__(self, every_seconds: float) -> None:
        self.every_seconds = every_seconds
        self.pending: dict[str, Callable[[], Any]] = {}
        self.last = -math.inf

    def later(self, key: str, draw: Callable[[], Any]) -> None:
        self.pending[key] = draw
        if time.monotonic() - self.last >= self.every_seconds:
            self.flush()

    def flush(self) -> None:
        for draw in self.pending.values():
            draw()
        self.pending.clear()
        self.last = time.monotonic()


class RedrawCallback(L.Callback):
    """A callback whose PNGs go through a ``Redraw``: what is pending is drawn when training ends
    or stops on an error."""

    def __init__(self, every_seconds: float) -> None:
        self.redraw = Redraw(every_seconds)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.redraw.flush()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        with contextlib.suppress(Exception):  # the latest figure if it can be drawn; never hide the real error
            self.redraw.flush()


class ConfusionMatrixLogger(RedrawCallback):
    """Per task, after each validation and test epoch: a confusion matrix, and per-class precision
    and recall logged as ``{stage}/{task}/precision/{label}`` (and ``recall``). The matrix goes to
    W&B (``{stage}/{task}/confusion_matrix``) when a WandbLogger is active, else to
    ``plots/{stage}_{task}_confusion.png``: during a fit redrawn at most every ``every_seconds``
    (and for the last validation at the end), after ``validate`` and ``test`` at once."""

    def __init__(self, every_seconds: float = 30.0) -> None:
        super().__init__(every_seconds)
        self.counts: dict[str, torch.Tensor] = {}

    def _start(self) -> None:
        self.counts = {}

    def _batch(self, pl_module: L.LightningModule, outputs: Any) -> None:
        if not isinstance(outputs, dict) or "probs" not in outputs:
            return
        task = outputs["task"]
        C = pl_module.specs[task].num_classes
        pred = outputs["probs"].argmax(-1).cpu()
        index = outputs["y"].cpu() * C + pred  # (B,)
        counts = torch.bincount(index, minlength=C * C).view(C, C)
        self.counts[task] = self.counts.get(task, torch.zeros(C, C, dtype=torch.long)) + counts

    def _end(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        logger = active_wandb_logger(trainer)
        for task, counts in self.counts.items():
            counts = trainer.strategy.reduce(counts.to(pl_module.device), reduce_op="sum").cpu().long()
            labels = list(pl_module.specs[task].labels)
            precision, recall = precision_recall(counts)
            values = {f"{stage}/{task}/precision/{name}": float(p) for name, p in zip(labels, precision)}
            values |= {f"{stage}/{task}/recall/{name}": float(r) for name, r in zip(labels, recall)}
            pl_module.log_dict(values, sync_dist=False)
            if not trainer.is_global_zero or trainer.fast_dev_run:  # a smoke test overwrites no report of a real run
                continue
            if logger is not None:
                import wandb

                y_true = torch.arange(len(labels)).repeat_interleave(counts.sum(1)).tolist()
                preds = torch.arange(len(labels)).repeat(len(labels)).repeat_interleave(counts.flatten()).tolist()
                chart = wandb.plot.confusion_matrix(y_true=y_true, preds=preds, class_names=labels, title=f"{stage} {task}")
                logger.log_metrics({f"{stage}/{task}/confusion_matrix": chart}, step=trainer.global_step)
            else:
                when = f"epoch {trainer.current_epoch}" if trainer.state.fn == "fit" else Path(trainer.ckpt_path or "current weights").name
                title, path = f"{stage} {task} · {when}", plots_dir(trainer) / f"{stage}_{task}_confusion.png"
                self.redraw.later(
                    path.name, lambda counts=counts, labels=labels, title=title, path=path: save_png(confusion_figure(counts, labels, title), path)
                )
                if trainer.state.fn != "fit":
                    self.redraw.flush()

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._batch(pl_module, outputs)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end("val", trainer, pl_module)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._batch(pl_module, outputs)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end("test", trainer, pl_module)


class GradNormLogger(L.Callback):
    """Logs ``train/grad_norm``: the global norm of the gradients the optimizer step applies,
    before gradient clipping, every logged step. (Lightning calls this hook before the model's,
    which drops the gradients of a frozen encoder and of tasks the step had no batch of: those
    are left out here too.)"""

    def __init__(self, norm_type: float = 2.0) -> None:
        self.norm_type = norm_type

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        idle = {id(p) for p in pl_module.idle_parameters()} if hasattr(pl_module, "idle_parameters") else set()
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None and id(p) not in idle]
        norms = [torch.linalg.vector_norm(g.detach().float(), self.norm_type) for g in grads]
        if norms:
            pl_module.log("train/grad_norm", torch.linalg.vector_norm(torch.stack(norms), self.norm_type), on_step=True, on_epoch=False)


class TrainingCurves(RedrawCallback):
    """Without an active WandbLogger, draws loss and accuracy per epoch of every
    ``train|val/{task}/loss|acc`` metric to ``plots/curves.png``: after a training epoch when
    ``every_seconds`` have passed since the last drawing, and at the end of the fit."""

    KEYS = ("loss", "acc")

    def __init__(self, every_seconds: float = 30.0) -> None:
        super().__init__(every_seconds)
        self.history: dict[str, list[tuple[int, float]]] = {}

    def state_dict(self) -> dict[str, Any]:
        return {"history": {key: [list(p) for p in points] for key, points in self.history.items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # a resumed fit draws the epochs before it too
        self.history = {key: [(int(e), float(v)) for e, v in points] for key, points in state_dict.get("history", {}).items()}

    def _record(self, trainer: L.Trainer, stage: str) -> None:
        for key, value in trainer.callback_metrics.items():
            parts = key.split("/")
            if len(parts) == 3 and parts[0] == stage and parts[2] in self.KEYS:
                points = self.history.setdefault(key, [])
                points[:] = [p for p in points if p[0] != trainer.current_epoch] + [(trainer.current_epoch, float(value))]

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self._record(trainer, "val")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer, "train")
        if trainer.is_global_zero and not trainer.fast_dev_run and active_wandb_logger(trainer) is None and self.history:
            path = plots_dir(trainer) / "curves.png"
            self.redraw.later("curves", lambda: save_png(self.figure(), path))  # the history as it is when drawn

    def figure(self):
        from matplotlib.figure import Figure

        fig = Figure(figsize=(11, 4), layout="constrained")
        for ax, metric in zip(fig.subplots(1, 2), self.KEYS):
            for key, points in sorted(self.history.items()):
                if key.endswith(f"/{metric}"):
                    epochs, values = zip(*sorted(points))
                    ax.plot(epochs, values, "--o" if key.startswith("train/") else "-o", label=key.rsplit("/", 1)[0], markersize=4)
            ax.set_xlabel("epoch")
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        return fig


class ConfigToWandb(L.Callback):
    """Puts the whole resolved CLI config (model, data, trainer: what ``--print_config`` shows) into
    the W&B run config under ``cli``; Lightning itself logs only the model's hyperparameters."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from lightning.pytorch.cli import SaveConfigCallback

        logger = active_wandb_logger(trainer)
        saver = next((cb for cb in trainer.callbacks if isinstance(cb, SaveConfigCallback)), None)
        if logger is None or saver is None or not trainer.is_global_zero:
            return
        import yaml

        resolved = yaml.safe_load(saver.parser.dump(saver.config, skip_none=False))
        logger.experiment.config.update({"cli": resolved}, allow_val_change=True)


FIGURES_WRITTEN: dict[Path, None] = {}  # the PNGs this process wrote, in order: the CLI names them when a command ends


def save_png(fig, path: Path) -> Path:
    """Write a matplotlib figure as PNG atomically (temporary file, then rename)."""
    written = write_file(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    FIGURES_WRITTEN[written] = None
    return written


class GateFigures(L.Callback):
    """At the end of a fit, the ``seqlab explain`` figure (gates, cell state, attributions) of the
    first validation sequence of every task (the first training sequence when a config trains
    without validation, ``data.val_size: 0``): to W&B (``gates/<task>``) when a WandbLogger is
    active, else ``plots/gates_<task>.png``. ``max_steps`` keeps the figure readable."""

    def __init__(self, max_steps: int = 60, attribution_steps: int = 16) -> None:
        self.max_steps = max_steps
        self.attribution_steps = attribution_steps

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        from seqlab.explain import draw_gates, log_figure_to_wandb, trace_input

        datamodule = trainer.datamodule
        modules = getattr(datamodule, "tasks", None) or {getattr(datamodule, "task_name", ""): datamodule}
        for task, module in modules.items():
            splits = getattr(module, "splits", {})
            split = "val" if splits.get("val") else "train"
            if task not in pl_module.specs or not splits.get(split):
                continue
            batch = module.collate("val")([splits[split][0]])  # without training augmentation
            steps = int(batch["lengths"][0])
            x = batch["x"][0, : min(steps, self.max_steps)].to(pl_module.device)  # (T,) or (T, F)
            vocab = (module.preprocessing or {}).get("vocab")
            tokens = [vocab[i] for i in x.tolist()] if vocab and x.dim() == 1 else [str(t) for t in range(len(x))]
            with torch.enable_grad():
                trace = trace_input(pl_module, task, x, tokens, attribution_steps=self.attribution_steps)
            title = f"{task}: first {'validation' if split == 'val' else 'training'} sequence"
            if steps > len(x):  # the figure's prediction is that of the steps drawn
                title += f", its first {len(x)} of {steps} steps"
            fig = draw_gates(trace, title=title)
            if trainer.fast_dev_run:  # a smoke test draws the figure but overwrites no report of a real run
                continue
            if not log_figure_to_wandb(trainer, f"gates/{task}", fig):
                save_png(fig, plots_dir(trainer) / f"gates_{task}.png")
