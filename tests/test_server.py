"""``selfheal serve``'s /v1 API with FastAPI's TestClient, on the real graph, model and files."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from fastapi.testclient import TestClient

from conftest import invoke
from server_helpers import ACCEPTED, AMBIGUOUS, make_app, records


@pytest.fixture
def client(tmp_path, classifier, backup_ensemble):
    """The app with no token, its files under ``tmp_path`` (the lifespan runs)."""
    with TestClient(make_app(tmp_path, classifier, backup_ensemble)) as test_client:
        yield test_client


def one_line(response) -> str:
    """The response's error detail, checked to be one line of JSON ``{"detail": ...}``."""
    body = response.json()
    assert set(body) == {"detail"}
    assert "\n" not in body["detail"] and "Traceback" not in body["detail"]
    return body["detail"]


def test_an_accepted_text_is_done_and_logged_once(tmp_path, client):
    response = client.post("/v1/classify", json={"text": ACCEPTED})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "done" and "interrupt" not in body
    assert uuid.UUID(body["thread_id"]).version == 4
    record = body["record"]
    assert record["final_decision"] == {"label": "Negative", "via": "model"}
    assert record["mode"] == "interactive"
    assert records(tmp_path) == [record]  # the very line in app.jsonl, written once
    thread = client.get(f"/v1/threads/{body['thread_id']}").json()
    assert thread["status"] == "done" and thread["record"] == record


def test_a_clarification_is_asked_and_answered_over_http(tmp_path, client):
    body = client.post("/v1/classify", json={"text": AMBIGUOUS}).json()
    assert body["status"] == "interrupted" and "record" not in body
    interrupt = body["interrupt"]
    assert interrupt["kind"] == "clarification" and interrupt["step"] == "clarify"
    assert interrupt["question"] == "Could you clarify your intent? Was this a positive review? (y/n)"
    assert interrupt["choices"] == ["Negative", "Positive"]
    thread_id = body["thread_id"]
    assert records(tmp_path) == []  # nothing is logged while it waits

    waiting = client.get(f"/v1/threads/{thread_id}").json()
    assert waiting["status"] == "interrupted" and waiting["interrupt"] == interrupt
    assert waiting["values"]["text"] == AMBIGUOUS

    # an answer that names no choice: 422, and the same question still waits
    bad = client.post(f"/v1/threads/{thread_id}/resume", json={"answer": "banana"})
    assert bad.status_code == 422
    assert one_line(bad) == "answer 'banana' is not one of the choices (yes/no or negative/positive)"
    assert client.get(f"/v1/threads/{thread_id}").json()["interrupt"] == interrupt

    done = client.post(f"/v1/threads/{thread_id}/resume", json={"answer": "No, it was negative."})
    assert done.status_code == 200
    result = done.json()
    assert result["status"] == "done"
    assert result["record"]["final_decision"] == {"label": "Negative", "via": "user_clarification"}
    assert result["record"]["fallback"]["user_response"] == ["No, it was negative."]
    assert records(tmp_path) == [result["record"]]
    clarified = [json.loads(line) for line in (tmp_path / "clarified.jsonl").read_text().splitlines()]
    assert [(c["text"], c["label"]) for c in clarified] == [(AMBIGUOUS, "Negative")]

    again = client.post(f"/v1/threads/{thread_id}/resume", json={"answer": "yes"})
    assert again.status_code == 409 and "waits for no answer" in one_line(again)
    assert len(records(tmp_path)) == 1


