"""FallbackNode as a compiled subgraph: pause and resume across processes, the steps the stream
names, the paused subgraph's state, the review queue rebuilt into the subgraph.

LangGraph's tracker has reports of subgraphs that restart from their first node on resume
(langgraph#4796) or answer a second interrupt with the first resume value (langgraph#2870); both
arise when a subgraph is invoked from inside a node function (with its own checkpointer). Here
the compiled subgraph is the node itself and inherits the parent's checkpointer; the first test
checks, with real processes sharing one SQLite file, that no step runs again and no answer is
used twice.

Real classifier, real backups, real SQLite checkpointer, real log files. Where a test needs the
backups to disagree for sure it swaps in a voter that always names one label.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from rich.console import Console

from conftest import REPO
from selfheal.cli.review import queue_lines
from selfheal.cli.terminal import Printer
from selfheal.graph import CHECKPOINT_DB, open_checkpointer
from selfheal.graph.checkpoints import rebuild
from selfheal.graph.services import Services
from selfheal.graph.session import Session
from selfheal.labels import MOVIE_LABELS

TEXT = "The movie was painfully slow and boring."
DRIVER = REPO / "tests" / "graph_process.py"


class FixedBackup:
    """A backup voter that always names ``label`` (to force agreement or disagreement)."""

    names = ("fixed",)

    def __init__(self, label: str) -> None:
        self.label = label

    def predict(self, text: str, voter_needed: bool = True) -> dict:
        probs = {name: (0.9 if name == self.label else 0.1) for name in MOVIE_LABELS}
        return {
            "label": self.label,
            "probs": probs,
            "models": {"fixed": {"label": self.label, "probs": probs}},
        }


def records(log_dir: Path) -> list[dict]:
    path = log_dir / "app.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def process(tmp_path: Path, *ops: list) -> tuple[dict[str, dict], str]:
    """Run ``ops`` in a new Python process on the SQLite file under ``tmp_path``; its results by
    request name, and its pid."""
    result = subprocess.run(
        [sys.executable, str(DRIVER), str(tmp_path), json.dumps(ops)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(out) == len(ops)
    return {o["name"]: o for o in out}, str(out[0]["pid"])


def calls_by_process(tmp_path: Path) -> dict[str, Counter]:
    """The model loads and calls each process logged, by pid."""
    per_pid: dict[str, Counter] = {}
    for line in (tmp_path / "calls.log").read_text().splitlines():
        pid, what = line.split(" ", 1)
        per_pid.setdefault(pid, Counter())[what] += 1
    return per_pid


def test_pause_and_resume_across_processes_reruns_no_step_and_reuses_no_answer(tmp_path):
    """Four processes on one checkpoint file, two requests. ``ask``: a question, an unclear
    answer (asked again), "I don't know" (on to the backups), a person's choice. ``queue``: "quit"
    at the question (logged pending), a reviewer's answer that names no label (it waits again),
    a reviewer's label."""
    # 1: both requests start and wait at their question
    first, pid1 = process(tmp_path, ["start", "ask", TEXT, True], ["start", "queue", TEXT, True])
    for name in ("ask", "queue"):
        assert first[name]["waiting"]["kind"] == "clarify" and first[name]["waiting"]["attempt"] == 1
        assert first[name]["steps"] == [["InferenceNode"], ["ConfidenceCheckNode"]]  # paused in clarify

    # 2: a new process answers "hmm" (unclear): asked again, NOT answered with "hmm" again;
    # "quit" leaves "queue" for review: logged pending, then back in FallbackNode, waiting
    second, pid2 = process(tmp_path, ["resume", "ask", "hmm"], ["resume", "queue", "quit"])
    ask, queue = second["ask"], second["queue"]
    assert ask["waiting"]["kind"] == "clarify" and ask["waiting"]["attempt"] == 2
    assert ask["waiting"]["question"].startswith("Sorry, I did not get that.")
    assert ask["steps"] == [["FallbackNode", "clarify"]]  # only the answered visit of clarify
    assert ask["fallback"]["user_response"] == ["hmm"]  # the paused subgraph's state, seen from a new process
    assert queue["waiting"]["kind"] == "review_queue" and queue["via"] == "pending_review"
    assert queue["steps"] == [["FallbackNode", "clarify"], ["FinalDecisionNode"]]
    (pending,) = records(tmp_path / "logs")
    assert pending["final_decision"] == {"label": None, "via": "pending_review"}

    # 3: "I don't know" to the repeated question (the step after a previous interrupt): the
    # backups run once, then a person is asked; a reviewer's "maybe" names no label: it waits again
    third, pid3 = process(
        tmp_path,
        ["resume", "ask", "I don't know"],
        ["resume", "queue", {"answer": "maybe", "source": "review"}],
    )
    ask, queue = third["ask"], third["queue"]
    assert ask["waiting"]["kind"] == "review"  # "I don't know" was not reused as the choice
    assert ask["steps"] == [["FallbackNode", "clarify"], ["FallbackNode", "backup"]]
    assert queue["waiting"]["kind"] == "review_queue" and queue["steps"] == [["FallbackNode", "await_review"]]
    assert len(records(tmp_path / "logs")) == 1  # nothing logged

    # 4: the person's choice and the reviewer's label decide; FinalDecisionNode logs each once
    fourth, pid4 = process(
        tmp_path,
        ["resume", "ask", "negative"],
        ["resume", "queue", {"answer": "positive", "source": "review"}],
    )
    ask, queue = fourth["ask"], fourth["queue"]
    assert ask["waiting"] is None and (ask["via"], ask["final_label"]) == ("human_review", "Negative")
    assert ask["steps"] == [["FallbackNode", "review"], ["FinalDecisionNode"]]
    assert queue["waiting"] is None and (queue["via"], queue["final_label"]) == ("human_review", "Positive")
    assert queue["steps"] == [["FallbackNode", "await_review"], ["FinalDecisionNode"]]

    # every model call in the process where its step ran, once; nothing re-run on resume
    calls = calls_by_process(tmp_path)
    assert len({pid1, pid2, pid3, pid4}) == 4 and set(calls) == {pid1, pid3}  # 2 and 4: no model at all
    assert calls[pid1] == Counter({"classifier.load": 1, "classifier.predict": 2})
    assert calls[pid3] == Counter({"backups.predict": 1})  # the backups for "ask", once

    logged = records(tmp_path / "logs")
    assert [(r["final_decision"]["via"], r["final_decision"]["label"]) for r in logged] == [
        ("pending_review", None),
        ("human_review", "Negative"),
        ("human_review", "Positive"),
    ]
    asked, queued = logged[1], logged[2]
    assert asked["trace"] == ["InferenceNode", "ConfidenceCheckNode", "FallbackNode", "FinalDecisionNode"]
    fallback = asked["fallback"]
    assert fallback["user_response"] == ["hmm", "I don't know"] and fallback["attempts"] == 2
    assert fallback["no_answer_reason"] == "unsure" and fallback["backup"] is not None
    assert fallback["review"] == {"mode": "interactive", "answer": "negative", "label": "Negative"}
    assert asked["inference"] == first["ask"]["inference"]  # the one inference, carried through every pause
    assert queued["trace"] == [*pending["trace"], "FallbackNode", "FinalDecisionNode"]
    assert queued["fallback"]["user_response"] == ["quit"] and queued["fallback"]["backup"] is None
    assert queued["fallback"]["review"] == {"mode": "queue", "answer": "positive", "label": "Positive"}


