"""Calibration and selective-prediction metrics against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from selfheal.evaluation.calibration import (
    brier,
    calibration_report,
    ece,
    ece_bootstrap_ci,
    ece_if_calibrated,
    mce,
    probs_nll,
    reliability_bins,
)
from selfheal.evaluation.metrics import (
    accuracy_ci,
    aurc,
    detailed_metrics,
    fallback_frequency,
    lowest_threshold,
    risk_coverage,
    route,
    selective_accuracy,
    selective_at_coverage,
)

# Four predictions (P(Negative), P(Positive)); confidences 0.9, 0.8, 0.6, 0.7.
PROBS = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
LABELS = np.array([0, 1, 1, 1])  # the third prediction (Negative at 0.6) is wrong
NAMES = ("Negative", "Positive")


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
    assert probs_nll(LABELS, PROBS) == pytest.approx(expected)


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
    # Nothing accepted is wrong and the two asked are answered correctly: final 4/4. The
    # confidences predict 1 - ((1 - 0.9) + (1 - 0.8)) / 4 = 0.925 for that threshold.
    assert at["final_with_user"] == 1.0 and at["final_predicted"] == pytest.approx(0.925)
    everything = selective_accuracy(LABELS, PROBS, 0.5)
    assert everything["coverage"] == 1.0 and everything["accuracy"] == 0.75
    assert everything["final_with_user"] == 0.75
    assert everything["final_predicted"] == pytest.approx(1 - (0.1 + 0.2 + 0.4 + 0.3) / 4)
    sweep = risk_coverage(LABELS, PROBS, 0.5, 1.0, 0.05)
    assert [p["threshold"] for p in sweep][:3] == [0.5, 0.55, 0.6] and sweep[-1]["threshold"] == 1.0
    assert sweep[-1]["accuracy"] is None and sweep[-1]["coverage"] == 0.0


def test_lowest_threshold_meeting_the_targets_by_hand():
    sweep = risk_coverage(LABELS, PROBS, 0.5, 1.0, 0.05)
    # Up to 0.6 the wrong 0.6 prediction is accepted (final 3/4); from 0.65 only 0.9, 0.8 and 0.7
    # are, all right: final 4/4 with 1/4 asked. From 0.75 on half is asked.
    point = lowest_threshold(sweep, min_final=0.95, max_human=0.30)
    assert point["threshold"] == 0.65 and point["coverage"] == 0.75 and point["final_with_user"] == 1.0
    assert lowest_threshold(sweep, min_final=0.95, max_human=0.2) is None  # 0.65 already asks 25%
    assert lowest_threshold(sweep, min_final=0.7, max_human=0.0)["threshold"] == 0.5  # 3/4 >= 0.7
    assert lowest_threshold(sweep, min_final=0.0, max_human=1.0, min_accepted=0.8)["threshold"] == 0.65
    assert lowest_threshold(list(reversed(sweep)), min_final=0.95, max_human=0.5)["threshold"] == 0.65


def test_operating_point_is_chosen_on_validation_only():
    from selfheal.config import Config
    from selfheal.evaluation.targets import operating_point

    probs = {"validation": PROBS, "test": PROBS[::-1]}
    data = {"sets": {"validation": ([""] * 4, LABELS), "test": ([""] * 4, LABELS)}, "eval_set": "test"}
    config = Config()
    config.evaluation.min_final, config.evaluation.max_human, config.evaluation.min_accepted = 0.95, 0.3, 0.93
    op = operating_point(config, data, probs)
    assert op["status"] == "done" and op["threshold"] == 0.65 and op["chosen_on"] == "validation"
    assert op["validation"]["final_with_user"] == 1.0
    config.thresholds.clarify = 0.7  # never below the clarify threshold
    assert operating_point(config, data, probs)["threshold"] == 0.7
    config.evaluation.max_human = 0.2
    assert operating_point(config, data, probs)["status"] == "none"
    assert operating_point(config, {**data, "eval_set": "validation"}, probs)["status"] == "skipped"
    file_only = {"sets": {"file": ([""] * 4, LABELS)}, "eval_set": "file"}
    assert operating_point(config, file_only, {"file": PROBS})["status"] == "skipped"


def test_detailed_metrics_per_class_confusion_and_auc():
    m = detailed_metrics(LABELS, PROBS, NAMES)
    assert m["confusion"] == [[1, 0], [1, 2]]
    assert m["accuracy"] == 0.75
    assert m["per_class"]["Negative"]["precision"] == 0.5
    assert m["per_class"]["Positive"]["recall"] == pytest.approx(2 / 3)
    # P(Positive): 0.1 (neg) vs 0.8, 0.4, 0.7 (pos): every positive ranks above the negative.
    assert m["roc_auc"] == 1.0
    assert detailed_metrics(np.array([1, 1]), PROBS[:2], NAMES)["roc_auc"] is None


def test_ece_if_calibrated_is_the_binning_noise_floor():
    # Confidence 1.0 is always right when calibrated: no noise at all.
    assert np.all(ece_if_calibrated(np.array([[0.0, 1.0]] * 50), n_sims=20) == 0)
    # One bin at 0.8 over n texts: ECE = |mean(Bernoulli(0.8)) - 0.8|, whose mean is about
    # sqrt(2 / pi) * sqrt(0.8 * 0.2 / n) = 0.0319 for n = 100.
    values = ece_if_calibrated(np.array([[0.2, 0.8]] * 100), n_sims=4000, seed=1)
    assert values.mean() == pytest.approx(np.sqrt(2 / np.pi) * np.sqrt(0.16 / 100), rel=0.08)
    np.testing.assert_array_equal(
        values, ece_if_calibrated(np.array([[0.2, 0.8]] * 100), n_sims=4000, seed=1)
    )
    # More texts, less noise.
    assert ece_if_calibrated(np.array([[0.2, 0.8]] * 2500), n_sims=500).mean() < values.mean() / 3


def test_calibration_report_tells_noise_from_miscalibration():
    rng = np.random.default_rng(123)  # not the report's seed 0, whose draws would repeat these
    conf = rng.uniform(0.5, 1.0, 2000)
    probs = np.stack([1 - conf, conf], axis=1)
    calibrated = (rng.random(2000) < conf).astype(int)  # Positive with probability = confidence
    report = calibration_report(calibrated, probs, n_boot=400)
    floor = report["ece_if_calibrated"]
    assert floor["range95"][0] <= floor["mean"] <= floor["range95"][1]
    assert report["ece"] > 0 and floor["p_value"] > 0.05  # noise, not miscalibration
    overconfident = (rng.random(2000) < conf - 0.2).astype(int)
    assert calibration_report(overconfident, probs, n_boot=400)["ece_if_calibrated"]["p_value"] == 0.0


def test_selective_accuracy_at_a_coverage_and_aurc_by_hand():
    # Confidence order: 0.9 (right), 0.8 (right), 0.7 (right), 0.6 (wrong).
    half = selective_at_coverage(LABELS, PROBS, 0.5)
    assert half == {"coverage": 0.5, "accepted": 2, "accuracy": 1.0, "errors": 0, "final_with_user": 1.0}
    full = selective_at_coverage(LABELS, PROBS, 1.0)
    assert full["accuracy"] == 0.75 and full["errors"] == 1 and full["final_with_user"] == 0.75
    # Scaling the logits (any temperature) keeps the order, so the result does not change.
    logits = np.log(PROBS)
    for t in (0.5, 3.0):
        scaled = np.exp(logits / t) / np.exp(logits / t).sum(axis=1, keepdims=True)
        assert selective_at_coverage(LABELS, scaled, 0.75) == selective_at_coverage(LABELS, PROBS, 0.75)
    # Error rates of the top 1, 2, 3, 4: 0, 0, 0, 1/4.
    assert aurc(LABELS, PROBS) == pytest.approx(0.25 / 4)


def test_accuracy_ci_brackets_the_accuracy_and_narrows_with_more_inputs():
    correct = np.array([True] * 80 + [False] * 20)
    low, high = accuracy_ci(correct, n_boot=2000)
    assert low < 0.8 < high and high - low == pytest.approx(2 * 1.96 * np.sqrt(0.16 / 100), abs=0.03)
    many_low, many_high = accuracy_ci(np.tile(correct, 16), n_boot=2000)
    assert many_high - many_low < (high - low) / 3
    # Over a subset: only the kept inputs count; nothing kept gives None.
    kept = np.array([True] * 50 + [False] * 50)
    assert accuracy_ci(correct, kept) == [1.0, 1.0]
    assert accuracy_ci(correct, np.zeros(100, dtype=bool)) is None
