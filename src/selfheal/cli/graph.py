"""``selfheal graph``: draw the compiled graph."""

from __future__ import annotations

import typer


def graph() -> None:
    """Print LangGraph's Mermaid drawing of the self-healing graph."""
    from selfheal.graph import mermaid

    typer.echo(mermaid())
