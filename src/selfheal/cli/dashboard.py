"""``selfheal dashboard``: the reviewer's Streamlit dashboard (:mod:`selfheal.dashboard`).

It becomes ``streamlit run`` on the dashboard's app (``exec``: same process id, so Ctrl-C and
signals reach Streamlit directly), headless, on
``127.0.0.1:<port>`` unless told otherwise, with this command's config passed through the
environment (the config file and the ``--set`` overrides), so the dashboard reads the same
config, log and checkpointer as the other commands. The config is checked here first, and a busy
port is one line of error, before Streamlit starts.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from selfheal.cli.common import ConfigOption, SetOption, fail, get_config, user_errors

DEFAULT_PORT = 8501
DEFAULT_HOST = "127.0.0.1"


def port_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now (Streamlit would otherwise fail after starting)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return False
        raise
    return True


def streamlit_command(port: int, host: str) -> list[str]:
    """The ``streamlit run`` command line of the dashboard (this interpreter, headless, no
    file watcher, no usage statistics)."""
    from selfheal.dashboard import APP

    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.port",
        str(port),
        "--server.address",
        host,
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "viewer",
    ]


def dashboard_env(config: Path | None, overrides: list[str] | None) -> dict[str, str]:
    """This process's environment plus the dashboard's config (an absolute config path, so a
    child started elsewhere finds the same file)."""
    from selfheal.dashboard import CONFIG_ENV, SET_ENV

    env = dict(os.environ)
    env.pop(CONFIG_ENV, None)
    if config is not None:
        env[CONFIG_ENV] = str(Path(config).resolve())
    env[SET_ENV] = json.dumps(list(overrides or []))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


@user_errors
def command(
    config: ConfigOption = None,
    overrides: SetOption = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = DEFAULT_PORT,
    host: Annotated[
        str, typer.Option(help="Address to bind (default: loopback only; 0.0.0.0 exposes it).")
    ] = DEFAULT_HOST,
) -> None:
    """The reviewer's dashboard in the browser: classify, the review queue, analytics, the model."""
    import importlib.util

    get_config(config, overrides)  # a bad config is one line now, not a page of errors later
    if importlib.util.find_spec("streamlit") is None:
        fail("streamlit is not installed (pip install -r requirements.txt)")
    try:
        free = port_free(host, port)
    except OSError as exc:
        fail(f"cannot bind {host}:{port}: {exc.strerror or exc}")
    if not free:
        fail(f"port {port} on {host} is already in use (choose another with --port)")
    typer.echo(f"selfheal dashboard: http://{host}:{port} (Ctrl-C to stop)", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    argv = streamlit_command(port, host)
    os.execve(argv[0], argv, dashboard_env(config, overrides))  # Streamlit takes over this process
