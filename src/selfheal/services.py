"""What the graph's nodes use, built once and injected: the classifier, the backups, the log writer.

Models load lazily on first use (thread-safe), so ``selfheal review`` never loads torch and
``selfheal run`` can load them in a background thread while the user types
(:meth:`Services.warm_up`). Tests and the evaluation pass their own ``classifier`` / ``backups``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from selfheal.config import Config
from selfheal.labels import LABELS
from selfheal.logs import LogWriter


class Predictor(Protocol):
    """The primary model (``selfheal.model.classifier.Classifier`` or a stand-in)."""

    def predict(self, texts: list[str]) -> list[Any]:
        """One prediction (``label``, ``probs``, ``confidence``, ``truncated``) per text."""
        ...


class BackupPredictor(Protocol):
    """The backup models as one voter."""

    names: list[str]

    def predict(self, text: str) -> dict[str, Any]:
        """``{label, probs, models: {name: {label, probs}}}`` for one text."""
        ...


def quiet_hf() -> None:
    """No progress bars or advisory warnings from transformers while a person is typing."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _result(probs: np.ndarray) -> dict[str, Any]:
    return {
        "label": LABELS[int(np.argmax(probs))],
        "probs": {label: round(float(p), 6) for label, p in zip(LABELS, probs, strict=True)},
    }


class BackupEnsemble:
    """The configured backup models; their vote is the mean of their probabilities."""

    def __init__(self, config: Config, checkpoint_dir: Path | None = None, backups: list[Any] | None = None):
        self.names: list[str] = [b.name for b in backups] if backups else list(config.backup.models)
        self._config = config
        self._checkpoint_dir = checkpoint_dir
        self._backups = backups
        self._lock = threading.Lock()

    def load(self) -> list[Any]:
        """Build the backup models once (TF-IDF from the checkpoint, VADER, MiniLM, NLI)."""
        with self._lock:
            if self._backups is None:
                self._backups = [self._build(name) for name in self.names]
            return self._backups

    def _build(self, name: str) -> Any:
        from selfheal.model import backup
        from selfheal.model.checkpoint import ModelError, resolve_base_model, resolve_checkpoint

        if name == "tfidf":
            directory = resolve_checkpoint(self._checkpoint_dir)
            try:
                return backup.TfidfBackup.load(directory)
            except (OSError, ValueError, KeyError) as exc:
                raise ModelError(f"cannot load the TF-IDF backup from {directory}: {exc}") from None
        if name == "vader":
            return backup.VaderBackup()
        if name == "embedding":
            quiet_hf()
            return backup.EmbeddingZeroShotBackup(resolve_base_model(None))
        if name == "zero_shot":
            quiet_hf()
            model = self._config.backup.zero_shot_model
            try:
                return backup.ZeroShotPipelineBackup(str(model))
            except (OSError, ValueError) as exc:
                raise ModelError(f"cannot load the zero-shot NLI model {model}: {exc}") from None
        raise ModelError(f"unknown backup model {name!r}")

    def predict(self, text: str) -> dict[str, Any]:
        """The ensemble's label and probabilities, with each model's own vote."""
        models = {b.name: np.asarray(b.predict_proba([text]))[0] for b in self.load()}
        mean = np.mean(list(models.values()), axis=0)
        return {**_result(mean), "models": {name: _result(p) for name, p in models.items()}}


class Services:
    """The classifier, the backups and the log writer of one process."""

    def __init__(
        self,
        config: Config,
        *,
        classifier: Predictor | None = None,
        backups: BackupPredictor | None = None,
        log: LogWriter | None = None,
    ) -> None:
        self.config = config
        self.log = log or LogWriter(config)
        self.backups: BackupPredictor = backups or BackupEnsemble(config, config.paths.checkpoint)
        self._classifier = classifier
        self._lock = threading.Lock()

    @property
    def classifier(self) -> Predictor:
        """The primary model, loaded on first use."""
        with self._lock:
            if self._classifier is None:
                from selfheal.model.classifier import Classifier

                quiet_hf()
                self._classifier = Classifier.load(
                    self.config.paths.checkpoint,
                    use_temperature=self.config.calibration.temperature,
                    use_embedder=self.config.embedder.enabled,
                    use_knowability=self.config.knowability.enabled,
                )
            return self._classifier

    def warm_up(self) -> None:
        """Load every model now (``selfheal run`` calls this in a background thread)."""
        _ = self.classifier
        if isinstance(self.backups, BackupEnsemble):
            self.backups.load()
