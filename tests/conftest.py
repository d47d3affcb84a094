"""Shared fixtures: real data, a tiny real training run, the shipped checkpoint, the CLI in process.

Models load once per test session (``shipped_classifier``, ``classifier``, ``backup_ensemble``);
the in-process CLI (``cli``, ``selfheal_cli``) hands them to every command that would load the
same ones. After each test the environment and the ``app.log`` handlers are put back, so no test
sees another's settings or writes into another's log.
"""

from __future__ import annotations

import csv
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import selfheal
from selfheal.logs.decisions import LOGGER_NAME
from selfheal.model.checkpoint import quiet_hf

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SRC = Path(selfheal.__file__).resolve().parents[1]  # the source tree these tests import

# Models loaded by fixtures (inside a test's captured stderr, when an in-process command asks for
# them first) load as quietly as the CLI's: no transformers progress bars in a command's stderr.
quiet_hf()


@pytest.fixture(autouse=True)
def _restore_process_state():
    """Undo what a test (or the code it ran in process) changed in ``os.environ`` (HF_HUB_OFFLINE,
    HF_ENDPOINT, SELFHEAL_CACHE, ...), and close the ``app.log`` handlers it opened."""
    environ = dict(os.environ)
    yield
    for key in set(os.environ) - set(environ):
        del os.environ[key]
    for key, value in environ.items():
        if os.environ.get(key) != value:
            os.environ[key] = value
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


@pytest.fixture(scope="session")
def rt_splits():
    """The real Rotten Tomatoes split used by the shipped model (seed 42, 80/10/10)."""
    from selfheal.data import prepare_splits

    return prepare_splits("rotten_tomatoes", 0.1, 0.1, 42)


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory, rt_splits) -> Path:
    """A 72-row CSV of real snippets drawn from the TRAIN split only (never test texts)."""
    from selfheal.labels import MOVIE_LABELS

    train = rt_splits["train"]
    rows, counts = [], {0: 0, 1: 0}
    for text, label in zip(train["text"], train["label"], strict=True):
        if counts[label] < 36 and len(text.split()) <= 20:
            counts[label] += 1
            rows.append({"text": text, "label": MOVIE_LABELS[label]})
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


def graph_checkpoint() -> Path | None:
    """The checkpoint the graph and CLI tests use (``None`` = the shipped one)."""
    value = os.environ.get("SELFHEAL_TEST_CHECKPOINT")
    return Path(value) if value else None


def graph_overrides(tmp: Path) -> list[str]:
    """Config overrides that keep every file a graph test writes under ``tmp``; and the no-person
    rule off (``backup.decide=false``), so that a test forcing every input to the fallback
    (``thresholds.accept=1``) leaves it pending for review whatever the voter says. The tests of the
    rule itself (``test_no_person.py``) switch it back on with the shipped thresholds."""
    items = [f"paths.log_dir={tmp / 'logs'}", f"paths.clarified={tmp / 'clarified.jsonl'}"]
    items.append("backup.decide=false")
    checkpoint = graph_checkpoint()
    return items + ([f"paths.checkpoint={checkpoint}"] if checkpoint else [])


def set_args(overrides: Sequence[str]) -> list[str]:
    """``--set`` options for config overrides."""
    return [arg for item in overrides for arg in ("--set", item)]


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
    """The configured backup models (TF-IDF, VADER, MiniLM embedding, the mpnet voter), loaded once per session."""
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


# --- The CLI: in process (CliRunner), or as a real process where that is the point ---------------


@dataclass
class CliResult:
    """What a ``selfheal`` invocation printed and its exit code (the shape of a finished process)."""

    returncode: int
    stdout: str
    stderr: str


class _ExitCalled(SystemExit):
    """``os._exit`` inside an in-process command (``selfheal run`` leaves that way while loading)."""


def _no_exit(code: int) -> None:
    raise _ExitCalled(code)


def invoke(args: Sequence[str], stdin: str | bytes | None = None) -> CliResult:
    """``selfheal ARGS`` in this process with Typer's ``CliRunner`` (stdin from ``stdin``).

    An exception that escapes the command is printed to ``stderr`` as a traceback with exit code
    1, as the real process would, so "no traceback" assertions mean the same in and out of process.
    ``os._exit`` becomes an exit of the command, never of the test session.
    """
    from typer.testing import CliRunner

    from selfheal.cli import app

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "_exit", _no_exit)
        patch.setenv("NO_COLOR", "1")
        result = CliRunner().invoke(app, list(args), input=stdin, prog_name="selfheal")
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        exc = result.exception
        stderr += "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return CliResult(result.exit_code, result.stdout, stderr)


def model_key(config: Any, classifier_flags: tuple[bool, bool, bool] | None = None) -> tuple:
    """What decides which models a config loads (checkpoint, classifier options, backups)."""
    from selfheal.model.checkpoint import resolve_checkpoint

    flags = classifier_flags or (
        config.calibration.temperature,
        config.embedder.enabled,
        config.knowability.enabled,
    )
    checkpoint = resolve_checkpoint(config.paths.checkpoint).resolve()
    backups = (tuple(config.backup.models), config.backup.zero_shot_model)
    return (checkpoint, *flags, config.model.runtime, *backups)


