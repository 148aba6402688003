"""Files and folders written whole or not at all: the writer fills a temporary name in the
target's own folder, which is then renamed into place (``os.replace``, atomic on one file
system). A crash leaves the previous version, never half a file. (Checkpoints do the same in
``seqlab.callbacks.ModelCheckpoint``, through the trainer.)"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_file(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Run ``write(tmp)`` to fill a temporary file, then move it to ``path``; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_folder(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Run ``write(tmp)`` to fill a temporary folder, then move it to ``path`` (replacing an old
    one); returns ``path``. Readers never see half a cache."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        write(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path
