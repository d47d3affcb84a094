"""``selfheal eval``: evaluate a checkpoint end to end and write metrics.json, figures and the report.

Reads top to bottom: data -> primary model -> backups -> metrics -> simulation -> files.
Every number in ``EVALUATION.md`` comes from the dict this module writes to ``metrics.json``.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from selfheal.config import Config
from selfheal.data import (
    DataError,
    load_labelled_file,
    prepare_splits,
    read_manifest,
    text_hash,
    verify_split,
)
from selfheal.evaluation.calibration import calibration_report
from selfheal.evaluation.metrics import (
    TARGET_ACCEPTED,
    TARGET_ASKED,
    TARGET_COVERAGE,
    TARGET_ECE,
    TARGET_FINAL,
    TARGET_NO_PERSON,
    TARGET_PENDING,
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
from selfheal.labels import LABELS
from selfheal.model.backup import BackupEnsemble
from selfheal.model.calibrate import softmax
from selfheal.model.checkpoint import MANIFEST_FILE, TRAINING_LOG_FILE, resolve_checkpoint

EVAL_SPLITS = ("test", "validation")
METRICS_JSON = "metrics.json"
RELIABILITY_PNG = "reliability.png"
HISTOGRAM_PNG = "confidence_histogram.png"
RISK_COVERAGE_PNG = "risk_coverage.png"
BATCH = 128
COVERAGES = (TARGET_COVERAGE, 0.8, 0.9)  # coverage-matched selective accuracy (threshold-free)


@dataclass(frozen=True)
class EvalOptions:
    """What to evaluate and where the results go.

    data: a labelled CSV/JSONL file evaluated instead of the held-out split (out-of-domain).
    split: the held-out split to evaluate (``test`` or ``validation``) when ``data`` is unset.
    simulate: run the end-to-end self-healing simulation through the graph.
    command: the command line recorded in the report.
    quiet: no progress bar.
    """

    data: Path | None = None
    split: str = "test"
    simulate: bool = True
    command: str = "selfheal eval"
    quiet: bool = False


@dataclass(frozen=True)
class EvalOutputs:
    """Files written by :func:`evaluate` and the metrics dict itself."""

    metrics_json: Path
    report: Path
    figures: dict[str, Path]
    metrics: dict[str, Any]


@dataclass
class Batched:
    """A Rich progress bar shared by the stages; ``map`` runs a function over texts in batches."""

    progress: Any

    def map(self, description: str, fn: Callable[[list[str]], np.ndarray], texts: list[str]) -> np.ndarray:
        """``fn`` over ``texts`` in batches of :data:`BATCH`, concatenated, with a progress task."""
        task = self.progress.add_task(description, total=len(texts))
        # Similar lengths in a batch mean less padding: run sorted by length, return in input order.
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = []
        for start in range(0, len(texts), BATCH):
            chunk = [texts[i] for i in order[start : start + BATCH]]
            out.append(np.asarray(fn(chunk), dtype=np.float64))
            self.progress.update(task, advance=len(chunk))
        if not out:
            return np.zeros((0, len(LABELS)))
        result = np.empty_like(np.concatenate(out))
        result[order] = np.concatenate(out)
        return result

    @contextmanager
    def step(self, description: str) -> Iterator[None]:
        """A one-unit task for a stage without batches."""
        task = self.progress.add_task(description, total=1)
        yield
        self.progress.update(task, advance=1)


def output_paths(config: Config, options: EvalOptions) -> tuple[Path, Path]:
    """Reports directory and Markdown report path; a ``--data`` run gets its own directory so
    it never overwrites the held-out evaluation."""
    reports = Path(config.paths.reports_dir)
    if options.data is None:
        return reports, Path(config.paths.evaluation_md)
    folder = reports / f"data-{Path(options.data).stem}"
    return folder, folder / "EVALUATION.md"


def read_training_log(directory: Path) -> list[dict[str, str]]:
    """Rows of a checkpoint's per-epoch ``training_log.csv`` (empty when there is none)."""
    path = Path(directory) / TRAINING_LOG_FILE
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _load_data(config: Config, options: EvalOptions, checkpoint: Path) -> dict[str, Any]:
    """The texts to evaluate: the manifest-verified held-out splits, or a user's file."""
    manifest = read_manifest(checkpoint / MANIFEST_FILE)
    if options.data is not None:
        corpus = load_labelled_file(options.data)
        train_hashes = set(manifest["hashes"]["train"])
        overlap = sum(text_hash(t) in train_hashes for t in corpus.texts)
        return {
            "name": Path(options.data).name,
            "source": str(options.data),
            "sets": {"file": (corpus.texts, np.asarray(corpus.labels))},
            "eval_set": "file",
            "manifest_verified": False,
            "train_overlap": overlap,
        }
    if options.split not in EVAL_SPLITS:
        raise DataError(f"unknown split '{options.split}' (choose {' or '.join(EVAL_SPLITS)})")
    splits = prepare_splits(config.data.source, config.data.val_size, config.data.test_size, config.data.seed)
    sets = {}
    for name in ("validation", "test"):
        verify_split(splits[name], manifest, name)
        sets[name] = (list(splits[name]["text"]), np.asarray(splits[name]["label"]))
    return {
        "name": f"{config.data.source} {options.split} split",
        "source": config.data.source,
        "sets": sets,
        "eval_set": options.split,
        "manifest_verified": True,
        "train_overlap": 0,
    }


