"""Shared fixtures: offline environment, tiny generated data, CLI arguments that shrink a config."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))

POSITIVE = ["great", "wonderful", "superb", "moving", "brilliant", "funny", "loved", "best"]
NEGATIVE = ["awful", "boring", "terrible", "dull", "worst", "hated", "waste", "poor"]
FILLER = ["the", "movie", "film", "plot", "actor", "scene", "story", "was", "and", "a", "it", "<br />", "."]


def make_reviews(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Generated reviews whose sentiment words decide the label, of varied length."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        words = [rng.choice(FILLER) for _ in range(rng.randint(5, 40))]
        for _ in range(rng.randint(1, 3)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if label == "positive" else NEGATIVE))
        rows.append((" ".join(words) + f" #{i}", label))
    return rows


@pytest.fixture
def reviews_csv(tmp_path: Path) -> Path:
    import csv

    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(make_reviews(240))
    return path


def tiny_text_args(path: Path, *extra: str) -> list[str]:
    """CLI arguments that shrink configs/imdb.yaml to a seconds-long run on a generated file."""
    return [
        "--config",
        str(ROOT / "configs" / "imdb.yaml"),
        "--data.source=file",
        f"--data.path={path}",
        "--data.text_column=text",
        "--data.label_column=label",
        "--data.test_size=0.25",
        "--data.min_freq=1",
        "--data.batch_size=16",
        f"--data.cache_dir={path.parent / 'cache'}",
        "--model.embed_dim=16",
        "--model.hidden_size=16",
        "--trainer.logger=false",
        "--trainer.enable_model_summary=false",
        f"--trainer.default_root_dir={path.parent / 'run'}",
        *extra,
    ]
