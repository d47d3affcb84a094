"""The self-healing LangGraph graph: one typed state, four nodes, routing on conditional edges.

* ``state.py``: the :class:`State` and the names of routes, stages and outcomes;
* ``nodes.py``: InferenceNode, ConfidenceCheckNode, FallbackNode, FinalDecisionNode and routing;
* ``build.py``: the wiring (reads like docs/architecture.md) and the SQLite checkpointer.
"""

from selfheal.graph.build import CHECKPOINT_DB, build_graph, mermaid, open_checkpointer
from selfheal.graph.state import State

__all__ = ["CHECKPOINT_DB", "State", "build_graph", "mermaid", "open_checkpointer"]
