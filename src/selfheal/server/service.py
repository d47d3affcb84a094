"""What the HTTP endpoints do, on the same :class:`~selfheal.graph.session.Session` as the CLI.

Every method here is synchronous (the app runs it in a worker thread) and raises
:class:`ApiError` with an HTTP status and a one-line reason for anything the caller got wrong.
The ``/v1`` routes and the LangGraph-compatible routes both call it, so a request is started,
paused, answered and logged the same way whichever API (or the CLI) touches it:

* a new request runs with ``interactive=True`` (``/v1/classify``, a LangGraph run): it may pause
  at a question for the client, like ``selfheal run`` (``interactive=False`` for the batch
  endpoint, like ``selfheal classify``). A client that never answers: with
  ``fallback.answer_timeout`` set, the question is answered "no answer" once that time has passed
  (:meth:`GraphApi.expire_questions`; on to the backups, then pending, as ``run`` does at its
  timeout); without it, the question stays open in the checkpointer, where the review endpoints
  and ``selfheal review`` see and may answer it, as a question left by a killed ``selfheal run``;
* an answer is read with :mod:`selfheal.graph.answers`, the code ``run`` and ``review`` use. A
  y/n clarification takes yes/no or a label; "I don't know" is passed on (the graph asks again,
  then goes on to the backups, as in ``run``) and "quit" leaves the request pending for review;
  anything else that names no label is a 422 and the question stays as it was. At the forced
  choice (``review`` step) "quit" / "I don't know" leave it pending for review at once;
* the first answer wins (:meth:`Session.resume` claims the question); a second gets 409.

The models are shared by all worker threads behind one lock (:func:`locked_services`): a
Hugging Face fast tokenizer must not be called from two threads at once, and on this CPU one
forward pass uses every core anyway. Graph steps that need no model (answers, the log, the
checkpointer) run in parallel.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from selfheal.config import Config
from selfheal.graph.answers import (
    choice_hint,
    is_quit,
    is_unsure,
    parse_choice,
    parse_identity,
    read_choice,
    read_clarification,
)
from selfheal.graph.claims import AlreadyAnswered
from selfheal.graph.services import Services
from selfheal.graph.session import Outcome, Session, current_values
from selfheal.inputs import prepare_text
from selfheal.labels import LabelSet
from selfheal.server.auth import Caller
from selfheal.server.metrics import Metrics
from selfheal.server.threads import ThreadRegistry, ThreadRow
from selfheal.vocabulary import CLARIFY, IDENTIFY, REVIEW, REVIEW_QUEUE, UNKNOWABLE

# The interrupt kinds of the API: who is asked.
INTERRUPT_KIND = {
    CLARIFY: "clarification",
    IDENTIFY: "clarification",
    REVIEW: "review",
    REVIEW_QUEUE: "review",
}


class ApiError(Exception):
    """A request the server refuses: an HTTP status and a one-line reason."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


# --- opening the session ------------------------------------------------------------------------


def open_session(services: Services, db_url: str | None) -> tuple[Session, Callable[[], None]]:
    """The session on the database of ``db_url`` (else ``storage.url``, else the CLI's SQLite file
    in ``paths.log_dir``, shared with ``selfheal review``; PostgreSQL for replicas), and what
    closes it (:func:`selfheal.graph.storage.open_storage`)."""
    from selfheal.graph.storage import open_storage

    storage = open_storage(services.config, db_url)
    return Session(services, checkpointer=storage.checkpointer, claims=storage.claims), storage.close


class _Locked:
    """A model whose calls hold a lock; every other attribute is the model's own."""

    def __init__(self, model: Any, lock: threading.Lock) -> None:
        self._model = model
        self._lock = lock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        """The model's ``predict`` under the lock."""
        with self._lock:
            return self._model.predict(*args, **kwargs)

    def predict_many(self, *args: Any, **kwargs: Any) -> Any:
        """The model's ``predict_many`` under the lock."""
        with self._lock:
            return self._model.predict_many(*args, **kwargs)


def locked_services(services: Services) -> Services:
    """``services`` with its models loaded now and called one at a time (see the module doc)."""
    services.warm_up()
    lock = threading.Lock()
    return Services(
        services.config,
        classifier=_Locked(services.classifier, lock),  # type: ignore[arg-type]
        backups=_Locked(services.backups, lock),  # type: ignore[arg-type]
        log=services.log,
    )


