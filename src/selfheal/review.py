"""``selfheal review``: answer the requests that wait for a person.

The queue is the graph's own checkpointer: every paused thread in
``<log_dir>/graph_checkpoints.sqlite``. That is mostly escalations that ``classify`` (or a run
whose user did not answer) logged as pending, but also a question left open by a ``run`` that was
killed. Answering one resumes its thread (``Command(resume=label)``); FinalDecisionNode then logs
the decision with ``via: "human_review"``. No model is loaded.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console

from selfheal.answers import choice_hint, parse_choice
from selfheal.config import Config
from selfheal.terminal import Printer, Prompter, TerminalPrompter, percent

if TYPE_CHECKING:
    from selfheal.session import Outcome, Session

KIND_NAMES = {"review_queue": "pending review", "review": "open review", "clarify": "open question"}


def _since(state: dict[str, Any]) -> str:
    started = state.get("started_at")
    if not started:
        return "?"
    return datetime.fromtimestamp(started).astimezone().strftime("%Y-%m-%d %H:%M")


def _backup_summary(state: dict[str, Any]) -> str:
    backup = (state.get("fallback") or {}).get("backup")
    if not backup:
        return "-"
    return f"{backup['label']} {percent(backup['probs'][backup['label']])}"


def queue_lines(paused: list[Outcome]) -> list[str]:
    """The paused requests, two lines each (details, then the text)."""
    lines = [f"{len(paused)} request(s) wait for a person:"]
    for n, outcome in enumerate(paused, start=1):
        state, inf = outcome.state, outcome.state.get("inference", {})
        kind = KIND_NAMES.get(str((outcome.waiting or {}).get("kind")), "?")
        lines.append(
            f"{n:>3}. {outcome.request_id[:8]}  {_since(state)}  {kind}  "
            f"model {inf.get('label')} {percent(inf.get('confidence', 0.0))}  "
            f"backups {_backup_summary(state)}"
        )
        lines.append(f"     {state.get('text', '')}")
    return lines


def review_one(session: Session, outcome: Outcome, prompter: Prompter, printer: Printer) -> str:
    """Ask for one label and resume the request; returns ``answered``, ``skipped`` or ``quit``."""
    state = outcome.state
    inf = state.get("inference", {})
    printer.line(f"request {outcome.request_id} ({_since(state)})", style="bold")
    printer.line(f"  text:    {state.get('text', '')}", style="")
    printer.line(f"  model:   {inf.get('label')} {percent(inf.get('confidence', 0.0))}", style="")
    printer.line(f"  backups: {_backup_summary(state)}", style="")
    printer.line(f"Which label is right? ({choice_hint()}; s = skip, q = quit)", style="magenta")
    while True:
        try:
            answer = prompter.ask("> ").strip()
        except (EOFError, KeyboardInterrupt):
            return "quit"
        if answer.lower() in {"q", "quit", "exit"}:
            return "quit"
        if answer.lower() in {"s", "skip", ""}:
            return "skipped"
        label = parse_choice(answer)
        if label is not None:
            break
        printer.line(f"Please answer {choice_hint()}, s or q.", style="")
    if session.waiting(outcome.request_id) is None:  # another reviewer was faster
        printer.line("Already answered elsewhere; skipped.", style="dim")
        return "skipped"
    done = session.resume(outcome.request_id, {"answer": answer, "source": "review"})
    printer.final(done.state)
    return "answered"


def review(config: Config, list_only: bool = False, prompter: Prompter | None = None) -> None:
    """The ``selfheal review`` command body."""
    from selfheal.preflight import preflight
    from selfheal.services import Services
    from selfheal.session import Session

    preflight(config, model=False)
    session = Session(Services(config))
    console = Console(highlight=False, soft_wrap=True)
    for done in session.finish_unrecorded():  # answered before a write failed: record them now
        console.print(
            f"recorded request {done.request_id} (its record had failed to be written)", style="dim"
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
    answered = skipped = 0
    for outcome in paused:
        result = review_one(session, outcome, prompter, printer)
        if result == "quit":
            break
        answered += result == "answered"
        skipped += result == "skipped"
    left = len(paused) - answered
    console.print(f"Reviewed {answered}, skipped {skipped}, {left} still waiting.", style="dim")
