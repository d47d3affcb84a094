"""Three labels through the real graph: multiple-choice clarification, the forced choice of a
review (in ``selfheal run`` and ``selfheal review``), "none of these" for an unknowable input,
the escalate route below clarify, and the JSONL record.

The primary model is a stand-in with ``.labels`` = negative / neutral / positive and fixed
probabilities per text, and so is the backup voter: a real 3-label checkpoint (the tweets model)
is being trained in parallel; once it is merged, a pseudo-terminal test with it is to be added.
Everything else is real: the compiled LangGraph graph, the session, the log files, the printer.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from rich.console import Console

from selfheal.cli.review import review_one
from selfheal.cli.run import ReadySession, run_loop
from selfheal.cli.terminal import Printer
from selfheal.graph.services import Services
from selfheal.graph.session import Session
from selfheal.labels import LabelSet
from selfheal.model.classifier import Prediction

LABELS = LabelSet(("negative", "neutral", "positive"))
CHOICES = "1) negative 2) neutral 3) positive"
UNSURE_TEXT = "The service was fine I guess."  # positive 0.60: in the clarify band
VERY_UNSURE_TEXT = "Flight landed at noon."  # positive 0.40: escalated (top probability >= 1/3)
STRANGE_TEXT = "zxqv blorp"  # flagged by the knowability check
PROBS = {
    UNSURE_TEXT: {"negative": 0.15, "neutral": 0.25, "positive": 0.60},
    VERY_UNSURE_TEXT: {"negative": 0.25, "neutral": 0.35, "positive": 0.40},
    STRANGE_TEXT: {"negative": 0.10, "neutral": 0.10, "positive": 0.80},
}


class ThreeLabelPredictor:
    """Stand-in for a 3-label checkpoint: fixed probabilities per text; the strange text gets
    knowability scores the real check (``selfheal.model.knowability.judge``) flags."""

    labels = LABELS
    version = "three-label-stand-in"
    temperature = None
    directory = None

    class knowability:  # the detector's fitted thresholds: none (config.yaml's values apply)
        thresholds: dict[str, float] = {}  # noqa: RUF012

    def predict(self, texts: list[str]) -> list[Prediction]:
        out = []
        for text in texts:
            probs = PROBS[text]
            label = max(probs, key=probs.__getitem__)
            known = {"unk_share": 0.0, "words": 4, "known_share": 1.0}
            strange = {"unk_share": 1.0, "words": 2, "known_share": 0.0}
            scores = strange if text == STRANGE_TEXT else known
            out.append(Prediction(label=label, probs=probs, confidence=probs[label], knowability=scores))
        return out


class FixedVote:
    """Stand-in for backups that can serve three labels: always names ``label``."""

    names = ("fixed",)

    def __init__(self, label: str) -> None:
        self.label = label

    def predict(self, text: str, voter_needed: bool = True) -> dict[str, Any]:
        probs = {name: (0.8 if name == self.label else 0.1) for name in LABELS}
        return {
            "label": self.label,
            "probs": probs,
            "models": {"fixed": {"label": self.label, "probs": probs}},
        }


class Script:
    """A prompter that answers from a list, then EOF."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []

    def ask(self, prompt: str, timeout: float | None = None) -> str:
        self.prompts.append(prompt)
        if not self.answers:
            raise EOFError
        return self.answers.pop(0)


@pytest.fixture
def three(graph_config) -> Session:
    """A session over the stand-in 3-label model (default thresholds: accept 0.75, clarify 0.50)."""
    graph_config.thresholds.accept = 0.75
    graph_config.thresholds.clarify = 0.50
    services = Services(graph_config, classifier=ThreeLabelPredictor(), backups=FixedVote("neutral"))
    return Session(services, InMemorySaver())


def records(session: Session) -> list[dict]:
    path = session.config.paths.log_dir / "app.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def printer() -> tuple[Printer, io.StringIO]:
    out = io.StringIO()
    return Printer(Console(file=out, width=200, color_system=None, highlight=False)), out


