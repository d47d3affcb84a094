"""Paused requests on a real PostgreSQL server (and the queue table on SQLite).

The server is a throwaway one (``tests/pg.py``, fixture ``postgres_server``); the model is the
shipped one, the graph the real one. Requests pause at the clarifying question (``accept=1``,
``clarify=0``: every text is asked), which needs no model to answer, so the extra processes
(``tests/pg_worker.py``, real replicas with their own pool and graph) load none.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import process_env
from selfheal.config import ConfigError
from selfheal.graph import CHECKPOINT_DB
from selfheal.graph.claims import PAUSED, RUNNING, AlreadyAnswered, ClaimStore
from selfheal.graph.session import Session, question_key
from selfheal.graph.storage import open_storage
from selfheal.logs.decisions import JSONL_NAME

TEXTS = [
    "A strange, haunting little film.",
    "Not bad, not good, just there.",
    "Visually stunning, emotionally empty.",
]
WORKER = Path(__file__).with_name("pg_worker.py")


def always_ask(config) -> None:
    config.thresholds.accept = 1.0
    config.thresholds.clarify = 0.0


def records(config, request_id: str | None = None) -> list[dict]:
    path = Path(config.paths.log_dir) / JSONL_NAME
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [r for r in lines if request_id is None or r["request_id"] == request_id]


def clarified(config, request_id: str) -> list[dict]:
    path = Path(config.paths.clarified)
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [r for r in lines if r["request_id"] == request_id]


def dead_owner() -> str:
    """The owner string of a process of this host that has exited."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return f"{socket.gethostname()}:{int(done.stdout)}"


def worker(url: str, workdir: Path, name: str, ops: list) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), url, str(workdir), name, json.dumps(ops)],
        cwd=str(WORKER.parent),
        env=process_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def results(process: subprocess.Popen) -> list[dict]:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_checkpoints_and_the_queue_table_round_trip_on_postgres(services, graph_config, pg_url):
    always_ask(graph_config)
    storage = open_storage(graph_config, pg_url)
    assert storage.kind == "postgres" and storage.url.startswith("postgresql://")
    assert storage.url.endswith(pg_url.rpartition("/")[2]) and storage.url.count(":") == 2  # no password
    session = Session(services, checkpointer=storage.checkpointer, claims=storage.claims)
    ids = [session.start(text, interactive=True).request_id for text in TEXTS]
    thread = session._thread(ids[0])
    assert storage.checkpointer.get_tuple(thread) is not None  # the pause is in PostgreSQL
    assert storage.ping()
    storage.close()
    assert not storage.ping()  # closed: not ready

    # a new pool, setup() again on the same database: the same three wait, oldest first
    storage = open_storage(graph_config, pg_url)
    session = Session(services, checkpointer=storage.checkpointer, claims=storage.claims)
    assert [o.request_id for o in session.paused()] == ids
    assert [o.request_id for o in session.paused(limit=1, offset=1)] == ids[1:2]
    assert [o.request_id for o in session.paused(offset=2)] == ids[2:]
    entries = session.queue_entries()
    assert [(e.thread_id, e.kind, e.text) for e in entries] == [
        (i, "clarify", t) for i, t in zip(ids, TEXTS, strict=True)
    ]
    assert entries[0].summary["interrupt"]["kind"] == "clarify"
    assert storage.queue.count() == 3

    # the listing reads the table: a row removed is not listed; reindex() finds it again
    storage.queue.remove(ids[1])
    assert [o.request_id for o in session.paused()] == [ids[0], ids[2]]
    assert session.reindex() == 3
    assert [o.request_id for o in session.paused()] == ids

    # a process that died after the pause was checkpointed, before its row said so: a running
    # row older than a minute whose thread waits is listed again
    storage.claims.db.run(
        "UPDATE paused_requests SET status = ?, updated_at = updated_at - 3600 WHERE thread_id = ?",
        (RUNNING, ids[2]),
    )
    assert [o.request_id for o in session.paused(min_age=60)] == ids
    assert [e.thread_id for e in storage.queue.entries(PAUSED)] == ids

    done = session.resume(ids[0], "positive")
    assert (done.state["via"], done.state["final_label"]) == ("user_clarification", "Positive")
    assert storage.checkpointer.get_tuple(thread) is None  # a decided thread is deleted ...
    assert [o.request_id for o in session.paused()] == ids[1:]  # ... and its row
    assert [r["final_decision"] for r in records(graph_config, ids[0])] == [
        {"label": "Positive", "via": "user_clarification"}
    ]
    storage.close()


