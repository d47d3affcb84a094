"""Input texts: cleaning, the length limit, and reading one text per line from a file or stdin.

Policy (the same for ``run``, ``classify`` and the graph):

* control characters are stripped and runs of white space collapsed (:func:`selfheal.data.clean_text`);
* an empty or whitespace-only text is not a request: ``run`` asks again, ``classify`` skips it,
  and the model is never called;
* a text longer than ``input.max_chars`` characters is cut there; the model itself reads at most
  ``data.max_length`` tokens; either cut is recorded as ``input_truncated`` in the log record;
* a file (or stdin) with bytes that are not UTF-8 is rejected with an error naming the line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from selfheal.data import clean_text


class InputError(ValueError):
    """An input text or input file cannot be used (shown as a one-line error)."""


@dataclass(frozen=True)
class CleanText:
    """A cleaned input: the text sent to the model, its cleaned length and whether it was cut."""

    text: str
    chars: int
    cut: bool


def prepare_text(raw: str, max_chars: int) -> CleanText:
    """Clean ``raw`` and cut it to ``max_chars`` characters (``text`` is empty if nothing is left)."""
    text = clean_text(raw)
    if len(text) <= max_chars:
        return CleanText(text, len(text), False)
    return CleanText(text[:max_chars].rstrip(), len(text), True)


def decode_lines(lines: Iterable[bytes], source: str) -> list[tuple[int, str]]:
    """``(line number, text)`` of every non-blank line; non-UTF-8 bytes raise :class:`InputError`."""
    out = []
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{source}: line {number} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                f"{exc.start + 1}); convert the file to UTF-8"
            ) from None
        if number == 1:
            line = line.removeprefix("\ufeff")
        if line.strip():
            out.append((number, line))
    return out
