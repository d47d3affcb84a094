"""The self-healing simulation, end to end through the real compiled LangGraph graph.

Every evaluated text goes through :class:`selfheal.graph.session.Session` (the same driver the
``run`` / ``classify`` commands use) with an in-memory checkpointer and a temporary log
directory, twice:

* ``no_user``: nobody answers; every question (clarification, review) is resumed with no answer,
  so the backups decide where the no-person rule holds and the rest waits for human review;
* ``user``: a user who answers every question with the true label (with two labels ``y``/``n``
  to the clarifying question about the other label; with more, the true label's name to the
  multiple-choice question; the label name at a review).

For speed, the primary model's and the backups' probabilities (and the knowability scores) are
computed once in batches and injected through :class:`selfheal.graph.services.Services` (a lookup
classifier carrying the checkpoint's knowability detector, and the real
:class:`~selfheal.model.backup.BackupEnsemble` over lookup backups), and the texts go through the
graph the batched way the ``classify`` command uses (:meth:`Session.start_many`: one ``predict``
over all texts, the result handed to InferenceNode); the knowability check (as
configured: ``knowability.enabled``), the routing, the fallback steps, the backup vote, the
interrupts and the log records are the graph's own code.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from selfheal.config import Config
from selfheal.evaluation.metrics import accuracy_ci
from selfheal.labels import LabelSet
from selfheal.vocabulary import (
    BACKUP_MODEL,
    CLARIFY,
    DECISION_ROUTES,
    HUMAN_VIAS,
    IDENTIFY,
    MODEL,
    PENDING_REVIEW,
    REVIEW_QUEUE,
    UNKNOWABLE,
)

# waiting (the interrupt's payload), state, the true label, the label set -> the resume value
Answer = Callable[[dict[str, Any], dict[str, Any], str, LabelSet], Any]


class _LookupClassifier:
    """A stand-in for the primary model returning precomputed probabilities (and knowability
    scores) by text; ``knowability`` is the checkpoint's detector (its fitted thresholds)."""

    def __init__(
        self,
        texts: list[str],
        probs: np.ndarray,
        labels: LabelSet,
        version: str,
        temperature: float,
        knowability: Any = None,
        scores: list[dict[str, Any]] | None = None,
    ) -> None:
        self._index = {t: i for i, t in enumerate(texts)}
        self._probs = probs
        self._scores = scores
        self.labels = labels
        self.version = version
        self.temperature = temperature
        self.knowability = knowability
        self.directory = None

    def predict(self, texts: list[str]) -> list[Any]:
        """One :class:`~selfheal.model.classifier.Prediction` per text, from the table."""
        from selfheal.model.classifier import Prediction

        out = []
        for text in texts:
            i = self._index[text]
            row = self._probs[i]
            out.append(
                Prediction(
                    label=self.labels[int(row.argmax())],
                    probs={label: float(p) for label, p in zip(self.labels, row, strict=True)},
                    confidence=float(row.max()),
                    knowability=None if self._scores is None else self._scores[i],
                )
            )
        return out


class _LookupBackup:
    """A stand-in for one backup model returning its precomputed probabilities by text."""

    def __init__(self, name: str, texts: list[str], probs: np.ndarray) -> None:
        self.name = name
        self._index = {t: i for i, t in enumerate(texts)}
        self._probs = probs

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Class probabilities in label order."""
        return np.stack([self._probs[self._index[t]] for t in texts])


def no_user(waiting: dict[str, Any], state: dict[str, Any], truth: str, labels: LabelSet) -> Any:
    """Nobody at the keyboard: every question ends without an answer."""
    return {"answer": None, "reason": "eof"}


def correct_user(waiting: dict[str, Any], state: dict[str, Any], truth: str, labels: LabelSet) -> Any:
    """A user who knows the true label. With two labels the clarifying question asks about the
    other label than the model's, so the answer is ``y`` or ``n``; with more it is a multiple
    choice, answered with the label's name, as is every other question (a review, "what is
    this?" about an input the model cannot know)."""
    asked = waiting.get("asked")  # the y/n question names the label it asks about
    if waiting["kind"] == CLARIFY and asked is not None:
        return "y" if truth == asked else "n"
    return truth.lower()


