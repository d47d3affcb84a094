"""One answer per paused question, across processes: a claim table beside the checkpoints.

A paused request (a graph thread waiting at an ``interrupt()``) may be answered by several
people at once: two ``selfheal review`` processes, a reviewer and the ``run`` that asked, later
several server replicas. Whoever *claims* the question first answers it; everyone else is told it
was already answered, and nothing is resumed (or logged, or saved for retraining) twice.

The key of a question is ``(thread_id, question)``, where ``question`` is
:func:`selfheal.graph.session.question_key`: the parent checkpoint the thread waits at and the id
of the ``interrupt()`` it waits in. A question asked again (after an unclear answer) is a new
interrupt of FallbackNode's subgraph, at the same parent checkpoint, so it has a new key; the
parent checkpoint alone would not tell the two apart. The protocol, in
:meth:`selfheal.graph.session.Session.resume`:

1. read the thread's snapshot: the question it waits at (nothing waiting: already answered);
2. :meth:`ClaimStore.claim` inserts ``(thread_id, question, owner, answer)`` with
   ``INSERT ... ON CONFLICT DO NOTHING``; the primary key lets exactly one insert succeed;
3. the winner reads the snapshot again: if the thread waits at another question (or none),
   someone answered before this claim (and has already cleared theirs), so the winner
   :meth:`release`\\ s and backs off;
4. the winner resumes the graph, then :meth:`release`\\ s the key (the decision is in
   ``app.jsonl``; the thread is gone or waits at a new question).

If the winner dies between 2 and 4, its claim stays, with the answer it was given.
:meth:`ClaimStore.abandoned` lists such claims (the owner's process is gone on this host, or the
claim is older than ``lease`` seconds when the owner is on another host), and
:meth:`ClaimStore.take_over` hands one to exactly one new owner (a compare-and-swap on the
owner), which finishes it with the recorded answer (``selfheal review`` does this first).

Two databases, one SQL: the SQLite file of the CLI (one connection, autocommit: every statement
is its own transaction, and SQLite's file lock serialises writers across processes) or PostgreSQL
(a ``psycopg_pool.ConnectionPool`` shared with the checkpointer; ``ON CONFLICT DO NOTHING`` and
``UPDATE ... WHERE owner`` are atomic there too, whichever replica runs them). :class:`Database`
hides the one difference, the placeholder (``?`` or ``%s``). The table lives in the same database
as the checkpoints. Its column keeps the name ``checkpoint_id`` it had when the key was the
checkpoint alone, so older files still open.

Whether a claim's owner is alive: an owner is ``host:pid@start`` (``start``: the process's start
time in clock ticks, from ``/proc``, so a recycled pid, or a restarted container whose server is
pid 1 again, is not taken for the dead owner). On this host that is checked; an owner on another
host (another replica) is unknown, and its claim counts as abandoned once it is older than the
lease (``storage.claim_lease``).

The review queue (:class:`PausedQueue`) is a second small table in the same database, see its doc.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS review_claims (
    thread_id TEXT NOT NULL,
    checkpoint_id TEXT NOT NULL,  -- the question key (see the module doc)
    owner TEXT NOT NULL,
    answer TEXT NOT NULL,
    claimed_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_id)
)
"""
DEFAULT_LEASE = 600.0  # seconds before a claim by another host counts as abandoned


class Database:
    """One SQL dialect over SQLite (a file, or ``:memory:``) or a PostgreSQL connection pool.

    Statements are written with ``?`` placeholders; :meth:`run` returns ``(rowcount, rows)``.
    """

    def __init__(self, target: Path | str | Any) -> None:
        self.kind = "sqlite" if isinstance(target, (str, Path)) else "postgres"
        self.where = str(target) if self.kind == "sqlite" else "the PostgreSQL database"  # for messages
        self._lock = threading.Lock()
        if self.kind == "sqlite":
            self.conn: Any = sqlite3.connect(
                str(target), check_same_thread=False, timeout=30.0, isolation_level=None
            )
            self.pool: Any = None
        else:
            self.conn, self.pool = None, target  # a psycopg_pool.ConnectionPool

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[int, list[tuple[Any, ...]]]:
        """Execute one statement (its own transaction); its row count and rows."""
        if self.kind == "sqlite":
            with self._lock:
                cursor = self.conn.execute(sql, params)
                rows = cursor.fetchall() if cursor.description else []
                return cursor.rowcount, rows
        from psycopg.rows import tuple_row

        with self.pool.connection() as conn, conn.cursor(row_factory=tuple_row) as cursor:
            cursor.execute(sql.replace("?", "%s"), params)
            rows = cursor.fetchall() if cursor.description else []
            return cursor.rowcount, rows

    def has_table(self, name: str) -> bool:
        """Whether the table exists."""
        if self.kind == "sqlite":
            sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        else:
            sql = "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?"
        return bool(self.run(sql, (name,))[1])

    def close(self) -> None:
        """Close the SQLite connection (a pool is closed by whoever opened it)."""
        if self.conn is not None:
            self.conn.close()


def as_database(target: Database | Path | str | Any) -> Database:
    """A :class:`Database` for a path, ``:memory:``, a connection pool, or one already made."""
    return target if isinstance(target, Database) else Database(target)


class AlreadyAnswered(Exception):
    """The question was answered (or is being answered) by someone else."""

    def __init__(self, request_id: str, claim: Claim | None = None) -> None:
        self.request_id = request_id
        self.claim = claim
        super().__init__(f"request {request_id} was already answered")


@dataclass(frozen=True)
class Claim:
    """Who claimed the question a thread waits at, with which answer, and when."""

    thread_id: str
    question: str  # selfheal.graph.session.question_key
    owner: str
    answer: Any
    claimed_at: float


def _start_ticks(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux ``/proc``), else ``None``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
    return fields[19] if len(fields) > 19 else None


def this_owner() -> str:
    """``host:pid@start`` of this process (``host:pid`` where ``/proc`` is missing)."""
    start = _start_ticks(os.getpid())
    return f"{socket.gethostname()}:{os.getpid()}" + (f"@{start}" if start else "")


def owner_alive(owner: str) -> bool | None:
    """Whether ``owner``'s process still runs: ``None`` if it is on another host (unknown)."""
    host, _, process = owner.rpartition(":")
    pid, _, start = process.partition("@")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    # a start time that differs: the pid was recycled, another process runs under it
    return not (start and _start_ticks(int(pid)) not in (None, start))


class ClaimStore:
    """The ``review_claims`` table in the checkpoint database (or in memory), and the review
    queue beside it (:attr:`queue`).

    ``database``: the SQLite file (or ``:memory:``), a PostgreSQL ``ConnectionPool``, or a
    :class:`Database`. ``lease``: seconds after which a claim by another host is abandoned.
    """

    def __init__(
        self, database: Database | Path | str | Any, owner: str | None = None, lease: float = DEFAULT_LEASE
    ) -> None:
        self.owner = owner or this_owner()
        self.lease = lease
        self.db = as_database(database)
        self.db.run(SCHEMA)
        self.queue = PausedQueue(self.db)

    @property
    def conn(self) -> Any:
        """The SQLite connection (``None`` on PostgreSQL)."""
        return self.db.conn

    def claim(self, thread_id: str, question: str, answer: Any) -> Claim | None:
        """Claim the question; the claim on success, ``None`` if someone else holds it."""
        now = time.time()
        count, _ = self.db.run(
            "INSERT INTO review_claims (thread_id, checkpoint_id, owner, answer, claimed_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (thread_id, checkpoint_id) DO NOTHING",
            (thread_id, question, self.owner, json.dumps(answer), now),
        )
        if count != 1:
            return None
        return Claim(thread_id, question, self.owner, answer, now)

    def get(self, thread_id: str, question: str) -> Claim | None:
        """The claim on this question, if any."""
        _, rows = self.db.run(
            "SELECT thread_id, checkpoint_id, owner, answer, claimed_at FROM review_claims "
            "WHERE thread_id = ? AND checkpoint_id = ?",
            (thread_id, question),
        )
        return None if not rows else _claim(rows[0])

    def release(self, claim: Claim) -> None:
        """Drop ``claim`` (the graph has moved on, or the claim was not used)."""
        self.db.run(
            "DELETE FROM review_claims WHERE thread_id = ? AND checkpoint_id = ? AND owner = ?",
            (claim.thread_id, claim.question, claim.owner),
        )

    def abandoned(
        self, lease: float | None = None, alive: Callable[[str], bool | None] = owner_alive
    ) -> list[Claim]:
        """Claims whose owner died before finishing: gone from this host, or silent for ``lease`` s."""
        lease = self.lease if lease is None else lease
        _, rows = self.db.run(
            "SELECT thread_id, checkpoint_id, owner, answer, claimed_at FROM review_claims ORDER BY claimed_at"
        )
        now = time.time()
        out = []
        for claim in map(_claim, rows):
            state = alive(claim.owner)
            if state is False or (state is None and now - claim.claimed_at > lease):
                out.append(claim)
        return out

    def take_over(self, claim: Claim) -> Claim | None:
        """Make this process the owner of an abandoned ``claim``; ``None`` if another was faster."""
        now = time.time()
        count, _ = self.db.run(
            "UPDATE review_claims SET owner = ?, claimed_at = ? "
            "WHERE thread_id = ? AND checkpoint_id = ? AND owner = ?",
            (self.owner, now, claim.thread_id, claim.question, claim.owner),
        )
        if count != 1:
            return None
        return Claim(claim.thread_id, claim.question, self.owner, claim.answer, now)

    def close(self) -> None:
        """Close the connection (SQLite; a PostgreSQL pool belongs to its :class:`Storage`)."""
        self.db.close()


def _claim(row: tuple[Any, ...]) -> Claim:
    return Claim(row[0], row[1], row[2], json.loads(row[3]), float(row[4]))


# --- The review queue -----------------------------------------------------------------------------

QUEUE_SCHEMA = """
CREATE TABLE IF NOT EXISTS paused_requests (
    thread_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,          -- 'running' (may pause: a graph runs or ran it) or 'paused'
    question TEXT NOT NULL,        -- the question key it waits at ('' while running)
    kind TEXT NOT NULL,            -- the interrupt's kind (clarify, review, pending review...)
    created_at DOUBLE PRECISION NOT NULL,  -- the request's start (the queue's order)
    updated_at DOUBLE PRECISION NOT NULL,
    text TEXT NOT NULL,
    summary TEXT NOT NULL          -- JSON: the interrupt, the model's label and confidence, the backups' vote
)
"""
QUEUE_INDEX = (
    "CREATE INDEX IF NOT EXISTS paused_requests_order ON paused_requests (status, created_at, thread_id)"
)
RUNNING, PAUSED = "running", "paused"


@dataclass(frozen=True)
class QueueEntry:
    """One row of the review queue (no checkpoint read)."""

    thread_id: str
    status: str
    question: str
    kind: str
    created_at: float
    updated_at: float
    text: str
    summary: dict[str, Any]


