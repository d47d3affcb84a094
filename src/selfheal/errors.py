"""User-facing errors: each becomes one line on stderr and exit code 2 in the CLI."""

from __future__ import annotations

import sys
from collections.abc import Callable

from selfheal.config import ConfigError
from selfheal.data import DataError
from selfheal.inputs import InputError
from selfheal.logs.jsonl import StorageError
from selfheal.model.checkpoint import ModelError
from selfheal.model.hub import HubError

USER_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    DataError,
    HubError,
    InputError,
    ModelError,
    StorageError,
    FileNotFoundError,
)


def exit_on_user_error(main: Callable[[], object]) -> None:
    """Run a script's ``main``; a user error ends it with one line ``error: ...`` on stderr and
    exit code 1 instead of a traceback."""
    try:
        main()
    except USER_ERRORS as exc:
        sys.exit(f"error: {exc}")


__all__ = [
    "USER_ERRORS",
    "ConfigError",
    "DataError",
    "HubError",
    "InputError",
    "ModelError",
    "StorageError",
    "exit_on_user_error",
]
