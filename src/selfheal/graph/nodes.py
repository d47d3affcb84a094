"""The nodes, FallbackNode's steps, and the named routing functions between them.

Each node or step is a plain function ``(state, services) -> partial state update``; ``build.py``
binds ``services`` and wires them. Routing lives in the small ``route_*`` functions used on
conditional edges; their return values are the edge labels ``selfheal graph`` draws.

The top level: InferenceNode -> ConfidenceCheckNode -> (FallbackNode) -> FinalDecisionNode.
FallbackNode is a compiled subgraph over the same :class:`~selfheal.graph.state.State`, one step
per node and at most one ``interrupt()`` per step, so a resumed step re-runs only its own cheap
code before its question, and no step before it runs again:

* ``identify``: (an input the knowability check cannot vouch for) ask the user which label it
  has, or none (``interrupt``); an unclear answer is asked again; with no answer it waits for
  review, never labelled by the backups;
* ``clarify``: ask the user (``interrupt``): y/n about the other label with two labels, multiple
  choice with more; an answer that names a label decides; an unsure or unclear one is asked
  again, then counts as no answer (on to ``backup``); "quit" leaves the request ``pending`` for
  ``selfheal review``;
* ``backup``: ask the backup models; where the no-person rule holds (the independent backups are
  confident in the model's label and the model is confident enough, thresholds fitted on
  validation) they decide, else ``review``;
* ``review``: a person at the keyboard makes a forced choice (``interrupt``); with nobody there
  the request becomes ``pending`` and FinalDecisionNode logs it;
* ``await_review``: the logged pending request waits (``interrupt``) until ``selfheal review``
  answers; FinalDecisionNode sends it back into FallbackNode for this.

A step that decides sets ``via`` (and ``final_label``); ``via`` stays ``None`` while the
subgraph goes on. Only FinalDecisionNode has side effects (the log record, the clarified-examples
file).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

from langgraph.types import interrupt

from selfheal.config import BackupConfig
from selfheal.graph.answers import (
    NEITHER,
    choice_hint,
    identity_letters,
    is_quit,
    numbered_choices,
    parse_choice,
    parse_identity,
    read_choice,
    read_clarification,
)
from selfheal.graph.services import Services
from selfheal.graph.state import (
    AWAIT_REVIEW_STEP,
    BACKUP_STEP,
    CLARIFY_STEP,
    CONFIDENCE_CHECK,
    FALLBACK,
    FALLBACK_STEPS,
    FINAL_DECISION,
    IDENTIFY_STEP,
    INFERENCE,
    REVIEW_STEP,
    Fallback,
    State,
)
from selfheal.labels import LabelSet
from selfheal.logs.clarified import append_clarified
from selfheal.logs.decisions import build_record
from selfheal.model.backup import no_person_rule, rule_may_hold
from selfheal.model.knowability import judge, resolve_thresholds
from selfheal.vocabulary import (
    ACCEPT,
    ASK_CLARIFY,
    BACKUP_MODEL,
    CLARIFY,
    ESCALATE,
    HUMAN_REVIEW,
    IDENTIFY,
    MODEL,
    PENDING_REVIEW,
    REVIEW,
    REVIEW_QUEUE,
    STATUS,
    UNKNOWABLE,
    USER_CLARIFICATION,
    USER_NONE,
    Route,
)

__all__ = [  # the node and step names live in state.py (importable without LangGraph)
    "AWAIT_REVIEW_STEP",
    "BACKUP_STEP",
    "CLARIFY_STEP",
    "CONFIDENCE_CHECK",
    "FALLBACK",
    "FALLBACK_STEPS",
    "FINAL_DECISION",
    "IDENTIFY_STEP",
    "INFERENCE",
    "REVIEW_STEP",
]


def traced(state: State, node: str) -> list[str]:
    """``state["trace"]`` with ``node`` appended; FallbackNode once per visit (its first step
    adds it, the later steps of the same visit find it last already)."""
    trace = list(state.get("trace") or [])
    if node == FALLBACK and trace and trace[-1] == FALLBACK:
        return trace
    return [*trace, node]


# --- the questions ---------------------------------------------------------------------------


def clarify_question(label: str) -> str:
    """The clarifying y/n question about ``label`` (the other one of two labels)."""
    return f"Could you clarify your intent? Was this a {label.lower()} review? (y/n)"


def retry_question(label: str) -> str:
    """The y/n question asked again after an unclear answer."""
    return f"Sorry, I did not get that. Was this a {label.lower()} review? Please answer yes or no. (y/n)"


def choice_question(labels: LabelSet) -> str:
    """The clarifying question with more than two labels: multiple choice."""
    return f"Could you clarify your intent? Which label is right? {numbered_choices(labels)}"


def retry_choice_question(labels: LabelSet) -> str:
    """The multiple-choice question asked again after an answer that names no label."""
    return f"Sorry, I did not get that. Please answer with a number or a label: {numbered_choices(labels)}"


def identify_question(labels: LabelSet) -> str:
    """The question about an input the model cannot know about (it may be none of the labels)."""
    letters = identity_letters(labels)
    if letters is None:
        return f"I can't tell what this is. Which label fits, if any? {numbered_choices(labels, none=True)}"
    (a, first), (b, second) = letters.items()
    return (
        f"I can't tell what this is. Was this a {first.lower()} review, a {second.lower()} review, "
        f"or neither? ({a}/{b}/x)"
    )


def retry_identify_question(labels: LabelSet) -> str:
    """The same question after an unclear answer."""
    letters = identity_letters(labels)
    if letters is None:
        choices = numbered_choices(labels, none=True)
        return f"Sorry, I did not get that. Please answer with a number, a label or x: {choices}"
    (a, first), (b, second) = letters.items()
    return (
        f"Sorry, I did not get that. {first.lower().capitalize()} review, {second.lower()} review, "
        f"or neither? ({a}/{b}/x)"
    )


def unknowable_review_question(labels: LabelSet) -> str:
    """The review question about an input the model cannot know about (it may be none)."""
    hint = choice_hint(labels, none=True)
    if labels.binary:
        return f"The model cannot know this input. Which label is right? ({hint})"
    return f"The model cannot know this input. Which label is right? {hint}"


def review_question(labels: LabelSet) -> str:
    """The forced choice of a human review."""
    if labels.binary:
        return f"The models disagree. Which label is right? ({choice_hint(labels)})"
    return f"The models disagree. Which label is right? {choice_hint(labels)}"


def ask(kind: str, question: str, labels: LabelSet, **extra: Any) -> dict[str, Any]:
    """The value of an ``interrupt()``: what the caller shows and how it may be answered.

    ``{"kind", "question", "choices": [label names]}`` plus, where they apply, ``attempt`` (the
    how-many-th time this question is asked), ``asked`` (the y/n question is about this label;
    absent: answer with a label's number or name) and ``none: true`` (an input the model cannot
    know: "neither" / "none of these" is an answer too).
    """
    return {"kind": kind, "question": question, "choices": list(labels.names), **extra}


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


def prediction_result(prediction: Any, latency_ms: float | None) -> dict[str, Any]:
    """A model prediction as plain JSON (what ``given_inference`` holds and InferenceNode uses):
    ``{label, probs, confidence, latency_ms, truncated, knowability}``.

    ``latency_ms`` is the model's time for this text: for a text predicted alone, the time of its
    own ``predict`` call; for a text predicted in a batch, the batch's time divided by the number
    of texts in it (what the text cost, not how long it waited).
    """
    return {
        "label": prediction.label,
        "probs": {label: round(float(p), 6) for label, p in prediction.probs.items()},
        "confidence": float(prediction.confidence),
        "latency_ms": latency_ms,
        "truncated": bool(prediction.truncated),
        "knowability": getattr(prediction, "knowability", None),
    }


def inference_node(state: State, services: Services) -> dict[str, Any]:
    """Tokenize, forward, softmax over temperature-scaled logits: label, probs, confidence.

    A prediction computed before the graph ran (``given_inference``, from a batch) is used as it
    is; the model is called only without one.
    """
    classifier = services.classifier
    result = state.get("given_inference")
    if result is None:
        start = time.perf_counter()
        prediction = classifier.predict([state["text"]])[0]
        result = prediction_result(prediction, round((time.perf_counter() - start) * 1000, 1))
    directory = getattr(classifier, "directory", None)
    return {
        "inference": {key: result[key] for key in ("label", "probs", "confidence", "latency_ms")},
        "model": {
            "version": getattr(classifier, "version", None),
            "temperature": getattr(classifier, "temperature", None),
            "checkpoint": None if directory is None else str(directory),
        },
        "input_truncated": bool(state.get("input_truncated")) or bool(result["truncated"]),
        "knowability_scores": result["knowability"],
        "trace": traced(state, INFERENCE),
    }


# --- ConfidenceCheckNode ---------------------------------------------------------------------


def confidence_route(confidence: float, accept: float, clarify: float) -> Route:
    """``accept`` at >= accept, ``ask_clarify`` at >= clarify, else ``escalate``."""
    if confidence >= accept:
        return ACCEPT
    if confidence >= clarify:
        return ASK_CLARIFY
    return ESCALATE


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
        route: Route = UNKNOWABLE
    else:
        route = confidence_route(
            state["inference"]["confidence"], thresholds["accept"], thresholds["clarify"]
        )
    update: dict[str, Any] = {
        "route": route,
        "status": STATUS[route],
        "knowability": verdict,
        "trace": traced(state, CONFIDENCE_CHECK),
    }
    if route == ACCEPT:
        return update | {"final_label": state["inference"]["label"], "via": MODEL}
    fallback = Fallback(activated=True, strategy=route, attempts=0)
    return update | {"fallback": fallback, "final_label": None, "via": None}


def route_by_confidence(state: State) -> Route:
    """Which way ConfidenceCheckNode sent the request (the edge labels are the routes)."""
    return state["route"]


# --- FallbackNode: its steps -----------------------------------------------------------------


def _pending(state: State, fallback: Fallback, **fields: Any) -> dict[str, Any]:
    """Leave the request for ``selfheal review`` (FinalDecisionNode logs it as pending)."""
    review = {"mode": "queue", "answer": None, "label": None}
    return {
        "fallback": fallback | {"review": review} | fields,
        "final_label": None,
        "via": PENDING_REVIEW,
        "trace": traced(state, FALLBACK),
    }


def _decided(state: State, fallback: Fallback, label: str | None, via: str) -> dict[str, Any]:
    return {"fallback": fallback, "final_label": label, "via": via, "trace": traced(state, FALLBACK)}


def _reviewed_queue(state: State, fallback: Fallback, answer: str, label: str | None) -> dict[str, Any]:
    """A reviewer answered in ``selfheal review``."""
    fallback = fallback | {"review": {"mode": "queue", "answer": answer, "label": label}}
    return _decided(state, fallback, label, HUMAN_REVIEW)


def identify_step(state: State, services: Services) -> dict[str, Any]:
    """Ask which label an unknowable input has, or none; with no clear answer it waits for review
    (the backups never label it). One question per visit; an unclear answer comes back here."""
    labels = services.labels_for(state)
    fallback = Fallback(**state["fallback"])
    fallback["question"] = identify_question(labels)
    if not state.get("interactive"):
        return _pending(state, fallback, no_answer_reason="non_interactive")
    attempt = int(fallback.get("attempts") or 0) + 1
    question = identify_question(labels) if attempt == 1 else retry_identify_question(labels)
    resume = interrupt(ask(IDENTIFY, question, labels, attempt=attempt, none=True))
    answer, no_answer = unpack_answer(resume)
    fallback["attempts"] = attempt
    if answer is None:
        return _pending(state, fallback, no_answer_reason=no_answer or "no_answer")
    meant = parse_identity(answer, labels)
    if from_review(resume) and meant is not None:  # left open by a run that died; a reviewer answered
        return _reviewed_queue(state, fallback, answer, None if meant == NEITHER else meant)
    fallback["user_response"] = [*(fallback.get("user_response") or []), answer]
    if is_quit(answer):  # the person leaves: the question waits for ``selfheal review``
        return _pending(state, fallback, no_answer_reason="quit")
    if meant == NEITHER:
        return _decided(state, fallback | {"user_label": None}, None, USER_NONE)
    if meant is not None:
        return _decided(state, fallback | {"user_label": meant}, meant, USER_CLARIFICATION)
    if attempt >= services.config.fallback.max_clarify_attempts:
        return _pending(state, fallback, no_answer_reason="unclear")
    return {"fallback": fallback, "trace": traced(state, FALLBACK)}  # ask again


def clarify_step(state: State, services: Services) -> dict[str, Any]:
    """Ask the user once: y/n about the other label (two labels) or multiple choice (more).

    A label decides; "quit" leaves it pending; no answer, or the last allowed unsure/unclear
    one, sets ``no_answer_reason`` (on to the backups); an earlier unsure/unclear one comes back
    here to be asked again.
    """
    labels = services.labels_for(state)
    asked = labels.other(state["inference"]["label"]) if labels.binary else None
    fallback = Fallback(**state["fallback"])
    first = clarify_question(asked) if asked is not None else choice_question(labels)
    fallback["question"] = first
    trace = traced(state, FALLBACK)
    if not state.get("interactive"):
        return {"fallback": fallback | {"no_answer_reason": "non_interactive"}, "trace": trace}
    attempt = int(fallback.get("attempts") or 0) + 1
    if attempt == 1:
        question = first
    else:
        question = retry_question(asked) if asked is not None else retry_choice_question(labels)
    extra = {"asked": asked} if asked is not None else {}
    resume = interrupt(ask(CLARIFY, question, labels, attempt=attempt, **extra))
    answer, no_answer = unpack_answer(resume)
    fallback["attempts"] = attempt
    if answer is None:
        return {"fallback": fallback | {"no_answer_reason": no_answer or "no_answer"}, "trace": trace}
    if from_review(resume) and (label := parse_choice(answer, labels)) is not None:
        return _reviewed_queue(state, fallback, answer, label)  # left open by a run that died
    fallback["user_response"] = [*(fallback.get("user_response") or []), answer]
    reading = read_clarification(answer, asked, labels) if asked is not None else read_choice(answer, labels)
    if reading.kind == "label":
        return _decided(state, fallback | {"user_label": reading.label}, reading.label, USER_CLARIFICATION)
    if reading.kind == "quit":  # the person leaves: the question waits for ``selfheal review``
        return _pending(state, fallback, no_answer_reason="quit")
    if attempt >= services.config.fallback.max_clarify_attempts:
        return {"fallback": fallback | {"no_answer_reason": reading.kind}, "trace": trace}
    return {"fallback": fallback, "trace": trace}  # unsure | unclear: ask again


def backup_rule(inference: Mapping[str, Any], vote: Mapping[str, Any], cfg: BackupConfig) -> dict[str, Any]:
    """The no-person rule (:func:`~selfheal.model.backup.no_person_rule`) for the model's
    ``inference`` (label, confidence) and the backups' ``vote``: what the backup step records,
    and what :class:`~selfheal.graph.session.Session` checks to know, before the graph runs,
    that a request whose vote is handed in will be decided there (so it cannot pause)."""
    return no_person_rule(
        inference["label"],
        inference["confidence"],
        vote.get("models", {}),
        cfg.voter_names,
        cfg.min_confidence,
        cfg.min_voter_prob,
        cfg.decide,
    )


def backup_step(state: State, services: Services) -> dict[str, Any]:
    """Ask the backups (or use their vote computed in a batch before the graph ran,
    ``given_backup``); they label the request only where the no-person rule holds
    (``backup.decide``, ``voters``, ``min_voter_prob``, ``min_confidence``), else a person must."""
    inference, cfg = state["inference"], services.config.backup
    needed = rule_may_hold(cfg.decide, cfg.min_confidence, inference["confidence"])
    vote = state.get("given_backup") or services.backups.predict(state["text"], voter_needed=needed)
    agree = vote["label"] == inference["label"]
    rule = backup_rule(inference, vote, cfg)
    fallback = Fallback(**state["fallback"])
    fallback["backup"] = vote | {"agree": agree, "rule": rule, "decided_without_person": rule["passed"]}
    if rule["passed"]:
        return _decided(state, fallback, inference["label"], BACKUP_MODEL)
    return {"fallback": fallback, "trace": traced(state, FALLBACK)}


def review_step(state: State, services: Services) -> dict[str, Any]:
    """A person at the keyboard chooses the label (``interrupt``); nobody there, or no label
    given: pending."""
    labels = services.labels_for(state)
    fallback = Fallback(**state["fallback"])
    if not state.get("interactive"):
        return _pending(state, fallback)
    resume = interrupt(ask(REVIEW, review_question(labels), labels))
    answer, _ = unpack_answer(resume)
    label = None if answer is None else parse_choice(answer, labels)
    review = {"mode": "queue" if from_review(resume) else "interactive", "answer": answer, "label": label}
    if label is None:  # nobody answered: leave it to ``selfheal review``
        return _pending(state, fallback, review=review | {"mode": "queue"})
    return _decided(state, fallback | {"review": review}, label, HUMAN_REVIEW)


def await_review_step(state: State, services: Services) -> dict[str, Any]:
    """Wait for ``selfheal review`` (``interrupt``); an input the model cannot know may be
    answered "neither". An answer that names no label comes back here to wait again."""
    labels = services.labels_for(state)
    unknowable = state.get("route") == UNKNOWABLE
    question = unknowable_review_question(labels) if unknowable else review_question(labels)
    extra = {"none": True} if unknowable else {}
    resume = interrupt(ask(REVIEW_QUEUE, question, labels, **extra))
    answer, _ = unpack_answer(resume)
    meant = None
    if answer is not None:
        meant = parse_identity(answer, labels) if unknowable else parse_choice(answer, labels)
    if meant is None:  # not answered: keep waiting in the queue
        return {"trace": traced(state, FALLBACK)}
    return _reviewed_queue(state, Fallback(**state["fallback"]), answer, None if meant == NEITHER else meant)


# --- FallbackNode: routing between its steps --------------------------------------------------


def route_fallback_entry(state: State) -> str:
    """The first step: by ConfidenceCheckNode's route (``unknowable``, ``ask_clarify`` or
    ``escalate``), or ``pending_review`` (to ``await_review``) for a request that
    FinalDecisionNode logged as pending."""
    if state.get("via") == PENDING_REVIEW:
        return PENDING_REVIEW
    route = state["route"]
    if route not in (UNKNOWABLE, ASK_CLARIFY, ESCALATE):
        raise ValueError(f"FallbackNode cannot start on route {route!r}")
    return route


def route_after_identify(state: State) -> Literal["decided", "ask_again"]:
    """Done once a label, "neither" or pending is decided; else the question is asked again."""
    return "decided" if state.get("via") is not None else "ask_again"


def route_after_clarify(state: State) -> Literal["decided", "no_answer", "ask_again"]:
    """Done on a label (or "quit": pending); to the backups when the question got no usable
    answer; else it is asked again."""
    if state.get("via") is not None:
        return "decided"
    return "no_answer" if state["fallback"].get("no_answer_reason") else "ask_again"


def route_after_backup(state: State) -> Literal["decided", "needs_person"]:
    """Done if the backups decided (the no-person rule held), else a person reviews."""
    return "decided" if state.get("via") is not None else "needs_person"


def route_after_await_review(state: State) -> Literal["answered", "keep_waiting"]:
    """Done once a reviewer gave a label (or "neither"), else wait again."""
    return "keep_waiting" if state.get("via") == PENDING_REVIEW else "answered"


# --- FinalDecisionNode -----------------------------------------------------------------------


def final_decision_node(state: State, services: Services) -> dict[str, Any]:
    """Write the log record (and any label a person gave) and return the decision.

    Both appends go into ``services.log.journal``: if the second one (or the checkpoint after this
    node) fails, :class:`selfheal.graph.session.Session` takes them back, so a decision is recorded
    whole or not at all.
    """
    trace = traced(state, FINAL_DECISION)
    record = build_record(dict(state), trace)
    services.log.write(record)
    via, label = state.get("via"), state.get("final_label")
    if via in (USER_CLARIFICATION, HUMAN_REVIEW) and label is not None:
        services.log.journal.append(
            append_clarified(services.config.paths.clarified, state["text"], label, state["request_id"], via)
        )
    return {"record": record, "trace": trace}


def route_after_decision(state: State) -> Literal["wait_for_review", "end"]:
    """A pending request goes back to FallbackNode to wait for ``selfheal review``."""
    return "wait_for_review" if state.get("via") == PENDING_REVIEW else "end"
