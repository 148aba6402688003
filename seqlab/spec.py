"""TaskSpec: what a DataModule tells the model about a task. Plain data, no tensors."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from seqlab.errors import SeqlabError

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
    padding_idx: int = 0  # seqlab's batches pad with 0; kept as a field for the specs checkpoints hold

    def __post_init__(self) -> None:
        sizes = {"tokens": ("vocab_size", "feature_dim"), "features": ("feature_dim", "vocab_size")}
        if self.input not in sizes:
            raise SeqlabError(f"Task {self.name!r}: input must be 'tokens' or 'features', not {self.input!r}.")
        needed, other = sizes[self.input]
        given = {key: getattr(self, key) for key in (needed, other)}
        if given[needed] is None or given[other] is not None:
            raise SeqlabError(f"Task {self.name!r}: {self.input} input needs {needed} and no {other}; got {given}.")
        if self.padding_idx != 0:
            raise SeqlabError(f"Task {self.name!r}: padding_idx must be 0, the id seqlab's batches pad with; got {self.padding_idx}.")

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
