"""Nothing lost on faults: full disks, read-only and unusable log dirs, damaged files.

Real files throughout. A full disk is a small tmpfs mounted by the test, and a read-only log dir
is a tmpfs remounted read-only: both need root (the tests run as root here and in CI). Without
root (or without ``mount``) those tests are skipped, and ``test_failed_writes_roll_back_*``
still covers the same code by making ``os.write`` fail part-way (a fault-injecting stand-in for
the kernel, used only because a real full file system cannot be made without root).
The CLI cases run the commands in process (the ``cli`` fixture) on a COPY of the shipped
checkpoint; only `selfheal run` on a filling disk runs in a real terminal, and the preflight's
import cost is measured in a fresh interpreter.
"""

from __future__ import annotations

import contextlib
import errno
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, close_terminal, graph_overrides, process_env, selfheal_argv, set_args
from selfheal.logs.decisions import APP_LOG_NAME, JSONL_NAME
from selfheal.logs.jsonl import StorageError, append_line, read_lines, undo_append
from selfheal.model.checkpoint import (
    ADAPTER_WEIGHTS_FILE,
    EMBEDDER_HEAD_FILE,
    META_FILE,
    TFIDF_FILE,
    TOKENIZER_FILE,
    shipped_checkpoint,
)


def record(n: int, size: int = 100) -> dict:
    return {"request_id": f"r{n}", "inference": {"confidence": 0.9}, "pad": "x" * size}


def valid_lines(path: Path) -> list[dict]:
    """Every line of ``path`` parsed; fails on any partial or invalid line."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "the file ends in a partial line"
    return [json.loads(line) for line in data.splitlines()]


# --- small file systems (root only) -------------------------------------------------------------


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A tmpfs of ``size`` at ``path``; skips the test when it cannot be mounted (not root)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a tmpfs (the os.write fault-injection tests cover the code)")
    path.mkdir(parents=True, exist_ok=True)
    if not _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)):
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte; returns the filler file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0")
    finally:
        os.close(fd)
    return filler


@pytest.mark.parametrize("precheck", [True, False], ids=["free-space-check", "kernel-enospc"])
def test_append_on_a_full_tmpfs_writes_whole_lines_or_nothing(tmp_path, monkeypatch, precheck):
    """ENOSPC with a real (tiny) file system: earlier lines intact, no partial line, and the next
    append after freeing space is a clean record of its own. ``kernel-enospc`` turns the
    free-space pre-check off, so the kernel's own short write and ENOSPC are what is rolled back."""
    if not precheck:
        monkeypatch.setattr("selfheal.logs.jsonl._check_space", lambda fd, needed: None)
    with tmpfs(tmp_path / "fs", "256k") as fs:
        path = fs / JSONL_NAME
        append_line(path, record(0))
        append_line(path, record(1))
        before = path.read_bytes()
        filler = fill(fs)
        with pytest.raises(StorageError, match="No space left on device") as err:
            append_line(path, record(2, size=20_000))  # more than the slack of the last page
        assert str(path) in str(err.value)
        assert path.read_bytes() == before  # nothing of the failed line is left
        filler.unlink()
        append_line(path, record(3))
        assert [r["request_id"] for r in valid_lines(path)] == ["r0", "r1", "r3"]


def _writes_then_fails(limit: int, error: int):
    """An ``os.write`` that writes at most ``limit`` bytes per call and fails on the second call."""
    real_write, calls = os.write, []

    def write(fd: int, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(error, os.strerror(error))
        return real_write(fd, bytes(data[:limit]))

    return write


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EIO])
def test_failed_writes_roll_back_to_the_last_whole_line(tmp_path, monkeypatch, error):
    """Fault injection (runs without root): the first write is short, the second fails."""
    path = tmp_path / JSONL_NAME
    append_line(path, record(0))
    before = path.read_bytes()
    monkeypatch.setattr("selfheal.logs.jsonl.os.write", _writes_then_fails(50, error))
    with pytest.raises(StorageError, match=os.strerror(error)):
        append_line(path, record(1))
    monkeypatch.undo()
    assert path.read_bytes() == before
    append_line(path, record(2))
    assert [r["request_id"] for r in valid_lines(path)] == ["r0", "r2"]


