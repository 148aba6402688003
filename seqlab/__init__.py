"""seqlab: multi-task LSTM sequence modelling on one shared encoder."""

from __future__ import annotations

__version__ = "0.1.0"


def load(path, device: str = "cpu"):
    """A trained checkpoint ready to predict in plain Python; see ``seqlab.api.Predictor``."""
    from seqlab.api import load as _load  # Lightning is imported only when a checkpoint is loaded

    return _load(path, device)
