"""Calibration metrics: ECE and MCE over equal-width confidence bins, Brier score, NLL,
a bootstrap confidence interval for ECE, and the ECE a perfectly calibrated model would get.

Confidence is the probability of the predicted label (top-label calibration, for any number
of labels: is the model right as often as its top probability says?). Bin ``b`` of ``n_bins`` holds
confidences in ``(b / n_bins, (b + 1) / n_bins]`` (the first bin also holds 0), as in
Guo et al. (2017), *On Calibration of Modern Neural Networks*.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ReliabilityBin:
    """One confidence bin: its edges, how many predictions fell in it, their accuracy and
    mean confidence (both ``None`` for an empty bin)."""

    lower: float
    upper: float
    count: int
    accuracy: float | None
    confidence: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin of each confidence: ``ceil(c * n_bins) - 1`` clipped to ``[0, n_bins - 1]``."""
    return np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)


def _bin_sums(confidence: np.ndarray, correct: np.ndarray, n_bins: int) -> tuple[np.ndarray, ...]:
    idx = _bin_index(confidence, n_bins)
    counts = np.bincount(idx, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=confidence, minlength=n_bins)
    correct_sum = np.bincount(idx, weights=correct.astype(float), minlength=n_bins)
    return counts, conf_sum, correct_sum


def _confidence_correct(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    return probs.max(axis=1), probs.argmax(axis=1) == np.asarray(labels)


def reliability_bins(labels: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> list[ReliabilityBin]:
    """Per-bin count, accuracy and mean confidence (the data of a reliability diagram)."""
    confidence, correct = _confidence_correct(labels, probs)
    counts, conf_sum, correct_sum = _bin_sums(confidence, correct, n_bins)
    bins = []
    for b in range(n_bins):
        n = int(counts[b])
        bins.append(
            ReliabilityBin(
                lower=b / n_bins,
                upper=(b + 1) / n_bins,
                count=n,
                accuracy=float(correct_sum[b] / n) if n else None,
                confidence=float(conf_sum[b] / n) if n else None,
            )
        )
    return bins


def ece(labels: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error: ``sum_b (n_b / n) * |accuracy_b - confidence_b|``."""
    confidence, correct = _confidence_correct(labels, probs)
    _, conf_sum, correct_sum = _bin_sums(confidence, correct, n_bins)
    return float(np.abs(correct_sum - conf_sum).sum() / max(len(confidence), 1))


def mce(labels: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """Maximum calibration error: the largest ``|accuracy_b - confidence_b|`` of a non-empty bin."""
    confidence, correct = _confidence_correct(labels, probs)
    counts, conf_sum, correct_sum = _bin_sums(confidence, correct, n_bins)
    full = counts > 0
    if not full.any():
        return 0.0
    return float(np.max(np.abs(correct_sum[full] - conf_sum[full]) / counts[full]))


def brier(labels: np.ndarray, probs: np.ndarray) -> float:
    """Brier score in its original multi-class form: ``mean_i sum_k (p_ik - y_ik)^2``.

    With two classes this is twice scikit-learn's ``brier_score_loss`` on the positive class.
    """
    probs = np.asarray(probs, dtype=np.float64)
    onehot = np.eye(probs.shape[1])[np.asarray(labels)]
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def probs_nll(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood of the true labels under ``probs``: the one NLL,
    :func:`selfheal.model.calibrate.nll`, of the logits ``log(probs)`` (clipped at ``eps``)."""
    from selfheal.model.calibrate import nll

    log_probs = np.log(np.clip(np.asarray(probs, dtype=np.float64), eps, None))
    return nll(log_probs, np.asarray(labels, dtype=np.int64))


def _ece_rows(bins: np.ndarray, gap: np.ndarray, n_bins: int) -> np.ndarray:
    """ECE of each row of a ``(replicates, n)`` sample, given each input's bin and its
    ``correct - confidence`` gap: one weighted bincount over (replicate, bin) keys."""
    replicates, n = gap.shape
    keys = (np.arange(replicates)[:, None] * n_bins + bins).ravel()
    per_bin = np.bincount(keys, weights=gap.ravel(), minlength=replicates * n_bins)
    return np.abs(per_bin.reshape(replicates, n_bins)).sum(axis=1) / n


def ece_bootstrap_ci(
    labels: np.ndarray,
    probs: np.ndarray,
    n_bins: int = 15,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ECE (resampling inputs with replacement)."""
    confidence, correct = _confidence_correct(labels, probs)
    n = len(confidence)
    if n == 0:
        return (0.0, 0.0)
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    idx = _bin_index(confidence, n_bins)
    values = _ece_rows(idx[draws], (correct.astype(float) - confidence)[draws], n_bins)
    alpha = (1 - level) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return float(low), float(high)


def ece_if_calibrated(probs: np.ndarray, n_bins: int = 15, n_sims: int = 1000, seed: int = 0) -> np.ndarray:
    """``n_sims`` ECE values these confidences would show on this many texts if they were
    perfectly calibrated.

    Consistency resampling (Bröcker & Smith, 2007, *Increasing the reliability of reliability
    diagrams*): each prediction is made right with probability equal to its own confidence, and
    the ECE of that perfectly calibrated sample is computed. Binning noise alone gives a positive
    ECE, larger for fewer texts: this is the floor a measured ECE is compared with.
    """
    confidence = np.asarray(probs, dtype=np.float64).max(axis=1)
    n = len(confidence)
    if n == 0:
        return np.zeros(n_sims)
    correct = np.random.default_rng(seed).random((n_sims, n)) < confidence  # right w.p. = confidence
    idx = np.broadcast_to(_bin_index(confidence, n_bins), (n_sims, n))
    return _ece_rows(idx, correct - confidence, n_bins)


def calibration_report(
    labels: np.ndarray, probs: np.ndarray, n_bins: int = 15, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """ECE (with bootstrap 95% interval and the perfectly-calibrated floor), MCE, Brier, NLL and
    the reliability bins.

    ``ece_if_calibrated`` holds the floor's mean and 95% range, and ``p_value``: the share of
    perfectly calibrated samples whose ECE is at least the measured one (a small value means the
    miscalibration is real, not binning noise).
    """
    low, high = ece_bootstrap_ci(labels, probs, n_bins=n_bins, n_boot=n_boot, seed=seed)
    observed = ece(labels, probs, n_bins)
    floor = ece_if_calibrated(probs, n_bins=n_bins, n_sims=n_boot, seed=seed)
    return {
        "ece": observed,
        "ece_ci95": [low, high],
        "ece_if_calibrated": {
            "mean": float(floor.mean()),
            "range95": [float(v) for v in np.quantile(floor, [0.025, 0.975])],
            "p_value": float((floor >= observed - 1e-12).mean()),
            "n_sims": len(floor),
        },
        "mce": mce(labels, probs, n_bins),
        "brier": brier(labels, probs),
        "nll": probs_nll(labels, probs),
        "n_bins": n_bins,
        "bins": [b.to_dict() for b in reliability_bins(labels, probs, n_bins)],
    }
