"""MultiTaskDataModule: several family DataModules behind one loader, for one shared-backbone model.

Each training batch comes from one task (every task keeps its own collate, padding and length
buckets). ``mixing`` decides which task each step takes:

- ``proportional``: a task is drawn with probability proportional to n ** (1 / temperature),
  n being its training batches per epoch. ``temperature: 1`` follows the task sizes; larger
  temperatures flatten towards uniform (small tasks seen more often than their size).
- ``round_robin``: tasks take turns, one batch each; a task that has used all its batches leaves
  the turn until the epoch ends.
- ``largest_cycle``: every step holds one batch of *every* task (the model adds the weighted
  losses); smaller tasks start over until the largest has used all its batches.

An epoch is sum(n) steps for ``proportional`` and ``round_robin`` (each training sequence about
once), max(n) steps for ``largest_cycle``; ``steps_per_epoch`` sets it instead. A task that runs
out of batches inside an epoch starts its order over. The order of tasks depends only on the
seed, the epoch and the batch counts, so every process of a distributed run takes the same task
at the same step, each with its own share of that task's data.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import lightning as L
import numpy as np
from lightning.pytorch.utilities import rank_zero_only

from seqlab.checkpoints import MULTI_KEY, read_checkpoint, task_states
from seqlab.data.module import SeqDataModule, check_validate_has_data
from seqlab.errors import SeqlabError

MIXINGS = ("proportional", "round_robin", "largest_cycle")


class TaskMixer:
    """The training loader of a multi-task run: yields one task's batch per step (a list of every
    task's batch for ``largest_cycle``), in the order the module docstring describes."""

    def __init__(self, loaders: dict[str, Iterable], mixing: str, temperature: float = 1.0, steps: int | None = None, seed: int = 0) -> None:
        self.loaders, self.mixing, self.temperature, self.steps, self.seed = loaders, mixing, temperature, steps, seed
        self.epoch = 0

    @property
    def sampler(self) -> TaskMixer:
        """Lightning calls ``set_epoch`` on ``loader.sampler`` each epoch: that is us."""
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        for loader in self.loaders.values():
            batch_sampler = getattr(loader, "batch_sampler", None)
            if hasattr(batch_sampler, "set_epoch"):
                batch_sampler.set_epoch(epoch)

    def sizes(self) -> dict[str, int]:
        return {name: len(loader) for name, loader in self.loaders.items()}

    def __len__(self) -> int:
        if self.steps is not None:
            return self.steps
        sizes = self.sizes().values()
        return max(sizes) if self.mixing == "largest_cycle" else sum(sizes)

    def schedule(self) -> list[str]:
        """The task of each step of this epoch (none for ``largest_cycle``: every step has every task)."""
        sizes = self.sizes()
        names, total = list(sizes), len(self)
        if self.mixing == "largest_cycle":
            return []
        if self.mixing == "proportional":
            weights = np.array([sizes[n] for n in names], dtype=np.float64) ** (1.0 / self.temperature)
            rng = np.random.default_rng([self.seed, self.epoch])
            return [names[i] for i in rng.choice(len(names), size=total, p=weights / weights.sum())]
        order: list[str] = []
        left = dict(sizes)
        while len(order) < total:
            if not any(left.values()):
                left = dict(sizes)
            for name in names:
                if left[name] > 0 and len(order) < total:
                    order.append(name)
                    left[name] -= 1
        return order

    def __iter__(self) -> Iterator[Any]:
        iterators: dict[str, Iterator] = {}

        def next_batch(name: str) -> dict[str, Any]:
            try:
                return next(iterators[name])
            except (KeyError, StopIteration):
                iterators[name] = iter(self.loaders[name])
                return next(iterators[name])

        if self.mixing == "largest_cycle":
            for _ in range(len(self)):
                yield [next_batch(name) for name in self.loaders]
        else:
            for name in self.schedule():
                yield next_batch(name)


class Interleaved:
    """Evaluation loader: every batch of every task, the tasks taking turns (so a run limited to
    at least as many batches as tasks sees each task)."""

    def __init__(self, loaders: list[Iterable]) -> None:
        self.loaders = loaders

    def __len__(self) -> int:
        return sum(len(loader) for loader in self.loaders)

    def __iter__(self) -> Iterator[Any]:
        iterators = [iter(loader) for loader in self.loaders]
        while iterators:
            for it in list(iterators):
                batch = next(it, None)
                if batch is None:
                    iterators.remove(it)
                else:
                    yield batch


