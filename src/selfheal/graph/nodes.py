"""The four nodes and the routing functions between them.

Each node is a plain function ``(state, services) -> partial state update``; ``build.py`` binds
``services``. Routing lives in the small ``route_*`` functions used on conditional edges.

FallbackNode runs one step per visit (``state["stage"]``) and loops back to itself until a label
is decided, so each ``interrupt()`` sits in its own visit and nothing expensive runs before it:

* ``identify``: (an input the knowability check cannot vouch for) ask the user whether it is a
  positive review, a negative one or neither (``interrupt``); with no answer it waits for review,
  never labelled by the backups;
* ``clarify``: ask the user (``interrupt``); an answer that names a label decides; an unsure or
  unclear one is asked again, then counts as no answer (``backup``); "quit" leaves the request
  ``pending`` for ``selfheal review``;
* ``backup``: ask the backup models; where the no-person rule holds (the independent backups are
  confident in the model's label and the model is confident enough, thresholds fitted on
  validation) they decide, else ``review``;
* ``review``: a person at the keyboard makes a forced choice (``interrupt``); with nobody there
  the request becomes ``pending`` and FinalDecisionNode logs it;
* ``queued``: the logged pending request waits (``interrupt``) until ``selfheal review`` answers.

Only FinalDecisionNode has side effects (the log record, the clarified-examples file).
"""

from __future__ import annotations

import time
from typing import Any, Literal

from langgraph.types import interrupt

from selfheal.graph.answers import (
    NEITHER,
    choice_hint,
    is_quit,
    parse_choice,
    parse_identity,
    read_clarification,
)
from selfheal.graph.services import Services
from selfheal.graph.state import STATUS, Fallback, Route, State
from selfheal.labels import LABELS, other_label
from selfheal.logs.clarified import append_clarified
from selfheal.logs.decisions import build_record
from selfheal.model.backup import no_person_rule
from selfheal.model.knowability import judge, resolve_thresholds

INFERENCE = "InferenceNode"
CONFIDENCE_CHECK = "ConfidenceCheckNode"
FALLBACK = "FallbackNode"
FINAL_DECISION = "FinalDecisionNode"


def clarify_question(label: str) -> str:
    """The clarifying question about ``label`` (the most likely other label)."""
    return f"Could you clarify your intent? Was this a {label.lower()} review? (y/n)"


def retry_question(label: str) -> str:
    """The question asked again after an unclear answer."""
    return f"Sorry, I did not get that. Was this a {label.lower()} review? Please answer yes or no. (y/n)"


def identify_question() -> str:
    """The question about an input the model cannot know about (it may be neither)."""
    return "I can't tell what this is. Was this a positive review, a negative review, or neither? (p/n/x)"


def retry_identify_question() -> str:
    """The same question after an unclear answer."""
    return "Sorry, I did not get that. Positive review, negative review, or neither? (p/n/x)"


def unknowable_review_question() -> str:
    """The review question about an input the model cannot know about (it may be neither)."""
    return f"The model cannot know this input. Which label is right? ({choice_hint()}/neither)"


def review_question() -> str:
    """The forced choice of a human review."""
    return f"The models disagree. Which label is right? ({choice_hint()})"


def unpack_answer(resume: Any) -> tuple[str | None, str | None]:
    """``(answer text, no-answer reason)`` from a resume value.

    The caller resumes with the answer text, or ``{"answer": text, "source": "review"}`` from
    ``selfheal review``, or ``None`` / ``{"answer": None, "reason": ...}`` when nobody answered
    (``eof``, ``interrupted``, ``timeout``).
    """
    if isinstance(resume, dict):
        answer = resume.get("answer")
        if answer is None:
            return None, resume.get("reason") or "no_answer"
        return str(answer), None
    if resume is None:
        return None, "no_answer"
    return str(resume), None


def from_review(resume: Any) -> bool:
    """Whether the resume value came from ``selfheal review`` rather than the user at the prompt."""
    return isinstance(resume, dict) and resume.get("source") == "review"


