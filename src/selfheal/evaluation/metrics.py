"""Classification metrics, decision routing and risk-coverage over arrays of probabilities.

All functions take ``labels`` as integer label ids, shape ``(n,)``, and ``probs`` as
probabilities in label order, shape ``(n, k)`` for k >= 2 labels. Confidence is the top
probability (the probability of the predicted label), whatever k.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from selfheal.vocabulary import ACCEPT, ASK_CLARIFY, ESCALATE, OUTCOME_OF

# What the confidence check does with an input, as the evaluation counts it (no knowability
# check here: it needs the text, not the probabilities): accept, clarify, escalate.
ACCEPTED, ASKED, ESCALATED = (OUTCOME_OF[r] for r in (ACCEPT, ASK_CLARIFY, ESCALATE))
STATUSES = (ACCEPTED, ASKED, ESCALATED)


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Accuracy, macro precision/recall/F1 and NLL of predicted probabilities.

    The macro averages are over the labels present in ``labels`` or the predictions
    (scikit-learn's default).
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    from selfheal.evaluation.calibration import probs_nll

    labels, probs = np.asarray(labels), np.asarray(probs)
    preds = probs.argmax(axis=1)
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, preds, average="macro", zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(labels, preds)),
        "precision_macro": float(precision),
        "recall_macro": float(recall),
        "f1_macro": float(f1),
        "nll": probs_nll(labels, probs),
        "n": len(labels),
    }


def one_vs_rest_auc(labels: np.ndarray, probs: np.ndarray) -> list[float | None]:
    """ROC-AUC of each label against the rest, from its own probability column; ``None`` for a
    label that is absent from ``labels`` or is every label (no negatives to rank it against)."""
    from sklearn.metrics import roc_auc_score

    labels, probs = np.asarray(labels), np.asarray(probs)
    out: list[float | None] = []
    for c in range(probs.shape[1]):
        positive = labels == c
        both = bool(positive.any()) and not bool(positive.all())
        out.append(float(roc_auc_score(positive, probs[:, c])) if both else None)
    return out


def detailed_metrics(labels: np.ndarray, probs: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """:func:`classification_metrics` plus per-class P/R/F1 and one-vs-rest ROC-AUC, the k x k
    confusion matrix and the ROC-AUC, for the label ``names`` (in label-id order).

    ``confusion[i][j]`` counts texts of true label ``i`` predicted as ``j``. ``roc_auc``: with two
    labels, the AUC of the last label's probability (for two labels every one-vs-rest AUC is this
    one); with more, the unweighted mean of the one-vs-rest AUCs (scikit-learn's
    ``multi_class="ovr", average="macro"``) over the labels present. ``None`` when it is undefined
    (a single label present).
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels, probs = np.asarray(labels), np.asarray(probs)
    ids = list(range(len(names)))
    preds = probs.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, preds, labels=ids, average=None, zero_division=0
    )
    ovr = one_vs_rest_auc(labels, probs)
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
            "roc_auc": ovr[i],
        }
        for i, name in enumerate(names)
    }
    defined = [a for a in ovr if a is not None]
    macro = float(np.mean(defined)) if defined else None
    auc = ovr[-1] if len(names) == 2 else macro
    return {
        **classification_metrics(labels, probs),
        "per_class": per_class,
        "confusion": confusion_matrix(labels, preds, labels=ids).tolist(),
        "roc_auc": auc,
    }


def route(confidence: np.ndarray, accept: float, clarify: float) -> np.ndarray:
    """The graph's confidence check (:func:`selfheal.graph.nodes.confidence_route`) applied to
    many inputs: ``accept``, ``clarify`` (the graph's ``ask_clarify``) or ``escalate``."""
    from selfheal.graph.nodes import confidence_route

    return np.array(
        [OUTCOME_OF[confidence_route(float(c), accept, clarify)] for c in np.asarray(confidence)], dtype=str
    )


def fallback_frequency(confidence: np.ndarray, accept: float, clarify: float) -> dict[str, Any]:
    """Share and count of inputs accepted, asked (clarify) and escalated at the thresholds."""
    status = route(confidence, accept, clarify)
    n = len(status)
    counts = {s: int((status == s).sum()) for s in STATUSES}
    return {
        "n": n,
        "counts": counts,
        "shares": {s: (counts[s] / n if n else 0.0) for s in STATUSES},
    }


