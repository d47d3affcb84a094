"""The one typed state that flows through the graph and through FallbackNode's steps, and the
names of the nodes and steps.

Every value is plain JSON (str, float, bool, dict, list) so the SQLite checkpointer can store a
paused request and another process can resume it. The names of routes, ``via`` values and
question kinds are those of :mod:`selfheal.vocabulary`.

FallbackNode is a compiled subgraph over this same schema: its steps read and write these keys,
and when it ends the parent graph takes its final values. So no key has a reducer that would
add a subgraph's values to the parent's a second time: ``trace`` is a plain list that each node
returns whole (see :func:`selfheal.graph.nodes.traced`).
"""

from __future__ import annotations

from typing import Any, TypedDict

from selfheal.vocabulary import Route, Via

# The four top-level nodes.
INFERENCE = "InferenceNode"
CONFIDENCE_CHECK = "ConfidenceCheckNode"
FALLBACK = "FallbackNode"
FINAL_DECISION = "FinalDecisionNode"
# FallbackNode's steps (the nodes of its subgraph), in the order they may run. The stream names a
# step by its path, e.g. ``(FALLBACK, CLARIFY_STEP)``.
IDENTIFY_STEP = "identify"
CLARIFY_STEP = "clarify"
BACKUP_STEP = "backup"
REVIEW_STEP = "review"
AWAIT_REVIEW_STEP = "await_review"
FALLBACK_STEPS = (IDENTIFY_STEP, CLARIFY_STEP, BACKUP_STEP, REVIEW_STEP, AWAIT_REVIEW_STEP)


class Fallback(TypedDict, total=False):
    """What FallbackNode did (the ``fallback`` part of the log record)."""

    activated: bool
    strategy: Route | None  # "ask_clarify", "escalate" or "unknowable"
    question: str | None
    user_response: list[str]  # every raw answer to the question, in order
    user_label: str | None  # the label that answer meant
    attempts: int  # how many times the question was asked
    no_answer_reason: str | None  # non_interactive | eof | interrupted | timeout | unclear | unsure | quit
    backup: dict[str, Any] | None  # {label, probs, agree, models: {name: {label, probs}}}
    review: dict[str, Any] | None  # {mode: interactive | queue, answer, label}


class State(TypedDict, total=False):
    """One request on its way through the graph."""

    # input (set by the caller)
    request_id: str
    text: str  # cleaned and possibly cut
    input_chars: int  # length of the cleaned text before any cut
    input_truncated: bool
    interactive: bool  # a person is at the keyboard to answer questions
    thresholds: dict[str, float]  # {accept, clarify} in force for this request
    started_at: float  # time.time() when the request was received
    # computed before the graph ran, for many texts in one batch (Session.start_many): the
    # InferenceNode and the backup step use these instead of calling the models
    given_inference: dict[str, Any] | None  # {label, probs, confidence, latency_ms, truncated, knowability}
    given_backup: dict[str, Any] | None  # the backups' vote, as BackupEnsemble.predict gives it
    # InferenceNode
    inference: dict[str, Any]  # {label, probs, confidence, latency_ms}
    knowability_scores: dict[str, Any] | None  # the knowability signals (None: no detector)
    model: dict[str, Any]  # {version, temperature, checkpoint}
    # ConfidenceCheckNode
    route: Route
    status: str
    knowability: dict[str, Any] | None  # {known, reason, scores, thresholds} (None: check off)
    # FallbackNode (its steps)
    fallback: Fallback
    # the decision: ``via`` is None until a step decides (or leaves the request pending)
    final_label: str | None
    via: Via | None
    record: dict[str, Any]  # the log record FinalDecisionNode wrote last
    trace: list[str]  # top-level node names in the order they ran (FallbackNode once per visit)
