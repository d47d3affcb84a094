"""``selfheal serve``: the graph behind an HTTP API (FastAPI + uvicorn); see :mod:`selfheal.server`.

Tokens come from files (``--token-file``, ``--review-token-file``) or the environment
(``SELFHEAL_TOKEN``, ``SELFHEAL_REVIEW_TOKEN``), never from the command line, where other users
of the machine could read them in the process list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from selfheal.cli.common import ConfigOption, SetOption, get_config, user_errors
from selfheal.config import Config, ConfigError


def check_db_url(db_url: str | None) -> None:
    """A ``--db`` this build can use: none or ``sqlite`` (the CLI's file in ``paths.log_dir``), or
    ``postgresql://...`` when the PostgreSQL storage is installed; else a one-line error."""
    if db_url is None or db_url.startswith("sqlite"):
        return
    if not db_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"--db must be sqlite or a postgresql:// URL (got {db_url.split('://')[0]}://...)")
    try:
        import selfheal.graph.storage  # noqa: F401  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigError(
            "PostgreSQL storage is not available in this build (--db postgresql://...)"
        ) from None


def serve(
    config: Config,
    db_url: str | None,
    token_file: Path | None,
    review_token_file: Path | None,
) -> None:
    """The ``selfheal serve`` command body: check the options, then run uvicorn until SIGTERM/Ctrl-C."""
    from selfheal.cli.preflight import preflight
    from selfheal.server.auth import Tokens

    check_db_url(db_url)
    tokens = Tokens.load(token_file, review_token_file)
    preflight(config, model=True)
    import uvicorn

    from selfheal.server.app import create_app

    app = create_app(config, db_url=db_url, tokens=tokens)
    typer.echo(
        f"selfheal serve on http://{config.server.host}:{config.server.port} "
        f"(docs /docs; {'tokens required' if tokens.enabled else 'no token: open to whoever reaches it'})",
        err=True,
    )
    uvicorn.run(app, host=config.server.host, port=config.server.port, log_level="info", access_log=False)


@user_errors
def command(
    host: Annotated[
        str | None, typer.Option("--host", help="Listen address (default server.host, 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="TCP port (default server.port, 8000).")] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="sqlite (default: the CLI's file in paths.log_dir) or postgresql://USER@HOST/DB."
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option("--token-file", help="File holding the client token (else $SELFHEAL_TOKEN)."),
    ] = None,
    review_token_file: Annotated[
        Path | None,
        typer.Option(
            "--review-token-file", help="File holding the reviewers' token (else $SELFHEAL_REVIEW_TOKEN)."
        ),
    ] = None,
    config: ConfigOption = None,
    overrides: SetOption = None,
) -> None:
    """Serve the classifier over HTTP: /v1 API, LangGraph SDK subset, /docs, /metrics."""
    cfg = get_config(config, overrides, {"server.host": host, "server.port": port})
    serve(cfg, db, token_file, review_token_file)
