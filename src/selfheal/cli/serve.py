"""``selfheal serve``: the graph behind an HTTP API (FastAPI + uvicorn); see :mod:`selfheal.server`.

Tokens come from files (``--token-file``, ``--review-token-file``) or the environment
(``SELFHEAL_TOKEN``, ``SELFHEAL_REVIEW_TOKEN``), never from the command line, where other users
of the machine could read them in the process list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from selfheal.cli.common import ConfigOption, DbOption, SetOption, get_config, user_errors
from selfheal.config import Config


def serve(
    config: Config,
    db_url: str | None,
    token_file: Path | None,
    review_token_file: Path | None,
) -> None:
    """The ``selfheal serve`` command body: check the options, then run uvicorn until SIGTERM/Ctrl-C."""
    from selfheal.cli.preflight import preflight
    from selfheal.graph.storage import check_url
    from selfheal.server.auth import Tokens

    db_url = db_url or config.storage.url
    check_url(config, db_url)  # a bad URL or an unreachable PostgreSQL: one line, before the model loads
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
    db: DbOption = None,
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