def test_the_stream_names_every_step_that_ran(session):
    session.config.thresholds.accept = 1.0
    session.config.thresholds.clarify = 1.0  # escalate: backups, then a person
    predicted = session.services.classifier.predict([TEXT])[0].label
    session.services.backups = FixedBackup(MOVIE_LABELS.other(predicted))
    seen: list[tuple[tuple[str, ...], dict, dict]] = []

    def step(path: tuple[str, ...], update: dict, state: dict) -> None:
        seen.append((path, update, dict(state)))

    outcome = session.start(TEXT, interactive=True, on_update=step)
    assert outcome.waiting["kind"] == "review"
    outcome = session.resume(outcome.request_id, "positive", on_update=step)
    assert [path for path, _, _ in seen] == [
        ("InferenceNode",),
        ("ConfidenceCheckNode",),
        ("FallbackNode", "backup"),
        ("FallbackNode", "review"),
        ("FinalDecisionNode",),
    ]
    # the state handed along with each step is the request as it stands after that step
    assert seen[2][2]["fallback"]["backup"]["label"] == MOVIE_LABELS.other(predicted)
    assert (
        seen[3][2]["via"] == "human_review" and seen[4][2]["record"]["final_decision"]["label"] == "Positive"
    )

    out = io.StringIO()
    printer = Printer(Console(file=out, width=200, color_system=None, highlight=False))
    for path, update, state in seen:
        printer.update(path, update, state)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"[InferenceNode] Predicted label: {predicted} | Confidence: ")
    assert lines[1:] == [
        "[ConfidenceCheckNode] Confidence very low. Escalating to the backup models...",
        f"[FallbackNode] Backup models (fixed): {MOVIE_LABELS.other(predicted)} 90% "
        f"| disagree with the model's {predicted}",
    ]


