"""The ``selfheal`` command line: the Typer app and one module per command."""

from selfheal.cli.app import app, main

__all__ = ["app", "main"]
