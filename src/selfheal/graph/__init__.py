"""The self-healing LangGraph graph and what drives it.

* ``state.py``: the :class:`State` and the names of routes, stages and outcomes;
* ``nodes.py``: InferenceNode, ConfidenceCheckNode, FallbackNode, FinalDecisionNode and routing;
* ``build.py``: the wiring (reads like docs/architecture.md) and the SQLite checkpointer;
* ``session.py``: runs one request through the graph, pauses and resumes it;
* ``services.py``: the models and the log writer the nodes use, injected;
* ``answers.py``: reading a person's answer; ``claims.py``: one answer per review;
  ``checkpoints.py``: the checkpoint file's health and its rebuild from the log.

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
