"""Two replicas of the server on one real PostgreSQL database (tests/pg.py): a question asked
through one is answered through the other, two simultaneous answers on the two replicas of which
exactly one wins, the review queue shared. Each replica has its own log directory, as replicas on
two hosts would; the apps run in this process (FastAPI's TestClient) on the session's models."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server_helpers import AMBIGUOUS, race, records, server_config


@pytest.fixture
def replicas(tmp_path, pg_url, classifier, backup_ensemble):
    """Two apps on the same PostgreSQL database, logs under ``tmp_path/a`` and ``tmp_path/b``."""
    from selfheal.graph.services import Services
    from selfheal.server.app import create_app

    clients = []
    for name in ("a", "b"):
        config = server_config(tmp_path / name)
        services = Services(config, classifier=classifier, backups=backup_ensemble)
        clients.append(TestClient(create_app(config, db_url=pg_url, services=services)))
    with clients[0] as first, clients[1] as second:
        yield first, second


def all_records(tmp_path: Path) -> list[dict]:
    """The records of both replicas."""
    return records(tmp_path / "a") + records(tmp_path / "b")


def test_a_question_asked_through_one_replica_is_answered_through_the_other(tmp_path, replicas):
    first, second = replicas
    asked = first.post("/v1/classify", json={"text": AMBIGUOUS}).json()
    assert asked["status"] == "interrupted"
    thread_id = asked["thread_id"]
    assert second.get(f"/v1/threads/{thread_id}").json()["interrupt"] == asked["interrupt"]
    done = second.post(f"/v1/threads/{thread_id}/resume", json={"answer": "no"}).json()
    assert done["record"]["final_decision"] == {"label": "Negative", "via": "user_clarification"}
    assert records(tmp_path / "a") == [] and records(tmp_path / "b") == [done["record"]]
    assert first.get("/readyz").json() == {"status": "ready"}
    # the batch's pending request is in the queue both replicas read
    pending = first.post("/v1/classify/batch", json={"texts": [AMBIGUOUS]}).json()["results"][0]
    assert [item["thread_id"] for item in second.get("/v1/review").json()["items"]] == [pending["thread_id"]]
    reviewed = second.post(f"/v1/review/{pending['thread_id']}", json={"label": "negative"}).json()
    assert reviewed["record"]["final_decision"]["via"] == "human_review"
    assert first.get("/v1/review").json()["total"] == 0


def test_two_answers_on_two_replicas_exactly_one_wins(tmp_path, replicas):
    first, second = replicas
    thread_id = first.post("/v1/classify", json={"text": AMBIGUOUS}).json()["thread_id"]
    url = f"/v1/threads/{thread_id}/resume"
    statuses = race(
        {
            "a": lambda: first.post(url, json={"answer": "yes"}).status_code,
            "b": lambda: second.post(url, json={"answer": "no"}).status_code,
        }
    )
    assert sorted(statuses.values()) == [200, 409]
    (record,) = all_records(tmp_path)
    assert record["request_id"] == thread_id
    winner = "a" if statuses["a"] == 200 else "b"
    assert record["final_decision"]["label"] == ("Positive" if winner == "a" else "Negative")


def _open_at_once(log_dir: Path, url: str, count: int) -> tuple[list, list[Exception]]:
    """``count`` registries opened by as many threads released together: (opened, failures)."""
    import threading

    from selfheal.server.threads import ThreadRegistry

    barrier, opened, failed = threading.Barrier(count), [], []

    def open_one() -> None:
        barrier.wait()
        try:
            opened.append(ThreadRegistry.open(log_dir, url))
        except Exception as exc:  # collected; the caller asserts there are none
            failed.append(exc)

    workers = [threading.Thread(target=open_one) for _ in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return opened, failed


def test_registries_opened_at_once_on_a_fresh_database_all_start(tmp_path, postgres_server):
    """Replicas starting together: PostgreSQL's ``CREATE TABLE IF NOT EXISTS`` is not atomic,
    so without the setup lock some of them fail on a duplicate ``pg_type`` key (CI saw it once
    with two servers; 8 threads on 10 fresh databases make it likely)."""
    for _ in range(10):
        opened, failed = _open_at_once(tmp_path, postgres_server.new_database(), 8)
        assert not failed and len(opened) == 8
        assert opened[0].create("t-1", None, started=False)
        assert not opened[1].create("t-1", None, started=False)
        for registry in opened:
            registry.close()


def test_a_replica_waiting_for_setup_does_not_block_the_others_concurrent_index(postgres_server):
    """The deadlock two ``selfheal serve`` started together once hit: replica B waits for the setup
    lock while replica A, holding it, runs LangGraph's ``CREATE INDEX CONCURRENTLY``, which waits
    for every older open transaction. Waiting inside ``pg_advisory_lock`` is such a transaction;
    :func:`setup_lock` polls instead, so A's index is built while B waits."""
    import threading

    import psycopg

    from selfheal.graph.storage import setup_lock

    url = postgres_server.new_database()
    holder, waiter, builder = (psycopg.connect(url, autocommit=True) for _ in range(3))
    try:
        builder.execute("CREATE TABLE t (x int)")
        got: list[bool] = []
        with setup_lock(holder.execute):  # replica A holds the lock...
            thread = threading.Thread(target=lambda: got.append(_take(waiter)))
            thread.start()  # ...replica B waits for it...
            time.sleep(0.5)
            builder.execute("SET statement_timeout = '20s'")
            builder.execute("CREATE INDEX CONCURRENTLY t_x ON t (x)")  # ...and A's setup completes
        thread.join(timeout=30)
        assert got == [True]  # then B gets it
    finally:
        for conn in (holder, waiter, builder):
            conn.close()


def _take(conn) -> bool:
    from selfheal.graph.storage import setup_lock

    with setup_lock(conn.execute):
        return True
