"""Cheap checks that run before any model loads: is the log directory usable, is the checkpoint whole?

``selfheal run`` calls :func:`preflight` before its prompt appears and ``classify`` before it
loads the model, so an unusable ``paths.log_dir`` or a damaged checkpoint is one ``error:`` line
at once, not after seconds of loading (or after the first text was typed). Only ``stat``,
``open`` and small reads: no torch, no LangGraph.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from selfheal.config import Config
from selfheal.graph.checkpoints import CHECKPOINT_DB
from selfheal.logs.decisions import JSONL_NAME
from selfheal.logs.jsonl import StorageError

# Below this much free space in the log directory nothing is started: a decision record is
# about 1-2 KB and the checkpointer writes a few SQLite pages per request.
MIN_FREE_BYTES = 64 * 1024


def _usable_dir(directory: Path, what: str, key: str) -> None:
    """``directory`` exists (created if need be), is a directory, accepts a new file and has room."""

    def unusable(reason: str) -> StorageError:
        return StorageError(f"cannot use {what} {directory} ({key}): {reason}")

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise unusable("it is not a directory") from None
    except OSError as exc:
        raise unusable(exc.strerror or str(exc)) from None
    if not directory.is_dir():
        raise unusable("it is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".selfheal-probe-", dir=directory)
        os.close(fd)
        os.unlink(probe)
        free = os.statvfs(directory)
    except OSError as exc:
        raise unusable(exc.strerror or str(exc)) from None
    if free.f_bavail * free.f_frsize < MIN_FREE_BYTES:
        raise unusable(f"only {free.f_bavail * free.f_frsize} bytes free (No space left on device)")


def _appendable(path: Path) -> None:
    """``path`` is missing (it will be created) or a regular file that opens for appending."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StorageError.wrap("use", path, exc) from None
    if not stat.S_ISREG(mode):
        raise StorageError(f"cannot use {path}: it is not a regular file")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    except OSError as exc:
        raise StorageError.wrap("write", path, exc) from None
    with contextlib.suppress(OSError):
        os.close(fd)


def check_log_dir(config: Config) -> None:
    """``paths.log_dir`` and ``paths.clarified`` can take new records; raises :class:`StorageError`."""
    log_dir = Path(config.paths.log_dir)
    _usable_dir(log_dir, "log directory", "paths.log_dir")
    for name in (JSONL_NAME, CHECKPOINT_DB):
        _appendable(log_dir / name)
    clarified = Path(config.paths.clarified)
    _usable_dir(clarified.parent, "directory", "of paths.clarified")
    _appendable(clarified)


def check_checkpoint(config: Config) -> None:
    """The configured checkpoint is whole (see :func:`selfheal.model.checkpoint.verify_checkpoint`)
    and the bundled embedder's cache is ready or can be filled."""
    from selfheal.model.checkpoint import resolve_checkpoint, verify_checkpoint

    meta = verify_checkpoint(
        resolve_checkpoint(config.paths.checkpoint),
        tfidf="tfidf" in config.backup.models,
        embedder=config.embedder.enabled,
    )
    if (
        config.embedder.enabled
        and float(meta.get("embedder_weight") or 0) > 0
        and not meta.get("embedder_model")
    ):
        from selfheal.model.embedder import check_cache

        check_cache()


def preflight(config: Config, *, model: bool = True, queue: bool = True) -> None:
    """Everything a command needs before it loads a model (``model=False``: the log dir only;
    ``queue=False``: the paused requests are not in the SQLite file of ``paths.log_dir``, so
    :func:`selfheal.graph.storage.open_storage` checks them when it opens them)."""
    if model:
        check_checkpoint(config)
    check_log_dir(config)
    if model and queue:  # `selfheal review` checks the queue when it opens it (and may be rebuilding it)
        from selfheal.graph.checkpoints import check_checkpoint_db

        check_checkpoint_db(Path(config.paths.log_dir))