class PausedQueue:
    """``paused_requests``: the requests that may wait for an answer, so that the review queue is
    read from one indexed table instead of by scanning every checkpoint.

    The protocol (:meth:`selfheal.graph.session.Session._advance`), crash-safe without a scan:

    1. before a request that may pause runs for the first time, its row is written as
       ``running`` (so a request can never be paused in the checkpoints without a row);
    2. when the graph pauses, the row becomes ``paused`` with its question and a summary;
    3. when the request is decided, its thread is deleted, then its row;
    4. a resume that fails keeps the thread (still waiting, or decided but unrecorded) and marks
       the row ``running``.

    A process that dies between the steps leaves a ``running`` row (or, after 3, a row whose
    thread is gone): :meth:`selfheal.graph.session.Session.paused` and ``finish_unrecorded``
    look at the ``running`` rows older than a minute and put each right (paused: listed;
    decided but unrecorded: recorded; gone: dropped). A file from before this table is indexed
    once from its checkpoints when the table is created (:attr:`created`).
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.created = not db.has_table("paused_requests")
        db.run(QUEUE_SCHEMA)
        db.run(QUEUE_INDEX)

    def running(self, thread_id: str, created_at: float, text: str) -> None:
        """Step 1: the request may pause from now on (an existing row is marked running)."""
        now = time.time()
        self.db.run(
            "INSERT INTO paused_requests (thread_id, status, question, kind, created_at, updated_at, text, summary) "
            "VALUES (?, ?, '', '', ?, ?, ?, '{}') "
            "ON CONFLICT (thread_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
            (thread_id, RUNNING, created_at, now, text),
        )

    def paused(
        self, thread_id: str, question: str, kind: str, created_at: float, text: str, summary: dict[str, Any]
    ) -> None:
        """Step 2: the request waits at ``question``."""
        now = time.time()
        self.db.run(
            "INSERT INTO paused_requests (thread_id, status, question, kind, created_at, updated_at, text, summary) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (thread_id) DO UPDATE SET status = excluded.status, question = excluded.question, "
            "kind = excluded.kind, updated_at = excluded.updated_at, text = excluded.text, "
            "summary = excluded.summary",
            (thread_id, PAUSED, question, kind, created_at, now, text, json.dumps(summary, default=str)),
        )

    def mark_running(self, thread_id: str, updated_at: float | None = None) -> None:
        """Step 4: the row of a request whose resume failed (to be looked at again). With
        ``updated_at``: only if the row was not written since it was read then."""
        sql = "UPDATE paused_requests SET status = ?, updated_at = ? WHERE thread_id = ?"
        params: tuple[Any, ...] = (RUNNING, time.time(), thread_id)
        if updated_at is not None:
            sql, params = sql + " AND updated_at = ?", (*params, updated_at)
        self.db.run(sql, params)

    def set_order(self, thread_id: str, created_at: float) -> None:
        """Move a row in the queue's order (``created_at``)."""
        self.db.run("UPDATE paused_requests SET created_at = ? WHERE thread_id = ?", (created_at, thread_id))

    def remove(self, thread_id: str) -> None:
        """Step 3: the request is decided (or forgotten)."""
        self.db.run("DELETE FROM paused_requests WHERE thread_id = ?", (thread_id,))

    def forget(self, entry: QueueEntry) -> None:
        """Drop a row found wrong (its thread is gone), unless it was written since it was read."""
        self.db.run(
            "DELETE FROM paused_requests WHERE thread_id = ? AND updated_at = ?",
            (entry.thread_id, entry.updated_at),
        )

    def entries(
        self, status: str = PAUSED, limit: int | None = None, offset: int = 0, older_than: float | None = None
    ) -> list[QueueEntry]:
        """Rows with ``status``, oldest request first (``older_than``: last updated before then)."""
        sql = (
            "SELECT thread_id, status, question, kind, created_at, updated_at, text, summary "
            "FROM paused_requests WHERE status = ?"
        )
        params: list[Any] = [status]
        if older_than is not None:
            sql += " AND updated_at < ?"
            params.append(older_than)
        sql += " ORDER BY created_at, thread_id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        if offset:
            sql += (
                " " if limit is not None else " LIMIT -1 " if self.db.kind == "sqlite" else " "
            ) + "OFFSET ?"
            params.append(int(offset))
        _, rows = self.db.run(sql, tuple(params))
        return [
            QueueEntry(r[0], r[1], r[2], r[3], float(r[4]), float(r[5]), r[6], json.loads(r[7] or "{}"))
            for r in rows
        ]

    def iter_entries(self, status: str = PAUSED, page: int = 200) -> Iterator[QueueEntry]:
        """Every row with ``status``, oldest first, read ``page`` rows at a time."""
        offset = 0
        while True:
            batch = self.entries(status, limit=page, offset=offset)
            yield from batch
            if len(batch) < page:
                return
            offset += page

    def count(self, status: str = PAUSED) -> int:
        """How many rows have ``status`` (the length of the review queue for ``paused``)."""
        _, rows = self.db.run("SELECT COUNT(*) FROM paused_requests WHERE status = ?", (status,))
        return int(rows[0][0])

    def thread_ids(self) -> set[str]:
        """Every thread with a row."""
        return {row[0] for row in self.db.run("SELECT thread_id FROM paused_requests")[1]}
