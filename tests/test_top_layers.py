"""mpnet's last layers fine-tuned from cached states (selfheal.model.top_layers), on the real
bundled all-mpnet-base-v2 and real movie-review snippets: a few training steps, then a round trip
through peft's adapter files gives the same logits."""

from __future__ import annotations

import numpy as np
import pytest

from selfheal.model import top_layers as tl


@pytest.fixture(scope="module")
def mpnet():
    from transformers import AutoModel, AutoTokenizer

    from selfheal.model.embedder import bundled_embedder_path

    path = str(bundled_embedder_path())
    return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def test_the_layers_train_and_round_trip(mpnet, rt_splits, tmp_path):
    model, tokenizer = mpnet
    texts = list(rt_splits["train"]["text"][:24])
    labels = np.asarray(rt_splits["train"]["label"][:24])
    recipe = tl.TopLayersRecipe(top=1, rank=4, epochs=2, batch_size=8)
    after = model.config.num_hidden_layers - recipe.top
    batches = tl.cache_states(model, tokenizer, texts, after, recipe.batch_size)
    assert sorted(np.concatenate([idx for idx, _, _ in batches]).tolist()) == list(range(24))
    losses: list[str] = []
    top = tl.train_top(model, batches, labels, recipe, num_labels=2, log=losses.append)
    assert len(losses) == 2
    trained = [n for n, p in top.named_parameters() if p.requires_grad]
    assert trained and all("lora_" in n or "head" in n for n in trained)
    logits = tl.top_logits(top, batches, len(texts))
    assert logits.shape == (24, 2) and np.isfinite(logits).all()

    tl.save_top(top, tmp_path / tl.TOP_DIR, recipe, num_labels=2)
    loaded, got = tl.load_top(model, tmp_path / tl.TOP_DIR)
    assert got == recipe
    np.testing.assert_allclose(tl.top_logits(loaded, batches, len(texts)), logits, atol=1e-5)


def test_the_frozen_layers_are_untouched(mpnet, rt_splits):
    model, tokenizer = mpnet
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    recipe = tl.TopLayersRecipe(top=1, rank=4, epochs=1, batch_size=8)
    texts = list(rt_splits["train"]["text"][:8])
    batches = tl.cache_states(model, tokenizer, texts, model.config.num_hidden_layers - 1)
    tl.train_top(model, batches, np.asarray(rt_splits["train"]["label"][:8]), recipe, num_labels=2)
    assert all(np.array_equal(before[n], p.detach()) for n, p in model.named_parameters())


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_the_backup_gives_the_trained_layers_answers_from_raw_text(mpnet, rt_splits, tmp_path, runtime):
    """TopLayersBackup (the whole model from text: mpnet's first layers, then the merged LoRA
    layers and the head; on torch or an ONNX export) agrees with the layers on cached states."""
    from selfheal.model.calibrate import softmax
    from selfheal.model.embedder import bundled_embedder_path

    model, tokenizer = mpnet
    texts = [*rt_splits["validation"]["text"][:12], "🤮", "Un film ennuyeux et beaucoup trop long."]
    recipe = tl.TopLayersRecipe(top=1, rank=4, epochs=1, batch_size=8)
    after = model.config.num_hidden_layers - recipe.top
    train = tl.cache_states(model, tokenizer, list(rt_splits["train"]["text"][:16]), after, 8)
    top = tl.train_top(model, train, np.asarray(rt_splits["train"]["label"][:16]), recipe, num_labels=2)
    tl.save_top(top, tmp_path / tl.TOP_DIR, recipe, num_labels=2)
    expected = softmax(tl.top_logits(top, tl.cache_states(model, tokenizer, texts, after, 8), len(texts)))

    assert tl.has_top(tmp_path)
    backup = tl.TopLayersBackup(tmp_path, str(bundled_embedder_path()), runtime=runtime)
    got = backup.predict_proba(texts)
    assert got.shape == (len(texts), 2)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert (backup.export_path is None) == (runtime == "torch")
    assert len(model.encoder.layer) == model.config.num_hidden_layers  # the shared model is not cut


def test_a_checkpoint_without_the_layers_is_a_clear_error(tmp_path):
    from selfheal.model.checkpoint import ModelError

    assert not tl.has_top(tmp_path)
    with pytest.raises(ModelError, match=r"no fine-tuned top layers in .*selfheal train-voter"):
        tl.TopLayersBackup(tmp_path, "unused")


def test_a_checkpoint_without_the_layers_skips_the_backup_with_a_warning(caplog):
    """The 3-class tweets checkpoint has no ``embedder_top/``: ``mpnet_top`` is skipped (one
    warning), the other backups vote, and the no-person rule then finds its voter missing."""
    from conftest import REPO
    from selfheal.config import load_config
    from selfheal.model.backup import BackupEnsemble

    tweets = REPO / "models" / "tweets-3class"
    config = load_config(
        REPO / "config.yaml", ["backup.models=[tfidf,mpnet_top]", "backup.voters=[mpnet_top]"]
    )
    ensemble = BackupEnsemble(config, tweets)
    with caplog.at_level("WARNING"):
        ensemble.load()
    assert ensemble.names == ["tfidf"]
    assert "backup mpnet_top skipped" in caplog.text and "selfheal train-voter" in caplog.text


