"""``selfheal stats``: fallback analytics from the decision log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from selfheal.cli.common import ConfigOption, SetOption, get_config, user_errors


@user_errors
def command(
    config: ConfigOption = None,
    overrides: SetOption = None,
    log: Annotated[Path | None, typer.Option(help="Log file (default: <paths.log_dir>/app.jsonl).")] = None,
    last: Annotated[
        int, typer.Option(min=0, help="Confidence trend over the last N requests (0 = all).")
    ] = 20,
    csv: Annotated[Path | None, typer.Option(help="Write the trend rows to this CSV file.")] = None,
) -> None:
    """Fallback analytics from the decision log: accept/clarify/escalate, final via, confidence."""
    from selfheal.logs.stats import default_log, read_log, render, trend, write_trend_csv

    cfg = get_config(config, overrides)
    result = read_log(log if log is not None else default_log(cfg))
    typer.echo(render(result, last))
    if csv is not None:
        rows = trend(result, last)
        typer.echo(f"wrote {len(rows)} row(s) to {write_trend_csv(rows, csv)}")