class Serialized:
    """An object whose methods run one call at a time (a lock around each).

    The claim store shares one SQLite connection between the server's worker threads, and
    SQLite's row count of an ``INSERT`` is per connection: two threads claiming at once could
    each read the other's count, and both lose. The claim itself stays atomic across processes
    (the table's primary key); the lock only keeps this process's calls apart.
    """

    def __init__(self, target: Any) -> None:
        self._target = target
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attribute(*args, **kwargs)

        return call


# --- the paused question of a thread ------------------------------------------------------------


@dataclass(frozen=True)
class Paused:
    """A thread waiting at an interrupt: its state so far, the interrupt id and value."""

    thread_id: str
    values: dict[str, Any]
    interrupt_id: str
    value: dict[str, Any]

    @property
    def kind(self) -> str:
        """The graph's kind of question (``clarify``, ``identify``, ``review``, ``review_queue``)."""
        return str(self.value.get("kind"))


def interrupt_view(interrupt_id: str, value: dict[str, Any]) -> dict[str, Any]:
    """The ``interrupt`` object of the API for an interrupt value."""
    kind = str(value.get("kind"))
    return {
        "id": interrupt_id,
        "kind": INTERRUPT_KIND.get(kind, "review"),
        "question": value.get("question", ""),
        "choices": list(value.get("choices") or []),
        "step": kind,
    }


def values_from_record(record: dict[str, Any]) -> dict[str, Any]:
    """The values of a finished thread (its checkpoint is gone) from its log record."""
    return {
        "request_id": record.get("request_id"),
        "text": record.get("input_text"),
        "final_label": record.get("final_decision", {}).get("label"),
        "via": record.get("final_decision", {}).get("via"),
        "record": record,
    }


def answer_hint(value: dict[str, Any], labels: LabelSet) -> str:
    """How the question of ``value`` may be answered, for a 422."""
    kind = value.get("kind")
    if kind == CLARIFY and value.get("asked"):
        return f"yes/no or {choice_hint(labels)}"
    return choice_hint(labels, none=bool(value.get("none")))


def resume_value(value: dict[str, Any], answer: str, labels: LabelSet) -> Any:
    """The resume value for a client's ``answer`` to the question ``value``, read as ``selfheal run``
    reads it (:mod:`selfheal.graph.answers`); an answer that names no choice is a 422."""
    text = answer.strip()
    kind = value.get("kind")
    if text:
        if kind == CLARIFY:
            asked = value.get("asked")
            reading = read_clarification(text, asked, labels) if asked else read_choice(text, labels)
            if reading.kind != "unclear":  # a label, "I don't know" (asked again) or quit
                return text
        elif kind == IDENTIFY:
            if parse_identity(text, labels) is not None or is_quit(text) or is_unsure(text):
                return text
        elif kind == REVIEW:  # the forced choice of selfheal run
            if parse_choice(text, labels) is not None:
                return text
            if is_quit(text) or is_unsure(text):
                return {"answer": None, "reason": "quit" if is_quit(text) else "unsure"}
    raise ApiError(422, f"answer {answer!r} is not one of the choices ({answer_hint(value, labels)})")


# --- the API ---------------------------------------------------------------------------------------