def test_a_damaged_tail_from_an_older_crash_does_not_swallow_the_next_record(tmp_path):
    from selfheal.logs.clarified import append_clarified, load_clarified
    from selfheal.logs.stats import read_log

    log = tmp_path / JSONL_NAME
    log.write_text(json.dumps(record(0)) + '\n{"request_id": "r1", "infer')  # a crash mid-line
    append_line(log, record(2))
    lines = list(read_lines(log))
    assert [(n, r and r["request_id"]) for n, r in lines] == [(1, "r0"), (2, None), (3, "r2")]
    stats = read_log(log)
    assert (len(stats.requests), stats.skipped) == (2, 1)

    clarified = tmp_path / "clarified.jsonl"
    clarified.write_text('{"text": "a fine film", "label": "Positive"}\n{"text": "dull", "lab')
    append_clarified(clarified, "dull as dishwater", "Negative", "r9", "user_clarification")
    assert load_clarified(clarified) == [("a fine film", "Positive"), ("dull as dishwater", "Negative")]


def test_undo_append_takes_back_only_a_line_that_is_still_last(tmp_path):
    path = tmp_path / JSONL_NAME
    first = append_line(path, record(0))
    second = append_line(path, record(1))
    assert undo_append(first) is False  # another line follows it: never touched
    assert undo_append(second) is True
    assert [r["request_id"] for r in valid_lines(path)] == ["r0"]


def _append_many(path: str, worker: int) -> None:
    for i in range(60):
        append_line(Path(path), record(1000 * worker + i, size=9000))  # > PIPE_BUF per line


def test_concurrent_processes_append_whole_lines(tmp_path):
    path = tmp_path / JSONL_NAME
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(str(path), w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert len({r["request_id"] for r in valid_lines(path)}) == 240


def test_an_unwritable_app_log_warns_once_and_app_jsonl_is_still_written(tmp_path, capfd):
    from selfheal.config import load_config
    from selfheal.logs.decisions import LogWriter, build_record

    config = load_config(REPO / "config.yaml", graph_overrides(tmp_path))
    (config.paths.log_dir / APP_LOG_NAME).mkdir(parents=True)  # app.log cannot be opened
    writer = LogWriter(config)
    for n in range(2):
        state = {
            "request_id": f"r{n}",
            "text": "fine",
            "inference": {"label": "Positive", "confidence": 0.9},
            "final_label": "Positive",
            "via": "model",
        }
        writer.write(build_record(state, []))
    assert [r["request_id"] for r in valid_lines(writer.jsonl_path)] == ["r0", "r1"]
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.strip()] == [
        f"warning: cannot write {config.paths.log_dir.resolve() / APP_LOG_NAME}: Is a directory "
        "(app.jsonl is still written)"
    ]


# --- a decision is recorded whole or not at all (real graph, real classifier) -------------------


def test_a_failed_clarified_write_takes_back_the_log_line_and_review_records_it_later(session, tmp_path):
    """app.jsonl is written, then clarified.jsonl fails: the app.jsonl line is taken back; the
    answer stays in the checkpoint and `finish_unrecorded` (run by `selfheal review`) logs it."""
    from selfheal.graph.nodes import FINAL_DECISION

    session.config.thresholds.clarify = 0.0  # always ask
    session.config.thresholds.accept = 1.0
    good = session.config.paths.clarified
    (tmp_path / "not-a-dir").write_text("")
    session.config.paths.clarified = tmp_path / "not-a-dir" / "clarified.jsonl"
    outcome = session.start("The movie was painfully slow and boring.", interactive=True)
    assert outcome.waiting["kind"] == "clarify"
    with pytest.raises(StorageError, match=re.escape("not-a-dir/clarified.jsonl: Not a directory")):
        session.resume(outcome.request_id, "y")
    log = session.config.paths.log_dir / JSONL_NAME
    assert valid_lines(log) == []  # the record was taken back: no half-recorded decision
    snapshot = session.graph.get_state(session._thread(outcome.request_id))
    assert tuple(snapshot.next) == (FINAL_DECISION,) and snapshot.values["via"] == "user_clarification"

    session.config.paths.clarified = good
    assert session.finish_unrecorded(min_age=60) == []  # too fresh: maybe another process's
    assert len(session.finish_unrecorded(min_age=0)) == 1
    (logged,) = valid_lines(log)
    assert logged["request_id"] == outcome.request_id
    assert logged["final_decision"]["via"] == "user_clarification"
    assert json.loads(good.read_text())["request_id"] == outcome.request_id
    assert session.finish_unrecorded(min_age=0) == []


