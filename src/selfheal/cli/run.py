"""``selfheal run``: the interactive loop.

The prompt appears at once: torch, transformers and LangGraph are imported and the models loaded
in a background thread while the person types (:class:`BackgroundSession`). Each text goes
through the graph; when it pauses at a question the loop asks it and resumes the graph with the
answer (``Command(resume=answer)``), or with "no answer" after EOF, Ctrl-C or the timeout;
"quit" at a question leaves it pending for ``selfheal review`` and ends the loop.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console

from selfheal.cli import common
from selfheal.cli.common import (
    AcceptOption,
    ClarifyOption,
    ConfigOption,
    DbOption,
    SetOption,
    get_config,
    user_errors,
)
from selfheal.cli.terminal import Printer, Prompter, TerminalPrompter
from selfheal.config import Config
from selfheal.graph.answers import choice_hint, is_quit, is_unsure, parse_choice
from selfheal.graph.claims import AlreadyAnswered
from selfheal.inputs import prepare_text
from selfheal.labels import LabelSet
from selfheal.logs.decisions import JSONL_NAME
from selfheal.vocabulary import REVIEW, REVIEW_QUEUE, VIA_SUMMARY, VIAS

if TYPE_CHECKING:
    from selfheal.graph.session import Outcome, Session

TEXT_PROMPT = "> Enter text (or 'quit'):"
QUIT_WORDS = frozenset({"quit", "exit", ":q"})


class BackgroundSession:
    """Loads the models and the graph in a daemon thread; :meth:`get` waits for them."""

    def __init__(
        self, config: Config, notify: Callable[[str], None] | None = None, db: str | None = None
    ) -> None:
        self.config = config
        self.db = db  # the database of paused requests (None: storage.url, else the SQLite file)
        self.storage: Any = None
        self.notify = notify or (lambda message: None)
        self._ready = threading.Event()
        self._session: Session | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._load, name="selfheal-loader", daemon=True)

    def start(self) -> None:
        """Start loading (once)."""
        if not self._thread.is_alive() and not self._ready.is_set():
            self._thread.start()

    @property
    def busy(self) -> bool:
        """Still importing or loading something."""
        return self._thread.is_alive()

    def wait_idle(self) -> None:
        """Wait until the loader thread has finished (the backups load after the session is ready)."""
        if self._thread.is_alive():
            self._thread.join()

    def _load(self) -> None:
        try:
            start = time.perf_counter()
            from concurrent.futures import ThreadPoolExecutor

            from selfheal.graph.session import Session

            services = common.make_services(self.config)

            # LangGraph and the checkpointer load beside the models (Services loads them lazily)
            def open_session() -> Session:
                from selfheal.graph.storage import open_storage

                self.storage = open_storage(self.config, self.db)
                return Session(services, checkpointer=self.storage.checkpointer, claims=self.storage.claims)

            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="selfheal-graph") as pool:
                session = pool.submit(open_session)
                classifier = services.classifier
                self._session = session.result()
            services.log.event(
                f"run: model {getattr(classifier, 'version', '?')} loaded in {time.perf_counter() - start:.1f}s"
            )
        except BaseException as exc:  # re-raised in the main thread by get()
            self._error = exc
        finally:
            self._ready.set()
        if self._session is not None:  # the backups are only needed on the fallback path
            # A failure here shows up again, as a one-line error, when the backups are used.
            with contextlib.suppress(Exception):
                self._session.services.warm_up()

    def get(self) -> Session:
        """The loaded session (waits for the loader; re-raises its error)."""
        self.start()
        if not self._ready.is_set():
            self.notify("(loading the model, one moment...)")
            self._ready.wait()
        if self._error is not None:
            raise self._error
        assert self._session is not None
        return self._session


class ReadySession:
    """A session that is already loaded (tests, the evaluation)."""

    busy = False

    def __init__(self, session: Session) -> None:
        self._session = session

    def start(self) -> None:
        """Nothing to load."""

    def get(self) -> Session:
        """The session."""
        return self._session


def _ask(prompter: Prompter, timeout: float | None) -> tuple[Any, str | None]:
    """The resume value for one question and, if nobody answered, why."""
    try:
        return prompter.ask("> ", timeout), None
    except EOFError:
        return {"answer": None, "reason": "eof"}, "eof"
    except KeyboardInterrupt:
        return {"answer": None, "reason": "interrupted"}, "interrupted"
    except TimeoutError:
        return {"answer": None, "reason": "timeout"}, "timeout"


def please_choose(labels: LabelSet) -> str:
    """The line that asks again for a forced choice: ``Please answer negative/positive.`` with
    two labels, else ``Please answer with a number or a label: 1) negative 2) neutral ...``."""
    if labels.binary:
        return f"Please answer {choice_hint(labels)}."
    return f"Please answer with a number or a label: {choice_hint(labels)}"


def _forced_choice(
    answer: Any,
    labels: LabelSet,
    prompter: Prompter,
    printer: Printer,
    timeout: float | None,
    max_unsure: int,
) -> tuple[Any, str | None, bool]:
    """Ask the forced choice until it is a label; ``(resume value, no-answer reason, quit)``.

    "quit" leaves the request pending for ``selfheal review``; so do ``max_unsure`` answers such
    as "I don't know".
    """
    unsure = 0
    while parse_choice(answer, labels) is None:
        if is_quit(answer):
            return {"answer": None, "reason": "quit"}, None, True
        unsure += is_unsure(answer)
        if unsure >= max_unsure:
            return {"answer": None, "reason": "unsure"}, None, False
        printer.line(please_choose(labels))
        answer, silent = _ask(prompter, timeout)
        if silent is not None:
            return answer, silent, False
    return answer, None, False


def decide_interactively(
    session: Session, text: str, prompter: Prompter, printer: Printer, timeout: float | None
) -> tuple[Outcome | None, bool]:
    """Run one request, asking its questions; returns the outcome and whether to stop the loop
    (stdin hit EOF, or the person typed "quit" at a question, which leaves it for review)."""
    outcome = session.start(text, interactive=True, on_update=printer.update)
    if outcome is None:
        return None, False
    silent: str | None = None  # once a question is not answered, ask nothing more for this text
    quit_asked = False
    max_unsure = session.config.fallback.max_clarify_attempts
    while outcome.waiting is not None and outcome.waiting["kind"] != REVIEW_QUEUE:
        if silent is None:
            printer.question(outcome.waiting)
            answer, silent = _ask(prompter, timeout)
            if silent is None and outcome.waiting["kind"] == REVIEW:
                labels = session.services.labels_for(outcome.state)
                answer, silent, quit_asked = _forced_choice(
                    answer, labels, prompter, printer, timeout, max_unsure
                )
            elif silent is None and is_quit(answer):  # the graph leaves the question for review
                quit_asked = True
        else:
            answer = {"answer": None, "reason": silent}
        try:
            outcome = session.resume(outcome.request_id, answer, on_update=printer.update)
        except AlreadyAnswered:  # a reviewer answered the open question first
            printer.line("Already answered in 'selfheal review'; your answer was not used.", style="yellow")
            return None, quit_asked
    printer.final(outcome.state)
    return outcome, silent == "eof" or quit_asked


def summary(counts: Counter[str], log_path: Any) -> str:
    """The one-line summary printed when the loop ends."""
    total = sum(counts.values())
    parts = ", ".join(f"{counts[via]} {VIA_SUMMARY[via]}" for via in VIAS)
    noun = "request" if total == 1 else "requests"
    return f"Bye: {total} {noun} ({parts}). Log: {log_path}"


def run_loop(
    provider: BackgroundSession | ReadySession,
    config: Config,
    prompter: Prompter,
    printer: Printer,
    notify: Callable[[str], None],
) -> Counter[str]:
    """Ask for texts until quit/EOF/Ctrl-C; returns how many decisions went which way."""
    counts: Counter[str] = Counter()
    timeout = config.fallback.answer_timeout
    while True:
        printer.line(TEXT_PROMPT, style="bold")
        provider.start()  # after the prompt is on screen
        try:
            raw = prompter.ask("")
        except (EOFError, KeyboardInterrupt):
            break
        if raw.strip().lower() in QUIT_WORDS:
            break
        if not prepare_text(raw, config.input.max_chars).text:
            notify("Please type some text (it was empty).")
            continue
        try:
            outcome, stop = decide_interactively(provider.get(), raw, prompter, printer, timeout)
        except KeyboardInterrupt:  # during inference: nothing was logged for this text
            notify("interrupted")
            break
        if outcome is not None:
            counts[str(outcome.state.get("via"))] += 1
            if outcome.pending_review:
                notify(f"request {outcome.request_id} waits for 'selfheal review'")
        if stop:
            break
    return counts


def run(config: Config, db: str | None = None) -> None:
    """The ``selfheal run`` command body (``db``: the database of paused requests, ``--db``)."""
    from selfheal.cli.preflight import preflight

    # an unusable log dir, checkpoint, review queue or database fails now, before the prompt
    url = db or config.storage.url
    preflight(config, queue=url is None)
    if url is not None:
        from selfheal.graph.storage import check_url

        check_url(config, url)
    printer = Printer()
    errors = Console(stderr=True, highlight=False, soft_wrap=True)

    def notify(message: str) -> None:
        errors.print(message, style="dim", markup=False)

    provider = BackgroundSession(config, notify, db)
    try:
        counts = run_loop(provider, config, TerminalPrompter(), printer, notify)
    except BaseException:
        # An error (a full disk) or Ctrl-C ends the run: let the loader finish first, because an
        # interpreter torn down under a thread still creating an ONNX Runtime session can die by a
        # signal instead of exiting with the error's code (seen on a loaded CI machine).
        provider.wait_idle()
        raise
    printer.line(summary(counts, os.path.join(str(config.paths.log_dir), JSONL_NAME)), style="dim")
    if provider.busy:
        # Still importing or loading: every record is already on disk, so leave at once rather
        # than wait for (or tear down the interpreter under) a thread nobody needs any more.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    if provider.storage is not None:
        provider.storage.close()


@user_errors
def command(
    config: ConfigOption = None,
    overrides: SetOption = None,
    accept: AcceptOption = None,
    clarify: ClarifyOption = None,
    db: DbOption = None,
) -> None:
    """Interactive loop: type a text, see the decision, answer when the model is unsure."""
    from selfheal.cli.run import run as run_interactive

    run_interactive(
        get_config(config, overrides, {"thresholds.accept": accept, "thresholds.clarify": clarify}), db
    )
