"""Weights & Biases logging that never blocks: online with credentials, offline without."""

from __future__ import annotations

import json
import netrc
import os
import struct
import sys
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger


def wandb_credentials_available() -> bool:
    """True when an API key is in the environment or in ~/.netrc for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_mode(mode: str) -> str:
    """``auto`` -> $WANDB_MODE if set, else online with credentials, else offline."""
    if mode != "auto":
        return mode
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if wandb_credentials_available() else "offline"


class WandbLogger(_LightningWandbLogger):
    """Lightning's WandbLogger with ``mode="auto"``: goes offline by itself when no credentials
    are set up, and says how to upload the run afterwards with ``wandb sync``."""

    def __init__(self, mode: Literal["auto", "online", "offline", "disabled"] = "auto", **kwargs: Any) -> None:
        self.mode = resolve_mode(mode)
        if mode == "auto" and self.mode == "offline" and not os.environ.get("WANDB_MODE"):
            print("seqlab: no W&B credentials found (WANDB_API_KEY or `wandb login`), so this run logs offline.", file=sys.stderr)
        kwargs.setdefault("save_dir", ".")
        Path(kwargs["save_dir"]).mkdir(parents=True, exist_ok=True)
        super().__init__(mode=self.mode, **kwargs)
        if self._wandb_init.get("anonymous") is None:  # wandb warns that this setting is deprecated whenever it is passed, None too
            self._wandb_init.pop("anonymous", None)

    def log_metrics(self, metrics: Any, step: int | None = None) -> None:
        self.logged = True
        super().log_metrics(metrics, step)

    def finalize(self, status: str) -> None:
        super().finalize(status)
        if self.mode == "offline" and self._experiment is not None and getattr(self, "logged", False):  # (not for a run that holds nothing)
            run_dir = Path(self._experiment.dir).parent
            print(f"seqlab: the W&B run is saved offline in {run_dir}; upload it with: wandb sync {run_dir}", file=sys.stderr)


def _leveldb_records(path: Path):
    """The raw records of a W&B transaction log (.wandb): LevelDB log blocks after a 7-byte header."""
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    block, pos, pending = 32768, 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer too small for a header: padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 or pos + 7 + length > len(data):  # end of the written part (a run still being written)
            break
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:  # full record
            yield chunk
        elif kind == 2:  # first fragment
            pending = chunk
        elif kind == 3:  # middle
            pending += chunk
        elif kind == 4:  # last
            yield pending + chunk


def read_offline_run(run_dir: str | Path, wait: float = 0.0) -> dict[str, Any]:
    """History rows, config and summary of an offline W&B run directory, read from its .wandb file.

    W&B writes the file from a background process, so a run read while (or just after) it ends
    may be incomplete: ``finished`` says whether its exit record is on disk, and ``wait`` gives
    the file up to that many seconds to get there."""
    import time

    from wandb.proto import wandb_internal_pb2 as pb

    run_dir = Path(run_dir)
    files = sorted(run_dir.glob("*.wandb"))
    if not files:
        raise FileNotFoundError(f"No .wandb file in {run_dir}")
    deadline = time.monotonic() + wait
    while True:
        history, config, summary, finished = [], {}, {}, False
        for raw in _leveldb_records(files[0]):
            record = pb.Record()
            record.ParseFromString(raw)
            kind = record.WhichOneof("record_type")
            if kind == "history":
                history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item})
            elif kind == "config":
                for item in record.config.update:
                    config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
            elif kind == "summary":
                for item in record.summary.update:
                    summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
            elif kind == "exit":
                finished = True
        if finished or time.monotonic() >= deadline:
            return {"history": history, "config": config, "summary": summary, "finished": finished}
        time.sleep(0.2)
