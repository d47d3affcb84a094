"""The dashboard with ``streamlit.testing.v1.AppTest``: the real app file, its four pages, the real
model, graph, SQLite checkpointer and log files (under the test's ``tmp_path``).

The dashboard gets its config the way ``selfheal dashboard`` passes it (the environment) and builds
its session through ``common.make_services``, which these tests point at the session's models
(:func:`conftest.shared_services`), as the in-process CLI tests do. The CLI (in process) writes into
the same log directory, so the queue the dashboard shows is the one ``selfheal review`` sees.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from conftest import REPO, graph_overrides, process_env, selfheal_argv, shared_services
from selfheal.dashboard import APP, CONFIG_ENV, SET_ENV, data, resources

TIMEOUT = 180  # seconds a script run may take (the first one loads the model)
AMBIGUOUS = "Not bad, not good, just there."  # the shipped model: Negative, about 65%
ESCALATED = ["The best thing about it is the end credits.", "Visually stunning, emotionally empty."]
# A real app.jsonl of one session (logs/sample/app.jsonl as scripts/make_log_sample.py wrote it at
# commit b2aa350), kept fixed here so that regenerating logs/sample cannot move these figures
SESSION_LOG = Path(__file__).parent / "data" / "session_log.jsonl"


@pytest.fixture
def dashboard(tmp_path, monkeypatch, request):
    """``dashboard(*overrides)``: a new AppTest of the app with this test's files and ``--set``
    overrides, sharing the session's models; the cached session is dropped after the test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("selfheal.cli.common.make_services", shared_services(request, tmp_path))
    monkeypatch.setenv(CONFIG_ENV, str(REPO / "config.yaml"))

    def make(*overrides: str) -> AppTest:
        monkeypatch.setenv(SET_ENV, json.dumps([*graph_overrides(tmp_path), *overrides]))
        return AppTest.from_file(str(APP), default_timeout=TIMEOUT)

    yield make
    resources.clear()
    for cached in (data.load, data.overview, data.summarise):
        cached.clear()


def page(at: AppTest, name: str) -> AppTest:
    """Run the app on one of its pages (``classify``, ``review``, ``analytics``, ``model``)."""
    at.run()  # switch_page needs the pages st.navigation registered in a first run
    return at.switch_page(f"pages/{name}.py").run()


def button(at: AppTest, label: str):
    """The one button labelled ``label``."""
    found = [b for b in at.button if b.label == label]
    assert len(found) == 1, [b.label for b in at.button]
    return found[0]


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


def log_records(tmp_path: Path) -> list[dict]:
    path = tmp_path / "logs" / "app.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_page_renders_on_a_fresh_log_dir(dashboard, tmp_path):
    at = dashboard(f"paths.reports_dir={REPO / 'reports' / 'eval'}")
    page(at, "classify")
    no_errors(at)
    assert texts(at.title) == ["Classify"]
    assert at.text_area(key="classify_text") is not None
    page(at, "review")
    no_errors(at)
    assert "No requests wait for review." in texts(at.info)
    page(at, "analytics")
    no_errors(at)
    assert any("No decisions logged yet" in t and "app.jsonl does not exist" in t for t in texts(at.info))
    page(at, "model")
    no_errors(at)
    assert texts(at.title) == ["Model"]
    assert "Evaluation targets" in texts(at.subheader)
    targets = at.dataframe[0].value
    metrics = json.loads((REPO / "reports" / "eval" / "metrics.json").read_text(encoding="utf-8"))
    assert list(targets["target"]) == [t["target"] for t in metrics["targets"]]
    assert "# selfheal sentiment model" in "\n".join(texts(at.markdown))
    assert len(at.image) == 2  # the reliability and risk-coverage figures


def test_classify_accepts_a_confident_text(dashboard, tmp_path):
    at = page(dashboard(), "classify")
    at.text_area(key="classify_text").input("An absolute joy from start to finish.")
    at.button[0].click().run()
    no_errors(at)
    assert texts(at.success) == ["Final Label: Positive"]
    assert "[InferenceNode] Predicted label: Positive" in at.code[0].value
    assert any(t.startswith("Route: **accept**") for t in texts(at.markdown))
    assert log_records(tmp_path)[-1]["final_decision"] == {"label": "Positive", "via": "model"}


