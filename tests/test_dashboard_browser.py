"""The dashboard in a real browser: ``selfheal dashboard`` as a process on a free loopback port,
Debian's chromium driven by Selenium through /usr/bin/chromedriver (nothing downloaded).

One server and one browser for the module (the server loads the real model once). Its files live
in a temporary directory; the accept threshold is 0.99 so an ordinary text is asked about.
Screenshots go to that directory (``screenshots/``), one per step.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO, graph_overrides, process_env, set_args
from selfheal.dashboard import browser
from selfheal.logs.stats import read_log

MISSING = browser.browser_missing()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"no real browser here: {MISSING}")

AMBIGUOUS = "Not bad, not good, just there."  # the shipped model: Negative, about 65%


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dashboard")


@pytest.fixture(scope="module")
def server(home):
    """The dashboard's URL (a real ``selfheal dashboard`` process: this interpreter, this source tree)."""
    args = [
        "--config",
        str(REPO / "config.yaml"),
        *set_args([*graph_overrides(home), "thresholds.accept=0.99"]),
    ]
    with browser.dashboard_server(args, process_env(), home, home / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def driver(server):
    chrome = browser.chrome()
    try:
        chrome.get(server)
        yield chrome
    finally:
        chrome.quit()


def log_records(home: Path) -> list[dict]:
    path = home / "logs" / "app.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_type_a_text_answer_the_question_see_the_label(driver, home):
    shots = home / "screenshots"
    browser.classify(driver, AMBIGUOUS)
    question = browser.wait_for_text(driver, "Could you clarify your intent?")
    assert question.text == "Could you clarify your intent? Was this a positive review? (y/n)"
    browser.screenshot(driver, shots / "classify-question.png")
    browser.click_button(driver, "No")
    final = browser.wait_for_text(driver, "Final Label:")
    assert final.text == "Final Label: Negative (Confirmed via user clarification)"
    browser.wait_idle(driver)
    assert browser.wait_for_text(driver, "Route:").text.startswith("Route: ask_clarify (LOW, confidence")
    assert (browser.screenshot(driver, shots / "classify-answered.png")).stat().st_size > 10_000
    [record] = log_records(home)
    assert record["input_text"] == AMBIGUOUS
    assert record["final_decision"] == {"label": "Negative", "via": "user_clarification"}
    assert record["fallback"]["user_response"] == ["no"]


def test_a_question_left_for_review_is_answered_in_the_review_queue(driver, home):
    shots = home / "screenshots"
    browser.open_page(driver, "Classify")
    text = "Visually stunning, emotionally empty."
    browser.classify(driver, text)
    browser.wait_for_text(driver, "Could you clarify your intent?")
    browser.click_button(driver, "Leave for review")
    assert (
        browser.wait_for_text(driver, "Final Label:").text
        == "Final Label: pending (escalated to human review)"
    )
    [record] = [r for r in log_records(home) if r["input_text"] == text]
    request_id = record["request_id"]
    browser.open_page(driver, "Review queue")
    browser.wait_for_text(driver, "1 request(s) wait for a person")
    browser.screenshot(driver, shots / "review.png")
    browser.click_button(driver, "Positive")
    done = browser.wait_for_text(driver, f"Request {request_id[:8]}: Final Label:")
    assert done.text == f"Request {request_id[:8]}: Final Label: Positive (via human review)"
    browser.wait_for_text(driver, "No requests wait for review.")
    assert log_records(home)[-1]["final_decision"] == {"label": "Positive", "via": "human_review"}


def test_analytics_and_model_pages_show_the_log_and_the_card(driver, home):
    shots = home / "screenshots"
    browser.open_page(driver, "Classify")
    browser.classify(driver, "An absolute joy from start to finish.")  # a record, whatever ran before
    browser.wait_for_text(driver, "Was this a negative review?")  # asked: the accept threshold is 0.99
    browser.click_button(driver, "No")
    final = browser.wait_for_text(driver, "Final Label:")
    assert final.text == "Final Label: Positive (Confirmed via user clarification)"
    browser.open_page(driver, "Analytics")
    browser.wait_for_text(driver, "Clarification outcomes")
    logged = read_log(home / "logs" / "app.jsonl")  # selfheal stats's reader
    caption = browser.wait_for_text(driver, "request(s) from")
    assert caption.text.endswith(f"app.jsonl: {len(logged.requests)} request(s) from {logged.lines} line(s)")
    browser.screenshot(driver, shots / "analytics.png")
    browser.open_page(driver, "Model")
    browser.wait_for_text(driver, "selfheal sentiment model")
    browser.screenshot(driver, shots / "model.png")
