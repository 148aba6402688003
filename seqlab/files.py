"""Files and folders written whole or not at all: the writer fills a temporary name in the
target's own folder, which is then renamed into place (``os.replace``, atomic on one file
system). A crash leaves the previous version, never half a file; ``write_file`` also syncs the
file before the rename and the folder after it, so a power loss does too. Temporary names carry the host
and process id of their writer, so the next write to the same target removes those a killed
process left behind (``sweep_orphans``). (``seqlab.callbacks.ModelCheckpoint`` writes
checkpoints with ``write_file`` too.)"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

from seqlab.errors import SeqlabError


def sha256_of(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_writable_file(path: str | os.PathLike, option: str = "The output path") -> None:
    """A file about to be written must not be a folder (or lie under a file); said before any work."""
    path = Path(path)
    if path.is_dir():
        raise SeqlabError(f"{option} {path} is a folder; give the name of a file (inside it, or beside it).")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise SeqlabError(f"{option} {path} lies under {parent}, which is a file, not a folder.")


def current_umask() -> int:
    """This process's umask, read without changing it where ``/proc`` says it (``os.umask`` sets
    it to read it, a moment in which another thread's new files would get the wrong mode)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def host_tag() -> str:
    """This host's name as temporary names carry it (dots become _), with the id of the process-id
    namespace where there is one: containers that share a host name do not share process ids."""
    tag = socket.gethostname().replace(".", "_")
    try:
        return f"{tag}_ns{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return tag


def writer_tag() -> str:
    """``<host>-<pid>`` of this process, as temporary names carry it (``host_tag``)."""
    return f"{host_tag()}-{os.getpid()}"


def is_running(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (on Windows, where signal 0 would end it: assumed)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process (or no such process id at all)
        return False
    except (PermissionError, OSError):  # another user's process (or no way to tell): assume it runs
        return True
    return True


def sweep_orphans(path: Path, every_target: bool = False) -> None:
    """Remove the temporaries of ``path`` (``.<name>.<host>-<pid>.*``), or with ``every_target``
    those of any file in ``path``'s folder (``.<name>.<host>-<pid>.tmp``), whose writer ran on this
    host and no longer runs: what a killed process left. Other hosts' (a shared file system) and
    live writers' are left alone."""
    host = re.escape(host_tag())
    if every_target:
        pattern = re.compile(rf"\..+\.{host}-(\d+)\.tmp", re.S)
    else:
        pattern = re.compile(rf"{re.escape(f'.{path.name}.')}{host}-(\d+)\..+", re.S)
    if not path.parent.is_dir():
        return
    for entry in path.parent.iterdir():
        found = pattern.fullmatch(entry.name)
        if found and int(found[1]) != os.getpid() and not is_running(int(found[1])):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def write_file(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Run ``write(tmp)`` to fill a temporary file, then move it to ``path``; returns ``path``."""
    path = Path(path)
    check_writable_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_orphans(path)
    tmp = path.with_name(f".{path.name}.{writer_tag()}.tmp")
    try:
        write(tmp)
        sync(tmp)  # the bytes on disk before the name points at them: a power loss leaves the old file or the new
        os.replace(tmp, path)
        sync(path.parent)  # the rename itself
    finally:
        tmp.unlink(missing_ok=True)
    return path


def sync(path: Path) -> None:
    """``fsync`` a file, or a folder's entries where the system allows it (not on Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_folder(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Run ``write(tmp)`` to fill a temporary folder, then move it to ``path``; returns ``path``.
    For caches named by what they hold: readers never see half a cache. Where another process
    (a rank of a distributed run) finished the same folder first, its copy stays, so no reader
    loses files; a folder there that lacks some of the new files is replaced."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_orphans(path)
    prefix = f".{path.name}.{writer_tag()}."
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=prefix))
    tmp.chmod(0o777 & ~current_umask())  # mkdtemp's 0700 would keep a shared cache from its other users
    old = None
    try:
        write(tmp)
        if path.is_dir() and not {p.relative_to(tmp) for p in tmp.rglob("*")} <= {p.relative_to(path) for p in path.rglob("*")}:
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f"{prefix}old."))
            os.replace(path, old / path.name)  # an incomplete copy goes aside; files a reader holds open stay readable
        try:
            os.replace(tmp, path)
        except OSError:  # another process's complete copy is there already: it stays
            if not path.is_dir():
                raise
    finally:
        for leftover in (tmp, old):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
    return path
