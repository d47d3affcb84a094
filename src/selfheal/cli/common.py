"""What every command shares: ``--config`` / ``--set`` options, config loading, one-line errors."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from selfheal.config import Config, load_config

if TYPE_CHECKING:
    from selfheal.graph.services import Services

F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file (default: ./config.yaml).")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config key, e.g. --set training.epochs=5 (repeatable)."),
]


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error to stderr and exit."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def user_errors(func: F) -> F:
    """Turn known user errors into a one-line message and exit code 2 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from selfheal.errors import USER_ERRORS

        try:
            return func(*args, **kwargs)
        except USER_ERRORS as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def get_config(
    config: Path | None, overrides: list[str] | None, extra: dict[str, Any] | None = None
) -> Config:
    """Load the config and apply ``--set`` overrides plus command-specific flags (``extra``)."""
    items = list(overrides or [])
    for key, value in (extra or {}).items():
        if value is not None:
            items.append(f"{key}={value}")
    return load_config(config, items)


def make_services(config: Config) -> Services:
    """The models and the log writer a command runs the graph with (models load on first use).

    The one place a command builds its :class:`~selfheal.graph.services.Services`, and the seam
    for running commands in process: the tests replace it (``monkeypatch.setattr(
    "selfheal.cli.common.make_services", ...)``) to share models loaded once per test session.
    Commands call it as ``common.make_services(config)`` so that the replacement is seen.
    """
    from selfheal.graph.services import Services

    return Services(config)


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="SELFHEAL_DB",
        show_envvar=True,
        help="Database of the paused requests and the review queue: postgresql://USER@HOST:PORT/DB or "
        "sqlite:///PATH (default: storage.url, else graph_checkpoints.sqlite in paths.log_dir). The "
        "password comes from PGPASSWORD or ~/.pgpass.",
    ),
]

AcceptOption = Annotated[
    float | None, typer.Option("--accept", help="Accept the model's label at >= this confidence.")
]
ClarifyOption = Annotated[
    float | None, typer.Option("--clarify", help="Ask the user at >= this confidence; below: escalate.")
]
