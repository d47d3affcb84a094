"""SmoothQuant (selfheal.model.smoothing) on the real bundled MiniLM and real train snippets: the
smoothed network computes the same function in fp32, and its linear layers' inputs become flat
enough for one int8 scale per tensor."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def minilm():
    from transformers import AutoModel

    from selfheal.model.checkpoint import resolve_base_model
    from selfheal.model.tokenizer import load_tokenizer

    path = resolve_base_model(None)
    return path, AutoModel, load_tokenizer(path)


def _features(model, tokenizer, texts):
    import torch

    from selfheal.model.runtime import features_module, pad

    module = features_module(model, (3, 6))
    ids, mask = pad(tokenizer(texts)["input_ids"], tokenizer.pad_token_id or 0)
    with torch.no_grad():
        return module(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).numpy()


def test_the_smoothed_model_computes_the_same_features(minilm, rt_splits):
    from selfheal.model.smoothing import activation_maxima, smooth

    path, auto, tokenizer = minilm
    calibration = list(rt_splits["train"]["text"][:16])
    texts = list(rt_splits["train"]["text"][16:24])
    model = auto.from_pretrained(path).eval()
    before = _features(model, tokenizer, texts)
    maxima = activation_maxima(model, tokenizer, calibration)
    assert len(maxima) == 6 * 6  # q, k, v, o, up, down in each of the 6 layers
    smoothed = smooth(model, maxima, alpha=0.75)
    assert sum(type(m).__name__ == "SmoothedLinear" for m in smoothed.modules()) == 36
    np.testing.assert_allclose(_features(smoothed, tokenizer, texts), before, atol=1e-4)


def test_smoothing_flattens_the_inputs_int8_sees(minilm, rt_splits):
    """The largest input channel over the median one (what one int8 scale must span) shrinks in
    every layer where it was large."""
    from selfheal.model.smoothing import activation_maxima, smooth

    path, auto, tokenizer = minilm
    texts = list(rt_splits["train"]["text"][:16])
    model = auto.from_pretrained(path).eval()
    maxima = activation_maxima(model, tokenizer, texts)
    spread = {name: float(m.max() / m.median()) for name, m in maxima.items()}
    smoothed = smooth(model, maxima, alpha=0.75)
    after = {
        name.removesuffix(".linear"): float(m.max() / m.median())
        for name, m in activation_maxima(smoothed, tokenizer, texts).items()
    }
    wide = [name for name, ratio in spread.items() if ratio > 10]
    assert wide, "the MiniLM has outlier channels"
    assert all(after[name] < spread[name] / 2 for name in wide)


def test_the_maxima_do_not_depend_on_torch_threads(minilm, rt_splits):
    """The maxima (so the smoothed weights and the int8 export) are the same on one thread and
    on two: they are measured in float64 (in float32 an export made on one thread differed)."""
    import torch

    from selfheal.model.smoothing import activation_maxima

    path, auto, tokenizer = minilm
    texts = list(rt_splits["train"]["text"][:16])
    model = auto.from_pretrained(path).eval()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = activation_maxima(model, tokenizer, texts)
        torch.set_num_threads(2)
        two = activation_maxima(model, tokenizer, texts)
    finally:
        torch.set_num_threads(threads)
    assert one.keys() == two.keys()
    assert all(torch.equal(one[name], two[name]) and one[name].dtype == torch.float32 for name in one)
    assert next(model.parameters()).dtype == torch.float32  # measured on a copy
