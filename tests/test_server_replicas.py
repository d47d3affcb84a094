"""Two real ``selfheal serve`` processes on one real PostgreSQL database (tests/pg.py): a question
asked through one is answered through the other, and two simultaneous answers, one on each
replica, of which exactly one wins. Each replica has its own log directory, as on two hosts."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import graph_overrides, process_env, selfheal_argv, set_args
from server_helpers import AMBIGUOUS, race, records


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(proc: subprocess.Popen, url: str, out: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        assert proc.poll() is None, out.read_text(encoding="utf-8", errors="replace")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} was not ready in time")


@pytest.fixture
def replicas(tmp_path: Path, pg_url: str) -> Iterator[list[str]]:
    """The URLs of two ``selfheal serve --db <PostgreSQL>`` processes (logs in ``tmp_path/a``, ``/b``).

    Each one's output goes to ``serve.out`` in its directory, not to a pipe: a pipe nobody reads
    while the test runs would stop the server at its next line once full."""
    procs, urls, outs = [], [], []
    try:
        for name in ("a", "b"):
            port = _free_port()
            (tmp_path / name).mkdir()
            argv = selfheal_argv(
                "serve", "--port", str(port), "--db", pg_url, *set_args(graph_overrides(tmp_path / name))
            )
            out = tmp_path / name / "serve.out"
            with out.open("wb") as sink:
                procs.append(
                    subprocess.Popen(
                        argv, cwd=tmp_path / name, env=process_env(), stdout=sink, stderr=subprocess.STDOUT
                    )
                )
            urls.append(f"http://127.0.0.1:{port}")
            outs.append(out)
        deadline = time.monotonic() + 300
        for proc, url, out in zip(procs, urls, outs, strict=True):
            _wait_ready(proc, url, out, deadline)
        yield urls
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc, out in zip(procs, outs, strict=True):
            proc.wait(timeout=120)
            output = out.read_text(encoding="utf-8", errors="replace")
            assert "Traceback" not in output, output


def test_two_serve_processes_share_the_question_and_exactly_one_answer_wins(tmp_path, replicas):
    first, second = replicas
    asked = httpx.post(f"{first}/v1/classify", json={"text": AMBIGUOUS}, timeout=120).json()
    assert asked["status"] == "interrupted"
    thread_id = asked["thread_id"]
    assert httpx.get(f"{second}/v1/threads/{thread_id}", timeout=30).json()["interrupt"] == asked["interrupt"]
    done = httpx.post(f"{second}/v1/threads/{thread_id}/resume", json={"answer": "no"}, timeout=120).json()
    assert done["record"]["final_decision"] == {"label": "Negative", "via": "user_clarification"}
    assert records(tmp_path / "a") == [] and records(tmp_path / "b") == [done["record"]]

    # two answers at once, one through each process: one 200, one 409, one record
    raced = httpx.post(f"{second}/v1/classify", json={"text": AMBIGUOUS}, timeout=120).json()["thread_id"]
    url = f"/v1/threads/{raced}/resume"
    statuses = race(
        {
            "a": lambda: httpx.post(f"{first}{url}", json={"answer": "yes"}, timeout=120).status_code,
            "b": lambda: httpx.post(f"{second}{url}", json={"answer": "no"}, timeout=120).status_code,
        }
    )
    assert sorted(statuses.values()) == [200, 409]
    winner = "a" if statuses["a"] == 200 else "b"
    decided = [r for r in records(tmp_path / "a") + records(tmp_path / "b") if r["request_id"] == raced]
    assert len(decided) == 1
    assert decided[0]["final_decision"]["label"] == ("Positive" if winner == "a" else "Negative")
    assert records(tmp_path / winner)[-1]["request_id"] == raced
