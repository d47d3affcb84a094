"""The scores training needs to pick an epoch and describe a checkpoint, for any number of labels.

(The evaluation's fuller metrics live in :mod:`selfheal.evaluation`; nothing in ``model/`` imports
from there.)
"""

from __future__ import annotations

import numpy as np

from selfheal.model.calibrate import nll


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Accuracy, macro precision / recall / F1 over every label of ``probs`` (shape ``(n, k)``)
    and the NLL of ``labels`` (integer ids, shape ``(n,)``) under ``probs``."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    labels, probs = np.asarray(labels), np.asarray(probs, dtype=np.float64)
    preds = probs.argmax(axis=1)
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, preds, labels=list(range(probs.shape[1])), average="macro", zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(labels, preds)),
        "precision_macro": float(precision),
        "recall_macro": float(recall),
        "f1_macro": float(f1),
        # softmax(log p) = p, so the NLL of probabilities is calibrate.nll of their logarithm
        "nll": nll(np.log(np.clip(probs, 1e-12, 1.0)), labels),
        "n": len(labels),
    }
