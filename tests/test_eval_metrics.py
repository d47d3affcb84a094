"""Calibration and selective-prediction metrics against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from selfheal.evaluation.calibration import (
    brier,
    calibration_report,
    ece,
    ece_bootstrap_ci,
    mce,
    nll,
    reliability_bins,
)
from selfheal.evaluation.metrics import (
    detailed_metrics,
    fallback_frequency,
    risk_coverage,
    route,
    selective_accuracy,
)

# Four predictions (P(Negative), P(Positive)); confidences 0.9, 0.8, 0.6, 0.7.
PROBS = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
LABELS = np.array([0, 1, 1, 1])  # the third prediction (Negative at 0.6) is wrong


def test_reliability_bins_with_five_bins():
    bins = reliability_bins(LABELS, PROBS, n_bins=5)
    # Bins (0, .2], (.2, .4], (.4, .6], (.6, .8], (.8, 1]: 0.6 -> bin 2, 0.7 and 0.8 -> bin 3, 0.9 -> bin 4.
    assert [b.count for b in bins] == [0, 0, 1, 2, 1]
    assert [b.lower for b in bins] == pytest.approx([0, 0.2, 0.4, 0.6, 0.8])
    assert bins[0].accuracy is None and bins[0].confidence is None
    assert bins[2].accuracy == 0.0 and bins[2].confidence == pytest.approx(0.6)
    assert bins[3].accuracy == 1.0 and bins[3].confidence == pytest.approx(0.75)
    assert bins[4].accuracy == 1.0 and bins[4].confidence == pytest.approx(0.9)


def test_ece_and_mce_by_hand():
    # ECE = 1/4 * |0 - 0.6| + 2/4 * |1 - 0.75| + 1/4 * |1 - 0.9| = 0.15 + 0.125 + 0.025
    assert ece(LABELS, PROBS, n_bins=5) == pytest.approx(0.30)
    assert mce(LABELS, PROBS, n_bins=5) == pytest.approx(0.60)
    # With 15 bins every prediction has its own bin: ECE = (0.1 + 0.2 + 0.6 + 0.3) / 4.
    assert ece(LABELS, PROBS) == pytest.approx(0.30)
    assert mce(LABELS, PROBS) == pytest.approx(0.60)


def test_perfectly_calibrated_bins_have_zero_ece():
    probs = np.array([[0.25, 0.75]] * 4)
    labels = np.array([1, 1, 1, 0])  # 75% right at confidence 0.75
    assert ece(labels, probs) == pytest.approx(0.0)
    assert mce(labels, probs) == pytest.approx(0.0)


def test_brier_and_nll_by_hand():
    # Squared errors per row (both classes): 2*0.1^2, 2*0.2^2, 2*0.6^2, 2*0.3^2 -> mean 0.25
    assert brier(LABELS, PROBS) == pytest.approx(0.25)
    expected = -(np.log(0.9) + np.log(0.8) + np.log(0.4) + np.log(0.7)) / 4
    assert nll(LABELS, PROBS) == pytest.approx(expected)


def test_bootstrap_interval_contains_the_estimate_and_is_reproducible():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.5, 1.0, 400)
    labels = (rng.uniform(size=400) < p).astype(int)  # calibrated: P(label 1) = p
    probs = np.stack([1 - p, p], axis=1)
    low, high = ece_bootstrap_ci(labels, probs, n_boot=300, seed=3)
    assert 0 <= low <= ece(labels, probs) <= high < 0.2
    assert (low, high) == ece_bootstrap_ci(labels, probs, n_boot=300, seed=3)
    report = calibration_report(labels, probs, n_bins=15, n_boot=50)
    assert len(report["bins"]) == 15 and sum(b["count"] for b in report["bins"]) == 400


def test_routing_and_fallback_frequency():
    conf = np.array([0.95, 0.75, 0.74, 0.5, 0.49])
    assert route(conf, 0.75, 0.5).tolist() == ["accept", "accept", "clarify", "clarify", "escalate"]
    freq = fallback_frequency(conf, 0.75, 0.5)
    assert freq["counts"] == {"accept": 2, "clarify": 2, "escalate": 1}
    assert freq["shares"]["accept"] == pytest.approx(0.4)


def test_selective_accuracy_and_sweep():
    at = selective_accuracy(LABELS, PROBS, 0.75)  # accepts 0.9 and 0.8, both right
    assert at["coverage"] == 0.5 and at["accuracy"] == 1.0 and at["errors"] == 0
    everything = selective_accuracy(LABELS, PROBS, 0.5)
    assert everything["coverage"] == 1.0 and everything["accuracy"] == 0.75
    sweep = risk_coverage(LABELS, PROBS, 0.5, 1.0, 0.05)
    assert [p["threshold"] for p in sweep][:3] == [0.5, 0.55, 0.6] and sweep[-1]["threshold"] == 1.0
    assert sweep[-1]["accuracy"] is None and sweep[-1]["coverage"] == 0.0


def test_detailed_metrics_per_class_confusion_and_auc():
    m = detailed_metrics(LABELS, PROBS)
    assert m["confusion"] == [[1, 0], [1, 2]]
    assert m["accuracy"] == 0.75
    assert m["per_class"]["Negative"]["precision"] == 0.5
    assert m["per_class"]["Positive"]["recall"] == pytest.approx(2 / 3)
    # P(Positive): 0.1 (neg) vs 0.8, 0.4, 0.7 (pos): every positive ranks above the negative.
    assert m["roc_auc"] == 1.0
    assert detailed_metrics(np.array([1, 1]), PROBS[:2])["roc_auc"] is None
