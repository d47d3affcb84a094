"""The one typed state that flows through the graph, and the names of routes and outcomes.

Every value is plain JSON (str, float, bool, dict, list) so the SQLite checkpointer can store a
paused request and another process can resume it.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict, get_args

# ConfidenceCheckNode's decision: which way the request goes.
# ``unknowable``: the input-knowability check found an input the model cannot know about.
Route = Literal["accept", "ask_clarify", "escalate", "unknowable"]
# The same decision as a status word in the log record.
STATUS: dict[str, str] = {
    "accept": "ACCEPT",
    "ask_clarify": "LOW",
    "escalate": "VERY_LOW",
    "unknowable": "UNKNOWN",
}

# FallbackNode works in steps, one per visit, so that nothing before an ``interrupt()`` repeats
# an expensive or side-effecting action when the request is resumed:
#   clarify -> backup -> review -> (pending -> queued) -> done
# and, for an unknowable input (never labelled by the backups): identify -> (pending -> queued) -> done
Stage = Literal["identify", "clarify", "backup", "review", "pending", "queued", "done"]

# How the final label was reached.
# ``user_none``: the user said an unknowable input is neither a positive nor a negative review
# (final label ``None``; not kept for retraining).
Via = Literal["model", "user_clarification", "backup_model", "human_review", "pending_review", "user_none"]
VIA_VALUES: tuple[str, ...] = get_args(Via)

# What a paused request waits for (the ``kind`` of the interrupt value).
Ask = Literal["identify", "clarify", "review", "review_queue"]


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
    # InferenceNode
    inference: dict[str, Any]  # {label, probs, confidence, latency_ms}
    knowability_scores: dict[str, Any] | None  # the knowability signals (None: no detector)
    model: dict[str, Any]  # {version, temperature, checkpoint}
    # ConfidenceCheckNode
    route: Route
    status: str
    knowability: dict[str, Any] | None  # {known, reason, scores, thresholds} (None: check off)
    # FallbackNode
    stage: Stage
    fallback: Fallback
    # the decision
    final_label: str | None
    via: Via | None
    record: dict[str, Any]  # the log record FinalDecisionNode wrote last
    trace: Annotated[list[str], operator.add]  # node names in the order they ran
