"""``selfheal review``: answer the requests that wait for a person.

The queue is the graph's own checkpointer: every paused thread in
``<log_dir>/graph_checkpoints.sqlite`` (or the database of ``--db``, e.g. the PostgreSQL database
of a server), listed from its queue table (:class:`selfheal.graph.claims.PausedQueue`). That is mostly escalations that ``classify`` (or a run
whose user did not answer) logged as pending, but also a question left open by a ``run`` that was
killed. Answering one resumes its thread (``Command(resume=label)``); FinalDecisionNode then logs
the decision with ``via: "human_review"``. No model is loaded.

Several reviewers may work at once: the first answer to a request wins (:mod:`selfheal.graph.claims`);
the others are told it was already answered, and nothing of theirs is used. An answer whose
reviewer died before it was applied is finished first, with that answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from selfheal.cli import common
from selfheal.cli.common import ConfigOption, DbOption, SetOption, get_config, user_errors
from selfheal.cli.terminal import Printer, Prompter, TerminalPrompter, final_line, percent
from selfheal.config import Config
from selfheal.graph.answers import choice_hint, parse_choice, parse_identity
from selfheal.graph.claims import AlreadyAnswered
from selfheal.logs.decisions import JSONL_NAME
from selfheal.vocabulary import ASK_NAMES, UNKNOWABLE

if TYPE_CHECKING:
    from selfheal.graph.session import Outcome, Session


def since(state: dict[str, Any]) -> str:
    """When the request was received, local time (``2026-11-27 13:31``; the dashboard shows it too)."""
    started = state.get("started_at")
    if not started:
        return "?"
    return datetime.fromtimestamp(started).astimezone().strftime("%Y-%m-%d %H:%M")


def backup_summary(state: dict[str, Any]) -> str:
    """The backups' vote, ``Positive 71%``, or ``-`` when they were not asked."""
    backup = (state.get("fallback") or {}).get("backup")
    if not backup:
        return "-"
    return f"{backup['label']} {percent(backup['probs'][backup['label']])}"


def queue_lines(paused: list[Outcome]) -> list[str]:
    """The paused requests, two lines each (details, then the text)."""
    lines = [f"{len(paused)} request(s) wait for a person:"]
    for n, outcome in enumerate(paused, start=1):
        state, inf = outcome.state, outcome.state.get("inference", {})
        kind = ASK_NAMES.get(str((outcome.waiting or {}).get("kind")), "?")
        lines.append(
            f"{n:>3}. {outcome.request_id[:8]}  {since(state)}  {kind}  "
            f"model {inf.get('label')} {percent(inf.get('confidence', 0.0))}  "
            f"backups {backup_summary(state)}"
        )
        lines.append(f"     {state.get('text', '')}")
    return lines


def review_one(session: Session, outcome: Outcome, prompter: Prompter, printer: Printer) -> str:
    """Ask for one label and resume the request.

    Returns ``answered``, ``skipped``, ``quit`` or ``already`` (another reviewer answered first:
    nothing was written).
    """
    state = outcome.state
    inf = state.get("inference", {})
    printer.line(f"request {outcome.request_id} ({since(state)})", style="bold")
    printer.line(f"  text:    {state.get('text', '')}", style="")
    printer.line(f"  model:   {inf.get('label')} {percent(inf.get('confidence', 0.0))}", style="")
    printer.line(f"  backups: {backup_summary(state)}", style="")
    labels = session.services.labels_for(state)
    unknowable = state.get("route") == UNKNOWABLE  # the model cannot know it: "neither" is an answer
    choices = choice_hint(labels, none=unknowable)
    if unknowable:
        maybe = "neither" if labels.binary else "none of these"
        printer.line(f"  (the knowability check flagged this input; it may be {maybe})", style="")
    if labels.binary:
        printer.line(f"Which label is right? ({choices}; s = skip, q = quit)", style="magenta")
        again = f"Please answer {choices}, s or q."
    else:  # multiple choice: a number or a label's name
        printer.line(f"Which label is right? {choices} (s = skip, q = quit)", style="magenta")
        again = f"Please answer with a number or a label: {choices} (s = skip, q = quit)"
    while True:
        try:
            answer = prompter.ask("> ").strip()
        except (EOFError, KeyboardInterrupt):
            return "quit"
        if answer.lower() in {"q", "quit", "exit"}:
            return "quit"
        if answer.lower() in {"s", "skip", ""}:
            return "skipped"
        meant = parse_identity(answer, labels) if unknowable else parse_choice(answer, labels)
        if meant is not None:
            break
        printer.line(again, style="")
    try:
        done = session.resume(outcome.request_id, {"answer": answer, "source": "review"})
    except AlreadyAnswered:
        printer.line(
            f"Already answered: request {outcome.request_id[:8]} was answered by another reviewer; "
            "your answer was not used.",
            style="yellow",
        )
        return "already"
    printer.final(done.state)
    return "answered"