def test_classify_asks_and_the_answer_resumes_the_same_thread(dashboard, tmp_path):
    at = page(dashboard("thresholds.accept=0.99"), "classify")
    at.text_area(key="classify_text").input(AMBIGUOUS)
    at.button[0].click().run()
    no_errors(at)
    [question] = texts(at.info)
    assert question == "Could you clarify your intent? Was this a positive review? (y/n)"
    request_id = at.session_state["classify"]["request_id"]
    assert not (tmp_path / "logs" / "app.jsonl").exists()  # paused: nothing decided yet
    button(at, "No").click().run()
    no_errors(at)
    assert texts(at.success) == ["Final Label: Negative (Confirmed via user clarification)"]
    assert "[FallbackNode] Could you clarify your intent?" in at.code[0].value
    [record] = log_records(tmp_path)
    assert record["request_id"] == request_id
    assert record["fallback"]["user_response"] == ["no"]
    assert record["final_decision"] == {"label": "Negative", "via": "user_clarification"}


def test_a_typed_answer_that_is_unclear_is_asked_again(dashboard, tmp_path):
    at = page(dashboard("thresholds.accept=0.99"), "classify")
    at.text_area(key="classify_text").input(AMBIGUOUS)
    at.button[0].click().run()
    at.text_input(key="classify_answer").input("maybe").run()
    no_errors(at)
    assert texts(at.info) == [
        "Sorry, I did not get that. Was this a positive review? Please answer yes or no. (y/n)"
    ]
    at.text_input(key="classify_answer").input("No, it was definitely negative.").run()
    assert texts(at.success) == ["Final Label: Negative (Confirmed via user clarification)"]
    [record] = log_records(tmp_path)
    assert record["fallback"]["user_response"] == ["maybe", "No, it was definitely negative."]


def test_with_three_labels_the_question_is_multiple_choice(dashboard, tmp_path):
    tweets = REPO / "models" / "tweets-3class"
    # knowability off: this test is about the question, not the input check (as test_tweets_model)
    at = page(
        dashboard(f"paths.checkpoint={tweets}", "thresholds.accept=0.99", "knowability.enabled=false"),
        "classify",
    )
    at.text_area(key="classify_text").input("The bus was late again this morning.")
    at.button[0].click().run()
    no_errors(at)
    assert texts(at.info) == [
        "Could you clarify your intent? Which label is right? 1) negative 2) neutral 3) positive"
    ]
    assert [b.label for b in at.button] == [
        "Classify",
        "negative",
        "neutral",
        "positive",
        "I don't know",
        "Leave for review",
    ]
    button(at, "neutral").click().run()
    no_errors(at)
    [final] = texts(at.success)
    assert final in {
        f"Final Label: neutral ({how} via user clarification)" for how in ("Confirmed", "Corrected")
    }
    [record] = log_records(tmp_path)
    assert list(record["inference"]["probs"]) == ["negative", "neutral", "positive"]
    assert record["final_decision"] == {"label": "neutral", "via": "user_clarification"}


def test_an_input_the_model_cannot_know_may_be_neither(dashboard, tmp_path):
    at = page(dashboard(), "classify")
    at.text_area(key="classify_text").input("qwv zxkj plmf")
    at.button[0].click().run()
    no_errors(at)
    [question] = texts(at.info)
    assert question.startswith("I can't tell what this is.")
    assert [b.label for b in at.button][1:4] == ["Negative", "Positive", "Neither"]
    button(at, "Neither").click().run()
    assert texts(at.warning) == ["Final Label: none (neither a positive nor a negative review, you said)"]
    assert log_records(tmp_path)[-1]["final_decision"] == {"label": None, "via": "user_none"}


def test_a_question_left_on_classify_is_answered_in_the_cli_review(dashboard, cli, tmp_path):
    at = page(dashboard("thresholds.accept=0.99"), "classify")
    at.text_area(key="classify_text").input(AMBIGUOUS)
    at.button[0].click().run()
    request_id = at.session_state["classify"]["request_id"]
    button(at, "Leave for review").click().run()
    no_errors(at)
    assert texts(at.warning) == ["Final Label: pending (escalated to human review)"]
    listed = cli("review", "--list", check=True)
    assert request_id[:8] in listed.stdout and AMBIGUOUS in listed.stdout
    review = cli("review", stdin="positive\n", check=True)
    assert "Final Label: Positive (via human review)" in review.stdout
    assert log_records(tmp_path)[-1]["final_decision"] == {"label": "Positive", "via": "human_review"}


