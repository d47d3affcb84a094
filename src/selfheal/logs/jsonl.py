"""Append-only JSON Lines files that stay valid with several writers, crashes, Ctrl-C and full disks.

Every append holds an exclusive ``flock`` on the file, checks the free space, writes the whole
line with ``os.write`` on an ``O_APPEND`` descriptor and ``fsync``s it. If the write fails
(``ENOSPC``, ``EIO``, a short write) the file is truncated back to its size before the append,
so a line is either all there or not at all. A tail left without its newline by an older crash
(or a truncation that failed) gets a newline before the next line, so it stays one invalid
line of its own that readers skip, and never swallows the next record.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class StorageError(RuntimeError):
    """A log, queue or data file cannot be written or read (disk full, read-only, damaged)."""

    @classmethod
    def wrap(cls, action: str, path: Path | str, exc: BaseException) -> StorageError:
        """The one place that turns an ``OSError`` or ``sqlite3.Error`` into a one-line message."""
        if isinstance(exc, StorageError):
            return exc
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc) or type(exc).__name__
        elif isinstance(exc, sqlite3.Error):
            reason = str(exc) or type(exc).__name__
        else:
            reason = f"{type(exc).__name__}: {exc}"
        return cls(f"cannot {action} {path}: {reason}")


@dataclass(frozen=True)
class Appended:
    """Where one appended line landed: the file's size before (``start``) and after (``end``)."""

    path: Path
    start: int
    end: int


def _encode(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def _check_space(fd: int, needed: int) -> None:
    """Raise ``ENOSPC`` before writing when the file system has fewer than ``needed`` bytes free."""
    try:
        st = os.fstatvfs(fd)
    except OSError:  # no statvfs here: the write itself will tell
        return
    if st.f_bavail * st.f_frsize < needed:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def append_line(path: Path, record: dict[str, Any], sync: bool = True) -> Appended:
    """Append ``record`` as one whole JSON line, or nothing; raises :class:`StorageError`.

    Safe with several processes appending at once (an exclusive ``flock`` per append, and one
    ``write`` on an ``O_APPEND`` descriptor); a crash leaves earlier lines intact. ``sync``: the
    line is on disk (``fsync``) when this returns; ``False`` leaves that to :func:`sync_file`
    (the line is in the kernel, so it survives the process dying, not the machine losing power).
    """
    path = Path(path)
    data = _encode(record)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file where a directory should be
        raise StorageError.wrap("write", path, OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))) from None
    except OSError as exc:
        raise StorageError.wrap("write", path, exc) from None
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StorageError.wrap("write", path, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        start = os.fstat(fd).st_size
        if start and os.pread(fd, 1, start - 1) != b"\n":
            data = b"\n" + data  # a damaged tail from an older crash becomes its own line
        _check_space(fd, len(data))
        try:
            written = os.write(fd, data)
            while written < len(data):  # a short write: finish it, or fail and roll back
                more = os.write(fd, data[written:])
                if more <= 0:
                    raise OSError(errno.EIO, "short write")
                written += more
            if sync:
                os.fsync(fd)
        except BaseException:  # OSError, or Ctrl-C mid-write: leave no partial line behind
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
                os.fsync(fd)
            raise
        return Appended(path, start, start + len(data))
    except OSError as exc:
        raise StorageError.wrap("write", path, exc) from None
    finally:
        os.close(fd)  # also releases the lock


def sync_file(path: Path) -> None:
    """``fsync`` a file the lines of :func:`append_line` (``sync=False``) went to; raises
    :class:`StorageError`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise StorageError.wrap("write", Path(path), exc) from None
    try:
        os.fsync(fd)
    except OSError as exc:
        raise StorageError.wrap("write", Path(path), exc) from None
    finally:
        os.close(fd)


def undo_append(appended: Appended) -> bool:
    """Remove the line of ``appended`` if it is still the file's last; returns whether it did.

    Used when a later step of the same decision fails, so the decision is recorded whole or not
    at all. A line another process appended after it is never touched.
    """
    try:
        fd = os.open(appended.path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_size != appended.end:
            return False
        os.ftruncate(fd, appended.start)
        os.fsync(fd)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def read_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """Yield ``(line_number, record)``; ``record`` is ``None`` for a corrupt or partial line."""
    with Path(path).open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                yield number, None
                continue
            yield number, record if isinstance(record, dict) else None
