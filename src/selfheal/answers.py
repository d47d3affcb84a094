"""Turning what a person types into a label.

Two kinds of answers:

* to the clarifying question "Was this a negative review? (y/n)": yes/no, a label name, or free
  text such as "Yes, it was definitely negative." (a named label wins over yes/no; "not negative"
  names the other label);
* to the forced choice of a human review: a label name, an alias, its first letter or its number.

Anything else is unclear (``None``) and is asked again by the caller.
"""

from __future__ import annotations

import re

from selfheal.labels import LABELS, label_id, other_label

YES = frozenset(
    {"y", "yes", "yeah", "yea", "yep", "yup", "sure", "correct", "right", "true", "indeed", "exactly"}
    | {"absolutely", "affirmative", "ok", "okay", "definitely", "certainly"}
)
NO = frozenset({"n", "no", "nope", "nah", "not", "wrong", "false", "incorrect", "never"})
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def _is_negator(word: str) -> bool:
    return word in {"not", "never"} or word.endswith("n't")


def _label_of_word(word: str) -> str | None:
    if not word.isalpha() or len(word) < 3:  # "0"/"1" and "n"/"p" are not label names here
        return None
    try:
        return LABELS[label_id(word)]
    except ValueError:
        return None


def parse_clarification(answer: str, asked: str) -> str | None:
    """The label meant by ``answer`` to "Was this a ``asked`` review?", or ``None`` if unclear."""
    words = _WORD.findall(answer.lower())
    named: set[str] = set()
    for i, word in enumerate(words):
        label = _label_of_word(word)
        if label is None:
            continue
        negated = any(_is_negator(w) for w in words[max(0, i - 2) : i])
        named.add(other_label(label) if negated else label)
    if named:
        return named.pop() if len(named) == 1 else None
    yes = any(w in YES for w in words)
    no = any(w in NO or _is_negator(w) for w in words)
    if yes == no:
        return None
    return asked if yes else other_label(asked)


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
    return _label_of_word(key)


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
