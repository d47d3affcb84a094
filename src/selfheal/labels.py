"""The one label mapping used everywhere: index <-> name."""

from __future__ import annotations

LABELS: tuple[str, ...] = ("Negative", "Positive")
ID2LABEL: dict[int, str] = dict(enumerate(LABELS))
LABEL2ID: dict[str, int] = {name: i for i, name in ID2LABEL.items()}

# Names accepted in data files and user answers, mapped to label ids.
_ALIASES: dict[str, int] = {
    "negative": 0,
    "neg": 0,
    "rotten": 0,
    "0": 0,
    "positive": 1,
    "pos": 1,
    "fresh": 1,
    "1": 1,
}


def label_id(value: object) -> int:
    """Map a label given as id, name or alias (``fresh``/``rotten``) to its id.

    Raises ``ValueError`` for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"unknown label {value!r}")
    if isinstance(value, int) and value in ID2LABEL:
        return value
    if isinstance(value, float) and value.is_integer() and int(value) in ID2LABEL:
        return int(value)
    key = str(value).strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    raise ValueError(f"unknown label {value!r} (expected one of {', '.join(LABELS)})")


def other_label(label: str) -> str:
    """The most likely alternative to ``label`` (with two classes: the other one)."""
    return LABELS[1 - LABEL2ID[label]]
