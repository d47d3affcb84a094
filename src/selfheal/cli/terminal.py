"""Talking to a person in a terminal: reading answers and printing what the graph does.

The graph never prints or reads; the commands pass its node updates to :class:`Printer` and
its questions to a :class:`Prompter`, so tests can script both.
"""

from __future__ import annotations

import math
import select
import sys
from typing import Any, ClassVar, Protocol

from rich.console import Console
from rich.text import Text

from selfheal.labels import other_label

ENDINGS = {
    "backup_model": " (via backup model)",
    "human_review": " (via human review)",
    "pending_review": " (escalated to human review)",
}
NO_ANSWER = {
    "eof": "No answer (end of input).",
    "interrupted": "Question skipped.",
    "timeout": "No answer in time.",
    "unclear": "Still unclear.",
    "unsure": "Still unsure.",
    "no_answer": "No answer.",
}


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
    if via == "user_clarification":
        how = "Confirmed" if label == state["inference"]["label"] else "Corrected"
        return f"Final Label: {label} ({how} via user clarification)"
    if via == "pending_review":
        return "Final Label: pending (escalated to human review)"
    if via == "user_none":
        return "Final Label: none (neither a positive nor a negative review, you said)"
    if via == "human_review" and label is None:
        return "Final Label: none (neither a positive nor a negative review, said the reviewer)"
    return f"Final Label: {label}{ENDINGS.get(str(via), '')}"


def update_lines(node: str, update: dict[str, Any]) -> list[str]:
    """What a person sees after ``node`` returned ``update``."""
    if node == "InferenceNode":
        inf = update["inference"]
        return [f"[InferenceNode] Predicted label: {inf['label']} | Confidence: {percent(inf['confidence'])}"]
    if node == "ConfidenceCheckNode":
        route = update.get("route")
        if route == "ask_clarify":
            return ["[ConfidenceCheckNode] Confidence too low. Triggering fallback..."]
        if route == "escalate":
            return ["[ConfidenceCheckNode] Confidence very low. Escalating to the backup models..."]
        if route == "unknowable":
            reason = ((update.get("knowability") or {}).get("reason") or "unknown").replace("_", " ")
            return [f"[ConfidenceCheckNode] The model cannot know this input ({reason}). Not accepting it."]
        return []
    if node == "FallbackNode":
        fallback = update.get("fallback") or {}
        stage = update.get("stage")
        if stage == "pending" and fallback.get("no_answer_reason") == "quit":
            return ["[FallbackNode] The question is left for 'selfheal review'."]
        if stage == "backup" and fallback.get("no_answer_reason") not in (None, "non_interactive"):
            reason = NO_ANSWER.get(fallback["no_answer_reason"], "No answer.")
            return [f"[FallbackNode] {reason} Asking the backup models..."]
        if stage in ("review", "done") and fallback.get("backup") and update.get("via") != "human_review":
            backup = fallback["backup"]
            names = ", ".join(backup["models"])
            p = percent(backup["probs"][backup["label"]])
            rule = backup.get("rule") or {}
            if backup["agree"] and rule.get("passed", True):
                verdict = "agree with the model"
            elif backup["agree"]:
                verdict = (
                    f"agree with the model, but too weakly to decide without a person ({rule.get('reason')})"
                )
            else:
                verdict = f"disagree with the model's {other_label(backup['label'])}"
            return [f"[FallbackNode] Backup models ({names}): {backup['label']} {p} | {verdict}"]
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

    def update(self, node: str, update: dict[str, Any]) -> None:
        """Print what ``node`` did."""
        for text in update_lines(node, update):
            self.line(text)

    def question(self, waiting: dict[str, Any]) -> None:
        """Print the question a paused request waits for."""
        self.line(f"[FallbackNode] {waiting['question']}")

    def final(self, state: dict[str, Any]) -> None:
        """Print the final label."""
        self.line(final_line(state))
