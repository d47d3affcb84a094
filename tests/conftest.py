"""Shared fixtures: real data, a tiny real training run, the shipped checkpoint."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def rt_splits():
    """The real Rotten Tomatoes split used by the shipped model (seed 42, 80/10/10)."""
    from selfheal.data import prepare_splits

    return prepare_splits("rotten_tomatoes", 0.1, 0.1, 42)


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory, rt_splits) -> Path:
    """A 72-row CSV of real snippets drawn from the TRAIN split only (never test texts)."""
    from selfheal.labels import LABELS

    train = rt_splits["train"]
    rows, counts = [], {0: 0, 1: 0}
    for text, label in zip(train["text"], train["label"], strict=True):
        if counts[label] < 36 and len(text.split()) <= 20:
            counts[label] += 1
            rows.append({"text": text, "label": LABELS[label]})
        if len(rows) == 72:
            break
    path = tmp_path_factory.mktemp("data") / "tiny.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def tiny_overrides(data: Path, output_dir: Path) -> list[str]:
    """Config overrides for a training run of a few seconds on ``data``."""
    return [
        f"data.source={data}",
        "data.val_size=0.2",
        "data.test_size=0.2",
        "training.epochs=2",
        "training.batch_size=8",
        "training.learning_rate=3e-3",
        "training.warmup_ratio=0",
        f"paths.output_dir={output_dir}",
    ]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_csv):
    """One real tiny LoRA training run (same code path as `selfheal train`)."""
    from selfheal.config import load_config
    from selfheal.model.train import train

    out = tmp_path_factory.mktemp("ckpt") / "tiny"
    return train(load_config(REPO / "config.yaml", tiny_overrides(tiny_csv, out)), quiet=True)


@pytest.fixture(scope="session")
def shipped_classifier():
    """The checkpoint shipped in the package, loaded once."""
    from selfheal.model.classifier import Classifier

    return Classifier.load(None)