def review(
    config: Config,
    list_only: bool = False,
    prompter: Prompter | None = None,
    rebuild: bool = False,
    db: str | None = None,
) -> None:
    """The ``selfheal review`` command body (``rebuild``: restore the queue from the log, then
    list it; ``db``: the database of the paused requests, default the SQLite file)."""
    from selfheal.cli.preflight import preflight
    from selfheal.graph.storage import open_storage

    preflight(config, model=False)
    url = db or config.storage.url
    console = Console(highlight=False, soft_wrap=True)
    if rebuild and url is None:  # the SQLite file of paths.log_dir, from app.jsonl
        from selfheal.graph.checkpoints import rebuild as rebuild_queue

        done = rebuild_queue(config)
        if done.moved_to is not None:
            console.print(f"moved the damaged {done.path.name} aside to {done.moved_to}", markup=False)
        console.print(
            f"restored {len(done.restored)} pending request(s) from {JSONL_NAME} into {done.path} "
            f"({done.kept} were already there)",
            markup=False,
        )
        list_only = True
    storage = open_storage(config, url)
    try:
        _review_queue(
            config, storage, list_only or rebuild, prompter, console, reindex=rebuild and url is not None
        )
    finally:
        storage.close()


def _review_queue(
    config: Config, storage: Any, list_only: bool, prompter: Prompter | None, console: Console, reindex: bool
) -> None:
    """Finish what was left half done, list the queue, and (unless ``list_only``) ask."""
    from selfheal.graph.session import Session

    session = Session(common.make_services(config), checkpointer=storage.checkpointer, claims=storage.claims)
    if reindex:  # --rebuild on a database of its own: the queue table from its checkpoints
        threads = session.reindex()
        console.print(
            f"re-indexed the review queue of {storage.url} from its checkpoints ({threads} thread(s))",
            markup=False,
        )
    for recorded in session.finish_unrecorded():  # answered before a write failed: record them now
        console.print(
            f"recorded request {recorded.request_id} (its record had failed to be written)", style="dim"
        )
    for finished in session.recover():
        console.print(
            f"finished request {finished.request_id[:8]}, answered by a reviewer who stopped before "
            f"it was applied: {final_line(finished.state)}",
            markup=False,
        )
    paused = session.paused()
    if not paused:
        console.print("No requests wait for review.")
        return
    for line in queue_lines(paused):
        console.print(line, markup=False)
    if list_only:
        return
    prompter = prompter or TerminalPrompter()
    printer = Printer(console)
    answered = skipped = already = 0
    for outcome in paused:
        result = review_one(session, outcome, prompter, printer)
        if result == "quit":
            break
        answered += result == "answered"
        skipped += result == "skipped"
        already += result == "already"
    left = len(paused) - answered - already
    done_elsewhere = f", {already} already answered by others" if already else ""
    console.print(
        f"Reviewed {answered}, skipped {skipped}{done_elsewhere}, {left} still waiting.", style="dim"
    )


@user_errors
def command(
    config: ConfigOption = None,
    overrides: SetOption = None,
    list_only: Annotated[bool, typer.Option("--list", help="Only list what waits; ask nothing.")] = False,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Restore the queue from app.jsonl into a fresh checkpoint file (a damaged one is moved "
            "aside), then list it; with --db, rebuild the queue's table from that database's checkpoints.",
        ),
    ] = False,
    db: DbOption = None,
) -> None:
    """Answer escalated requests (and questions left open by a killed run), resuming their graphs."""
    from selfheal.cli.review import review as review_queue

    review_queue(get_config(config, overrides), list_only=list_only, rebuild=rebuild, db=db)
