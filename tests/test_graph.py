"""Whole requests through the compiled graph: questions via interrupt(), resumes, the review queue.

Real classifier, real graph, real log files. Thresholds force each route (e.g. accept=1.0 makes
every request ask), so the tests do not depend on what the model predicts. Where a test needs the
backups to agree or disagree for sure, it swaps in a backup voter that always names one label.
"""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from selfheal.cli.run import ReadySession, run_loop
from selfheal.cli.terminal import Printer
from selfheal.graph import open_checkpointer
from selfheal.graph.services import Services
from selfheal.graph.session import Session
from selfheal.labels import MOVIE_LABELS

TEXT = "The movie was painfully slow and boring."


class FixedBackup:
    """A backup voter that always names ``label`` (to force agreement or disagreement)."""

    def __init__(self, label: str, names: tuple[str, ...] = ("fixed",)) -> None:
        self.label = label
        self.names = names

    def predict(self, text: str, voter_needed: bool = True) -> dict:
        probs = {name: (0.9 if name == self.label else 0.1) for name in MOVIE_LABELS}
        return {
            "label": self.label,
            "probs": probs,
            "models": {name: {"label": self.label, "probs": probs} for name in self.names},
        }


class Script:
    """A prompter that answers from a list; an exception class in the list is raised; then EOF."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)

    def ask(self, prompt: str, timeout: float | None = None) -> str:
        if not self.answers:
            raise EOFError
        answer = self.answers.pop(0)
        if isinstance(answer, type) and issubclass(answer, BaseException):
            raise answer
        return answer


def thresholds(session: Session, accept: float, clarify: float) -> Session:
    session.config.thresholds.clarify = 0.0
    session.config.thresholds.accept = accept
    session.config.thresholds.clarify = clarify
    return session


def records(session: Session) -> list[dict]:
    path = session.config.paths.log_dir / "app.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def loop(session: Session, *answers):
    out = io.StringIO()
    printer = Printer(Console(file=out, width=200, color_system=None, highlight=False))
    notes: list[str] = []
    counts = run_loop(ReadySession(session), session.config, Script(*answers), printer, notes.append)
    return counts, out.getvalue().splitlines(), notes


def test_confident_request_is_accepted_logged_and_forgotten(session):
    thresholds(session, accept=0.0, clarify=0.0)
    outcome = session.start("An absolute joy from start to finish.", interactive=True)
    assert outcome.done and outcome.state["via"] == "model"
    (record,) = records(session)
    assert record["final_decision"] == {"label": outcome.state["inference"]["label"], "via": "model"}
    assert record["confidence_check"]["status"] == "ACCEPT"
    assert record["fallback"]["activated"] is False
    assert record["trace"] == ["InferenceNode", "ConfidenceCheckNode", "FinalDecisionNode"]
    assert session.waiting(outcome.request_id) is None  # finished threads are deleted


def test_a_request_that_pauses_where_it_could_not_is_an_error_and_leaves_no_record(session):
    """The graph without a checkpointer (requests known not to pause) would drop a pause
    silently, leaving a question nobody can answer: it is a RuntimeError instead, and nothing is
    recorded."""
    thresholds(session, accept=1.0, clarify=0.0)
    (state,) = session.prepare_many([TEXT], interactive=True)  # asked: it pauses at the question
    assert state is not None and state.pop("route") == "ask_clarify"
    with pytest.raises(RuntimeError, match="paused on the graph without a checkpointer"):
        session._advance(state["request_id"], state, None, new=True, pausable=False)
    assert records(session) == [] and session.paused() == []


def test_clarification_yes_corrects_the_label(session, graph_config):
    thresholds(session, accept=1.0, clarify=0.0)
    outcome = session.start(TEXT, interactive=True)
    predicted = outcome.state["inference"]["label"]
    asked = MOVIE_LABELS.other(predicted)
    assert outcome.waiting == {
        "kind": "clarify",
        "question": f"Could you clarify your intent? Was this a {asked.lower()} review? (y/n)",
        "attempt": 1,
        "asked": asked,  # a y/n question about this label
        "choices": ["Negative", "Positive"],
    }
    assert records(session) == []  # nothing is logged while the question is open
    outcome = session.resume(outcome.request_id, "y")
    assert outcome.done
    (record,) = records(session)
    assert record["final_decision"] == {"label": asked, "via": "user_clarification"}
    assert record["fallback"]["user_response"] == ["y"]
    assert record["fallback"]["backup"] is None
    assert json.loads(graph_config.paths.clarified.read_text())["label"] == asked


def test_unclear_answer_is_asked_once_more_then_backups(session):
    thresholds(session, accept=1.0, clarify=0.0)
    session.services.backups = FixedBackup("Positive")
    outcome = session.start(TEXT, interactive=True)
    outcome = session.resume(outcome.request_id, "hmm")
    assert outcome.waiting["kind"] == "clarify" and outcome.waiting["attempt"] == 2
    outcome = session.resume(outcome.request_id, "I really cannot say")
    if not outcome.done:  # the backup disagreed with the model: a person is asked to choose
        assert outcome.waiting["kind"] == "review"
        outcome = session.resume(outcome.request_id, "positive")
    (record,) = records(session)
    assert record["fallback"]["attempts"] == 2
    assert record["fallback"]["no_answer_reason"] == "unsure"  # the last answer said it did not know
    assert record["fallback"]["user_response"] == ["hmm", "I really cannot say"]
    assert record["fallback"]["backup"]["label"] == "Positive"
    assert record["final_decision"]["label"] == "Positive"


def test_escalation_agreeing_backup_decides(session):
    thresholds(session, accept=1.0, clarify=1.0)
    # the no-person rule on, with two voters that back the model at 0.9 and loose thresholds
    rule = {"decide": True, "voters": ["vader", "embedding"], "min_confidence": 0.5, "min_voter_prob": 0.5}
    for key, value in rule.items():
        setattr(session.config.backup, key, value)
    predicted = session.services.classifier.predict([TEXT])[0].label
    session.services.backups = FixedBackup(predicted, ("vader", "embedding"))
    outcome = session.start(TEXT, interactive=False)
    assert outcome.done
    (record,) = records(session)
    assert record["confidence_check"]["status"] == "VERY_LOW"
    assert record["fallback"]["strategy"] == "escalate" and record["fallback"]["question"] is None
    assert record["fallback"]["backup"]["agree"] is True
    assert record["fallback"]["backup"]["decided_without_person"] is True
    assert record["final_decision"] == {"label": predicted, "via": "backup_model"}


def test_escalation_disagreeing_backup_asks_a_person_interactively(session):
    thresholds(session, accept=1.0, clarify=1.0)
    session.services.backups = FixedBackup(
        MOVIE_LABELS.other(session.services.classifier.predict([TEXT])[0].label)
    )
    outcome = session.start(TEXT, interactive=True)
    assert outcome.waiting["kind"] == "review"
    outcome = session.resume(outcome.request_id, "neg")
    record = records(session)[-1]
    assert record["final_decision"] == {"label": "Negative", "via": "human_review"}
    assert record["fallback"]["review"] == {"mode": "interactive", "answer": "neg", "label": "Negative"}


def test_pending_review_survives_a_restart_and_is_resolved(graph_config, classifier, tmp_path):
    """Logged as pending by one session; a new session on the same SQLite file answers it."""
    graph_config.thresholds.accept = 1.0
    graph_config.thresholds.clarify = 1.0
    disagreeing = FixedBackup(MOVIE_LABELS.other(classifier.predict([TEXT])[0].label))
    first = Session(Services(graph_config, classifier=classifier, backups=disagreeing))
    outcome = first.start(TEXT, interactive=False)
    assert outcome.pending_review
    pending = records(first)[-1]
    assert pending["final_decision"] == {"label": None, "via": "pending_review"}
    # checkpointed once, at the pause (durability="exit"): one checkpoint of the graph and one of
    # FallbackNode's subgraph, not one per step
    saved = list(first.checkpointer.list({"configurable": {"thread_id": outcome.request_id}}))
    assert sorted(c.config["configurable"]["checkpoint_ns"].split(":")[0] for c in saved) == [
        "",
        "FallbackNode",
    ]
    first.checkpointer.conn.close()  # the first process is gone

    second = Session(Services(graph_config), open_checkpointer(graph_config.paths.log_dir))
    waiting = second.paused()
    assert [w.request_id for w in waiting] == [outcome.request_id]
    done = second.resume(outcome.request_id, "Positive")
    assert done.done
    final = records(second)[-1]
    assert final["request_id"] == pending["request_id"]
    assert final["final_decision"] == {"label": "Positive", "via": "human_review"}
    assert final["fallback"]["review"]["mode"] == "queue"
    assert second.paused() == []
    assert json.loads(graph_config.paths.clarified.read_text().splitlines()[-1])["source"] == "human_review"


def test_run_loop_prints_the_clarification_dialogue(session):
    thresholds(session, accept=1.0, clarify=0.0)
    counts, lines, _ = loop(session, TEXT, "y", "quit")
    predicted = records(session)[0]["inference"]["label"]
    asked = MOVIE_LABELS.other(predicted)
    assert lines[0] == "> Enter text (or 'quit'):"
    assert lines[1].startswith(f"[InferenceNode] Predicted label: {predicted} | Confidence: ")
    assert lines[2:5] == [
        "[ConfidenceCheckNode] Confidence too low. Triggering fallback...",
        f"[FallbackNode] Could you clarify your intent? Was this a {asked.lower()} review? (y/n)",
        f"Final Label: {asked} (Corrected via user clarification)",
    ]
    assert lines[5] == "> Enter text (or 'quit'):"
    assert counts == {"user_clarification": 1}


def test_run_loop_confident_input_prints_only_the_final_label(session):
    thresholds(session, accept=0.0, clarify=0.0)
    _, lines, _ = loop(session, "An absolute joy from start to finish.")
    label = records(session)[0]["inference"]["label"]
    assert lines[1].startswith("[InferenceNode] Predicted label:")
    assert lines[2] == f"Final Label: {label}"


def test_eof_at_the_question_takes_the_backup_path_and_is_logged(session):
    thresholds(session, accept=1.0, clarify=0.0)
    counts, lines, _ = loop(session, TEXT)  # then EOF at the question
    (record,) = records(session)
    assert record["fallback"]["no_answer_reason"] == "eof"
    assert record["fallback"]["backup"] is not None  # the real backups ran
    assert record["final_decision"]["via"] in ("backup_model", "pending_review")
    assert "[FallbackNode] No answer (end of input). Asking the backup models..." in lines
    assert sum(counts.values()) == 1  # the loop ended after that request


@pytest.mark.parametrize(("error", "reason"), [(KeyboardInterrupt, "interrupted"), (TimeoutError, "timeout")])
def test_ctrl_c_or_timeout_at_the_question_skips_it_and_the_loop_goes_on(session, error, reason):
    thresholds(session, accept=1.0, clarify=0.0)
    session.services.backups = FixedBackup("Negative")
    counts, _, _ = loop(session, TEXT, error, "An absolute joy.", "n", "exit")
    first, second = records(session)
    assert first["fallback"]["no_answer_reason"] == reason
    assert first["final_decision"]["via"] in ("backup_model", "pending_review")
    assert second["fallback"]["user_response"] == ["n"]
    assert sum(counts.values()) == 2


def test_empty_text_is_asked_again_without_calling_the_model(session):
    calls = []
    real = session.services.classifier

    class Counting:
        def __getattr__(self, name):
            return getattr(real, name)

        def predict(self, texts):
            calls.append(texts)
            return real.predict(texts)

    session.services._classifier = Counting()
    _, lines, notes = loop(session, "", "   \t ", "\x00\x07", "quit")
    assert calls == [] and records(session) == []
    assert notes.count("Please type some text (it was empty).") == 3
    assert lines.count("> Enter text (or 'quit'):") == 4


def test_long_text_is_cut_and_the_record_says_so(session):
    thresholds(session, accept=0.0, clarify=0.0)
    session.config.input.max_chars = 100
    session.start("a fine film " * 50, interactive=False)
    (record,) = records(session)
    assert record["input_truncated"] is True
    assert record["input_chars"] == len(("a fine film " * 50).strip())
    assert len(record["input_text"]) <= 100


def test_forced_choice_is_asked_until_it_is_a_label(session):
    thresholds(session, accept=1.0, clarify=1.0)
    session.services.backups = FixedBackup(
        MOVIE_LABELS.other(session.services.classifier.predict([TEXT])[0].label)
    )
    _, lines, _ = loop(session, TEXT, "not sure", "positive", "quit")
    assert "[FallbackNode] The models disagree. Which label is right? (negative/positive)" in lines
    assert "Please answer negative/positive." in lines
    assert "Final Label: Positive (via human review)" in lines
    assert records(session)[0]["fallback"]["review"]["answer"] == "positive"


def test_i_dont_know_twice_counts_as_no_answer_and_nothing_is_kept(session, graph_config):
    thresholds(session, accept=1.0, clarify=0.0)
    outcome = session.start(TEXT, interactive=True)
    outcome = session.resume(outcome.request_id, "I don't know")
    assert outcome.waiting["kind"] == "clarify" and outcome.waiting["attempt"] == 2  # asked again
    outcome = session.resume(outcome.request_id, "not sure")
    if outcome.waiting is not None and outcome.waiting["kind"] == "review":  # the backups disagreed
        outcome = session.resume(outcome.request_id, {"answer": None, "reason": "eof"})
    (record,) = records(session)
    fallback = record["fallback"]
    assert fallback["user_response"] == ["I don't know", "not sure"]  # every answer, in order
    assert fallback["no_answer_reason"] == "unsure" and fallback["user_label"] is None
    assert fallback["backup"] is not None  # the real backup models were asked
    assert record["final_decision"]["via"] in ("backup_model", "pending_review")
    assert not graph_config.paths.clarified.exists()  # no label was given, nothing kept for retraining


def test_quit_at_the_question_leaves_it_for_review_and_ends_the_loop(session, graph_config):
    thresholds(session, accept=1.0, clarify=0.0)
    counts, lines, notes = loop(session, TEXT, "maybe", "quit", "An absolute joy.")
    assert counts == {"pending_review": 1}  # the loop ended: the next text was never read
    (record,) = records(session)
    assert record["final_decision"] == {"label": None, "via": "pending_review"}
    fallback = record["fallback"]
    assert fallback["user_response"] == ["maybe", "quit"] and fallback["no_answer_reason"] == "quit"
    assert fallback["backup"] is None  # left for a person, not decided by the backups
    assert "[FallbackNode] The question is left for 'selfheal review'." in lines
    assert lines[-1] == "Final Label: pending (escalated to human review)"
    assert any("waits for 'selfheal review'" in note for note in notes)
    (waiting,) = session.paused()  # in the review queue with its state intact
    assert waiting.pending_review and waiting.state["text"] == TEXT
    assert waiting.state["inference"] == record["inference"]
    done = session.resume(waiting.request_id, {"answer": "positive", "source": "review"})
    assert done.state["final_label"] == "Positive"
    assert records(session)[-1]["final_decision"] == {"label": "Positive", "via": "human_review"}
    (kept,) = graph_config.paths.clarified.read_text().splitlines()
    assert json.loads(kept)["source"] == "human_review"


def test_i_dont_know_at_the_forced_choice_leaves_it_pending(session):
    thresholds(session, accept=1.0, clarify=1.0)
    session.services.backups = FixedBackup(
        MOVIE_LABELS.other(session.services.classifier.predict([TEXT])[0].label)
    )
    counts, lines, _ = loop(session, TEXT, "dunno", "no idea", "quit")
    assert lines.count("Please answer negative/positive.") == 1  # asked once more, then left
    assert counts == {"pending_review": 1}
    assert records(session)[0]["final_decision"] == {"label": None, "via": "pending_review"}


def test_quit_at_the_forced_choice_leaves_it_pending_and_ends_the_loop(session):
    thresholds(session, accept=1.0, clarify=1.0)
    session.services.backups = FixedBackup(
        MOVIE_LABELS.other(session.services.classifier.predict([TEXT])[0].label)
    )
    counts, lines, _ = loop(session, TEXT, "quit", "An absolute joy.")
    assert counts == {"pending_review": 1}  # the next text was never read
    assert lines[-1] == "Final Label: pending (escalated to human review)"
    (record,) = records(session)
    assert record["final_decision"] == {"label": None, "via": "pending_review"}
    assert record["fallback"]["review"]["mode"] == "queue"
    assert [w.request_id for w in session.paused()] == [record["request_id"]]
