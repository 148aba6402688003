"""TaskSpec: what a DataModule tells the model about a task. Plain data, no tensors."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

InputKind = Literal["tokens", "features"]
TaskType = Literal["binary", "multiclass"]


@dataclass(frozen=True)
class TaskSpec:
    """Sizes and names the data decides: input kind and width, classes, task type."""

    name: str
    input: InputKind
    task_type: TaskType
    labels: list[str] = field(default_factory=list)
    vocab_size: int | None = None
    feature_dim: int | None = None
    padding_idx: int = 0

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def prediction(self, probs: Iterable[float], digits: int | None = None) -> dict[str, Any]:
        """One input's class probabilities -> its ``label``, that label's ``probability`` and
        every class's ``probabilities`` (rounded to ``digits`` if given): a row of predict's output."""
        values = [float(p) for p in probs]
        best = max(range(len(values)), key=values.__getitem__)  # the first of equal maxima, as argmax
        if digits is not None:
            values = [round(v, digits) for v in values]
        return {"label": self.labels[best], "probability": values[best], "probabilities": dict(zip(self.labels, values))}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSpec:
        return cls(**data)


def classification_type(labels: list[str]) -> TaskType:
    return "binary" if len(labels) == 2 else "multiclass"