def test_a_failed_new_request_leaves_nothing_behind(session, tmp_path):
    session.config.thresholds.clarify = 0.0
    session.config.thresholds.accept = 0.0
    log_dir = session.config.paths.log_dir
    log_dir.mkdir(parents=True)
    (log_dir / JSONL_NAME).mkdir()  # the record cannot be written
    with pytest.raises(StorageError, match=re.escape(f"{JSONL_NAME}: Is a directory")):
        session.start("An absolute joy from start to finish.", interactive=False)
    assert list(session.checkpointer.list(None)) == []


# --- the real CLI ---------------------------------------------------------------------------------


def assert_one_error_line(result, *fragments: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Aborted" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def checkpoint_copy(tmp_path) -> Path:
    """A copy of the shipped checkpoint to damage (the real one is never touched)."""
    return Path(shutil.copytree(shipped_checkpoint(), tmp_path / "checkpoint"))


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


DAMAGE = {
    "tfidf-truncated": (TFIDF_FILE, lambda p: truncate(p)),
    "adapter-truncated": (ADAPTER_WEIGHTS_FILE, lambda p: truncate(p)),
    "embedder-head-truncated": (EMBEDDER_HEAD_FILE, lambda p: truncate(p, 0.3)),
    "meta-empty-object": (META_FILE, lambda p: p.write_text("{}")),
    "meta-truncated": (META_FILE, lambda p: truncate(p)),
    "meta-a-list": (META_FILE, lambda p: p.write_text("[1, 2]")),
    "tokenizer-truncated": (TOKENIZER_FILE, lambda p: truncate(p)),
    "adapter-empty": (ADAPTER_WEIGHTS_FILE, lambda p: p.write_bytes(b"")),
}


@pytest.mark.parametrize("case", DAMAGE)
@pytest.mark.parametrize("command", ["classify", "run"])
def test_a_damaged_checkpoint_file_is_one_error_line_naming_it(cli, tmp_path, checkpoint_copy, case, command):
    name, damage = DAMAGE[case]
    damage(checkpoint_copy / name)
    args = [command, "--set", f"paths.checkpoint={checkpoint_copy}"] + (
        ["great film"] if command == "classify" else []
    )
    result = cli(*args)
    assert_one_error_line(result, str(checkpoint_copy / name))
    assert "Enter text" not in result.stdout  # `run` failed before its prompt
    assert not (tmp_path / "logs" / JSONL_NAME).exists()


def test_the_loaders_themselves_name_a_damaged_file(checkpoint_copy):
    """Behind the preflight: each loader raises ModelError naming the file (no EOFError)."""
    from selfheal.model.backup import TfidfBackup
    from selfheal.model.checkpoint import ModelError, read_meta
    from selfheal.model.embedder import EmbeddingHead

    truncate(checkpoint_copy / TFIDF_FILE)
    with pytest.raises(ModelError, match=re.escape(TFIDF_FILE)):
        TfidfBackup.load(checkpoint_copy)
    truncate(checkpoint_copy / EMBEDDER_HEAD_FILE)
    with pytest.raises(ModelError, match=re.escape(EMBEDDER_HEAD_FILE)):
        EmbeddingHead.load(checkpoint_copy)
    (checkpoint_copy / META_FILE).write_text("{}")
    with pytest.raises(ModelError, match=re.escape(f"{META_FILE}: missing or bad max_length, pooling")):
        read_meta(checkpoint_copy)


@pytest.mark.parametrize("command", ["classify", "run", "review"])
def test_an_unusable_log_dir_is_one_error_line_before_any_model_loads(cli, tmp_path, command):
    (tmp_path / "afile").write_text("")
    cases = {
        "a file": (f"paths.log_dir={tmp_path / 'afile'}", "not a directory"),
        "under a file": (f"paths.log_dir={tmp_path / 'afile' / 'logs'}", "Not a directory"),
    }
    (tmp_path / "logs2" / JSONL_NAME).mkdir(parents=True)
    cases["app.jsonl a directory"] = (
        f"paths.log_dir={tmp_path / 'logs2'}",
        f"{JSONL_NAME}: it is not a regular file",
    )
    extra = ["great film"] if command == "classify" else []
    for setting, fragment in cases.values():
        result = cli(command, "--set", setting, *extra)
        assert_one_error_line(result, fragment)
        assert "Enter text" not in result.stdout


def test_a_read_only_log_dir_is_one_error_line(cli, tmp_path):
    with tmpfs(tmp_path / "ro", "1m") as fs:
        (fs / "logs").mkdir()
        (fs / "logs" / JSONL_NAME).write_text(json.dumps(record(0)) + "\n")
        assert _mount("-o", "remount,ro", str(fs))
        for command in ("classify", "run", "review"):
            extra = ["great film"] if command == "classify" else []
            result = cli(command, "--set", f"paths.log_dir={fs / 'logs'}", *extra)
            assert_one_error_line(result, str(fs / "logs"), "Read-only file system")
        assert [r["request_id"] for r in valid_lines(fs / "logs" / JSONL_NAME)] == ["r0"]


def test_classify_on_a_disk_that_fills_up_keeps_what_was_done(cli, tmp_path):
    """The real CLI classifies until its log dir (a 1 MiB tmpfs) is full: one error line,
    exit 2, every record written before is whole, the failed one is in no file, and `stats`
    reads the log without a skipped line. (Accepted requests write no checkpoint, so the records
    alone must fill the disk: 400 records of about 3.6 kB.)"""
    texts = [f"Review number {i}: " + "a quietly moving, well acted film. " * 100 for i in range(400)]
    with tmpfs(tmp_path / "fs", "1m") as fs:
        result = cli(
            "classify",
            "--json",
            "--accept",
            "0",
            "--clarify",
            "0",
            "--set",
            f"paths.log_dir={fs / 'logs'}",
            "--set",
            "embedder.enabled=false",
            *texts,
        )
        line = assert_one_error_line(
            result, "No space left on device" if JSONL_NAME in result.stderr else "full"
        )
        logged = valid_lines(fs / "logs" / JSONL_NAME)
        printed = [json.loads(out) for out in result.stdout.splitlines()]
        assert 0 < len(logged) < len(texts)
        assert [r["request_id"] for r in logged] == [r["request_id"] for r in printed]
        assert f"arg {len(logged) + 1} was not recorded; {len(logged)} input(s) before it were" in line
        stats = cli("stats", "--log", str(fs / "logs" / JSONL_NAME))
        assert stats.returncode == 0 and "skipped" not in stats.stdout.splitlines()[0]


def test_stats_skips_valid_json_that_is_not_a_decision_record(cli, tmp_path):
    log = tmp_path / JSONL_NAME
    good = {"request_id": "ok", "inference": {"confidence": 0.9}, "final_decision": {"via": "model"}}
    bad = [
        {"request_id": "a", "inference": {"confidence": 0.9}, "final_decision": "Positive"},
        {"request_id": "b", "inference": {"confidence": 0.9}, "confidence_check": "ACCEPT"},
        {"request_id": "c", "inference": "0.9"},
        {"request_id": 7, "inference": {"confidence": 0.9}},
        {"request_id": "d", "inference": {"confidence": "NaN"}},
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in [good, *bad]) + "[1, 2]\n")
    result = cli("stats", "--log", str(log))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].endswith(
        "1 request(s) from 7 line(s) (6 corrupt or incomplete line(s) skipped)"
    )


