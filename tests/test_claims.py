"""One answer per review: two real reviewers at once, a reviewer who died after claiming.

The pending requests come from the real ``selfheal classify`` (shipped model, real backups) on
texts where the backups disagree with the model; the reviewers are real ``selfheal review``
processes in pseudo-terminals sharing one SQLite checkpoint file.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import pexpect

from selfheal.config import load_config
from selfheal.graph import CHECKPOINT_DB, open_checkpointer
from selfheal.graph.claims import AlreadyAnswered, ClaimStore
from selfheal.graph.services import Services
from selfheal.graph.session import Session, question_key

# The shipped model and the backups disagree on these (escalated with --accept 1 --clarify 1).
DISPUTED = ["Visually stunning, emotionally empty.", "Not bad, not good, just there."]


def make_pending(cli) -> list[dict]:
    """Pending requests made by the real ``selfheal classify``."""
    result = cli("classify", "--json", "--accept", "1", "--clarify", "1", *DISPUTED, check=True)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    pending = [r for r in records if r["final_decision"]["via"] == "pending_review"]
    assert pending, "the backups agreed with the model on every text: choose texts they disagree on"
    return pending


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def reviewer(tmp_path, cli) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        ["-m", "selfheal", "review", *cli.args()],
        cwd=str(tmp_path),
        env=cli.env,
        encoding="utf-8",
        timeout=120,
        dimensions=(40, 200),
    )


def test_two_reviewers_at_once_only_the_first_answer_counts(tmp_path, cli):
    request = make_pending(cli)[0]
    rid = request["request_id"]
    first, second = reviewer(tmp_path, cli), reviewer(tmp_path, cli)
    try:
        for child in (first, second):  # both show the same request and wait at the prompt
            child.expect_exact(f"request {rid}")
            child.expect_exact("Which label is right?")
            child.expect_exact("> ")
        first.sendline("negative")  # both answer at (almost) the same moment, opposite labels
        second.sendline("positive")
        outcomes = {}
        for child, given in ((first, "Negative"), (second, "Positive")):
            index = child.expect(
                [r"Final Label: (\w+) \(via human review\)", r"Already answered: request \w+"]
            )
            outcomes[given] = "won" if index == 0 else "already"
            if index == 0:
                assert child.match.group(1) == given  # a reviewer only sees the label they gave
            while child.expect([r"> ", pexpect.EOF]) == 0:  # leave any other pending request
                child.sendline("q")
    finally:
        first.close()
        second.close()
    assert sorted(outcomes.values()) == ["already", "won"]
    winner = next(label for label, outcome in outcomes.items() if outcome == "won")
    reviews = [
        r
        for r in lines(tmp_path / "logs" / "app.jsonl")
        if r["request_id"] == rid and r["final_decision"]["via"] == "human_review"
    ]
    assert [r["final_decision"]["label"] for r in reviews] == [winner]
    clarified = [r for r in lines(tmp_path / "clarified.jsonl") if r["request_id"] == rid]
    assert [r["label"] for r in clarified] == [winner]
    assert rid[:8] not in cli("review", "--list", check=True).stdout


class PausingClaims(ClaimStore):
    """The real claim store, holding still right after a successful claim (before the resume)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.claimed, self.go_on = threading.Event(), threading.Event()

    def claim(self, thread_id, checkpoint_id, answer):
        won = super().claim(thread_id, checkpoint_id, answer)
        self.claimed.set()
        self.go_on.wait(timeout=30)
        return won


def test_both_reviewers_saw_it_waiting_only_the_first_claim_resumes(tmp_path, cli):
    """The interleaving behind the double answer, made deterministic: A and B both see the
    request waiting; A has claimed it but not resumed yet when B answers."""
    rid = make_pending(cli)[0]["request_id"]
    config = load_config(
        None, [f"paths.log_dir={tmp_path / 'logs'}", f"paths.clarified={tmp_path / 'c.jsonl'}"]
    )
    db = tmp_path / "logs" / CHECKPOINT_DB
    claims_a = PausingClaims(db, owner=f"{socket.gethostname()}:{os.getpid()}-a")
    one = Session(Services(config), open_checkpointer(config.paths.log_dir), claims_a)
    two = Session(Services(config), open_checkpointer(config.paths.log_dir), ClaimStore(db, owner="b"))
    assert one.waiting(rid) is not None and two.waiting(rid) is not None  # both see it waiting
    results: dict[str, object] = {}
    thread = threading.Thread(
        target=lambda: results.update(a=one.resume(rid, {"answer": "negative", "source": "review"}))
    )
    thread.start()
    assert claims_a.claimed.wait(timeout=60)
    try:
        assert two.waiting(rid) is not None  # still waiting: A has not resumed yet
        two.resume(rid, {"answer": "positive", "source": "review"})
    except AlreadyAnswered as exc:
        results["b"] = exc
    finally:
        claims_a.go_on.set()
        thread.join(timeout=60)
    refused = results["b"]
    assert isinstance(refused, AlreadyAnswered) and refused.claim is not None
    assert refused.claim.owner == claims_a.owner  # refused because A holds the claim
    assert results["a"].state["final_label"] == "Negative"
    reviews = [
        r for r in lines(tmp_path / "logs" / "app.jsonl") if r["final_decision"]["via"] == "human_review"
    ]
    assert [r["final_decision"]["label"] for r in reviews] == ["Negative"]
    assert [r["label"] for r in lines(tmp_path / "c.jsonl")] == ["Negative"]


