"""Each node of the graph and each step of FallbackNode on its own, and the routing functions
at their edges.

Real classifier and backup models (loaded once per session); the steps that call
``interrupt()`` are exercised through the compiled graph in test_graph.py and
test_fallback_subgraph.py.
"""

from __future__ import annotations

import json

import pytest

from conftest import REPO
from selfheal.graph import mermaid
from selfheal.graph.nodes import (
    backup_step,
    clarify_step,
    confidence_check_node,
    confidence_route,
    final_decision_node,
    identify_step,
    inference_node,
    review_step,
    route_after_await_review,
    route_after_backup,
    route_after_clarify,
    route_after_decision,
    route_after_identify,
    route_by_confidence,
    route_fallback_entry,
)
from selfheal.graph.session import Session
from selfheal.labels import MOVIE_LABELS

LABELS = MOVIE_LABELS.names  # the shipped model's labels, read from its checkpoint below

THRESHOLDS = {"accept": 0.75, "clarify": 0.50}


def _state(confidence: float, label: str = "Positive", **extra) -> dict:
    other = 1.0 - confidence
    probs = {label: confidence, next(lb for lb in LABELS if lb != label): other}
    return {
        "request_id": "r-1",
        "text": "An uneven but oddly charming film.",
        "thresholds": dict(THRESHOLDS),
        "inference": {"label": label, "probs": probs, "confidence": confidence},
        **extra,
    }


@pytest.mark.parametrize(
    ("confidence", "route", "status"),
    [
        (0.75, "accept", "ACCEPT"),  # exactly accept: accepted
        (0.7499999, "ask_clarify", "LOW"),
        (0.50, "ask_clarify", "LOW"),  # exactly clarify: asked
        (0.4999999, "escalate", "VERY_LOW"),
        (1.0, "accept", "ACCEPT"),
        (0.0, "escalate", "VERY_LOW"),
    ],
)
def test_confidence_check_routes_at_the_edges(confidence, route, status):
    update = confidence_check_node(_state(confidence))
    assert (update["route"], update["status"]) == (route, status)
    assert route_by_confidence({**_state(confidence), **update}) == route
    assert update["trace"] == ["ConfidenceCheckNode"]


def test_confidence_check_accept_decides_and_fallback_starts_at_the_right_step():
    accepted = confidence_check_node(_state(0.9))
    assert (accepted["final_label"], accepted["via"]) == ("Positive", "model")
    asked = confidence_check_node(_state(0.6))
    assert asked["fallback"]["strategy"] == "ask_clarify" and asked["via"] is None
    assert route_fallback_entry({**_state(0.6), **asked}) == "ask_clarify"  # -> the clarify step
    escalated = confidence_check_node(_state(0.3))
    assert escalated["fallback"]["activated"] is True
    assert route_fallback_entry({**_state(0.3), **escalated}) == "escalate"  # -> the backup step
    unknowable = {**_state(0.3), "route": "unknowable"}
    assert route_fallback_entry(unknowable) == "unknowable"  # -> the identify step
    logged_pending = {**_state(0.3), "route": "escalate", "via": "pending_review"}
    assert route_fallback_entry(logged_pending) == "pending_review"  # -> await_review


def test_the_shipped_checkpoint_names_the_labels(services):
    assert services.labels.names == LABELS  # from the checkpoint's selfheal.json, no constant


def test_confidence_route_respects_custom_thresholds():
    assert confidence_route(0.999, accept=0.999, clarify=0.0) == "accept"
    assert confidence_route(0.0, accept=0.999, clarify=0.0) == "ask_clarify"
    assert confidence_route(0.5, accept=0.5, clarify=0.5) == "accept"


def test_inference_node_uses_the_real_model(services, classifier):
    state = {"request_id": "r", "text": "A tedious, joyless slog.", "input_truncated": False}
    update = inference_node(state, services)
    inf = update["inference"]
    assert inf["label"] in LABELS
    assert inf["probs"].keys() == set(LABELS)
    assert abs(sum(inf["probs"].values()) - 1.0) < 1e-5
    assert inf["confidence"] == pytest.approx(max(inf["probs"].values()), abs=1e-6)
    assert inf["latency_ms"] >= 0
    # the temperature-scaled probabilities of the classifier itself
    expected = classifier.predict_proba(["A tedious, joyless slog."])[0]
    assert inf["probs"]["Positive"] == pytest.approx(expected[1], abs=1e-6)
    assert update["model"]["temperature"] == classifier.temperature
    assert update["trace"] == ["InferenceNode"] and update["input_truncated"] is False


def test_inference_node_flags_text_longer_than_the_model_reads(services):
    update = inference_node({"request_id": "r", "text": "so very good " * 200}, services)
    assert update["input_truncated"] is True


def test_clarify_step_without_a_person_goes_to_the_backups(services):
    state = _state(0.6, interactive=False, fallback={"activated": True, "strategy": "ask_clarify"})
    update = clarify_step(state, services)
    assert update["fallback"]["no_answer_reason"] == "non_interactive" and "via" not in update
    assert route_after_clarify({**state, **update}) == "no_answer"
    assert (
        update["fallback"]["question"] == "Could you clarify your intent? Was this a negative review? (y/n)"
    )
    assert update["trace"] == ["FallbackNode"]


