"""One process of the cross-process pause/resume test (test_fallback_subgraph.py).

``python graph_process.py WORKDIR OPS_JSON`` opens the SQLite checkpoint file under WORKDIR with
the real graph, runs each operation (``["start", name, text, interactive]`` or ``["resume",
name, answer]``) and prints one JSON line per operation: where the request stands, and the
steps the stream reported (``on_update`` paths). Every model call and model load is appended to
``WORKDIR/calls.log`` with this process's pid, so the test can tell which process ran what.

The models are the real ones (the configured checkpoint and backups), wrapped only to count
their calls and loaded only when a step needs them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from conftest import REPO, graph_overrides
from selfheal.config import Config, load_config
from selfheal.graph import open_checkpointer
from selfheal.graph.services import Services
from selfheal.graph.session import Session


class Calls:
    """Appends ``pid what`` lines to ``calls.log``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, what: str) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()} {what}\n")


class CountingClassifier:
    """The real classifier, loaded on first use; every load and prediction is logged."""

    labels = None  # Services.labels reads the checkpoint then: no model load just for labels

    def __init__(self, config: Config, calls: Calls) -> None:
        self._config = config
        self._calls = calls
        self._real: Any = None

    def _load(self) -> Any:
        if self._real is None:
            from selfheal.model.classifier import Classifier

            self._calls("classifier.load")
            self._real = Classifier.load(
                self._config.paths.checkpoint,
                use_temperature=self._config.calibration.temperature,
                use_embedder=self._config.embedder.enabled,
                use_knowability=self._config.knowability.enabled,
            )
        return self._real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._load(), name)

    def predict(self, texts: list[str]) -> list[Any]:
        self._calls("classifier.predict")
        return self._load().predict(texts)


class CountingBackups:
    """The real backup ensemble (built on first use); every vote is logged."""

    def __init__(self, config: Config, calls: Calls) -> None:
        from selfheal.model.backup import BackupEnsemble

        self._real = BackupEnsemble(config, config.paths.checkpoint)
        self.names = self._real.names
        self._calls = calls

    def predict(self, text: str, voter_needed: bool = True) -> dict[str, Any]:
        self._calls("backups.predict")
        return self._real.predict(text)


def main(workdir: Path, ops: list[list[Any]]) -> None:
    config = load_config(
        REPO / "config.yaml",
        [*graph_overrides(workdir), "thresholds.accept=1.0", "thresholds.clarify=0.0", "backup.decide=false"],
    )
    calls = Calls(workdir / "calls.log")
    services = Services(
        config, classifier=CountingClassifier(config, calls), backups=CountingBackups(config, calls)
    )
    session = Session(services, open_checkpointer(config.paths.log_dir))
    ids_path = workdir / "ids.json"
    ids = json.loads(ids_path.read_text()) if ids_path.exists() else {}
    for op in ops:
        steps: list[list[str]] = []

        def seen(path: tuple[str, ...], update: dict, state: dict, steps: list = steps) -> None:
            steps.append(list(path))

        if op[0] == "start":
            _, name, text, interactive = op
            outcome = session.start(text, interactive=interactive, on_update=seen)
            assert outcome is not None
            ids[name] = outcome.request_id
            ids_path.write_text(json.dumps(ids))
        else:
            _, name, answer = op
            outcome = session.resume(ids[name], answer, on_update=seen)
        state = outcome.state
        print(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "name": op[1],
                    "waiting": outcome.waiting,
                    "via": state.get("via"),
                    "final_label": state.get("final_label"),
                    "fallback": state.get("fallback"),
                    "inference": state.get("inference"),
                    "steps": steps,
                }
            ),
            flush=True,
        )
    session.checkpointer.conn.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), json.loads(sys.argv[2]))