def test_paused_in_one_process_answered_in_another_and_of_two_answers_one_wins(
    services, graph_config, pg_url, tmp_path
):
    """Process A (this one) pauses two requests on PostgreSQL; process B answers the first;
    processes B and C, both with the database and graph open, answer the second at once."""
    always_ask(graph_config)
    storage = open_storage(graph_config, pg_url)
    session = Session(services, checkpointer=storage.checkpointer, claims=storage.claims)
    first, second = (session.start(text, interactive=True).request_id for text in TEXTS[:2])

    (answered,) = results(worker(pg_url, tmp_path, "b", [["resume", first, "negative"]]))
    assert answered == {"name": "b", "result": "won", "label": "Negative", "via": "user_clarification"}
    assert session.waiting(first) is None  # A sees the answer B gave
    assert [r["final_decision"] for r in records(graph_config, first)] == [
        {"label": "Negative", "via": "user_clarification"}
    ]

    racers = [
        worker(pg_url, tmp_path, name, [["barrier"], ["resume", second, answer]])
        for name, answer in (("b", "negative"), ("c", "positive"))
    ]
    while not all((tmp_path / f"ready-{name}").exists() for name in "bc"):
        for racer in racers:  # a worker that failed before the barrier
            assert racer.poll() is None, racer.communicate()[1]
        os.sched_yield()
    (tmp_path / "go").touch()
    outcomes = {out["name"]: out for racer in racers for out in results(racer)}
    print("race:", sorted(outcomes.values(), key=lambda out: out["result"]))  # which way it went (-s)
    assert sorted(out["result"] for out in outcomes.values()) == ["already", "won"]
    winner = next(out for out in outcomes.values() if out["result"] == "won")
    assert winner["label"] == {"b": "Negative", "c": "Positive"}[winner["name"]]
    assert [r["final_decision"] for r in records(graph_config, second)] == [
        {"label": winner["label"], "via": "user_clarification"}
    ]
    assert [r["label"] for r in clarified(graph_config, second)] == [winner["label"]]
    assert session.paused() == [] and storage.queue.count() == 0
    storage.close()


def test_an_answer_whose_process_died_after_claiming_is_recovered(services, graph_config, pg_url):
    """A claim whose owner died on this host is finished at once; one by another host (another
    replica) only once its lease has run out; either way with the answer it was given."""
    always_ask(graph_config)
    storage = open_storage(graph_config, pg_url)
    session = Session(services, checkpointer=storage.checkpointer, claims=storage.claims)
    here, there = (session.start(text, interactive=True).request_id for text in TEXTS[:2])
    dead = ClaimStore(storage.pool, owner=dead_owner())
    remote = ClaimStore(storage.pool, owner="replica-on-another-host:1@42")
    for store, rid, answer in ((dead, here, "positive"), (remote, there, "negative")):
        question = question_key(session.graph.get_state(session._thread(rid)))
        assert store.claim(rid, question, answer) is not None
    with pytest.raises(AlreadyAnswered):  # claimed: nobody else may answer it meanwhile
        session.resume(here, "negative")

    assert [o.request_id for o in session.recover()] == [here]  # the remote one is within its lease
    assert [r["final_decision"] for r in records(graph_config, here)] == [
        {"label": "Positive", "via": "user_clarification"}
    ]
    storage.claims.db.run("UPDATE review_claims SET claimed_at = claimed_at - ?", (storage.claims.lease + 1,))
    assert [o.request_id for o in session.recover()] == [there]
    assert [r["final_decision"] for r in records(graph_config, there)] == [
        {"label": "Negative", "via": "user_clarification"}
    ]
    assert storage.claims.abandoned() == [] and session.paused() == []
    storage.close()


def test_a_process_killed_after_checkpointing_the_answer_is_recorded_by_recover(
    services, graph_config, pg_url, tmp_path
):
    """The answer reached the checkpoint, the record did not (the clarified file could not be
    written), and the process died there: its claim and a row still saying paused are left.
    ``recover()`` writes the one record with that answer."""
    from selfheal.graph.nodes import FINAL_DECISION
    from selfheal.logs.jsonl import StorageError

    always_ask(graph_config)
    storage = open_storage(graph_config, pg_url)
    session = Session(services, checkpointer=storage.checkpointer, claims=storage.claims)
    rid = session.start(TEXTS[0], interactive=True).request_id
    good = graph_config.paths.clarified
    (tmp_path / "not-a-dir").write_text("")
    graph_config.paths.clarified = tmp_path / "not-a-dir" / "clarified.jsonl"
    with pytest.raises(StorageError):
        session.resume(rid, "negative")
    graph_config.paths.clarified = good
    assert tuple(session.graph.get_state(session._thread(rid)).next) == (FINAL_DECISION,)
    assert records(graph_config, rid) == []
    # as a kill -9 would have left it: the claim of a dead process, the row still "paused"
    storage.claims.db.run("UPDATE review_claims SET owner = ? WHERE thread_id = ?", (dead_owner(), rid))
    storage.claims.db.run("UPDATE paused_requests SET status = ? WHERE thread_id = ?", (PAUSED, rid))

    assert [o.request_id for o in session.recover()] == [rid]
    assert [r["final_decision"] for r in records(graph_config, rid)] == [
        {"label": "Negative", "via": "user_clarification"}
    ]
    assert [r["label"] for r in clarified(graph_config, rid)] == ["Negative"]
    assert storage.claims.abandoned() == [] and storage.queue.count() == 0 and session.paused() == []
    storage.close()


def test_the_cli_on_postgres_classify_then_review(cli, pg_url):
    """``selfheal classify --db`` leaves requests pending in PostgreSQL; ``selfheal review --db``
    lists them from the queue table and answers them."""
    result = cli("classify", "--db", pg_url, "--json", "--accept", "1", "--clarify", "1", *TEXTS, check=True)
    pending = [
        r["request_id"]
        for r in map(json.loads, result.stdout.splitlines())
        if r["final_decision"]["via"] == "pending_review"
    ]
    assert pending, "the backups agreed with the model on every text: choose texts they disagree on"
    listed = cli("review", "--db", pg_url, "--list", check=True).stdout
    assert f"{len(pending)} request(s) wait for a person" in listed
    assert all(rid[:8] in listed for rid in pending)
    assert not (cli.tmp_path / "logs" / CHECKPOINT_DB).exists()  # nothing went to the SQLite file

    answered = cli("review", "--db", pg_url, stdin="negative\n" * len(pending), check=True).stdout
    assert f"Reviewed {len(pending)}, skipped 0, 0 still waiting." in answered
    assert "No requests wait for review." in cli("review", "--db", pg_url, check=True).stdout
    rebuilt = cli("review", "--db", pg_url, "--rebuild", check=True).stdout
    assert "re-indexed the review queue of postgresql://" in rebuilt and "(0 thread(s))" in rebuilt


def test_run_on_postgres_leaves_a_question_quit_for_review_there(cli, pg_url):
    """``selfheal run --db``: "quit" at the question leaves it pending in PostgreSQL, where
    ``review --db`` finds it and answers it."""
    text = TEXTS[0]
    ran = cli("run", "--db", pg_url, "--accept", "1", "--clarify", "0", stdin=f"{text}\nquit\n", check=True)
    assert "Final Label: pending (escalated to human review)" in ran.stdout
    listed = cli("review", "--db", pg_url, "--list", check=True).stdout
    assert "1 request(s) wait for a person" in listed and "pending review" in listed and text in listed
    assert not (cli.tmp_path / "logs" / CHECKPOINT_DB).exists()
    reviewed = cli("review", "--db", pg_url, stdin="positive\n", check=True).stdout
    assert "Final Label: Positive (via human review)" in reviewed
    (pending, decided) = [
        json.loads(line) for line in (cli.tmp_path / "logs" / JSONL_NAME).read_text().splitlines()
    ]
    assert pending["request_id"] == decided["request_id"]
    assert decided["final_decision"] == {"label": "Positive", "via": "human_review"}