def _examples(
    texts: list[str],
    labels: np.ndarray,
    probs: np.ndarray,
    status: np.ndarray,
    finals: dict[str, list[dict[str, Any]]],
    k: int,
) -> dict[str, list[dict[str, Any]]]:
    """Real inputs of each kind, with the simulation's final decision per scenario (``finals``).

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
                "true": LABELS[int(labels[i])],
                "predicted": LABELS[int(preds[i])],
                "confidence": float(confidence[i]),
                "status": str(status[i]),
            }
            for scenario, outcomes in finals.items():
                final = outcomes[i]
                row[scenario] = (
                    "pending review" if final["label"] is None else f"{final['label']} via {final['via']}"
                )
            rows.append(row)
        return rows

    accepted, asked = status == "accept", status == "clarify"
    reviewed = np.array([f["via"] == "pending_review" for f in finals.get("no_user", [])], dtype=bool)
    escalated = (status == "escalate") | (reviewed if len(reviewed) else np.zeros(len(status), dtype=bool))
    asked_rows = pick(asked & ~correct, (k + 1) // 2, least_confident=True)
    asked_rows += pick(asked & correct, k - len(asked_rows), least_confident=True)
    return {
        "confident_right": pick(accepted & correct, k),
        "confident_wrong": pick(accepted & ~correct, k),
        "asked": asked_rows,
        "escalated": pick(escalated, k, least_confident=True),
    }


def evaluate(config: Config, options: EvalOptions) -> EvalOutputs:
    """Run the whole evaluation and write ``metrics.json``, the PNGs and the Markdown report."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from transformers.utils import logging as hf_logging

    from selfheal.evaluation import plots
    from selfheal.evaluation.report import write_report
    from selfheal.evaluation.simulate import simulate
    from selfheal.model.classifier import Classifier

    hf_logging.disable_progress_bar()  # the Rich bar is the only progress output
    started = time.perf_counter()
    ec = config.evaluation
    accept, clarify = config.thresholds.accept, config.thresholds.clarify
    checkpoint = resolve_checkpoint(config.paths.checkpoint)
    reports_dir, report_path = output_paths(config, options)
    columns = [
        SpinnerColumn(),
        TextColumn("{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    data = _load_data(config, options, checkpoint)  # bad input fails here, before the progress bar
    with Progress(*columns, disable=options.quiet, transient=False) as progress:
        run = Batched(progress)

        # --- data and the primary model ----------------------------------------------------------
        with run.step("loading the checkpoint"):
            classifier = Classifier.load(
                checkpoint, use_temperature=False, use_embedder=config.embedder.enabled
            )
        temperature = classifier.fitted_temperature
        deployed_t = temperature if config.calibration.temperature else 1.0
        features: dict[str, np.ndarray] = {}  # the embedder's, kept for the knowability check

        def logits_keeping_features(chunk: list[str]) -> np.ndarray:
            lg, f = classifier.logits_and_features(chunk)
            if f is not None:
                features.update(zip(chunk, f, strict=True))
            return lg

        logits = {
            name: run.map(f"primary model on {name}", logits_keeping_features, texts)
            for name, (texts, _) in data["sets"].items()
        }
        texts, labels = data["sets"][data["eval_set"]]
        lengths = classifier.token_lengths(texts)
        raw = softmax(logits[data["eval_set"]])
        scaled = softmax(logits[data["eval_set"]], temperature)
        deployed = {name: softmax(lg, deployed_t) for name, lg in logits.items()}  # what the app sees
        probs = deployed[data["eval_set"]]

        # --- backups ---------------------------------------------------------------------------
        with run.step("loading backup models"):
            backups = BackupEnsemble(config, checkpoint).load()
        backup_probs = {b.name: run.map(f"backup {b.name}", b.predict_proba, texts) for b in backups}
        split_backup_probs = {data["eval_set"]: backup_probs}
        if "validation" in data["sets"] and data["eval_set"] != "validation":  # to fit the no-person rule
            val_texts = data["sets"]["validation"][0]
            split_backup_probs["validation"] = {
                b.name: run.map(f"backup {b.name} on validation", b.predict_proba, val_texts) for b in backups
            }

        # --- metrics -----------------------------------------------------------------------------
        with run.step("metrics and bootstrap"):
            calib = {
                "raw": calibration_report(labels, raw, ec.bins, ec.bootstrap, ec.seed),
                "scaled": calibration_report(labels, scaled, ec.bins, ec.bootstrap, ec.seed),
            }
            models = {"primary": detailed_metrics(labels, probs)}
            for name, p in backup_probs.items():
                models[name] = {
                    **detailed_metrics(labels, p),
                    "calibration": calibration_report(labels, p, ec.bins, ec.bootstrap, ec.seed),
                }
            fallback = {
                name: fallback_frequency(p.max(axis=1), accept, clarify) for name, p in deployed.items()
            }
            status = route(probs.max(axis=1), accept, clarify)
            sweep = risk_coverage(labels, probs, 0.5, 1.0, ec.sweep_step)
            curve = risk_coverage(labels, probs, 0.5, 1.0, 0.01)
            at_threshold = _selective_with_ci(labels, probs, accept, config)
            at_coverage = [selective_at_coverage(labels, probs, c) for c in COVERAGES]

        # --- the self-healing simulation through the real graph ---------------------------------
        if options.simulate:
            sim = simulate(config, texts, labels, probs, backup_probs, run, classifier.version, deployed_t)
        else:
            sim = {"status": "skipped", "reason": "--no-simulation"}
        per_input = sim.pop("per_input", {})

        # --- inputs the model cannot know (the knowability check) -------------------------------
        knowability = _knowability(
            config, classifier, backups, texts, labels, probs, features, run, deployed_t
        )

        # --- the operating point: chosen on validation, checked on the evaluated split ----------
        operating = operating_point(config, data, deployed)
        if operating["status"] == "done":
            t = operating["threshold"]
            operating["evaluated"] = _selective_with_ci(labels, probs, t, config)
            if sim.get("status") == "done" and t == accept:
                operating["simulation"] = sim["scenarios"]["user"]
            elif sim.get("status") == "done":
                at_t = config.model_copy(deep=True)
                at_t.thresholds.accept = t
                operating["simulation"] = simulate(
                    at_t, texts, labels, probs, backup_probs, run, classifier.version, deployed_t, ("user",)
                )["scenarios"]["user"]

        # --- the no-person rule: fitted on validation, measured on the evaluated split ----------
        no_person = no_person_report(config, data, deployed, split_backup_probs)

        # --- files -----------------------------------------------------------------------------
        with run.step("figures and report"):
            figures = {
                "reliability": plots.reliability_diagram(
                    [
                        ("before temperature scaling (T = 1)", calib["raw"]),
                        (f"after temperature scaling (T = {temperature:.3f})", calib["scaled"]),
                    ],
                    reports_dir / RELIABILITY_PNG,
                ),
                "confidence_histogram": plots.confidence_histogram(
                    [(name, p.max(axis=1)) for name, p in deployed.items()],
                    (accept, clarify),
                    reports_dir / HISTOGRAM_PNG,
                ),
                "risk_coverage": plots.risk_coverage_plot(curve, accept, reports_dir / RISK_COVERAGE_PNG),
            }
            metrics: dict[str, Any] = {
                "command": options.command,
                "created": datetime.now().astimezone().isoformat(timespec="seconds"),
                "checkpoint": {
                    "directory": _display(checkpoint),
                    "version": classifier.version,
                    "method": str(classifier.meta.get("method", "lora")),
                    "tfidf_weight": classifier.tfidf_weight,
                    "members": classifier.members,
                    "base_model": classifier.meta.get("base_model") or "all-MiniLM-L6-v2 (bundled)",
                    "temperature": temperature,
                    "temperature_used": config.calibration.temperature,
                },
                "data": {
                    "name": data["name"],
                    "source": data["source"],
                    "evaluated": data["eval_set"],
                    "n": len(texts),
                    "sizes": {name: len(t) for name, (t, _) in data["sets"].items()},
                    "manifest_verified": data["manifest_verified"],
                    "train_overlap": data["train_overlap"],
                    "tokens": {
                        "mean": float(lengths.mean()) if len(lengths) else 0.0,
                        "max": int(lengths.max()) if len(lengths) else 0,
                        "max_length": classifier.max_length,
                        "truncated": int((lengths > classifier.max_length).sum()),
                    },
                },
                "thresholds": {"accept": accept, "clarify": clarify},
                "models": models,
                "calibration": calib,
                "fallback": fallback,
                "risk_coverage": {
                    "sweep": sweep,
                    "at_threshold": at_threshold,
                    "at_coverage": at_coverage,
                    "aurc": aurc(labels, probs),
                },
                "simulation": sim,
                "operating_point": operating,
                "no_person": no_person,
                "knowability": knowability,
                "examples": _examples(texts, labels, probs, status, per_input, ec.examples),
                "training_log": read_training_log(checkpoint),
                "figures": {k: _display(v) for k, v in figures.items()},
            }
            metrics["targets"] = targets(metrics)
            metrics["runtime_seconds"] = round(time.perf_counter() - started, 1)
            metrics_json = reports_dir / METRICS_JSON
            metrics_json.parent.mkdir(parents=True, exist_ok=True)
            metrics_json.write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
            write_report(metrics, report_path, figures)
    return EvalOutputs(metrics_json, report_path, figures, metrics)


def _selective_with_ci(
    labels: np.ndarray, probs: np.ndarray, threshold: float, config: Config
) -> dict[str, Any]:
    """:func:`selective_accuracy` at ``threshold`` with the bootstrap interval of its accuracy."""
    ec = config.evaluation
    out = selective_accuracy(labels, probs, threshold)
    out["accuracy_ci95"] = accuracy_ci(
        probs.argmax(axis=1) == labels, probs.max(axis=1) >= threshold, ec.bootstrap, seed=ec.seed
    )
    return out


def operating_point(config: Config, data: dict[str, Any], probs: dict[str, np.ndarray]) -> dict[str, Any]:
    """The lowest accept threshold of the validation sweep (``evaluation.sweep_step``, from
    ``thresholds.clarify`` up) meeting ``evaluation.min_final`` (final accuracy with correct
    clarifications), ``max_human`` (share to a person) and ``min_accepted`` (accuracy on accepted)
    there; by default the evaluation targets: 95%, 30%, 93%.

    ``probs`` are each split's probabilities as the app computes them (deployed temperature).
    Chosen on validation only, so it can be reported honestly on the test split. Skipped when
    validation is the evaluated split (the choice would be judged on the data that made it) or
    when a ``--data`` file is evaluated (the validation split is not loaded).
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
    sweep = risk_coverage(val_labels, probs["validation"], 0.5, 1.0, ec.sweep_step)
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


def _voter_probs(probs: np.ndarray, backup_probs: dict[str, np.ndarray], voters: list[str]) -> np.ndarray:
    """Each voter's probability of the primary model's label, shape ``(n, len(voters))``."""
    pred = probs.argmax(axis=1)
    rows = np.arange(len(pred))
    return (
        np.stack([backup_probs[v][rows, pred] for v in voters], axis=1)
        if voters
        else np.zeros((len(pred), 0))
    )


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
    }


def fit_no_person_rule(
    config: Config, labels: np.ndarray, probs: np.ndarray, backup_probs: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Choose ``backup.min_confidence`` and ``backup.min_voter_prob`` on the *validation* split.

    Over a grid (confidence from ``thresholds.clarify`` to ``thresholds.accept``, voter probability
    from 0.5 to 0.99, both in steps of 0.01), the pair that decides the most unsure inputs while
    the one-sided Wilson lower bound (at ``evaluation.no_person_level``) of their accuracy is at
    least ``evaluation.no_person_min_accuracy``; ties go to the higher bound, then the stricter
    pair. The voters are ``backup.voter_names`` (by default every backup but TF-IDF: it is a
    member of the primary ensemble, so its agreement is not an independent confirmation).
    """
    from selfheal.evaluation.metrics import wilson_lower

    ec, th = config.evaluation, config.thresholds
    criteria = {"min_accuracy": ec.no_person_min_accuracy, "level": ec.no_person_level}
    best: tuple[Any, ...] | None = None
    closest: tuple[Any, ...] | None = None  # the highest lower bound, whether it meets it or not
    for c in np.arange(round(th.clarify * 100), round(th.accept * 100) + 1) / 100:
        for t in np.arange(50, 100) / 100:
            point = apply_no_person_rule(labels, probs, backup_probs, config, float(c), float(t), True)
            bound = wilson_lower(point["right"], point["decided"], ec.no_person_level)
            if point["decided"] and (closest is None or (bound, point["decided"]) > closest[0]):
                closest = ((bound, point["decided"]), point | {"lower_bound": bound})
            if point["decided"] == 0 or bound < ec.no_person_min_accuracy:
                continue
            key = (point["decided"], bound, c, t)
            if best is None or key > best[0]:
                best = (key, point | {"lower_bound": bound})
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


def _accepted_row(selective: dict[str, Any], where: str) -> dict[str, Any]:
    """The accuracy-on-accepted target row for a :func:`_selective_with_ci` result."""
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
    """The no-person target rows for the simulation with nobody answering: the ``backup_model``
    route's accuracy (met when it gives no label at all: then it gives no wrong one), the share
    left pending, and the accuracy of every label given without a person (model + backups)."""
    backup, without = no_user["routes"]["backup_model"], no_user["without_person"]
    rows = [
        {
            "target": f"no-person route (backup_model, {backup['n']} inputs) accuracy >= 93%, nobody answering",
            "value": backup["accuracy"],
            "met": backup["accuracy"] is None or backup["accuracy"] >= TARGET_NO_PERSON,
        },
        {
            "target": "inputs left pending for review, nobody answering <= 15%",
            "value": no_user["pending_share"],
            "met": no_user["pending_share"] <= TARGET_PENDING,
        },
        {
            "target": f"labels given without a person (model + backup_model, {without['n']} inputs) >= 93%",
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


def _display(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it."""
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
    except ValueError:
        return str(path)


def last_training_log(config: Config) -> Path:
    """Directory of the last training run (``paths.output_dir``), or of the evaluated checkpoint
    when no run has been written there."""
    out = Path(config.paths.output_dir)
    if (out / TRAINING_LOG_FILE).exists():
        return out
    return resolve_checkpoint(config.paths.checkpoint)


def print_training_log(config: Config, console: Any) -> None:
    """Print the per-epoch table of the last training run (the CSV's columns, aligned)."""
    directory = last_training_log(config)
    rows = read_training_log(directory)
    if not rows:
        raise DataError(f"{directory} has no {TRAINING_LOG_FILE}")

    def fmt(key: str, value: str) -> str:
        try:
            number = float(value)
        except ValueError:
            return value
        if key == "learning_rate":
            return f"{number:.2e}"
        return value if key in ("epoch", "seconds") else f"{number:.4f}"

    header = list(rows[0])
    cells = [[fmt(k, row[k]) for k in header] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    console.print(f"training log: {_display(directory / TRAINING_LOG_FILE)}", highlight=False, soft_wrap=True)
    for line in [header, *cells]:
        console.print(
            "  ".join(v.rjust(w) for v, w in zip(line, widths, strict=True)), highlight=False, soft_wrap=True
        )


def print_summary(outputs: EvalOutputs, console: Any) -> None:
    """The headline figures of a finished evaluation and where the files went."""
    m = outputs.metrics
    raw, scaled = m["calibration"]["raw"], m["calibration"]["scaled"]
    at = m["risk_coverage"]["at_threshold"]
    acc_at = "n/a" if at["accuracy"] is None else f"{100 * at['accuracy']:.1f}%"
    if at.get("accuracy_ci95"):
        acc_at += f" [{100 * at['accuracy_ci95'][0]:.1f}, {100 * at['accuracy_ci95'][1]:.1f}]"
    lines = [
        f"{m['data']['name']}: {m['data']['n']} texts, primary accuracy {100 * m['models']['primary']['accuracy']:.1f}%"
        f", macro-F1 {100 * m['models']['primary']['f1_macro']:.1f}%",
        f"ECE {100 * raw['ece']:.2f}% [{100 * raw['ece_ci95'][0]:.2f}, {100 * raw['ece_ci95'][1]:.2f}] before, "
        f"{100 * scaled['ece']:.2f}% [{100 * scaled['ece_ci95'][0]:.2f}, {100 * scaled['ece_ci95'][1]:.2f}] "
        f"after temperature scaling (T={m['checkpoint']['temperature']:.3f})",
        f"at accept {at['threshold']}: accuracy on accepted {acc_at}, coverage {100 * at['coverage']:.1f}%; "
        f"final {100 * at['final_with_user']:.1f}% if a person labels the rest correctly "
        f"(the confidences predict {100 * at['final_predicted']:.1f}%)",
    ]
    bounds = target_bounds(m)
    floor = bounds["ece"]
    lines.append(
        f"what this model allows: ECE if perfectly calibrated {100 * floor['mean']:.2f}% "
        f"[{100 * floor['range95'][0]:.2f}, {100 * floor['range95'][1]:.2f}] (p = {floor['p_value']:.2f}); "
        f"most confident 70%: accuracy {100 * bounds['accepted_accuracy']['value']:.1f}%, "
        f"final {100 * bounds['final_accuracy']['value']:.1f}% with the other 30% labelled by a person"
    )
    for s in m["simulation"].get("scenarios", {}).values():
        lines.append(
            f"simulation, {s['title']}: final accuracy {100 * s['accuracy']:.1f}% "
            f"[{100 * s['accuracy_ci95'][0]:.1f}, {100 * s['accuracy_ci95'][1]:.1f}], "
            f"asked {100 * s['asked_share']:.1f}%, needed a human {100 * s['human_share']:.1f}%"
        )
    lines += _no_person_lines(m)
    op = m.get("operating_point", {})
    if op.get("status") == "done":
        e, sim = op["evaluated"], op.get("simulation")
        final = (
            f"final {100 * e['final_with_user']:.1f}% if a person labels the rest correctly"
            if sim is None
            else f"simulated final {100 * sim['accuracy']:.1f}% [{100 * sim['accuracy_ci95'][0]:.1f}, "
            f"{100 * sim['accuracy_ci95'][1]:.1f}] with a correct user, {100 * sim['human_share']:.1f}% needed a person"
        )
        lines.append(
            f"operating point chosen on validation: accept {op['threshold']:.2f} -> on {m['data']['evaluated']}: "
            f"accuracy on accepted {100 * (e['accuracy'] or 0):.1f}%, coverage {100 * e['coverage']:.1f}%, {final}"
            + (
                ""
                if op["threshold"] == at["threshold"]
                else f" (--set thresholds.accept={op['threshold']:.2f})"
            )
        )
    elif op:
        lines.append(f"operating point not chosen: {op['reason']}")
    if m["simulation"].get("status") != "done":
        lines.append(f"simulation {m['simulation'].get('status')}: {m['simulation'].get('reason', '')}")
    lines.append(
        f"wrote {_display(outputs.metrics_json)}, {len(outputs.figures)} figures and {_display(outputs.report)} "
        f"in {m['runtime_seconds']:.0f} s"
    )
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def _no_person_lines(m: dict[str, Any]) -> list[str]:
    """Console lines: accuracy and share per final route with nobody answering, and the
    no-person rule fitted on validation."""
    no_user = m["simulation"].get("scenarios", {}).get("no_user")
    lines = []
    if no_user is not None:
        parts = []
        for via, r in no_user["routes"].items():
            acc = "" if r["accuracy"] is None else f" at {100 * r['accuracy']:.1f}%"
            parts.append(f"{via} {100 * r['share']:.1f}%{acc}")
        lines.append("nobody answering, per route: " + ", ".join(parts))
    fit = m.get("no_person", {}).get("fit", {})
    if fit.get("status") == "done":
        v = fit["validation"]
        lines.append(
            f"no-person rule fitted on validation ({'+'.join(fit['voters']) or 'no voters'}): "
            f"--set backup.min_confidence={fit['min_confidence']:.2f} --set backup.min_voter_prob="
            f"{fit['min_voter_prob']:.2f} (validation: {v['right']}/{v['decided']} right, lower bound "
            f"{100 * v['lower_bound']:.1f}%)"
        )
    elif fit.get("status") == "none":
        c = fit["criteria"]
        lines.append(
            f"no-person rule: no thresholds for voters {'+'.join(fit['voters']) or '(none)'} give a "
            f"{100 * c['level']:.0f}% lower bound >= {100 * c['min_accuracy']:.0f}% on validation; "
            "keep --set backup.decide=false (unsure inputs wait for review)"
        )
    return lines


def _knowability(
    config: Config,
    classifier: Any,
    backups: list[Any],
    texts: list[str],
    labels: np.ndarray,
    probs: np.ndarray,
    features: dict[str, np.ndarray],
    run: Batched,
    temperature: float,
) -> dict[str, Any]:
    """The "Inputs the model cannot know" measurements (see :mod:`selfheal.evaluation.knowability`)."""
    from selfheal.evaluation.knowability import evaluate_sets, in_domain

    if getattr(classifier, "knowability", None) is None:
        return {"status": "skipped", "reason": "the checkpoint has no knowability.json.gz"}
    if not config.knowability.enabled:
        return {"status": "skipped", "reason": "knowability.enabled is false"}
    with run.step("knowability: evaluated split"):
        feats = np.stack([features[t] for t in texts]) if features and texts else None
        scores = classifier.knowability_scores(texts, feats) or []
        domain = in_domain(config, classifier, labels, probs, scores)
    with run.step("knowability: hand-written sets"):
        sets = evaluate_sets(config, classifier, backups, config.knowability.eval_sets, temperature)
    return {"status": "done", "in_domain": domain, "sets": sets}
