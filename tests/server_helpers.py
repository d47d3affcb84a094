"""Shared by the server tests: an app on the session's models with its files under a temp dir."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import REPO, graph_overrides

# Found by running the shipped model: Negative at confidence 1.00, and Negative at 0.659 (torch)
# / 0.649 (onnx-int8), in the clarify band 0.50-0.75 of config.yaml; both judged knowable.
ACCEPTED = "The movie was painfully slow and boring."
AMBIGUOUS = "Not bad, not good, just there."


def server_config(tmp: Path, *extra: str) -> Any:
    """config.yaml with every file under ``tmp`` and ``extra`` overrides."""
    from selfheal.config import load_config

    return load_config(REPO / "config.yaml", [*graph_overrides(tmp), *extra])


def make_app(tmp: Path, classifier: Any, backups: Any, *extra: str, tokens: Any = None) -> Any:
    """The real app (real graph, SQLite under ``tmp``) on the already loaded models."""
    from selfheal.graph.services import Services
    from selfheal.server.app import create_app

    config = server_config(tmp, *extra)
    services = Services(config, classifier=classifier, backups=backups)
    return create_app(config, tokens=tokens, services=services)


def records(tmp: Path) -> list[dict[str, Any]]:
    """Every line of ``tmp/logs/app.jsonl``."""
    path = tmp / "logs" / "app.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def race(calls: dict[str, Callable[[], int]]) -> dict[str, int]:
    """Run the calls at the same moment (threads released by one barrier); each one's status code."""
    barrier = threading.Barrier(len(calls))
    statuses: dict[str, int] = {}

    def run(name: str, call: Callable[[], int]) -> None:
        barrier.wait()
        statuses[name] = call()

    threads = [threading.Thread(target=run, args=item) for item in calls.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses
