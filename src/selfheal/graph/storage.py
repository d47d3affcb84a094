"""Where paused requests live: the CLI's SQLite file or a PostgreSQL database, one interface.

:func:`open_storage` gives a :class:`Storage`: the LangGraph checkpointer (the paused requests),
the :class:`~selfheal.graph.claims.ClaimStore` (one answer per question) and its
:class:`~selfheal.graph.claims.PausedQueue` (the review queue), all in one database::

    storage = open_storage(config, url)   # url: None / "sqlite..." / "postgresql://..."
    session = Session(services, checkpointer=storage.checkpointer, claims=storage.claims)
    ...
    storage.close()

* ``None`` (and ``storage.url`` unset), ``sqlite`` or ``sqlite://``: the CLI's file,
  ``<paths.log_dir>/graph_checkpoints.sqlite``, checked as :func:`selfheal.graph.open_checkpointer`
  checks it; ``sqlite:///PATH`` another file (``sqlite:////abs/path`` or ``sqlite:///rel/path``).
* ``postgresql://USER@HOST:PORT/DB`` (or ``postgres://``): ``langgraph-checkpoint-postgres``'s
  :class:`~langgraph.checkpoint.postgres.PostgresSaver` on a ``psycopg_pool.ConnectionPool``
  configured as its documentation asks (``autocommit=True``, ``prepare_threshold=0``,
  ``row_factory=dict_row``), ``setup()`` run on start under an advisory lock (replicas starting
  together do not race on the migrations); the claims and the queue use the same pool. The
  password comes from libpq's usual places (``PGPASSWORD``, ``~/.pgpass``) or the URL.

A server that cannot be reached, a refused login, a missing database or a malformed URL is one
:class:`~selfheal.config.ConfigError` line (no traceback), after at most
``storage.connect_timeout`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfheal.config import Config, ConfigError
from selfheal.graph.checkpoints import CHECKPOINT_DB, check_checkpoint_db
from selfheal.graph.claims import ClaimStore, PausedQueue

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SETUP_LOCK = 0x5E1F4EA1  # the advisory lock key that serialises setup() across replicas
SETUP_WAIT = 300.0  # seconds a replica waits for another one's setup before a one-line error


@contextlib.contextmanager
def setup_lock(execute: Callable[..., Any], wait: float = SETUP_WAIT) -> Iterator[None]:
    """Hold the setup advisory lock (:data:`SETUP_LOCK`) through ``execute`` (a connection's, in
    autocommit), taken by polling ``pg_try_advisory_lock`` rather than waiting in
    ``pg_advisory_lock``: a replica blocked in that call sits in an open transaction, and the
    ``CREATE INDEX CONCURRENTLY`` of LangGraph's ``setup()`` in the replica holding the lock waits
    for every older transaction to end, a deadlock PostgreSQL cannot see (two ``selfheal serve``
    started together hung until the test's time ran out)."""
    deadline = time.monotonic() + wait
    while not _fetch_one(execute("SELECT pg_try_advisory_lock(%s)", (SETUP_LOCK,))):
        if time.monotonic() > deadline:
            raise ConfigError(f"another process has held the setup lock for over {wait:.0f} s")
        time.sleep(0.05)
    try:
        yield
    finally:
        execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))


def _fetch_one(cursor: Any) -> Any:
    """The first column of a one-row result (a tuple row, a dict row or ``(rows, count)``)."""
    row = cursor[0][0] if isinstance(cursor, tuple) else cursor.fetchone()
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


