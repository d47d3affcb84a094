"""``selfheal eval``, step by step: load the data, predict, measure, write the files.

Reads top to bottom: :func:`load_data` (the held-out split, verified, or a user's file) ->
:func:`predict` (the primary model, its knowability scores, the backups, once, in batches) ->
:func:`measure` (metrics, calibration, risk-coverage, the simulation through the real graph, the
operating point, the no-person rule: arrays in, a dict out) -> :func:`evaluate` writes
``metrics.json``, the figures (:mod:`.plots`) and ``EVALUATION.md`` (:mod:`.report`).
Every number in ``EVALUATION.md`` comes from the dict written to ``metrics.json``.

Labels are the checkpoint's (:func:`selfheal.model.checkpoint.checkpoint_labels`): any number
of two or more.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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
from selfheal.evaluation.examples import select_examples
from selfheal.evaluation.metrics import (
    aurc,
    detailed_metrics,
    fallback_frequency,
    risk_coverage,
    route,
    selective_at_coverage,
    sweep_start,
)
from selfheal.evaluation.no_person import no_person_report
from selfheal.evaluation.targets import COVERAGES, operating_point, selective_with_ci, targets
from selfheal.labels import LabelSet
from selfheal.model.calibrate import softmax
from selfheal.model.checkpoint import (
    MANIFEST_FILE,
    TRAINING_LOG_FILE,
    checkpoint_labels,
    resolve_checkpoint,
)

EVAL_SPLITS = ("test", "validation")
METRICS_JSON = "metrics.json"
RELIABILITY_PNG = "reliability.png"
HISTOGRAM_PNG = "confidence_histogram.png"
RISK_COVERAGE_PNG = "risk_coverage.png"
BATCH = 128


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
    """A Rich progress bar shared by the steps; ``map`` runs a function over texts in batches.

    ``width``: the number of labels (the columns of an empty result)."""

    progress: Any
    width: int = 2

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
            return np.zeros((0, self.width))
        result = np.empty_like(np.concatenate(out))
        result[order] = np.concatenate(out)
        return result

    @contextmanager
    def step(self, description: str) -> Iterator[None]:
        """A one-unit task for a step without batches."""
        task = self.progress.add_task(description, total=1)
        yield
        self.progress.update(task, advance=1)


@contextmanager
def progress_bar(quiet: bool, width: int = 2) -> Iterator[Batched]:
    """The Rich progress bar of a run (nothing shown when ``quiet``), as a :class:`Batched`."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [
        SpinnerColumn(),
        TextColumn("{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, disable=quiet, transient=False) as progress:
        yield Batched(progress, width)


def output_paths(config: Config, options: EvalOptions) -> tuple[Path, Path]:
    """Reports directory and Markdown report path; a ``--data`` run gets its own directory so
    it never overwrites the held-out evaluation."""
    reports = Path(config.paths.reports_dir)
    if options.data is None:
        return reports, Path(config.paths.evaluation_md)
    folder = reports / f"data-{Path(options.data).stem}"
    return folder, folder / "EVALUATION.md"


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it."""
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
    except ValueError:
        return str(path)


def read_training_log(directory: Path) -> list[dict[str, str]]:
    """Rows of a checkpoint's per-epoch ``training_log.csv`` (empty when there is none)."""
    path = Path(directory) / TRAINING_LOG_FILE
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


# --- data ------------------------------------------------------------------------------------


def load_data(config: Config, options: EvalOptions, checkpoint: Path, names: LabelSet) -> dict[str, Any]:
    """The texts to evaluate: the manifest-verified held-out splits, or a user's file whose labels
    are read as the checkpoint's ``names`` (a label it does not know is a one-line error).

    ``sets`` maps each loaded set to ``(texts, label ids)``; ``eval_set`` is the one evaluated."""
    manifest = read_manifest(checkpoint / MANIFEST_FILE)
    if options.data is not None:
        corpus = load_labelled_file(options.data, labels=names)
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


# --- predictions -----------------------------------------------------------------------------


@dataclass
class Predicted:
    """Everything the models said about the loaded sets, computed once.

    logits: per set, the primary model's un-scaled logits ``(n, k)``.
    temperature: the temperature fitted at training time; ``deployed_temperature`` the one the
        app uses (1 when ``calibration.temperature`` is false).
    backups: per set, each backup's probabilities ``(n, k)`` (the evaluated set, and validation
        when it is loaded, to fit the no-person rule).
    detector, scores: the checkpoint's knowability detector and the evaluated texts' knowability
        scores; ``None`` when the check is off or the checkpoint has none.
    """

    logits: dict[str, np.ndarray]
    temperature: float
    deployed_temperature: float
    backups: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    detector: Any = None
    scores: list[dict[str, Any]] | None = None

    def probs(self, name: str, temperature: float | None = None) -> np.ndarray:
        """Probabilities of set ``name`` at ``temperature`` (the deployed one by default)."""
        t = self.deployed_temperature if temperature is None else temperature
        return softmax(self.logits[name], t)


# The voter's states of every evaluated text stay in memory (validation and test: about 220 MB),
# so that none is computed twice; the app keeps backup.voter_states_mb.
EVAL_STATES = 2**30


def predict(
    config: Config, data: dict[str, Any], classifier: Any, backups: list[Any], run: Batched
) -> Predicted:
    """The primary model on every loaded set, the knowability scores of the evaluated texts (from
    the embedder features of the same pass), and the backups."""
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
    temperature = classifier.fitted_temperature
    predicted = Predicted(logits, temperature, temperature if config.calibration.temperature else 1.0)
    texts = data["sets"][data["eval_set"]][0]
    detector = getattr(classifier, "knowability", None)
    if detector is not None and config.knowability.enabled:
        with run.step("knowability: evaluated split"):
            feats = np.stack([features[t] for t in texts]) if features and texts else None
            predicted.detector = detector
            predicted.scores = classifier.knowability_scores(texts, feats) or []
    names = [data["eval_set"]]
    if "validation" in data["sets"] and data["eval_set"] != "validation":  # to fit the no-person rule
        names.append("validation")
    for name in names:
        where = "" if name == data["eval_set"] else f" on {name}"
        predicted.backups[name] = {
            b.name: run.map(f"backup {b.name}{where}", b.predict_proba, data["sets"][name][0])
            for b in backups
        }
    return predicted


# --- measurements ----------------------------------------------------------------------------


def measure(
    config: Config,
    data: dict[str, Any],
    predicted: Predicted,
    names: LabelSet,
    run: Batched,
    simulate: bool = True,
    model_version: str = "",
) -> dict[str, Any]:
    """Every measurement of the evaluated set from the predictions: ``thresholds``, ``models``
    (primary and backups), ``calibration`` (raw and temperature-scaled), ``fallback``,
    ``risk_coverage``, ``simulation`` (through the real graph, unless ``simulate`` is false),
    ``operating_point``, ``no_person``, ``in_domain`` (the knowability check on the evaluated set,
    ``None`` when it is off) and ``examples``; ``names`` is the label set."""
    from selfheal.evaluation.knowability import in_domain
    from selfheal.evaluation.simulate import simulate as run_simulation

    ec, th = config.evaluation, config.thresholds
    texts, labels = data["sets"][data["eval_set"]]
    deployed = {name: predicted.probs(name) for name in predicted.logits}  # what the app sees
    probs = deployed[data["eval_set"]]
    backup_probs = predicted.backups[data["eval_set"]]
    start = sweep_start(len(names), ec.sweep_step)

    with run.step("metrics and bootstrap"):
        calib = {
            "raw": calibration_report(
                labels, predicted.probs(data["eval_set"], 1.0), ec.bins, ec.bootstrap, ec.seed
            ),
            "scaled": calibration_report(
                labels,
                predicted.probs(data["eval_set"], predicted.temperature),
                ec.bins,
                ec.bootstrap,
                ec.seed,
            ),
        }
        models = {"primary": detailed_metrics(labels, probs, names)}
        for name, p in backup_probs.items():
            models[name] = {
                **detailed_metrics(labels, p, names),
                "calibration": calibration_report(labels, p, ec.bins, ec.bootstrap, ec.seed),
            }
        fallback = {
            name: fallback_frequency(p.max(axis=1), th.accept, th.clarify) for name, p in deployed.items()
        }
        status = route(probs.max(axis=1), th.accept, th.clarify)
        rc = {
            "sweep": risk_coverage(labels, probs, start, 1.0, ec.sweep_step),
            "at_threshold": selective_with_ci(labels, probs, th.accept, config),
            "at_coverage": [selective_at_coverage(labels, probs, c) for c in COVERAGES],
            "aurc": aurc(labels, probs),
        }

    def simulation(cfg: Config, scenarios: tuple[str, ...] | None = None) -> dict[str, Any]:
        extra = {} if scenarios is None else {"scenarios": scenarios}
        return run_simulation(
            cfg,
            texts,
            labels,
            probs,
            backup_probs,
            run,
            model_version,
            predicted.deployed_temperature,
            names=names,
            detector=predicted.detector,
            scores=predicted.scores,
            **extra,
        )

    sim = simulation(config) if simulate else {"status": "skipped", "reason": "--no-simulation"}
    per_input = sim.pop("per_input", {})

    # The operating point: chosen on validation, checked on the evaluated split (through the graph).
    operating = operating_point(config, data, deployed, start)
    if operating["status"] == "done":
        t = operating["threshold"]
        operating["evaluated"] = selective_with_ci(labels, probs, t, config)
        if sim.get("status") == "done" and t == th.accept:
            operating["simulation"] = sim["scenarios"]["user"]
        elif sim.get("status") == "done":
            at_t = config.model_copy(deep=True)
            at_t.thresholds.accept = t
            operating["simulation"] = simulation(at_t, ("user",))["scenarios"]["user"]

    # The no-person rule: fitted on validation, measured on the evaluated split.
    no_person = no_person_report(config, data, deployed, predicted.backups)
    domain = None
    if predicted.scores is not None:
        domain = in_domain(config, predicted.detector, labels, probs, predicted.scores)
    return {
        "thresholds": {"accept": th.accept, "clarify": th.clarify},
        "models": models,
        "calibration": calib,
        "fallback": fallback,
        "risk_coverage": rc,
        "simulation": sim,
        "operating_point": operating,
        "no_person": no_person,
        "in_domain": domain,
        "examples": select_examples(texts, labels, probs, status, per_input, ec.examples, names),
    }


def knowability_report(
    config: Config,
    classifier: Any,
    backups: list[Any],
    domain: dict[str, Any] | None,
    run: Batched,
    temperature: float,
    names: LabelSet,
) -> dict[str, Any]:
    """The "Inputs the model cannot know" measurements (see :mod:`selfheal.evaluation.knowability`):
    ``domain`` (from :func:`measure`) and the hand-written sets through the real graph."""
    from selfheal.evaluation.knowability import evaluate_sets

    if getattr(classifier, "knowability", None) is None:
        return {"status": "skipped", "reason": "the checkpoint has no knowability.json.gz"}
    if not config.knowability.enabled or domain is None:
        return {"status": "skipped", "reason": "knowability.enabled is false"}
    with run.step("knowability: hand-written sets"):
        sets = evaluate_sets(config, classifier, backups, config.knowability.eval_sets, temperature, names)
    return {"status": "done", "in_domain": domain, "sets": sets}


# --- the whole run ---------------------------------------------------------------------------


def evaluate(config: Config, options: EvalOptions) -> EvalOutputs:
    """Run the whole evaluation and write ``metrics.json``, the PNGs and the Markdown report."""
    from transformers.utils import logging as hf_logging

    from selfheal.evaluation import plots
    from selfheal.evaluation.report import write_report
    from selfheal.model.backup import BackupEnsemble
    from selfheal.model.classifier import Classifier, voter_states_budget

    hf_logging.disable_progress_bar()  # the Rich bar is the only progress output
    started = time.perf_counter()
    th = config.thresholds
    checkpoint = resolve_checkpoint(config.paths.checkpoint)
    names = checkpoint_labels(checkpoint)
    reports_dir, report_path = output_paths(config, options)
    data = load_data(config, options, checkpoint, names)  # bad input fails here, before the progress bar
    texts, labels = data["sets"][data["eval_set"]]
    with progress_bar(options.quiet, len(names)) as run:
        with run.step("loading the checkpoint"):
            classifier = Classifier.load(
                checkpoint,
                use_temperature=False,
                use_embedder=config.embedder.enabled,
                runtime=config.model.runtime,
                threads=config.model.threads,
                embedder_int8=config.embedder.int8,
                voter_states=EVAL_STATES if voter_states_budget(config) else 0,
            )
        with run.step("loading backup models"):
            backups = BackupEnsemble(config, checkpoint, states=lambda: classifier.voter_states).load()
        predicted = predict(config, data, classifier, backups, run)
        measured = measure(config, data, predicted, names, run, options.simulate, classifier.version)
        domain = measured.pop("in_domain")
        knowability = knowability_report(
            config, classifier, backups, domain, run, predicted.deployed_temperature, names
        )
        lengths = classifier.token_lengths(texts)
        temperature = predicted.temperature

        with run.step("figures and report"):
            probs = predicted.probs(data["eval_set"])
            curve = risk_coverage(labels, probs, sweep_start(len(names), 0.01), 1.0, 0.01)
            figures = {
                "reliability": plots.reliability_diagram(
                    [
                        ("before temperature scaling (T = 1)", measured["calibration"]["raw"]),
                        (
                            f"after temperature scaling (T = {temperature:.3f})",
                            measured["calibration"]["scaled"],
                        ),
                    ],
                    reports_dir / RELIABILITY_PNG,
                ),
                "confidence_histogram": plots.confidence_histogram(
                    [(name, predicted.probs(name).max(axis=1)) for name in predicted.logits],
                    (th.accept, th.clarify),
                    reports_dir / HISTOGRAM_PNG,
                ),
                "risk_coverage": plots.risk_coverage_plot(curve, th.accept, reports_dir / RISK_COVERAGE_PNG),
            }
            examples = measured.pop("examples")
            metrics: dict[str, Any] = {
                "command": options.command,
                "created": datetime.now().astimezone().isoformat(timespec="seconds"),
                "checkpoint": {
                    "directory": display_path(checkpoint),
                    "version": classifier.version,
                    "method": str(classifier.meta.get("method", "lora")),
                    "tfidf_weight": classifier.tfidf_weight,
                    "members": classifier.members,
                    "base_model": classifier.meta.get("base_model") or "all-MiniLM-L6-v2 (bundled)",
                    "temperature": temperature,
                    "temperature_used": config.calibration.temperature,
                    "runtime": classifier.runtime,
                },
                "labels": list(names),
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
                **measured,
                "knowability": knowability,
                "examples": examples,
                "training_log": read_training_log(checkpoint),
                "figures": {k: display_path(v) for k, v in figures.items()},
            }
            metrics["targets"] = targets(metrics)
            metrics["runtime_seconds"] = round(time.perf_counter() - started, 1)
            metrics_json = reports_dir / METRICS_JSON
            metrics_json.parent.mkdir(parents=True, exist_ok=True)
            metrics_json.write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
            write_report(metrics, report_path, figures)
    return EvalOutputs(metrics_json, report_path, figures, metrics)
