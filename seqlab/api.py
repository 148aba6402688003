"""Plain-Python use of a trained checkpoint: ``seqlab.load(path).predict(inputs)``, no Trainer.

The checkpoint carries everything needed: the model's weights and task specs, and each task's
preprocessing (vocabulary, label names, normalisation statistics). Inputs go through the same
family code as ``python -m seqlab predict``, so both give the same probabilities (the CLI with
the checkpoint's ``model.chunk_size``, which ``seqlab.load`` always uses).
"""

from __future__ import annotations

import operator
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqlab.checkpoints import read_checkpoint, task_states
from seqlab.errors import SeqlabError, first_line


def same_data(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two checkpoints' data states (task -> state) agree; a key only one of them has
    (written by another seqlab version) is set aside."""
    if a.keys() != b.keys():
        return False
    for task in a:
        for part in ("family", "preprocessing", "settings"):
            x, y = a[task].get(part), b[task].get(part)
            if isinstance(x, dict) and isinstance(y, dict):
                if any(x[k] != y[k] for k in x.keys() & y.keys()):
                    return False
            elif x is not None and y is not None and x != y:
                return False
    return True


class Predictor:
    """A trained model and its tasks' preprocessing. ``predict`` takes what the task's family
    reads (see each DataModule's ``predict_input``): texts; DNA strings; for speech a list of
    (T, F) frame arrays; for activity a list of (samples, channels) recordings, cut into windows
    like the training data (one result per window); or a file path for any family."""

    def __init__(self, path: str | Path | Sequence[str | Path], device: str = "cpu") -> None:
        from seqlab.model import SeqModel

        self.paths = [str(path)] if isinstance(path, (str, Path)) else [str(p) for p in path]
        if not self.paths:
            raise SeqlabError("seqlab.load needs a checkpoint path (or a list of them for an ensemble).")
        self.path = self.paths[0]
        try:
            torch.empty(0, device=device)
        except (RuntimeError, AssertionError, NotImplementedError) as err:  # a mistyped device, or one this machine lacks
            raise SeqlabError(f"seqlab.load cannot use device={device!r} here ({first_line(err)}). Use device='cpu'.") from None
        states = [task_states(read_checkpoint(p)) for p in self.paths]  # each a seqlab checkpoint, or a clear error
        self.states = states[0]
        self.models = [SeqModel.load_from_checkpoint(p, map_location=device).eval() for p in self.paths]
        self.model = self.models[0]
        for other, model, other_states in zip(self.paths[1:], self.models[1:], states[1:]):
            same_specs = {n: s.to_dict() for n, s in model.specs.items()} == {n: s.to_dict() for n, s in self.model.specs.items()}
            if not same_specs or not same_data(other_states, self.states):
                raise SeqlabError(
                    f"{other} was trained on other tasks or other data settings (vocabulary, labels, statistics) than {self.path}; "
                    "an ensemble averages checkpoints of the same config, trained with different seeds."
                )
        self.device = device
        self.tasks = list(self.model.specs)
        self._modules: dict[str, Any] = {}

    def labels(self, task: str | None = None) -> list[str]:
        return list(self.model.specs[self._task(task)].labels)

    def _task(self, task: str | None) -> str:
        if task is None:
            if len(self.tasks) > 1:
                raise SeqlabError(f"This checkpoint has several tasks ({', '.join(self.tasks)}): pass task=<name>.")
            return self.tasks[0]
        if task not in self.tasks:
            raise SeqlabError(f"This checkpoint has no task {task!r}; its tasks: {', '.join(self.tasks)}.")
        return task

    def _module(self, task: str):
        """The task's DataModule, rebuilt from the checkpoint's preprocessing (no training data read)."""
        if task not in self._modules:
            import seqlab.data

            family = self.states.get(task, {}).get("family")
            cls = getattr(seqlab.data, family or "", None)
            if cls is None:
                raise SeqlabError(f"The checkpoint's task {task!r} has no data state of a known family ({family!r}); it cannot encode raw inputs.")
            module = cls(task_name=task, **self.states[task].get("settings", {}))  # e.g. DNA's rc_average
            module.preprocessing = self.states[task]["preprocessing"]
            self._modules[task] = module
        return self._modules[task]

    def _dataset(self, task: str, inputs: Any):
        """The task's DataModule and its predict dataset of ``inputs``, read as the CLI's predict
        reads them (``module.predict_origins[i]`` says where item i came from: activity windows, WAV files)."""
        module = self._module(task)
        with tempfile.TemporaryDirectory() as tmp:
            module.predict_input = self._as_input(module, inputs, Path(tmp))
            try:
                dataset = module.predict_dataset()
            except SeqlabError as err:
                given = module.predict_input
                if isinstance(given, (str, Path)) and Path(given).is_relative_to(tmp):  # arrays went through a temporary file: name them
                    raise SeqlabError(str(err).replace(str(given), "the given arrays")) from None
                raise
        return module, dataset

    def encode(self, inputs: Any, task: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, lengths)``: the right-padded batch the model reads for ``inputs`` (one row per
        window for activity). Token ids, or features with the checkpoint's deltas, windows,
        stacking and standardisation applied: what a model from ``python -m seqlab export`` takes.
        (DNA with ``rc_average``: ``predict`` also averages over the reverse complement.)"""
        if isinstance(inputs, (list, tuple)) and not inputs:
            raise SeqlabError("There is nothing to encode: the inputs are empty. Give at least one input.")
        module, dataset = self._dataset(self._task(task), inputs)
        if not len(dataset):
            raise SeqlabError("There is nothing to encode: the inputs are empty. Give at least one input.")
        batch = module.collate("predict")([dataset[i] for i in range(len(dataset))])
        return batch["x"], batch["lengths"]

    def predict_proba(self, inputs: Any, task: str | None = None, batch_size: int = 64) -> torch.Tensor:
        """(N, C) class probabilities, in the order of the inputs."""
        return self._probabilities(inputs, self._task(task), batch_size)[0]

    @torch.no_grad()
    def _probabilities(self, inputs: Any, task: str, batch_size: int) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """(N, C) probabilities, and where each input came from (activity windows, WAV files; else [])."""
        try:  # an int, or a numpy integer; not a float or a bool
            whole = None if isinstance(batch_size, (bool, np.bool_)) else operator.index(batch_size)
        except TypeError:
            whole = None
        if whole is None or whole < 1:
            raise SeqlabError(f"batch_size must be a whole number of at least 1; got {batch_size!r}.")
        batch_size = whole
        if isinstance(inputs, (list, tuple)) and not inputs:  # no inputs, no rows: as texts and DNA give, for every family
            return torch.empty(0, len(self.labels(task))), []
        module, dataset = self._dataset(task, inputs)
        collate = module.collate("predict")
        out = torch.empty(len(dataset), len(self.labels(task)))
        for start in range(0, len(dataset), batch_size):
            batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            batch = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            probs = torch.stack([model.log_probabilities(batch).exp() for model in self.models]).mean(0)  # the ensemble's mean
            out[batch["index"].cpu()] = probs.cpu()
        return out, list(module.predict_origins)

    @staticmethod
    def _as_input(module, inputs: Any, tmp: Path) -> Any:
        """Arrays for the feature families go through the same file readers as the CLI's predict."""
        family = type(module).__name__
        if isinstance(inputs, (str, Path)):
            return inputs
        if family not in ("SpeechDataModule", "ActivityDataModule"):  # texts, DNA: a pandas Series or numpy array of strings too
            return inputs if isinstance(inputs, (list, tuple)) or not hasattr(inputs, "__iter__") else list(inputs)
        if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(i, (str, Path)) for i in inputs):
            if family == "SpeechDataModule":
                return [str(i) for i in inputs]  # WAV files
            raise SeqlabError("Give one signal file (a path) or a list of 2-D arrays of numbers; only speech reads a list of paths (.wav files).")
        give = "Give a list of 2-D arrays of numbers: (time, features) frames or (samples, channels) recordings."
        try:
            one = isinstance(inputs, (np.ndarray, torch.Tensor)) and inputs.ndim == 2  # one recording
            arrays = [np.asarray(a, dtype=np.float32) for a in ([inputs] if one else inputs)]
        except (TypeError, ValueError) as err:
            raise SeqlabError(f"{give} These inputs are not ({err}).") from None
        if not arrays or any(a.ndim != 2 for a in arrays):
            raise SeqlabError(give)
        odd = [i for i, a in enumerate(arrays) if a.shape[1] != arrays[0].shape[1]]
        if odd:
            raise SeqlabError(
                f"Arrays {odd[:5]} have {arrays[odd[0]].shape[1]} columns, array 0 has {arrays[0].shape[1]}: every array needs the "
                "same features (channels), those the checkpoint was trained on."
            )
        empty = [i for i, a in enumerate(arrays) if not len(a)]
        if empty:
            raise SeqlabError(f"Arrays {empty[:5]} hold no frames or samples; drop them.")
        lengths = np.array([len(a) for a in arrays])
        if family == "SpeechDataModule":
            np.savez(tmp / "frames.npz", X=np.concatenate(arrays), lengths=lengths)
            return str(tmp / "frames.npz")
        window = module.preprocessing["window"]  # None: each recording is one window (BasicMotions)
        short = [i for i, n in enumerate(lengths) if window is not None and n < window]
        if short:
            raise SeqlabError(f"Recordings {short[:5]} are shorter than one window ({window} samples): they give no prediction. Drop them.")
        recording = np.repeat(np.arange(len(arrays)), lengths).astype(str)
        signals = {"signals": np.concatenate(arrays), "recording": recording, "subject": np.full(len(recording), "input")}
        channels = module.ensure_preprocessing()["channels"]
        if signals["signals"].shape[1] == len(channels):  # named as the checkpoint's, so an error names them too
            signals["channels"] = np.array(channels)
        np.savez(tmp / "signals.npz", **signals)
        return str(tmp / "signals.npz")

    def predict(self, inputs: Any, task: str | None = None, batch_size: int = 64) -> list[dict[str, Any]]:
        """One dict per input: ``label``, its ``probability`` and every class's ``probabilities``.
        Activity gives one per window, which also names its place: ``input`` (the array's index;
        ``subject`` and ``recording`` for a file), ``start`` and ``stop`` (sample offsets). WAV
        files (a folder is read sorted by path) are named by ``file``."""
        task = self._task(task)
        probabilities, origins = self._probabilities(inputs, task, batch_size)
        rows = [self.model.specs[task].prediction(probs) for probs in probabilities]
        arrays = not isinstance(inputs, (str, Path))
        for row, origin in zip(rows, origins):
            if arrays and "recording" in origin:  # activity arrays: the recording is the array's index
                origin = {"input": int(origin["recording"]), "start": origin["start"], "stop": origin["stop"]}
            row.update(origin)
        return rows


def load(path: str | Path | Sequence[str | Path], device: str = "cpu") -> Predictor:
    """A checkpoint ready to predict: ``seqlab.load("runs/imdb/checkpoints/last.ckpt").predict(["a review"])``.
    A list of checkpoints of one config (different seeds) predicts their mean probabilities."""
    return Predictor(path, device)
