"""Clarified examples -> `selfheal train --include-clarified` -> a previously wrong prediction flips."""

from __future__ import annotations

import csv
import json

import numpy as np

from conftest import REPO, set_args, tiny_overrides
from selfheal.data import prepare_splits
from selfheal.logs.clarified import append_clarified, load_clarified
from selfheal.model.checkpoint import MANIFEST_FILE, checkpoint_labels
from selfheal.model.classifier import Classifier


def test_retraining_on_clarified_examples_fixes_wrong_predictions(
    tiny_run, tiny_csv, rt_splits, tmp_path, selfheal_cli
):
    before = Classifier(tiny_run.output_dir)
    labels = checkpoint_labels(tiny_run.output_dir)
    with tiny_csv.open() as fh:
        used = {row["text"] for row in csv.DictReader(fh)}
    # Real snippets the tiny model never saw (from the corpus's TRAIN split, never its test split).
    train = rt_splits["train"]
    pool = [
        (text, label)
        for text, label in zip(train["text"][5000:5300], train["label"][5000:5300], strict=True)
        if text not in used and len(text.split()) <= 20
    ]
    probs = before.predict_proba([t for t, _ in pool])
    wrong = [i for i, (_, y) in enumerate(pool) if probs[i].argmax() != y]
    wrong = sorted(wrong, key=lambda i: -probs[i].max())[:6]  # the most confidently wrong
    assert len(wrong) == 6

    # People answer: each text once with the wrong label first, then corrected (later answer wins).
    clarified = tmp_path / "clarified.jsonl"
    for n, i in enumerate(wrong):
        text, label = pool[i]
        append_clarified(clarified, text, labels.other(labels[label]), f"req-{n}a", "user_clarification")
        append_clarified(clarified, text, labels[label], f"req-{n}b", "human_review")
    # A clarified text that is held out for test must never enter training.
    with (tiny_run.output_dir / MANIFEST_FILE).open() as fh:
        manifest_before = json.load(fh)
    test_text = prepare_splits(str(tiny_csv), 0.2, 0.2, 42)["test"]["text"][0]
    append_clarified(clarified, test_text, "Positive", "req-test", "user_clarification")
    assert len(load_clarified(clarified)) == 7

    out = tmp_path / "retrained"
    sets = [*tiny_overrides(tiny_csv, out), f"paths.clarified={clarified}"]
    args = ["train", "--include-clarified", "--quiet", "--config", str(REPO / "config.yaml")]
    result = selfheal_cli(*args, *set_args(sets))
    assert result.returncode == 0, result.stderr
    assert "including 7 clarified examples" in result.stdout

    manifest_after = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest_after["hashes"]["test"] == manifest_before["hashes"]["test"]
    assert manifest_after["hashes"]["validation"] == manifest_before["hashes"]["validation"]
    assert manifest_after["sizes"]["train"] == manifest_before["sizes"]["train"] + 6

    after = Classifier(out).predict_proba([pool[i][0] for i in wrong])
    truth = np.array([pool[i][1] for i in wrong])
    p_before = probs[wrong, truth]
    p_after = after[np.arange(len(wrong)), truth]
    fixed = int((after.argmax(axis=1) == truth).sum())
    assert fixed >= 1, (p_before, p_after)  # at least one previously wrong prediction flipped
    assert p_after.mean() > p_before.mean() + 0.2  # and the model moved towards the people's labels