def test_backup_step_runs_the_real_backups(services):
    state = _state(0.4, fallback={"activated": True, "strategy": "escalate"}, trace=["FallbackNode"])
    update = backup_step(state, services)
    backup = update["fallback"]["backup"]
    # the rule is off here, so the voter-only mpnet_top is not run (its vote could not count)
    assert set(backup["models"]) == {"tfidf", "vader", "embedding"}
    assert backup["label"] in LABELS and backup["agree"] == (backup["label"] == "Positive")
    # the graph tests switch the no-person rule off (conftest.graph_overrides): a person decides
    assert backup["rule"]["reason"] == "disabled" and backup["decided_without_person"] is False
    assert "via" not in update and route_after_backup({**state, **update}) == "needs_person"
    assert update["trace"] == ["FallbackNode"]  # one entry per visit of FallbackNode, not per step


def test_review_step_without_a_person_is_pending(services):
    state = _state(0.4, interactive=False, fallback={"activated": True, "strategy": "escalate"})
    update = review_step(state, services)
    assert (update["via"], update["final_label"]) == ("pending_review", None)
    assert update["fallback"]["review"] == {"mode": "queue", "answer": None, "label": None}


def test_identify_step_without_a_person_is_pending_and_never_asks_the_backups(services):
    state = _state(0.9, interactive=False, route="unknowable", fallback={"activated": True})
    update = identify_step(state, services)
    assert (update["via"], update["fallback"]["no_answer_reason"]) == ("pending_review", "non_interactive")
    assert "backup" not in update["fallback"]
    assert route_after_identify({**state, **update}) == "decided"


def test_routing_between_the_steps():
    asking = {"fallback": {}, "via": None}
    assert route_after_clarify(asking) == "ask_again"
    assert route_after_clarify({"fallback": {"no_answer_reason": "eof"}, "via": None}) == "no_answer"
    assert route_after_clarify({"fallback": {}, "via": "user_clarification"}) == "decided"
    assert (
        route_after_clarify({"fallback": {"no_answer_reason": "quit"}, "via": "pending_review"}) == "decided"
    )
    assert route_after_identify(asking) == "ask_again"
    assert route_after_backup({"via": "backup_model"}) == "decided"
    assert route_after_await_review({"via": "pending_review"}) == "keep_waiting"
    assert route_after_await_review({"via": "human_review"}) == "answered"


def test_final_decision_writes_one_record_and_the_clarified_example(services, graph_config):
    state = _state(
        0.6,
        route="ask_clarify",
        status="LOW",
        final_label="Negative",
        via="user_clarification",
        fallback={"activated": True, "strategy": "ask_clarify", "user_response": ["y"]},
        trace=["InferenceNode", "ConfidenceCheckNode", "FallbackNode"],
        started_at=0.0,
    )
    update = final_decision_node(state, services)
    assert route_after_decision({**state, **update}) == "end"
    lines = (graph_config.paths.log_dir / "app.jsonl").read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record == update["record"]
    assert record["final_decision"] == {"label": "Negative", "via": "user_clarification"}
    assert record["trace"][-1] == "FinalDecisionNode"
    clarified = json.loads(graph_config.paths.clarified.read_text())
    assert (clarified["label"], clarified["source"], clarified["request_id"]) == (
        "Negative",
        "user_clarification",
        "r-1",
    )
    assert "final Negative via user_clarification" in (graph_config.paths.log_dir / "app.log").read_text()


def test_final_decision_of_a_pending_request_waits_for_review(services):
    state = _state(0.3, final_label=None, via="pending_review", fallback={"activated": True}, started_at=0.0)
    update = final_decision_node(state, services)
    assert route_after_decision({**state, **update}) == "wait_for_review"
    assert route_fallback_entry({**state, **update, "route": "escalate"}) == "pending_review"


def test_graph_has_exactly_the_four_named_nodes(session: Session):
    nodes = set(session.graph.get_graph().nodes) - {"__start__", "__end__"}
    assert nodes == {"InferenceNode", "ConfidenceCheckNode", "FallbackNode", "FinalDecisionNode"}


def test_fallback_node_is_the_compiled_subgraph_of_its_steps(session: Session):
    """FallbackNode is added as a compiled graph (not a function that calls one); the drawing
    with ``xray`` shows each of its steps, and no ``stage`` or self-loop at the top level."""
    (name, subgraph), *_ = session.graph.get_subgraphs()
    assert name == "FallbackNode"
    steps = set(subgraph.get_graph().nodes) - {"__start__", "__end__"}
    assert steps == {"identify", "clarify", "backup", "review", "await_review"}
    drawn = set(session.graph.get_graph(xray=True).nodes)
    assert {f"FallbackNode:{step}" for step in steps} <= drawn
    top = session.graph.get_graph()
    assert not [e for e in top.edges if e.source == e.target == "FallbackNode"]
    assert "stage" not in session.graph.channels and "trace" in session.graph.channels


def test_the_architecture_doc_shows_the_graph_as_langgraph_draws_it():
    """docs/architecture.md has no hand-drawn diagram: its drawing is `selfheal graph`'s output."""
    drawing = mermaid()
    assert "subgraph FallbackNode" in drawing and "FallbackNode\\3aawait_review" in drawing
    assert f"```mermaid\n{drawing.rstrip()}\n```" in (REPO / "docs" / "architecture.md").read_text()