SCENARIOS: dict[str, tuple[str, str, Answer]] = {
    "no_user": ("no user (backups only)", "no user", no_user),
    "user": ("user answers correctly", "correct user", correct_user),
}
ASKING = (CLARIFY, IDENTIFY)  # the questions put to the user (not the review)


def expected_routes(
    confidence: np.ndarray, accept: float, clarify: float, known: np.ndarray | None = None
) -> list[str]:
    """The route ConfidenceCheckNode should take for each input: ``unknowable`` where the
    knowability check flags it (``known`` False), else by the thresholds."""
    from selfheal.graph.nodes import confidence_route

    routes = [confidence_route(float(c), accept, clarify) for c in np.asarray(confidence)]
    if known is None:
        return list(routes)
    return [r if k else UNKNOWABLE for r, k in zip(routes, known, strict=True)]


def _run_scenario(
    session: Any,
    texts: list[str],
    truths: list[str],
    answer: Answer,
    labels: LabelSet,
    tick: Callable[[], None],
) -> list[dict[str, Any]]:
    """Drive every text through the graph, answering its questions with ``answer``: the batched
    way (:meth:`~selfheal.graph.session.Session.start_many`), one request at a time in order, each
    answered before the next starts."""
    results = []
    outcomes = session.start_many(texts, interactive=True)
    for text, truth in zip(texts, truths, strict=True):
        outcome = next(outcomes)
        assert outcome is not None, f"empty text in the evaluated set: {text!r}"
        asked = False
        while not outcome.done and outcome.waiting.get("kind") != REVIEW_QUEUE:
            asked = asked or outcome.waiting.get("kind") in ASKING
            outcome = session.resume(
                outcome.request_id, answer(outcome.waiting, outcome.state, truth, labels)
            )
        state = outcome.state
        if not outcome.done:  # pending review: nobody will answer in this run
            session.checkpointer.delete_thread(outcome.request_id)
        results.append(
            {
                "route": state.get("route"),
                "via": state.get("via"),
                "label": state.get("final_label"),
                "asked": asked,
                "confidence": state["inference"]["confidence"],
            }
        )
        tick()
    return results


def _summarise(
    results: list[dict[str, Any]], truths: list[str], model_labels: list[str], n_boot: int, seed: int
) -> dict[str, Any]:
    n = len(results)
    correct = [r["label"] == t for r, t in zip(results, truths, strict=True)]
    decided = [r["label"] is not None for r in results]
    model_right = [m == t for m, t in zip(model_labels, truths, strict=True)]
    return {
        "n": n,
        "accuracy": sum(correct) / n,
        "accuracy_ci95": accuracy_ci(np.array(correct), n_boot=n_boot, seed=seed),
        "decided_share": sum(decided) / n,
        "decided_accuracy": (sum(correct) / sum(decided)) if any(decided) else None,
        "asked_share": sum(r["asked"] for r in results) / n,
        "human_share": sum(r["via"] in HUMAN_VIAS for r in results) / n,
        "pending_share": sum(r["via"] == PENDING_REVIEW for r in results) / n,
        "via": dict(Counter(r["via"] for r in results).most_common()),
        "routes": _per_route(results, correct, n_boot, seed),
        "without_person": _without_person(results, correct, n_boot, seed),
        "healed": sum(c and not m for c, m in zip(correct, model_right, strict=True)),
        "harmed": sum(m and d and not c for c, m, d in zip(correct, model_right, decided, strict=True)),
    }