@dataclass
class Storage:
    """The checkpointer, the claims and the review queue of one database (see the module doc)."""

    url: str  # where, for people: sqlite:///<file> or postgresql://user@host:port/db (no password)
    kind: str  # "sqlite" or "postgres"
    checkpointer: Any
    claims: ClaimStore
    pool: Any = None  # the psycopg_pool.ConnectionPool (PostgreSQL)
    _closed: bool = field(default=False, repr=False)

    @property
    def queue(self) -> PausedQueue:
        """The review queue's table (``count()`` for a pending gauge, ``entries()`` for a page)."""
        return self.claims.queue

    def ping(self, timeout: float = 2.0) -> bool:
        """Whether the database answers a trivial query now (for a readiness probe)."""
        try:
            if self.pool is not None:
                with self.pool.connection(timeout=timeout) as conn:
                    conn.execute("SELECT 1")
            else:
                self.claims.db.run("SELECT 1")
        except Exception:
            return False
        return True

    @contextlib.contextmanager
    def batched_sync(self) -> Iterator[None]:
        """SQLite: the commits inside (checkpoints, claims, the queue) are not synced one by one
        (``synchronous=NORMAL`` in WAL mode) but together at the end, by a full WAL checkpoint
        (also when the block fails). A process that dies loses none of them; a machine that loses
        power may lose the block's (``selfheal review --rebuild`` restores pending requests from
        ``app.jsonl``). What ``logging.fsync: chunk`` does for ``classify``'s log, for its
        database. PostgreSQL: unchanged (the server commits each one)."""
        checkpoints = getattr(self.checkpointer, "conn", None)
        conns = [c for c in (checkpoints, self.claims.conn) if isinstance(c, sqlite3.Connection)]
        if self.kind != "sqlite" or not conns:
            yield
            return
        from selfheal.logs.jsonl import StorageError

        where = Path(self.claims.db.where)
        try:
            before = [conn.execute("PRAGMA synchronous").fetchone()[0] for conn in conns]
            for conn in conns:
                conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise StorageError.wrap("write", where, exc) from None
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            try:
                for conn, level in zip(conns, before, strict=True):
                    conn.execute(f"PRAGMA synchronous={int(level)}")
                conns[0].execute("PRAGMA wal_checkpoint(FULL)")
            except sqlite3.Error as exc:  # a full disk, say: one line, unless the block failed first
                if not failed:
                    raise StorageError.wrap("write", where, exc) from None

    def close(self) -> None:
        """Close the connections (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self.pool is not None:
            self.pool.close()
            return
        conn = getattr(self.checkpointer, "conn", None)
        if conn is not None:
            conn.close()
        self.claims.close()

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_postgres(url: str | None) -> bool:
    """Whether ``url`` names a PostgreSQL database."""
    return bool(url) and str(url).startswith(POSTGRES_SCHEMES)


def open_storage(config: Config, url: str | None = None) -> Storage:
    """Open the database ``url`` (else ``storage.url``, else the CLI's SQLite file); see the module doc."""
    url = url or config.storage.url
    if url is None or url in ("sqlite", "sqlite:", "sqlite://"):
        return _open_sqlite(config, Path(config.paths.log_dir) / CHECKPOINT_DB)
    if url.startswith("sqlite:///"):
        return _open_sqlite(config, Path(url.removeprefix("sqlite:///")))
    check_url(config, url, connect=False)
    return _open_postgres(config, url)


def check_url(config: Config, url: str | None, connect: bool = True) -> None:
    """Fail now, with the one line :func:`open_storage` would give, if ``url`` is not a database
    URL or (``connect``) its PostgreSQL server does not take a connection; nothing is created.
    For a command that opens the database later (``selfheal run`` opens it while the prompt is up)."""
    url = url or config.storage.url
    if url is None or url.startswith("sqlite"):
        if url not in (None, "sqlite", "sqlite:", "sqlite://") and not url.startswith("sqlite:///"):
            raise ConfigError(
                f"unknown database URL {_redact(url)!r} (--db / storage.url): use sqlite:///PATH"
            )
        return
    if not is_postgres(url):
        raise ConfigError(
            f"unknown database URL {_redact(url)!r} (--db / storage.url): use sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/DB"
        )
    if connect:
        import psycopg

        where = _describe(url)
        try:
            psycopg.connect(url, connect_timeout=max(2, math.ceil(config.storage.connect_timeout))).close()
        except psycopg.Error as exc:
            raise ConfigError(
                f"cannot use PostgreSQL at {where} (--db / storage.url): {_first_line(exc)}"
            ) from None


def _open_sqlite(config: Config, path: Path) -> Storage:
    from selfheal.graph.build import open_checkpointer

    log_dir = Path(config.paths.log_dir)
    if path == log_dir / CHECKPOINT_DB:
        checkpointer = open_checkpointer(log_dir)
    else:
        from selfheal.graph.checkpoints import _open_saver

        check_checkpoint_db(log_dir, path)
        checkpointer = _open_saver(path)
    claims = ClaimStore(path, lease=config.storage.claim_lease)
    claims.db.where = str(path)
    return Storage(f"sqlite:///{path}", "sqlite", checkpointer, claims)


def _redact(url: str) -> str:
    """``url`` without its password (for messages)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.partition(":")[0]
    return f"{scheme}://{user}@{host}"


def _describe(url: str) -> str:
    """``postgresql://user@host:port/db`` of a URL, without the password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(url)
    except Exception as exc:
        raise ConfigError(
            f"invalid PostgreSQL URL {_redact(url)!r} (--db / storage.url): {_first_line(exc)}"
        ) from None
    user = f"{info['user']}@" if info.get("user") else ""
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{user}{info.get('host') or 'localhost'}{port}/{info.get('dbname') or ''}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def _open_postgres(config: Config, url: str) -> Storage:
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    # The pool reports failed reconnections as warnings; with no handler anywhere Python would
    # print them on stderr beside the one-line error. An application that configures logging
    # still receives them (propagation is untouched).
    logger = logging.getLogger("psycopg")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    where = _describe(url)
    settings = config.storage
    timeout = float(settings.connect_timeout)
    kwargs: dict[str, Any] = {
        "autocommit": True,
        "prepare_threshold": 0,
        "row_factory": dict_row,
        "connect_timeout": max(2, math.ceil(timeout)),  # libpq's own limit (seconds, at least 2)
    }

    def unusable(exc: BaseException) -> ConfigError:
        return ConfigError(f"cannot use PostgreSQL at {where} (--db / storage.url): {_first_line(exc)}")

    try:  # one plain connection first: libpq's own reason if it fails, and the setup lock
        lock = psycopg.connect(url, **kwargs)
    except psycopg.Error as exc:
        raise unusable(exc) from None
    pool = None
    try:
        pool = ConnectionPool(
            url,
            min_size=1,
            max_size=settings.pool_size,
            kwargs=kwargs,
            open=False,
            timeout=timeout,
            check=ConnectionPool.check_connection,  # a connection dropped by a restart is replaced
            name="selfheal",
        )
        pool.open(wait=True, timeout=timeout)
        with setup_lock(lock.execute):
            checkpointer = PostgresSaver(pool)
            checkpointer.setup()
            claims = ClaimStore(pool, lease=settings.claim_lease)
    except psycopg.Error as exc:
        if pool is not None:
            pool.close()
        raise unusable(exc) from None
    finally:
        lock.close()
    claims.db.where = where
    return Storage(where, "postgres", checkpointer, claims, pool)
