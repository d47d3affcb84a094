"""Turning what a person types into a label, without guessing.

Two kinds of answers:

* to the clarifying question "Was this a negative review? (y/n)": yes/no, a label name, a
  sentiment word, or free text such as "No, it was positive." (see :func:`read_clarification`);
* to the forced choice of a human review: a label name, an alias, its first letter or its number.

An answer that does not settle the question is never turned into a label: "I don't know",
"maybe", "skip" are *unsure*; "yes and no", "yes, it was positive" (to "was it negative?") are
*unclear*; both are asked again by the caller. "quit" asks to stop and leave the question for
``selfheal review``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from selfheal.labels import LABELS, label_id, other_label

YES = frozenset(
    {"y", "yes", "yeah", "yea", "yep", "yup", "sure", "correct", "right", "true", "affirmative", "ok", "okay"}
)
# Words that mean "yes" on their own but only stress the rest of a longer answer
# ("No, it was definitely negative" is a no).
INTENSIFIERS = frozenset({"definitely", "absolutely", "certainly", "indeed", "exactly", "totally"})
NO = frozenset({"n", "no", "nope", "nah", "not", "wrong", "false", "incorrect", "never"})
QUIT = frozenset({"q", "quit", "exit", ":q"})
# Sentiment words that name a label like its name does ("bad" = Negative; "not bad" = Positive).
SENTIMENT_WORDS: dict[str, str] = {
    **dict.fromkeys(
        ("bad", "awful", "terrible", "horrible", "boring", "dull", "poor", "hated", "disliked", "negatively"),
        "Negative",
    ),
    **dict.fromkeys(
        ("good", "great", "excellent", "liked", "loved", "enjoyed", "positively", "favourable"),
        "Positive",
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


def _label_name(word: str) -> str | None:
    """The label ``word`` names (a label name or alias such as ``neg``, ``fresh``)."""
    if not word.isalpha() or len(word) < 3:  # "0"/"1" and "n"/"p" are not label names here
        return None
    try:
        return LABELS[label_id(word)]
    except ValueError:
        return None


def _label_of_word(word: str) -> str | None:
    """The label ``word`` names or means ("bad" means Negative)."""
    return _label_name(word) or SENTIMENT_WORDS.get(word)


def read_clarification(answer: str, asked: str) -> Reading:
    """What ``answer`` means to "Was this a ``asked`` review?".

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
        label = _label_of_word(word)
        if label is None:
            continue
        before = [j for j in range(max(0, i - 2), i) if _is_negator(words[j]) and j not in used]
        used.update(before)
        named.add(other_label(label) if len(before) % 2 else label)
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
        by_yes_no = asked if said_yes else other_label(asked)
    if named:
        label = next(iter(named))
        if by_yes_no is not None and by_yes_no != label:
            return Reading("unclear")  # "yes, it was positive" to "was it negative?"
        return Reading("label", label)
    if by_yes_no is None:
        return Reading("unclear")
    return Reading("label", by_yes_no)


def parse_clarification(answer: str, asked: str) -> str | None:
    """The label meant by ``answer`` to "Was this a ``asked`` review?", or ``None`` if it does not say."""
    return read_clarification(answer, asked).label


def parse_choice(answer: str) -> str | None:
    """The label chosen by ``answer`` in a forced choice (name, alias, first letter or 1-based number)."""
    key = answer.strip().lower()
    if not key:
        return None
    if key.isdigit():
        index = int(key) - 1
        return LABELS[index] if 0 <= index < len(LABELS) else None
    for label in LABELS:
        if key == label.lower()[0]:
            return label
    return _label_name(key)


def choice_hint() -> str:
    """How to answer a forced choice, e.g. ``negative/positive``."""
    return "/".join(label.lower() for label in LABELS)


# --- "Was this a positive review, a negative review, or neither?" (an unknowable input) -------

NEITHER = "neither"
_NEITHER_WORDS = frozenset({"x", "neither", "none", "neutral"})
_NEITHER_PHRASES = ("not a review", "no review", "not review", "isn't a review", "is not a review")


def parse_identity(answer: str) -> str | None:
    """What ``answer`` says an unknowable input is: a label, :data:`NEITHER`, or ``None`` if unclear.

    ``p`` / ``n`` / ``x``, a label name or alias, "neither", "none", "not a review"; a label that is
    negated ("not positive") or both labels at once are unclear.
    """
    text = " ".join(answer.lower().split())
    if not text:
        return None
    words = _WORD.findall(text)
    if any(phrase in text for phrase in _NEITHER_PHRASES) or any(w in _NEITHER_WORDS for w in words):
        return NEITHER  # "neither", "x", "neither positive nor negative", "not a review"
    if len(words) == 1 and words[0] in {"p", "n"}:
        return LABELS[label_id("positive" if words[0] == "p" else "negative")]
    meanings: set[str] = set()
    for i, word in enumerate(words):
        label = _label_of_word(word)
        if label is not None:
            if any(_is_negator(w) for w in words[max(0, i - 2) : i]):
                return None  # "not positive" does not say what it is
            meanings.add(label)
    return meanings.pop() if len(meanings) == 1 else None