def test_an_unreachable_or_wrong_database_is_one_line(cli, graph_config):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://someone:secret@127.0.0.1:{port}/selfheal"
    with pytest.raises(
        ConfigError, match=re.escape("cannot use PostgreSQL at postgresql://someone@127.0.0.1")
    ):
        open_storage(graph_config, url)
    for args, fragment in (
        (
            ["review", "--db", url, "--list"],
            f"cannot use PostgreSQL at postgresql://someone@127.0.0.1:{port}/selfheal",
        ),
        (["run", "--db", url], f"cannot use PostgreSQL at postgresql://someone@127.0.0.1:{port}/selfheal"),
        (["review", "--db", "mysql://x/y", "--list"], "unknown database URL 'mysql://x/y'"),
        (["classify", "--db", "sqlite:/relative", "A fine film."], "unknown database URL 'sqlite:/relative'"),
    ):
        result = cli(*args, stdin="")
        assert result.returncode == 2
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and fragment in line and "secret" not in line


def test_a_database_gone_mid_session_is_a_storage_error_of_one_line(services, graph_config, pg_url):
    """The database stops taking connections under a live session: the request is not recorded,
    and the error is one line (no traceback, no hang beyond the pool's timeout)."""
    import psycopg

    from selfheal.logs.jsonl import StorageError

    always_ask(graph_config)
    graph_config.storage.connect_timeout = 1
    storage = open_storage(graph_config, pg_url)
    session = Session(services, checkpointer=storage.checkpointer, claims=storage.claims)
    name = pg_url.rpartition("/")[2]
    with psycopg.connect(pg_url.rpartition("/")[0] + "/postgres", autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    with pytest.raises(StorageError) as caught:
        session.start(TEXTS[0], interactive=True)
    message = str(caught.value)
    assert message.startswith(f"cannot write {storage.url}: ") and "\n" not in message
    assert records(graph_config) == []
    storage.close()


def test_a_sqlite_file_from_before_the_queue_table_is_indexed_once(services, graph_config):
    always_ask(graph_config)
    storage = open_storage(graph_config)
    session = Session(services, checkpointer=storage.checkpointer, claims=storage.claims)
    ids = [session.start(text, interactive=True).request_id for text in TEXTS[:2]]
    storage.close()
    path = Path(graph_config.paths.log_dir) / CHECKPOINT_DB
    with sqlite3.connect(path) as conn:  # the file as the previous version left it
        conn.execute("DROP TABLE paused_requests")
    storage = open_storage(graph_config)
    assert storage.queue.created and storage.kind == "sqlite" and storage.ping()
    session = Session(services, checkpointer=storage.checkpointer, claims=storage.claims)
    assert [e.thread_id for e in session.queue_entries()] == ids
    assert [o.request_id for o in session.paused()] == ids
    storage.close()


def test_batched_sync_on_sqlite_defers_the_syncs_of_a_block_and_restores_them(graph_config):
    """``Storage.batched_sync`` (classify's chunks with ``logging.fsync: chunk``): inside, both
    SQLite connections commit without a sync each (``synchronous=NORMAL``, WAL); after it, their
    level is back, also when the block fails, and what was committed inside is there."""
    storage = open_storage(graph_config)
    conns = [storage.checkpointer.conn, storage.claims.conn]
    try:
        before = [conn.execute("PRAGMA synchronous").fetchone()[0] for conn in conns]
        assert storage.checkpointer.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        with pytest.raises(RuntimeError), storage.batched_sync():
            assert [conn.execute("PRAGMA synchronous").fetchone()[0] for conn in conns] == [1, 1]
            storage.queue.running("t-1", 1.0, "a text")
            raise RuntimeError("a failure inside the block")
        assert [conn.execute("PRAGMA synchronous").fetchone()[0] for conn in conns] == before
        assert [entry.thread_id for entry in storage.queue.entries(RUNNING)] == ["t-1"]
    finally:
        storage.close()
