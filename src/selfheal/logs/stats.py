"""``selfheal stats``: fallback analytics from ``logs/app.jsonl``, as text.

Corrupt or partial lines are skipped and counted, never fatal. A request logged twice (escalated,
``pending_review`` first, then ``human_review``) counts once, with its latest record, at the
position and time of its first record. Any label set: the labels are the ones the log holds
(the model's probabilities name them), in the model's order.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from selfheal.config import Config
from selfheal.data import DataError
from selfheal.logs.decisions import JSONL_NAME
from selfheal.logs.jsonl import read_lines
from selfheal.vocabulary import OUTCOME_OF, OUTCOMES, VIAS

CSV_FIELDS = ("timestamp", "request_id", "confidence", "status", "via")
SPARK = "▁▂▃▄▅▆▇█"
BAR_WIDTH = 30
UNKNOWN = "unknown"  # a status or via the log does not spell as the vocabulary does
NO_LABEL = "(no label)"  # pending review, or a person said it is none of the labels


@dataclass(frozen=True)
class Request:
    """One logged request, reduced to what the analytics need."""

    timestamp: str
    request_id: str
    confidence: float
    status: str
    via: str
    label: str | None = None  # the final label
    labels: tuple[str, ...] = ()  # the model's labels, in its order (the keys of its probabilities)
    predicted: str | None = None  # the model's own label (a person may have confirmed or corrected it)


@dataclass
class LogStats:
    """The requests of a log and how many lines were skipped."""

    path: Path
    lines: int = 0
    skipped: int = 0
    superseded: int = 0
    requests: list[Request] = field(default_factory=list)


def _status(check: dict[str, Any]) -> str:
    """The fallback outcome of a logged check: its route or status word, mapped by
    :data:`~selfheal.vocabulary.OUTCOME_OF` (routes, statuses and older logs' words)."""
    for key in ("route", "status"):
        value = OUTCOME_OF.get(str(check.get(key, "")).lower())
        if value:
            return value
    return UNKNOWN


def _parse(record: dict[str, Any]) -> Request | None:
    """A :class:`Request` from a log record, or ``None`` when required fields are missing or of
    the wrong type (valid JSON but not a decision record: skipped and counted, never fatal)."""
    inference, check, final = (record.get(k) for k in ("inference", "confidence_check", "final_decision"))
    if not isinstance(inference, dict) or not isinstance(record.get("request_id"), str):
        return None
    if not isinstance(check, dict | None) or not isinstance(final, dict | None):
        return None
    try:
        confidence = float(inference["confidence"])
    except (KeyError, TypeError, ValueError):
        return None
    if not 0.0 <= confidence <= 1.0:  # also rejects NaN
        return None
    request_id = record["request_id"]
    check = check or {}
    via = (final or {}).get("via") or UNKNOWN
    label = (final or {}).get("label")
    probs = inference.get("probs")
    names = tuple(str(k) for k in probs) if isinstance(probs, dict) else ()
    predicted = inference.get("label")
    return Request(
        str(record.get("timestamp", "")),
        request_id,
        confidence,
        _status(check),
        str(via),
        None if label is None else str(label),
        names,
        None if predicted is None else str(predicted),
    )


def default_log(config: Config) -> Path:
    """The decision log the graph writes: ``<paths.log_dir>/app.jsonl``."""
    return Path(config.paths.log_dir) / JSONL_NAME


def read_log(path: Path) -> LogStats:
    """Read ``app.jsonl``; raises ``FileNotFoundError`` (one clear line) when it is missing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"log file {path} does not exist: nothing has been classified yet "
            "(run 'selfheal run' or 'selfheal classify', or pass --log FILE)"
        )
    if path.is_dir():
        raise DataError(f"log path {path} is a directory, not a JSONL file")
    stats = LogStats(path)
    latest: dict[str, Request] = {}
    try:
        for _, record in read_lines(path):
            stats.lines += 1
            request = _parse(record) if record is not None else None
            if request is None:
                stats.skipped += 1
                continue
            first = latest.get(request.request_id)
            if first is not None:
                stats.superseded += 1
                request = replace(request, timestamp=first.timestamp)
            latest[request.request_id] = request  # dict keeps the first-seen position
    except OSError as exc:
        raise DataError(f"cannot read log file {path}: {exc.strerror}") from None
    stats.requests = list(latest.values())
    return stats


def _bar(count: int, total: int, width: int = BAR_WIDTH) -> str:
    filled = round(width * count / total) if total else 0
    return "█" * filled + "·" * (width - filled)


def _histogram(title: str, counts: dict[str, int]) -> list[str]:
    total = sum(counts.values())
    pad = max(len(k) for k in counts)
    lines = [title]
    for key, n in counts.items():
        share = n / total if total else 0.0
        lines.append(f"  {key:<{pad}}  {_bar(n, total)} {n:>6}  {100 * share:5.1f}%")
    return lines


def confidence_floor(k: int, width: float = 0.05) -> float:
    """The lowest confidence ``k`` labels allow (``1 / k``: the top probability is never lower),
    rounded down to a multiple of ``width``: 0.5 for two labels."""
    return round(math.floor(1 / max(k, 2) / width + 1e-9) * width, 6)


def confidence_bins(values: list[float], width: float = 0.05, floor: float = 0.5) -> dict[str, int]:
    """Counts of confidences in bins of ``width`` from ``floor`` (or 0 if any is lower) to 1.0."""
    low = floor if all(v >= floor for v in values) else 0.0
    n_bins = round((1.0 - low) / width)
    counts = [0] * n_bins
    for v in values:
        counts[min(int((v - low) / width + 1e-9), n_bins - 1)] += 1
    labels = [
        f"[{low + i * width:.2f}, {low + (i + 1) * width:.2f}{']' if i == n_bins - 1 else ')'}"
        for i in range(n_bins)
    ]
    return dict(zip(labels, counts, strict=True))


def sparkline(values: list[float], low: float = 0.5, high: float = 1.0) -> str:
    """One character per value, from ``▁`` (at or below ``low``) to ``█`` (``high``)."""
    span = high - low
    return "".join(SPARK[min(len(SPARK) - 1, max(0, int((v - low) / span * len(SPARK))))] for v in values)


def label_counts(requests: list[Request]) -> dict[str, int]:
    """Requests per final label: the model's labels in its order (from the logged probabilities),
    then any other label the log holds, then :data:`NO_LABEL` when some have none."""
    names: dict[str, None] = {}
    for r in requests:
        names.update(dict.fromkeys(r.labels))
    names.update(dict.fromkeys(r.label for r in requests if r.label is not None))
    counts = {name: sum(r.label == name for r in requests) for name in names}
    unlabelled = sum(r.label is None for r in requests)
    if unlabelled:
        counts[NO_LABEL] = unlabelled
    return counts


def trend(stats: LogStats, last: int) -> list[Request]:
    """The last ``last`` requests (all of them for 0)."""
    return stats.requests[-last:] if last > 0 else list(stats.requests)


def render(stats: LogStats, last: int) -> str:
    """The text report of ``selfheal stats``."""
    reqs = stats.requests
    head = f"{stats.path}: {len(reqs)} request(s) from {stats.lines} line(s)"
    notes = []
    if stats.skipped:
        notes.append(f"{stats.skipped} corrupt or incomplete line(s) skipped")
    if stats.superseded:
        notes.append(f"{stats.superseded} earlier record(s) of reviewed requests superseded")
    lines = [head + (f" ({'; '.join(notes)})" if notes else "")]
    if not reqs:
        lines.append("no requests logged yet: nothing to report")
        return "\n".join(lines)
    status_counts = {s: sum(r.status == s for r in reqs) for s in OUTCOMES}
    if any(r.status not in OUTCOMES for r in reqs):
        status_counts[UNKNOWN] = sum(r.status not in OUTCOMES for r in reqs)
    vias = {v: sum(r.via == v for r in reqs) for v in VIAS}
    for other in sorted({r.via for r in reqs} - set(VIAS)):
        vias[other] = sum(r.via == other for r in reqs)
    conf = [r.confidence for r in reqs]
    floor = confidence_floor(max((len(r.labels) for r in reqs), default=2))
    lines += ["", *_histogram("Fallback frequency (confidence check):", status_counts)]
    lines += ["", *_histogram("Final decision via:", vias)]
    lines += ["", *_histogram("Final label:", label_counts(reqs))]
    lines += ["", *_histogram("Confidence histogram:", confidence_bins(conf, floor=floor))]
    recent = trend(stats, last)
    mean_all = sum(conf) / len(conf)
    mean_recent = sum(r.confidence for r in recent) / len(recent)
    lines += [
        "",
        f"Confidence trend, last {len(recent)} request(s): mean {mean_recent:.3f} (all: {mean_all:.3f})",
        f"  {sparkline([r.confidence for r in recent], low=floor)}",
        "",
        f"  {'timestamp':<29} {'request_id':<36} {'conf':>5}  {'status':<8} via",
    ]
    lines += [
        f"  {r.timestamp:<29} {r.request_id:<36} {r.confidence:5.3f}  {r.status:<8} {r.via}" for r in recent
    ]
    return "\n".join(lines)


def write_trend_csv(rows: list[Request], path: Path) -> Path:
    """Write ``timestamp, request_id, confidence, status, via`` rows to ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(CSV_FIELDS)
            writer.writerows(
                [r.timestamp, r.request_id, f"{r.confidence:.6f}", r.status, r.via] for r in rows
            )
    except OSError as exc:
        raise DataError(f"cannot write {path}: {exc.strerror}") from None
    return path