def test_an_open_review_shows_the_backups_vote_of_the_paused_subgraph(session):
    """A run killed at the forced choice leaves the subgraph paused after its backup step; the
    queue shows that step's vote (the parent state has it only once the subgraph ends)."""
    session.config.thresholds.accept = 1.0
    session.config.thresholds.clarify = 1.0
    predicted = session.services.classifier.predict([TEXT])[0].label
    session.services.backups = FixedBackup(MOVIE_LABELS.other(predicted))
    outcome = session.start(TEXT, interactive=True)
    (paused,) = session.paused()
    assert paused.waiting["kind"] == "review" and paused.request_id == outcome.request_id
    assert paused.state["fallback"]["backup"]["label"] == MOVIE_LABELS.other(predicted)
    details = queue_lines([paused])[1]
    assert "open review" in details and f"backups {MOVIE_LABELS.other(predicted)} 90%" in details


def test_rebuilt_queue_waits_in_the_await_review_step(graph_config, classifier):
    """``selfheal review --rebuild``: the pending request is re-created from its record with
    ``update_state(..., as_node="FinalDecisionNode")``; it then waits in FallbackNode's
    ``await_review`` step, and answering it logs the review, the model never run again."""
    graph_config.thresholds.accept = 1.0
    graph_config.thresholds.clarify = 1.0
    disagreeing = FixedBackup(MOVIE_LABELS.other(classifier.predict([TEXT])[0].label))
    log_dir = graph_config.paths.log_dir
    first = Session(Services(graph_config, classifier=classifier, backups=disagreeing))
    outcome = first.start(TEXT, interactive=False)
    assert outcome.pending_review
    first.checkpointer.conn.close()
    first.claims.close()
    (log_dir / CHECKPOINT_DB).write_bytes(b"")  # the queue is lost

    done = rebuild(graph_config)
    assert done.restored == [outcome.request_id]

    class NoModel:
        def predict(self, texts):
            raise AssertionError("a rebuilt request ran the model")

    second = Session(
        Services(graph_config, classifier=NoModel(), backups=disagreeing), open_checkpointer(log_dir)
    )
    snapshot = second.graph.get_state(second._thread(outcome.request_id), subgraphs=True)
    assert snapshot.next == ("FallbackNode",)
    assert snapshot.tasks[0].state.next == ("await_review",)
    (waiting,) = second.paused()
    assert waiting.waiting["kind"] == "review_queue"
    final = second.resume(outcome.request_id, {"answer": "2", "source": "review"})
    assert (final.state["via"], final.state["final_label"]) == ("human_review", "Positive")
    pending, reviewed = records(log_dir)
    assert reviewed["inference"] == pending["inference"]
    assert reviewed["trace"] == [*pending["trace"], "FallbackNode", "FinalDecisionNode"]
