"""Reading a seqlab checkpoint without Lightning: its plain contents and the data states
(vocabulary, labels, statistics) that the tasks' DataModules stored in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from seqlab.errors import SeqlabError, first_line

STATE_KEY = "seqlab_task"
MULTI_KEY = "seqlab_tasks"  # a multi-task module's state: task name -> a task's state


def check_checkpoint_file(path: str | Path, option: str) -> Path:
    """``path`` if it is a file; a folder or a missing path stops with what to give ``option``."""
    path = Path(path)
    if path.is_dir():
        found = ", ".join(sorted(p.name for p in path.glob("*.ckpt"))[:5]) or "it holds none"
        raise SeqlabError(f"Checkpoint {path} is a folder. Give {option} a .ckpt file in it ({found}).")
    if not path.is_file():
        raise SeqlabError(
            f"Checkpoint {path} does not exist. Check {option}: a fit writes best and last checkpoints under "
            "the ModelCheckpoint dirpath of its config (runs/<task>/checkpoints)."
        )
    bad = damaged_entry(path)
    if bad is not None:
        raise SeqlabError(
            f"Checkpoint {path} is damaged: its part {bad!r} does not match its checksum (a disk or copy error), so its weights "
            "cannot be trusted. Copy it again from where it was written, or give another checkpoint of the run."
        )
    return path


def damaged_entry(path: Path) -> str | None:
    """The first part of a zip-format checkpoint (torch.save's format) whose bytes fail their CRC;
    None when all pass, or for a file that is not a whole zip (the loader's error says more)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return None


def exported_model_error(path: str | Path) -> SeqlabError | None:
    """For a TorchScript or ONNX file ``seqlab export`` wrote, given where a checkpoint belongs:
    the error that says so; else None."""
    import zipfile

    path, kind = Path(path), None
    if path.suffix == ".onnx":
        kind, runner = "ONNX", "onnxruntime"
    elif zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                if any(name.endswith("extra/seqlab.json") for name in archive.namelist()):
                    kind, runner = "TorchScript", "torch.jit.load"
        except (zipfile.BadZipFile, OSError):  # looks like a zip but is damaged: no export, the caller's error stands
            return None
    if kind is None:
        return None
    return SeqlabError(
        f"{path} is a {kind} model written by `seqlab export`, not a checkpoint: run it with {runner} (README: Export), "
        "or give the .ckpt it was exported from."
    )


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint's plain contents, with a clear error when the file is missing or unreadable."""
    path = check_checkpoint_file(path, "the path")
    exported = exported_model_error(path)
    if exported is not None:
        raise exported
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise SeqlabError(
            f"Checkpoint {path} could not be read ({first_line(err)}). It is not a seqlab/Lightning checkpoint or it is damaged."
        ) from err
    if not (isinstance(checkpoint, dict) and {"state_dict", "hyper_parameters", "pytorch-lightning_version"} <= set(checkpoint)):
        keys = sorted(checkpoint)[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise SeqlabError(f"{path} is a torch file but not a seqlab checkpoint (it holds {keys}). Give a .ckpt file that a fit wrote.")
    return checkpoint


def task_states(checkpoint: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The data states (task name -> state) that seqlab DataModules stored in a checkpoint."""
    found = {}
    for value in checkpoint.values():
        if isinstance(value, dict) and STATE_KEY in value:
            found[value[STATE_KEY]] = value
        elif isinstance(value, dict) and MULTI_KEY in value:
            found.update(task_states(value[MULTI_KEY]))
    return found
