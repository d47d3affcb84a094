"""The real ``selfheal run`` in a pseudo-terminal (pexpect): prompt, dialogue, log record."""

from __future__ import annotations

import json
import os
import re
import signal
import sys

import pexpect

from conftest import close_terminal
from selfheal.labels import MOVIE_LABELS

TEXTS = ["The movie was painfully slow and boring.", "It has its moments.", "Not bad, not good, just there."]
PROMPT = "> Enter text (or 'quit'):"


def spawn_run(tmp_path, cli, *args: str) -> pexpect.spawn:
    """``selfheal run`` in a real terminal (40 x 200), in ``tmp_path``."""
    return pexpect.spawn(
        sys.executable,
        ["-m", "selfheal", "run", *cli.args(), *args],
        cwd=str(tmp_path),
        env=cli.env,
        encoding="utf-8",
        timeout=120,
        dimensions=(40, 200),
    )


def test_run_asks_for_clarification_and_logs_the_answer(tmp_path, cli, classifier):
    # --accept 0.999 forces the question unless the model is even surer than that
    text = next(t for t in TEXTS if classifier.predict([t])[0].confidence < 0.999)
    child = spawn_run(tmp_path, cli, "--accept", "0.999")
    try:
        child.expect_exact(PROMPT)  # time to prompt is measured by benchmarks/bench_startup.py
        child.sendline(text)
        child.expect(r"\[InferenceNode\] Predicted label: (Negative|Positive) \| Confidence: (\d+)%\r\n")
        predicted, percent = child.match.group(1), int(child.match.group(2))
        asked = MOVIE_LABELS.other(predicted)
        child.expect_exact("[ConfidenceCheckNode] Confidence too low. Triggering fallback...\r\n")
        child.expect_exact(
            f"[FallbackNode] Could you clarify your intent? Was this a {asked.lower()} review? (y/n)\r\n"
        )
        child.expect_exact("> ")
        child.sendline("y")
        child.expect_exact(f"Final Label: {asked} (Corrected via user clarification)\r\n")
        child.expect_exact(PROMPT)
        child.sendline("quit")
        child.expect(r"Bye: 1 request \(0 by the model, 1 clarified by you, .*\)\. Log: .*app\.jsonl")
        child.expect(pexpect.EOF)
        status = close_terminal(child)
    finally:
        child.close()
    assert status == 0

    (line,) = (tmp_path / "logs" / "app.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d", record["timestamp"])
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", record["request_id"]
    )
    assert record["input_text"] == text and record["mode"] == "interactive"
    assert record["inference"]["label"] == predicted
    assert int(record["inference"]["confidence"] * 100 + 1e-9) == percent
    check = record["confidence_check"]
    assert {key: check[key] for key in ("thresholds", "status", "route")} == {
        "thresholds": {"accept": 0.999, "clarify": 0.5},
        "status": "LOW",
        "route": "ask_clarify",
    }
    assert check["knowability"]["known"] is True and check["knowability"]["reason"] is None
    fallback = record["fallback"]
    assert fallback["activated"] is True and fallback["strategy"] == "ask_clarify"
    assert fallback["question"] == f"Could you clarify your intent? Was this a {asked.lower()} review? (y/n)"
    assert fallback["user_response"] == ["y"] and fallback["backup"] is None
    assert record["final_decision"] == {"label": asked, "via": "user_clarification"}
    assert record["trace"] == ["InferenceNode", "ConfidenceCheckNode", "FallbackNode", "FinalDecisionNode"]
    assert "via user_clarification" in (tmp_path / "logs" / "app.log").read_text()


def test_open_question_survives_a_killed_run_and_review_answers_it(tmp_path, cli):
    child = spawn_run(tmp_path, cli, "--accept", "1")
    child.expect_exact(PROMPT)
    child.sendline("A strange, haunting little film.")
    child.expect_exact("(y/n)")
    child.expect_exact("> ")
    os.kill(child.pid, signal.SIGKILL)  # a crash while the question is open
    child.expect(pexpect.EOF)
    child.close()
    assert not (tmp_path / "logs" / "app.jsonl").exists()  # nothing decided, nothing logged

    listed = cli("review", "--list", check=True)
    assert "open question" in listed.stdout and "A strange, haunting little film." in listed.stdout
    reviewed = cli("review", stdin="negative\n", check=True)
    assert "Final Label: Negative (via human review)" in reviewed.stdout
    (line,) = (tmp_path / "logs" / "app.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["final_decision"] == {"label": "Negative", "via": "human_review"}
    assert record["mode"] == "interactive" and record["fallback"]["review"]["mode"] == "queue"


def test_quit_at_the_question_leaves_it_pending_and_says_goodbye(tmp_path, cli):
    text = "A strange, haunting little film."
    child = spawn_run(tmp_path, cli, "--accept", "1")
    try:
        child.expect_exact(PROMPT)
        child.sendline(text)
        child.expect_exact("(y/n)")
        child.expect_exact("> ")
        child.sendline("I don't know")
        child.expect_exact("Sorry, I did not get that.")  # asked again, not read as yes or no
        child.expect_exact("> ")
        child.sendline("quit")
        child.expect_exact("[FallbackNode] The question is left for 'selfheal review'.\r\n")
        child.expect_exact("Final Label: pending (escalated to human review)\r\n")
        child.expect(
            r"Bye: 1 request \(0 by the model, 0 clarified by you, .* 1 pending review, 0 not a review \(you said\)\)\. Log: "
        )
        child.expect(pexpect.EOF)
        status = close_terminal(child)
    finally:
        child.close()
    assert status == 0

    (line,) = (tmp_path / "logs" / "app.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["final_decision"] == {"label": None, "via": "pending_review"}
    assert record["fallback"]["user_response"] == ["I don't know", "quit"]
    assert record["fallback"]["no_answer_reason"] == "quit"
    assert not (tmp_path / "clarified.jsonl").exists()
    listed = cli("review", "--list", check=True)
    assert "pending review" in listed.stdout and text in listed.stdout
