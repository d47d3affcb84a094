"""Examples labelled by people (clarifications, reviews), kept for retraining.

Each answered clarification or review appends one JSON line
``{text, label, request_id, timestamp, source}`` to ``data/clarified/clarified.jsonl``.
Reading de-duplicates by text: the latest answer for a text wins.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from selfheal.data import DataError, clean_text
from selfheal.logs.jsonl import Appended, append_line, read_lines

logger = logging.getLogger(__name__)


def append_clarified(path: Path, text: str, label: str, request_id: str, source: str) -> Appended:
    """Append one clarified example (one whole line or nothing; see :func:`append_line`)."""
    record = {
        "text": text,
        "label": label,
        "request_id": request_id,
        "timestamp": datetime.now().astimezone().isoformat(),
        "source": source,
    }
    return append_line(Path(path), record)


def load_clarified(path: Path) -> list[tuple[str, str]]:
    """``(text, label name)`` pairs, de-duplicated by cleaned text, later answers winning (training
    maps the names to its data's label set, :func:`selfheal.data.add_examples_to_train`).

    Lines that are not valid records (a damaged tail from a crash, a record without a label) are
    skipped with one warning giving their count; a missing file gives an empty list.
    """
    path = Path(path)
    if not path.exists():
        return []
    latest: dict[str, str] = {}
    skipped = 0
    try:
        for _, record in read_lines(path):
            try:
                if record is None:
                    raise ValueError("not a JSON object")
                text = clean_text(str(record["text"]))
                raw = record["label"]
                if not isinstance(raw, str | int) or isinstance(raw, bool) or not str(raw).strip():
                    raise ValueError("no label")
                label = str(raw).strip()
            except (KeyError, TypeError, ValueError):
                skipped += 1
                continue
            if text:
                latest.pop(text, None)  # re-insert so order follows the latest answer
                latest[text] = label
    except OSError as exc:
        raise DataError(f"cannot read clarified examples {path}: {exc.strerror or exc}") from None
    if skipped:
        logger.warning("skipped %d invalid line(s) in %s", skipped, path)
    return list(latest.items())
