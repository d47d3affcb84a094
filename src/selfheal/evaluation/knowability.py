"""``selfheal eval``: inputs the model cannot know (the input-knowability check, issue 12).

Two measurements:

* the hand-written sets of ``data/unknowable/*.txt`` (written for evaluation only, never fitted
  on), each input through the real compiled graph with the real model and backups, nobody
  answering (as ``selfheal classify``), with the check on and off: per kind, the share labelled
  without a person (by the model or by the backups);
* in domain: the share of the evaluated split auto-accepted at ``thresholds.accept`` with and
  without the check, and the accuracy of the auto-accepted ones.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from selfheal.config import Config
from selfheal.labels import LabelSet
from selfheal.vocabulary import BACKUP_MODEL, MODEL

NO_PERSON_VIAS = (MODEL, BACKUP_MODEL)
# kind (file stem) -> (title, target share labelled without a person, the target's direction)
KINDS: dict[str, tuple[str, float, str]] = {
    "emoji": ("emoji only", 0.05, "max"),
    "other_scripts": ("other scripts (non-Latin)", 0.05, "max"),
    "gibberish": ("gibberish, digits, punctuation, lorem ipsum", 0.05, "max"),
    "other_languages": ("reviews in French, German, Spanish, Italian, Portuguese, Dutch", 0.10, "max"),
    "neutral_english": ("neutral English sentences, not reviews", 0.40, "max"),
    "other_reviews": ("English reviews of other things (knowable)", 0.85, "min"),
}


def read_sets(directory: Path) -> dict[str, list[str]]:
    """The hand-written sets: one input per non-empty line of each ``<kind>.txt``."""
    sets = {}
    for kind in KINDS:
        path = Path(directory) / f"{kind}.txt"
        if path.is_file():
            sets[kind] = [
                line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
            ]
    return sets


class _Predicted:
    """The real classifier's predictions, computed once in a batch at the deployed ``temperature``
    and served by text (the graph, the check, the fallback and the backups still run for real);
    ``labels`` is the checkpoint's label set."""

    def __init__(self, classifier: Any, texts: list[str], temperature: float, labels: LabelSet) -> None:
        from selfheal.model.calibrate import softmax
        from selfheal.model.classifier import Prediction

        self.labels = labels
        self.knowability = getattr(classifier, "knowability", None)
        self.version = getattr(classifier, "version", None)
        self.temperature = temperature
        self.directory = getattr(classifier, "directory", None)
        unique = list(dict.fromkeys(texts))
        self._by_text: dict[str, Any] = {}
        if not unique:
            return
        logits, features = classifier.logits_and_features(unique)
        scores = classifier.knowability_scores(unique, features) or [None] * len(unique)
        for text, row, score in zip(unique, softmax(logits, temperature), scores, strict=True):
            self._by_text[text] = Prediction(
                label=labels[int(row.argmax())],
                probs={label: float(p) for label, p in zip(labels, row, strict=True)},
                confidence=float(row.max()),
                truncated=classifier.is_truncated(text),
                knowability=score,
            )

    def predict(self, texts: list[str]) -> list[Any]:
        """The stored predictions of ``texts``."""
        return [self._by_text[t] for t in texts]


def run_through_graph(
    config: Config, classifier: Any, backups: list[Any], texts: list[str]
) -> list[dict[str, Any]]:
    """Each text through the real graph, non-interactively; ``{via, label, route, reason}`` each."""
    from langgraph.checkpoint.memory import InMemorySaver

    from selfheal.evaluation.simulate import _close_log_handlers
    from selfheal.graph.services import Services
    from selfheal.graph.session import Session
    from selfheal.logs.decisions import LogWriter
    from selfheal.model.backup import BackupEnsemble

    out = []
    with tempfile.TemporaryDirectory(prefix="selfheal-know-") as tmp:
        cfg = config.model_copy(deep=True)
        cfg.paths.log_dir = Path(tmp)
        cfg.paths.clarified = Path(tmp) / "clarified.jsonl"
        log = LogWriter(cfg)
        services = Services(
            cfg,
            classifier=classifier,
            backups=BackupEnsemble(cfg, backups=backups, labels=getattr(classifier, "labels", None)),
            log=log,
        )
        session = Session(services, checkpointer=InMemorySaver())
        try:
            for text in texts:
                outcome = session.start(text, interactive=False)
                if outcome is None:  # empty after cleaning: nothing to decide
                    continue
                state = outcome.state
                verdict = state.get("knowability") or {}
                out.append(
                    {
                        "via": state.get("via"),
                        "label": state.get("final_label"),
                        "route": state.get("route"),
                        "reason": verdict.get("reason"),
                    }
                )
        finally:
            _close_log_handlers(Path(tmp))
    return out


def _share(results: list[dict[str, Any]]) -> float:
    return sum(r["via"] in NO_PERSON_VIAS for r in results) / len(results) if results else 0.0


