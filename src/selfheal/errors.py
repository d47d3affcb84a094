"""User-facing errors: each becomes one line on stderr and exit code 2 in the CLI."""

from __future__ import annotations

from selfheal.config import ConfigError
from selfheal.data import DataError
from selfheal.inputs import InputError
from selfheal.model.checkpoint import ModelError

USER_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    DataError,
    InputError,
    ModelError,
    FileNotFoundError,
)

__all__ = ["USER_ERRORS", "ConfigError", "DataError", "InputError", "ModelError"]
