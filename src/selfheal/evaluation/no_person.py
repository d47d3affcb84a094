"""The no-person rule, measured: when nobody answers, may the backups label an unsure input?

As configured (``backup.*``) on the evaluated split; refitted on the validation split for the
configured voters and for other voter sets; against the previous rule; and each backup's own
accuracy on the inputs the model is unsure about. Plain functions over batch probabilities.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from selfheal.config import Config
from selfheal.evaluation.metrics import wilson_lower


def _voter_probs(probs: np.ndarray, backup_probs: dict[str, np.ndarray], voters: list[str]) -> np.ndarray:
    """Each voter's probability of the primary model's label, shape ``(n, len(voters))``; a voter
    that did not load (e.g. ``mpnet_top`` with a checkpoint that has none) gives 0, so the rule
    never holds, as in the graph (``voter_missing``)."""
    pred = probs.argmax(axis=1)
    rows = np.arange(len(pred))
    columns = [backup_probs[v][rows, pred] if v in backup_probs else np.zeros(len(pred)) for v in voters]
    return np.stack(columns, axis=1) if voters else np.zeros((len(pred), 0))


def apply_no_person_rule(
    labels: np.ndarray,
    probs: np.ndarray,
    backup_probs: dict[str, np.ndarray],
    config: Config,
    min_confidence: float | None = None,
    min_voter_prob: float | None = None,
    decide: bool | None = None,
) -> dict[str, Any]:
    """The no-person rule (``backup.*``, or the given thresholds) on batch probabilities: of the
    inputs below ``thresholds.accept`` (they go to the backups when nobody answers), how many it
    decides, how many of those are right, and the share of all inputs left pending."""
    from selfheal.model.backup import rule_passes

    bc = config.backup
    min_confidence = bc.min_confidence if min_confidence is None else min_confidence
    min_voter_prob = bc.min_voter_prob if min_voter_prob is None else min_voter_prob
    confidence = probs.max(axis=1)
    right = probs.argmax(axis=1) == labels
    unsure = confidence < config.thresholds.accept
    passes = rule_passes(
        confidence, _voter_probs(probs, backup_probs, bc.voter_names), min_confidence, min_voter_prob
    )
    decided = unsure & passes & (bc.decide if decide is None else decide)
    n, k = len(labels), int(decided.sum())
    without_person = ~unsure | decided  # the model's accepted labels and the rule's
    return {
        "min_confidence": float(min_confidence),
        "min_voter_prob": float(min_voter_prob),
        "unsure": int(unsure.sum()),
        "decided": k,
        "right": int(right[decided].sum()),
        "accuracy": float(right[decided].mean()) if k else None,
        "decided_share": k / n if n else 0.0,
        "pending_share": int((unsure & ~decided).sum()) / n if n else 0.0,
        "model_accuracy_on_unsure": float(right[unsure].mean()) if unsure.any() else None,
        "without_person": int(without_person.sum()),
        "without_person_accuracy": float(right[without_person].mean()) if without_person.any() else None,
    }


def _criterion(point: dict[str, Any], config: Config) -> float:
    """What ``evaluation.no_person_scope`` compares with ``no_person_min_accuracy``: the accuracy
    of every label given without a person (``all``), or the one-sided Wilson lower bound of the
    rule's own labels (``route``)."""
    ec = config.evaluation
    if ec.no_person_scope == "all":
        return float(point["without_person_accuracy"] or 0.0)
    return wilson_lower(point["right"], point["decided"], ec.no_person_level)


def criterion_text(point: dict[str, Any], criteria: dict[str, Any]) -> str:
    """The fitted criterion of ``point`` in words: the accuracy of every label given without a
    person (scope ``all``), or the Wilson lower bound of the rule's own labels (``route``)."""
    if criteria.get("scope", "route") == "all":
        acc = point.get("without_person_accuracy")
        return f"all {point.get('without_person', '?')} labels without a person {100 * (acc or 0):.1f}% right"
    return f"{100 * point['lower_bound']:.1f}% lower bound"


