"""What every page needs: the config, and the graph session with its models, once per server process.

The config comes from the environment ``selfheal dashboard`` sets (:data:`~selfheal.dashboard.CONFIG_ENV`,
:data:`~selfheal.dashboard.SET_ENV`). The :class:`~selfheal.graph.session.Session` (the SQLite
checkpointer, the claim table, the log writer) is built once per server process and config with
``st.cache_resource``, through ``common.make_services`` as the CLI builds it; the models load on
first use (the Classify page), so the Review queue, Analytics and Model pages never load torch.

Every browser tab shares that one session: graph runs are serialised by :attr:`Resources.lock`
(one model, one log writer whose undo journal belongs to one decision at a time). Answers are
still claimed in the database, so a second answer to the same question, from another tab, another
dashboard or ``selfheal review``, is told it came too late.

Errors a user can fix (a bad config, a missing checkpoint, a damaged checkpoint database, an
unwritable log directory) are shown as one line with :func:`show_error`, never as a traceback.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import streamlit as st

from selfheal.config import Config, load_config
from selfheal.dashboard import CONFIG_ENV, SET_ENV
from selfheal.errors import USER_ERRORS

if TYPE_CHECKING:
    from selfheal.graph.session import Session

# What a page catches and shows as one line: the CLI's user errors and a database error.
SHOWN_ERRORS: tuple[type[BaseException], ...] = (*USER_ERRORS, sqlite3.Error, OSError)


def environment_overrides() -> tuple[str | None, list[str]]:
    """The config file and the ``--set`` overrides ``selfheal dashboard`` passed in the environment."""
    path = os.environ.get(CONFIG_ENV) or None
    raw = os.environ.get(SET_ENV) or "[]"
    try:
        overrides = json.loads(raw)
    except ValueError:
        overrides = None
    if not isinstance(overrides, list) or not all(isinstance(item, str) for item in overrides):
        from selfheal.config import ConfigError

        raise ConfigError(f"{SET_ENV} must be a JSON list of key=value strings, got {raw!r}")
    return path, overrides


def show_error(exc: BaseException) -> None:
    """One line, the way the CLI prints it (``error: ...``), never a traceback."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        message = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    st.error(f"error: {message}", icon=":material/error:")


def config() -> Config | None:
    """The dashboard's config (``None`` after showing why it cannot be loaded)."""
    try:
        path, overrides = environment_overrides()
        return load_config(path, overrides)
    except SHOWN_ERRORS as exc:
        show_error(exc)
        return None


@dataclass
class Resources:
    """The graph session of this server process and the lock its graph runs take turns on."""

    session: Session
    lock: threading.Lock = field(default_factory=threading.Lock)
    model_ready: bool = False


@st.cache_resource(show_spinner="Opening the graph and its checkpointer...")
def _resources(config_json: str) -> Resources:
    """Built once per server process and config (an exception is not cached: fix it, reload)."""
    from selfheal.cli import common
    from selfheal.cli.preflight import check_log_dir
    from selfheal.graph.session import Session

    cfg = Config.from_dict(json.loads(config_json))
    check_log_dir(cfg)
    return Resources(Session(common.make_services(cfg)))


def config_key(cfg: Config) -> str:
    """The cache key of a config: its canonical JSON."""
    return json.dumps(cfg.to_dict(), sort_keys=True)


def resources(cfg: Config) -> Resources | None:
    """The shared session for ``cfg`` (``None`` after showing why it cannot be opened)."""
    try:
        return _resources(config_key(cfg))
    except SHOWN_ERRORS as exc:
        show_error(exc)
        return None


def config_and_resources() -> tuple[Config, Resources] | None:
    """The config and the shared resources of a page that runs the graph, or ``None`` (the
    reason is already on the page)."""
    cfg = config()
    if cfg is None:
        return None
    res = resources(cfg)
    return None if res is None else (cfg, res)


def load_model(res: Resources) -> bool:
    """Load the classifier and the backups once per server process (with a spinner the first
    time); ``False`` after showing why they cannot be loaded (a missing or damaged checkpoint)."""
    if res.model_ready:
        return True
    from selfheal.cli.preflight import check_checkpoint

    try:
        check_checkpoint(res.session.config)
        with st.spinner("Loading the model (once per server process)..."), res.lock:
            res.session.services.warm_up()
    except SHOWN_ERRORS as exc:
        show_error(exc)
        return False
    res.model_ready = True
    return True


def clear() -> None:
    """Forget the cached sessions (tests; a new config)."""
    _resources.clear()
