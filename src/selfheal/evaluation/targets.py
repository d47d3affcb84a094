"""The evaluation's targets, what the model allows whatever the threshold, and the operating point.

* :data:`TARGET_ECE` ... :data:`TARGET_PENDING`: the evaluation issue's targets;
* :func:`targets`: each target with its measured value and whether it is met, from the metrics dict;
* :func:`target_bounds`: what the same model allows, independent of threshold and temperature;
* :func:`operating_point`: the lowest accept threshold meeting the targets, chosen on validation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from selfheal.config import Config
from selfheal.evaluation.metrics import accuracy_ci, lowest_threshold, risk_coverage, selective_accuracy
from selfheal.vocabulary import BACKUP_MODEL

TARGET_ECE = 0.02  # ECE after temperature scaling, at most
TARGET_ACCEPTED = 0.93  # accuracy on auto-accepted predictions, at least
TARGET_COVERAGE = 0.7  # coverage at the accept threshold, at least
TARGET_FINAL = 0.95  # final accuracy with correct clarifications, at least
TARGET_ASKED = 0.30  # share of inputs that needed a person, at most
TARGET_NO_PERSON = 0.93  # accuracy of the labels given without a person (backup_model), at least
TARGET_PENDING = 0.15  # share of inputs left pending for review when nobody answers, at most
COVERAGES = (TARGET_COVERAGE, 0.8, 0.9)  # coverage-matched selective accuracy (threshold-free)


def selective_with_ci(
    labels: np.ndarray, probs: np.ndarray, threshold: float, config: Config
) -> dict[str, Any]:
    """:func:`~selfheal.evaluation.metrics.selective_accuracy` at ``threshold`` with the bootstrap
    interval of its accuracy."""
    ec = config.evaluation
    out = selective_accuracy(labels, probs, threshold)
    out["accuracy_ci95"] = accuracy_ci(
        probs.argmax(axis=1) == labels, probs.max(axis=1) >= threshold, ec.bootstrap, seed=ec.seed
    )
    return out


def operating_point(
    config: Config, data: dict[str, Any], probs: dict[str, np.ndarray], start: float = 0.5
) -> dict[str, Any]:
    """The lowest accept threshold of the validation sweep (``evaluation.sweep_step``, from
    ``thresholds.clarify`` up) meeting ``evaluation.min_final`` (final accuracy with correct
    clarifications), ``max_human`` (share to a person) and ``min_accepted`` (accuracy on accepted)
    there; by default the evaluation targets: 95%, 30%, 93%.

    ``probs`` are each split's probabilities as the app computes them (deployed temperature);
    ``start`` is where the sweep starts (0.5 for two labels, see
    :func:`~selfheal.evaluation.metrics.sweep_start`). Chosen on validation only, so it can be
    reported honestly on the test split. Skipped when validation is the evaluated split (the
    choice would be judged on the data that made it) or when a ``--data`` file is evaluated (the
    validation split is not loaded).
    """
    ec, clarify = config.evaluation, config.thresholds.clarify
    criteria = {"min_final": ec.min_final, "max_human": ec.max_human, "min_accepted": ec.min_accepted}
    if "validation" not in data["sets"]:
        return {
            "status": "skipped",
            "reason": "a --data file is evaluated; it is chosen on the validation split",
        }
    if data["eval_set"] == "validation":
        return {
            "status": "skipped",
            "reason": "it is chosen on the validation split, the split evaluated here",
        }
    _, val_labels = data["sets"]["validation"]
    sweep = risk_coverage(val_labels, probs["validation"], start, 1.0, ec.sweep_step)
    point = lowest_threshold([p for p in sweep if p["threshold"] >= clarify], **criteria)
    if point is None:
        return {
            "status": "none",
            "reason": "no threshold of the validation sweep meets the targets",
            "criteria": criteria,
        }
    return {
        "status": "done",
        "chosen_on": "validation",
        "criteria": criteria,
        "threshold": point["threshold"],
        "validation": point,
        "validation_sweep": sweep,
    }


def _accepted_row(selective: dict[str, Any], where: str) -> dict[str, Any]:
    """The accuracy-on-accepted target row for a :func:`selective_with_ci` result."""
    return {
        "target": f"accuracy on auto-accepted >= 93% {where}",
        "value": selective["accuracy"],
        "ci95": selective["accuracy_ci95"],
        "met": selective["accuracy"] is not None and selective["accuracy"] >= TARGET_ACCEPTED,
    }


def _healing_rows(user: dict[str, Any], where: str = "") -> list[dict[str, Any]]:
    """The final-accuracy and needed-a-person target rows for a simulated correct user."""
    return [
        {
            "target": f"final accuracy with correct clarifications >= 95%{where}",
            "value": user["accuracy"],
            "ci95": user["accuracy_ci95"],
            "met": user["accuracy"] >= TARGET_FINAL,
        },
        {
            "target": f"inputs that needed a person (clarification or review) <= 30%{where}",
            "value": user["human_share"],
            "met": user["human_share"] <= TARGET_ASKED,
        },
    ]


def _no_person_rows(no_user: dict[str, Any]) -> list[dict[str, Any]]:
    """The no-person rows for the simulation with nobody answering: the ``backup_model`` route's
    own accuracy (for information, ``met`` None: issue 12's target is the last row), the share
    left pending, and the accuracy of every label given without a person (model + backups), which
    must be at least the model's own accepted ones' 93%."""
    backup, without = no_user["routes"][BACKUP_MODEL], no_user["without_person"]
    rows = [
        {
            "target": f"no-person route ({BACKUP_MODEL}, {backup['n']} inputs) alone, nobody answering "
            "(for information: the target is all labels without a person, below)",
            "value": backup["accuracy"],
            "met": None,
        },
        {
            "target": "inputs left pending for review, nobody answering <= 15%",
            "value": no_user["pending_share"],
            "met": no_user["pending_share"] <= TARGET_PENDING,
        },
        {
            "target": f"labels given without a person (model + {BACKUP_MODEL}, {without['n']} inputs) >= 93%",
            "value": without["accuracy"],
            "met": without["accuracy"] is not None and without["accuracy"] >= TARGET_NO_PERSON,
        },
    ]
    for row, ci in zip(rows, (backup["accuracy_ci95"], None, without["accuracy_ci95"]), strict=True):
        if ci is not None:
            row["ci95"] = ci
    return rows


def targets(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value, whether it is met, and ``bound``: what
    the same model allows whatever the threshold or temperature (see :func:`target_bounds`).
    When the operating point chosen on validation differs from the configured threshold, its
    rows (``operating_point: True``) follow."""
    at = metrics["risk_coverage"]["at_threshold"]
    scaled = metrics["calibration"]["scaled"]
    bounds = target_bounds(metrics)
    rows = [
        {
            "target": "ECE after temperature scaling <= 2%",
            "value": scaled["ece"],
            "ci95": scaled["ece_ci95"],
            "met": scaled["ece"] <= TARGET_ECE,
            "bound": bounds["ece"],
        },
        _accepted_row(at, f"at threshold {at['threshold']}") | {"bound": bounds["accepted_accuracy"]},
        {
            "target": f"coverage >= 70% at threshold {at['threshold']}",
            "value": at["coverage"],
            "met": at["coverage"] >= TARGET_COVERAGE,
        },
    ]
    user = metrics["simulation"].get("scenarios", {}).get("user")
    if user is not None:
        final, human = _healing_rows(user)
        rows += [final | {"bound": bounds["final_accuracy"]}, human]
    no_user = metrics["simulation"].get("scenarios", {}).get("no_user")
    if no_user is not None:
        rows += _no_person_rows(no_user)
    op = metrics.get("operating_point", {})
    if "simulation" in op and op["threshold"] != at["threshold"]:
        where = f"at accept {op['threshold']:.2f} (chosen on validation)"
        op_rows = [*_healing_rows(op["simulation"], f" {where}"), _accepted_row(op["evaluated"], where)]
        rows += [row | {"operating_point": True} for row in op_rows]
    return rows


def target_bounds(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What the evaluated model allows, independent of threshold and temperature.

    * ``ece``: the ECE a perfectly calibrated model with these confidences would show on this
      many texts (binning noise), with the p-value of the measured ECE against it.
    * ``accepted_accuracy``: accuracy on the most confident 70% (the best any threshold that keeps
      coverage >= 70% can give).
    * ``final_accuracy``: final accuracy when that 70% is accepted and a person correctly labels
      the other 30% (the best any threshold with at most 30% asked can give).
    """
    floor = metrics["calibration"]["scaled"]["ece_if_calibrated"]
    at70 = next(c for c in metrics["risk_coverage"]["at_coverage"] if c["coverage"] == TARGET_COVERAGE)
    return {
        "ece": {"kind": "if perfectly calibrated", **floor},
        "accepted_accuracy": {"kind": "most confident 70%", "value": at70["accuracy"]},
        "final_accuracy": {"kind": "30% asked, answered correctly", "value": at70["final_with_user"]},
    }
