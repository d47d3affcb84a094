"""The LoRA + TF-IDF log-linear ensemble: weight fitted on validation NLL."""

from __future__ import annotations

import numpy as np

from selfheal.model.calibrate import softmax
from selfheal.model.ensemble import combine, fit_weight


def _data(seed: int = 0, n: int = 3000):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    sign = np.where(labels == 1, 1.0, -1.0)
    # Two independent noisy views of the label: each alone is ~80% accurate.
    a = sign * 1.0 + rng.normal(0, 1.2, n)
    b = sign * 1.0 + rng.normal(0, 1.2, n)
    logits = np.stack([-a / 2, a / 2], axis=1)
    probs = softmax(np.stack([-b / 2, b / 2], axis=1))
    return logits, probs, labels


def test_informative_second_model_gets_weight_and_helps():
    logits, probs, labels = _data()
    weight, temperature = fit_weight(logits, probs, labels)
    assert weight > 0.25 and temperature > 0
    alone = np.mean(logits.argmax(1) == labels)
    both = np.mean(combine(logits, probs, weight).argmax(1) == labels)
    assert both > alone + 0.03


def test_useless_second_model_gets_no_weight():
    logits, _, labels = _data(1)
    noise = softmax(np.random.default_rng(2).normal(0, 2, size=logits.shape))
    weight, _ = fit_weight(logits, noise, labels)
    assert weight <= 0.125


def test_zero_weight_is_identity():
    logits, probs, _ = _data(3, 10)
    assert np.array_equal(combine(logits, probs, 0.0), logits)


def test_two_members_fitted_jointly_and_a_one_value_grid_fixes_a_weight():
    from selfheal.model.ensemble import combine_all, fit_weights

    logits, probs, labels = _data(4)
    noise = softmax(np.random.default_rng(5).normal(0, 2, size=logits.shape))
    grid = (0.0, 0.5, 1.0, 2.0)
    (w_probs, w_noise), temperature = fit_weights(logits, [probs, noise], labels, [grid, grid])
    assert w_probs >= 0.5 and w_noise == 0.0 and temperature > 0
    (fixed, _), _ = fit_weights(logits, [probs, noise], labels, [(0.25,), grid])
    assert fixed == 0.25
    expected = combine(combine(logits, probs, 1.0), noise, 2.0)
    np.testing.assert_allclose(combine_all(logits, [probs, noise], [1.0, 2.0]), expected)
