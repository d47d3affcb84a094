"""The one vocabulary of decisions: routes, statuses, ``via`` values, what a pause waits for.

The graph, the log, the evaluation, the simulation, ``selfheal stats`` and the terminal all
spell these names from here, and show them with the display strings here. Values are plain
``str`` (they go into the JSONL log and the LangGraph checkpoint as they are).
"""

from __future__ import annotations

from typing import Final, Literal, get_args

# ConfidenceCheckNode's decision: which way the request goes.
Route = Literal["accept", "ask_clarify", "escalate", "unknowable"]
ACCEPT: Final = "accept"
ASK_CLARIFY: Final = "ask_clarify"
ESCALATE: Final = "escalate"
UNKNOWABLE: Final = "unknowable"  # the knowability check found an input the model cannot know
ROUTES: tuple[str, ...] = get_args(Route)

# The same decision as the status word in the log record (``confidence_check.status``).
STATUS: dict[str, str] = {ACCEPT: "ACCEPT", ASK_CLARIFY: "LOW", ESCALATE: "VERY_LOW", UNKNOWABLE: "UNKNOWN"}

# The four fallback outcomes ``selfheal stats`` counts, and every spelling that maps onto them
# (routes, statuses, and older logs' words).
Outcome = Literal["accept", "clarify", "escalate", "unknowable"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)
OUTCOME_OF: dict[str, str] = {
    ACCEPT: "accept",
    ASK_CLARIFY: "clarify",
    "clarify": "clarify",
    ESCALATE: "escalate",
    UNKNOWABLE: "unknowable",
    "low": "clarify",
    "very_low": "escalate",
    "unknown": "unknowable",
}

# How the final label was reached (``final_decision.via``).
Via = Literal["model", "user_clarification", "backup_model", "human_review", "pending_review", "user_none"]
MODEL: Final = "model"
USER_CLARIFICATION: Final = "user_clarification"
BACKUP_MODEL: Final = "backup_model"
HUMAN_REVIEW: Final = "human_review"
PENDING_REVIEW: Final = "pending_review"  # escalated, no label yet
USER_NONE: Final = "user_none"  # the user said an unknowable input has none of the labels
VIAS: tuple[str, ...] = get_args(Via)
# The routes a label can end on in the evaluation (``user_none`` needs a person saying "neither").
DECISION_ROUTES: tuple[str, ...] = (MODEL, USER_CLARIFICATION, BACKUP_MODEL, HUMAN_REVIEW, PENDING_REVIEW)
# A person decided (or will decide): the evaluation's "with a person" share.
HUMAN_VIAS: tuple[str, ...] = (USER_CLARIFICATION, HUMAN_REVIEW, PENDING_REVIEW)

# Display strings.
VIA_SUMMARY: dict[str, str] = {  # "Bye: 3 requests (2 by the model, ...)"
    MODEL: "by the model",
    USER_CLARIFICATION: "clarified by you",
    BACKUP_MODEL: "by the backup models",
    HUMAN_REVIEW: "by human review",
    PENDING_REVIEW: "pending review",
    USER_NONE: "not a review (you said)",
}
VIA_ENDING: dict[str, str] = {  # "Final Label: Positive (via backup model)"
    BACKUP_MODEL: " (via backup model)",
    HUMAN_REVIEW: " (via human review)",
    PENDING_REVIEW: " (escalated to human review)",
}
VIA_TITLE: dict[str, str] = {  # the evaluation's per-route table
    MODEL: "model (auto-accepted)",
    USER_CLARIFICATION: "user_clarification",
    BACKUP_MODEL: "backup_model (no person)",
    HUMAN_REVIEW: "human_review",
    PENDING_REVIEW: "pending (waits for review)",
    USER_NONE: "user_none (none of the labels)",
}

# What a paused request waits for (the ``kind`` of its interrupt).
Ask = Literal["identify", "clarify", "review", "review_queue"]
IDENTIFY: Final = "identify"
CLARIFY: Final = "clarify"
REVIEW: Final = "review"
REVIEW_QUEUE: Final = "review_queue"
ASK_NAMES: dict[str, str] = {
    REVIEW_QUEUE: "pending review",
    REVIEW: "open review",
    CLARIFY: "open question",
    IDENTIFY: "open question",
}

# Why a question got no usable answer (``fallback.no_answer_reason``).
NoAnswer = Literal["non_interactive", "eof", "interrupted", "timeout", "unclear", "unsure", "quit"]
NO_ANSWER_TEXT: dict[str, str] = {
    "eof": "No answer (end of input).",
    "interrupted": "Question skipped.",
    "timeout": "No answer in time.",
    "unclear": "Still unclear.",
    "unsure": "Still unsure.",
    "no_answer": "No answer.",
}
