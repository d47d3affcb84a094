"""Examples labelled by people (clarifications, reviews), kept for retraining.

Each answered clarification or review appends one JSON line
``{text, label, request_id, timestamp, source}`` to ``data/clarified/clarified.jsonl``.
Reading de-duplicates by text: the latest answer for a text wins.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from selfheal.data import clean_text
from selfheal.jsonl import append_line
from selfheal.labels import label_id


def append_clarified(path: Path, text: str, label: str, request_id: str, source: str) -> None:
    """Append one clarified example (one atomic line append)."""
    record = {
        "text": text,
        "label": label,
        "request_id": request_id,
        "timestamp": datetime.now().astimezone().isoformat(),
        "source": source,
    }
    append_line(Path(path), record)


def load_clarified(path: Path) -> list[tuple[str, int]]:
    """``(text, label_id)`` pairs, de-duplicated by cleaned text, later answers winning.

    Lines that are not valid records are skipped; a missing file gives an empty list.
    """
    path = Path(path)
    if not path.exists():
        return []
    latest: dict[str, int] = {}
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                record = json.loads(line)
                text = clean_text(str(record["text"]))
                label = label_id(record["label"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
            if text:
                latest.pop(text, None)  # re-insert so order follows the latest answer
                latest[text] = label
    return list(latest.items())
