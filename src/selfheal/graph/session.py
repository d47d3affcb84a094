"""Driving requests through the compiled graph: start one, resume a paused one, list paused ones.

The commands (``run``, ``classify``, ``review``) and the evaluation use this; it knows nothing
about terminals. Each request is one graph thread (``thread_id = request_id``). A finished
request's thread is deleted from the checkpointer (its record is in ``app.jsonl``); a paused one
(a question waiting for an answer, a pending review) stays there and survives a restart.

A paused question is answered at most once, even by several processes at once: :meth:`Session.resume`
claims it first (:mod:`selfheal.graph.claims`) and raises :class:`~selfheal.graph.claims.AlreadyAnswered` when
someone else did.

The review queue is a table beside the claims (:class:`~selfheal.graph.claims.PausedQueue`): a
request that may pause gets a row before its graph runs, the row says where it waits once it
pauses, and it goes when the request is decided, so :meth:`Session.paused` reads one indexed
table rather than every checkpoint. The checkpointer and the claims may be SQLite (the CLI's
file) or PostgreSQL (:mod:`selfheal.graph.storage`); the session does not care which.

The graph is streamed with ``subgraphs=True`` when the caller wants to see the steps
(``on_update``): each update arrives with its namespace, so the caller learns which node, and
which of FallbackNode's steps, ran.

Batched decisions (:meth:`Session.start_many`): the model runs over many texts in one
``predict`` call, the backups over those of them that the graph will send to its backup step,
and each text then goes through the graph with that result handed in (``given_inference``,
``given_backup`` in its state), one request at a time, in input order, with the same record as
alone. :meth:`Session.start` is the same with one text.

What is checkpointed: a request whose prediction is known before the graph runs and is accepted
cannot pause (InferenceNode -> ConfidenceCheckNode -> FinalDecisionNode -> end), nor can one
whose backups' vote is known too and labels it without a person (... -> FallbackNode's backup
step -> FinalDecisionNode -> end), so these run on a copy of the graph compiled without a
checkpointer: nothing is written to SQLite for them. Every
other new request (it may ask, or wait for review) is checkpointed when its run ends
(``durability="exit"``): at its pause, before the caller hears of it, so a paused request
survives a crash; a crash before that pause loses a request nobody was told about (it has no
record either). A resumed request is checkpointed after every step (``durability="sync"``):
an answer is kept from the step it was applied at, and :meth:`Session.recover` finishes it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from selfheal.config import Config
from selfheal.graph.claims import PAUSED, RUNNING, AlreadyAnswered, Claim, ClaimStore, QueueEntry
from selfheal.graph.services import Services
from selfheal.inputs import prepare_text
from selfheal.logs.jsonl import StorageError, undo_append
from selfheal.vocabulary import REVIEW_QUEUE

# Called after every step with the step's path (``("InferenceNode",)``, or ``("FallbackNode",
# "clarify")`` for one of FallbackNode's steps), its own update, and the request's state after it.
UpdateCallback = Callable[[tuple[str, ...], dict[str, Any], dict[str, Any]], None]


@dataclass(frozen=True)
class Outcome:
    """Where a request stands after the graph ran: decided, or paused at a question."""

    request_id: str
    state: dict[str, Any]
    waiting: dict[str, Any] | None = None  # the interrupt value when paused

    @property
    def done(self) -> bool:
        """The graph finished (a final label, logged)."""
        return self.waiting is None

    @property
    def pending_review(self) -> bool:
        """Logged as pending; waits in the review queue."""
        return self.waiting is not None and self.waiting.get("kind") == REVIEW_QUEUE

    @property
    def record(self) -> dict[str, Any] | None:
        """The last log record written for this request."""
        return self.state.get("record")


class Session:
    """One process's handle on the graph and its checkpointer."""

    def __init__(
        self, services: Services, checkpointer: Any = None, claims: ClaimStore | None = None
    ) -> None:
        from selfheal.graph import build_graph, open_checkpointer
        from selfheal.graph.build import CHECKPOINT_DB

        self.services = services
        self.config: Config = services.config
        self._db_path: Path | str = Path(self.config.paths.log_dir) / CHECKPOINT_DB
        self.checkpointer = checkpointer or open_checkpointer(Path(self.config.paths.log_dir))
        self.claims = claims or ClaimStore(_database_of(self.checkpointer))
        self.queue = self.claims.queue
        if self.claims.db.kind != "sqlite" or self.claims.db.where != ":memory:":
            self._db_path = self.claims.db.where
        self.graph = build_graph(services, self.checkpointer)
        self._unpausable_graph: Any = None
        if self.queue.created:  # a database from before the queue table: index it once
            self.reindex()
            self.queue.created = False

    @property
    def unpausable_graph(self) -> Any:
        """The same graph compiled without a checkpointer, for requests that cannot pause."""
        if self._unpausable_graph is None:
            from selfheal.graph import build_graph

            self._unpausable_graph = build_graph(self.services)
        return self._unpausable_graph

    @staticmethod
    def _thread(request_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": request_id}}

    def new_state(self, text: str, interactive: bool, request_id: str | None = None) -> dict[str, Any] | None:
        """The initial state of a request for ``text``; ``None`` if nothing is left after cleaning.

        ``request_id`` (also the thread id): a new uuid4 unless the caller has one (the server's
        LangGraph API creates the thread before its run)."""
        clean = prepare_text(text, self.config.input.max_chars)
        if not clean.text:
            return None
        thresholds = self.config.thresholds
        return {
            "request_id": request_id or str(uuid.uuid4()),
            "text": clean.text,
            "input_chars": clean.chars,
            "input_truncated": clean.cut,
            "interactive": interactive,
            "thresholds": {"accept": thresholds.accept, "clarify": thresholds.clarify},
            "started_at": time.time(),
        }

    def start(
        self,
        text: str,
        interactive: bool,
        on_update: UpdateCallback | None = None,
        precompute: bool = True,
        request_id: str | None = None,
    ) -> Outcome | None:
        """Run a new request until it is decided or paused; ``None`` for empty text (no model call).

        ``precompute`` (the default): the model runs before the graph (:meth:`start_many` with one
        text), so an accepted request skips the checkpointer. ``precompute=False`` is the path
        before batching: InferenceNode calls the model, and the request is checkpointed as one that
        may pause (once, at its pause).
        """
        if precompute:
            ids = None if request_id is None else [request_id]
            return next(self.start_many([text], interactive, on_update, request_ids=ids))
        state = self.new_state(text, interactive, request_id)
        if state is None:
            return None
        return self._advance(state["request_id"], state, on_update, new=True)

    def prepare_many(
        self, texts: Sequence[str], interactive: bool, request_ids: Sequence[str] | None = None
    ) -> list[dict[str, Any] | None]:
        """The initial states of requests for ``texts`` (``None`` for an empty text), with the
        model's prediction of each cleaned text from one ``predict`` call (``given_inference``;
        its ``latency_ms`` is the call's time divided by the number of texts), and the backups'
        vote from one batched call (``given_backup``) for the texts whose request will reach the
        backup step whatever happens: ``escalate``, and ``ask_clarify`` with nobody to ask (an
        interactive request that is asked reaches it only if the user does not answer)."""
        from selfheal.graph.nodes import prediction_result
        from selfheal.vocabulary import ASK_CLARIFY, ESCALATE

        ids = request_ids if request_ids is not None else [None] * len(texts)
        states = [self.new_state(text, interactive, rid) for text, rid in zip(texts, ids, strict=True)]
        live = [state for state in states if state is not None]
        if not live:
            return states
        classifier = self.services.classifier
        start = time.perf_counter()
        predictions = classifier.predict([state["text"] for state in live])
        latency_ms = round((time.perf_counter() - start) * 1000 / len(live), 1)
        for state, prediction in zip(live, predictions, strict=True):
            state["given_inference"] = prediction_result(prediction, latency_ms)
            state["route"] = self._route(state)  # dropped before the graph runs (see start_many)
        sure = (ESCALATE,) if interactive else (ASK_CLARIFY, ESCALATE)
        to_backups = [state for state in live if state["route"] in sure]
        if to_backups:
            from selfheal.model.backup import rule_may_hold

            backups, bc = self.services.backups, self.services.config.backup
            batch = [state["text"] for state in to_backups]
            needed = [
                rule_may_hold(bc.decide, bc.min_confidence, state["given_inference"]["confidence"])
                for state in to_backups
            ]
            many = getattr(backups, "predict_many", None)
            if many is not None:
                votes = many(batch, needed)
            else:
                votes = [backups.predict(text, voter_needed=n) for text, n in zip(batch, needed, strict=True)]
            for state, vote in zip(to_backups, votes, strict=True):
                state["given_backup"] = vote
        return states

    def _route(self, state: dict[str, Any]) -> str:
        """The route ConfidenceCheckNode will take for a state with ``given_inference`` (its own code)."""
        from selfheal.graph.nodes import confidence_check_node

        given = state["given_inference"]
        probe = {
            "thresholds": state["thresholds"],
            "inference": {"label": given["label"], "confidence": given["confidence"]},
            "knowability_scores": given["knowability"],
        }
        return confidence_check_node(probe, self.services)["route"]  # type: ignore[arg-type]

    def start_many(
        self,
        texts: Sequence[str],
        interactive: bool = False,
        on_update: UpdateCallback | None = None,
        request_ids: Sequence[str] | None = None,
    ) -> Iterator[Outcome | None]:
        """Decide ``texts`` the batched way: the model (and the backups, where needed) run once
        over all of them (:meth:`prepare_many`), then each request goes through the graph in
        order; yields its :class:`Outcome` (``None`` for an empty text) as soon as it is decided
        or paused. A failure (say a :class:`StorageError`) is raised at the text it happened to:
        the requests yielded before it are recorded, it and those after it are not."""
        for state in self.prepare_many(texts, interactive, request_ids):
            if state is None:
                yield None
                continue
            pausable = self._may_pause(state)
            yield self._advance(state["request_id"], state, on_update, new=True, pausable=pausable)

    def _may_pause(self, state: dict[str, Any]) -> bool:
        """Whether a request from :meth:`prepare_many` may pause (its ``route`` is dropped here):
        not if it is accepted, nor if its backups' vote was handed in (it reaches the backup step
        whatever happens) and the no-person rule holds on it, so the backups decide it there."""
        from selfheal.graph.nodes import backup_rule
        from selfheal.vocabulary import ACCEPT

        route = state.pop("route")
        if route == ACCEPT:
            return False
        vote = state.get("given_backup")
        if vote is None:
            return True
        return not backup_rule(state["given_inference"], vote, self.config.backup)["passed"]

    def resume(self, request_id: str, answer: Any, on_update: UpdateCallback | None = None) -> Outcome:
        """Answer the question a paused request waits for (``Command(resume=answer)``).

        Raises :class:`AlreadyAnswered` if nothing waits, or another process claimed the question.
        """
        snapshot = self.graph.get_state(self._thread(request_id))
        if not snapshot.interrupts:
            raise AlreadyAnswered(request_id)
        key = question_key(snapshot)
        claim = self.claims.claim(request_id, key, answer)
        if claim is None:
            raise AlreadyAnswered(request_id, self.claims.get(request_id, key))
        return self._resume_claimed(claim, on_update)

    def _resume_claimed(self, claim: Claim, on_update: UpdateCallback | None) -> Outcome:
        """Resume with a claim's answer if the thread still waits at the question it was claimed for.

        A failure while resuming keeps the claim (with its answer) for :meth:`recover`.
        """
        from langgraph.types import Command

        # the subgraph's state too, where ``on_update`` is to see the request as it stands
        snapshot = self.graph.get_state(self._thread(claim.thread_id), subgraphs=on_update is not None)
        if not snapshot.interrupts or question_key(snapshot) != claim.question:
            self.claims.release(claim)  # answered before this claim was made
            raise AlreadyAnswered(claim.thread_id)
        state = current_values(snapshot)
        outcome = self._advance(claim.thread_id, Command(resume=claim.answer), on_update, state=state)
        self.claims.release(claim)
        return outcome

    def recover(self, on_update: UpdateCallback | None = None) -> list[Outcome]:
        """Finish answers whose process died after claiming them (with the answer it was given).

        If the dead process got as far as logging the decision, only its clean-up is done (the
        thread is deleted), so the decision is not logged twice; if it got as far as
        checkpointing the answer but not logging it, the record is written now.
        """
        from selfheal.graph.checkpoints import is_pending, latest_records
        from selfheal.graph.nodes import FINAL_DECISION

        done = []
        abandoned_claims = self.claims.abandoned()
        logged = latest_records(self.services.log.jsonl_path, {c.thread_id for c in abandoned_claims})
        for abandoned in abandoned_claims:
            claim = self.claims.take_over(abandoned)
            if claim is None:  # another process is finishing it
                continue
            record = logged.get(claim.thread_id)
            if record is not None and not is_pending(record):  # decided and logged already
                self.checkpointer.delete_thread(claim.thread_id)
                self.queue.remove(claim.thread_id)
                self.claims.release(claim)
                continue
            snapshot = self.graph.get_state(self._thread(claim.thread_id))
            if not snapshot.interrupts and tuple(snapshot.next) == (FINAL_DECISION,):
                done.append(self._advance(claim.thread_id, None, on_update))  # answered, unrecorded
                self.claims.release(claim)
                continue
            try:
                done.append(self._resume_claimed(claim, on_update))
            except AlreadyAnswered:
                continue
        return done

    def _advance(
        self,
        request_id: str,
        graph_input: Any,
        on_update: UpdateCallback | None,
        new: bool = False,
        state: dict[str, Any] | None = None,
        pausable: bool = True,
    ) -> Outcome:
        """Run the graph for one request until it is decided or paused.

        A request that cannot pause (``pausable=False``: a new one whose prediction, handed in,
        is accepted, or whose backups' vote, handed in too, decides it; see :meth:`_may_pause`)
        runs on :attr:`unpausable_graph`, with no checkpoint written or deleted; should it pause
        all the same, that is an error (a ``RuntimeError``, nothing recorded), not a lost request.

        ``on_update`` sees every step as it finishes: the path of the node (and of the
        FallbackNode step) from the stream's namespace, its update, and the request's state so
        far (``state``: where a resumed request stood; a new one starts from its input).

        All or nothing: if any step fails (a full disk, a database error, Ctrl-C), the lines this
        step appended (``app.jsonl``, then ``clarified.jsonl``) are taken back, so no reader sees
        half a decision. A ``new`` request is then forgotten (the caller reports it as not
        recorded); a resumed one keeps its last checkpoint: still waiting, or, if the answer was
        checkpointed, decided but unrecorded until :meth:`finish_unrecorded` writes its record.
        A database error becomes a :class:`StorageError`.
        """
        from selfheal.graph.nodes import FALLBACK

        config = self._thread(request_id)
        journal = self.services.log.journal
        mark = len(journal)
        waiting = None
        seen = dict(graph_input) if new else dict(state or {})  # the state as the steps go
        graph = self.graph if pausable else self.unpausable_graph
        watch = on_update is not None  # the subgraph's steps are streamed only for someone to see
        # without a checkpointer to ask, the final state is the input with each top-level node's
        # update laid over it in order (no key has a reducer, see selfheal.graph.state): cheaper
        # than also streaming every step's whole state ("values")
        final = dict(seen)
        try:
            if new and pausable:  # it may pause: a row first, so no pause is ever without one
                self.queue.running(
                    request_id, float(seen.get("started_at") or time.time()), seen.get("text", "")
                )
            for item in graph.stream(
                graph_input,
                config,
                stream_mode="updates",
                subgraphs=watch,
                durability=("exit" if new else "sync") if pausable else None,
            ):
                namespace, chunk = item if watch else ((), item)
                for node, update in chunk.items():
                    if node == "__interrupt__":
                        if not namespace:  # the same pause is also reported inside the subgraph
                            waiting = dict(update[0].value)
                        continue
                    if not namespace and update:
                        final.update(update)
                    if not namespace and node == FALLBACK and watch:
                        continue  # the subgraph's final state: its steps were reported one by one
                    if update and watch:
                        seen.update(update)
                        assert on_update is not None
                        on_update(step_path(namespace, node), update, seen)
            if waiting is not None and not pausable:  # no checkpoint: nobody could resume it
                raise RuntimeError(f"request {request_id} paused on the graph without a checkpointer")
            if pausable:
                # paused inside FallbackNode: its steps' updates are in the subgraph's state so far
                snapshot = self.graph.get_state(config, subgraphs=waiting is not None)
                state = current_values(snapshot)
                if waiting is not None:
                    self._queue_paused(request_id, snapshot, state, waiting)
            else:
                state = final
        except BaseException as exc:
            for appended in reversed(journal[mark:]):
                undo_append(appended)
            with contextlib.suppress(Exception):
                if new and pausable:
                    self.checkpointer.delete_thread(request_id)
                    self.queue.remove(request_id)
                elif pausable:  # still waiting, or decided but unrecorded: looked at again later
                    self.queue.mark_running(request_id)
            if isinstance(exc, sqlite3.Error):
                raise StorageError.wrap("write", self._db_path, exc) from None
            if is_database_error(exc):  # PostgreSQL: libpq's messages run over several lines
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise StorageError(f"cannot write {self._db_path}: {reason}") from None
            raise
        finally:
            del journal[mark:]
        if waiting is None and pausable:
            # The decision is recorded; a finished thread (or row) left behind (say, on a full
            # disk) is never listed as waiting, so failing to delete it loses nothing.
            with contextlib.suppress(Exception):
                self.checkpointer.delete_thread(request_id)
                self.queue.remove(request_id)
        return Outcome(request_id, state, waiting)

    def _queue_paused(
        self, request_id: str, snapshot: Any, state: dict[str, Any], waiting: dict[str, Any]
    ) -> None:
        """Write (or correct) the review queue's row of a paused request."""
        inference = state.get("inference") or {}
        summary = {
            "interrupt": waiting,
            "label": inference.get("label"),
            "confidence": inference.get("confidence"),
            "route": state.get("route"),
            "backup": (state.get("fallback") or {}).get("backup"),
        }
        self.queue.paused(
            request_id,
            question_key(snapshot),
            str(waiting.get("kind")),
            float(state.get("started_at") or time.time()),
            str(state.get("text", "")),
            summary,
        )

    def waiting(self, request_id: str) -> Outcome | None:
        """The paused request ``request_id``, or ``None`` if there is no such paused thread."""
        snapshot = self.graph.get_state(self._thread(request_id), subgraphs=True)
        if not snapshot.interrupts:
            return None
        return Outcome(request_id, current_values(snapshot), dict(snapshot.interrupts[0].value))

    def paused(self, limit: int | None = None, offset: int = 0, min_age: float = 60.0) -> list[Outcome]:
        """The paused requests, oldest first (``limit`` of them after the first ``offset``), from
        the queue table; each is checked against its thread (one ``get_state``).

        Rows the table has wrong are put right on the way: a ``running`` row older than
        ``min_age`` seconds whose thread waits (its process died between the pause and the row)
        is listed; a row whose thread is gone is dropped; a thread that no longer waits is
        marked ``running`` (being answered now, or decided but unrecorded).
        """
        self._settle(min_age)
        found: list[Outcome] = []
        position = offset
        while limit is None or len(found) < limit:
            page = 200 if limit is None else limit - len(found)
            rows = self.queue.entries(PAUSED, limit=page, offset=position)
            for entry in rows:
                outcome = self._check(entry)
                if outcome is not None:
                    found.append(outcome)
                    position += 1  # (a row that was wrong left the paused ones: no step)
            if len(rows) < page:
                break
        return found

    def queue_entries(self, limit: int | None = None, offset: int = 0) -> list[QueueEntry]:
        """The review queue's rows as they stand (no checkpoint read): for a quick listing."""
        return self.queue.entries(PAUSED, limit=limit, offset=offset)

    def _check(self, entry: QueueEntry) -> Outcome | None:
        """The paused request of a queue row, or ``None`` (the row is corrected) if it does not wait."""
        snapshot = self.graph.get_state(self._thread(entry.thread_id), subgraphs=True)
        if snapshot.interrupts:
            outcome = Outcome(entry.thread_id, current_values(snapshot), dict(snapshot.interrupts[0].value))
            if entry.status != PAUSED or question_key(snapshot) != entry.question:
                assert outcome.waiting is not None
                self._queue_paused(entry.thread_id, snapshot, outcome.state, outcome.waiting)
            return None if entry.status != PAUSED else outcome
        if snapshot.created_at is None or not snapshot.next:  # decided, its row left behind
            self.queue.forget(entry)
        elif entry.status == PAUSED:
            self.queue.mark_running(entry.thread_id, entry.updated_at)
        return None

    def _settle(self, min_age: float) -> None:
        """Look at the ``running`` rows older than ``min_age`` s (see :meth:`paused`)."""
        for entry in self.queue.entries(RUNNING, older_than=time.time() - min_age):
            self._check(entry)

    def reindex(self) -> int:
        """Rebuild the queue table from every checkpoint (the full scan :meth:`paused` avoids):
        for a database from before the table, and ``selfheal review --rebuild``. Returns the
        number of threads indexed."""
        threads: dict[str, None] = {}
        for item in self.checkpointer.list(None):
            threads.setdefault(item.config["configurable"]["thread_id"], None)
        for rid in threads:
            snapshot = self.graph.get_state(self._thread(rid), subgraphs=True)
            state = current_values(snapshot)
            if snapshot.interrupts:
                self._queue_paused(rid, snapshot, state, dict(snapshot.interrupts[0].value))
            elif snapshot.next:  # decided but unrecorded (finish_unrecorded), or cut short
                self.queue.running(rid, float(state.get("started_at") or 0.0), str(state.get("text", "")))
        settled = time.time() - 60.0  # a younger running row may be a request starting right now
        for entry in self.queue.entries(PAUSED) + self.queue.entries(RUNNING, older_than=settled):
            if entry.thread_id not in threads:
                self.queue.forget(entry)
        return len(threads)

    def finish_unrecorded(self, min_age: float = 60.0) -> list[Outcome]:
        """Write the records of decisions whose record failed (a full disk, a crash in between).

        Such a thread stopped with FinalDecisionNode still to run and the decision (a person's
        answer) in its checkpoint; running that node again logs it. ``min_age`` seconds keep off
        a request another process is deciding right now. Needs no model. Only the queue's
        ``running`` rows are looked at (a failed resume marks its row so).
        """
        from selfheal.graph.nodes import FINAL_DECISION

        now = time.time()
        done = []
        for entry in self.queue.entries(RUNNING, older_than=now - min_age):
            rid = entry.thread_id
            snapshot = self.graph.get_state(self._thread(rid))
            if snapshot.interrupts or tuple(snapshot.next) != (FINAL_DECISION,):
                continue
            created = snapshot.created_at
            if created and now - datetime.fromisoformat(created).timestamp() < min_age:
                continue
            done.append(self._advance(rid, None, None))
        return done


def current_values(snapshot: Any) -> dict[str, Any]:
    """The request's state where it stands: the parent's values, updated with those of the
    subgraph it is paused in (FallbackNode's steps so far; the parent sees them only once the
    subgraph ends). ``snapshot`` comes from ``get_state(..., subgraphs=True)``."""
    from langgraph.types import StateSnapshot

    values = dict(snapshot.values)
    for task in snapshot.tasks:
        if isinstance(task.state, StateSnapshot):  # else a config pointing to it (not read)
            values.update(current_values(task.state))
    return values


def step_path(namespace: tuple[str, ...], node: str) -> tuple[str, ...]:
    """``("FallbackNode", "clarify")`` from a stream namespace ``("FallbackNode:<task id>",)`` and
    the node ``clarify``; ``("InferenceNode",)`` at the top level."""
    return (*(part.split(":", 1)[0] for part in namespace), node)


def question_key(snapshot: Any) -> str:
    """What identifies the question a paused thread waits at: the parent checkpoint and the id
    of the interrupt. A step of FallbackNode that asks again (after an unclear answer) waits at
    the same parent checkpoint but at a new interrupt, so each question has its own key."""
    checkpoint_id = snapshot.config["configurable"]["checkpoint_id"]
    return f"{checkpoint_id}/{snapshot.interrupts[0].id}"


def _database_of(checkpointer: Any) -> Any:
    """Where the claims and the queue live beside the checkpoints: the SQLite file of a SQLite
    checkpointer, the connection pool of a PostgreSQL one, else memory."""
    conn = getattr(checkpointer, "conn", None)
    if isinstance(conn, sqlite3.Connection):
        for _, name, file in conn.execute("PRAGMA database_list"):
            if name == "main" and file:
                return str(file)
    if type(conn).__module__.startswith("psycopg_pool"):
        return conn
    return ":memory:"


def is_database_error(exc: BaseException) -> bool:
    """A SQLite or PostgreSQL (psycopg) error, without importing psycopg."""
    if isinstance(exc, sqlite3.Error):
        return True
    return any(cls.__module__.startswith("psycopg") and cls.__name__ == "Error" for cls in type(exc).__mro__)
