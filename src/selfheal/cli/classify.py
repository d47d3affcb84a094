"""``selfheal classify``: non-interactive decisions for texts, a file or stdin.

Never waits for input: a request the model is unsure about goes to the backup models, and unless
the no-person rule (``backup.*``) holds it is logged as pending and left for ``selfheal review``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from selfheal.cli import common
from selfheal.cli.common import AcceptOption, ClarifyOption, ConfigOption, SetOption, get_config, user_errors
from selfheal.config import Config
from selfheal.inputs import InputError, decode_lines


def read_inputs(texts: list[str], file: Path | None) -> list[tuple[str, str]]:
    """``(where, text)`` pairs from the arguments (``-`` = stdin, one text per line) and ``--file``."""
    inputs: list[tuple[str, str]] = []
    for i, text in enumerate(texts, start=1):
        if text == "-":
            inputs += [(f"stdin:{n}", line) for n, line in decode_lines(sys.stdin.buffer, "stdin")]
        else:
            inputs.append((f"arg {i}", text))
    if file is not None:
        try:
            with Path(file).open("rb") as fh:
                inputs += [(f"{file}:{n}", line) for n, line in decode_lines(fh, str(file))]
        except OSError as exc:
            raise InputError(f"cannot read {file}: {exc.strerror or exc}") from None
    if not inputs:
        raise InputError("nothing to classify: give TEXT arguments, --file FILE, or - to read stdin")
    return inputs


def table_lines(records: list[dict[str, Any]], width: int = 60) -> list[str]:
    """A plain fixed-width table of decisions (texts cut to ``width`` characters)."""
    lines = [f"{'#':>3}  {'label':<9} {'via':<18} {'model':<9} {'conf':>5}  text"]
    for n, record in enumerate(records, start=1):
        inf, final = record["inference"], record["final_decision"]
        text = record["input_text"]
        text = text if len(text) <= width else text[: width - 3] + "..."
        lines.append(
            f"{n:>3}  {final['label'] or 'pending':<9} {final['via']:<18} {inf['label']:<9} "
            f"{inf['confidence']:>5.2f}  {text}"
        )
    return lines


def classify(config: Config, texts: list[str], file: Path | None, as_json: bool) -> None:
    """The ``selfheal classify`` command body."""
    from selfheal.cli.preflight import preflight
    from selfheal.logs.jsonl import StorageError

    inputs = read_inputs(texts, file)
    preflight(config)  # an unusable log dir or a damaged checkpoint fails now, before any heavy import
    from selfheal.graph.session import Session

    services = common.make_services(config)
    _ = services.classifier  # load before the first request, so its latency is the model's
    session = Session(services)
    rows, pending = [], 0
    for n, (where, text) in enumerate(inputs):
        try:
            outcome = session.start(text, interactive=False)
        except StorageError as exc:  # the requests before it are logged; this one is not
            if rows:
                typer.echo("\n".join(table_lines(rows)))
            raise StorageError(f"{exc} ({where} was not recorded; {n} input(s) before it were)") from None
        if outcome is None:
            typer.echo(f"skipped {where}: empty text", err=True)
            continue
        record = outcome.record
        assert record is not None
        pending += outcome.pending_review
        if as_json:
            typer.echo(json.dumps(record, ensure_ascii=False))
        else:
            rows.append(record)
    if rows:
        typer.echo("\n".join(table_lines(rows)))
    if pending:
        typer.echo(f"{pending} pending human review: answer with 'selfheal review'", err=True)


@user_errors
def command(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to classify; '-' reads stdin.")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="UTF-8 file, one text per line.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print each log record as one JSON line.")] = False,
    config: ConfigOption = None,
    overrides: SetOption = None,
    accept: AcceptOption = None,
    clarify: ClarifyOption = None,
) -> None:
    """Classify texts without asking anyone; unsure requests wait for `selfheal review` unless the no-person rule holds."""
    from selfheal.cli.classify import classify as classify_texts

    cfg = get_config(config, overrides, {"thresholds.accept": accept, "thresholds.clarify": clarify})
    classify_texts(cfg, list(texts or []), file, as_json)