# --- InferenceNode ---------------------------------------------------------------------------


def inference_node(state: State, services: Services) -> dict[str, Any]:
    """Tokenize, forward, softmax over temperature-scaled logits: label, probs, confidence."""
    start = time.perf_counter()
    classifier = services.classifier
    prediction = classifier.predict([state["text"]])[0]
    latency_ms = round((time.perf_counter() - start) * 1000, 1)
    directory = getattr(classifier, "directory", None)
    return {
        "inference": {
            "label": prediction.label,
            "probs": {label: round(float(p), 6) for label, p in prediction.probs.items()},
            "confidence": float(prediction.confidence),
            "latency_ms": latency_ms,
        },
        "model": {
            "version": getattr(classifier, "version", None),
            "temperature": getattr(classifier, "temperature", None),
            "checkpoint": None if directory is None else str(directory),
        },
        "input_truncated": bool(state.get("input_truncated")) or bool(prediction.truncated),
        "knowability_scores": getattr(prediction, "knowability", None),
        "trace": [INFERENCE],
    }


# --- ConfidenceCheckNode ---------------------------------------------------------------------


def confidence_route(confidence: float, accept: float, clarify: float) -> Route:
    """``accept`` at >= accept, ``ask_clarify`` at >= clarify, else ``escalate``."""
    if confidence >= accept:
        return "accept"
    if confidence >= clarify:
        return "ask_clarify"
    return "escalate"


def knowability_verdict(state: State, services: Services | None) -> dict[str, Any] | None:
    """The knowability check's verdict ``{known, reason, scores, thresholds}`` for this input, or
    ``None`` when it is off (``knowability.enabled: false``, or the model has no detector)."""
    scores = state.get("knowability_scores")
    if scores is None or services is None or not services.config.knowability.enabled:
        return None
    detector = getattr(services.classifier, "knowability", None)
    thresholds = resolve_thresholds(getattr(detector, "thresholds", {}), services.config.knowability)
    return judge(scores, thresholds).to_dict() | {"thresholds": thresholds}


def confidence_check_node(state: State, services: Services | None = None) -> dict[str, Any]:
    """Check that the input is knowable, compare the confidence with the thresholds and choose
    the route; an unknowable input is never accepted."""
    thresholds = state["thresholds"]
    verdict = knowability_verdict(state, services)
    if verdict is not None and not verdict["known"]:
        route: Route = "unknowable"
    else:
        route = confidence_route(
            state["inference"]["confidence"], thresholds["accept"], thresholds["clarify"]
        )
    update: dict[str, Any] = {
        "route": route,
        "status": STATUS[route],
        "knowability": verdict,
        "trace": [CONFIDENCE_CHECK],
    }
    if route == "accept":
        update |= {"final_label": state["inference"]["label"], "via": "model"}
    else:
        stage = {"ask_clarify": "clarify", "escalate": "backup", "unknowable": "identify"}[route]
        update |= {"stage": stage, "fallback": Fallback(activated=True, strategy=route, attempts=0)}
    return update


def route_by_confidence(state: State) -> Route:
    """Which way ConfidenceCheckNode sent the request."""
    return state["route"]


# --- FallbackNode ----------------------------------------------------------------------------


