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
