"""Parsing what a person answers to the clarifying question and to a forced choice: the y/n
question of two labels (the movie model's), and the multiple choice of three."""

from __future__ import annotations

import pytest

from selfheal.graph.answers import (
    NEITHER,
    choice_hint,
    is_quit,
    numbered_choices,
    parse_choice,
    parse_clarification,
    parse_identity,
    read_choice,
    read_clarification,
)
from selfheal.labels import MOVIE_LABELS, LabelSet

THREE = LabelSet(("negative", "neutral", "positive"))  # the tweets model's label set


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
    assert parse_clarification(answer, "Negative", MOVIE_LABELS) == expected


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
    assert read_clarification(answer, "Negative", MOVIE_LABELS).kind == kind
    assert parse_clarification(answer, "Negative", MOVIE_LABELS) is None


def test_quit_words():
    assert is_quit("quit") and is_quit("Q") and is_quit("exit")
    assert not is_quit("quite good") and not is_quit("no")


def test_yes_means_the_label_asked_about():
    assert parse_clarification("yes", "Positive", MOVIE_LABELS) == "Positive"
    assert parse_clarification("no", "Positive", MOVIE_LABELS) == "Negative"
    assert parse_clarification("No, it was definitely negative.", "Positive", MOVIE_LABELS) == "Negative"
    assert parse_clarification("Yes, it was definitely negative.", "Positive", MOVIE_LABELS) is None


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
    assert parse_choice(answer, MOVIE_LABELS) == expected


def test_the_labels_come_from_the_label_set_not_a_constant():
    spam = LabelSet(("ham", "spam"))
    assert parse_choice("spam", spam) == "spam" and parse_choice("1", spam) == "ham"
    assert parse_choice("h", spam) == "ham"  # two labels: the first letter too
    assert parse_clarification("yes", "spam", spam) == "spam"
    assert parse_clarification("no", "spam", spam) == "ham"
    assert parse_clarification("bad", "spam", spam) is None  # sentiment words need polarity labels
    assert choice_hint(spam) == "ham/spam"


# --- multiple choice: more than two labels ----------------------------------------------------


def test_the_choices_are_numbered_in_label_order():
    assert numbered_choices(THREE) == "1) negative 2) neutral 3) positive"
    assert numbered_choices(THREE, none=True) == "1) negative 2) neutral 3) positive x) none of these"
    assert choice_hint(THREE) == numbered_choices(THREE)
    assert choice_hint(MOVIE_LABELS) == "negative/positive"  # two labels: as before
    assert choice_hint(MOVIE_LABELS, none=True) == "negative/positive/neither"


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("1", "negative"),
        ("2", "neutral"),
        (" 3 ", "positive"),
        ("2)", "neutral"),
        ("3.", "positive"),
        ("neutral", "neutral"),
        ("NEUTRAL", "neutral"),
        ("Positive", "positive"),
        ("positive!", "positive"),
        ("neu", "neutral"),  # aliases (LabelSet.find)
        ("neg", "negative"),
        ("fresh", "positive"),
        ("rotten", "negative"),
    ],
)
def test_multiple_choice_accepts_a_number_or_a_label(answer, label):
    assert read_choice(answer, THREE).label == label
    assert read_choice(answer, THREE).kind == "label"


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ("0", "unclear"),  # out of range
        ("4", "unclear"),
        ("", "unclear"),
        ("y", "unclear"),  # not a y/n question
        ("yes", "unclear"),
        ("neutral or positive", "unclear"),
        ("it was good", "unclear"),  # free text is asked again, not guessed
        ("I don't know", "unsure"),
        ("maybe", "unsure"),
        ("quit", "quit"),
        ("Q", "quit"),
    ],
)
def test_multiple_choice_bad_answers_are_not_labels(answer, kind):
    reading = read_choice(answer, THREE)
    assert (reading.kind, reading.label) == (kind, None)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("2", "neutral"),
        ("neutral", "neutral"),
        ("Neu", "neutral"),
        ("p", None),  # first letters only with two labels ("n" would be ambiguous here)
        ("n", None),
        ("5", None),
        ("quit", None),
    ],
)
def test_forced_choice_with_three_labels(answer, expected):
    assert parse_choice(answer, THREE) == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("neutral", "neutral"),  # a label here, not "neither"
        ("2", "neutral"),
        ("positive", "positive"),
        ("x", NEITHER),
        ("none", NEITHER),
        ("none of these", NEITHER),
        ("neither", NEITHER),
        ("not a review", NEITHER),
        ("not positive", None),
        ("hmm", None),
    ],
)
def test_identity_with_three_labels(answer, expected):
    assert parse_identity(answer, THREE) == expected