def test_two_concurrent_resumes_apply_one_answer(tmp_path, cli):
    """Two sessions (own SQLite connections) resume the same request at the same moment; before
    the claims this logged two human_review records with opposite labels."""
    rid = make_pending(cli)[0]["request_id"]
    config = load_config(
        None, [f"paths.log_dir={tmp_path / 'logs'}", f"paths.clarified={tmp_path / 'c.jsonl'}"]
    )
    sessions = [Session(Services(config), open_checkpointer(config.paths.log_dir)) for _ in range(2)]
    assert all(s.waiting(rid) is not None for s in sessions)
    start, results = threading.Barrier(2), {}

    def answer(session: Session, label: str) -> None:
        start.wait(timeout=30)
        try:
            results[label] = session.resume(rid, {"answer": label.lower(), "source": "review"}).state[
                "final_label"
            ]
        except AlreadyAnswered:
            results[label] = "already answered"

    threads = [
        threading.Thread(target=answer, args=(s, label))
        for s, label in zip(sessions, ("Negative", "Positive"), strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    winners = [label for label, result in results.items() if result == label]
    assert len(winners) == 1 and sorted(results.values()).count("already answered") == 1
    reviews = [
        r for r in lines(tmp_path / "logs" / "app.jsonl") if r["final_decision"]["via"] == "human_review"
    ]
    assert [r["final_decision"]["label"] for r in reviews] == winners
    assert [r["label"] for r in lines(tmp_path / "c.jsonl")] == winners


def test_an_answer_whose_reviewer_died_is_finished_by_the_next_review(tmp_path, cli):
    rid = make_pending(cli)[0]["request_id"]
    config = load_config(
        None, [f"paths.log_dir={tmp_path / 'logs'}", f"paths.clarified={tmp_path / 'c.jsonl'}"]
    )
    session = Session(Services(config), open_checkpointer(config.paths.log_dir))
    question = question_key(session.graph.get_state(session._thread(rid)))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    owner = f"{socket.gethostname()}:{int(dead.stdout)}"  # a reviewer process that has exited
    store = ClaimStore(tmp_path / "logs" / CHECKPOINT_DB, owner=owner)
    assert store.claim(rid, question, {"answer": "positive", "source": "review"}) is not None
    # it died before resuming: the request still waits, and nobody else may answer it now
    assert session.waiting(rid) is not None
    try:
        session.resume(rid, {"answer": "negative", "source": "review"})
    except AlreadyAnswered:
        pass
    else:
        raise AssertionError("a claimed question was answered twice")

    result = cli("review", stdin="q\n", check=True)
    assert f"finished request {rid[:8]}" in result.stdout
    assert "Final Label: Positive (via human review)" in result.stdout
    reviews = [r for r in lines(tmp_path / "logs" / "app.jsonl") if r["request_id"] == rid][1:]
    assert [r["final_decision"] for r in reviews] == [{"label": "Positive", "via": "human_review"}]
    assert store.get(rid, question) is None  # finished claims are cleared
    assert rid[:8] not in cli("review", "--list", check=True).stdout


def test_a_reviewer_who_died_after_logging_is_not_logged_twice(tmp_path, cli):
    pending = make_pending(cli)[0]
    rid = pending["request_id"]
    config = load_config(
        None, [f"paths.log_dir={tmp_path / 'logs'}", f"paths.clarified={tmp_path / 'c.jsonl'}"]
    )
    session = Session(Services(config), open_checkpointer(config.paths.log_dir))
    question = question_key(session.graph.get_state(session._thread(rid)))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    store = ClaimStore(tmp_path / "logs" / CHECKPOINT_DB, owner=f"{socket.gethostname()}:{int(dead.stdout)}")
    answer = {"answer": "negative", "source": "review"}
    assert store.claim(rid, question, answer) is not None
    # the dead reviewer's FinalDecisionNode wrote its record; the process died before the clean-up
    decided = pending | {"final_decision": {"label": "Negative", "via": "human_review"}}
    session.services.log.write(decided)

    result = cli("review", stdin="q\n", check=True)
    assert f"finished request {rid[:8]}" not in result.stdout and rid[:8] not in result.stdout
    records = [r for r in lines(tmp_path / "logs" / "app.jsonl") if r["request_id"] == rid]
    assert [r["final_decision"]["via"] for r in records] == ["pending_review", "human_review"]
    assert session.waiting(rid) is None  # the thread was cleaned up
    assert store.get(rid, question) is None


def test_a_question_asked_again_has_a_new_key_and_an_old_claim_cannot_answer_it(session):
    """FallbackNode's clarify step asks again at the SAME parent checkpoint (the subgraph moved
    on, the parent did not), so the key of a question also names its interrupt: a claim made on
    the first question (a reviewer who read it before it was answered) must not answer the second."""
    session.config.thresholds.accept = 1.0
    session.config.thresholds.clarify = 0.0
    outcome = session.start("A strange, haunting little film.", interactive=True)
    first = session.graph.get_state(session._thread(outcome.request_id))
    outcome = session.resume(outcome.request_id, "hmm")  # unclear: asked again
    assert outcome.waiting["kind"] == "clarify" and outcome.waiting["attempt"] == 2
    second = session.graph.get_state(session._thread(outcome.request_id))
    assert first.config["configurable"]["checkpoint_id"] == second.config["configurable"]["checkpoint_id"]
    assert question_key(first) != question_key(second)

    stale = session.claims.claim(
        outcome.request_id, question_key(first), {"answer": "positive", "source": "review"}
    )
    assert stale is not None  # nobody holds the old key any more ...
    try:
        session._resume_claimed(stale, None)
    except AlreadyAnswered:
        pass
    else:
        raise AssertionError("a claim on an answered question answered the next one")
    assert session.claims.get(outcome.request_id, question_key(first)) is None  # ... and it was let go
    waiting = session.waiting(outcome.request_id)  # the second question still waits, unanswered
    assert waiting is not None and waiting.waiting["attempt"] == 2
    assert waiting.state["fallback"]["user_response"] == ["hmm"]
