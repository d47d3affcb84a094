"""Batched decisions (issue 14): the model over many texts at once, then the graph per text.

The batched path (``Session.start_many``, what ``selfheal classify`` runs) must log the same
records as the path before it (``Session.start(..., precompute=False)``: InferenceNode calls the
model, every step checkpointed), in the same order; stdin is read in chunks so the first answer
comes before the input ends. Real model, real backups, real graph, real files.
"""

from __future__ import annotations

import io
import json
import os
import select
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import graph_overrides, process_env, selfheal_argv, set_args
from selfheal.inputs import chunk_sizes, line_chunks, prepare_text, raw_line_chunks
from selfheal.logs.decisions import JSONL_NAME
from selfheal.vocabulary import ACCEPT, ASK_CLARIFY, MODEL, PENDING_REVIEW, UNKNOWABLE

# Clear reviews (accepted), mixed ones (asked: without a person, on to the backups), inputs the
# model cannot know about (pending), an empty one, one with control characters (cleaned before
# the model sees it) and one longer than input.max_chars (cut).
TEXTS = [
    "A warm, funny and moving film; the best of the year.",
    "The movie was painfully slow and boring.",
    "It has its moments, but the plot never quite comes together.",
    "Not bad, not great, just okay I guess.",
    "   ",
    "\x1b[1mBold\x1b[0m and brave, a delight from start to finish.",
    "asdf qwer zxcv",
    "The bus leaves at nine from platform four.",
    "I expected to hate it and ended up only mildly disliking it.",
    "Gorgeous to look at and utterly empty.",
    "An astonishing, heartfelt triumph. " * 200,
    "Dull, lifeless and far too long.",
]
VOLATILE = ("request_id", "timestamp", "elapsed_ms")


def records(log_dir: Path) -> list[dict[str, Any]]:
    path = log_dir / JSONL_NAME
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A record without what differs between two runs of the same request: its id, the clock,
    and the model's measured time."""
    out = {key: value for key, value in record.items() if key not in VOLATILE}
    out["inference"] = {key: value for key, value in record["inference"].items() if key != "latency_ms"}
    return out


def assert_same(batched: Any, alone: Any, where: str = "record") -> None:
    """Equal field by field; floats within 2e-3: the sentence embedder runs under bfloat16
    autocast, so a text padded in a batch gets features (and probabilities, knowability scores)
    that differ from those of the same text alone in the fourth decimal (5e-4 measured)."""
    if isinstance(alone, dict):
        assert isinstance(batched, dict) and batched.keys() == alone.keys(), where
        for key in alone:
            assert_same(batched[key], alone[key], f"{where}.{key}")
    elif isinstance(alone, list):
        assert isinstance(batched, list) and len(batched) == len(alone), where
        for i, (b, a) in enumerate(zip(batched, alone, strict=True)):
            assert_same(b, a, f"{where}[{i}]")
    elif isinstance(alone, float) and not isinstance(alone, bool):
        assert batched == pytest.approx(alone, abs=2e-3), where
    else:
        assert batched == alone, where


def make_session(config: Any, classifier: Any, backups: Any, log_dir: Path) -> Any:
    from selfheal.graph import open_checkpointer
    from selfheal.graph.services import Services
    from selfheal.graph.session import Session

    config = config.model_copy(deep=True)
    config.paths.log_dir = log_dir
    config.paths.clarified = log_dir / "clarified.jsonl"
    config.input.max_chars = 400
    return Session(Services(config, classifier=classifier, backups=backups), open_checkpointer(log_dir))


