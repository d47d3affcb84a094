"""Parsing what a person answers to the clarifying question and to a forced choice."""

from __future__ import annotations

import pytest

from selfheal.answers import parse_choice, parse_clarification


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("y", "Negative"),
        ("Y", "Negative"),
        ("yes", "Negative"),
        (" Yes! ", "Negative"),
        ("n", "Positive"),
        ("no", "Positive"),
        ("nope", "Positive"),
        ("negative", "Negative"),
        ("Positive", "Positive"),
        ("pos", "Positive"),
        ("Yes, it was definitely negative.", "Negative"),
        ("No, it was positive", "Positive"),
        ("it was not negative at all", "Positive"),
        ("it wasn't positive", "Negative"),
        ("definitely", "Negative"),
        ("not really", "Positive"),
    ],
)
def test_clarification_answers(answer, expected):
    # The question was "Was this a negative review?"
    assert parse_clarification(answer, "Negative") == expected


@pytest.mark.parametrize(
    "answer", ["", "   ", "maybe", "hmm, hard to say", "yes and no", "positive or negative"]
)
def test_unclear_clarification_answers(answer):
    assert parse_clarification(answer, "Negative") is None


def test_yes_means_the_label_asked_about():
    assert parse_clarification("yes", "Positive") == "Positive"
    assert parse_clarification("no", "Positive") == "Negative"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("negative", "Negative"),
        ("n", "Negative"),
        ("1", "Negative"),
        ("P", "Positive"),
        ("2", "Positive"),
        ("fresh", "Positive"),
        ("rotten", "Negative"),
        ("x", None),
        ("3", None),
        ("", None),
        ("yes", None),
    ],
)
def test_forced_choice(answer, expected):
    assert parse_choice(answer) == expected