def fit_no_person_rule(
    config: Config, labels: np.ndarray, probs: np.ndarray, backup_probs: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Choose ``backup.min_confidence`` and ``backup.min_voter_prob`` on the *validation* split.

    Over a grid (confidence from ``thresholds.clarify`` to ``thresholds.accept``, voter probability
    from 0.5 to 0.99, both in steps of 0.01), the pair that decides the most unsure inputs while
    the criterion of ``evaluation.no_person_scope`` (:func:`_criterion`) is at least
    ``evaluation.no_person_min_accuracy``; ties go to the higher criterion, then the stricter
    pair. The voters are ``backup.voter_names`` (by default every backup but TF-IDF: it is a
    member of the primary ensemble, so its agreement is not an independent confirmation).
    """
    ec, th = config.evaluation, config.thresholds
    criteria = {
        "min_accuracy": ec.no_person_min_accuracy,
        "scope": ec.no_person_scope,
        **({"level": ec.no_person_level} if ec.no_person_scope == "route" else {}),
    }
    best: tuple[Any, ...] | None = None
    closest: tuple[Any, ...] | None = None  # the highest criterion, whether it meets it or not
    for c in np.arange(round(th.clarify * 100), round(th.accept * 100) + 1) / 100:
        for t in np.arange(50, 100) / 100:
            point = apply_no_person_rule(labels, probs, backup_probs, config, float(c), float(t), True)
            score = _criterion(point, config)
            if ec.no_person_scope == "route":
                point["lower_bound"] = score
            if point["decided"] and (closest is None or (score, point["decided"]) > closest[0]):
                closest = ((score, point["decided"]), point)
            if point["decided"] == 0 or score < ec.no_person_min_accuracy:
                continue
            key = (point["decided"], score, c, t)
            if best is None or key > best[0]:
                best = (key, point)
    if best is None:
        out = {"status": "none", "criteria": criteria, "voters": config.backup.voter_names}
        return out | ({"closest": closest[1]} if closest else {})
    chosen = best[1]
    return {
        "status": "done",
        "chosen_on": "validation",
        "criteria": criteria,
        "voters": config.backup.voter_names,
        "min_confidence": chosen["min_confidence"],
        "min_voter_prob": chosen["min_voter_prob"],
        "validation": chosen,
    }


def no_person_report(
    config: Config,
    data: dict[str, Any],
    probs: dict[str, np.ndarray],
    backup_probs: dict[str, dict[str, np.ndarray]],
) -> dict[str, Any]:
    """The no-person rule: as configured, measured on the evaluated split; refitted on validation
    (:func:`fit_no_person_rule`) for the configured voters and, for comparison, for other voter
    sets; the previous rule (the mean vote of all backups agrees with the model); and each
    backup's own accuracy on the inputs the model is unsure about. ``probs`` and ``backup_probs``
    are per split."""
    bc, name = config.backup, data["eval_set"]
    labels = data["sets"][name][1]
    unsure = probs[name].max(axis=1) < config.thresholds.accept
    pred = probs[name].argmax(axis=1)
    mean_vote = np.mean(list(backup_probs[name].values()), axis=0).argmax(axis=1)
    agreed = unsure & (mean_vote == pred)
    out: dict[str, Any] = {
        "configured": {
            "decide": bc.decide,
            "voters": bc.voter_names,
            "min_confidence": bc.min_confidence,
            "min_voter_prob": bc.min_voter_prob,
        },
        "evaluated": apply_no_person_rule(labels, probs[name], backup_probs[name], config),
        "previous_rule": {
            "rule": "the mean vote of all backups agrees with the model",
            "decided": int(agreed.sum()),
            "accuracy": float((pred == labels)[agreed].mean()) if agreed.any() else None,
            "decided_share": float(agreed.mean()) if len(labels) else 0.0,
        },
        "backups_on_unsure": {
            b: float((p.argmax(axis=1) == labels)[unsure].mean()) if unsure.any() else None
            for b, p in backup_probs[name].items()
        },
    }
    if "validation" not in backup_probs or name == "validation":
        out["fit"] = {
            "status": "skipped",
            "reason": "it is fitted on the validation split, which is not a separate split here",
        }
        return out
    val_labels = data["sets"]["validation"][1]

    def measured(fit: dict[str, Any], trial: Config) -> dict[str, Any]:
        """``fit`` with its thresholds (when none met the bound: the closest) on the evaluated split."""
        point = fit.get("validation") or fit.get("closest")
        if point is not None:
            thresholds = (point["min_confidence"], point["min_voter_prob"], True)
            fit["evaluated"] = apply_no_person_rule(
                labels, probs[name], backup_probs[name], trial, *thresholds
            )
        return fit

    out["fit"] = measured(
        fit_no_person_rule(config, val_labels, probs["validation"], backup_probs["validation"]), config
    )
    names = list(backup_probs["validation"])
    independent = [b for b in names if b != "tfidf"]
    seen: list[list[str]] = []
    out["candidates"] = []
    for voters in [[], *([b] for b in names), independent, names]:
        if voters in seen:
            continue
        seen.append(voters)
        trial = config.model_copy(deep=True)
        trial.backup.voters = []
        trial.backup.models = list(dict.fromkeys([*trial.backup.models, *voters]))
        trial.backup.voters = voters
        fit = fit_no_person_rule(trial, val_labels, probs["validation"], backup_probs["validation"])
        out["candidates"].append(measured(fit, trial))
    return out
