"""Real inputs of each kind for the report: confident and right or wrong, asked, escalated."""

from __future__ import annotations

from typing import Any

import numpy as np

from selfheal.evaluation.metrics import ACCEPTED, ASKED, ESCALATED
from selfheal.labels import LabelSet
from selfheal.vocabulary import PENDING_REVIEW, VIA_SUMMARY


def select_examples(
    texts: list[str],
    labels: np.ndarray,
    probs: np.ndarray,
    status: np.ndarray,
    finals: dict[str, list[dict[str, Any]]],
    k: int,
    names: LabelSet,
) -> dict[str, list[dict[str, Any]]]:
    """Up to ``k`` real inputs of each kind, with the simulation's final decision per scenario
    (``finals``); ``names`` is the label set ``labels`` and the columns of ``probs`` index.

    Confident and right / wrong: accepted, highest confidence first. Asked: the clarify band,
    model errors first (what a clarification heals), least confident first. Escalated: below
    the clarify threshold, or sent to human review when nobody answered and the backups
    disagreed (``no_user`` scenario), least confident first.
    """
    confidence = probs.max(axis=1)
    preds = probs.argmax(axis=1)
    correct = preds == labels
    order = np.argsort(-confidence, kind="stable")

    def pick(mask: np.ndarray, n: int, least_confident: bool = False) -> list[dict[str, Any]]:
        ids = [int(i) for i in (order[::-1] if least_confident else order) if mask[i]][:n]
        rows = []
        for i in ids:
            row = {
                "text": texts[i],
                "true": names[int(labels[i])],
                "predicted": names[int(preds[i])],
                "confidence": float(confidence[i]),
                "status": str(status[i]),
            }
            for scenario, outcomes in finals.items():
                final = outcomes[i]
                row[scenario] = (
                    VIA_SUMMARY[PENDING_REVIEW]
                    if final["label"] is None
                    else f"{final['label']} via {final['via']}"
                )
            rows.append(row)
        return rows

    accepted, asked = status == ACCEPTED, status == ASKED
    reviewed = np.array([f["via"] == PENDING_REVIEW for f in finals.get("no_user", [])], dtype=bool)
    escalated = (status == ESCALATED) | (reviewed if len(reviewed) else np.zeros(len(status), dtype=bool))
    asked_rows = pick(asked & ~correct, (k + 1) // 2, least_confident=True)
    asked_rows += pick(asked & correct, k - len(asked_rows), least_confident=True)
    return {
        "confident_right": pick(accepted & correct, k),
        "confident_wrong": pick(accepted & ~correct, k),
        "asked": asked_rows,
        "escalated": pick(escalated, k, least_confident=True),
    }
