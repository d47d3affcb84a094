"""A damaged checkpoint file is never a silent empty review queue; ``review --rebuild`` restores it.

Real files: the pending requests come from the real ``selfheal classify`` (shipped model, real
backups); the checkpoint file is then truncated, emptied, replaced or corrupted on disk, and the
real ``selfheal`` commands are run on it.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from conftest import graph_overrides, process_env, selfheal_argv
from selfheal.graph import CHECKPOINT_DB
from selfheal.graph.checkpoints import CheckpointError, check_checkpoint_db, pending_in_log

DISPUTED = ["Visually stunning, emotionally empty.", "Not bad, not good, just there."]


@pytest.fixture(scope="module")
def made(tmp_path_factory, cli_env) -> Path:
    """A log directory in which the real ``selfheal classify`` left pending requests."""
    base = tmp_path_factory.mktemp("pending")
    sets = [item for o in graph_overrides(base) for item in ("--set", o)]
    command = selfheal_argv("classify", *sets, "--json", "--accept", "1", "--clarify", "1", *DISPUTED)
    result = subprocess.run(command, capture_output=True, text=True, cwd=base, env=cli_env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert pending_in_log(base / "logs" / "app.jsonl"), "no pending request: the backups agreed"
    return base / "logs"


@pytest.fixture(scope="module")
def cli_env() -> dict[str, str]:
    return process_env()


@pytest.fixture
def logs(made, tmp_path) -> Path:
    """A copy of the pending requests' log directory where the ``cli`` fixture looks for it."""
    import shutil

    shutil.copytree(made, tmp_path / "logs")
    return tmp_path / "logs"


def one_error(result, *fragments: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in line
    return line


def corrupt(db: Path) -> None:
    """Keep SQLite's header, overwrite the rest of the file with garbage."""
    data = db.read_bytes()
    db.write_bytes(data[:16] + bytes((i * 37 + 11) % 251 for i in range(len(data) - 16)))


def foreign(db: Path) -> None:
    """Another application's SQLite database."""
    db.unlink()
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.commit()
    conn.close()


DAMAGES = {
    "truncated": lambda db: db.write_bytes(b""),
    "garbage": lambda db: db.write_bytes(b"\x00\xffnot a database at all" * 50),
    "half": lambda db: db.write_bytes(db.read_bytes()[: len(db.read_bytes()) // 2]),
    "corrupt": corrupt,
    "foreign": foreign,
    "missing": lambda db: db.unlink(),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_checkpoint_file_is_one_error_naming_it(logs, damage):
    db = logs / CHECKPOINT_DB
    DAMAGES[damage](db)
    with pytest.raises(CheckpointError) as caught:
        check_checkpoint_db(logs)
    message = str(caught.value)
    assert str(db) in message and "selfheal review --rebuild" in message


def test_truncated_file_each_command_fails_clearly_then_rebuild_restores_the_queue(logs, cli):
    pending = pending_in_log(logs / "app.jsonl")
    db = logs / CHECKPOINT_DB
    db.write_bytes(b"")  # truncated to 0 bytes: a valid empty database to SQLite
    for args in (("review", "--list"), ("review",), ("classify", "A fine film."), ("run",)):
        one_error(cli(*args, stdin=""), str(db), f"lists {len(pending)} pending request(s)", "--rebuild")
    assert db.stat().st_size == 0  # nothing created fresh tables behind the user's back
    before = (logs / "app.jsonl").read_text()

    rebuilt = cli("review", "--rebuild", check=True)
    (aside,) = logs.glob(f"{CHECKPOINT_DB}.damaged-*")
    assert aside.stat().st_size == 0
    assert f"restored {len(pending)} pending request(s)" in rebuilt.stdout
    assert (logs / "app.jsonl").read_text() == before  # no model run, nothing logged twice
    listed = cli("review", "--list", check=True).stdout
    assert f"{len(pending)} request(s) wait for a person" in listed
    for rid, record in pending.items():
        assert rid[:8] in listed and record["input_text"] in listed

    rid = next(iter(pending))
    reviewed = cli("review", stdin="positive\nq\n", check=True)
    assert "Final Label: Positive (via human review)" in reviewed.stdout
    records = [json.loads(line) for line in (logs / "app.jsonl").read_text().splitlines()]
    reviews = [r for r in records if r["final_decision"]["via"] == "human_review"]
    assert [(r["request_id"], r["final_decision"]["label"]) for r in reviews] == [(rid, "Positive")]
    assert reviews[0]["input_text"] == pending[rid]["input_text"]
    assert reviews[0]["inference"] == pending[rid]["inference"]  # the logged state, not a new run


def test_foreign_file_review_error_then_rebuild_moves_it_aside(logs, cli):
    pending = pending_in_log(logs / "app.jsonl")
    db = logs / CHECKPOINT_DB
    foreign(db)
    one_error(cli("review", "--list"), str(db), "without the graph's checkpoint tables")
    cli("review", "--rebuild", check=True)
    (aside,) = logs.glob(f"{CHECKPOINT_DB}.damaged-*")
    tables = {r[0] for r in sqlite3.connect(aside).execute("SELECT name FROM sqlite_master")}
    assert "notes" in tables  # the foreign file is kept, only moved
    listed = cli("review", "--list", check=True).stdout
    assert all(rid[:8] in listed for rid in pending)


def test_rebuild_of_a_healthy_queue_changes_nothing(logs, cli):
    pending = pending_in_log(logs / "app.jsonl")
    result = cli("review", "--rebuild", check=True)
    assert (
        "restored 0 pending request(s)" in result.stdout
        and f"({len(pending)} were already there)" in result.stdout
    )
    assert not list(logs.glob(f"{CHECKPOINT_DB}.damaged-*"))
