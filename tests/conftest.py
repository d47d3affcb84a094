"""Shared fixtures: real data, a tiny real training run, the shipped checkpoint."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def rt_splits():
    """The real Rotten Tomatoes split used by the shipped model (seed 42, 80/10/10)."""
    from selfheal.data import prepare_splits

    return prepare_splits("rotten_tomatoes", 0.1, 0.1, 42)


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory, rt_splits) -> Path:
    """A 72-row CSV of real snippets drawn from the TRAIN split only (never test texts)."""
    from selfheal.labels import LABELS

    train = rt_splits["train"]
    rows, counts = [], {0: 0, 1: 0}
    for text, label in zip(train["text"], train["label"], strict=True):
        if counts[label] < 36 and len(text.split()) <= 20:
            counts[label] += 1
            rows.append({"text": text, "label": LABELS[label]})
        if len(rows) == 72:
            break
    path = tmp_path_factory.mktemp("data") / "tiny.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def tiny_overrides(data: Path, output_dir: Path) -> list[str]:
    """Config overrides for a training run of a few seconds on ``data``."""
    return [
        f"data.source={data}",
        "data.val_size=0.2",
        "data.test_size=0.2",
        "training.epochs=2",
        "training.batch_size=8",
        "training.learning_rate=3e-3",
        "training.warmup_ratio=0",
        f"paths.output_dir={output_dir}",
    ]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_csv):
    """One real tiny LoRA training run (same code path as `selfheal train`)."""
    from selfheal.config import load_config
    from selfheal.model.train import train

    out = tmp_path_factory.mktemp("ckpt") / "tiny"
    return train(load_config(REPO / "config.yaml", tiny_overrides(tiny_csv, out)), quiet=True)


@pytest.fixture(scope="session")
def shipped_classifier():
    """The checkpoint shipped in the package, loaded once."""
    from selfheal.model.classifier import Classifier

    return Classifier.load(None)


# --- The graph, the CLI and the logs ------------------------------------------------------------
# Real model, real graph, real files. The checkpoint is the shipped one unless
# SELFHEAL_TEST_CHECKPOINT names another directory (e.g. while the shipped one is being trained).

SELFHEAL_BIN = REPO / ".venv" / "bin" / "selfheal"


def graph_checkpoint() -> Path | None:
    """The checkpoint the graph and CLI tests use (``None`` = the shipped one)."""
    value = os.environ.get("SELFHEAL_TEST_CHECKPOINT")
    return Path(value) if value else None


def graph_overrides(tmp: Path) -> list[str]:
    """Config overrides that keep every file a graph test writes under ``tmp``."""
    items = [f"paths.log_dir={tmp / 'logs'}", f"paths.clarified={tmp / 'clarified.jsonl'}"]
    checkpoint = graph_checkpoint()
    return items + ([f"paths.checkpoint={checkpoint}"] if checkpoint else [])


@pytest.fixture(scope="session")
def classifier(request):
    """The classifier of the graph tests, loaded once per session."""
    checkpoint = graph_checkpoint()
    if checkpoint is None:
        return request.getfixturevalue("shipped_classifier")
    from selfheal.model.classifier import Classifier

    return Classifier.load(checkpoint)


@pytest.fixture(scope="session")
def backup_ensemble(tmp_path_factory):
    """The configured backup models (TF-IDF, VADER, MiniLM embedding), loaded once per session."""
    from selfheal.config import load_config
    from selfheal.model.backup import BackupEnsemble

    config = load_config(REPO / "config.yaml", graph_overrides(tmp_path_factory.mktemp("backups")))
    ensemble = BackupEnsemble(config, config.paths.checkpoint)
    ensemble.load()
    return ensemble


@pytest.fixture
def graph_config(tmp_path):
    """The repository's config.yaml with logs and clarified examples under ``tmp_path``."""
    from selfheal.config import load_config

    return load_config(REPO / "config.yaml", graph_overrides(tmp_path))


@pytest.fixture
def services(graph_config, classifier, backup_ensemble):
    """Services over the session's models, writing logs under ``tmp_path``."""
    from selfheal.graph.services import Services

    return Services(graph_config, classifier=classifier, backups=backup_ensemble)


@pytest.fixture
def session(services):
    """A graph session with an in-memory checkpointer."""
    from langgraph.checkpoint.memory import InMemorySaver

    from selfheal.graph.session import Session

    return Session(services, InMemorySaver())


@pytest.fixture
def cli(tmp_path):
    """Run the real ``selfheal`` command in a subprocess (cwd ``tmp_path``, files under it)."""
    import subprocess

    env = dict(os.environ, NO_COLOR="1", TERM="dumb", HF_HUB_OFFLINE="1")

    def run(*args: str, stdin: str | bytes | None = None, timeout: float = 180, check: bool = False):
        command = [str(SELFHEAL_BIN), *args[:1]]
        if args and not args[0].startswith("-") and args[0] != "graph":  # before the test's own --set
            command += [item for o in graph_overrides(tmp_path) for item in ("--set", o)]
        command += args[1:]
        result = subprocess.run(
            command,
            input=stdin.encode() if isinstance(stdin, str) else stdin,
            capture_output=True,
            cwd=tmp_path,
            env=env,
            timeout=timeout,
        )
        result.stdout, result.stderr = result.stdout.decode(), result.stderr.decode()
        if check:
            assert result.returncode == 0, result.stderr
        return result

    run.env = env
    run.args = lambda: [item for o in graph_overrides(tmp_path) for item in ("--set", o)]
    return run
