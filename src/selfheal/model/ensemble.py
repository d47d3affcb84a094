"""Log-linear ensemble of the LoRA model with other models (TF-IDF, the frozen embedder).

The members make different errors (contextual, lexical, a larger frozen encoder), so adding
each member's log-probabilities, scaled by a weight, to the LoRA logits helps (see the model
card). The weights and the temperature of the combined logits are fitted on the validation
split only, by NLL, over a grid of weights.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from selfheal.model.calibrate import fit_temperature, nll

WEIGHT_GRID: tuple[float, ...] = tuple(float(w) for w in np.arange(0.0, 5.001, 0.125))


def combine(logits: np.ndarray, probs: np.ndarray, weight: float) -> np.ndarray:
    """``logits + weight * log p`` (a product of experts when weight > 0)."""
    if weight == 0:
        return np.asarray(logits, dtype=np.float64)
    return np.asarray(logits, dtype=np.float64) + weight * np.log(np.clip(probs, 1e-12, 1.0))


def combine_all(logits: np.ndarray, members: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """``logits + sum_i weights[i] * log members[i]``."""
    out = np.asarray(logits, dtype=np.float64)
    for probs, weight in zip(members, weights, strict=True):
        out = combine(out, probs, weight)
    return out


def fit_weights(
    logits: np.ndarray,
    members: Sequence[np.ndarray],
    labels: np.ndarray,
    grids: Sequence[Sequence[float]] | None = None,
) -> tuple[tuple[float, ...], float]:
    """The weights (member ``i`` from ``grids[i]``, default :data:`WEIGHT_GRID`) and the
    temperature with the lowest validation NLL. A one-value grid fixes that member's weight."""
    grids = [WEIGHT_GRID] * len(members) if grids is None else grids
    best: tuple[float, tuple[float, ...], float] = (float("inf"), (0.0,) * len(members), 1.0)
    for weights in itertools.product(*grids):
        combined = combine_all(logits, members, weights)
        temperature = fit_temperature(combined, labels)
        loss = nll(combined, labels, temperature)
        if loss < best[0] - 1e-9:
            best = (loss, tuple(float(w) for w in weights), temperature)
    return best[1], best[2]


def fit_weight(
    logits: np.ndarray, probs: np.ndarray, labels: np.ndarray, grid: tuple[float, ...] = WEIGHT_GRID
) -> tuple[float, float]:
    """:func:`fit_weights` for a single member: ``(weight, temperature)``."""
    weights, temperature = fit_weights(logits, [probs], labels, [grid])
    return weights[0], temperature