def loop(session: Session, *answers: str) -> list[str]:
    shown, out = printer()
    run_loop(ReadySession(session), session.config, Script(*answers), shown, lambda note: None)
    return out.getvalue().splitlines()


def test_the_labels_come_from_the_classifier(three):
    assert three.services.labels == LABELS


def test_clarification_lists_the_labels_a_bad_answer_is_asked_again_a_number_answers(three):
    lines = loop(three, UNSURE_TEXT, "maybe", "2", "quit")
    assert lines == [
        "> Enter text (or 'quit'):",
        "[InferenceNode] Predicted label: positive | Confidence: 60%",
        "[ConfidenceCheckNode] Confidence too low. Triggering fallback...",
        f"[FallbackNode] Could you clarify your intent? Which label is right? {CHOICES}",
        f"[FallbackNode] Sorry, I did not get that. Please answer with a number or a label: {CHOICES}",
        "Final Label: neutral (Corrected via user clarification)",
        "> Enter text (or 'quit'):",
    ]
    (record,) = records(three)
    assert record["fallback"]["question"] == f"Could you clarify your intent? Which label is right? {CHOICES}"
    assert (
        record["fallback"]["user_response"] == ["maybe", "2"]
        and record["fallback"]["user_label"] == "neutral"
    )
    assert record["final_decision"] == {"label": "neutral", "via": "user_clarification"}
    kept = json.loads(three.config.paths.clarified.read_text())
    assert (kept["label"], kept["source"]) == ("neutral", "user_clarification")


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("Neutral", "neutral"),
        ("NEGATIVE", "negative"),
        ("neu", "neutral"),
        ("3", "positive"),
        ("2)", "neutral"),
    ],
)
def test_clarification_by_name_alias_or_number(three, answer, label):
    outcome = three.start(UNSURE_TEXT, interactive=True)
    assert outcome.waiting == {
        "kind": "clarify",
        "question": f"Could you clarify your intent? Which label is right? {CHOICES}",
        "choices": ["negative", "neutral", "positive"],  # no "asked": answer with a label, not y/n
        "attempt": 1,
    }
    done = three.resume(outcome.request_id, answer)
    assert (done.state["final_label"], done.state["via"]) == (label, "user_clarification")


def test_two_bad_answers_go_to_the_backups_then_a_persons_choice(three):
    lines = loop(three, UNSURE_TEXT, "7", "yes", "0", "negative", "quit")
    assert lines[3:] == [
        f"[FallbackNode] Could you clarify your intent? Which label is right? {CHOICES}",
        f"[FallbackNode] Sorry, I did not get that. Please answer with a number or a label: {CHOICES}",
        "[FallbackNode] Still unclear. Asking the backup models...",
        "[FallbackNode] Backup models (fixed): neutral 80% | disagree with the model's positive",
        f"[FallbackNode] The models disagree. Which label is right? {CHOICES}",
        f"Please answer with a number or a label: {CHOICES}",
        "Final Label: negative (via human review)",
        "> Enter text (or 'quit'):",
    ]
    (record,) = records(three)
    assert (
        record["fallback"]["user_response"] == ["7", "yes"]
        and record["fallback"]["no_answer_reason"] == "unclear"
    )
    assert record["fallback"]["review"] == {"mode": "interactive", "answer": "negative", "label": "negative"}


