"""The Analytics page's data: ``app.jsonl`` read once per file version, then aggregated.

The log is read by :func:`selfheal.logs.stats.read_log` (the reader of ``selfheal stats``: damaged
lines skipped and counted, a reviewed request counted once with its latest record) into a pandas
table, cached with ``st.cache_data`` under the file's ``(path, size, mtime)``: a rerun (a slider
moved, another page visited) reuses it, and a new decision appended to the log (a new size and
mtime) is read on the next rerun. A small :class:`Overview` of it and the aggregations are cached
too, under the same key (and the page's choices: the time range, N), so a rerun never copies the
whole table out of the cache. Everything but the three cached wrappers (``load``, ``overview``,
``summarise``) is plain pandas, usable without Streamlit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from selfheal.logs.stats import confidence_bins, confidence_floor, read_log
from selfheal.vocabulary import ACCEPT, HUMAN_REVIEW, OUTCOMES, USER_CLARIFICATION, USER_NONE, VIAS

COLUMNS = ("timestamp", "request_id", "confidence", "status", "via", "label", "predicted", "labels")
# Time buckets of the fallback-frequency chart, the finest that gives at most MAX_BUCKETS points.
BUCKETS = ("1min", "5min", "15min", "1h", "6h", "1D", "7D", "30D")
MAX_BUCKETS = 60


@dataclass(frozen=True)
class FileVersion:
    """A log file as it is now: the cache key of what was read from it."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class LogTable:
    """The requests of a log (one row each, in log order) and how its lines were read."""

    path: str
    lines: int
    skipped: int
    superseded: int
    frame: pd.DataFrame


@dataclass(frozen=True)
class Overview:
    """What the page shows of a log before any choice: how its lines were read, its time span."""

    path: str
    lines: int
    skipped: int
    superseded: int
    requests: int
    first: pd.Timestamp | None  # the earliest and latest timestamps (None: none readable)
    last: pd.Timestamp | None


@dataclass
class Summary:
    """Everything the Analytics page shows for one time range and N."""

    requests: int  # in the time range
    status: pd.DataFrame  # outcome, requests, share
    via: pd.DataFrame  # via, requests, share
    over_time: pd.DataFrame  # index: time bucket; fallback share, requests
    bucket: str
    histogram: pd.DataFrame  # confidence bin, requests (last N)
    trend: pd.DataFrame  # request number, confidence, rolling mean (last N)
    clarifications: pd.DataFrame  # who answered, confirmed, corrected, corrected share
    last: int  # the N used (at most the requests in range)


def file_version(path: Path) -> FileVersion | None:
    """The log's current version, or ``None`` when there is no file (nothing classified yet).

    Raises ``IsADirectoryError`` for a directory (the page shows it as one line)."""
    try:
        st_ = os.stat(path)
    except FileNotFoundError:
        return None
    if not os.path.isfile(path):
        raise IsADirectoryError(f"log path {path} is not a regular file")
    return FileVersion(str(path), st_.st_size, st_.st_mtime_ns)


def read_table(path: Path) -> LogTable:
    """Read ``app.jsonl`` into a :class:`LogTable` (no cache)."""
    stats = read_log(Path(path))
    rows = stats.requests
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(
                [r.timestamp for r in rows], utc=True, errors="coerce", format="ISO8601"
            ),
            "request_id": [r.request_id for r in rows],
            "confidence": pd.array([r.confidence for r in rows], dtype="float64"),
            "status": pd.Categorical([r.status for r in rows]),
            "via": pd.Categorical([r.via for r in rows]),
            "label": [r.label for r in rows],
            "predicted": [r.predicted for r in rows],
            "labels": [len(r.labels) for r in rows],
        },
        columns=list(COLUMNS),
    )
    return LogTable(str(path), stats.lines, stats.skipped, stats.superseded, frame)


@st.cache_data(show_spinner="Reading the log...", max_entries=4)
def load(version: FileVersion) -> LogTable:
    """:func:`read_table`, cached per file version (path, size, mtime)."""
    return read_table(Path(version.path))


@st.cache_data(show_spinner=False, max_entries=4)
def overview(version: FileVersion) -> Overview:
    """The log's :class:`Overview`, cached per file version: a rerun does not copy the whole
    table out of the cache (``load`` is read again only when an aggregation is not cached)."""
    table = load(version)
    times = table.frame["timestamp"].dropna()
    first, last = (times.min(), times.max()) if len(times) else (None, None)
    return Overview(table.path, table.lines, table.skipped, table.superseded, len(table.frame), first, last)


