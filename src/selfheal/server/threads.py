"""The threads this server created, and under which token: a small table beside the checkpoints.

LangGraph's checkpointer keeps a thread only while it runs or waits (a finished request's
thread is deleted; its record is in ``app.jsonl``), and its state has no place for who created
it. So the server keeps one row per thread it made::

    server_threads(thread_id PRIMARY KEY, owner, created_at, started)

* ``owner``: the SHA-256 fingerprint of the token the thread was created under
  (:func:`selfheal.server.auth.fingerprint`; never the token), ``''`` without a token. A resume
  (or a read) under another token is refused with 403;
* ``started``: whether a request ran on it. One thread is one request (its ``request_id``), so a
  second run on a started thread is refused with 409 (LangGraph's ``multitask_strategy=reject``);
  ``POST /threads`` creates a row with ``started = 0`` for the run that follows.

With SQLite the table lives in its own file, ``<log_dir>/server_threads.sqlite``, so the
checkpoint file that ``selfheal review --rebuild`` may replace stays LangGraph's alone. Threads
made by the CLI (``selfheal classify`` leaving a request pending) have no row: they have no
owner, and only the review endpoints answer them when tokens are in use.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfheal.config import ConfigError

THREADS_DB = "server_threads.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS server_threads (
    thread_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    started INTEGER NOT NULL
)
"""


@dataclass(frozen=True)
class ThreadRow:
    """One thread the server created."""

    thread_id: str
    owner: str | None  # token fingerprint; None: created without a token
    created_at: float
    started: bool


class ThreadRegistry:
    """The ``server_threads`` table (SQLite file, or a PostgreSQL database given by URL)."""

    def __init__(self, conn: Any, placeholder: str = "?") -> None:
        self.conn = conn
        self._p = placeholder
        self._lock = threading.Lock()
        if placeholder == "%s":  # PostgreSQL: replicas starting at once must not race on CREATE
            self._create_schema_locked()
        else:
            self._execute(SCHEMA)

    def _create_schema_locked(self) -> None:
        """``CREATE TABLE IF NOT EXISTS`` under the checkpointer's setup lock: PostgreSQL's
        ``IF NOT EXISTS`` is not atomic, so two servers starting together could both try to
        create the table, and one would fail on a duplicate key in ``pg_type``."""
        from selfheal.graph.storage import setup_lock

        with setup_lock(self._execute):
            self._execute(SCHEMA)

    @classmethod
    def open(cls, log_dir: Path, db_url: str | None = None) -> ThreadRegistry:
        """The registry in ``<log_dir>/server_threads.sqlite``, or in the PostgreSQL database of
        ``db_url`` (a ``postgresql://`` URL)."""
        from selfheal.graph.storage import is_postgres

        if is_postgres(db_url):
            import psycopg

            return cls(psycopg.connect(db_url, autocommit=True), placeholder="%s")
        path = Path(log_dir) / THREADS_DB
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30.0, isolation_level=None)
            return cls(conn)
        except (OSError, sqlite3.Error) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ConfigError(f"cannot use {path}: {reason}") from None

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        with self._lock:
            cursor = self.conn.execute(sql.replace("?", self._p), params)
            rows = cursor.fetchall() if cursor.description else None
            return rows, cursor.rowcount

    def create(self, thread_id: str, owner: str | None, started: bool) -> bool:
        """Add a thread; ``False`` if the id is taken."""
        _, count = self._execute(
            "INSERT INTO server_threads (thread_id, owner, created_at, started) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (thread_id) DO NOTHING",
            (thread_id, owner or "", time.time(), int(started)),
        )
        return count == 1

    def start(self, thread_id: str) -> bool:
        """Mark a created thread as started; ``False`` if it already was (exactly one run wins)."""
        _, count = self._execute(
            "UPDATE server_threads SET started = 1 WHERE thread_id = ? AND started = 0", (thread_id,)
        )
        return count == 1

    def unstart(self, thread_id: str) -> None:
        """Undo :meth:`start` (the run failed before anything was recorded)."""
        self._execute("UPDATE server_threads SET started = 0 WHERE thread_id = ?", (thread_id,))

    def delete(self, thread_id: str) -> None:
        """Forget a thread (a new request that failed before anything was recorded)."""
        self._execute("DELETE FROM server_threads WHERE thread_id = ?", (thread_id,))

    def get(self, thread_id: str) -> ThreadRow | None:
        """The row of ``thread_id``, if the server created it."""
        rows, _ = self._execute(
            "SELECT thread_id, owner, created_at, started FROM server_threads WHERE thread_id = ?",
            (thread_id,),
        )
        return _row(rows[0]) if rows else None

    def of_owner(self, owner: str | None, limit: int, offset: int) -> list[ThreadRow]:
        """The threads created under ``owner``, newest first."""
        rows, _ = self._execute(
            "SELECT thread_id, owner, created_at, started FROM server_threads WHERE owner = ? "
            "ORDER BY created_at DESC LIMIT ? OFFSET ?",
            (owner or "", limit, offset),
        )
        return [_row(row) for row in rows or []]

    def ping(self) -> None:
        """A trivial query (readiness)."""
        self._execute("SELECT 1")

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def _row(row: Any) -> ThreadRow:
    return ThreadRow(str(row[0]), row[1] or None, float(row[2]), bool(row[3]))