def evaluate_sets(
    config: Config,
    classifier: Any,
    backups: list[Any],
    directory: Path,
    temperature: float,
    labels: LabelSet,
) -> dict[str, Any]:
    """Per kind: labelled without a person with the check on and off, routes and reasons.

    The model's predictions are computed once, in a batch, by the real classifier; each input then
    goes through the real graph twice (check on, check off). ``temperature``: the deployed one;
    ``labels``: the checkpoint's label set."""
    from selfheal.inputs import prepare_text

    off = config.model_copy(deep=True)
    off.knowability.enabled = False
    sets = read_sets(directory)
    cleaned = [prepare_text(t, config.input.max_chars).text for texts in sets.values() for t in texts]
    classifier = _Predicted(classifier, [t for t in cleaned if t], temperature, labels)
    kinds = {}
    for kind, texts in sets.items():
        title, target, direction = KINDS[kind]
        on_results = run_through_graph(config, classifier, backups, texts)
        off_results = run_through_graph(off, classifier, backups, texts)
        share = _share(on_results)
        kinds[kind] = {
            "title": title,
            "n": len(on_results),
            "no_person": share,
            "no_person_without_check": _share(off_results),
            "accepted": sum(r["via"] == MODEL for r in on_results) / max(1, len(on_results)),
            "by_backups": sum(r["via"] == BACKUP_MODEL for r in on_results) / max(1, len(on_results)),
            "reasons": dict(Counter(r["reason"] or "known" for r in on_results).most_common()),
            "target": target,
            "direction": direction,
            "met": share <= target if direction == "max" else share >= target,
        }
    return kinds


def in_domain(
    config: Config, detector: Any, labels: np.ndarray, probs: np.ndarray, scores: list[dict[str, Any]]
) -> dict[str, Any]:
    """Auto-accepted share and accuracy at ``thresholds.accept`` with and without the check;
    ``detector`` is the checkpoint's knowability detector (its fitted thresholds)."""
    from selfheal.model.knowability import judge, resolve_thresholds

    thresholds = resolve_thresholds(getattr(detector, "thresholds", {}), config.knowability)
    verdicts = [judge(s, thresholds) for s in scores]
    known = np.array([v.known for v in verdicts])
    confident = probs.max(axis=1) >= config.thresholds.accept
    right = probs.argmax(axis=1) == np.asarray(labels)
    with_check = confident & known

    def acc(mask: np.ndarray) -> float | None:
        return float(right[mask].mean()) if mask.any() else None

    return {
        "n": len(scores),
        "thresholds": thresholds,
        "flagged": float((~known).mean()),
        "flagged_reasons": dict(Counter(v.reason for v in verdicts if not v.known).most_common()),
        "accepted_without_check": float(confident.mean()),
        "accepted_with_check": float(with_check.mean()),
        "drop_points": 100 * float(confident.mean() - with_check.mean()),
        "accuracy_accepted_without_check": acc(confident),
        "accuracy_accepted_with_check": acc(with_check),
        "accuracy_of_flagged_accepted": acc(confident & ~known),
    }


def report_lines(result: dict[str, Any], split: str, accept: float, command: str) -> list[str]:
    """The "Inputs the model cannot know" section of EVALUATION.md."""
    if result.get("status") != "done":
        return [
            "## Inputs the model cannot know",
            "",
            f"Not measured: {result.get('reason', 'skipped')}.",
            "",
        ]
    dom, kinds = result["in_domain"], result["sets"]
    th = dom["thresholds"]

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.1f}%"

    lines = [
        "## Inputs the model cannot know",
        "",
        f"Made by `{command}`. The input-knowability check of ConfidenceCheckNode (`selfheal.model.knowability`,",
        "fitted on the train split, generated junk and objective sentences, thresholds at validation quantiles;",
        "`knowability:` in `config.yaml`) sends inputs the model cannot know about to a person (who may say",
        "*neither*) or, with nobody there, to the review queue, never to the backups. Thresholds in force:",
        f"`[UNK]` share >= {th['max_unk_share']:g} or known-word share < {th['min_known_share']:g}: no_known_words;",
        f"P(English) < {th['min_english']:.4g}"
        + (" with a word never seen in training" if th.get("max_known_share_not_english", 2.0) <= 1 else "")
        + f": not_english; P(review) < {th['min_review']:.4g}: out_of_distribution",
        "or not_a_review.",
        "",
        "Hand-written sets (`data/unknowable/`, written for evaluation only, never fitted on), each input",
        "through the real graph with the real model and backups and nobody answering (as `selfheal classify`;",
        "the model's predictions computed once in a batch and served to the graph by text).",
        "Labelled without a person = via the model or the backups.",
        "",
        "| kind | n | labelled without a person, check on | check off | target | met | why flagged |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in kinds.values():
        bound = ("<= " if kind["direction"] == "max" else ">= ") + f"{100 * kind['target']:.0f}%"
        why = ", ".join(f"{k} {v}" for k, v in kind["reasons"].items())
        lines.append(
            f"| {kind['title']} | {kind['n']} | {pct(kind['no_person'])} | {pct(kind['no_person_without_check'])} "
            f"| {bound} | {'yes' if kind['met'] else '**no**'} | {why} |"
        )
    lines += [
        "",
        f"In domain ({split} split, {dom['n']} snippets, accept at {accept:g}): the check flags {pct(dom['flagged'])}",
        f"({', '.join(f'{k} {v}' for k, v in dom['flagged_reasons'].items()) or 'none'}).",
        "",
        "| | without the check | with the check |",
        "|---|---|---|",
        f"| auto-accepted share | {pct(dom['accepted_without_check'])} | {pct(dom['accepted_with_check'])} "
        f"(drop {dom['drop_points']:.1f} points; target <= 3) |",
        f"| accuracy of the auto-accepted | {pct(dom['accuracy_accepted_without_check'])} "
        f"| {pct(dom['accuracy_accepted_with_check'])} |",
        "",
        f"The flagged inputs that would have been auto-accepted were right {pct(dom['accuracy_of_flagged_accepted'])}",
        "of the time. The check changes no probability: accuracy and ECE above are the model's own.",
        "",
    ]
    return lines