def test_unsure_is_asked_again_then_the_forced_choice_and_quit_leaves_it_for_review(tmp_path, client):
    thread_id = client.post("/v1/classify", json={"text": AMBIGUOUS}).json()["thread_id"]
    first = client.post(f"/v1/threads/{thread_id}/resume", json={"answer": "I don't know"}).json()
    assert first["status"] == "interrupted" and first["interrupt"]["question"].startswith("Sorry")
    # a stale interrupt id is refused
    stale = client.post(
        f"/v1/threads/{thread_id}/resume", json={"answer": "no", "interrupt_id": "not-the-current-one"}
    )
    assert stale.status_code == 409
    # the second "I don't know" is the last attempt: the backups disagree or are unsure, so the
    # person is asked a forced choice (as `selfheal run` does)
    second = client.post(f"/v1/threads/{thread_id}/resume", json={"answer": "maybe"}).json()
    assert second["status"] == "interrupted"
    assert second["interrupt"]["step"] == "review" and second["interrupt"]["kind"] == "review"
    pending = client.post(f"/v1/threads/{thread_id}/resume", json={"answer": "quit"}).json()
    assert pending["interrupt"]["step"] == "review_queue"
    assert pending["record"]["final_decision"] == {"label": None, "via": "pending_review"}
    # the client can no longer answer: a reviewer does
    refused = client.post(f"/v1/threads/{thread_id}/resume", json={"answer": "negative"})
    assert refused.status_code == 409 and "waits for a reviewer" in one_line(refused)
    queue = client.get("/v1/review").json()
    assert [item["thread_id"] for item in queue["items"]] == [thread_id] and queue["total"] == 1
    reviewed = client.post(f"/v1/review/{thread_id}", json={"label": "positive"}).json()
    assert reviewed["record"]["final_decision"] == {"label": "Positive", "via": "human_review"}
    assert [r["final_decision"]["via"] for r in records(tmp_path)] == ["pending_review", "human_review"]


def test_unknown_threads_and_bad_answers(client):
    unknown = str(uuid.uuid4())
    for path in (f"/v1/threads/{unknown}", "/v1/threads/not-a-uuid"):
        response = client.get(path)
        assert response.status_code == 404 and one_line(response).startswith("unknown thread")
    response = client.post(f"/v1/threads/{unknown}/resume", json={"answer": "yes"})
    assert response.status_code == 404
    response = client.post(f"/v1/review/{unknown}", json={"label": "positive"})
    assert response.status_code == 404
    # a thread id the client did not create with POST /threads
    response = client.post("/v1/classify", json={"text": ACCEPTED, "thread_id": unknown})
    assert response.status_code == 404 and "POST /threads" in one_line(response)
    # a thread created first (POST /threads), then used once by /v1/classify
    thread_id = client.post("/threads", json={}).json()["thread_id"]
    assert client.get(f"/v1/threads/{thread_id}").json() == {
        "thread_id": thread_id,
        "status": "idle",
        "values": {},
    }
    done = client.post("/v1/classify", json={"text": ACCEPTED, "thread_id": thread_id}).json()
    assert done["thread_id"] == thread_id and done["record"]["request_id"] == thread_id
    again = client.post("/v1/classify", json={"text": ACCEPTED, "thread_id": thread_id})
    assert again.status_code == 409 and "one request per thread" in one_line(again)


def test_two_answers_to_the_same_question_exactly_one_wins(tmp_path, client):
    thread_id = client.post("/v1/classify", json={"text": AMBIGUOUS}).json()["thread_id"]
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def answer(text: str) -> None:
        barrier.wait()
        statuses.append(client.post(f"/v1/threads/{thread_id}/resume", json={"answer": text}).status_code)

    threads = [threading.Thread(target=answer, args=(text,)) for text in ("yes", "no")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 409]
    (record,) = records(tmp_path)
    assert record["request_id"] == thread_id and record["final_decision"]["via"] == "user_clarification"


def test_batch_never_waits_and_its_pending_requests_reach_the_review_queue(tmp_path, client):
    response = client.post("/v1/classify/batch", json={"texts": [ACCEPTED, AMBIGUOUS]})
    assert response.status_code == 200
    accepted, unsure = response.json()["results"]
    assert accepted["status"] == "done" and accepted["record"]["mode"] == "batch"
    assert unsure["status"] == "interrupted" and unsure["interrupt"]["step"] == "review_queue"
    assert unsure["record"]["final_decision"]["via"] == "pending_review"
    assert unsure["record"]["fallback"]["no_answer_reason"] == "non_interactive"
    assert [r["request_id"] for r in records(tmp_path)] == [accepted["thread_id"], unsure["thread_id"]]
    bad = client.post(f"/v1/review/{unsure['thread_id']}", json={"label": "perhaps"})
    assert bad.status_code == 422 and one_line(bad).startswith("label 'perhaps' is not one of the choices")
    empty = client.post("/v1/classify/batch", json={"texts": [ACCEPTED, " "]})
    assert empty.status_code == 422 and one_line(empty) == "texts[1] is empty"
    assert client.post("/v1/classify/batch", json={"texts": []}).status_code == 422


