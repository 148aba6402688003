"""Helpers the tests share: WAV files to read, an optimizer factory for a config to name."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int, width: int = 2) -> None:
    """Write float samples in [-1, 1] ((N,) or (N, channels)) as integer PCM."""
    x = np.asarray(samples, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    scale = float(1 << (8 * width - 1))
    ints = np.clip(np.round(x * scale), -scale, scale - 1).astype(np.int64)
    if width == 1:
        raw = (ints + 128).astype(np.uint8).tobytes()
    elif width == 3:
        u = ints.reshape(-1) & 0xFFFFFF
        raw = np.stack([u & 0xFF, (u >> 8) & 0xFF, (u >> 16) & 0xFF], axis=1).astype(np.uint8).tobytes()
    else:
        raw = ints.astype({2: "<i2", 4: "<i4"}[width]).tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(x.shape[1])
        w.setsampwidth(width)
        w.setframerate(sample_rate)
        w.writeframes(raw)


def make_sgd(params, lr: float = 0.1):
    """An optimizer given as a factory function (a config's model.optimizer may name one)."""
    import torch

    return torch.optim.SGD(params, lr=lr)
