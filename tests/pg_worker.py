"""One replica in the PostgreSQL tests (test_storage.py): a real process with its own Session.

``python pg_worker.py URL WORKDIR NAME OPS_JSON`` opens the database ``URL`` with
:func:`selfheal.graph.storage.open_storage` and the real graph (models load only if a step
needs them), with every file under WORKDIR (the same log and clarified file as the test), and
runs each operation, printing one JSON line per operation:

* ``["resume", request_id, answer]``: ``{"result": "won", "label": ...}`` or ``{"result": "already",
  "by": ...}`` (refused by the winner's claim, or the question was gone when it looked);
* ``["barrier"]``: writes ``WORKDIR/ready-NAME`` and waits until ``WORKDIR/go`` exists, so that
  two workers (each with its database and graph open) answer at the same moment.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from conftest import REPO, graph_overrides
from selfheal.config import load_config
from selfheal.graph.claims import AlreadyAnswered
from selfheal.graph.services import Services
from selfheal.graph.session import Session
from selfheal.graph.storage import open_storage


def main(url: str, workdir: Path, name: str, ops: list[list[str]]) -> None:
    config = load_config(REPO / "config.yaml", graph_overrides(workdir))
    storage = open_storage(config, url)
    try:
        session = Session(Services(config), checkpointer=storage.checkpointer, claims=storage.claims)
        for op in ops:
            if op[0] == "barrier":
                (workdir / f"ready-{name}").touch()
                while not (workdir / "go").exists():
                    time.sleep(0.005)
                continue
            _, request_id, answer = op
            try:
                outcome = session.resume(request_id, answer)
            except AlreadyAnswered as exc:  # "claim": refused by the winner's claim; "state": it had finished
                refused = {"name": name, "result": "already", "by": "claim" if exc.claim else "state"}
                print(json.dumps(refused), flush=True)
                continue
            result = {"name": name, "result": "won", "label": outcome.state.get("final_label")}
            print(json.dumps(result | {"via": outcome.state.get("via")}), flush=True)
    finally:
        storage.close()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4]))