class GraphApi:
    """The endpoints' work on one session, its thread registry and its metrics."""

    def __init__(self, session: Session, registry: ThreadRegistry, metrics: Metrics) -> None:
        self.session = session
        self.registry = registry
        self.metrics = metrics
        self.config: Config = session.config

    # -- reading threads -------------------------------------------------------------------------

    def paused(self, thread_id: str) -> Paused | None:
        """The interrupt ``thread_id`` waits at, or ``None``."""
        snapshot = self.session.graph.get_state({"configurable": {"thread_id": thread_id}}, subgraphs=True)
        if not snapshot.interrupts:
            return None
        first = snapshot.interrupts[0]
        return Paused(thread_id, current_values(snapshot), first.id, dict(first.value))

    def _known(self, thread_id: str) -> tuple[ThreadRow | None, Paused | None]:
        """The registry row and the pause of a thread; 404 if neither exists."""
        row = self.registry.get(thread_id) if _is_uuid(thread_id) else None
        paused = self.paused(thread_id) if _is_uuid(thread_id) else None
        if row is None and paused is None:
            raise ApiError(404, f"unknown thread {thread_id}")
        return row, paused

    @staticmethod
    def check_owner(thread_id: str, row: ThreadRow | None, caller: Caller) -> None:
        """403 unless ``caller`` made the thread (or neither used a token)."""
        owner = row.owner if row is not None else None
        if owner == caller.owner:
            return
        if row is None:
            raise ApiError(403, f"thread {thread_id} was not created through this API; a reviewer answers it")
        raise ApiError(403, f"thread {thread_id} was created under another token")

    def result(self, outcome: Outcome) -> dict[str, Any]:
        """The API's view of an outcome: done with its record, or interrupted with its question."""
        if outcome.done:  # ``values`` (the final state) is for the LangGraph API; /v1 drops it
            return {
                "thread_id": outcome.request_id,
                "status": "done",
                "record": outcome.record,
                "values": outcome.state,
            }
        paused = self.paused(outcome.request_id)
        interrupt_id = paused.interrupt_id if paused is not None else ""
        return {
            "thread_id": outcome.request_id,
            "status": "interrupted",
            "record": outcome.record,
            "interrupt": interrupt_view(interrupt_id, dict(outcome.waiting or {})),
        }

    def view(self, thread_id: str, caller: Caller) -> dict[str, Any]:
        """A thread's status (``idle`` before its request, ``done``, ``interrupted``), values and
        pending interrupt; a reviewer may read any thread, a client its own."""
        row, paused = self._known(thread_id)
        if not caller.reviewer:
            self.check_owner(thread_id, row, caller)
        if paused is not None:
            return {
                "thread_id": thread_id,
                "status": "interrupted",
                "record": paused.values.get("record"),
                "interrupt": interrupt_view(paused.interrupt_id, paused.value),
                "values": paused.values,
            }
        record = None
        if row is not None and row.started:
            from selfheal.graph.checkpoints import latest_records

            record = latest_records(self.session.services.log.jsonl_path, {thread_id}).get(thread_id)
        if record is None:
            return {"thread_id": thread_id, "status": "idle", "values": {}}
        return {
            "thread_id": thread_id,
            "status": "done",
            "record": record,
            "values": values_from_record(record),
        }

    # -- new requests ----------------------------------------------------------------------------

    def check_text(self, text: str, where: str = "text") -> None:
        """422 for an empty text or one longer than ``input.max_chars``."""
        limit = self.config.input.max_chars
        if len(text) > limit:
            raise ApiError(422, f"{where} is longer than {limit} characters (input.max_chars)")
        if not prepare_text(text, limit).text:
            raise ApiError(422, f"{where} is empty")

    def classify(self, text: str, caller: Caller, thread_id: str | None = None) -> dict[str, Any]:
        """Start one request (it may pause at a question for the client).

        ``thread_id``: a thread created by ``POST /threads`` and not used yet (else 404 / 409 / 403).
        """
        self.check_text(text)
        if thread_id is None:
            thread_id = str(uuid.uuid4())
            self.registry.create(thread_id, caller.owner, started=True)
            undo = functools.partial(self.registry.delete, thread_id)
        else:
            row = self.registry.get(thread_id)
            if row is None:
                raise ApiError(404, f"unknown thread {thread_id} (create it with POST /threads)")
            self.check_owner(thread_id, row, caller)
            if not self.registry.start(thread_id):
                raise ApiError(409, f"thread {thread_id} already has a request (one request per thread)")
            undo = functools.partial(self.registry.unstart, thread_id)
        try:
            outcome = self.session.start(text, interactive=True, request_id=thread_id)
        except BaseException:
            with contextlib.suppress(Exception):
                undo()
            raise
        assert outcome is not None  # the text is not empty
        self.metrics.decision(outcome.record if outcome.done or outcome.pending_review else None)
        return self.result(outcome)

    def batch(self, texts: list[str], caller: Caller) -> list[dict[str, Any]]:
        """Decide many texts without waiting for anyone (``selfheal classify``): one model batch."""
        if len(texts) > self.config.server.max_batch:
            raise ApiError(
                422,
                f"texts has {len(texts)} items; at most {self.config.server.max_batch} (server.max_batch)",
            )
        for n, text in enumerate(texts):
            self.check_text(text, f"texts[{n}]")
        ids = [str(uuid.uuid4()) for _ in texts]
        for thread_id in ids:
            self.registry.create(thread_id, caller.owner, started=True)
        results = []
        outcomes = self.session.start_many(texts, interactive=False, request_ids=ids)
        try:
            for outcome in outcomes:
                assert outcome is not None
                self.metrics.decision(outcome.record)
                results.append(self.result(outcome))
        finally:
            for thread_id in ids[len(results) :]:  # not recorded (a storage error): forget them
                with contextlib.suppress(Exception):
                    self.registry.delete(thread_id)
        return results

    # -- answers ---------------------------------------------------------------------------------

    def _resume(self, thread_id: str, value: Any) -> dict[str, Any]:
        try:
            outcome = self.session.resume(thread_id, value)
        except AlreadyAnswered:
            raise ApiError(409, f"thread {thread_id}: another answer was given first") from None
        self.metrics.decision(outcome.record if outcome.done or outcome.pending_review else None)
        return self.result(outcome)

    def resume(
        self, thread_id: str, answer: str, caller: Caller, interrupt_id: str | None = None
    ) -> dict[str, Any]:
        """The client's answer to the question its request waits at."""
        row, paused = self._known(thread_id)
        self.check_owner(thread_id, row, caller)
        if paused is None:
            raise ApiError(409, f"thread {thread_id} waits for no answer")
        if interrupt_id is not None and interrupt_id != paused.interrupt_id:
            raise ApiError(409, f"thread {thread_id} no longer waits at interrupt {interrupt_id}")
        if paused.kind == REVIEW_QUEUE:
            raise ApiError(409, f"thread {thread_id} waits for a reviewer (POST /v1/review/{thread_id})")
        labels = self.session.services.labels_for(paused.values)
        return self._resume(thread_id, resume_value(paused.value, answer, labels))

    def review_answer(self, thread_id: str, label: str) -> dict[str, Any]:
        """A reviewer's label for a paused request (as ``selfheal review`` gives it)."""
        _, paused = self._known(thread_id)
        if paused is None:
            raise ApiError(409, f"thread {thread_id} waits for no answer")
        labels = self.session.services.labels_for(paused.values)
        unknowable = paused.values.get("route") == UNKNOWABLE
        text = label.strip()
        meant = parse_identity(text, labels) if unknowable else parse_choice(text, labels)
        if meant is None:
            hint = choice_hint(labels, none=unknowable)
            raise ApiError(422, f"label {label!r} is not one of the choices ({hint})")
        return self._resume(thread_id, {"answer": text, "source": "review"})

    def review_queue(self, limit: int, offset: int, questions: bool) -> dict[str, Any]:
        """The paused requests, oldest first: those in the review queue (with ``questions``, also
        the questions left open by a client, as ``selfheal review`` lists them)."""
        paused = [
            outcome
            for outcome in self.session.paused()
            if questions or (outcome.waiting or {}).get("kind") == REVIEW_QUEUE
        ]
        items = []
        for outcome in paused[offset : offset + limit]:
            found = self.paused(outcome.request_id)
            if found is None:  # answered meanwhile
                continue
            inference = found.values.get("inference") or {}
            items.append(
                {
                    "thread_id": outcome.request_id,
                    "text": found.values.get("text", ""),
                    "started_at": found.values.get("started_at"),
                    "model": {key: inference.get(key) for key in ("label", "probs", "confidence")},
                    "interrupt": interrupt_view(found.interrupt_id, found.value),
                }
            )
        return {"total": len(paused), "items": items}

    def expire_questions(self, timeout: float, now: float | None = None) -> list[str]:
        """Resume with "no answer" (``reason: timeout``) every question a client of this server
        left unanswered for ``timeout`` seconds (``fallback.answer_timeout``), and any question
        after it, as ``selfheal run`` does when its timeout passes: on to the backups, then
        pending in the review queue, logged. Threads the server did not create (a ``selfheal run``
        in a terminal may be waiting for its user) are left alone. Returns the thread ids."""
        from langgraph.types import StateSnapshot

        now = time.time() if now is None else now
        expired = []
        for outcome in self.session.paused():
            thread_id = outcome.request_id
            if (outcome.waiting or {}).get("kind") == REVIEW_QUEUE or self.registry.get(thread_id) is None:
                continue
            snapshot = self.session.graph.get_state(
                {"configurable": {"thread_id": thread_id}}, subgraphs=True
            )
            times = [snapshot.created_at] + [
                task.state.created_at for task in snapshot.tasks if isinstance(task.state, StateSnapshot)
            ]
            asked = max(datetime.fromisoformat(t).timestamp() for t in times if t)
            if now - asked < timeout:
                continue
            try:
                for _ in range(5):  # clarify -> (backups) -> forced choice -> pending: a few steps
                    done = self.session.resume(thread_id, {"answer": None, "reason": "timeout"})
                    if done.waiting is None or done.waiting.get("kind") == REVIEW_QUEUE:
                        break
            except AlreadyAnswered:  # the client (or a reviewer) answered just now
                continue
            self.metrics.decision(done.record)
            expired.append(thread_id)
        return expired

    def pending_count(self) -> float:
        """How many requests are paused (the metrics gauge)."""
        return float(len(self.session.paused()))

    def ready(self) -> None:
        """Raise if the checkpointer or the thread registry cannot be read."""
        self.session.checkpointer.get_tuple({"configurable": {"thread_id": "readyz", "checkpoint_ns": ""}})
        self.registry.ping()


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
