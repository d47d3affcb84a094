"""Append-only JSON Lines files that stay valid with several writers, crashes and Ctrl-C."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` as one complete line with a single ``write`` on an ``O_APPEND`` fd.

    POSIX appends of one ``write`` call land whole at the end of the file, so concurrent
    processes never interleave parts of lines, and a crash leaves earlier lines intact.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
        while written < len(data):  # only on exotic file systems; keep the line whole
            written += os.write(fd, data[written:])
        os.fsync(fd)
    finally:
        os.close(fd)


def read_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """Yield ``(line_number, record)``; ``record`` is ``None`` for a corrupt or partial line."""
    with Path(path).open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                yield number, None
                continue
            yield number, record if isinstance(record, dict) else None