def _clarify(state: State, services: Services) -> dict[str, Any]:
    asked = other_label(state["inference"]["label"])
    fallback = Fallback(**state["fallback"])
    fallback["question"] = clarify_question(asked)
    if not state.get("interactive"):
        return {"stage": "backup", "fallback": fallback | {"no_answer_reason": "non_interactive"}}
    reason = "unclear"
    responses: list[str] = []  # every answer, in order
    for attempt in range(1, services.config.fallback.max_clarify_attempts + 1):
        question = clarify_question(asked) if attempt == 1 else retry_question(asked)
        resume = interrupt({"kind": "clarify", "question": question, "attempt": attempt})
        answer, no_answer = unpack_answer(resume)
        fallback["attempts"] = attempt
        if answer is None:
            reason = no_answer or "no_answer"
            break
        if from_review(resume) and (label := parse_choice(answer)) is not None:
            # the question was left open by a run that died; a reviewer answered it
            review = {"mode": "queue", "answer": answer, "label": label}
            fallback["review"] = review
            return {"stage": "done", "fallback": fallback, "final_label": label, "via": "human_review"}
        responses.append(answer)
        fallback["user_response"] = list(responses)
        reading = read_clarification(answer, asked)
        if reading.kind == "label":
            fallback["user_label"] = reading.label
            return {
                "stage": "done",
                "fallback": fallback,
                "final_label": reading.label,
                "via": "user_clarification",
            }
        if reading.kind == "quit":
            reason = "quit"
            break
        reason = reading.kind  # unsure | unclear: ask again
    if reason == "quit":  # the person leaves: the question waits for ``selfheal review``
        fallback |= {"no_answer_reason": "quit", "review": {"mode": "queue", "answer": None, "label": None}}
        return {"stage": "pending", "fallback": fallback, "final_label": None, "via": "pending_review"}
    return {"stage": "backup", "fallback": fallback | {"no_answer_reason": reason}}


def _identify(state: State, services: Services) -> dict[str, Any]:
    """Ask whether an unknowable input is a positive review, a negative one or neither; with no
    clear answer it waits for review (the backups never label it)."""
    fallback = Fallback(**state["fallback"])
    fallback["question"] = identify_question()
    queue = {"review": {"mode": "queue", "answer": None, "label": None}}
    pending = {"stage": "pending", "final_label": None, "via": "pending_review"}
    if not state.get("interactive"):
        return pending | {"fallback": fallback | {"no_answer_reason": "non_interactive"} | queue}
    reason = "unclear"
    responses: list[str] = []  # every answer, in order
    for attempt in range(1, services.config.fallback.max_clarify_attempts + 1):
        question = identify_question() if attempt == 1 else retry_identify_question()
        resume = interrupt({"kind": "identify", "question": question, "attempt": attempt})
        answer, no_answer = unpack_answer(resume)
        fallback["attempts"] = attempt
        if answer is None:
            reason = no_answer or "no_answer"
            break
        meant = parse_identity(answer)
        if from_review(resume) and meant is not None:  # left open by a run that died; a reviewer answered
            label = None if meant == NEITHER else meant
            fallback["review"] = {"mode": "queue", "answer": answer, "label": label}
            return {"stage": "done", "fallback": fallback, "final_label": label, "via": "human_review"}
        responses.append(answer)
        fallback["user_response"] = list(responses)
        if is_quit(answer):  # the person leaves: the question waits for ``selfheal review``
            reason = "quit"
            break
        if meant == NEITHER:
            fallback["user_label"] = None
            return {"stage": "done", "fallback": fallback, "final_label": None, "via": "user_none"}
        if meant is not None:
            fallback["user_label"] = meant
            return {"stage": "done", "fallback": fallback, "final_label": meant, "via": "user_clarification"}
    return pending | {"fallback": fallback | {"no_answer_reason": reason} | queue}


def _backup(state: State, services: Services) -> dict[str, Any]:
    """Ask the backups; they label the request only where the no-person rule holds
    (``backup.decide``, ``voters``, ``min_voter_prob``, ``min_confidence``), else a person must."""
    vote = services.backups.predict(state["text"])
    inference, cfg = state["inference"], services.config.backup
    agree = vote["label"] == inference["label"]
    rule = no_person_rule(
        inference["label"],
        inference["confidence"],
        vote.get("models", {}),
        cfg.voter_names,
        cfg.min_confidence,
        cfg.min_voter_prob,
        cfg.decide,
    )
    fallback = Fallback(**state["fallback"])
    fallback["backup"] = vote | {"agree": agree, "rule": rule, "decided_without_person": rule["passed"]}
    if rule["passed"]:
        return {
            "stage": "done",
            "fallback": fallback,
            "final_label": inference["label"],
            "via": "backup_model",
        }
    return {"stage": "review", "fallback": fallback}


def _review(state: State) -> dict[str, Any]:
    fallback = Fallback(**state["fallback"])
    pending = {"stage": "pending", "final_label": None, "via": "pending_review"}
    if not state.get("interactive"):
        return pending | {"fallback": fallback | {"review": {"mode": "queue", "answer": None, "label": None}}}
    resume = interrupt({"kind": "review", "question": review_question(), "choices": list(LABELS)})
    answer, _ = unpack_answer(resume)
    label = None if answer is None else parse_choice(answer)
    review = {"mode": "queue" if from_review(resume) else "interactive", "answer": answer, "label": label}
    if label is None:  # nobody answered: leave it to ``selfheal review``
        return pending | {"fallback": fallback | {"review": review | {"mode": "queue"}}}
    return {
        "stage": "done",
        "fallback": fallback | {"review": review},
        "final_label": label,
        "via": "human_review",
    }


def _queued(state: State) -> dict[str, Any]:
    """Wait for ``selfheal review``; an input the model cannot know may be answered "neither"."""
    unknowable = state.get("route") == "unknowable"
    question = unknowable_review_question() if unknowable else review_question()
    resume = interrupt({"kind": "review_queue", "question": question, "choices": list(LABELS)})
    answer, _ = unpack_answer(resume)
    meant = None if answer is None else (parse_identity(answer) if unknowable else parse_choice(answer))
    if meant is None:  # not answered: keep waiting in the queue
        return {"stage": "queued"}
    label = None if meant == NEITHER else meant
    fallback = Fallback(**state["fallback"])
    fallback["review"] = {"mode": "queue", "answer": answer, "label": label}
    return {"stage": "done", "fallback": fallback, "final_label": label, "via": "human_review"}


def fallback_node(state: State, services: Services) -> dict[str, Any]:
    """Ask the user, then the backup models, then a person: one step per visit."""
    stage = state["stage"]
    if stage == "identify":
        update = _identify(state, services)
    elif stage == "clarify":
        update = _clarify(state, services)
    elif stage == "backup":
        update = _backup(state, services)
    elif stage == "review":
        update = _review(state)
    elif stage == "queued":
        update = _queued(state)
    else:
        raise ValueError(f"FallbackNode cannot run at stage {stage!r}")
    return update | {"trace": [FALLBACK]}


def route_after_fallback(state: State) -> Literal["decide", "next_step"]:
    """To FinalDecisionNode once a label is decided (or the request is pending), else loop."""
    return "decide" if state["stage"] in ("done", "pending") else "next_step"


# --- FinalDecisionNode -----------------------------------------------------------------------


def final_decision_node(state: State, services: Services) -> dict[str, Any]:
    """Write the log record (and any label a person gave) and return the decision.

    Both appends go into ``services.log.journal``: if the second one (or the checkpoint after this
    node) fails, :class:`selfheal.graph.session.Session` takes them back, so a decision is recorded
    whole or not at all.
    """
    record = build_record(dict(state), [*state.get("trace", []), FINAL_DECISION])
    services.log.write(record)
    via, label = state.get("via"), state.get("final_label")
    if via in ("user_clarification", "human_review") and label is not None:
        services.log.journal.append(
            append_clarified(services.config.paths.clarified, state["text"], label, state["request_id"], via)
        )
    update: dict[str, Any] = {"record": record, "trace": [FINAL_DECISION]}
    if via == "pending_review":
        update["stage"] = "queued"
    return update


def route_after_decision(state: State) -> Literal["wait_for_review", "end"]:
    """A pending request goes back to FallbackNode to wait for ``selfheal review``."""
    return "wait_for_review" if state.get("via") == "pending_review" else "end"
