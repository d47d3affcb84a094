"""The logs: ``app.jsonl`` (one JSON record per decision) and ``app.log`` (human readable).

This module is the one place that builds and writes a log record. FinalDecisionNode calls
:meth:`LogWriter.write` with the finished graph state; nothing else writes ``app.jsonl``.

Record schema (one line per decision; every key is always present)::

    timestamp          ISO 8601 with UTC offset, when the decision was made
    request_id         uuid4; also the graph's thread_id
    input_text         the cleaned text the model saw (cut to input.max_chars)
    input_chars        length of the cleaned text before any cut
    input_truncated    true if the text was cut to input.max_chars or to the model's max_length tokens
    mode               "interactive" (selfheal run) or "batch" (selfheal classify)
    model              {version, temperature, checkpoint}
    inference          {label, probs: {label: p} (every label of the checkpoint, in its order; 2 or
                        more), confidence, latency_ms: the model's time for this text in ms (a
                        text predicted in a batch, as ``selfheal classify`` does: the batch's
                        time divided by its number of texts)}
    confidence_check   {thresholds: {accept, clarify}, status: ACCEPT | LOW | VERY_LOW | UNKNOWN,
                        route: accept | ask_clarify | escalate | unknowable,
                        knowability: null (check off) | {known, reason: null | no_known_words |
                        not_english | out_of_distribution | not_a_review, scores, thresholds}}
    fallback           {activated, strategy: null | ask_clarify | escalate | unknowable, question (the
                        first asked: y/n with two labels, multiple choice with more),
                        user_response: [every answer typed at the question, in order],
                        user_label, attempts, no_answer_reason, backup: null | {label, probs, agree,
                        models: {name: {label, probs}}, rule: {passed, reason, ...},
                        decided_without_person}, review: null | {mode, answer, label}}
    final_decision     {label (null while pending or for user_none), via: model | user_clarification
                        | backup_model | human_review | pending_review | user_none}
    trace              top-level node names in the order they ran (FallbackNode once per visit,
                        whichever of its steps ran)
    elapsed_ms         from receiving the request to this decision (includes waiting for people, and,
                        in a batch, for the batch's model call)

A request escalated without a person at hand is logged twice: first with
``via: "pending_review"`` and ``label: null``, then, once ``selfheal review`` answers it, with
``via: "human_review"`` under the same ``request_id``. Readers keep the latest line per request.

``app.jsonl`` is appended one whole line or nothing (see :mod:`selfheal.logs.jsonl`), so several
processes can log at once and a full disk leaves no partial line. ``app.log`` rotates by size
(``logging.max_bytes``); rotation is per process, so with several processes writing at once a
rotation may split their lines across files, but no line is lost. ``app.log`` is secondary: if it
cannot be written, one warning goes to stderr and ``app.jsonl`` is still written.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

from selfheal.config import Config
from selfheal.logs.jsonl import Appended, StorageError, append_line, sync_file
from selfheal.vocabulary import PENDING_REVIEW

JSONL_NAME = "app.jsonl"
APP_LOG_NAME = "app.log"
LOGGER_NAME = "selfheal"


def user_responses(fallback: dict[str, Any]) -> list[str]:
    """Every answer given to the clarifying question, in order (older records kept one string)."""
    value = fallback.get("user_response")
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def build_record(state: dict[str, Any], trace: list[str]) -> dict[str, Any]:
    """The JSON log record of a decided (or pending) request."""
    inference = state.get("inference") or {}
    fallback = dict(state.get("fallback") or {})
    return {
        "timestamp": datetime.now().astimezone().isoformat(timespec="milliseconds"),
        "request_id": state["request_id"],
        "input_text": state["text"],
        "input_chars": state.get("input_chars", len(state["text"])),
        "input_truncated": bool(state.get("input_truncated", False)),
        "mode": "interactive" if state.get("interactive") else "batch",
        "model": state.get("model") or {},
        "inference": {
            "label": inference.get("label"),
            "probs": inference.get("probs"),
            "confidence": inference.get("confidence"),
            "latency_ms": inference.get("latency_ms"),
        },
        "confidence_check": {
            "thresholds": state.get("thresholds"),
            "status": state.get("status"),
            "route": state.get("route"),
            "knowability": state.get("knowability"),
        },
        "fallback": {
            "activated": bool(fallback.get("activated", False)),
            "strategy": fallback.get("strategy"),
            "question": fallback.get("question"),
            "user_response": user_responses(fallback),
            "user_label": fallback.get("user_label"),
            "attempts": fallback.get("attempts", 0),
            "no_answer_reason": fallback.get("no_answer_reason"),
            "backup": fallback.get("backup"),
            "review": fallback.get("review"),
        },
        "final_decision": {"label": state.get("final_label"), "via": state.get("via")},
        "trace": trace,
        "elapsed_ms": round((time.time() - state.get("started_at", time.time())) * 1000, 1),
    }


def summary_line(record: dict[str, Any]) -> str:
    """One human-readable line for ``app.log``."""
    inf, check, fb, final = (
        record["inference"],
        record["confidence_check"],
        record["fallback"],
        record["final_decision"],
    )
    parts = [
        f"request {record['request_id']}",
        f"model {inf['label']} {inf['confidence']:.3f}",
        f"check {check['status']}",
    ]
    if fb["activated"]:
        step = f"fallback {fb['strategy']}"
        answers = user_responses(fb)
        if answers:
            step += f" answer={answers[-1]!r}" if len(answers) == 1 else f" answers={answers!r}"
        if fb["no_answer_reason"]:
            step += f" no_answer={fb['no_answer_reason']}"
        if fb["backup"]:
            agree = "agree" if fb["backup"]["agree"] else "disagree"
            step += f" backup={fb['backup']['label']} ({agree})"
        parts.append(step)
    parts.append(f"final {final['label']} via {final['via']}")
    text = record["input_text"]
    parts.append(f"text={text[:80] + ('...' if len(text) > 80 else '')!r}")
    return " | ".join(parts)


class AppLogHandler(RotatingFileHandler):
    """A RotatingFileHandler that reports a write error as one warning line, not a traceback.

    ``logging`` never raises from a handler: by default it prints a traceback to stderr on every
    failed record. ``app.log`` is the secondary, human-readable log (``app.jsonl`` is the record),
    so a failure here is reported once and logging goes on.
    """

    failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        """Print one ``warning:`` line on the first failure; stay quiet after that."""
        if self.failed:
            return
        self.failed = True
        exc = sys.exc_info()[1]
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        with contextlib.suppress(Exception):
            sys.stderr.write(
                f"warning: cannot write {self.baseFilename}: {reason} (app.jsonl is still written)\n"
            )


def setup_app_log(config: Config) -> logging.Logger:
    """The ``selfheal`` logger writing to ``<log_dir>/app.log`` through a RotatingFileHandler.

    Calling it again with the same log directory reuses the handler.
    """
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(config.logging.level)
    logger.propagate = False
    path = (Path(config.paths.log_dir) / APP_LOG_NAME).resolve()
    for handler in list(logger.handlers):
        if isinstance(handler, RotatingFileHandler):
            if Path(handler.baseFilename) == path:
                return logger
            logger.removeHandler(handler)
            handler.close()
    with contextlib.suppress(OSError):  # an unusable directory shows up when app.jsonl is written
        path.parent.mkdir(parents=True, exist_ok=True)
    handler = AppLogHandler(
        path,
        maxBytes=config.logging.max_bytes,
        backupCount=config.logging.backup_count,
        encoding="utf-8",
        delay=True,  # opened on the first record, so an open error goes through handleError
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s [pid %(process)d] %(message)s"))
    logger.addHandler(handler)
    return logger


class LogWriter:
    """Writes decision records to ``app.jsonl`` and their summaries to ``app.log``.

    Nothing is created on disk until the first record or event.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.jsonl_path = Path(config.paths.log_dir) / JSONL_NAME
        self._logger: logging.Logger | None = None
        self._journal: contextvars.ContextVar[list[Appended]] = contextvars.ContextVar("journal")
        # inside batched_sync(): the files to fsync at its end (per thread, like the journal)
        self._unsynced: contextvars.ContextVar[set[Path] | None] = contextvars.ContextVar(
            "unsynced", default=None
        )

    @property
    def journal(self) -> list[Appended]:
        """Lines appended for the request being advanced (app.jsonl, clarified.jsonl), so the
        session can take them back if a later step of the same decision fails.

        One list per thread (a context variable): the server advances several requests at once
        on one writer, and one request's failure must take back only its own lines.
        """
        journal = self._journal.get(None)
        if journal is None:
            journal = []
            self._journal.set(journal)
        return journal

    @property
    def logger(self) -> logging.Logger:
        """The ``app.log`` logger (set up on first use)."""
        if self._logger is None:
            self._logger = setup_app_log(self.config)
        return self._logger

    def write(self, record: dict[str, Any]) -> Appended:
        """Append ``record`` (one whole line or nothing; ``StorageError`` on failure), then log its
        summary to ``app.log``."""
        unsynced = self._unsynced.get()
        appended = append_line(self.jsonl_path, record, sync=unsynced is None)
        if unsynced is not None:
            unsynced.add(self.jsonl_path)
        self.journal.append(appended)
        level = logging.WARNING if record["final_decision"]["via"] == PENDING_REVIEW else logging.INFO
        self.logger.log(level, summary_line(record))
        return appended

    @contextlib.contextmanager
    def batched_sync(self) -> Iterator[None]:
        """Records written inside reach the disk together, with one ``fsync`` at the end (also
        when the block fails), instead of one each (``logging.fsync: chunk``, for ``classify``).
        A process that dies in between loses none of them (they are in the kernel already); a
        machine that loses power may lose the block's records. A failure to sync is a
        ``StorageError``, unless the block already failed (its error is the one raised)."""
        if self._unsynced.get() is not None:  # nested: the outer block syncs
            yield
            return
        paths: set[Path] = set()
        token = self._unsynced.set(paths)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            self._unsynced.reset(token)
            for path in sorted(paths):
                try:
                    sync_file(path)
                except StorageError:
                    if not failed:
                        raise

    def event(self, message: str, level: int = logging.INFO) -> None:
        """Log something that is not a decision (start-up, model loading, errors)."""
        self.logger.log(level, message)