def test_batched_decisions_log_the_same_records_as_one_request_at_a_time(
    tmp_path, graph_config, classifier, backup_ensemble
):
    alone = make_session(graph_config, classifier, backup_ensemble, tmp_path / "alone")
    batched = make_session(graph_config, classifier, backup_ensemble, tmp_path / "batched")
    one_by_one = [alone.start(text, interactive=False, precompute=False) for text in TEXTS]
    together = list(batched.start_many(TEXTS, interactive=False))

    assert [o is None for o in together] == [o is None for o in one_by_one] == [t.isspace() for t in TEXTS]
    logged_alone, logged_batched = records(tmp_path / "alone"), records(tmp_path / "batched")
    assert len(logged_batched) == len(logged_alone) == len(TEXTS) - 1
    for b, a in zip(logged_batched, logged_alone, strict=True):
        assert_same(comparable(b), comparable(a), a["input_text"][:40])
    printed = [o.record for o in together if o is not None]
    assert printed == logged_batched  # what the caller gets is what was logged, in input order

    # the texts took every way this test is about, and the model saw the cleaned, cut text
    routes = {r["confidence_check"]["route"] for r in logged_alone}
    vias = {r["final_decision"]["via"] for r in logged_alone}
    assert {ACCEPT, ASK_CLARIFY, UNKNOWABLE} <= routes and {MODEL, PENDING_REVIEW} <= vias
    assert any(r["fallback"]["backup"] is not None for r in logged_batched)
    assert logged_batched[4]["input_text"] == "[1mBold [0m and brave, a delight from start to finish."
    cut = logged_batched[9]
    assert cut["input_truncated"] and len(cut["input_text"]) <= 400 < cut["input_chars"]

    # each batched request says what its share of the one model call cost
    latencies = {r["inference"]["latency_ms"] for r in logged_batched}
    assert len(latencies) == 1 and latencies.pop() > 0
    # the pending ones wait for review in both; nothing else is left in the checkpointer
    waiting_alone = {o.state["text"] for o in alone.paused()}
    waiting_batched = {o.state["text"] for o in batched.paused()}
    assert (
        waiting_batched
        == waiting_alone
        == {r["input_text"] for r in logged_alone if r["final_decision"]["via"] == PENDING_REVIEW}
    )


def test_the_backups_vote_on_many_texts_as_on_each_alone(backup_ensemble):
    texts = [t for t in TEXTS if t.strip()][:6]
    many = backup_ensemble.predict_many(texts)
    assert len(many) == len(texts)
    for vote, text in zip(many, texts, strict=True):
        assert_same(vote, backup_ensemble.predict(text), text[:30])
    assert backup_ensemble.predict_many([]) == []


def test_a_pipe_is_read_in_chunks_that_end_when_no_more_lines_are_ready():
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb", buffering=0) as reader, os.fdopen(write_end, "wb", buffering=0) as writer:
        writer.write(b"one\ntwo\n\nthree\n")
        chunks = line_chunks(reader, "stdin", 256)
        # the writer has not closed the pipe: the three lines come at once, not after 256 or EOF
        assert next(chunks) == [(1, "one\n"), (2, "two\n"), (4, "three\n")]
        writer.write(b"four\nfive")
        assert next(chunks) == [(5, "four\n")]
        writer.close()
        assert next(chunks) == [(6, "five")]  # the last line, without a newline, at the end
        assert next(chunks, None) is None


