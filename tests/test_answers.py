"""Parsing what a person answers to the clarifying question and to a forced choice."""

from __future__ import annotations

import pytest

from selfheal.graph.answers import is_quit, parse_choice, parse_clarification, read_clarification


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
        # negated label and sentiment words are read by what they mean
        ("not negative", "Positive"),
        ("it is not bad", "Positive"),
        ("it's not bad at all", "Positive"),
        ("it wasn't good", "Negative"),
        ("never boring", "Positive"),
        ("bad", "Negative"),
        ("no, it was positive", "Positive"),
        ("yes, definitely negative", "Negative"),
        ("absolutely negative", "Negative"),
        ("definitely not", "Positive"),
        ("that's not right", "Positive"),
        ("Yes, definitely", "Negative"),
        ("Nope, it was good", "Positive"),
        ("Yes \u2013 it was bad", "Negative"),
    ],
)
def test_clarification_answers(answer, expected):
    # The question was "Was this a negative review?"
    assert parse_clarification(answer, "Negative") == expected


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ("", "unclear"),
        ("   ", "unclear"),
        ("hmm", "unclear"),
        ("yes and no", "unclear"),
        ("y n", "unclear"),
        ("positive or negative", "unclear"),
        ("not good, not bad", "unclear"),
        # contradictions: yes/no points one way, the named label the other
        ("yes, it was positive", "unclear"),
        ("No, it was negative", "unclear"),
        ("nope, it was bad", "unclear"),
        # not a yes or a no: the person does not know
        ("I don't know", "unsure"),
        ("I don\u2019t know", "unsure"),
        ("i dont know", "unsure"),
        ("idk", "unsure"),
        ("not sure", "unsure"),
        ("I'm not really sure it was negative", "unsure"),
        ("dunno", "unsure"),
        ("maybe", "unsure"),
        ("Maybe negative?", "unsure"),
        ("skip", "unsure"),
        ("no idea", "unsure"),
        ("can't say", "unsure"),
        ("I cannot tell", "unsure"),
        ("hmm, hard to say", "unsure"),
        ("neither", "unsure"),
        ("a bit of both", "unsure"),
        # leaving
        ("quit", "quit"),
        (" EXIT ", "quit"),
        ("q", "quit"),
    ],
)
def test_answers_that_do_not_name_a_label(answer, kind):
    # The question was "Was this a negative review?"
    assert read_clarification(answer, "Negative").kind == kind
    assert parse_clarification(answer, "Negative") is None


def test_quit_words():
    assert is_quit("quit") and is_quit("Q") and is_quit("exit")
    assert not is_quit("quite good") and not is_quit("no")


def test_yes_means_the_label_asked_about():
    assert parse_clarification("yes", "Positive") == "Positive"
    assert parse_clarification("no", "Positive") == "Negative"
    assert parse_clarification("No, it was definitely negative.", "Positive") == "Negative"
    assert parse_clarification("Yes, it was definitely negative.", "Positive") is None  # contradicts


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
        ("bad", None),  # a forced choice takes label names only
        ("quit", None),
    ],
)
def test_forced_choice(answer, expected):
    assert parse_choice(answer) == expected
