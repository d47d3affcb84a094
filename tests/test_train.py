"""A tiny real LoRA training run through the same code path as `selfheal train`."""

from __future__ import annotations

import csv
import json

import numpy as np

from selfheal.labels import MOVIE_LABELS
from selfheal.model.checkpoint import MANIFEST_FILE, META_FILE, TRAINING_LOG_FILE
from selfheal.model.classifier import Classifier


def test_tiny_training_lowers_loss_and_writes_a_checkpoint(tiny_run, tiny_csv):
    history = tiny_run.history
    assert len(history) == 2
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    out = tiny_run.output_dir
    for name in (
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        META_FILE,
        MANIFEST_FILE,
        TRAINING_LOG_FILE,
        "metrics.json",
        "backup_tfidf.json.gz",
        "embedder_head.json.gz",
        "knowability.json.gz",
        "training_config.yaml",
        "README.md",
    ):
        assert (out / name).exists(), name
    with (out / TRAINING_LOG_FILE).open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"train_loss", "val_accuracy", "val_macro_f1", "learning_rate", "seconds"} <= set(rows[0])
    meta = json.loads((out / META_FILE).read_text())
    assert meta["temperature"] == tiny_run.temperature > 0
    assert meta["labels"] == list(MOVIE_LABELS)  # the tiny file's names, sorted: Negative, Positive
    assert meta["without_embedder"]["temperature"] > 0 and meta["embedder_weight"] >= 0
    card = (out / "README.md").read_text()
    # The card names its data: here the user's file (the movie corpus' card names Pang & Lee).
    assert card.startswith("---\nlibrary_name: peft") and f"`{tiny_csv}`" in card


def test_checkpoint_reloads_and_reproduces_its_test_metrics(tiny_run, tiny_csv):
    from conftest import REPO, tiny_overrides
    from selfheal.config import load_config
    from selfheal.model.train import load_training_splits

    clf = Classifier(tiny_run.output_dir)
    splits, _ = load_training_splits(
        load_config(REPO / "config.yaml", tiny_overrides(tiny_csv, tiny_run.output_dir))
    )
    probs = clf.predict_proba(list(splits["test"]["text"]))
    accuracy = float(np.mean(probs.argmax(1) == np.asarray(splits["test"]["label"])))
    assert accuracy == tiny_run.metrics["test"]["accuracy"]
    preds = clf.predict(["A warm, funny and moving film.", "Dull."])
    assert all(p.label in clf.labels and abs(sum(p.probs.values()) - 1) < 1e-6 for p in preds)
    # the knowability check fitted at the end of training is loaded and scores every input
    assert clf.knowability is not None and clf.knowability.coef is not None
    assert all(p.knowability is not None and p.knowability["p_review"] is not None for p in preds)


def test_sample_path_uses_the_same_code(tmp_path, tiny_csv):
    from conftest import REPO, tiny_overrides
    from selfheal.config import load_config
    from selfheal.model.train import train

    overrides = [*tiny_overrides(tiny_csv, tmp_path / "s"), "data.sample=16", "training.epochs=1"]
    result = train(load_config(REPO / "config.yaml", overrides), quiet=True)
    assert json.loads((result.output_dir / META_FILE).read_text())["train_size"] == 16


def test_a_missing_embedder_fails_before_training(tmp_path, tiny_csv):
    import pytest

    from conftest import REPO, tiny_overrides
    from selfheal.config import load_config
    from selfheal.model.checkpoint import ModelError
    from selfheal.model.train import train

    overrides = [*tiny_overrides(tiny_csv, tmp_path / "never"), f"embedder.model={tmp_path / 'absent'}"]
    with pytest.raises(ModelError, match=r"embedder\.model"):
        train(load_config(REPO / "config.yaml", overrides), quiet=True)
    assert not (tmp_path / "never").exists()  # nothing was trained or written


def test_a_checkpoint_trained_without_the_embedder_loads_and_predicts(tmp_path, tiny_csv):
    from conftest import REPO, tiny_overrides
    from selfheal.config import load_config
    from selfheal.model.train import train

    overrides = [*tiny_overrides(tiny_csv, tmp_path / "small"), "embedder.enabled=false", "training.epochs=1"]
    result = train(load_config(REPO / "config.yaml", overrides), quiet=True)
    assert not (result.output_dir / "embedder_head.json.gz").exists()
    clf = Classifier(result.output_dir)
    assert "embedder" not in clf.members
    assert clf.fitted_temperature == result.temperature
    preds = clf.predict(["A warm, funny and moving film.", "Dull."])
    assert all(p.label in clf.labels and abs(sum(p.probs.values()) - 1) < 1e-6 for p in preds)
