"""Temperature scaling on synthetic logits with a known miscalibration."""

from __future__ import annotations

import numpy as np

from selfheal.model.calibrate import fit_temperature, nll, softmax


def _overconfident(n: int = 2000, true_t: float = 3.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    calibrated = rng.normal(0, 1.5, size=(n, 2))
    labels = np.array([rng.choice(2, p=p) for p in softmax(calibrated)])
    return calibrated * true_t, labels  # logits 3x too sharp


def test_fit_lowers_nll_and_recovers_temperature():
    logits, labels = _overconfident()
    t = fit_temperature(logits, labels)
    assert 2.5 < t < 3.5
    assert nll(logits, labels, t) < nll(logits, labels) - 0.05


def test_well_calibrated_logits_keep_t_near_one():
    logits, labels = _overconfident(true_t=1.0, seed=1)
    assert 0.85 < fit_temperature(logits, labels) < 1.15


def test_softmax_rows_sum_to_one_and_temperature_flattens():
    logits = np.array([[2.0, 0.0], [0.0, 5.0]])
    p1, p2 = softmax(logits), softmax(logits, 2.0)
    assert np.allclose(p1.sum(1), 1) and np.allclose(p2.sum(1), 1)
    assert (p2.max(1) < p1.max(1)).all()