def test_escalate_is_reachable_below_clarify_and_the_record_has_every_label(three, graph_config):
    """Top probability 0.40 (>= 1/3, so possible with three labels) is below clarify: escalated.
    Nobody there: the backups disagree, the request waits for review. The record is the same
    schema as the movie model's, its probabilities over the three labels in label order."""
    outcome = three.start(VERY_UNSURE_TEXT, interactive=False)
    assert outcome.pending_review
    assert outcome.waiting["choices"] == ["negative", "neutral", "positive"]
    assert outcome.waiting["question"] == f"The models disagree. Which label is right? {CHOICES}"
    (record,) = records(three)
    assert list(record) == [
        "timestamp",
        "request_id",
        "input_text",
        "input_chars",
        "input_truncated",
        "mode",
        "model",
        "inference",
        "confidence_check",
        "fallback",
        "final_decision",
        "trace",
        "elapsed_ms",
    ]
    assert record["inference"]["label"] == "positive" and record["inference"]["confidence"] == 0.40
    assert list(record["inference"]["probs"]) == ["negative", "neutral", "positive"]
    assert record["inference"]["probs"] == PROBS[VERY_UNSURE_TEXT]
    check = record["confidence_check"]
    assert (check["status"], check["route"]) == ("VERY_LOW", "escalate")
    assert check["thresholds"] == {"accept": 0.75, "clarify": 0.50}
    assert record["fallback"]["strategy"] == "escalate" and record["fallback"]["question"] is None
    assert (
        record["fallback"]["backup"]["label"] == "neutral" and record["fallback"]["backup"]["agree"] is False
    )
    assert record["final_decision"] == {"label": None, "via": "pending_review"}
    assert record["model"]["version"] == "three-label-stand-in"
    assert record["trace"] == ["InferenceNode", "ConfidenceCheckNode", "FallbackNode", "FinalDecisionNode"]


def test_selfheal_review_asks_by_number_or_name_and_asks_again(three):
    outcome = three.start(VERY_UNSURE_TEXT, interactive=False)
    (paused,) = three.paused()
    shown, out = printer()
    assert review_one(three, paused, Script("9", "yes", "neu"), shown) == "answered"
    lines = out.getvalue().splitlines()
    assert f"Which label is right? {CHOICES} (s = skip, q = quit)" in lines
    again = f"Please answer with a number or a label: {CHOICES} (s = skip, q = quit)"
    assert lines.count(again) == 2
    assert lines[-1] == "Final Label: neutral (via human review)"
    final = records(three)[-1]
    assert final["request_id"] == outcome.request_id
    assert final["fallback"]["review"] == {"mode": "queue", "answer": "neu", "label": "neutral"}


def test_unknowable_input_may_be_none_of_the_labels(three):
    outcome = three.start(STRANGE_TEXT, interactive=True)
    assert outcome.state["route"] == "unknowable"
    assert outcome.waiting["kind"] == "identify" and outcome.waiting["none"] is True
    assert outcome.waiting["question"] == (
        f"I can't tell what this is. Which label fits, if any? {CHOICES} x) none of these"
    )
    again = three.resume(outcome.request_id, "perhaps")
    assert again.waiting["kind"] == "identify" and again.waiting["attempt"] == 2
    done = three.resume(outcome.request_id, "x")
    assert (done.state["final_label"], done.state["via"]) == (None, "user_none")
    shown, out = printer()
    shown.final(done.state)
    assert out.getvalue().strip() == "Final Label: none (none of the labels, you said)"
    assert not three.config.paths.clarified.exists()  # "none of these" is not kept for retraining

    labelled = three.start(STRANGE_TEXT, interactive=True)
    done = three.resume(labelled.request_id, "neutral")  # a label here, not "neither"
    assert (done.state["final_label"], done.state["via"]) == ("neutral", "user_clarification")


def test_unknowable_input_in_review_offers_none_of_these(three):
    three.start(STRANGE_TEXT, interactive=False)
    (paused,) = three.paused()
    assert paused.waiting["kind"] == "review_queue" and paused.waiting["none"] is True
    shown, out = printer()
    assert review_one(three, paused, Script("x"), shown) == "answered"
    lines = out.getvalue().splitlines()
    assert f"Which label is right? {CHOICES} x) none of these (s = skip, q = quit)" in lines
    assert lines[-1] == "Final Label: none (none of the labels, said the reviewer)"
    assert records(three)[-1]["final_decision"] == {"label": None, "via": "human_review"}
