"""The checkpoint database of paused requests: checked before use, rebuilt from the log if damaged.

``<log_dir>/graph_checkpoints.sqlite`` holds every paused request (the review queue). If it is
truncated, emptied, replaced by another file or corrupt, SQLite and LangGraph would either fail
with a traceback or (for an empty file) silently create fresh tables: an empty review queue
while ``app.jsonl`` still lists pending requests. :func:`check_checkpoint_db` turns each case into
one :class:`CheckpointError` naming the file and the way out, and cross-checks the queue with
the log: a request whose latest record in ``app.jsonl`` is ``pending_review`` must have a
thread in the database.

:func:`rebuild` (``selfheal review --rebuild``) moves a damaged file aside to
``<name>.damaged-<timestamp>`` and re-creates each pending request of the log as a paused thread
from its logged record: ``update_state(..., as_node=FinalDecisionNode)`` makes the thread look as
if FinalDecisionNode had just logged it, so running it on sends it, as any pending request, into
FallbackNode's subgraph, whose entry routes it straight to its ``await_review`` step (the review
interrupt). No model runs and nothing is written to the log.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from selfheal.config import Config, ConfigError
from selfheal.logs.decisions import JSONL_NAME
from selfheal.vocabulary import HUMAN_REVIEW, PENDING_REVIEW

CHECKPOINT_DB = "graph_checkpoints.sqlite"
SQLITE_HEADER = b"SQLite format 3\x00"
LANGGRAPH_TABLES = frozenset({"checkpoints", "writes"})


class CheckpointError(ConfigError):
    """The checkpoint database is damaged or does not match the log."""


def _recover_hint() -> str:
    return (
        f"run 'selfheal review --rebuild' (it moves the file aside and restores the pending requests "
        f"from {JSONL_NAME})"
    )


def inspect_db(path: Path) -> tuple[str, set[str]]:
    """``(status, thread ids)`` of the database: ``missing``, ``empty`` (0 bytes or no tables) or ``ok``.

    Raises :class:`CheckpointError` for a file that is not SQLite, is corrupt, or holds other tables.
    """
    path = Path(path)
    if not path.exists():
        return "missing", set()
    try:
        with path.open("rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not header:
        return "empty", set()
    if header != SQLITE_HEADER:
        raise CheckpointError(f"{path} is not a SQLite database (damaged or replaced); {_recover_hint()}")
    try:
        conn = sqlite3.connect(str(path), timeout=30.0)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                return "empty", set()
            if not tables >= LANGGRAPH_TABLES:
                raise CheckpointError(
                    f"{path} is a SQLite database without the graph's checkpoint tables (a foreign file?); "
                    f"{_recover_hint()}"
                )
            check = conn.execute("PRAGMA quick_check").fetchone()
            if not check or check[0] != "ok":
                raise CheckpointError(f"{path} is corrupt ({check[0] if check else '?'}); {_recover_hint()}")
            threads = {row[0] for row in conn.execute("SELECT DISTINCT thread_id FROM checkpoints")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise CheckpointError(f"{path} is damaged ({exc}); {_recover_hint()}") from None
    return "ok", threads


def latest_records(log_path: Path, request_ids: set[str]) -> dict[str, dict[str, Any]]:
    """The latest record in ``app.jsonl`` of each of ``request_ids`` that has one."""
    latest: dict[str, dict[str, Any]] = {}
    keys = [rid.encode() for rid in request_ids]
    if not keys or not Path(log_path).is_file():
        return latest
    with Path(log_path).open("rb") as fh:
        for raw in fh:
            if not any(key in raw for key in keys):
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(record, dict) and record.get("request_id") in request_ids:
                latest[record["request_id"]] = record
    return latest


def is_pending(record: dict[str, Any]) -> bool:
    """Whether a log record says its request waits for review."""
    final = record.get("final_decision")
    return isinstance(final, dict) and final.get("via") == PENDING_REVIEW


def pending_in_log(log_path: Path) -> dict[str, dict[str, Any]]:
    """The requests whose latest record in ``app.jsonl`` is pending review, by request id (log order).

    A pending request's only later record is its ``human_review``, so only lines that mention
    either are parsed (this runs before every ``run``, ``classify`` and ``review``).
    """
    pending: dict[str, dict[str, Any]] = {}
    if not Path(log_path).is_file():
        return pending
    with Path(log_path).open("rb") as fh:
        for raw in fh:
            if PENDING_REVIEW.encode() not in raw and HUMAN_REVIEW.encode() not in raw:
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if not isinstance(record, dict) or not isinstance(record.get("request_id"), str):
                continue
            pending.pop(record["request_id"], None)
            if is_pending(record):
                pending[record["request_id"]] = record
    return pending


def check_checkpoint_db(log_dir: Path, path: Path | None = None) -> None:
    """Fail with one clear :class:`CheckpointError` if the queue cannot be trusted (see the module
    doc); ``path``: the SQLite file when it is not ``<log_dir>/graph_checkpoints.sqlite``."""
    log = Path(log_dir) / JSONL_NAME
    path = Path(path) if path is not None else Path(log_dir) / CHECKPOINT_DB
    status, threads = inspect_db(path)
    missing = set(pending_in_log(log)) - threads
    if missing:  # read the log once more: a reviewer may have just answered (and deleted) one
        missing &= set(pending_in_log(log))
    if not missing:
        return
    example = sorted(missing)[0][:8]
    what = {"missing": "is missing", "empty": "is empty"}.get(status, "does not hold them")
    raise CheckpointError(
        f"{log} lists {len(missing)} pending request(s) (e.g. {example}) but {path} {what}: the review "
        f"queue was lost or damaged; run 'selfheal review --rebuild' to restore it from {JSONL_NAME}"
    )


def state_from_record(record: dict[str, Any]) -> dict[str, Any]:
    """The graph state of a pending request, rebuilt from its logged record."""
    check, fallback = record.get("confidence_check") or {}, dict(record.get("fallback") or {})
    if isinstance(fallback.get("user_response"), str):  # older records kept only the last answer
        fallback["user_response"] = [fallback["user_response"]]
    try:
        decided = datetime.fromisoformat(record["timestamp"]).timestamp()
    except (KeyError, TypeError, ValueError):
        decided = time.time()
    inference = dict(record.get("inference") or {})
    return {
        "request_id": record["request_id"],
        "text": record["input_text"],
        "input_chars": record.get("input_chars", len(record["input_text"])),
        "input_truncated": bool(record.get("input_truncated", False)),
        "interactive": record.get("mode") == "interactive",
        "thresholds": check.get("thresholds"),
        "started_at": decided - float(record.get("elapsed_ms") or 0.0) / 1000,
        "inference": inference,
        "model": record.get("model") or {},
        "route": check.get("route"),
        "status": check.get("status"),
        "fallback": fallback,
        "final_label": None,
        "via": PENDING_REVIEW,
        "record": record,
        "trace": list(record.get("trace") or []),
    }


@dataclass
class Rebuilt:
    """What :func:`rebuild` did."""

    path: Path
    moved_to: Path | None = None
    restored: list[str] = field(default_factory=list)
    kept: int = 0  # pending requests the database already held


def _move_aside(path: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):  # SQLite's side files belong to the damaged database
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    return target


def rebuild(config: Config) -> Rebuilt:
    """Restore the review queue from ``app.jsonl`` (see the module doc); no model is loaded."""
    from selfheal.graph.nodes import FINAL_DECISION
    from selfheal.graph.services import Services
    from selfheal.graph.session import Session

    log_dir = Path(config.paths.log_dir)
    path = log_dir / CHECKPOINT_DB
    result = Rebuilt(path)
    try:
        status, threads = inspect_db(path)
    except CheckpointError:
        status, threads = "damaged", set()
    if status in ("damaged", "empty") and path.exists():
        result.moved_to = _move_aside(path)
    session = Session(Services(config), _open_saver(path))
    pending = pending_in_log(log_dir / JSONL_NAME)
    result.kept = len(set(pending) & threads)
    for rid, record in pending.items():
        if rid in threads:
            continue
        thread = {"configurable": {"thread_id": rid}}
        session.graph.update_state(thread, state_from_record(record), as_node=FINAL_DECISION)
        # on to FallbackNode, whose entry routes a pending request to await_review: its interrupt
        session.graph.invoke(None, thread, durability="sync")
        result.restored.append(rid)
    session.reindex()  # the review queue's table, from the threads just restored
    # The restored keep the log's order: a start time rebuilt from a record (its timestamp, to the
    # millisecond, minus its elapsed time) may put two requests of one batch the wrong way round.
    starts = {entry.thread_id: entry.created_at for entry in session.queue.entries()}
    last = float("-inf")
    for rid in result.restored:
        start = max(starts.get(rid, last), last + 1e-6)
        session.queue.set_order(rid, start)
        last = start
    session.checkpointer.conn.close()
    session.claims.close()
    return result


def _open_saver(path: Path) -> Any:
    from langgraph.checkpoint.sqlite import SqliteSaver

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        saver = SqliteSaver(sqlite3.connect(str(path), check_same_thread=False, timeout=30.0))
        saver.setup()
    except (OSError, sqlite3.Error) as exc:
        raise CheckpointError(f"cannot create {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return saver
