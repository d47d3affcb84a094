"""Inference with a trained checkpoint: text -> label, probabilities, confidence.

The labels are the checkpoint's (``labels`` in its ``selfheal.json``; the movie model's
Negative / Positive for a checkpoint that does not store them), in the order of the model's outputs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selfheal.labels import LabelSet
from selfheal.model.backup import TfidfBackup
from selfheal.model.calibrate import softmax
from selfheal.model.checkpoint import (
    FULL_WEIGHTS_FILE,
    ModelError,
    labels_of,
    read_meta,
    resolve_base_model,
    resolve_checkpoint,
)
from selfheal.model.ensemble import combine_all

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """One model decision: the label, per-label probabilities and the max probability."""

    label: str
    probs: dict[str, float]
    confidence: float
    truncated: bool = False
    knowability: dict[str, Any] | None = None  # the knowability scores (selfheal.model.knowability)


def build_model(base_path: str, pooling: str, labels: LabelSet, dropout: float = 0.1) -> Any:
    """The un-adapted :class:`SentimentModel` over a base encoder, one output per label (the
    encoder's config carries ``id2label`` / ``label2id``)."""
    from transformers import AutoModel

    from selfheal.model.network import SentimentModel

    encoder = AutoModel.from_pretrained(base_path)
    encoder.config.id2label = labels.id2label
    encoder.config.label2id = labels.label2id
    return SentimentModel(encoder, num_labels=len(labels), pooling=pooling, dropout=dropout)  # type: ignore[arg-type]


class Classifier:
    """A LoRA checkpoint loaded for CPU inference, with optional temperature scaling.

    The checkpoint's ensemble members (TF-IDF, the frozen sentence embedder) are loaded with it.
    Without the embedder (``use_embedder=False``, or its weights are not installed) the LoRA +
    TF-IDF ensemble fitted without it is used, with its own weight and temperature.
    """

    def __init__(
        self,
        directory: Path,
        use_temperature: bool = True,
        device: str = "cpu",
        use_embedder: bool = True,
        use_knowability: bool = True,
    ) -> None:
        import torch
        from peft import PeftModel
        from transformers import AutoTokenizer

        self.directory = Path(directory)
        self.meta = read_meta(self.directory)
        self.labels: LabelSet = labels_of(self.meta, self.directory)
        self.max_length: int = int(self.meta["max_length"])
        self.device = device
        base = resolve_base_model(self.meta.get("base_model"))
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.directory))
            model = build_model(base, self.meta["pooling"], self.labels)
            if self.meta.get("method", "lora") == "full":
                from safetensors.torch import load_model

                load_model(model, str(self.directory / FULL_WEIGHTS_FILE))
            else:
                model = PeftModel.from_pretrained(model, str(self.directory))
            self.model = model.to(device).eval()
        except ModelError:
            raise
        except Exception as exc:  # OSError, ValueError, safetensors' and tokenizers' own errors...
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelError(f"cannot load checkpoint {self.directory}: {reason}") from None
        self._torch = torch
        # The other members of the log-linear ensemble (see selfheal.model.ensemble), if any.
        self._embedder = self._load_embedder() if use_embedder else None
        # Without the embedder: the LoRA + TF-IDF fit stored beside it; a checkpoint trained without
        # one stores null there, and its own weight and temperature are that fit.
        combo = self.meta if self._embedder is not None else (self.meta.get("without_embedder") or self.meta)
        self.fitted_temperature: float = float(combo.get("temperature", 1.0))
        self.temperature: float = self.fitted_temperature if use_temperature else 1.0
        self.tfidf_weight: float = float(combo.get("tfidf_weight", 0.0))
        self.embedder_weight: float = float(self.meta.get("embedder_weight", 0.0)) if self._embedder else 0.0
        self._tfidf = TfidfBackup.load(self.directory) if self.tfidf_weight > 0 else None
        self.knowability = self._load_knowability() if use_knowability else None

    def _load_knowability(self) -> Any:
        """The checkpoint's knowability detector, or ``None`` (logged) when it has none."""
        from selfheal.model.knowability import KNOWABILITY_FILE, KnowabilityDetector

        if not (self.directory / KNOWABILITY_FILE).exists():
            logger.warning(
                "no %s in %s: the input-knowability check is off (fit it with scripts/fit_knowability.py)",
                KNOWABILITY_FILE,
                self.directory,
            )
            return None
        try:
            return KnowabilityDetector.load(self.directory)
        except ModelError as exc:
            logger.warning("the input-knowability check is off (%s)", exc)
            return None

    def _load_embedder(self) -> Any:
        """The checkpoint's embedder member, or ``None`` (logged) when it has none or it is missing."""
        if float(self.meta.get("embedder_weight", 0.0)) <= 0:
            return None
        from selfheal.model.embedder import (
            EmbedderMember,
            EmbedderNotInstalled,
            EmbeddingHead,
            SentenceEncoder,
            resolve_embedder,
        )

        head = EmbeddingHead.load(self.directory)  # a damaged head is an error, not a fallback
        try:
            path = resolve_embedder(self.meta.get("embedder_model"))
        except EmbedderNotInstalled as exc:
            logger.warning("ensemble without the sentence embedder (%s)", exc)
            return None
        encoder = SentenceEncoder(path, head.layers, max_length=self.max_length)
        return EmbedderMember(encoder, head)

    @property
    def members(self) -> dict[str, float]:
        """The ensemble members in use and their weights (the LoRA model has weight 1)."""
        members = {"lora": 1.0}
        if self._tfidf is not None:
            members["tfidf"] = self.tfidf_weight
        if self._embedder is not None:
            members["embedder"] = self.embedder_weight
        return members

    @classmethod
    def load(
        cls,
        path: Path | None = None,
        use_temperature: bool = True,
        use_embedder: bool = True,
        use_knowability: bool = True,
    ) -> Classifier:
        """Load the configured checkpoint (the shipped one for ``None``)."""
        return cls(
            resolve_checkpoint(path),
            use_temperature=use_temperature,
            use_embedder=use_embedder,
            use_knowability=use_knowability,
        )

    @property
    def version(self) -> str:
        """A short identifier of the checkpoint (for log records)."""
        return str(self.meta.get("version", self.directory.name))

    def is_truncated(self, text: str) -> bool:
        """Whether ``text`` is longer than the model's input limit (it will be cut)."""
        return bool(self.token_lengths([text])[0] > self.max_length)

    def token_lengths(self, texts: list[str]) -> np.ndarray:
        """Tokens per text before truncation (special tokens included)."""
        if not texts:
            return np.zeros(0, dtype=int)
        return np.array([len(ids) for ids in self.tokenizer(texts, truncation=False)["input_ids"]])

    def logits(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        """Un-scaled logits of the ensemble (LoRA logits plus each member's weighted
        log-probabilities), shape ``(len(texts), len(self.labels))``."""
        return self.logits_and_features(texts, batch_size)[0]

    def logits_and_features(
        self, texts: list[str], batch_size: int = 128
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The ensemble's logits and the sentence embedder's features (``None`` without it), which
        the knowability check reuses at no extra cost."""
        logits = self.encoder_logits(texts, batch_size)
        if not texts:
            return logits, None
        probs, weights, features = [], [], None
        if self._tfidf is not None:
            probs.append(self._tfidf.predict_proba(texts))
            weights.append(self.tfidf_weight)
        if self._embedder is not None:
            features = self._embedder.encoder.encode(texts)
            probs.append(self._embedder.head.predict_proba(features))
            weights.append(self.embedder_weight)
        return combine_all(logits, probs, weights), features

    def knowability_scores(
        self, texts: list[str], features: np.ndarray | None = None
    ) -> list[dict[str, Any]] | None:
        """The knowability signals of each text (``None`` when the checkpoint has no detector);
        ``features`` are the embedder's, computed here when not given."""
        if self.knowability is None:
            return None
        if features is None and self._embedder is not None and texts:
            features = self._embedder.encoder.encode(texts)
        return self.knowability.scores(texts, self.tokenizer, features)

    def encoder_logits(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        """Logits of the fine-tuned transformer alone, shape ``(len(texts), len(self.labels))``."""
        torch = self._torch
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(
                    texts[start : start + batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                out.append(self.model(**batch).logits.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)))

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Temperature-scaled probabilities in the order of :attr:`labels`."""
        return softmax(self.logits(texts), self.temperature)

    def predict(self, texts: list[str]) -> list[Prediction]:
        """One :class:`Prediction` per text, with its knowability scores when the checkpoint has
        a detector."""
        logits, features = self.logits_and_features(texts)
        probs = softmax(logits, self.temperature)
        scores = self.knowability_scores(texts, features) or [None] * len(texts)
        return [
            Prediction(
                label=self.labels[int(row.argmax())],
                probs={label: float(p) for label, p in zip(self.labels, row, strict=True)},
                confidence=float(row.max()),
                truncated=self.is_truncated(text),
                knowability=score,
            )
            for text, row, score in zip(texts, probs, scores, strict=True)
        ]
