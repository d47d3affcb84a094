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

The SQL is plain enough for PostgreSQL (``ON CONFLICT DO NOTHING``, ``UPDATE ... WHERE owner``,
row counts); the table lives in the same database as the checkpoints. Its column keeps the name
``checkpoint_id`` it had when the key was the checkpoint alone, so older files still open.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS review_claims (
    thread_id TEXT NOT NULL,
    checkpoint_id TEXT NOT NULL,  -- the question key (see the module doc)
    owner TEXT NOT NULL,
    answer TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_id)
)
"""
DEFAULT_LEASE = 600.0  # seconds before a claim by another host counts as abandoned


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


def this_owner() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str) -> bool | None:
    """Whether ``owner``'s process still runs: ``None`` if it is on another host (unknown)."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class ClaimStore:
    """The ``review_claims`` table in the checkpoint database (or in memory)."""

    def __init__(self, database: Path | str, owner: str | None = None) -> None:
        self.owner = owner or this_owner()
        self.conn = sqlite3.connect(
            str(database), check_same_thread=False, timeout=30.0, isolation_level=None
        )
        self.conn.execute(SCHEMA)

    def claim(self, thread_id: str, question: str, answer: Any) -> Claim | None:
        """Claim the question; the claim on success, ``None`` if someone else holds it."""
        now = time.time()
        cursor = self.conn.execute(
            "INSERT INTO review_claims (thread_id, checkpoint_id, owner, answer, claimed_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (thread_id, checkpoint_id) DO NOTHING",
            (thread_id, question, self.owner, json.dumps(answer), now),
        )
        if cursor.rowcount != 1:
            return None
        return Claim(thread_id, question, self.owner, answer, now)

    def get(self, thread_id: str, question: str) -> Claim | None:
        """The claim on this question, if any."""
        row = self.conn.execute(
            "SELECT thread_id, checkpoint_id, owner, answer, claimed_at FROM review_claims "
            "WHERE thread_id = ? AND checkpoint_id = ?",
            (thread_id, question),
        ).fetchone()
        return None if row is None else Claim(row[0], row[1], row[2], json.loads(row[3]), row[4])

    def release(self, claim: Claim) -> None:
        """Drop ``claim`` (the graph has moved on, or the claim was not used)."""
        self.conn.execute(
            "DELETE FROM review_claims WHERE thread_id = ? AND checkpoint_id = ? AND owner = ?",
            (claim.thread_id, claim.question, claim.owner),
        )

    def abandoned(
        self, lease: float = DEFAULT_LEASE, alive: Callable[[str], bool | None] = owner_alive
    ) -> list[Claim]:
        """Claims whose owner died before finishing: gone from this host, or silent for ``lease`` s."""
        rows = self.conn.execute(
            "SELECT thread_id, checkpoint_id, owner, answer, claimed_at FROM review_claims ORDER BY claimed_at"
        ).fetchall()
        claims = [Claim(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]
        now = time.time()
        out = []
        for claim in claims:
            state = alive(claim.owner)
            if state is False or (state is None and now - claim.claimed_at > lease):
                out.append(claim)
        return out

    def take_over(self, claim: Claim) -> Claim | None:
        """Make this process the owner of an abandoned ``claim``; ``None`` if another was faster."""
        now = time.time()
        cursor = self.conn.execute(
            "UPDATE review_claims SET owner = ?, claimed_at = ? "
            "WHERE thread_id = ? AND checkpoint_id = ? AND owner = ?",
            (self.owner, now, claim.thread_id, claim.question, claim.owner),
        )
        if cursor.rowcount != 1:
            return None
        return Claim(claim.thread_id, claim.question, self.owner, claim.answer, now)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()