def test_review_queue_first_answer_wins_second_sees_already_answered(dashboard, cli, tmp_path):
    # `selfheal classify` with everything escalated: both wait in the queue (as in logs/sample)
    cli("classify", "--accept", "1", "--clarify", "1", *ESCALATED, check=True)
    first, second = dashboard(), dashboard()
    page(first, "review")
    page(second, "review")
    for at in (first, second):
        no_errors(at)
        assert any(t.startswith("**2 request(s) wait for a person**") for t in texts(at.markdown))
        overview = at.dataframe[0].value
        assert list(overview["text"]) == ESCALATED
    pending = [r["request_id"] for r in log_records(tmp_path)]
    target = f"review-{pending[0]}-Negative"
    first.button(key=target).click().run()
    no_errors(first)
    assert texts(first.success) == [f"Request {pending[0][:8]}: Final Label: Negative (via human review)"]
    assert any(t.startswith("**1 request(s) wait for a person**") for t in texts(first.markdown))
    # the second reviewer still sees the old queue and answers the same request: too late
    second.button(key=f"review-{pending[0]}-Positive").click().run()
    no_errors(second)
    assert texts(second.warning) == [
        f"Already answered: request {pending[0][:8]} was answered by another reviewer; "
        "your answer was not used."
    ]
    records = log_records(tmp_path)
    decided = [
        r for r in records if r["request_id"] == pending[0] and r["final_decision"]["via"] == "human_review"
    ]
    assert [r["final_decision"]["label"] for r in decided] == ["Negative"]
    listed = cli("review", "--list", check=True)
    assert "1 request(s) wait for a person" in listed.stdout and pending[1][:8] in listed.stdout
    # the other one is answered in `selfheal review` (another session) while the page still shows it
    assert "Final Label: Positive (via human review)" in cli("review", stdin="p\n", check=True).stdout
    first.button(key=f"review-{pending[1]}-Negative").click().run()
    no_errors(first)
    assert texts(first.warning) == [
        f"Already answered: request {pending[1][:8]} was answered by another reviewer; "
        "your answer was not used."
    ]
    assert "No requests wait for review." in texts(first.info)
    labels = [r["final_decision"]["label"] for r in log_records(tmp_path) if r["request_id"] == pending[1]]
    assert labels == [None, "Positive"]  # pending, then the CLI reviewer's answer; nothing of the page's