def in_range(frame: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame:
    """The requests logged from ``start`` to ``end`` (inclusive; ``None``: open)."""
    keep = pd.Series(True, index=frame.index)
    if start is not None:
        keep &= frame["timestamp"] >= start
    if end is not None:
        keep &= frame["timestamp"] <= end
    return frame[keep]


def _shares(values: pd.Series, order: tuple[str, ...], name: str) -> pd.DataFrame:
    """Counts and shares of ``values`` in the vocabulary's ``order``, then any other spelling."""
    counts = values.astype(str).value_counts()
    keys = list(order) + sorted(set(counts.index) - set(order))
    total = int(counts.sum())
    table = pd.DataFrame({name: keys, "requests": [int(counts.get(k, 0)) for k in keys]})
    table["share"] = table["requests"] / total if total else 0.0
    return table


def status_shares(frame: pd.DataFrame) -> pd.DataFrame:
    """Requests per confidence-check outcome (accept, clarify, escalate, unknowable)."""
    return _shares(frame["status"], (*OUTCOMES,), "outcome")


def via_shares(frame: pd.DataFrame) -> pd.DataFrame:
    """Requests per way the final label was reached (``final_decision.via``)."""
    return _shares(frame["via"], VIAS, "via")


def bucket_for(start: pd.Timestamp, end: pd.Timestamp) -> str:
    """The finest of :data:`BUCKETS` that splits ``start``..``end`` into at most :data:`MAX_BUCKETS`."""
    span = end - start
    for bucket in BUCKETS:
        if span / pd.Timedelta(bucket) <= MAX_BUCKETS:
            return bucket
    return BUCKETS[-1]


def fallback_over_time(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Per time bucket: the share of requests the model did not accept on its own (the fallback
    frequency) and the number of requests; with the bucket's width."""
    timed = frame.dropna(subset=["timestamp"])
    if timed.empty:
        return pd.DataFrame(columns=["fallback share", "requests"]), BUCKETS[0]
    bucket = bucket_for(timed["timestamp"].min(), timed["timestamp"].max())
    fallback = (timed["status"].astype(str) != ACCEPT).astype(float)
    grouped = fallback.groupby(timed["timestamp"].dt.floor(bucket))
    table = pd.DataFrame({"fallback share": grouped.mean(), "requests": grouped.size()})
    table.index = table.index.tz_convert(None)  # the charts read naive UTC times
    table.index.name = "time (UTC)"
    return table, bucket


def histogram(frame: pd.DataFrame) -> pd.DataFrame:
    """Requests per confidence bin (``selfheal stats``'s bins: 0.05 wide from ``1/k``)."""
    k = int(frame["labels"].max()) if len(frame) else 2
    counts = confidence_bins(frame["confidence"].tolist(), floor=confidence_floor(k))
    return pd.DataFrame({"confidence": list(counts), "requests": list(counts.values())})


def trend(frame: pd.DataFrame, window: int = 20) -> pd.DataFrame:
    """Confidence per request (numbered in log order) and its rolling mean over ``window``."""
    conf = frame["confidence"].reset_index(drop=True)
    table = pd.DataFrame(
        {"confidence": conf, f"mean of {window}": conf.rolling(window, min_periods=1).mean()}
    )
    table.index = pd.RangeIndex(1, len(table) + 1, name="request (oldest first)")
    return table


def clarifications(frame: pd.DataFrame) -> pd.DataFrame:
    """How often a person confirmed or corrected the model's label: the user at the clarifying
    question, a reviewer in the queue; and how often the user said "none of the labels"."""
    rows = []
    for via, who in ((USER_CLARIFICATION, "user at the question"), (HUMAN_REVIEW, "reviewer (queue)")):
        answered = frame[frame["via"].astype(str) == via]
        corrected = int((answered["label"] != answered["predicted"]).sum())
        rows.append(
            {
                "answered by": who,
                "answers": len(answered),
                "confirmed": len(answered) - corrected,
                "corrected": corrected,
                "corrected share": corrected / len(answered) if len(answered) else None,
            }
        )
    none = int((frame["via"].astype(str) == USER_NONE).sum())
    rows.append(
        {
            "answered by": "user: none of the labels",
            "answers": none,
            "confirmed": None,
            "corrected": None,
            "corrected share": None,
        }
    )
    return pd.DataFrame(rows)


def summarise_frame(frame: pd.DataFrame, last: int) -> Summary:
    """The page's numbers for the requests of ``frame`` (a time range already applied); the
    histogram and the trend over the last ``last`` of them (0: all)."""
    recent = frame.tail(last) if last > 0 else frame
    over_time, bucket = fallback_over_time(frame)
    return Summary(
        requests=len(frame),
        status=status_shares(frame),
        via=via_shares(frame),
        over_time=over_time,
        bucket=bucket,
        histogram=histogram(recent),
        trend=trend(recent),
        clarifications=clarifications(frame),
        last=len(recent),
    )


@st.cache_data(show_spinner=False, max_entries=32)
def summarise(
    version: FileVersion, start: pd.Timestamp | None, end: pd.Timestamp | None, last: int
) -> Summary:
    """:func:`summarise_frame` over the cached table, cached per file version, range and N."""
    return summarise_frame(in_range(load(version).frame, start, end), last)


__all__ = [
    "FileVersion",
    "LogTable",
    "Overview",
    "Summary",
    "clarifications",
    "fallback_over_time",
    "file_version",
    "histogram",
    "in_range",
    "load",
    "overview",
    "read_table",
    "status_shares",
    "summarise",
    "summarise_frame",
    "trend",
    "via_shares",
]