def test_the_cli_review_sees_what_the_server_left_pending(tmp_path, client, cli):
    thread_id = client.post("/v1/classify/batch", json={"texts": [AMBIGUOUS]}).json()["results"][0][
        "thread_id"
    ]
    listed = cli("review", "--list", check=True)
    assert thread_id[:8] in listed.stdout and AMBIGUOUS in listed.stdout


def test_bad_requests_get_one_line_4xx(client, tmp_path):
    cases = [
        ({"content": b"{bad", "headers": {"content-type": "application/json"}}, 400),
        ({"json": {}}, 422),
        ({"json": {"text": 5}}, 422),
        ({"json": {"text": "fine", "extra": 1}}, 422),
        ({"json": ["a list"]}, 422),
        ({"json": {"text": ""}}, 422),
        ({"json": {"text": "x" * 5001}}, 422),
        ({"json": {"text": "fine", "thread_id": "not-a-uuid"}}, 422),
    ]
    for kwargs, status in cases:
        response = client.post("/v1/classify", **kwargs)
        assert response.status_code == status, (kwargs, response.text)
        one_line(response)
    too_big = client.post("/v1/classify", json={"text": "x" * 1_100_000})
    assert too_big.status_code == 413 and "server.max_body_bytes" in one_line(too_big)
    # the same without a Content-Length (a chunked body): counted while it is read
    chunked = client.post(
        "/v1/classify",
        content=(b"x" * 100_000 for _ in range(11)),
        headers={"content-type": "application/json"},
    )
    assert chunked.status_code == 413 and "server.max_body_bytes" in one_line(chunked)
    assert records(tmp_path) == []


def test_health_readiness_and_metrics(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    client.post("/v1/classify", json={"text": ACCEPTED})
    client.post("/v1/classify/batch", json={"texts": [AMBIGUOUS]})
    text = client.get("/metrics").text
    assert 'selfheal_decisions_total{route="accept",via="model"} 1.0' in text
    assert 'selfheal_decisions_total{route="ask_clarify",via="pending_review"} 1.0' in text
    assert 'selfheal_http_requests_total{endpoint="/v1/classify",method="POST",status="200"} 1.0' in text
    assert 'selfheal_http_request_seconds_count{endpoint="/v1/classify"} 1.0' in text
    assert "selfheal_pending_requests 1.0" in text
    assert client.get("/docs").status_code == 200
    assert "/v1/threads/{thread_id}/resume" in client.get("/openapi.json").json()["paths"]


def test_readyz_is_503_before_the_model_is_loaded(tmp_path, classifier, backup_ensemble):
    app = make_app(tmp_path, classifier, backup_ensemble)
    test_client = TestClient(app)  # no `with`: the lifespan has not run
    assert test_client.get("/healthz").status_code == 200
    response = test_client.get("/readyz")
    assert response.status_code == 503 and one_line(response).startswith("not ready")


def test_beyond_max_inflight_a_503_with_retry_after(tmp_path, classifier, backup_ensemble):
    app = make_app(tmp_path, classifier, backup_ensemble, "server.max_inflight=1", "server.retry_after=7")
    with TestClient(app) as test_client:
        lock = app.state.api.session.services.classifier._lock  # the models' lock (service.py)
        first: list[int] = []
        with lock:  # the first request holds its in-flight slot until the model is free
            worker = threading.Thread(
                target=lambda: first.append(
                    test_client.post("/v1/classify", json={"text": ACCEPTED}).status_code
                )
            )
            worker.start()
            while app.state.inflight < 1:
                threading.Event().wait(0.01)
            refused = test_client.post("/v1/classify", json={"text": ACCEPTED})
            assert refused.status_code == 503 and refused.headers["retry-after"] == "7"
            one_line(refused)
        worker.join()
        assert first == [200]
        assert "selfheal_rejected_total 1.0" in test_client.get("/metrics").text
    assert len(records(tmp_path)) == 1  # the refused one was never started


def test_tokens(tmp_path, classifier, backup_ensemble):
    from selfheal.server.auth import Tokens

    tokens = Tokens(client="client-secret", review="review-secret")
    app = make_app(tmp_path, classifier, backup_ensemble, tokens=tokens)
    as_client = {"Authorization": "Bearer client-secret"}
    as_reviewer = {"Authorization": "Bearer review-secret"}
    with TestClient(app) as test_client:
        assert test_client.get("/healthz").status_code == 200  # health and metrics need no token
        missing = test_client.post("/v1/classify", json={"text": AMBIGUOUS})
        assert missing.status_code == 401 and one_line(missing) == "missing bearer token"
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = test_client.post(
            "/v1/classify", json={"text": AMBIGUOUS}, headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401
        # the review token opens only the review endpoints, the client token all but those
        assert (
            test_client.post("/v1/classify", json={"text": AMBIGUOUS}, headers=as_reviewer).status_code == 401
        )
        assert test_client.get("/v1/review", headers=as_client).status_code == 401
        assert test_client.get("/v1/review", headers=as_reviewer).status_code == 200
        body = test_client.post("/v1/classify", json={"text": AMBIGUOUS}, headers=as_client).json()
        thread_id = body["thread_id"]
        # the SDK's x-api-key header counts as the client token
        assert (
            test_client.get(f"/v1/threads/{thread_id}", headers={"x-api-key": "client-secret"}).status_code
            == 200
        )

    # the same files served under another client token: that thread is not theirs
    tokens = Tokens(client="another-secret", review="another-review-secret")
    other = make_app(tmp_path, classifier, backup_ensemble, tokens=tokens)
    with TestClient(other) as test_client:
        headers = {"Authorization": "Bearer another-secret"}
        refused = test_client.post(f"/v1/threads/{thread_id}/resume", json={"answer": "no"}, headers=headers)
        assert refused.status_code == 403 and one_line(refused).endswith("created under another token")
        assert test_client.get(f"/v1/threads/{thread_id}", headers=headers).status_code == 403
    assert records(tmp_path) == []
    stored = (tmp_path / "logs" / "server_threads.sqlite").read_bytes()
    assert b"client-secret" not in stored  # only its SHA-256


def test_serve_command_rejects_bad_options_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SELFHEAL_TOKEN", raising=False)
    monkeypatch.delenv("SELFHEAL_REVIEW_TOKEN", raising=False)
    monkeypatch.delenv("SELFHEAL_DB", raising=False)
    cases = [
        (["--db", "postgresql://nobody@127.0.0.1:1/selfheal"], "cannot use PostgreSQL at"),
        (["--db", "mysql://x"], "unknown database URL"),
        (["--token-file", str(tmp_path / "absent")], "cannot read token file"),
        (["--set", "server.port=0"], "invalid value for 'server.port'"),
    ]
    for args, message in cases:
        result = invoke(["serve", *args])
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error: ") and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    monkeypatch.setenv("SELFHEAL_REVIEW_TOKEN", "only-a-review-token")
    result = invoke(["serve"])
    assert result.returncode == 2 and "a review token needs a client token too" in result.stderr


def test_an_unanswered_question_times_out_as_in_selfheal_run(tmp_path, classifier, backup_ensemble):
    app = make_app(tmp_path, classifier, backup_ensemble, "fallback.answer_timeout=600")
    with TestClient(app) as test_client:
        thread_id = test_client.post("/v1/classify", json={"text": AMBIGUOUS}).json()["thread_id"]
        api = app.state.api
        assert api.expire_questions(600) == []  # asked just now
        later = time.time() + 601  # as if the client had been silent for the whole timeout
        assert api.expire_questions(600, now=later) == [thread_id]
        thread = test_client.get(f"/v1/threads/{thread_id}").json()
        assert thread["interrupt"]["step"] == "review_queue"
        assert api.expire_questions(600, now=later) == []  # pending review is not a client question
    (record,) = records(tmp_path)
    assert record["final_decision"]["via"] == "pending_review"
    assert record["fallback"]["no_answer_reason"] == "timeout"
    assert record["fallback"]["review"]["mode"] == "queue"