def test_analytics_of_a_real_log_with_a_damaged_line(dashboard, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    sample = SESSION_LOG.read_text(encoding="utf-8").splitlines()
    (logs / "app.jsonl").write_text("\n".join([*sample[:5], '{"timestamp": "2026-11', *sample[5:]]) + "\n")
    at = page(dashboard(), "analytics")
    no_errors(at)
    assert (
        "1 damaged or incomplete line(s) skipped; 3 earlier record(s) of reviewed requests superseded."
        in (texts(at.warning))
    )
    # 12 lines, 9 requests (3 reviewed ones logged twice): see SESSION_LOG
    table = data.read_table(logs / "app.jsonl")
    assert (table.lines, table.skipped, table.superseded, len(table.frame)) == (13, 1, 3, 9)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Requests in range"] == "9"
    status = {row.outcome: row.requests for row in at.dataframe[0].value.itertuples()}
    assert status == {"accept": 5, "clarify": 2, "escalate": 2, "unknowable": 0}
    via = {row.via: row.requests for row in at.dataframe[1].value.itertuples()}
    assert via == {
        "model": 5,
        "user_clarification": 1,
        "backup_model": 0,
        "human_review": 3,
        "pending_review": 0,
        "user_none": 0,
    }
    # the user confirmed the model's Negative; the reviewer corrected one Positive of three
    outcomes = at.dataframe[2].value.set_index("answered by")
    assert outcomes.loc["user at the question", ["answers", "confirmed", "corrected"]].tolist() == [1, 1, 0]
    assert outcomes.loc["reviewer (queue)", ["answers", "confirmed", "corrected"]].tolist() == [3, 2, 1]
    # N: the trend and histogram follow it
    at.number_input[0].set_value(4).run()
    no_errors(at)
    assert "**Confidence trend** (last 4 requests)" in texts(at.markdown)


def test_the_aggregations_of_the_sample_log_by_hand():
    # SESSION_LOG: three accepted at 13:30:58, then six requests at 13:31:07-16 (two escalated,
    # two accepted, two asked): a reviewed request counts at its first record's time
    frame = data.read_table(SESSION_LOG).frame
    over_time, bucket = data.fallback_over_time(frame)
    assert bucket == "1min"
    assert over_time["requests"].tolist() == [3, 6]
    assert over_time["fallback share"].tolist() == [0.0, 4 / 6]
    assert len(data.in_range(frame, pd.Timestamp("2026-11-27T13:31:10Z"), None)) == 4
    assert len(data.in_range(frame, None, pd.Timestamp("2026-11-27T13:31:10Z"))) == 5
    # the last four: confidences 1.000, 0.659, 0.999, 0.717
    histogram = data.histogram(frame.tail(4)).set_index("confidence")["requests"]
    assert histogram.sum() == 4
    assert (histogram["[0.65, 0.70)"], histogram["[0.70, 0.75)"], histogram["[0.95, 1.00]"]) == (1, 1, 2)
    trend = data.trend(frame.tail(4), window=2)
    assert trend["mean of 2"].tolist() == pytest.approx([1.0, 0.8295, 0.829, 0.858], abs=0.002)


def test_analytics_of_an_empty_log(dashboard, tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "app.jsonl").write_text("")
    at = page(dashboard(), "analytics")
    no_errors(at)
    assert "No requests logged yet: nothing to show." in texts(at.info)


def test_a_missing_checkpoint_is_one_line_on_classify_and_model(dashboard, tmp_path):
    at = page(dashboard(f"paths.checkpoint={tmp_path / 'nowhere'}"), "classify")
    at.text_area(key="classify_text").input("Anything at all.")
    at.button[0].click().run()
    assert not at.exception
    [error] = texts(at.error)
    assert error.startswith(f"error: no selfheal checkpoint at {tmp_path / 'nowhere'}")
    page(at, "model")
    assert not at.exception
    assert texts(at.error)[0].startswith("error: no selfheal checkpoint at")


def test_a_damaged_checkpoint_database_is_one_line_on_the_review_queue(dashboard, tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "graph_checkpoints.sqlite").write_bytes(b"not a database at all\n" * 10)
    at = page(dashboard(), "review")
    assert not at.exception
    [error] = texts(at.error)
    assert "is not a SQLite database" in error and "selfheal review --rebuild" in error


def test_a_bad_override_is_one_line(dashboard):
    at = page(dashboard("thresholds.accept=lots"), "classify")
    assert not at.exception
    [error] = texts(at.error)
    assert error.startswith("error: invalid value for 'thresholds.accept'")


# --- selfheal dashboard: what it checks before Streamlit starts (real processes) -----------------


def test_the_command_refuses_a_bad_config_and_a_busy_port_in_one_line(tmp_path):
    bad = subprocess.run(
        selfheal_argv("dashboard", "--set", "thresholds.accept=lots"),
        capture_output=True,
        text=True,
        env=process_env(),
        cwd=REPO,
        timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: invalid value for 'thresholds.accept'")
    assert len(bad.stderr.strip().splitlines()) == 1
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run(
            selfheal_argv("dashboard", "--port", str(port)),
            capture_output=True,
            text=True,
            env=process_env(),
            cwd=REPO,
            timeout=120,
        )
    assert busy.returncode == 2
    assert (
        busy.stderr.strip()
        == f"error: port {port} on 127.0.0.1 is already in use (choose another with --port)"
    )


def test_the_command_passes_the_config_to_streamlit(tmp_path):
    from selfheal.cli.dashboard import dashboard_env, streamlit_command

    env = dashboard_env(Path("config.yaml"), ["paths.log_dir=/tmp/x"])
    assert env[CONFIG_ENV] == str((Path.cwd() / "config.yaml").resolve())
    assert json.loads(env[SET_ENV]) == ["paths.log_dir=/tmp/x"]
    command = streamlit_command(8555, "127.0.0.1")
    assert command[1:5] == ["-m", "streamlit", "run", str(APP)]
    options = dict(zip(command[5::2], command[6::2], strict=True))
    assert options["--server.port"] == "8555"
    assert options["--server.address"] == "127.0.0.1"
    assert options["--server.headless"] == "true"
