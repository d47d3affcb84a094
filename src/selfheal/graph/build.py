"""The graph, wired as docs/architecture.md shows it (that drawing is generated from here).

Top level (edge labels are the values the routing functions in ``nodes.py`` return)::

    START -> InferenceNode -> ConfidenceCheckNode
    ConfidenceCheckNode --accept------------------------> FinalDecisionNode
    ConfidenceCheckNode --ask_clarify/escalate/unknowable-> FallbackNode
    FallbackNode -> FinalDecisionNode
    FinalDecisionNode --end-------------> END
    FinalDecisionNode --wait_for_review-> FallbackNode   (pending: paused until `selfheal review`)

FallbackNode is itself a compiled graph over the same state (``build_fallback``), added as the
node (not called from inside a node function), so LangGraph checkpoints its steps in their own
namespace with the parent's checkpointer and resumes a paused step where it stopped::

    START --unknowable--> identify --ask_again--> identify   --decided--> END
    START --ask_clarify-> clarify  --ask_again--> clarify    --decided--> END
                          clarify  --no_answer--> backup
    START --escalate----> backup   --needs_person--> review  --> END
                          backup   --decided--> END
    START --pending_review--> await_review --keep_waiting--> await_review --answered--> END

``selfheal graph`` prints LangGraph's own Mermaid drawing of both levels (``xray``).
"""

from __future__ import annotations

import functools
import sqlite3
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph

from selfheal.config import ConfigError
from selfheal.graph.checkpoints import CHECKPOINT_DB, check_checkpoint_db
from selfheal.graph.nodes import (
    AWAIT_REVIEW_STEP,
    BACKUP_STEP,
    CLARIFY_STEP,
    CONFIDENCE_CHECK,
    FALLBACK,
    FINAL_DECISION,
    IDENTIFY_STEP,
    INFERENCE,
    REVIEW_STEP,
    await_review_step,
    backup_step,
    clarify_step,
    confidence_check_node,
    final_decision_node,
    identify_step,
    inference_node,
    review_step,
    route_after_await_review,
    route_after_backup,
    route_after_clarify,
    route_after_decision,
    route_after_identify,
    route_by_confidence,
    route_fallback_entry,
)
from selfheal.graph.services import Services
from selfheal.graph.state import State
from selfheal.vocabulary import ACCEPT, ASK_CLARIFY, ESCALATE, PENDING_REVIEW, UNKNOWABLE


def build_fallback(services: Services) -> Any:
    """FallbackNode's subgraph, compiled without a checkpointer of its own: it inherits the
    parent's, so a step paused at ``interrupt()`` is resumed by ``Command(resume=...)`` on the
    parent thread, from any process that opens the same checkpoint file."""
    graph = StateGraph(State)
    graph.add_node(IDENTIFY_STEP, functools.partial(identify_step, services=services))
    graph.add_node(CLARIFY_STEP, functools.partial(clarify_step, services=services))
    graph.add_node(BACKUP_STEP, functools.partial(backup_step, services=services))
    graph.add_node(REVIEW_STEP, functools.partial(review_step, services=services))
    graph.add_node(AWAIT_REVIEW_STEP, functools.partial(await_review_step, services=services))

    graph.add_conditional_edges(
        START,
        route_fallback_entry,
        {
            UNKNOWABLE: IDENTIFY_STEP,
            ASK_CLARIFY: CLARIFY_STEP,
            ESCALATE: BACKUP_STEP,
            PENDING_REVIEW: AWAIT_REVIEW_STEP,
        },
    )
    graph.add_conditional_edges(
        IDENTIFY_STEP, route_after_identify, {"ask_again": IDENTIFY_STEP, "decided": END}
    )
    graph.add_conditional_edges(
        CLARIFY_STEP,
        route_after_clarify,
        {"ask_again": CLARIFY_STEP, "no_answer": BACKUP_STEP, "decided": END},
    )
    graph.add_conditional_edges(
        BACKUP_STEP, route_after_backup, {"needs_person": REVIEW_STEP, "decided": END}
    )
    graph.add_edge(REVIEW_STEP, END)
    graph.add_conditional_edges(
        AWAIT_REVIEW_STEP,
        route_after_await_review,
        {"keep_waiting": AWAIT_REVIEW_STEP, "answered": END},
    )
    return graph.compile(name=FALLBACK)


def build_graph(services: Services, checkpointer: BaseCheckpointSaver | None = None) -> Any:
    """Compile the self-healing graph with ``services`` bound into its nodes and steps."""
    graph = StateGraph(State)
    graph.add_node(INFERENCE, functools.partial(inference_node, services=services))
    graph.add_node(CONFIDENCE_CHECK, functools.partial(confidence_check_node, services=services))
    graph.add_node(FALLBACK, build_fallback(services))
    graph.add_node(FINAL_DECISION, functools.partial(final_decision_node, services=services))

    graph.add_edge(START, INFERENCE)
    graph.add_edge(INFERENCE, CONFIDENCE_CHECK)
    graph.add_conditional_edges(
        CONFIDENCE_CHECK,
        route_by_confidence,
        {ACCEPT: FINAL_DECISION, ASK_CLARIFY: FALLBACK, ESCALATE: FALLBACK, UNKNOWABLE: FALLBACK},
    )
    graph.add_edge(FALLBACK, FINAL_DECISION)
    graph.add_conditional_edges(
        FINAL_DECISION, route_after_decision, {"wait_for_review": FALLBACK, "end": END}
    )
    return graph.compile(checkpointer=checkpointer)


def open_checkpointer(log_dir: Path) -> BaseCheckpointSaver:
    """The SQLite checkpointer at ``<log_dir>/graph_checkpoints.sqlite`` (paused requests live here).

    Several processes may share the file: SQLite locks it, and a writer waits up to 30 s. A
    damaged file, or one that lacks pending requests the log lists, is a
    :class:`~selfheal.graph.checkpoints.CheckpointError` (see :mod:`selfheal.graph.checkpoints`).
    """
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = Path(log_dir) / CHECKPOINT_DB
    check_checkpoint_db(Path(log_dir))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30.0)
        saver = SqliteSaver(conn)
        saver.setup()
    except (OSError, sqlite3.Error) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"cannot use log directory {log_dir} (paths.log_dir): {reason}") from None
    return saver


def mermaid() -> str:
    """LangGraph's own Mermaid drawing of the graph, FallbackNode's steps included (``xray``);
    nothing is loaded or written."""
    from selfheal.config import Config

    return build_graph(Services(Config())).get_graph(xray=True).draw_mermaid()
