"""``selfheal graph``: draw the compiled graph, FallbackNode's steps included."""

from __future__ import annotations

import typer


def graph() -> None:
    """Print LangGraph's Mermaid drawing of the self-healing graph and of FallbackNode's steps."""
    from selfheal.graph import mermaid

    typer.echo(mermaid())
