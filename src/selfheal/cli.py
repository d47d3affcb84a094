"""The ``selfheal`` command line (Typer).

Every command takes ``--config PATH`` and any number of ``--set key.path=value`` overrides;
errors in input, config or model files print one line and exit with code 2.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from selfheal.config import Config, load_config

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(
    name="selfheal",
    help="A self-healing sentiment classifier: it asks when it is unsure.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

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


@app.command()
@user_errors
def train(
    config: ConfigOption = None,
    overrides: SetOption = None,
    output_dir: Annotated[Path | None, typer.Option(help="Where to write the checkpoint.")] = None,
    sample: Annotated[int | None, typer.Option(help="Train on a stratified sample of N examples.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Number of epochs.")] = None,
    base_model: Annotated[str | None, typer.Option(help="Hugging Face model id or local path.")] = None,
    data: Annotated[str | None, typer.Option(help="rotten_tomatoes, a CSV/JSONL file, or hf:<name>.")] = None,
    include_clarified: Annotated[
        bool, typer.Option("--include-clarified", help="Add user-clarified examples to the train split.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Fine-tune the model with LoRA, calibrate it, train the backup and save a checkpoint."""
    cfg = get_config(
        config,
        overrides,
        {
            "paths.output_dir": output_dir,
            "data.sample": sample,
            "training.epochs": epochs,
            "model.base_model": base_model,
            "data.source": data,
            "data.include_clarified": True if include_clarified else None,
        },
    )
    from selfheal.model.train import train as run_training

    clarified = None
    if cfg.data.include_clarified:
        from selfheal.clarified import load_clarified

        clarified = load_clarified(cfg.paths.clarified)
        typer.echo(f"including {len(clarified)} clarified examples from {cfg.paths.clarified}")
    result = run_training(cfg, clarified=clarified, quiet=quiet)
    test = result.metrics["test"]
    typer.echo(
        f"saved {result.output_dir} | best epoch {result.best_epoch} | T={result.temperature:.3f} | "
        f"test acc {test['accuracy']:.4f} macro-F1 {test['f1_macro']:.4f} | {result.seconds / 60:.1f} min"
    )


@app.command("eval")
@user_errors
def eval_(
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

    from selfheal.evaluation.run import EvalOptions, evaluate, print_summary, print_training_log

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


@app.command()
@user_errors
def stats(
    config: ConfigOption = None,
    overrides: SetOption = None,
    log: Annotated[Path | None, typer.Option(help="Log file (default: <paths.log_dir>/app.jsonl).")] = None,
    last: Annotated[
        int, typer.Option(min=0, help="Confidence trend over the last N requests (0 = all).")
    ] = 20,
    csv: Annotated[Path | None, typer.Option(help="Write the trend rows to this CSV file.")] = None,
) -> None:
    """Fallback analytics from the decision log: accept/clarify/escalate, final via, confidence."""
    from selfheal.stats import default_log, read_log, render, trend, write_trend_csv

    cfg = get_config(config, overrides)
    result = read_log(log if log is not None else default_log(cfg))
    typer.echo(render(result, last))
    if csv is not None:
        rows = trend(result, last)
        typer.echo(f"wrote {len(rows)} row(s) to {write_trend_csv(rows, csv)}")


AcceptOption = Annotated[
    float | None, typer.Option("--accept", help="Accept the model's label at >= this confidence.")
]
ClarifyOption = Annotated[
    float | None, typer.Option("--clarify", help="Ask the user at >= this confidence; below: escalate.")
]


@app.command()
@user_errors
def run(
    config: ConfigOption = None,
    overrides: SetOption = None,
    accept: AcceptOption = None,
    clarify: ClarifyOption = None,
) -> None:
    """Interactive loop: type a text, see the decision, answer when the model is unsure."""
    from selfheal.interactive import run as run_interactive

    run_interactive(
        get_config(config, overrides, {"thresholds.accept": accept, "thresholds.clarify": clarify})
    )


@app.command()
@user_errors
def classify(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to classify; '-' reads stdin.")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="UTF-8 file, one text per line.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print each log record as one JSON line.")] = False,
    config: ConfigOption = None,
    overrides: SetOption = None,
    accept: AcceptOption = None,
    clarify: ClarifyOption = None,
) -> None:
    """Classify texts without asking anyone; unsure requests wait for `selfheal review` unless the no-person rule holds."""
    from selfheal.batch import classify as classify_texts

    cfg = get_config(config, overrides, {"thresholds.accept": accept, "thresholds.clarify": clarify})
    classify_texts(cfg, list(texts or []), file, as_json)


@app.command()
@user_errors
def review(
    config: ConfigOption = None,
    overrides: SetOption = None,
    list_only: Annotated[bool, typer.Option("--list", help="Only list what waits; ask nothing.")] = False,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Restore the queue from app.jsonl into a fresh checkpoint file (a damaged one is moved "
            "aside), then list it.",
        ),
    ] = False,
) -> None:
    """Answer escalated requests (and questions left open by a killed run), resuming their graphs."""
    from selfheal.review import review as review_queue

    review_queue(get_config(config, overrides), list_only=list_only, rebuild=rebuild)


@app.command("package-model")
@user_errors
def package_model(
    config: ConfigOption = None,
    overrides: SetOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="Directory of the zip (paths.dist_dir).")] = None,
) -> None:
    """Pack the configured checkpoint (paths.checkpoint) into <out>/selfheal-<version>.zip."""
    from selfheal.model.checkpoint import resolve_checkpoint
    from selfheal.model.package import write_zip

    cfg = get_config(config, overrides, {"paths.dist_dir": out})
    package = write_zip(resolve_checkpoint(cfg.paths.checkpoint), cfg.paths.dist_dir)
    typer.echo(
        f"wrote {package.path} ({len(package.files)} files + SHA256SUMS, {package.size / 1e6:.1f} MB, "
        f"sha256 {package.sha256[:16]}); unzip it and run: selfheal run --set paths.checkpoint={package.name}"
    )


@app.command()
@user_errors
def push(
    repo_id: Annotated[str, typer.Option("--repo-id", help="Hub model repository OWNER/NAME.")],
    private: Annotated[bool, typer.Option("--private", help="Create the repository private.")] = False,
    config: ConfigOption = None,
    overrides: SetOption = None,
) -> None:
    """Upload the configured checkpoint's package files to a Hugging Face Hub model repository.

    The token comes from HF_TOKEN or 'hf auth login'; the endpoint from HF_ENDPOINT.
    """
    from selfheal.model.checkpoint import resolve_checkpoint
    from selfheal.model.hub import push as push_model

    cfg = get_config(config, overrides)
    result = push_model(resolve_checkpoint(cfg.paths.checkpoint), repo_id, private=private)
    typer.echo(f"pushed {len(result.files)} files + SHA256SUMS to {result.repo_url} ({result.commit_url})")


@app.command()
def graph() -> None:
    """Print LangGraph's Mermaid drawing of the self-healing graph."""
    from selfheal.graph import mermaid

    typer.echo(mermaid())


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point; with no arguments it starts the interactive ``run``."""
    args = sys.argv[1:] if argv is None else argv
    app(args=args or ["run"], prog_name="selfheal")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