class MultiTaskDataModule(L.LightningDataModule):
    """Any number of family DataModules by task name (the key names the task), trained together.

    ``only_task`` restricts validate/test/predict to one task; predict needs it when there are
    several. ``predict_input`` is handed to that task's DataModule.
    """

    def __init__(
        self,
        tasks: dict[str, SeqDataModule],
        mixing: Literal["proportional", "round_robin", "largest_cycle"] = "proportional",
        temperature: float = 1.0,
        steps_per_epoch: int | None = None,
        only_task: str | None = None,
        predict_input: Any = None,
        seed: int = 0,
        preprocessing_from: str | None = None,
    ) -> None:
        super().__init__()
        if not tasks:
            raise SeqlabError("data.tasks is empty: give at least one task, e.g. {imdb: {class_path: seqlab.data.TextDataModule, ...}}.")
        if mixing not in MIXINGS:
            raise SeqlabError(f"Unknown data.mixing {mixing!r}; choose one of {', '.join(MIXINGS)}.")
        if temperature <= 0:
            raise SeqlabError(f"data.temperature must be positive (got {temperature}); 1 samples tasks in proportion to their size.")
        if only_task is not None and only_task not in tasks:
            raise SeqlabError(f"data.only_task={only_task!r} is not one of this run's tasks: {', '.join(tasks)}.")
        self.tasks = tasks
        checkpoint = read_checkpoint(preprocessing_from) if preprocessing_from else None  # read once for every task
        if checkpoint is not None:
            self._check_checkpoint_has_every_task(checkpoint, preprocessing_from)
        for name, module in tasks.items():
            module.task_name = name  # the key names the task
            module.in_multitask = True
            if checkpoint is not None and not module.preprocessing_from:  # (a task with its own checkpoint reads that)
                module.preprocessing = module.checkpoint_preprocessing(checkpoint, preprocessing_from)
        self.mixing, self.temperature, self.steps_per_epoch, self.seed = mixing, temperature, steps_per_epoch, seed
        self.only_task = only_task
        self.preprocessing_from = preprocessing_from
        self.predict_input = predict_input

    def _check_checkpoint_has_every_task(self, checkpoint: dict[str, Any], path: str) -> None:
        has = task_states(checkpoint)
        missing = [name for name, module in self.tasks.items() if name not in has and not module.preprocessing_from]  # (own checkpoint)
        if missing:
            raise SeqlabError(
                f"Checkpoint {path} has no task(s) {', '.join(missing)} of this multi-task config; its tasks: {', '.join(has) or 'none'}. "
                "A multi-task config reads a checkpoint of all its tasks (data.only_task picks the one to evaluate). "
                "For a checkpoint of one task, use that task's config (configs/<task>.yaml)."
            )

    @property
    def specs(self) -> dict[str, dict[str, Any]]:
        """Task name -> spec dict of every task; the CLI links this into the model."""
        return {name: spec for module in self.tasks.values() for name, spec in module.specs.items()}

    def _selected(self) -> dict[str, SeqDataModule]:
        return {self.only_task: self.tasks[self.only_task]} if self.only_task else self.tasks

    def _predict_module(self) -> SeqDataModule:
        if self.only_task is None and len(self.tasks) > 1:
            raise SeqlabError(f"predict on a multi-task model needs the task: add --data.only_task <name> (one of {', '.join(self.tasks)}).")
        return self.tasks[self.only_task or next(iter(self.tasks))]

    @property
    def predict_origins(self) -> list[dict[str, Any]]:
        """Where each predicted item came from, as the predicted task says (activity windows, WAV files)."""
        return self._predict_module().predict_origins

    def setup(self, stage: str) -> None:
        for module in self.tasks.values():
            module.trainer = self.trainer  # each task's sampler takes its rank and world size from it
            module.setup(stage)

    def train_dataloader(self) -> TaskMixer:
        loaders = {name: module.train_dataloader() for name, module in self.tasks.items()}
        empty = [name for name, loader in loaders.items() if len(loader) == 0]
        if empty:
            raise SeqlabError(f"Task(s) {', '.join(empty)} have no training batch. Check their data sources.")
        return TaskMixer(loaders, self.mixing, self.temperature, self.steps_per_epoch, self.seed)

    def val_dataloader(self) -> Interleaved:
        loaders = Interleaved([module.val_dataloader() for module in self._selected().values()])
        lack = (
            f"Task {self.only_task!r} (data.only_task) has no validation split" if self.only_task else "No task of this config has a validation split"
        )
        check_validate_has_data(self.trainer, len(loaders) > 0, lack)
        return self._warn_if_limited("val", loaders)

    def test_dataloader(self) -> Interleaved:
        return self._warn_if_limited("test", Interleaved([module.test_dataloader() for module in self._selected().values()]))

    def _warn_if_limited(self, stage: str, loaders: Interleaved) -> Interleaved:
        """A batch limit below the number of tasks evaluates only the first tasks: say so."""
        limit = getattr(self.trainer, f"limit_{stage}_batches", None)
        tasks = sum(1 for loader in loaders.loaders if len(loader))
        if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit < tasks and rank_zero_only.rank == 0:
            print(  # a line of its own, as seqlab's other notices (a warning would print this source line after it)
                f"seqlab: trainer.limit_{stage}_batches={limit} is below the {tasks} tasks evaluated: the tasks take turns a batch each, "
                f"so only the first {limit} are evaluated and {stage}/acc_macro averages those.",
                file=sys.stderr,
            )
        return loaders

    def predict_dataloader(self):
        module = self._predict_module()
        if self.predict_input is not None:
            module.predict_input = self.predict_input
        return module.predict_dataloader()

    def state_dict(self) -> dict[str, Any]:
        return {MULTI_KEY: {name: module.state_dict() for name, module in self.tasks.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        stored = state.get(MULTI_KEY, {})
        missing = [name for name in self.tasks if name not in stored]
        if missing:
            raise SeqlabError(
                f"The checkpoint has no data state for task(s) {', '.join(missing)}; the tasks it has: "
                f"{', '.join(stored) or 'none'}. Use a checkpoint trained on these tasks."
            )
        for name, module in self.tasks.items():
            module.load_state_dict(stored[name])
