"""The self-healing simulation, end to end through the real compiled LangGraph graph.

Every evaluated text goes through :class:`selfheal.graph.session.Session` (the same driver the
``run`` / ``classify`` commands use) with an in-memory checkpointer and a temporary log
directory, twice:

* ``no_user``: nobody answers; every question (clarification, review) is resumed with no answer,
  so the backups decide where the no-person rule holds and the rest waits for human review;
* ``user``: a user who answers every question with the true label (``y``/``n`` to the clarifying
  question, the label name at a review).

For speed, the primary model's and the backups' probabilities are computed once in batches and
injected through :class:`selfheal.graph.services.Services` (a lookup classifier, and the real
:class:`~selfheal.model.backup.BackupEnsemble` over lookup backups); the routing, the fallback steps,
the backup vote, the interrupts and the log records are the graph's own code.
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
from selfheal.labels import LABELS, other_label

HUMAN_VIAS = ("user_clarification", "human_review", "pending_review")
Answer = Callable[[dict[str, Any], dict[str, Any], str], Any]


class _LookupClassifier:
    """A stand-in for the primary model returning precomputed probabilities by text."""

    def __init__(self, texts: list[str], probs: np.ndarray, version: str, temperature: float) -> None:
        self._index = {t: i for i, t in enumerate(texts)}
        self._probs = probs
        self.version = version
        self.temperature = temperature
        self.directory = None

    def predict(self, texts: list[str]) -> list[Any]:
        """One :class:`~selfheal.model.classifier.Prediction` per text, from the table."""
        from selfheal.model.classifier import Prediction

        out = []
        for text in texts:
            row = self._probs[self._index[text]]
            out.append(
                Prediction(
                    label=LABELS[int(row.argmax())],
                    probs={label: float(p) for label, p in zip(LABELS, row, strict=True)},
                    confidence=float(row.max()),
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


def no_user(waiting: dict[str, Any], state: dict[str, Any], truth: str) -> Any:
    """Nobody at the keyboard: every question ends without an answer."""
    return {"answer": None, "reason": "eof"}


def correct_user(waiting: dict[str, Any], state: dict[str, Any], truth: str) -> Any:
    """A user who knows the true label: ``y``/``n`` to the clarifying question, the label at a review."""
    if waiting["kind"] == "clarify":
        asked = other_label(state["inference"]["label"])  # the question is about the other label
        return "y" if truth == asked else "n"
    return truth.lower()


SCENARIOS: dict[str, tuple[str, str, Answer]] = {
    "no_user": ("no user (backups only)", "no user", no_user),
    "user": ("user answers correctly", "correct user", correct_user),
}


def _run_scenario(
    session: Any, texts: list[str], truths: list[str], answer: Answer, tick: Callable[[], None]
) -> list[dict[str, Any]]:
    """Drive every text through the graph, answering its questions with ``answer``."""
    results = []
    for text, truth in zip(texts, truths, strict=True):
        outcome = session.start(text, interactive=True)
        asked = False
        while not outcome.done and outcome.waiting.get("kind") != "review_queue":
            asked = asked or outcome.waiting.get("kind") == "clarify"
            outcome = session.resume(outcome.request_id, answer(outcome.waiting, outcome.state, truth))
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
        "pending_share": sum(r["via"] == "pending_review" for r in results) / n,
        "via": dict(Counter(r["via"] for r in results).most_common()),
        "routes": _per_route(results, correct, n_boot, seed),
        "without_person": _without_person(results, correct, n_boot, seed),
        "healed": sum(c and not m for c, m in zip(correct, model_right, strict=True)),
        "harmed": sum(m and d and not c for c, m, d in zip(correct, model_right, decided, strict=True)),
    }


ROUTES = ("model", "user_clarification", "backup_model", "human_review", "pending_review")


def _per_route(
    results: list[dict[str, Any]], correct: list[bool], n_boot: int, seed: int
) -> dict[str, dict[str, Any]]:
    """Per final route (:data:`ROUTES`): requests, share of all inputs, accuracy with its bootstrap
    95% interval (``None`` for ``pending_review``, which has no label yet)."""
    n = len(results)
    right = np.array(correct, dtype=bool)
    out = {}
    for via in ROUTES:
        mask = np.array([r["via"] == via for r in results], dtype=bool)
        k = int(mask.sum())
        labelled = via != "pending_review" and k > 0
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
    mask = np.array([r["via"] in ("model", "backup_model") for r in results], dtype=bool)
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
) -> dict[str, Any]:
    """Run every input through the graph in each of ``scenarios`` (keys of :data:`SCENARIOS`):
    by default with no user and with a user who answers correctly."""
    from langgraph.checkpoint.memory import InMemorySaver

    from selfheal.evaluation.metrics import route
    from selfheal.graph.services import Services
    from selfheal.graph.session import Session
    from selfheal.logs.decisions import LogWriter
    from selfheal.logs.stats import read_log
    from selfheal.model.backup import BackupEnsemble

    truths = [LABELS[int(y)] for y in labels]
    model_labels = [LABELS[int(i)] for i in probs.argmax(axis=1)]
    expected_routes = route(probs.max(axis=1), config.thresholds.accept, config.thresholds.clarify)
    expected_routes = [{"clarify": "ask_clarify"}.get(str(r), str(r)) for r in expected_routes]
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
                sim_config, backups=[_LookupBackup(name, texts, p) for name, p in backup_probs.items()]
            )
            log = LogWriter(sim_config)
            services = Services(
                sim_config,
                classifier=_LookupClassifier(texts, probs, model_version, temperature),
                backups=backups,
                log=log,
            )
            session = Session(services, checkpointer=InMemorySaver())
            task = run.progress.add_task(
                f"simulation: {short}, accept {config.thresholds.accept:g}", total=len(texts)
            )
            try:
                results = _run_scenario(
                    session, texts, truths, answer, lambda task=task: run.progress.update(task, advance=1)
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
                "route_mismatches": sum(
                    r["route"] != e for r, e in zip(results, expected_routes, strict=True)
                ),
                "logged_requests": 0 if logged is None else len(logged.requests),
            }
            summaries[key] = summary
            per_input[key] = [{"label": r["label"], "via": r["via"]} for r in results]
    method = [
        "Each evaluated text went through the real compiled LangGraph graph (`selfheal.graph.session.Session`,",
        "the driver of `selfheal run`, in interactive mode) with an in-memory checkpointer and a",
        "temporary log directory. For speed, the primary model's and the backups' probabilities were",
        "computed once in batches and injected through `Services` (a lookup classifier and the real",
        "`BackupEnsemble` over lookup backups); routing, the fallback steps, the backup vote, the",
        "interrupts and the log records are the graph's own code. *No user*: every question is",
        "resumed with no answer, so the backups decide where the no-person rule (`backup.*`) holds",
        "and the rest waits for human review (counted as not correct). *User answers correctly*: the clarifying",
        "question gets `y`/`n` according to the true label, and a review gets the true label.",
        "Needed a human = decided by a clarification or a review, or left pending for one.",
        "Cross-checks: routes that differ from `thresholds` applied to the batch probabilities: "
        + ", ".join(f"{s['short']} {s['route_mismatches']}" for s in summaries.values())
        + "; requests found in the temporary `app.jsonl`: "
        + ", ".join(f"{s['short']} {s['logged_requests']}" for s in summaries.values())
        + f" (of {len(texts)}).",
    ]
    return {"status": "done", "method": method, "scenarios": summaries, "per_input": per_input}