def selective_accuracy(labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict[str, Any]:
    """Accuracy of the predictions whose confidence is >= ``threshold``, and their coverage.

    Also the final accuracy if a person correctly labelled every input below the threshold
    (``final_with_user``: only accepted errors remain), and the final accuracy the confidences
    themselves predict (``final_predicted``: 1 - sum of (1 - confidence) over the accepted inputs,
    divided by n). The two agree for a calibrated model, so when ``final_predicted`` misses a
    target at a threshold, no calibration can meet it there: it is the confidence distribution,
    not its calibration, that sets the final accuracy of a threshold.

    ``accuracy`` is ``None`` when nothing is accepted.
    """
    labels, probs = np.asarray(labels), np.asarray(probs)
    n = len(labels)
    confidence = probs.max(axis=1)
    kept = confidence >= threshold
    n_kept = int(kept.sum())
    correct = probs.argmax(axis=1) == labels
    errors = int((~correct[kept]).sum())
    return {
        "threshold": float(threshold),
        "coverage": n_kept / n if n else 0.0,
        "accuracy": float(correct[kept].mean()) if n_kept else None,
        "accepted": n_kept,
        "errors": errors,
        "final_with_user": (n - errors) / n if n else None,
        "final_predicted": float(1 - (1 - confidence[kept]).sum() / n) if n else None,
    }


def sweep_start(k: int, step: float) -> float:
    """The lowest accept threshold worth sweeping with ``k`` labels: ``1 / k`` (the top probability
    is never lower) rounded down to a multiple of ``step``; 0.5 for two labels."""
    return round(math.floor(1 / k / step + 1e-9) * step, 6)


def risk_coverage(
    labels: np.ndarray, probs: np.ndarray, start: float = 0.5, stop: float = 1.0, step: float = 0.05
) -> list[dict[str, Any]]:
    """:func:`selective_accuracy` for accept thresholds ``start, start+step, ..., stop``."""
    count = round((stop - start) / step) + 1
    return [selective_accuracy(labels, probs, round(start + i * step, 6)) for i in range(count)]


def lowest_threshold(
    sweep: list[dict[str, Any]],
    min_final: float,
    max_human: float,
    min_accepted: float | None = None,
) -> dict[str, Any] | None:
    """The sweep point with the lowest threshold whose final accuracy with a correct person is at
    least ``min_final`` while at most ``max_human`` of the inputs go to a person (and, if given,
    whose accuracy on accepted is at least ``min_accepted``); ``None`` when no point does.

    The lowest such threshold asks the fewest people. Choose it on validation, never on the split
    it is reported on.
    """
    for point in sorted(sweep, key=lambda p: p["threshold"]):
        if point["final_with_user"] is None or point["final_with_user"] < min_final - 1e-12:
            continue
        if 1 - point["coverage"] > max_human + 1e-12:
            continue
        if min_accepted is not None and (point["accuracy"] is None or point["accuracy"] < min_accepted):
            continue
        return point
    return None


def selective_at_coverage(labels: np.ndarray, probs: np.ndarray, coverage: float) -> dict[str, Any]:
    """Accuracy on the most confident ``coverage`` share of inputs, and the final accuracy if a
    person labelled all the others correctly.

    Unlike :func:`selective_accuracy` this depends on neither a threshold nor calibration (any
    monotone rescaling of the confidence keeps the order): it is the best an accept threshold
    can do at that coverage, so a target missed here needs a better model, not another
    threshold or temperature.
    """
    labels, probs = np.asarray(labels), np.asarray(probs)
    n = len(labels)
    k = round(coverage * n)
    order = np.argsort(-probs.max(axis=1), kind="stable")
    correct = (probs.argmax(axis=1) == labels)[order]
    kept_right = int(correct[:k].sum())
    return {
        "coverage": float(coverage),
        "accepted": k,
        "accuracy": kept_right / k if k else None,
        "errors": k - kept_right,
        "final_with_user": (kept_right + n - k) / n if n else None,
    }


def aurc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Area under the risk-coverage curve: the mean, over k = 1..n, of the error rate of the k
    most confident predictions (Geifman et al., 2019). Lower is better; 0 for a perfect model."""
    labels, probs = np.asarray(labels), np.asarray(probs)
    if len(labels) == 0:
        return 0.0
    order = np.argsort(-probs.max(axis=1), kind="stable")
    wrong = (probs.argmax(axis=1) != labels)[order]
    return float(np.mean(np.cumsum(wrong) / np.arange(1, len(wrong) + 1)))


def accuracy_ci(
    correct: np.ndarray,
    kept: np.ndarray | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> list[float] | None:
    """Percentile bootstrap interval of the accuracy over the ``kept`` inputs (all by default).

    Inputs are resampled with replacement, so the number kept varies between resamples, as it
    would on another test set of the same size. ``None`` when nothing is kept.
    """
    correct = np.asarray(correct, dtype=bool)
    kept = np.ones(len(correct), dtype=bool) if kept is None else np.asarray(kept, dtype=bool)
    if not kept.any():
        return None
    draws = np.random.default_rng(seed).integers(0, len(correct), size=(n_boot, len(correct)))
    n_kept = kept[draws].sum(axis=1)
    right = (correct & kept)[draws].sum(axis=1)
    values = right[n_kept > 0] / n_kept[n_kept > 0]
    alpha = (1 - level) / 2
    return [float(v) for v in np.quantile(values, [alpha, 1 - alpha])]


def wilson_lower(right: int, n: int, level: float = 0.9) -> float:
    """One-sided Wilson score lower bound, at confidence ``level``, of an accuracy of ``right``
    out of ``n`` (0 when ``n`` is 0)."""
    if n == 0:
        return 0.0
    from statistics import NormalDist

    z = NormalDist().inv_cdf(level)
    p = right / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)
