"""Any label set, model side: a tiny real 3-label training run through the same code path as
`selfheal train` (90 real tweets, tests/data/tweets_3class.csv), the checkpoint it writes, the
classifier that loads it and the backups that vote over its labels."""

from __future__ import annotations

import json
import logging
import struct

import numpy as np
import pytest

from conftest import REPO, sklearn_tfidf, tiny_overrides
from selfheal.labels import LabelSet
from selfheal.model.checkpoint import MANIFEST_FILE, META_FILE, ModelError, checkpoint_labels

TWEETS = REPO / "tests" / "data" / "tweets_3class.csv"
LABELS = LabelSet(("negative", "neutral", "positive"))


@pytest.fixture(scope="module")
def config3(tmp_path_factory):
    from selfheal.config import load_config

    out = tmp_path_factory.mktemp("ckpt3") / "tweets"
    return load_config(REPO / "config.yaml", tiny_overrides(TWEETS, out))


@pytest.fixture(scope="module")
def run3(config3):
    from selfheal.model.train import train

    return train(config3, quiet=True)


def _safetensors_shapes(path) -> dict[str, list[int]]:
    with path.open("rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(length))
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}


def test_the_checkpoint_stores_the_3_labels_of_its_data(run3):
    out = run3.output_dir
    meta = json.loads((out / META_FILE).read_text())
    assert meta["labels"] == ["negative", "neutral", "positive"]
    assert meta["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    assert checkpoint_labels(out) == LABELS
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["labels"] == list(LABELS) and manifest["checks"]["kept"] == 90
    assert run3.checks == manifest["checks"]
    # every member has one output per label
    heads = {
        k: s for k, s in _safetensors_shapes(out / "adapter_model.safetensors").items() if "classifier" in k
    }
    assert sorted(heads.values()) == [[3], [3, 384]]
    from selfheal.model.backup import TfidfBackup
    from selfheal.model.embedder import EmbeddingHead

    tfidf = TfidfBackup.load(out)
    assert tfidf.classes == [0, 1, 2] and tfidf.coef.shape[0] == 3
    texts = ["great service, thanks!", "the flight was delayed again", "boarding at gate 4"]
    np.testing.assert_allclose(
        tfidf.predict_proba(texts), sklearn_tfidf(out).predict_proba(texts), atol=1e-12
    )
    head = EmbeddingHead.load(out)
    assert head.n_labels == 3 and head.labels == LABELS.names and head.coef.shape[0] == 3
    card = (out / "README.md").read_text()
    assert "# selfheal classifier, 3 labels" in card and "negative / neutral / positive" in card
    assert "Pang" not in card  # not the movie model's card
    from selfheal.model.card import card_metadata

    assert card_metadata(out)["model-index"][0]["name"] == "selfheal-minilm-lora-3class"  # valid front matter


def test_macro_f1_picks_the_best_epoch(run3):
    f1 = [row["val_macro_f1"] for row in run3.history]
    assert run3.best_epoch == 1 + int(np.argmax(f1))
    assert run3.metrics["test"]["n"] == 18 and 0 <= run3.metrics["test"]["f1_macro"] <= 1


def test_the_classifier_predicts_3_probabilities_and_reproduces_its_test_metrics(run3, config3):
    from selfheal.model.classifier import Classifier
    from selfheal.model.train import load_training_splits

    clf = Classifier(run3.output_dir)
    assert clf.labels == LABELS
    preds = clf.predict(
        ["@united thank you, great crew!", "My flight was cancelled again.", "Boarding at 10"]
    )
    for p in preds:
        assert list(p.probs) == list(LABELS) and p.label in LABELS
        assert sum(p.probs.values()) == pytest.approx(1.0) and p.confidence == max(p.probs.values())
    splits, _ = load_training_splits(config3)
    probs = clf.predict_proba(list(splits["test"]["text"]))
    assert probs.shape == (18, 3)
    accuracy = float(np.mean(probs.argmax(1) == np.asarray(splits["test"]["label"])))
    assert accuracy == run3.metrics["test"]["accuracy"]


def test_the_backups_vote_over_the_checkpoints_3_labels(run3, config3):
    from selfheal.model.backup import BackupEnsemble

    backups = BackupEnsemble(config3, run3.output_dir)
    assert backups.labels == LABELS
    vote = backups.predict("I love this airline, the best crew ever!")
    assert list(vote["models"]) == ["tfidf", "vader", "embedding"]
    for result in [vote, *vote["models"].values()]:
        assert list(result["probs"]) == list(LABELS)
        assert sum(result["probs"].values()) == pytest.approx(1.0, abs=1e-5)
    assert vote["models"]["vader"]["label"] == "positive"
    assert backups.predict("The flight leaves at ten.")["models"]["vader"]["label"] == "neutral"


def test_vader_maps_its_compound_score_to_3_labels():
    from selfheal.model.backup import vader_probs

    polarities = ["negative", "neutral", "positive"]
    probs = vader_probs(np.array([-1.0, -0.3, 0.0, 0.05, 0.6]), polarities)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert ((probs > 0) & (probs < 1)).all()
    assert probs.argmax(axis=1).tolist() == [0, 0, 1, 1, 2]  # |c| <= 0.05 is neutral (VADER's rule)
    np.testing.assert_allclose(probs[2], [0.25, 0.5, 0.25])  # no sentiment words: neutral at 1/2
    assert probs[3, 1] == pytest.approx(probs[3, 2])  # the edge of the neutral band is a tie
    assert probs[1, 0] == pytest.approx(0.955, abs=1e-3) and probs[4, 2] > 0.99
    binary = vader_probs(np.array([-0.5, 0.5]), ["negative", "positive"])  # the movie model's mapping
    np.testing.assert_allclose(binary, [[0.75, 0.25], [0.25, 0.75]])


def test_a_backup_that_cannot_serve_the_labels_is_skipped_with_one_warning(caplog):
    from selfheal.config import load_config
    from selfheal.model.backup import BackupEnsemble, label_descriptions

    topics = LabelSet(("billing", "delay", "other"))
    config = load_config(REPO / "config.yaml", ["backup.models=[vader,embedding]", "backup.voters=null"])
    backups = BackupEnsemble(config, labels=topics)
    with caplog.at_level(logging.WARNING, logger="selfheal.model.backup"):
        backups.load()
        backups.load()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "vader" in warnings[0] and "billing" in warnings[0]
    assert backups.names == ["embedding"]
    assert label_descriptions(topics)["delay"] == ["delay", "a text about delay"]
    vote = backups.predict("My flight is three hours late.")
    assert list(vote["probs"]) == list(topics) and list(vote["models"]) == ["embedding"]
    only_vader = BackupEnsemble(
        load_config(REPO / "config.yaml", ["backup.models=[vader]", "backup.voters=null"]), labels=topics
    )
    with pytest.raises(ModelError, match=r"no backup in backup\.models"):
        only_vader.load()
