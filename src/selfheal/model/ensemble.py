"""Log-linear ensemble of the LoRA model with the TF-IDF model.

The two models make different errors (contextual vs. lexical), so adding the TF-IDF
log-probabilities, scaled by a weight, to the LoRA logits helps (see the model card's recipe
search). The weight and the temperature of the combined logits are fitted on the validation
split only, by NLL.
"""

from __future__ import annotations

import numpy as np

from selfheal.model.calibrate import fit_temperature, nll

WEIGHT_GRID: tuple[float, ...] = tuple(float(w) for w in np.arange(0.0, 3.001, 0.125))


def combine(logits: np.ndarray, tfidf_probs: np.ndarray, weight: float) -> np.ndarray:
    """``logits + weight * log p_tfidf`` (a product of experts when weight > 0)."""
    if weight == 0:
        return np.asarray(logits, dtype=np.float64)
    return np.asarray(logits, dtype=np.float64) + weight * np.log(np.clip(tfidf_probs, 1e-12, 1.0))


def fit_weight(
    logits: np.ndarray, tfidf_probs: np.ndarray, labels: np.ndarray, grid: tuple[float, ...] = WEIGHT_GRID
) -> tuple[float, float]:
    """The (weight, temperature) pair with the lowest validation NLL over ``grid``."""
    best = (float("inf"), 0.0, 1.0)
    for weight in grid:
        combined = combine(logits, tfidf_probs, weight)
        temperature = fit_temperature(combined, labels)
        loss = nll(combined, labels, temperature)
        if loss < best[0] - 1e-9:
            best = (loss, weight, temperature)
    return best[1], best[2]
