"""``selfheal eval``: evaluate a checkpoint and regenerate EVALUATION.md."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from selfheal.cli.common import ConfigOption, SetOption, get_config, user_errors


@user_errors
def command(
    config: ConfigOption = None,
    overrides: SetOption = None,
    data: Annotated[
        Path | None, typer.Option(help="Evaluate a labelled CSV/JSONL file instead (out-of-domain check).")
    ] = None,
    split: Annotated[str, typer.Option(help="Held-out split to evaluate: test or validation.")] = "test",
    simulation: Annotated[
        bool, typer.Option("--simulation/--no-simulation", help="Run the self-healing simulation.")
    ] = True,
    training_log: Annotated[
        bool, typer.Option("--training-log", help="Only print the last training run's per-epoch table.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Evaluate the model: metrics, calibration, risk-coverage, simulation; regenerate EVALUATION.md.

    With --data the results go to <reports_dir>/data-<file name>/ and EVALUATION.md is left alone.
    """
    from rich.console import Console

    from selfheal.evaluation.console import print_summary, print_training_log
    from selfheal.evaluation.pipeline import EvalOptions, evaluate

    cfg = get_config(config, overrides)
    console = Console()
    if training_log:
        print_training_log(cfg, console)
        return
    command = ["selfheal", "eval"]
    command += ["--config", str(config)] if config else []
    command += [arg for item in overrides or [] for arg in ("--set", item)]
    command += ["--data", str(data)] if data else []
    command += ["--split", split] if split != "test" else []
    command += [] if simulation else ["--no-simulation"]
    options = EvalOptions(data=data, split=split, simulate=simulation, command=" ".join(command), quiet=quiet)
    print_summary(evaluate(cfg, options), console)