def shared_services(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Any], Any]:
    """A ``make_services`` that hands the session's models to a command whose config would load
    the same ones; any other config (another checkpoint, backups, options) loads its own."""
    from selfheal.config import load_config
    from selfheal.graph.services import Services

    session_config = load_config(REPO / "config.yaml", graph_overrides(tmp_path))
    # `classifier` is Classifier.load(checkpoint) with its defaults: temperature, embedder, knowability
    shared = model_key(session_config, classifier_flags=(True, True, True))

    def make_services(config: Any) -> Any:
        try:
            same = model_key(config) == shared
        except Exception:  # the command reports a bad checkpoint itself
            same = False
        if not same:
            return Services(config)
        classifier = request.getfixturevalue("classifier")
        return Services(config, classifier=classifier, backups=request.getfixturevalue("backup_ensemble"))

    return make_services


@pytest.fixture
def selfheal_cli(tmp_path, monkeypatch, request) -> Callable[..., CliResult]:
    """``selfheal_cli(*args, stdin=None)``: the CLI in process, cwd ``tmp_path``, sharing the
    session's models (see :func:`invoke`); no options are added."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("selfheal.cli.common.make_services", shared_services(request, tmp_path))

    def run(*args: str, stdin: str | bytes | None = None) -> CliResult:
        return invoke(args, stdin)

    return run


class InProcessCli:
    """``cli(COMMAND, *args, stdin=None, check=False)``: ``selfheal COMMAND`` in process with every
    file under the test's ``tmp_path`` (:func:`graph_overrides` go right after the command, so the
    test's own ``--set`` wins).

    ``cli.args()`` and ``cli.env`` are the same overrides and environment for a real process
    (``selfheal_argv``), for the tests where a terminal or a second process is the point.
    """

    def __init__(self, tmp_path: Path, run: Callable[..., CliResult]) -> None:
        self.tmp_path = tmp_path
        self._run = run
        self.env = process_env()

    def args(self) -> list[str]:
        """``--set`` options keeping every file under ``tmp_path``."""
        return set_args(graph_overrides(self.tmp_path))

    def __call__(self, *args: str, stdin: str | bytes | None = None, check: bool = False) -> CliResult:
        command = list(args[:1])
        if args and not args[0].startswith("-") and args[0] != "graph":  # before the test's own --set
            command += self.args()
        result = self._run(*command, *args[1:], stdin=stdin)
        if check:
            assert result.returncode == 0, result.stderr
        return result


@pytest.fixture
def cli(tmp_path, selfheal_cli) -> InProcessCli:
    """The CLI in process with its files under ``tmp_path`` (see :class:`InProcessCli`)."""
    return InProcessCli(tmp_path, selfheal_cli)


def selfheal_argv(*args: str) -> list[str]:
    """The real ``selfheal`` command as a new process: this interpreter, ``-m selfheal``.

    For tests where a separate process is the point (a terminal, a kill, concurrency, import
    cost); run it with :func:`process_env` so it imports this source tree.
    """
    return [sys.executable, "-m", "selfheal", *args]


def close_terminal(child: Any) -> int | None:
    """Close a pexpect child whose output has ended and return its exit status (``-N`` if signal
    ``N`` killed it).

    Waits for the process itself to exit first: its terminal can close while it is still
    flushing files and tearing down threads, and ``close()`` alone would then kill it
    (``exitstatus`` None) on a slow machine.
    """
    if child.isalive():
        child.wait()
    child.close()
    return child.exitstatus if child.exitstatus is not None else -child.signalstatus  # -N: signal N


def process_env(**extra: str) -> dict[str, str]:
    """The environment of a real ``selfheal`` process: this one's, offline, no colours, with the
    source tree these tests import first on ``PYTHONPATH``."""
    path = [str(SRC), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = dict(os.environ, NO_COLOR="1", TERM="dumb", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path))
    env.update(extra)
    return env


def sklearn_tfidf(directory: Path) -> Any:
    """A checkpoint's TF-IDF backup rebuilt as scikit-learn objects (the reference its numpy
    predictions are checked against): ``.predict_proba(texts)``."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from selfheal.model.checkpoint import TFIDF_FILE, read_json_gz

    payload = read_json_gz(Path(directory) / TFIDF_FILE)
    vectorizer = TfidfVectorizer(
        ngram_range=tuple(payload["ngram_range"]),
        sublinear_tf=payload["sublinear_tf"],
        vocabulary=payload["vocabulary"],
    )
    vectorizer.idf_ = np.asarray(payload["idf"])
    model = LogisticRegression()
    model.coef_ = np.asarray(payload["coef"])
    model.intercept_ = np.asarray(payload["intercept"])
    model.classes_ = np.asarray(payload["classes"])
    return make_pipeline(vectorizer, model)


# --- A real PostgreSQL server (tests/pg.py) ----------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server for the test session (skipped, with the reason, only when
    the binaries are missing or the server cannot start); stopped at the end."""
    import pg

    try:
        server = pg.start()
    except pg.Unavailable as exc:
        pytest.skip(f"PostgreSQL is not available: {exc}")
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres_server) -> str:
    """The URL of a fresh, empty database on the session's PostgreSQL server."""
    return postgres_server.new_database()