def _per_route(
    results: list[dict[str, Any]], correct: list[bool], n_boot: int, seed: int
) -> dict[str, dict[str, Any]]:
    """Per final route (:data:`~selfheal.vocabulary.DECISION_ROUTES`): requests, share of all
    inputs, accuracy with its bootstrap 95% interval (``None`` for ``pending_review``, which has
    no label yet)."""
    n = len(results)
    right = np.array(correct, dtype=bool)
    out = {}
    for via in DECISION_ROUTES:
        mask = np.array([r["via"] == via for r in results], dtype=bool)
        k = int(mask.sum())
        labelled = via != PENDING_REVIEW and k > 0
        out[via] = {
            "n": k,
            "share": k / n if n else 0.0,
            "accuracy": float(right[mask].mean()) if labelled else None,
            "accuracy_ci95": accuracy_ci(right, mask, n_boot=n_boot, seed=seed) if labelled else None,
        }
    return out


def _without_person(
    results: list[dict[str, Any]], correct: list[bool], n_boot: int, seed: int
) -> dict[str, Any]:
    """Decisions made without a person (auto-accepted by the model, or by the backups)."""
    right = np.array(correct, dtype=bool)
    mask = np.array([r["via"] in (MODEL, BACKUP_MODEL) for r in results], dtype=bool)
    k = int(mask.sum())
    return {
        "n": k,
        "share": k / len(results) if results else 0.0,
        "accuracy": float(right[mask].mean()) if k else None,
        "accuracy_ci95": accuracy_ci(right, mask, n_boot=n_boot, seed=seed) if k else None,
    }


def _close_log_handlers(directory: Path) -> None:
    """Detach the ``app.log`` handler the graph's LogWriter opened in ``directory``."""
    from selfheal.logs.decisions import LOGGER_NAME

    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if str(getattr(handler, "baseFilename", "")).startswith(str(directory.resolve())):
            logger.removeHandler(handler)
            handler.close()


def knowable(config: Config, detector: Any, scores: list[dict[str, Any]] | None) -> np.ndarray | None:
    """Which inputs the knowability check lets through (as ConfidenceCheckNode judges them), or
    ``None`` when the check is off (``knowability.enabled`` false, or no detector or scores)."""
    from selfheal.model.knowability import judge, resolve_thresholds

    if detector is None or scores is None or not config.knowability.enabled:
        return None
    thresholds = resolve_thresholds(getattr(detector, "thresholds", {}), config.knowability)
    return np.array([judge(s, thresholds).known for s in scores], dtype=bool)


