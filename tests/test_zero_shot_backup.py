"""The Hugging Face ``zero-shot-classification`` backup.

No NLI model can be installed here (the Hub is unreachable), so this test builds a tiny, randomly
initialised NLI-shaped model itself: a 1-layer BertForSequenceClassification with labels
entailment/neutral/contradiction and the real MiniLM WordPiece tokenizer, saved to tmp_path.
Its predictions are meaningless; the test checks that the pipeline path runs end to end, in
the backup ensemble and in the graph, and returns well-formed probabilities.
"""

from __future__ import annotations

import numpy as np
import pytest

from selfheal.config import ConfigError, load_config
from selfheal.graph.nodes import backup_step
from selfheal.graph.services import Services
from selfheal.model.backup import BackupEnsemble, ZeroShotPipelineBackup
from selfheal.model.checkpoint import resolve_base_model


@pytest.fixture(scope="module")
def tiny_nli(tmp_path_factory):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(None))
    labels = ["entailment", "neutral", "contradiction"]
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_nli")
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_pipeline_backup_returns_probabilities_in_label_order(tiny_nli):
    backup = ZeroShotPipelineBackup(str(tiny_nli))
    probs = backup.predict_proba(["A joy from start to finish.", "A tedious, joyless slog."])
    assert probs.shape == (2, 2)
    assert np.allclose(probs.sum(axis=1), 1.0) and (probs >= 0).all()


def test_pipeline_backup_takes_the_label_names_of_any_label_set(tiny_nli):
    from selfheal.labels import LabelSet

    tweets = ZeroShotPipelineBackup(str(tiny_nli), LabelSet(("negative", "neutral", "positive")))
    assert tweets.candidates == ["negative", "neutral", "positive"]
    assert tweets.hypothesis_template == "The sentiment of this text is {}."
    probs = tweets.predict_proba(["Flight delayed again.", "Boarding now.", "Great crew!"])
    assert probs.shape == (3, 3) and np.allclose(probs.sum(axis=1), 1.0)
    topics = ZeroShotPipelineBackup(str(tiny_nli), LabelSet(("Billing", "Delay")))
    assert (
        topics.candidates == ["billing", "delay"] and topics.hypothesis_template == "This text is about {}."
    )


def test_zero_shot_backup_in_the_graph(tiny_nli, tmp_path):
    config = load_config(
        None,
        [
            f"paths.log_dir={tmp_path / 'logs'}",
            "backup.models=[zero_shot,vader]",
            "backup.voters=null",
            f"backup.zero_shot_model={tiny_nli}",
        ],
    )
    services = Services(config, backups=BackupEnsemble(config))  # the classifier is never loaded
    state = {
        "request_id": "r",
        "text": "An uneven but oddly charming film.",
        "inference": {"label": "Positive", "probs": {"Negative": 0.4, "Positive": 0.6}, "confidence": 0.6},
        "fallback": {"activated": True, "strategy": "escalate"},
    }
    backup = backup_step(state, services)["fallback"]["backup"]
    assert list(backup["models"]) == ["zero_shot", "vader"]
    assert sum(backup["probs"].values()) == pytest.approx(1.0, abs=1e-5)


def test_zero_shot_without_a_model_is_a_config_error():
    with pytest.raises(ConfigError, match="zero_shot_model"):
        load_config(None, ["backup.models=[zero_shot]"])
