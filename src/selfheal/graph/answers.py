"""Turning what a person types into a label, without guessing.

Every function takes the request's :class:`~selfheal.labels.LabelSet` (from the checkpoint, via
``Services.labels``). The kinds of answers:

* to the clarifying question. With two labels it is a y/n question, "Was this a negative
  review? (y/n)": yes/no, a label name, a sentiment word, or free text such as "No, it was
  positive." (:func:`read_clarification`). With more labels it is multiple choice,
  ``1) negative 2) neutral 3) positive``: the number or the name of a label (any case, or an
  alias such as ``neu``) (:func:`read_choice`);
* to the forced choice of a human review: a label's name, alias or number; with two labels
  also its first letter (:func:`parse_choice`);
* to "what is this?" about an input the model cannot know: a label, or "neither" / "none of
  these" (:func:`parse_identity`).

An answer that does not settle the question is never turned into a label: "I don't know",
"maybe", "skip" are *unsure*; "yes and no", "yes, it was positive" (to "was it negative?"), a
number out of range are *unclear*; both are asked again by the caller. "quit" asks to stop and
leave the question for ``selfheal review``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from selfheal.labels import LabelSet

YES = frozenset(
    {"y", "yes", "yeah", "yea", "yep", "yup", "sure", "correct", "right", "true", "affirmative", "ok", "okay"}
)
# Words that mean "yes" on their own but only stress the rest of a longer answer
# ("No, it was definitely negative" is a no).
INTENSIFIERS = frozenset({"definitely", "absolutely", "certainly", "indeed", "exactly", "totally"})
NO = frozenset({"n", "no", "nope", "nah", "not", "wrong", "false", "incorrect", "never"})
QUIT = frozenset({"q", "quit", "exit", ":q"})
# Sentiment words that name a polarity like a label's name does ("bad" = negative; "not bad" =
# positive). They count only for labels that are sentiment polarities (LabelSet.polarity()).
SENTIMENT_WORDS: dict[str, str] = {
    **dict.fromkeys(
        ("bad", "awful", "terrible", "horrible", "boring", "dull", "poor", "hated", "disliked", "negatively"),
        "negative",
    ),
    **dict.fromkeys(
        ("good", "great", "excellent", "liked", "loved", "enjoyed", "positively", "favourable"),
        "positive",
    ),
}
# Answers that say the person does not know (checked before yes/no: "not sure" is not "no").
_UNSURE = re.compile(
    r"\b(?:(?:don'?t|do\s+not|dont)\s+know|dunno|idk|no\s+idea|no\s+clue|not\s+(?:really\s+)?(?:sure|certain)|"
    r"unsure|uncertain|maybe|perhaps|skip|pass|(?:can'?t|cannot|can\s+not)\s+(?:say|tell)|"
    r"hard\s+to\s+(?:say|tell)|who\s+knows|neither|both|mixed)\b"
)
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")

Kind = Literal["label", "unsure", "unclear", "quit"]


@dataclass(frozen=True)
class Reading:
    """What an answer to the clarifying question means: a label, unsure, unclear or quit."""

    kind: Kind
    label: str | None = None


def is_quit(answer: str) -> bool:
    """Whether ``answer`` asks to stop (``quit``, ``exit``, ``q``)."""
    return answer.strip().lower() in QUIT


def is_unsure(answer: str) -> bool:
    """Whether ``answer`` says the person does not know ("I don't know", "maybe", "skip"...)."""
    return bool(_UNSURE.search(answer.lower().replace("\u2019", "'")))


def _is_negator(word: str) -> bool:
    return word in {"not", "never"} or word.endswith("n't")


def _label_name(word: str, labels: LabelSet) -> str | None:
    """The label ``word`` names (a label name or alias such as ``neg``, ``fresh``)."""
    if not word.isalpha() or len(word) < 3:  # "0"/"1" and "n"/"p" are not label names here
        return None
    return labels.find(word)


def _label_of_word(word: str, labels: LabelSet) -> str | None:
    """The label ``word`` names or means ("bad" means the negative label of a polarity set)."""
    named = _label_name(word, labels)
    if named is not None:
        return named
    polarity = SENTIMENT_WORDS.get(word)
    if polarity is None:
        return None
    by_polarity = {pole: name for name, pole in (labels.polarity() or {}).items()}
    return by_polarity.get(polarity)


def _numbered(answer: str, labels: LabelSet) -> str | None:
    """The label numbered ``answer`` (``2``, ``2.``, ``2)``; 1-based), or ``None``."""
    key = answer.strip().rstrip(".)").strip()
    if key.isdigit() and 1 <= int(key) <= len(labels):
        return labels[int(key) - 1]
    return None


# --- the y/n question (two labels) -----------------------------------------------------------


def read_clarification(answer: str, asked: str, labels: LabelSet) -> Reading:
    """What ``answer`` means to "Was this a ``asked`` review?" (a binary ``labels``).

    A named label (or sentiment word) counts, flipped by a negator just before it ("not
    negative", "wasn't bad"); yes/no count for or against ``asked``. The answer is a label only
    when everything it says points the same way; otherwise it is ``unclear``.
    """
    if is_quit(answer):
        return Reading("quit")
    if is_unsure(answer):
        return Reading("unsure")
    words = _WORD.findall(answer.lower().replace("\u2019", "'"))
    named: set[str] = set()
    used: set[int] = set()  # negators consumed by a label word
    for i, word in enumerate(words):
        label = _label_of_word(word, labels)
        if label is None:
            continue
        before = [j for j in range(max(0, i - 2), i) if _is_negator(words[j]) and j not in used]
        used.update(before)
        named.add(labels.other(label) if len(before) % 2 else label)
    said_yes = said_no = False
    for i, word in enumerate(words):
        if i in used:
            continue
        if word in YES and i > 0 and _is_negator(words[i - 1]) and i - 1 not in used:
            used.add(i - 1)  # "not right", "isn't true": a no
            said_no = True
        elif word in YES:
            said_yes = True
    said_no = said_no or any((w in NO or _is_negator(w)) for i, w in enumerate(words) if i not in used)
    if not (said_yes or said_no or named):
        said_yes = any(w in INTENSIFIERS for w in words)  # "definitely" on its own
    if (said_yes and said_no) or len(named) > 1:
        return Reading("unclear")
    by_yes_no = None
    if said_yes or said_no:
        by_yes_no = asked if said_yes else labels.other(asked)
    if named:
        label = next(iter(named))
        if by_yes_no is not None and by_yes_no != label:
            return Reading("unclear")  # "yes, it was positive" to "was it negative?"
        return Reading("label", label)
    if by_yes_no is None:
        return Reading("unclear")
    return Reading("label", by_yes_no)


def parse_clarification(answer: str, asked: str, labels: LabelSet) -> str | None:
    """The label meant by ``answer`` to "Was this a ``asked`` review?", or ``None`` if it does not say."""
    return read_clarification(answer, asked, labels).label


# --- multiple choice (more than two labels) --------------------------------------------------


def numbered_choices(labels: LabelSet, none: bool = False) -> str:
    """``1) negative 2) neutral 3) positive`` (and `` x) none of these`` when ``none``)."""
    text = " ".join(f"{n}) {name.lower()}" for n, name in enumerate(labels, start=1))
    return f"{text} x) none of these" if none else text


def read_choice(answer: str, labels: LabelSet) -> Reading:
    """What ``answer`` means to the multiple-choice question: a label's number or name (any
    case, or an alias), else unsure ("I don't know"), quit, or unclear (asked again)."""
    if is_quit(answer):
        return Reading("quit")
    label = _numbered(answer, labels) or labels.find(answer.strip().rstrip(".!"))
    if label is not None:
        return Reading("label", label)
    return Reading("unsure") if is_unsure(answer) else Reading("unclear")


# --- the forced choice of a review -----------------------------------------------------------


def parse_choice(answer: str, labels: LabelSet) -> str | None:
    """The label chosen by ``answer`` in a forced choice: its 1-based number, name or alias, and
    with two labels also its first letter."""
    key = answer.strip().lower()
    if not key:
        return None
    if key.isdigit():
        return _numbered(key, labels)
    if labels.binary:
        for label in labels:
            if key == label.lower()[0]:
                return label
    return _label_name(key, labels)


def choice_hint(labels: LabelSet, none: bool = False) -> str:
    """How to answer a forced choice: ``negative/positive`` (two labels; ``/neither`` when
    ``none``), else the numbered list (:func:`numbered_choices`)."""
    if labels.binary:
        hint = "/".join(label.lower() for label in labels)
        return f"{hint}/{NEITHER}" if none else hint
    return numbered_choices(labels, none)


# --- "What is this?" about an input the model cannot know ------------------------------------

NEITHER = "neither"
_NEITHER_WORDS = frozenset({"x", "neither", "none", "neutral"})
_NEITHER_PHRASES = ("not a review", "no review", "not review", "isn't a review", "is not a review")


def identity_letters(labels: LabelSet) -> dict[str, str] | None:
    """``{letter: label}`` for a binary ``labels`` whose names start with different letters
    other than ``x`` (the "neither" key), listed last label first (``p``, ``n``); else ``None``."""
    if not labels.binary:
        return None
    letters = {label.lower()[0]: label for label in reversed(labels.names)}
    if len(letters) != 2 or "x" in letters or not all(c.isalpha() for c in letters):
        return None
    return letters


def parse_identity(answer: str, labels: LabelSet) -> str | None:
    """What ``answer`` says an unknowable input is: a label, :data:`NEITHER`, or ``None`` if unclear.

    A label's name, alias or number, its letter (``p`` / ``n``, two labels), "x", "neither",
    "none (of these)", "not a review"; a label that is negated ("not positive") or two labels at
    once are unclear. A word that is a label's name ("neutral" in a negative / neutral / positive
    set) means that label, not "neither".
    """
    text = " ".join(answer.lower().split())
    if not text:
        return None
    whole = labels.find(text.rstrip(".!")) or _numbered(text, labels)
    if whole is not None:
        return whole
    words = _WORD.findall(text)
    neither = {w for w in _NEITHER_WORDS if labels.find(w) is None}
    if any(phrase in text for phrase in _NEITHER_PHRASES) or any(w in neither for w in words):
        return NEITHER  # "neither", "x", "none of these", "neither positive nor negative", "not a review"
    letters = identity_letters(labels)
    if letters and len(words) == 1 and words[0] in letters:
        return letters[words[0]]
    meanings: set[str] = set()
    for i, word in enumerate(words):
        label = _label_of_word(word, labels)
        if label is not None:
            if any(_is_negator(w) for w in words[max(0, i - 2) : i]):
                return None  # "not positive" does not say what it is
            meanings.add(label)
    return meanings.pop() if len(meanings) == 1 else None
