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

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

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


def decode_line(raw: bytes, number: int, source: str) -> str | None:
    """The text of line ``number`` (``None`` if blank); non-UTF-8 bytes raise :class:`InputError`."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{source}: line {number} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column "
            f"{exc.start + 1}); convert the file to UTF-8"
        ) from None
    if number == 1:
        line = line.removeprefix("\ufeff")
    return line if line.strip() else None


def decode_lines(lines: Iterable[bytes], source: str) -> list[tuple[int, str]]:
    """``(line number, text)`` of every non-blank line; non-UTF-8 bytes raise :class:`InputError`."""
    out = []
    for number, raw in enumerate(lines, start=1):
        line = decode_line(raw, number, source)
        if line is not None:
            out.append((number, line))
    return out


def _ready(fd: int) -> bool:
    """Whether reading ``fd`` would return at once (data or end of input) rather than wait."""
    import select

    try:
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def chunk_sizes(largest: int, first: int | None = None) -> Iterator[int]:
    """Chunk sizes that start at ``first`` (default: ``largest``) and double up to ``largest``:
    the first results of a long input come after a small batch, the rest in large ones."""
    size = max(1, min(first or largest, largest))
    while True:
        yield size
        size = min(2 * size, largest)


def raw_line_chunks(stream: BinaryIO, size: int | Iterable[int]) -> Iterator[list[bytes]]:
    """The lines of ``stream`` (each with its newline), in lists of at most ``size`` (a number,
    or the sizes of successive lists, e.g. :func:`chunk_sizes`).

    Nothing is read ahead beyond one block: a list ends at its size, or earlier when the
    input has no more bytes ready (a pipe whose writer has not written more yet), so a caller
    that handles each list as it comes answers a line typed into stdin before the input ends,
    and memory stays flat on a file of any length.
    """
    sizes: Iterator[int] = iter(()) if isinstance(size, int) else iter(size)
    limit = size if isinstance(size, int) else next(sizes)

    def advance() -> int:
        return next(sizes, limit)

    try:
        fd = stream.fileno()
    except (OSError, AttributeError, ValueError):
        fd = None
    if fd is None:  # no descriptor (an in-memory stream): plain lines, in full lists
        chunk: list[bytes] = []
        for raw in stream:
            chunk.append(raw)
            if len(chunk) >= limit:
                yield chunk
                chunk, limit = [], advance()
        if chunk:
            yield chunk
        return
    import os

    pending: list[bytes] = []
    rest = b""
    while True:
        while len(pending) >= limit:
            yield pending[:limit]
            pending, limit = pending[limit:], advance()
        if pending and not _ready(fd):
            yield pending
            pending, limit = [], advance()
        block = os.read(fd, 1 << 16)
        if not block:
            break
        parts = (rest + block).split(b"\n")
        rest = parts.pop()
        pending.extend(part + b"\n" for part in parts)
    if rest:
        pending.append(rest)
    while pending:
        yield pending[:limit]
        pending, limit = pending[limit:], advance()


def line_chunks(stream: BinaryIO, source: str, size: int | Iterable[int]) -> Iterator[list[tuple[int, str]]]:
    """``(line number, text)`` of the non-blank lines of ``stream``, decoded a list at a time as
    :func:`raw_line_chunks` reads them (a list may be empty: all its lines blank). A line that is
    not UTF-8 raises :class:`InputError` before any line of its list is given out."""
    number = 0
    for raw_lines in raw_line_chunks(stream, size):
        out = []
        for raw in raw_lines:
            number += 1
            line = decode_line(raw, number, source)
            if line is not None:
                out.append((number, line))
        yield out


def check_utf8(stream: BinaryIO, source: str) -> None:
    """Read ``stream`` through once and raise :class:`InputError` at its first line that is not
    UTF-8 (a file is checked whole before anything is classified; constant memory)."""
    for number, raw in enumerate(stream, start=1):
        decode_line(raw, number, source)
