"""What the graph's nodes use, built once and injected: the classifier, the backups, the log
writer, and the label set of the checkpoint.

Models load lazily on first use (thread-safe), so ``selfheal review`` never loads torch and
``selfheal run`` can load them in a background thread while the user types
(:meth:`Services.warm_up`). Tests and the evaluation pass their own ``classifier`` / ``backups``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from selfheal.config import Config
from selfheal.labels import LabelSet
from selfheal.logs.decisions import LogWriter
from selfheal.model.backup import BackupEnsemble
from selfheal.model.checkpoint import quiet_hf


class Predictor(Protocol):
    """The primary model (``selfheal.model.classifier.Classifier`` or a stand-in)."""

    def predict(self, texts: list[str]) -> list[Any]:
        """One prediction (``label``, ``probs``, ``confidence``, ``truncated``) per text."""
        ...


class BackupPredictor(Protocol):
    """The backup models as one voter."""

    names: list[str]

    def predict(self, text: str, voter_needed: bool = True) -> dict[str, Any]:
        """``{label, probs, models: {name: {label, probs}}}`` for one text (``voter_needed``:
        whether the voter-only backups must vote, see ``BackupEnsemble.predict_many``)."""
        ...

    def predict_many(
        self, texts: list[str], voters_needed: Sequence[bool] | None = None
    ) -> list[dict[str, Any]]:
        """:meth:`predict` for many texts at once (one batch per backup)."""
        ...


class Services:
    """The classifier, the backups, the log writer and the labels of one process."""

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
        self.backups: BackupPredictor = backups or BackupEnsemble(
            config, config.paths.checkpoint, states=lambda: getattr(self.classifier, "voter_states", None)
        )
        self._classifier = classifier
        self._labels: LabelSet | None = None
        self._lock = threading.Lock()

    @property
    def labels(self) -> LabelSet:
        """The labels the classifier predicts: its ``.labels`` if it is loaded (or injected) and
        has them, else those stored in the configured checkpoint (``paths.checkpoint``), read
        without loading any model (so ``selfheal review`` never imports torch)."""
        if self._labels is None:
            found = getattr(self._classifier, "labels", None)
            if found is None:
                from selfheal.model.checkpoint import checkpoint_labels

                found = checkpoint_labels(self.config.paths.checkpoint)
            self._labels = found if isinstance(found, LabelSet) else LabelSet.of(list(found))
        return self._labels

    def labels_for(self, state: Mapping[str, Any]) -> LabelSet:
        """The labels of one request: those its inference gave probabilities for (in order), so a
        request is asked and reviewed in its own labels even by a process configured with another
        checkpoint; :attr:`labels` when the state has none."""
        probs = (state.get("inference") or {}).get("probs")
        if isinstance(probs, Mapping) and len(probs) >= 2:
            try:
                return LabelSet.of([str(name) for name in probs])
            except ValueError:
                pass
        return self.labels

    @property
    def classifier(self) -> Predictor:
        """The primary model, loaded on first use."""
        with self._lock:
            if self._classifier is None:
                from selfheal.model.classifier import Classifier

                quiet_hf()
                self._classifier = Classifier.from_config(self.config)
            return self._classifier

    def warm_up(self) -> None:
        """Load every model now (``selfheal run`` calls this in a background thread)."""
        _ = self.classifier
        if isinstance(self.backups, BackupEnsemble):
            self.backups.load()
