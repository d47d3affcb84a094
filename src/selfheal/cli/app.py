"""The ``selfheal`` command line (Typer).

Every command takes ``--config PATH`` and any number of ``--set key.path=value`` overrides;
errors in input, config or model files print one line and exit with code 2.
"""

from __future__ import annotations

import os
import sys

import typer

from selfheal.cli import classify, dashboard, export, graph, package, review, run, serve, stats, train
from selfheal.cli import eval as evaluate

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(
    name="selfheal",
    help="A self-healing sentiment classifier: it asks when it is unsure.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


app.command("run")(run.command)
app.command("classify")(classify.command)
app.command("review")(review.command)
app.command("serve")(serve.command)
app.command("stats")(stats.command)
app.command("train")(train.command)
app.command("train-voter")(train.voter_command)
app.command("eval")(evaluate.command)
app.command("package-model")(package.package_model)
app.command("push")(package.push)
app.command("graph")(graph.graph)
app.command("export-onnx")(export.command)
app.command("dashboard")(dashboard.command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point; with no arguments it starts the interactive ``run``."""
    args = sys.argv[1:] if argv is None else argv
    app(args=args or ["run"], prog_name="selfheal")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