def test_train_voter_with_more_layers_than_mpnet_is_one_line_before_any_training(selfheal_cli):
    result = selfheal_cli("train-voter", "--top", "13")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1
    assert lines[0].startswith("error: voter.top must be 1..12")


def test_the_state_cache_keeps_the_newest_states_within_its_budget():
    from selfheal.model.embedder import StateCache

    cache = StateCache(budget=3 * 4 * 8)  # three (4, 2) float32 arrays... of 32 bytes each
    arrays = {f"text {i}": np.full((4, 2), i, dtype=np.float32) for i in range(5)}
    for text, states in arrays.items():
        cache.put(text, states)
    assert len(cache) == 3 and cache.size == 96
    assert cache.get("text 0") is None and cache.get("text 1") is None
    np.testing.assert_array_equal(cache.get("text 4"), arrays["text 4"])
    cache.put("huge", np.zeros((100, 2), dtype=np.float32))  # larger than the budget: not kept
    assert cache.get("huge") is None and len(cache) == 3


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_the_voter_runs_on_the_embedders_kept_states_with_the_same_answers(
    mpnet, rt_splits, tmp_path, runtime, monkeypatch
):
    """With a sentence encoder that keeps the states after layer ``12 - top`` (the primary
    model's embedder), the voter runs only its top layers on them: the same probabilities as
    from raw text, without a second forward pass for texts the encoder has seen."""
    from selfheal.model.calibrate import softmax
    from selfheal.model.embedder import SentenceEncoder, bundled_embedder_path

    model, tokenizer = mpnet
    path = str(bundled_embedder_path())
    recipe = tl.TopLayersRecipe(top=2, rank=4, epochs=1, batch_size=8)
    after = model.config.num_hidden_layers - recipe.top
    train = tl.cache_states(model, tokenizer, list(rt_splits["train"]["text"][:16]), after, 8)
    top = tl.train_top(model, train, np.asarray(rt_splits["train"]["label"][:16]), recipe, num_labels=2)
    tl.save_top(top, tmp_path / tl.TOP_DIR, recipe, num_labels=2)
    seen = [*rt_splits["validation"]["text"][:10], "🤮"]
    unseen = ["Un film ennuyeux et beaucoup trop long.", rt_splits["validation"]["text"][10]]
    expected = softmax(tl.top_logits(top, tl.cache_states(model, tokenizer, seen + unseen, after, 8), 13))

    encoder = SentenceEncoder(path, (4, 12), precision="fp32", runtime=runtime, states_after=after)
    encoder.encode(seen)  # the ensemble's pass over the texts keeps their states
    assert len(encoder.states) == len(seen)
    voter = tl.TopLayersBackup(tmp_path, path, runtime=runtime, states=encoder)
    assert voter.from_states
    forward = encoder._encode
    calls: list[list[str]] = []
    monkeypatch.setattr(encoder, "_encode", lambda texts: calls.append(texts) or forward(texts))
    got = voter.predict_proba(seen + unseen)
    assert calls == [unseen]  # only the texts the encoder had not seen run through mpnet again
    np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_allclose(
        got, tl.TopLayersBackup(tmp_path, path, runtime=runtime).predict_proba(seen + unseen), atol=1e-5
    )

    other = SentenceEncoder(path, (4, 12), precision="fp32", runtime="torch", states_after=after - 1)
    assert not tl.TopLayersBackup(tmp_path, path, runtime="torch", states=other).from_states


@pytest.mark.parametrize("int8", [True, False])
def test_the_shipped_voter_reads_the_configured_embedders_states(int8):
    """As configured, the primary model's embedder (int8 by default, or fp32) keeps the voter's
    states and the backups' mpnet_top runs on them; ``backup.voter_states_mb=0`` turns that off
    and the voter runs from the text."""
    from conftest import REPO
    from selfheal.config import load_config
    from selfheal.graph.services import Services

    config = load_config(REPO / "config.yaml", [f"embedder.int8={str(int8).lower()}"])
    services = Services(config)
    services.warm_up()
    voter = next(b for b in services.backups.load() if b.name == "mpnet_top")
    assert voter.from_states and voter.states is services.classifier.voter_states
    texts = ["A slow, muddled, oddly likeable film.", "The plot twists are fun but the ending falls flat."]
    services.classifier.predict(texts)
    assert all(voter.states.states.get(t) is not None for t in texts)
    assert voter.predict_proba(texts).shape == (2, 2)

    off = Services(load_config(REPO / "config.yaml", ["backup.voter_states_mb=0"]))
    assert off.classifier.voter_states is None
    assert not next(b for b in off.backups.load() if b.name == "mpnet_top").from_states
