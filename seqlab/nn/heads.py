"""Task heads: what turns the encoder's pooled output into predictions."""

from __future__ import annotations

from torch import Tensor, nn

from seqlab.errors import SeqlabError


class SequenceClassificationHead(nn.Module):
    """Dropout and one Linear: (B, D) pooled features -> (B, num_classes) logits.

    Binary tasks use two logits and cross-entropy too, so every classification task has one loss.
    """

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, pooled: Tensor) -> Tensor:
        """(B, in_features) pooled features, e.g. ``LSTMEncoder(...)(x, lengths)`` -> (B, num_classes) logits."""
        return self.linear(self.dropout(pooled))


HEADS: dict[str, type[nn.Module]] = {
    "binary": SequenceClassificationHead,
    "multiclass": SequenceClassificationHead,
}


def make_head(task_type: str, in_features: int, num_classes: int, dropout: float = 0.0) -> nn.Module:
    """Build the head for a task type, with an error that lists the known ones."""
    if task_type not in HEADS:
        raise SeqlabError(f"Unknown task type {task_type!r}; seqlab has heads for: {', '.join(HEADS)}.")
    return HEADS[task_type](in_features, num_classes, dropout)
