"""Label sets: the names a checkpoint predicts, read from its data, never from a constant.

A :class:`LabelSet` maps label ids to names and back, reads labels the way data files and people
write them (an id, a name in any case, or a common alias such as ``fresh``/``rotten``), and says
whether the labels are a sentiment polarity (for the VADER backup).
``MOVIE_LABELS`` is the binary set of the shipped movie-review model, and the set assumed for a
checkpoint that does not store its labels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

# Common spellings of sentiment labels, mapped to the canonical (lower-case) name they mean.
_ALIASES: dict[str, str] = {
    "neg": "negative",
    "rotten": "negative",
    "pos": "positive",
    "fresh": "positive",
    "neu": "neutral",
    "neut": "neutral",
}
POLARITIES: tuple[str, ...] = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class LabelSet:
    """An ordered set of two or more label names; the index of a name is its label id."""

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        names = tuple(str(n).strip() for n in self.names)
        if len(names) < 2:
            raise ValueError(f"a label set needs at least 2 labels, got {list(names)}")
        if any(not n for n in names):
            raise ValueError("a label name cannot be empty")
        folded = [n.casefold() for n in names]
        if len(set(folded)) != len(folded):
            raise ValueError(f"label names must differ (ignoring case): {list(names)}")
        object.__setattr__(self, "names", names)

    @classmethod
    def of(cls, names: Sequence[str]) -> LabelSet:
        """A label set from a list of names (e.g. the ``labels`` of a checkpoint's metadata)."""
        return cls(tuple(names))

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __getitem__(self, index: int) -> str:
        return self.names[index]

    @property
    def binary(self) -> bool:
        """Two labels: clarification is a y/n question about the other label."""
        return len(self.names) == 2

    @property
    def id2label(self) -> dict[int, str]:
        """``{0: name, 1: name, ...}`` (Transformers' config convention)."""
        return dict(enumerate(self.names))

    @property
    def label2id(self) -> dict[str, int]:
        """``{name: id}``."""
        return {name: i for i, name in enumerate(self.names)}

    def find(self, value: str) -> str | None:
        """The label ``value`` names (any case, or an alias), or ``None``."""
        key = str(value).strip().casefold()
        key = _ALIASES.get(key, key)
        for name in self.names:
            if name.casefold() == key:
                return name
        return None

    def id(self, value: object) -> int:
        """Map a label given as id (``0``, ``"1"``), name or alias to its id; ``ValueError`` else."""
        if isinstance(value, bool):
            raise ValueError(f"unknown label {value!r}")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int):
            if 0 <= value < len(self.names):
                return value
            raise ValueError(f"unknown label {value!r} (expected one of {', '.join(self.names)})")
        text = str(value).strip()
        if text.isdigit() and self.find(text) is None and int(text) < len(self.names):
            return int(text)
        name = self.find(text)
        if name is None:
            raise ValueError(f"unknown label {value!r} (expected one of {', '.join(self.names)})")
        return self.names.index(name)

    def other(self, label: str) -> str:
        """With two labels, the one that is not ``label``."""
        if not self.binary:
            raise ValueError("other() needs a binary label set")
        return self.names[1 - self.names.index(label)]

    def polarity(self) -> dict[str, str] | None:
        """``{label: negative | neutral | positive}`` when every label is a sentiment polarity
        (so VADER can vote), else ``None``."""
        mapping: dict[str, str] = {}
        for name in self.names:
            key = _ALIASES.get(name.casefold(), name.casefold())
            if key not in POLARITIES:
                return None
            mapping[name] = key
        return mapping if "negative" in mapping.values() and "positive" in mapping.values() else None


MOVIE_LABELS = LabelSet(("Negative", "Positive"))
