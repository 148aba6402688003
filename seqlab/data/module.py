"""SeqDataModule: the LightningDataModule every family builds on.

A family fills ``self.preprocessing`` (vocabulary, label names, statistics: plain data) in
``build_preprocessing`` and ``self.splits`` (name -> SequenceDataset) in ``build_splits``; most
families keep the table read for the first in ``self._table`` for the second. The base class
turns those into a TaskSpec for the model, bucketed dataloaders, and a checkpoint entry so a
trained model can predict on new data.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

from seqlab.checkpoints import STATE_KEY, read_checkpoint, task_states
from seqlab.data.base import BucketBatchSampler, Collate, SequenceDataset
from seqlab.errors import SeqlabError, out_of_range
from seqlab.spec import TaskSpec


def check_validate_has_data(trainer: L.Trainer | None, has_val: bool, lack: str = "This config has no validation split") -> None:
    """``validate`` on data without a validation split stops with a message instead of running nothing."""
    if not has_val and trainer is not None and trainer.state.fn == "validate":
        raise SeqlabError(
            f"{lack} (data.val_size: 0), so validate has nothing to run. Use test for the test split "
            "(a data.val_size > 0 now would validate on training cases this checkpoint learned from)."
        )


class SeqDataModule(L.LightningDataModule):
    """Common machinery: spec, bucketed loaders, preprocessing stored in checkpoints."""

    # Preprocessing keys that say how sequences are cut (max_length), not how the weights read
    # them: a resumed fit may change them (its config's apply), and checkpoints may lack them.
    CUT_KEYS: tuple[str, ...] = ()

    # Set by a family whose data.source reads data.path when none was given. It stops only what
    # reads the training data, so predicting from a checkpoint needs no data.path.
    missing_path_error: str | None = None

    # Where predict item i came from, for inputs whose order alone does not say it (activity: the
    # window's subject, recording, start and stop; speech: the WAV file). Each prediction row shows it.
    predict_origins: tuple[dict[str, Any], ...] | list[dict[str, Any]] = ()

    def __init__(
        self,
        task_name: str,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        bucket_pool: int = 50,
        num_workers: int = 0,
        seed: int = 0,
        preprocessing_from: str | None = None,
        val_fold: int = 0,
    ) -> None:
        super().__init__()
        sizes = {"batch_size": batch_size, "eval_batch_size": eval_batch_size, "bucket_pool": bucket_pool}
        small = {k: v for k, v in sizes.items() if v is not None and v < 1}
        if small:
            raise out_of_range("data", small, "at least 1")
        if val_fold < 0:
            raise SeqlabError(f"data.val_fold counts validation shares from 0; got {val_fold}.")
        self.task_name = task_name
        self.in_multitask = False  # set by a MultiTaskDataModule that holds this task
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size * 2
        self.bucket_pool = bucket_pool
        self.num_workers = num_workers
        self.seed = seed
        self.val_fold = val_fold  # which val_size share of the training split validates (cross-validation folds)
        self.preprocessing_from = preprocessing_from
        self.preprocessing: dict[str, Any] | None = None
        self.splits: dict[str, SequenceDataset] = {}

    # -- what a family provides -------------------------------------------------------------
    def build_preprocessing(self) -> None:
        """Fill self.preprocessing from the training data."""
        raise NotImplementedError

    def build_splits(self) -> None:
        """Fill self.splits (train/val/test) using self.preprocessing."""
        raise NotImplementedError

    def predict_dataset(self) -> SequenceDataset:
        raise NotImplementedError

    def make_spec(self) -> TaskSpec:
        raise NotImplementedError

    def predict_settings(self) -> dict[str, Any]:
        """Init arguments beside the preprocessing that change predictions (DNA: ``rc_average``).
        Stored with the checkpoint, so ``seqlab.load`` predicts as the training config's test did."""
        return {}

    # -- shared machinery -------------------------------------------------------------------
    def ensure_preprocessing(self) -> dict[str, Any]:
        if self.preprocessing is None:
            if self.preprocessing_from:
                self.preprocessing = self.checkpoint_preprocessing(read_checkpoint(self.preprocessing_from), self.preprocessing_from)
            else:
                self.check_path()
                self.build_preprocessing()
        return self.preprocessing

    @property
    def spec(self) -> TaskSpec:
        self.ensure_preprocessing()
        return self.make_spec()

    @property
    def specs(self) -> dict[str, dict[str, Any]]:
        """Task name -> spec dict; the CLI links this into the model."""
        return {self.task_name: self.spec.to_dict()}

    def preprocessing_in(self, checkpoint: dict[str, Any], where: str | Path) -> dict[str, Any]:
        states = task_states(checkpoint)
        state = states.get(self.task_name)
        if state is None or state.get("family") != type(self).__name__:
            has = ", ".join(f"{k} ({v.get('family')})" for k, v in states.items()) or "none"
            kin = [k for k, v in states.items() if v.get("family") == type(self).__name__]
            if len(states) > 1 and not self.in_multitask:  # a multi-task checkpoint: its own config runs one of its tasks
                fix = "A multi-task checkpoint runs with its multi-task config (e.g. configs/multitask.yaml, --data.only_task <task>). Or use"
            elif len(kin) == 1 and state is None:
                fix = f"If it was trained under that name with this config (data.task_name), add --data.task_name {kin[0]}; otherwise use"
            else:
                fix = "Use"
            raise SeqlabError(
                f"Checkpoint {where} has no task {self.task_name!r} of {type(self).__name__}; the tasks it "
                f"has: {has}. {fix} a checkpoint trained on this task, or the config of the task it was trained on."
            )
        return state["preprocessing"]

    def checkpoint_preprocessing(self, checkpoint: dict[str, Any], where: str | Path) -> dict[str, Any]:
        """The checkpoint's preprocessing for validate, test and predict, with a line naming the data
        settings of this config it replaces (e.g. ``k=3 (config: 4)``): the weights read inputs as
        they were trained to."""
        preprocessing = self.preprocessing_in(checkpoint, where)
        replaced = [f"{key}={stored!r} (config: {mine!r})" for key, (stored, mine) in self.replaced_settings(preprocessing).items()]
        if replaced and rank_zero_only.rank == 0:
            print(f"seqlab: task {self.task_name}: the checkpoint's data settings apply: {', '.join(replaced)}.", file=sys.stderr)
        return preprocessing

    def replaced_settings(self, preprocessing: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """The settings of this config that a checkpoint's ``preprocessing`` replaces, as name ->
        (checkpoint's, config's): here its entries named like an init argument of the family."""
        params = inspect.signature(type(self).__init__).parameters
        plain = (int, float, str, bool, type(None))
        return {
            key: (value, getattr(self, key))
            for key, value in preprocessing.items()
            if key in params and isinstance(value, plain) and isinstance(getattr(self, key, ()), plain) and getattr(self, key) != value
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            STATE_KEY: self.task_name,
            "family": type(self).__name__,
            "preprocessing": self.ensure_preprocessing(),
            "settings": self.predict_settings(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        stored = self.preprocessing_in({"state": state}, "being loaded")
        if self.preprocessing is None:
            self.preprocessing = stored
            return

        def reading(p: dict[str, Any]) -> dict[str, Any]:  # how the weights read inputs; how the data is cut may change
            return {k: v for k, v in p.items() if k not in self.CUT_KEYS}

        if reading(stored) != reading(self.preprocessing):
            raise SeqlabError(
                f"The checkpoint's preprocessing for task {self.task_name!r} (vocabulary, labels or "
                "statistics) differs from the one built from this config's data, so its weights would "
                "read the inputs wrongly. Use the data settings the checkpoint was trained with."
            )

    def check_labels(self, labels: list[str]) -> None:
        """Stop when this data's label set differs from the one the preprocessing was built with."""
        trained = self.preprocessing["labels"]
        if labels != trained:
            fix = (
                "If they are the same classes in another order, or some classes are absent from this data, set the task's "
                f"data.labels to the checkpoint's: {json.dumps(trained)} (--data.labels=... on the command line; in a multi-task "
                "config --data.tasks.<task>.init_args.labels=...)."
                if set(labels) <= set(trained)
                else f"Labels {sorted(set(labels) - set(trained))} are not among them: use a checkpoint trained on these classes."
            )
            raise SeqlabError(f"This data has labels {labels}, the checkpoint was trained on {trained}. {fix}")

    def setup(self, stage: str) -> None:
        self.ensure_preprocessing()
        if stage in ("fit", "validate", "test") and not self.splits:
            self.check_path()
            self.build_splits()
        if stage == "fit" and not len(self.splits["val"]):
            self._check_no_val_monitor()

    def check_path(self) -> None:
        if self.missing_path_error:
            raise SeqlabError(self.missing_path_error)

    @property
    def alone(self) -> bool:
        """Whether this task is the whole run, not one task of a MultiTaskDataModule."""
        return not self.in_multitask

    def _check_no_val_monitor(self) -> None:
        """Without a validation split, no callback may wait for this task's validation metrics."""
        trainer = self.trainer
        if trainer is None:
            return
        for cb in trainer.callbacks:  # (a multi-task run may monitor other tasks)
            monitor = getattr(cb, "monitor", None)
            if monitor and (monitor.startswith(f"val/{self.task_name}/") or (self.alone and monitor.startswith("val/"))):
                raise SeqlabError(
                    f"{type(cb).__name__} monitors {monitor!r}, but data.val_size is 0: there is no validation split. "
                    "Give data.val_size > 0, or set the callback's monitor to null (ModelCheckpoint then keeps the last epoch)."
                )

    def _loader(self, split: str, shuffle: bool, batch_size: int) -> torch.utils.data.DataLoader:
        if split not in self.splits:
            self.setup("fit")
        dataset = self.splits[split]
        trainer = self.trainer
        sampler = BucketBatchSampler(
            dataset.lengths(),
            batch_size,
            shuffle=shuffle,
            pool=self.bucket_pool,
            seed=self.seed,
            num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
        )
        return torch.utils.data.DataLoader(
            dataset, batch_sampler=sampler, collate_fn=self.collate(split), num_workers=self.num_workers, persistent_workers=self.num_workers > 0
        )

    def collate(self, split: str) -> Collate:
        """The collate function for a split ("train", "val", "test" or "predict")."""
        return Collate(self.task_name)

    def train_dataloader(self):
        return self._loader("train", True, self.batch_size)

    def val_dataloader(self):
        if "val" not in self.splits:
            self.setup("fit")
        if not len(self.splits["val"]):
            if self.alone:  # (a multi-task module checks all its tasks)
                check_validate_has_data(self.trainer, False)
            return []  # data.val_size: 0, no validation split: Lightning skips validation
        return self._loader("val", False, self.eval_batch_size)

    def test_dataloader(self):
        return self._loader("test", False, self.eval_batch_size)

    def predict_dataloader(self):
        self.ensure_preprocessing()
        dataset = self.predict_dataset()
        if len(dataset) == 0:
            raise SeqlabError("data.predict_input holds nothing to predict on (an empty list or file). Give at least one input.")
        return torch.utils.data.DataLoader(dataset, batch_size=self.eval_batch_size, shuffle=False, collate_fn=self.collate("predict"))