def test_a_file_is_read_in_chunks_of_the_configured_size(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_bytes(b"".join(f"line {i}\n".encode() for i in range(10)))
    with path.open("rb") as fh:
        sizes = [len(chunk) for chunk in raw_line_chunks(fh, 4)]
    assert sizes == [4, 4, 2]


def test_chunks_start_small_and_double_up_to_the_largest(tmp_path):
    sizes = chunk_sizes(8, 2)
    assert [next(sizes) for _ in range(6)] == [2, 4, 8, 8, 8, 8]
    assert next(chunk_sizes(8)) == 8 and next(chunk_sizes(8, 100)) == 8  # never above the largest
    path = tmp_path / "lines.txt"
    path.write_bytes(b"".join(f"line {i}\n".encode() for i in range(20)))
    with path.open("rb") as fh:
        assert [len(chunk) for chunk in raw_line_chunks(fh, chunk_sizes(8, 2))] == [2, 4, 8, 6]
    stream = io.BytesIO(path.read_bytes())  # an in-memory stream (no descriptor) the same way
    assert [len(chunk) for chunk in raw_line_chunks(stream, chunk_sizes(8, 2))] == [2, 4, 8, 6]


def test_classify_in_chunks_smaller_than_the_input_prints_and_logs_in_input_order(cli, tmp_path):
    lines = [*TEXTS[:3], "\x07\x07", *TEXTS[3:8]]  # line 4: nothing left after cleaning
    (tmp_path / "texts.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    small = cli(
        "classify", "--json", "--set", "input.chunk_size=3", "--file", "texts.txt", "-", stdin="From stdin.\n"
    )
    assert small.returncode == 0, small.stderr
    printed = [json.loads(line) for line in small.stdout.splitlines()]
    logged = records(tmp_path / "logs")
    assert printed == logged
    cleaned = [prepare_text(t, 5000).text for t in lines]
    assert [r["input_text"] for r in printed] == ["From stdin.", *filter(None, cleaned)]
    assert "skipped texts.txt:4: empty text" in small.stderr

    (tmp_path / "logs" / JSONL_NAME).unlink()
    whole = cli("classify", "--json", "--file", "texts.txt", "-", stdin="From stdin.\n", check=True)
    for a, b in zip([json.loads(line) for line in whole.stdout.splitlines()], printed, strict=True):
        assert_same(comparable(a), comparable(b))

    table = cli("classify", "--set", "input.chunk_size=2", "--file", "texts.txt", check=True)
    rows = table.stdout.splitlines()
    assert rows[0].split() == ["#", "label", "via", "model", "conf", "text"]  # one header
    assert [row.split()[0] for row in rows[1:]] == [str(n) for n in range(1, len(printed))]


def test_fsync_per_chunk_logs_the_same_records_with_one_sync_a_chunk(cli, tmp_path, monkeypatch):
    """``logging.fsync: chunk`` (the default): the same records as ``record``, and one ``fsync`` of
    app.jsonl per chunk instead of one per record (counted on the real ``os.fsync``, which runs)."""
    (tmp_path / "texts.txt").write_text("\n".join(TEXTS[:7]) + "\n", encoding="utf-8")
    jsonl = tmp_path / "logs" / JSONL_NAME
    synced: list[str] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    per_record = cli("classify", "--json", "--set", "logging.fsync=record", "--file", "texts.txt", check=True)
    record_syncs = synced.count(str(jsonl))
    logged = records(tmp_path / "logs")
    jsonl.unlink()
    synced.clear()
    sets = ["--set", "input.chunk_size=3"]
    per_chunk = cli("classify", "--json", *sets, "--file", "texts.txt", check=True)
    assert record_syncs == len(logged) >= 6
    assert synced.count(str(jsonl)) == 3  # chunks of 3, 3 and 1
    for a, b in zip(records(tmp_path / "logs"), logged, strict=True):
        assert_same(comparable(a), comparable(b))
    assert len(per_chunk.stdout.splitlines()) == len(per_record.stdout.splitlines()) == len(logged)


def test_classify_answers_the_first_line_of_stdin_before_the_input_ends(tmp_path):
    """A real process reading a pipe: its first JSON line arrives while stdin is still open."""
    sets = set_args([*graph_overrides(tmp_path), "embedder.enabled=false"])
    proc = subprocess.Popen(
        selfheal_argv("classify", "--json", "--accept", "0", "--clarify", "0", *sets, "-"),
        cwd=tmp_path,
        env=process_env(OMP_NUM_THREADS="1"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(b"A joy from start to finish.\nDull and lifeless.\n")
        proc.stdin.flush()
        # a guard against a hang, not a timing assertion: the model loads in this time many times over
        ready, _, _ = select.select([proc.stdout], [], [], 600)
        assert ready and proc.poll() is None, "no answer while stdin is open"
        first = json.loads(proc.stdout.readline())
        assert first["input_text"] == "A joy from start to finish."
        assert proc.poll() is None  # still running: waiting for more input
        proc.stdin.write(b"One more line.\n")
        proc.stdin.close()
        rest = [json.loads(line) for line in proc.stdout.read().splitlines()]
        assert proc.wait(timeout=600) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [r["input_text"] for r in rest] == ["Dull and lifeless.", "One more line."]
    assert [first, *rest] == records(tmp_path / "logs")