# --- the embedder cache ($SELFHEAL_CACHE) ---------------------------------------------------------


@pytest.mark.parametrize("command", ["classify", "run"])
def test_an_unusable_embedder_cache_is_one_error_line_before_any_model_loads(
    cli, tmp_path, monkeypatch, command
):
    (tmp_path / "afile").write_text("")
    extra = ["great film"] if command == "classify" else []
    monkeypatch.setenv("SELFHEAL_CACHE", str(tmp_path / "afile" / "cache"))
    result = cli(command, *extra)
    assert_one_error_line(result, f"embedder cache {tmp_path / 'afile' / 'cache'}", "SELFHEAL_CACHE")
    assert "Enter text" not in result.stdout


def test_corrupt_embedder_weights_in_the_cache_are_detected_and_extracted_again(tmp_path, monkeypatch):
    """Weights whose size or mtime no longer match the stamp are hashed again and, when the
    digest differs, extracted afresh from the installed packages (writes ~440 MB under tmp_path)."""
    from selfheal.model import embedder

    try:
        real = embedder.bundled_embedder_path()
    except embedder.EmbedderNotInstalled:
        pytest.skip("the embedder weights are not installed")
    monkeypatch.setenv("SELFHEAL_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "cache" / real.name
    copy.mkdir(parents=True)
    for name in embedder._MODEL_FILES:
        if name != "model.safetensors":
            shutil.copy(real / name, copy / name)
    (copy / "model.safetensors").write_bytes((real / "model.safetensors").read_bytes()[: 1 << 20])
    embedder.check_cache()  # not verified, but the cache is writable: the loader will repair it
    assert embedder.bundled_embedder_path() == copy
    assert (copy / "model.safetensors").stat().st_size == (real / "model.safetensors").stat().st_size
    stamp = json.loads((copy / embedder._STAMP).read_text())
    assert stamp["sha256"] == embedder._WEIGHTS_SHA256
    assert stamp == embedder._stamp_of(copy / "model.safetensors")


def test_a_full_disk_under_app_jsonl_fails_the_request_and_keeps_the_rest(
    tmp_path, classifier, backup_ensemble
):
    """The real graph with app.jsonl on a full tmpfs (the checkpointer in memory): the request
    fails with a StorageError, app.jsonl keeps its earlier records whole, the thread is gone, and
    after space is freed the next request is a clean record of its own."""
    from langgraph.checkpoint.memory import InMemorySaver

    from selfheal.config import load_config
    from selfheal.graph.services import Services
    from selfheal.graph.session import Session

    with tmpfs(tmp_path / "fs", "256k") as fs:
        config = load_config(REPO / "config.yaml", [*graph_overrides(tmp_path), f"paths.log_dir={fs}"])
        config.thresholds.clarify = 0.0
        config.thresholds.accept = 0.0  # every request is decided by the model
        session = Session(Services(config, classifier=classifier, backups=backup_ensemble), InMemorySaver())
        first = session.start("An absolute joy from start to finish.", interactive=False)
        before = (fs / JSONL_NAME).read_bytes()
        filler = fill(fs)
        with pytest.raises(StorageError, match="No space left on device"):
            session.start("Dull as dishwater. " * 200, interactive=False)
        assert (fs / JSONL_NAME).read_bytes() == before
        assert [item.config["configurable"]["thread_id"] for item in session.checkpointer.list(None)] == []
        filler.unlink()
        last = session.start("A brilliant cast wasted on a dreadful script.", interactive=False)
        ids = [r["request_id"] for r in valid_lines(fs / JSONL_NAME)]
        assert ids == [first.request_id, last.request_id]


def test_the_preflight_stays_cheap_and_names_the_real_database_file(tmp_path):
    """The check before the prompt imports no numpy, torch or LangGraph (start-up stays fast)."""
    code = (
        "import sys; from selfheal.config import load_config; from selfheal.cli.preflight import preflight; "
        f"preflight(load_config({str(REPO / 'config.yaml')!r}, ['paths.log_dir={tmp_path / 'logs'}'])); "
        "print(sorted(m for m in ('numpy', 'torch', 'transformers', 'langgraph') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=process_env(),
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_run_on_a_disk_that_fills_up_exits_with_one_error_line_and_keeps_earlier_records(tmp_path):
    """`selfheal run` in a terminal: one request is decided, then the log dir's file system
    fills up; the next request ends the run with one `error:` line and exit 2, and app.jsonl
    still holds the first record, whole."""
    pexpect = pytest.importorskip("pexpect")
    prompt = "> Enter text (or 'quit'):"
    with tmpfs(tmp_path / "fs", "512k") as fs:
        program, *args = selfheal_argv("run", *set_args(graph_overrides(tmp_path)))
        args += ["--set", f"paths.log_dir={fs / 'logs'}", "--accept", "0", "--clarify", "0"]
        child = pexpect.spawn(
            program, args, cwd=str(tmp_path), env=process_env(), encoding="utf-8", timeout=240
        )
        child.expect_exact(prompt)
        child.sendline("A lovely, warm film.")
        child.expect_exact(prompt)
        fill(fs)
        child.sendline("Dull and far too long. " * 100)
        child.expect(pexpect.EOF)
        assert close_terminal(child) == 2
        errors = [line for line in child.before.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "Traceback" not in child.before
        assert str(fs / "logs") in errors[0]
        (logged,) = valid_lines(fs / "logs" / JSONL_NAME)
        assert logged["input_text"] == "A lovely, warm film."
