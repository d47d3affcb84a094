"""The shipped 3-class tweets checkpoint (models/tweets-3class) in a real terminal: the
multiple-choice question, answered by number and by name, a bad answer asked again, and the
JSONL records it leaves."""

from __future__ import annotations

import json

import pexpect

from conftest import REPO, close_terminal, process_env, selfheal_argv
from selfheal.model.checkpoint import checkpoint_labels

TWEETS = REPO / "models" / "tweets-3class"
PROMPT = "> Enter text (or 'quit'):"
CHOICES = "1) negative 2) neutral 3) positive"
QUESTION = f"[FallbackNode] Could you clarify your intent? Which label is right? {CHOICES}"
RETRY = f"[FallbackNode] Sorry, I did not get that. Please answer with a number or a label: {CHOICES}"


def test_the_tweets_checkpoint_stores_its_three_labels():
    assert checkpoint_labels(TWEETS).names == ("negative", "neutral", "positive")


def test_multiple_choice_in_a_real_terminal(tmp_path):
    argv = selfheal_argv(
        "run",
        "--set",
        f"paths.checkpoint={TWEETS}",
        "--set",
        f"paths.log_dir={tmp_path / 'logs'}",
        "--set",
        f"paths.clarified={tmp_path / 'clarified.jsonl'}",
        "--set",
        "knowability.enabled=false",  # this test is about the question, not the input check
        "--accept",
        "1",  # every request is asked about ...
        "--clarify",
        "0",  # ... with the clarifying question, never escalated
    )
    child = pexpect.spawn(
        argv[0],
        argv[1:],
        cwd=str(tmp_path),
        env=process_env(),
        encoding="utf-8",
        timeout=300,
        dimensions=(40, 250),
    )
    try:
        child.expect_exact(PROMPT)
        child.sendline("The bus was late again this morning.")
        child.expect(
            r"\[InferenceNode\] Predicted label: (negative|neutral|positive) \| Confidence: \d+%\r\n"
        )
        child.expect_exact(QUESTION + "\r\n")
        child.expect_exact("> ")
        child.sendline("maybe")  # names no label: asked again
        child.expect_exact(RETRY + "\r\n")
        child.expect_exact("> ")
        child.sendline("2")  # by number
        child.expect(r"Final Label: neutral \((Confirmed|Corrected) via user clarification\)\r\n")
        child.expect_exact(PROMPT)
        child.sendline("What a wonderful day with my friends!")
        child.expect_exact(QUESTION + "\r\n")
        child.expect_exact("> ")
        child.sendline("Positive")  # by name, any case
        child.expect(r"Final Label: positive \((Confirmed|Corrected) via user clarification\)\r\n")
        child.expect_exact(PROMPT)
        child.sendline("quit")
        child.expect(pexpect.EOF)
        status = close_terminal(child)
    finally:
        child.close()
    assert status == 0

    first, second = (json.loads(line) for line in (tmp_path / "logs" / "app.jsonl").read_text().splitlines())
    for record in (first, second):
        assert set(record["inference"]["probs"]) == {"negative", "neutral", "positive"}
        assert abs(sum(record["inference"]["probs"].values()) - 1) < 1e-4
        assert record["confidence_check"]["route"] == "ask_clarify"
        assert record["fallback"]["question"] == QUESTION.removeprefix("[FallbackNode] ")
    assert first["fallback"]["user_response"] == ["maybe", "2"]
    assert first["final_decision"] == {"label": "neutral", "via": "user_clarification"}
    assert second["fallback"]["user_response"] == ["Positive"]
    assert second["final_decision"] == {"label": "positive", "via": "user_clarification"}
    kept = [json.loads(line) for line in (tmp_path / "clarified.jsonl").read_text().splitlines()]
    assert [k["label"] for k in kept] == ["neutral", "positive"]
