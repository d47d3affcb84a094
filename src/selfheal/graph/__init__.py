"""The self-healing LangGraph graph and what drives it.

* ``state.py``: the :class:`State` and the names of the nodes and of FallbackNode's steps;
* ``nodes.py``: InferenceNode, ConfidenceCheckNode, FallbackNode's steps (identify, clarify,
  backup, review, await_review), FinalDecisionNode, the questions and the routing functions;
* ``build.py``: the wiring of both levels (FallbackNode is a compiled subgraph) and the SQLite
  checkpointer; ``selfheal graph`` draws it;
* ``session.py``: runs one request through the graph, pauses and resumes it;
* ``services.py``: the models and the log writer the nodes use, injected;
* ``answers.py``: reading a person's answer; ``claims.py``: one answer per review, and the
  review queue's table; ``checkpoints.py``: the checkpoint file's health and its rebuild from
  the log; ``storage.py``: the database of all three, the CLI's SQLite file or PostgreSQL.

Importing the package is cheap: LangGraph loads only when :mod:`selfheal.graph.build` is used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CHECKPOINT_DB", "State", "build_graph", "mermaid", "open_checkpointer"]


def __getattr__(name: str) -> Any:
    if name == "State":
        from selfheal.graph.state import State

        return State
    if name in __all__:
        from selfheal.graph import build

        return getattr(build, name)
    raise AttributeError(name)
