"""The official LangGraph client (``langgraph_sdk.get_sync_client``) against a real uvicorn server
on a loopback port, on the real graph and model; and a graceful shutdown with a request in flight."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from server_helpers import AMBIGUOUS, make_app, records

TOKEN = "sdk-test-token"


class LiveServer:
    """uvicorn serving ``app`` in a thread on a free loopback port."""

    def __init__(self, app: Any) -> None:
        self.app = app
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            threading.Event().wait(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True  # what uvicorn's SIGTERM handler sets
        self.thread.join()


@pytest.fixture
def live(tmp_path, classifier, backup_ensemble) -> Iterator[LiveServer]:
    """A real server with a client token, its files under ``tmp_path``."""
    from selfheal.server.auth import Tokens

    app = make_app(tmp_path, classifier, backup_ensemble, tokens=Tokens(client=TOKEN))
    with LiveServer(app) as server:
        yield server


def test_the_langgraph_client_asks_reads_the_interrupt_resumes_and_reads_the_decision(tmp_path, live):
    from langgraph_sdk import get_sync_client
    from langgraph_sdk.errors import ConflictError

    client = get_sync_client(url=live.url, api_key=TOKEN)
    thread = client.threads.create()
    thread_id = thread["thread_id"]
    assert thread["status"] == "idle"

    paused = client.runs.wait(thread_id, "selfheal", input={"text": AMBIGUOUS})
    (interrupt,) = paused["__interrupt__"]
    assert interrupt["value"]["kind"] == "clarify"
    assert (
        interrupt["value"]["question"] == "Could you clarify your intent? Was this a positive review? (y/n)"
    )
    assert paused["request_id"] == thread_id and paused["text"] == AMBIGUOUS

    waiting = client.threads.search(status="interrupted")
    assert [t["thread_id"] for t in waiting] == [thread_id]
    assert waiting[0]["status"] == "interrupted"
    state = client.threads.get_state(thread_id)
    assert state["interrupts"] == [interrupt] and state["next"]
    assert records(tmp_path) == []

    # one request per thread: a second input is refused, as multitask_strategy="reject" does
    with pytest.raises((ConflictError, httpx.HTTPStatusError)) as refused:
        client.runs.wait(thread_id, "selfheal", input={"text": "Another text."})
    assert refused.value.response.status_code == 409

    final = client.runs.wait(thread_id, "selfheal", command={"resume": "no, it was negative"})
    assert "__interrupt__" not in final
    assert final["final_label"] == "Negative" and final["via"] == "user_clarification"
    (record,) = records(tmp_path)
    assert final["record"] == record and record["request_id"] == thread_id

    done = client.threads.get_state(thread_id)
    assert done["interrupts"] == [] and done["values"]["via"] == "user_clarification"
    assert client.threads.search(status="interrupted") == []
    assert client.threads.get(thread_id)["status"] == "idle"


def test_the_langgraph_routes_need_the_token(live):
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=live.url, api_key=None)
    with pytest.raises(httpx.HTTPStatusError) as refused:
        client.threads.create()
    assert refused.value.response.status_code == 401


def test_shutdown_lets_the_request_in_flight_finish_and_log(tmp_path, classifier, backup_ensemble):
    app = make_app(tmp_path, classifier, backup_ensemble)
    server = LiveServer(app).__enter__()
    lock = app.state.api.session.services.classifier._lock  # the models' lock (service.py)
    answers: list[httpx.Response] = []
    with lock:  # the request waits for the model while the server is told to stop
        worker = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{server.url}/v1/classify", json={"text": AMBIGUOUS}, timeout=120)
            )
        )
        worker.start()
        while app.state.inflight < 1:
            threading.Event().wait(0.01)
        server.server.should_exit = True
    worker.join()
    server.thread.join()
    (response,) = answers
    assert response.status_code == 200 and response.json()["status"] == "interrupted"
    # the paused request stays paused: a new server on the same files still has it
    thread_id = response.json()["thread_id"]
    again = make_app(tmp_path, classifier, backup_ensemble)
    from fastapi.testclient import TestClient

    with TestClient(again) as test_client:
        assert test_client.get(f"/v1/threads/{thread_id}").json()["status"] == "interrupted"
        done = test_client.post(f"/v1/threads/{thread_id}/resume", json={"answer": "yes"}).json()
    assert done["record"]["final_decision"] == {"label": "Positive", "via": "user_clarification"}
    assert len(records(tmp_path)) == 1


def test_the_serve_command_runs_a_real_server_that_stops_on_sigterm(tmp_path, cli):
    """``selfheal serve`` as a real process: the token from the environment, a decision over HTTP,
    SIGTERM ends it after a graceful shutdown."""
    import signal
    import subprocess

    from conftest import selfheal_argv

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(cli.env, SELFHEAL_TOKEN="process-token")
    argv = selfheal_argv("serve", "--port", str(port), *cli.args())
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            threading.Event().wait(0.2)
        assert httpx.post(f"{url}/v1/classify", json={"text": AMBIGUOUS}).status_code == 401
        headers = {"Authorization": "Bearer process-token"}
        body = httpx.post(f"{url}/v1/classify", json={"text": AMBIGUOUS}, headers=headers, timeout=120).json()
        assert body["status"] == "interrupted"
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=120)[0].decode()
    # uvicorn shuts down gracefully, then re-raises the signal, so the status says how it ended
    assert proc.returncode == -signal.SIGTERM, output
    assert "Traceback" not in output and "Application shutdown complete" in output
    # the paused request stays for `selfheal review`
    listed = cli("review", "--list", check=True)
    assert body["thread_id"][:8] in listed.stdout
