"""Talking to a person in a terminal: reading answers and printing what the graph does.

The graph never prints or reads; the commands pass its step updates to :class:`Printer` and
its questions to a :class:`Prompter`, so tests can script both. Which step ran is not guessed
from the state: the session streams the graph with its subgraph namespaces and names the step
(``("FallbackNode", "backup")``).
"""

from __future__ import annotations

import math
import select
import sys
from typing import Any, ClassVar, Protocol

from rich.console import Console
from rich.text import Text

from selfheal.graph.state import (
    BACKUP_STEP,
    CLARIFY_STEP,
    CONFIDENCE_CHECK,
    FALLBACK,
    IDENTIFY_STEP,
    INFERENCE,
)
from selfheal.vocabulary import (
    ASK_CLARIFY,
    ESCALATE,
    HUMAN_REVIEW,
    NO_ANSWER_TEXT,
    PENDING_REVIEW,
    UNKNOWABLE,
    USER_CLARIFICATION,
    USER_NONE,
    VIA_ENDING,
)


class Prompter(Protocol):
    """Reads one answer; raises ``EOFError``, ``KeyboardInterrupt`` or ``TimeoutError``."""

    def ask(self, prompt: str, timeout: float | None = None) -> str:
        """Show ``prompt`` and return the line typed (without the newline)."""
        ...


class TerminalPrompter:
    """``input()`` with line editing, or a ``select()`` wait when there is a timeout."""

    def ask(self, prompt: str, timeout: float | None = None) -> str:
        """Show ``prompt`` and return the line typed (without the newline)."""
        try:
            return self._read(prompt, timeout)
        except (EOFError, KeyboardInterrupt):
            if sys.stdin.isatty():  # the cursor is still on the prompt line ("^C", "^D")
                sys.stdout.write("\n")
                sys.stdout.flush()
            raise

    def _read(self, prompt: str, timeout: float | None) -> str:
        if timeout is None or not _has_fileno(sys.stdin):
            return input(prompt)
        sys.stdout.write(prompt)
        sys.stdout.flush()
        ready, _, _ = select.select([sys.stdin], [], [], timeout)
        if not ready:
            sys.stdout.write("\n")
            raise TimeoutError
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\r\n")


def _has_fileno(stream: Any) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def percent(confidence: float) -> str:
    """Confidence as a whole percentage, rounded down (0.7499 is 74%, never 75%)."""
    return f"{math.floor(confidence * 100 + 1e-9)}%"


def final_line(state: dict[str, Any]) -> str:
    """``Final Label: Negative (Corrected via user clarification)`` and its siblings."""
    via, label = state.get("via"), state.get("final_label")
    if via == USER_CLARIFICATION:
        how = "Confirmed" if label == state["inference"]["label"] else "Corrected"
        return f"Final Label: {label} ({how} via user clarification)"
    if via == PENDING_REVIEW:
        return "Final Label: pending (escalated to human review)"
    if via in (USER_NONE, HUMAN_REVIEW) and label is None:
        who = "you said" if via == USER_NONE else "said the reviewer"
        probs = (state.get("inference") or {}).get("probs") or {}
        what = "none of the labels" if len(probs) > 2 else "neither a positive nor a negative review"
        return f"Final Label: none ({what}, {who})"
    return f"Final Label: {label}{VIA_ENDING.get(str(via), '')}"


def _backup_line(state: dict[str, Any]) -> str:
    """What the backup models said, and whether it settles the request."""
    backup = state["fallback"]["backup"]
    names = ", ".join(backup["models"])
    p = percent(backup["probs"][backup["label"]])
    rule = backup.get("rule") or {}
    if backup["agree"] and rule.get("passed", True):
        verdict = "agree with the model"
    elif backup["agree"]:
        verdict = f"agree with the model, but too weakly to decide without a person ({rule.get('reason')})"
    else:
        verdict = f"disagree with the model's {state['inference']['label']}"
    return f"[{FALLBACK}] Backup models ({names}): {backup['label']} {p} | {verdict}"


def update_lines(path: tuple[str, ...], update: dict[str, Any], state: dict[str, Any]) -> list[str]:
    """What a person sees after the step at ``path`` returned ``update`` (``state``: the request
    after it). ``path`` comes from the graph's stream: ``("InferenceNode",)``, or
    ``("FallbackNode", "clarify")`` for one of FallbackNode's steps."""
    node, step = path[0], path[-1]
    if node == INFERENCE:
        inf = update["inference"]
        return [f"[{INFERENCE}] Predicted label: {inf['label']} | Confidence: {percent(inf['confidence'])}"]
    if node == CONFIDENCE_CHECK:
        route = update.get("route")
        if route == ASK_CLARIFY:
            return [f"[{CONFIDENCE_CHECK}] Confidence too low. Triggering fallback..."]
        if route == ESCALATE:
            return [f"[{CONFIDENCE_CHECK}] Confidence very low. Escalating to the backup models..."]
        if route == UNKNOWABLE:
            reason = ((update.get("knowability") or {}).get("reason") or "unknown").replace("_", " ")
            return [f"[{CONFIDENCE_CHECK}] The model cannot know this input ({reason}). Not accepting it."]
        return []
    if node != FALLBACK:
        return []
    fallback = update.get("fallback") or {}
    reason = fallback.get("no_answer_reason")
    if step in (CLARIFY_STEP, IDENTIFY_STEP) and update.get("via") == PENDING_REVIEW and reason == "quit":
        return [f"[{FALLBACK}] The question is left for 'selfheal review'."]
    if step == CLARIFY_STEP and update.get("via") is None and reason not in (None, "non_interactive"):
        return [f"[{FALLBACK}] {NO_ANSWER_TEXT.get(reason, 'No answer.')} Asking the backup models..."]
    if step == BACKUP_STEP:
        return [_backup_line(state)]
    return []


class Printer:
    """Prints graph updates, questions and final labels with Rich (one style per line)."""

    STYLES: ClassVar[dict[str, str]] = {
        "[InferenceNode]": "cyan",
        "[ConfidenceCheckNode]": "yellow",
        "[FallbackNode]": "magenta",
        "Final Label": "bold green",
    }

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True)

    def line(self, text: str, style: str | None = None) -> None:
        """Print one line, styled by its prefix unless ``style`` is given."""
        if style is None:
            style = next((s for prefix, s in self.STYLES.items() if text.startswith(prefix)), "")
        self.console.print(Text(text, style=style or ""), soft_wrap=True)

    def update(self, path: tuple[str, ...], update: dict[str, Any], state: dict[str, Any]) -> None:
        """Print what the step at ``path`` did (the graph session's ``on_update``)."""
        for text in update_lines(path, update, state):
            self.line(text)

    def question(self, waiting: dict[str, Any]) -> None:
        """Print the question a paused request waits for."""
        self.line(f"[{FALLBACK}] {waiting['question']}")

    def final(self, state: dict[str, Any]) -> None:
        """Print the final label."""
        self.line(final_line(state))
