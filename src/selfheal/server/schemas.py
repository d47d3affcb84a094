"""The JSON bodies of the ``/v1`` API (they make the OpenAPI docs at ``/docs``).

Requests forbid unknown fields and do not coerce types (``{"text": 5}`` is a 422, not ``"5"``).
A decision's ``record`` is the very line written to ``app.jsonl`` (schema in
:mod:`selfheal.logs.decisions`).
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ClassifyRequest(_Request):
    """One text; it may pause at a question (answer it with ``/v1/threads/{id}/resume``)."""

    text: str = Field(description="The text to classify (not empty, at most input.max_chars characters).")
    thread_id: UUID | None = Field(
        None,
        strict=False,
        description="Run on this thread (created by POST /threads, or a new uuid4 of your own); "
        "default: a new one.",
    )


class BatchRequest(_Request):
    """Many texts, decided without waiting for anyone (like ``selfheal classify``)."""

    texts: list[str] = Field(min_length=1, description="At most server.max_batch texts.")


class ResumeRequest(_Request):
    """An answer to the question a thread waits at."""

    answer: str = Field(description="The answer: for a y/n question yes/no or a label, else a label.")
    interrupt_id: str | None = Field(
        None, description="Answer only if this is still the question waiting (else 409)."
    )


class ReviewRequest(_Request):
    """A reviewer's label for a paused request."""

    label: str = Field(description="A label's name or number (or 'neither' for an unknowable input).")


class Interrupt(BaseModel):
    """The question a paused request waits at."""

    id: str = Field(description="The LangGraph interrupt id.")
    kind: Literal["clarification", "review"] = Field(
        description="clarification: the client is asked; review: a forced choice, or the review queue."
    )
    question: str
    choices: list[str] = Field(description="The labels (a y/n question also takes yes/no).")
    step: str = Field(
        description="The graph's own kind: clarify, identify (answered by the client), review "
        "(forced choice, the client), review_queue (a reviewer: POST /v1/review/{thread_id})."
    )


class ClassifyResult(BaseModel):
    """Where a request stands: done (with its record) or interrupted (with its question)."""

    thread_id: str
    status: Literal["done", "interrupted"]
    record: dict[str, Any] | None = Field(
        None, description="The app.jsonl record (a pending review's record while it waits)."
    )
    interrupt: Interrupt | None = None


class BatchResult(BaseModel):
    """One result per text, in order."""

    results: list[ClassifyResult]


class ThreadView(ClassifyResult):
    """A thread: its status, its values (the graph state) and any pending interrupt."""

    status: Literal["idle", "done", "interrupted"] = Field(  # type: ignore[assignment]
        description="idle: created by POST /threads, no request yet."
    )
    values: dict[str, Any] = Field(default_factory=dict)


class ReviewItem(BaseModel):
    """A paused request in the review queue."""

    thread_id: str
    text: str
    started_at: float | None
    model: dict[str, Any] = Field(description="The model's label, probabilities and confidence.")
    interrupt: Interrupt


class ReviewQueue(BaseModel):
    """A page of the paused requests, oldest first."""

    total: int
    items: list[ReviewItem]


class Problem(BaseModel):
    """Every error: one line."""

    detail: str
