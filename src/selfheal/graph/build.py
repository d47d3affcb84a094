"""The graph, wired like the architecture diagram in docs/architecture.md.

Edges (labels are the values returned by the routing functions in ``nodes.py``)::

    START -> InferenceNode -> ConfidenceCheckNode
    ConfidenceCheckNode --accept---------------> FinalDecisionNode
    ConfidenceCheckNode --ask_clarify/escalate-> FallbackNode
    FallbackNode --next_step--> FallbackNode   (ask the user -> backup models -> a person)
    FallbackNode --decide-----> FinalDecisionNode
    FinalDecisionNode --end-------------> END
    FinalDecisionNode --wait_for_review-> FallbackNode   (pending: paused until `selfheal review`)

``selfheal graph`` prints LangGraph's own Mermaid drawing of the compiled graph.
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
    CONFIDENCE_CHECK,
    FALLBACK,
    FINAL_DECISION,
    INFERENCE,
    confidence_check_node,
    fallback_node,
    final_decision_node,
    inference_node,
    route_after_decision,
    route_after_fallback,
    route_by_confidence,
)
from selfheal.graph.services import Services
from selfheal.graph.state import State


def build_graph(services: Services, checkpointer: BaseCheckpointSaver | None = None) -> Any:
    """Compile the self-healing graph with ``services`` bound into its nodes."""
    graph = StateGraph(State)
    graph.add_node(INFERENCE, functools.partial(inference_node, services=services))
    graph.add_node(CONFIDENCE_CHECK, functools.partial(confidence_check_node, services=services))
    graph.add_node(FALLBACK, functools.partial(fallback_node, services=services))
    graph.add_node(FINAL_DECISION, functools.partial(final_decision_node, services=services))

    graph.add_edge(START, INFERENCE)
    graph.add_edge(INFERENCE, CONFIDENCE_CHECK)
    graph.add_conditional_edges(
        CONFIDENCE_CHECK,
        route_by_confidence,
        {"accept": FINAL_DECISION, "ask_clarify": FALLBACK, "escalate": FALLBACK, "unknowable": FALLBACK},
    )
    graph.add_conditional_edges(
        FALLBACK, route_after_fallback, {"next_step": FALLBACK, "decide": FINAL_DECISION}
    )
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
    """LangGraph's own Mermaid drawing of the graph (nothing is loaded or written)."""
    from selfheal.config import Config

    return build_graph(Services(Config())).get_graph().draw_mermaid()
