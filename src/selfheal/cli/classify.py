"""``selfheal classify``: non-interactive decisions for texts, a file or stdin.

Never waits for input: a request the model is unsure about goes to the backup models, and unless
the no-person rule (``backup.*``) holds it is logged as pending and left for ``selfheal review``.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from selfheal.cli import common
from selfheal.cli.common import (
    AcceptOption,
    ClarifyOption,
    ConfigOption,
    DbOption,
    SetOption,
    get_config,
    user_errors,
)
from selfheal.config import Config
from selfheal.inputs import InputError, check_utf8, chunk_sizes, line_chunks

if TYPE_CHECKING:
    from selfheal.graph.session import Session
    from selfheal.graph.storage import Storage

Input = tuple[str, str]  # (where it came from, e.g. "stdin:3", the raw text)


def check_file(file: Path) -> None:
    """A ``--file`` that cannot be read, or has a line that is not UTF-8, is an
    :class:`InputError` before anything is classified (read through once, constant memory)."""
    try:
        with Path(file).open("rb") as fh:
            check_utf8(fh, str(file))
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror or exc}") from None


def input_chunks(
    texts: list[str], file: Path | None, size: int, first: int | None = None
) -> Iterator[list[Input]]:
    """The inputs in order (the arguments, ``-`` = stdin one text per line, then ``--file``), in
    lists of at most ``size`` (the lists of stdin and of the file start at ``first`` lines and
    double up to ``size``, see :func:`selfheal.inputs.chunk_sizes`), read as they are needed:
    nothing holds the whole input, and a
    list from stdin ends early when no more lines are ready (see
    :func:`selfheal.inputs.raw_line_chunks`). A list may be empty (blank lines only)."""
    args: list[Input] = []
    for i, text in enumerate(texts, start=1):
        if text != "-":
            args.append((f"arg {i}", text))
            if len(args) >= size:
                yield args
                args = []
            continue
        if args:
            yield args
            args = []
        for chunk in line_chunks(sys.stdin.buffer, "stdin", chunk_sizes(size, first)):
            yield [(f"stdin:{n}", line) for n, line in chunk]
    if args:
        yield args
    if file is not None:
        try:
            with Path(file).open("rb") as fh:
                for chunk in line_chunks(fh, str(file), chunk_sizes(size, first)):
                    yield [(f"{file}:{n}", line) for n, line in chunk]
        except OSError as exc:
            raise InputError(f"cannot read {file}: {exc.strerror or exc}") from None


TABLE_HEADER = f"{'#':>3}  {'label':<9} {'via':<18} {'model':<9} {'conf':>5}  text"


def table_row(n: int, record: dict[str, Any], width: int = 60) -> str:
    """Row ``n`` of the fixed-width table of decisions (the text cut to ``width`` characters)."""
    inf, final = record["inference"], record["final_decision"]
    text = record["input_text"]
    text = text if len(text) <= width else text[: width - 3] + "..."
    return (
        f"{n:>3}  {final['label'] or 'pending':<9} {final['via']:<18} {inf['label']:<9} "
        f"{inf['confidence']:>5.2f}  {text}"
    )


def table_lines(records: list[dict[str, Any]], width: int = 60) -> list[str]:
    """A plain fixed-width table of decisions (texts cut to ``width`` characters)."""
    return [TABLE_HEADER, *(table_row(n, r, width) for n, r in enumerate(records, start=1))]


@dataclass
class Counts:
    """What ``classify`` has done so far."""

    seen: int = 0  # inputs read and decided (or skipped as empty)
    shown: int = 0  # table rows printed
    pending: int = 0  # decisions left to human review


def decide_chunk(session: Session, chunk: list[Input], as_json: bool, counts: Counts) -> None:
    """Decide one chunk of inputs (:meth:`~selfheal.graph.session.Session.start_many`) and print
    each decision as soon as it is made: a JSON line, or a table row (the header before the first)."""
    from selfheal.logs.jsonl import StorageError

    outcomes = session.start_many([text for _, text in chunk], interactive=False)
    for where, _ in chunk:
        try:
            outcome = next(outcomes)
        except StorageError as exc:  # the requests before it are logged; this one is not
            raise StorageError(
                f"{exc} ({where} was not recorded; {counts.seen} input(s) before it were)"
            ) from None
        counts.seen += 1
        if outcome is None:
            typer.echo(f"skipped {where}: empty text", err=True)
            continue
        record = outcome.record
        assert record is not None
        counts.pending += outcome.pending_review
        if as_json:
            typer.echo(json.dumps(record, ensure_ascii=False))
            continue
        if not counts.shown:
            typer.echo(TABLE_HEADER)
        counts.shown += 1
        typer.echo(table_row(counts.shown, record))


def classify(
    config: Config, texts: list[str], file: Path | None, as_json: bool, db: str | None = None
) -> None:
    """The ``selfheal classify`` command body.

    The input is read in chunks of ``input.first_chunk_size`` lines doubling up to
    ``input.chunk_size``; each chunk is decided the batched way
    (:meth:`selfheal.graph.session.Session.start_many`: one model call over the chunk, then the
    graph per text, in order) and printed before the next is read: JSON lines one per decision,
    the table row by row under one header. ``db``: the database of paused requests (``--db``).
    """
    from selfheal.cli.preflight import preflight

    if not texts and file is None:
        raise InputError("nothing to classify: give TEXT arguments, --file FILE, or - to read stdin")
    if file is not None:
        check_file(file)
    url = db or config.storage.url
    # an unusable log dir or a damaged checkpoint fails now, before any heavy import
    preflight(config, queue=url is None)
    from selfheal.graph.session import Session
    from selfheal.graph.storage import open_storage

    services = common.make_services(config)
    storage = open_storage(config, url)
    try:
        _ = services.classifier  # load before the first request, so its latency is the model's
        session = Session(services, checkpointer=storage.checkpointer, claims=storage.claims)
        _classify_chunks(session, storage, texts, file, as_json)
    finally:
        storage.close()


def _classify_chunks(
    session: Session, storage: Storage, texts: list[str], file: Path | None, as_json: bool
) -> None:
    """Decide and print every chunk of the input (see :func:`classify`). With ``logging.fsync:
    chunk`` the chunk's log lines and (on SQLite) its checkpoints reach the disk together at its
    end, instead of one by one."""
    config = session.config
    counts = Counts()
    chunks = input_chunks(texts, file, config.input.chunk_size, config.input.first_chunk_size)
    per_chunk = config.logging.fsync == "chunk"
    while True:
        try:
            chunk = next(chunks, None)
        except InputError as exc:
            if counts.seen:
                raise InputError(f"{exc} (the {counts.seen} input(s) before it were classified)") from None
            raise
        if chunk is None:
            break
        with contextlib.ExitStack() as synced:
            if per_chunk:
                synced.enter_context(session.services.log.batched_sync())
                synced.enter_context(storage.batched_sync())
            decide_chunk(session, chunk, as_json, counts)
    if not counts.seen:
        raise InputError("nothing to classify: give TEXT arguments, --file FILE, or - to read stdin")
    if counts.pending:
        typer.echo(f"{counts.pending} pending human review: answer with 'selfheal review'", err=True)


@user_errors
def command(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to classify; '-' reads stdin.")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="UTF-8 file, one text per line.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print each log record as one JSON line.")] = False,
    config: ConfigOption = None,
    overrides: SetOption = None,
    accept: AcceptOption = None,
    clarify: ClarifyOption = None,
    db: DbOption = None,
) -> None:
    """Classify texts without asking anyone; unsure requests wait for `selfheal review` unless the no-person rule holds."""
    from selfheal.cli.classify import classify as classify_texts

    cfg = get_config(config, overrides, {"thresholds.accept": accept, "thresholds.clarify": clarify})
    classify_texts(cfg, list(texts or []), file, as_json, db)