def simulate(
    config: Config,
    texts: list[str],
    labels: np.ndarray,
    probs: np.ndarray,
    backup_probs: dict[str, np.ndarray],
    run: Any,
    model_version: str = "",
    temperature: float = 1.0,
    scenarios: tuple[str, ...] = tuple(SCENARIOS),
    *,
    names: LabelSet,
    detector: Any = None,
    scores: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run every input through the graph in each of ``scenarios`` (keys of :data:`SCENARIOS`):
    by default with no user and with a user who answers correctly.

    ``names`` is the checkpoint's label set (``labels`` are ids into it); ``detector`` and
    ``scores`` are the checkpoint's knowability detector and each text's knowability scores, so
    the graph runs the same check as the app (when ``knowability.enabled``)."""
    from langgraph.checkpoint.memory import InMemorySaver

    from selfheal.graph.services import Services
    from selfheal.graph.session import Session
    from selfheal.logs.decisions import LogWriter
    from selfheal.logs.stats import read_log
    from selfheal.model.backup import BackupEnsemble

    truths = [names[int(y)] for y in labels]
    model_labels = [names[int(i)] for i in probs.argmax(axis=1)]
    known = knowable(config, detector, scores)
    expected = expected_routes(probs.max(axis=1), config.thresholds.accept, config.thresholds.clarify, known)
    summaries: dict[str, Any] = {}
    per_input: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="selfheal-sim-") as tmp:
        for key in scenarios:
            title, short, answer = SCENARIOS[key]
            log_dir = Path(tmp) / key
            sim_config = config.model_copy(deep=True)
            sim_config.paths.log_dir = log_dir
            sim_config.paths.clarified = log_dir / "clarified.jsonl"
            backups = BackupEnsemble(
                sim_config,
                backups=[_LookupBackup(name, texts, p) for name, p in backup_probs.items()],
                labels=names,  # the evaluated checkpoint's labels, not the configured one's
            )
            log = LogWriter(sim_config)
            classifier = _LookupClassifier(
                texts,
                probs,
                names,
                model_version,
                temperature,
                detector,
                scores if known is not None else None,
            )
            services = Services(sim_config, classifier=classifier, backups=backups, log=log)
            session = Session(services, checkpointer=InMemorySaver())
            task = run.progress.add_task(
                f"simulation: {short}, accept {config.thresholds.accept:g}", total=len(texts)
            )
            try:
                results = _run_scenario(
                    session,
                    texts,
                    truths,
                    answer,
                    names,
                    lambda task=task: run.progress.update(task, advance=1),
                )
                logged = read_log(log.jsonl_path) if texts else None
            finally:
                _close_log_handlers(log_dir)
            summary = _summarise(
                results, truths, model_labels, config.evaluation.bootstrap, config.evaluation.seed
            )
            summary |= {
                "title": title,
                "short": short,
                "accept": config.thresholds.accept,
                "knowability_check": known is not None,
                "flagged": 0 if known is None else int((~known).sum()),
                "route_mismatches": sum(r["route"] != e for r, e in zip(results, expected, strict=True)),
                "logged_requests": 0 if logged is None else len(logged.requests),
            }
            summaries[key] = summary
            per_input[key] = [{"label": r["label"], "via": r["via"]} for r in results]
    method = _method(summaries, len(texts), names, known)
    return {"status": "done", "method": method, "scenarios": summaries, "per_input": per_input}


def _method(summaries: dict[str, Any], n: int, names: LabelSet, known: np.ndarray | None) -> list[str]:
    """How the simulation was run, for the report."""
    question = (
        "question gets `y`/`n` according to the true label"
        if names.binary
        else f"multiple-choice question ({len(names)} labels) gets the true label"
    )
    check = (
        [
            "The knowability check ran as in the app (`knowability.enabled`, the checkpoint's detector):",
            f"it flagged {int((~known).sum())} of the {n} inputs, which were never auto-accepted; the user was",
            "asked what they are (a correct user gives the true label) or, with nobody there, they wait for review.",
        ]
        if known is not None
        else [
            "The knowability check was off (`knowability.enabled` is false, or the checkpoint has no detector)."
        ]
    )
    return [
        "Each evaluated text went through the real compiled LangGraph graph (`selfheal.graph.session.Session`,",
        "the driver of `selfheal run`, in interactive mode) with an in-memory checkpointer and a",
        "temporary log directory. For speed, the primary model's and the backups' probabilities were",
        "computed once in batches and injected through `Services` (a lookup classifier and the real",
        "`BackupEnsemble` over lookup backups); routing, the fallback steps, the backup vote, the",
        "interrupts and the log records are the graph's own code.",
        *check,
        "*No user*: every question is",
        "resumed with no answer, so the backups decide where the no-person rule (`backup.*`) holds",
        "and the rest waits for human review (counted as not correct). *User answers correctly*: the clarifying",
        f"{question}, and a review gets the true label.",
        "Needed a human = decided by a clarification or a review, or left pending for one.",
        "Cross-checks: routes that differ from `thresholds` applied to the batch probabilities"
        + (" and the check's verdicts" if known is not None else "")
        + ": "
        + ", ".join(f"{s['short']} {s['route_mismatches']}" for s in summaries.values())
        + "; requests found in the temporary `app.jsonl`: "
        + ", ".join(f"{s['short']} {s['logged_requests']}" for s in summaries.values())
        + f" (of {n}).",
    ]
