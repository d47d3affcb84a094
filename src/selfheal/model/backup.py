"""Backup models, consulted when the primary model is unsure and no user answers.

* ``tfidf``: TF-IDF (word 1-2 grams) + LogisticRegression, trained on the same train split and
  shipped with the checkpoint as plain JSON (no pickle).
* ``vader``: the VADER sentiment lexicon (offline, rule based); only for a label set that is a
  sentiment polarity (:meth:`~selfheal.labels.LabelSet.polarity`: negative / positive, with or
  without neutral).
* ``embedding``: zero-shot, cosine similarity of the MiniLM sentence embedding to label
  descriptions (:func:`label_descriptions`).
* ``mpnet_top``: all-mpnet-base-v2 with its last layers fine-tuned (LoRA) on the train split
  (:mod:`selfheal.model.top_layers`; ``embedder_top/`` in the checkpoint, ``selfheal train-voter``).
  The only backup that is right well above chance where the primary model is unsure.
* ``zero_shot``: the Hugging Face ``zero-shot-classification`` pipeline over an NLI model, with the
  label names as candidates.

Each backup maps a list of texts to an ``(n, k)`` array of probabilities in the order of the
checkpoint's labels. A backup that cannot serve the label set is skipped with one warning.

:func:`no_person_rule` decides whether their vote may label a request without a person.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from selfheal.config import Config
from selfheal.labels import MOVIE_LABELS, LabelSet
from selfheal.model.checkpoint import TFIDF_FILE, ModelError, read_json_gz, write_json_gz

logger = logging.getLogger(__name__)


class Backup(Protocol):
    """A backup classifier."""

    name: str

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Probabilities, shape ``(len(texts), len(labels))``."""
        ...


class CannotServe(ModelError):
    """A backup cannot vote over this label set (e.g. VADER over labels that are not a polarity)."""


class TfidfBackup:
    """TF-IDF + logistic regression, stored as vocabulary, idf and weights in gzipped JSON.

    Trained with scikit-learn (``TfidfVectorizer`` with word 1-2 grams and sublinear tf,
    ``LogisticRegression``); it predicts with numpy alone, the same arithmetic as scikit-learn
    (its default ``\\b\\w\\w+\\b`` tokens of the lower-cased text, n-grams joined by a space,
    ``1 + log(tf)`` times idf, unit L2 norm, then the linear model), so loading it costs no
    scikit-learn import (about a second of start-up). ``tests/test_backup.py`` checks the two agree.
    """

    name = "tfidf"
    _TOKEN = re.compile(r"(?u)\b\w\w+\b")

    def __init__(self, payload: dict[str, Any], path: Path | None = None) -> None:
        try:
            self.vocabulary: dict[str, int] = {str(t): int(i) for t, i in payload["vocabulary"].items()}
            self.idf = np.asarray(payload["idf"], dtype=np.float64)
            low, high = (int(n) for n in payload["ngram_range"])
            self.ngram_range = (low, high)
            self.sublinear_tf = bool(payload["sublinear_tf"])
            self.coef = np.atleast_2d(np.asarray(payload["coef"], dtype=np.float64))
            self.intercept = np.asarray(payload["intercept"], dtype=np.float64).reshape(-1)
            self.classes = list(payload["classes"])
            if self.coef.shape != (len(self.intercept), len(self.idf)) or not 1 <= low <= high:
                raise ValueError("the weights do not match the vocabulary")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"cannot read {path}: missing or bad {exc} (damaged checkpoint file?)") from None
        self.payload = payload

    @classmethod
    def train(cls, texts: list[str], labels: list[int], seed: int = 0) -> TfidfBackup:
        """Fit the vectorizer and the classifier (multinomial with more than two labels) on
        training texts; ``labels`` are ids ``0..k-1``."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        features = vec.fit_transform(texts)
        clf = LogisticRegression(C=4.0, max_iter=2000, random_state=seed).fit(features, labels)
        return cls(
            {
                "vocabulary": {term: int(i) for term, i in vec.vocabulary_.items()},
                "idf": vec.idf_.tolist(),
                "ngram_range": list(vec.ngram_range),
                "sublinear_tf": vec.sublinear_tf,
                "coef": clf.coef_.tolist(),
                "intercept": clf.intercept_.tolist(),
                "classes": clf.classes_.tolist(),
            }
        )

    def terms(self, text: str) -> list[str]:
        """The word n-grams of ``text`` as scikit-learn's word analyzer makes them."""
        words = self._TOKEN.findall(text.lower())
        low, high = self.ngram_range
        grams = list(words) if low == 1 else []
        for n in range(max(low, 2), min(high, len(words)) + 1):
            grams += [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
        return grams

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The non-zero TF-IDF features of ``text``: (column indices, unit-norm values)."""
        counts: dict[int, int] = {}
        for term in self.terms(text):
            column = self.vocabulary.get(term)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        columns = np.fromiter(counts, dtype=np.int64, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        values = (np.log(tf) + 1.0 if self.sublinear_tf else tf) * self.idf[columns]
        norm = np.sqrt(np.dot(values, values))
        return columns, values / norm if norm > 0 else values

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Class probabilities in label order."""
        scores = np.empty((len(texts), len(self.intercept)))
        for row, text in enumerate(texts):
            columns, values = self.features(text)
            scores[row] = self.coef[:, columns] @ values + self.intercept
        if scores.shape[1] == 1:  # binary: the second class's logit
            positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            return np.stack([1.0 - positive, positive], axis=1)
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return exp / exp.sum(axis=1, keepdims=True)

    def save(self, directory: Path) -> Path:
        """Write the model to ``directory/backup_tfidf.json.gz``."""
        return write_json_gz(Path(directory) / TFIDF_FILE, self.payload)

    @classmethod
    def load(cls, directory: Path) -> TfidfBackup:
        """Read the model from ``backup_tfidf.json.gz``."""
        path = Path(directory) / TFIDF_FILE
        payload = read_json_gz(path)
        if not isinstance(payload, dict):
            raise ModelError(f"cannot read {path}: not a JSON object (damaged checkpoint file?)")
        return cls(payload, path)


# VADER's authors call a compound score above 0.05 positive, below -0.05 negative, else neutral.
VADER_NEUTRAL_BAND = 0.05


def vader_probs(compound: np.ndarray, polarities: Sequence[str]) -> np.ndarray:
    """Probabilities over labels with these ``polarities`` (each negative, neutral or positive)
    from VADER compound scores ``c`` in [-1, 1].

    Without a neutral label (the movie model): P(positive) = (c + 1) / 2, the rest negative.
    With one: a softmax of the logits ``s * (-c, 2b - |c|, c)`` (negative, neutral, positive) with
    ``b`` = 0.05, VADER's own neutral band, so the most probable label is VADER's documented 3-way
    rule, and ``s = ln 2 / (2b)``, so that a text without sentiment words (c = 0) is neutral with
    probability 1/2 (and 1/4 each side), as the binary mapping is 50/50 there. No probability is
    0 or 1: c = 0.3 gives 0.955 to its side. Labels sharing a polarity share its probability.
    """
    from selfheal.model.calibrate import softmax

    c = np.clip(np.asarray(compound, dtype=np.float64), -1.0, 1.0)
    if "neutral" in polarities:
        band = VADER_NEUTRAL_BAND
        scale = math.log(2) / (2 * band)
        probs = softmax(scale * np.stack([-c, 2 * band - np.abs(c), c], axis=-1))
        by = dict(zip(("negative", "neutral", "positive"), probs.T, strict=True))
    else:
        by = {"positive": (c + 1) / 2, "negative": 1 - (c + 1) / 2}
    shares = {p: list(polarities).count(p) for p in by}
    return np.stack([by[p] / shares[p] for p in polarities], axis=1)


class VaderBackup:
    """VADER lexicon: its compound score mapped to the label set's polarities (:func:`vader_probs`)."""

    name = "vader"

    def __init__(self, labels: LabelSet = MOVIE_LABELS) -> None:
        polarity = labels.polarity()
        if polarity is None:
            raise CannotServe(
                f"the vader backup needs sentiment labels (negative / neutral / positive), not {', '.join(labels)}"
            )
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()
        self._polarities = [polarity[name] for name in labels]

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Class probabilities in label order."""
        compound = np.array([self._analyzer.polarity_scores(t)["compound"] for t in texts], dtype=np.float64)
        return vader_probs(compound, self._polarities).reshape(len(texts), len(self._polarities))


# The movie model's label descriptions (its figures were measured with them).
MOVIE_DESCRIPTIONS: dict[str, list[str]] = {
    "Negative": [
        "a negative movie review",
        "this movie was bad, boring and disappointing",
        "I hated this film",
    ],
    "Positive": [
        "a positive movie review",
        "this movie was great, moving and entertaining",
        "I loved this film",
    ],
}
# Any other sentiment label set, whatever the domain.
POLARITY_DESCRIPTIONS: dict[str, list[str]] = {
    "negative": ["a negative text", "this is bad, awful and disappointing", "I hate this"],
    "neutral": ["a neutral, factual text", "a plain statement of fact", "no opinion either way"],
    "positive": ["a positive text", "this is great, wonderful and pleasing", "I love this"],
}


def label_descriptions(labels: LabelSet) -> dict[str, list[str]]:
    """Sentences describing each label, for the embedding zero-shot backup: the movie model's for
    its labels (Negative, Positive), the polarity's for other sentiment labels, else the label
    name itself and "a text about <name>"."""
    if labels == MOVIE_LABELS:
        return {name: MOVIE_DESCRIPTIONS[name] for name in labels}
    polarity = labels.polarity()
    if polarity is not None:
        return {name: POLARITY_DESCRIPTIONS[polarity[name]] for name in labels}
    return {name: [name, f"a text about {name}"] for name in labels}


def zero_shot_runtime(runtime: str) -> str:
    """The runtime the zero-shot MiniLM runs on for ``model.runtime``: fp32 ONNX for ``onnx-int8``
    too (its similarities are not re-fitted to int8 features)."""
    return "onnx" if runtime == "onnx-int8" else runtime


class EmbeddingZeroShotBackup:
    """Cosine similarity of mean-pooled MiniLM embeddings to label descriptions.

    ``scale`` turns the similarity gap into a probability (a softmax temperature of 1/scale). The
    MiniLM runs as a :class:`~selfheal.model.embedder.SentenceEncoder` (its last layer, mean-pooled
    and L2-normalised) on ``runtime``: torch in fp32, or ONNX Runtime fp32 (``onnx`` and
    ``onnx-int8`` alike) from an export in the cache, so the backups import no torch either.
    """

    name = "embedding"

    def __init__(
        self,
        model_path: str,
        labels: LabelSet = MOVIE_LABELS,
        scale: float = 20.0,
        runtime: str = "torch",
        threads: int | None = None,
    ) -> None:
        from selfheal.model.embedder import SentenceEncoder

        self.encoder = SentenceEncoder(
            model_path,
            (-1,),
            precision="fp32",
            max_length=128,
            runtime=zero_shot_runtime(runtime),
            threads=threads,
        )
        self.scale = scale
        descriptions = label_descriptions(labels)
        self._anchors = np.stack([self.embed(descriptions[label]).mean(axis=0) for label in labels])
        self._anchors /= np.linalg.norm(self._anchors, axis=1, keepdims=True)

    def embed(self, texts: list[str]) -> np.ndarray:
        """L2-normalised mean-pooled sentence embeddings."""
        return self.encoder.encode(list(texts))

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Class probabilities in label order."""
        from selfheal.model.calibrate import softmax

        return softmax(self.embed(texts) @ self._anchors.T * self.scale)


class ZeroShotPipelineBackup:
    """The Hugging Face ``zero-shot-classification`` pipeline over an NLI model; the candidates
    are the label names (lower case), in a sentiment hypothesis for a polarity label set."""

    name = "zero_shot"

    def __init__(self, model: str, labels: LabelSet = MOVIE_LABELS) -> None:
        from transformers import pipeline

        self._pipe = pipeline("zero-shot-classification", model=model, device=-1)
        self.candidates = [label.lower() for label in labels]
        self.hypothesis_template = (
            "The sentiment of this text is {}." if labels.polarity() else "This text is about {}."
        )

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Class probabilities in label order."""
        candidates = self.candidates
        rows = []
        for text in texts:
            out = self._pipe(text, candidate_labels=candidates, hypothesis_template=self.hypothesis_template)
            scores = dict(zip(out["labels"], out["scores"], strict=True))
            rows.append([scores[c] for c in candidates])
        return np.asarray(rows, dtype=np.float64).reshape(len(texts), len(candidates))


def rule_passes(
    confidence: np.ndarray, voter_probs: np.ndarray, min_confidence: float, min_voter_prob: float
) -> np.ndarray:
    """Where the no-person rule holds: ``confidence >= min_confidence`` and every column of
    ``voter_probs`` (each voter's probability of the model's label, shape ``(n, voters)``)
    ``>= min_voter_prob``. With no voters, the model's confidence alone decides."""
    confidence = np.asarray(confidence, dtype=np.float64)
    voter_probs = np.asarray(voter_probs, dtype=np.float64).reshape(len(confidence), -1)
    return (confidence >= min_confidence) & np.all(voter_probs >= min_voter_prob, axis=1)


def no_person_rule(
    model_label: str,
    confidence: float,
    models: Mapping[str, Mapping[str, Any]],
    voters: Sequence[str],
    min_confidence: float,
    min_voter_prob: float,
    decide: bool = True,
) -> dict[str, Any]:
    """Whether the backups may label a request without a person, and why (for the log record).

    ``models`` holds each backup's vote (``{name: {label, probs}}``). The rule holds when
    ``decide`` is on, the primary model's ``confidence`` is at least ``min_confidence`` and each
    backup in ``voters`` gives ``model_label`` a probability of at least ``min_voter_prob``
    (:func:`rule_passes`). ``reason`` names the first check that failed (``ok`` when none did).
    """
    probs = {name: (models[name]["probs"][model_label] if name in models else None) for name in voters}
    out: dict[str, Any] = {
        "passed": False,
        "min_confidence": min_confidence,
        "min_voter_prob": min_voter_prob,
        "confidence": round(float(confidence), 6),
        "voters": {name: None if p is None else round(float(p), 6) for name, p in probs.items()},
    }
    if not decide:
        return out | {"reason": "disabled"}
    if not rule_passes(np.array([confidence]), np.zeros((1, 0)), min_confidence, 0.5)[0]:
        return out | {"reason": "model_confidence_low"}  # (a voter-only backup was not even run)
    missing = [name for name, p in probs.items() if p is None]
    if missing:
        return out | {"reason": f"voter_missing:{missing[0]}"}
    for name, p in probs.items():
        if p is not None and p < 0.5:
            return out | {"reason": f"voter_disagrees:{name}"}
        if p is not None and p < min_voter_prob:
            return out | {"reason": f"voter_unsure:{name}"}
    passed = bool(
        rule_passes(np.array([confidence]), np.array([list(probs.values())]), min_confidence, min_voter_prob)[
            0
        ]
    )
    return out | {"passed": passed, "reason": "ok" if passed else "rule_failed"}


# Backups that vote in the no-person rule only: not part of the mean vote, and run only where the
# rule can hold (an unsure input at a confidence of at least backup.min_confidence, rule on).
VOTER_ONLY = frozenset({"mpnet_top"})


def rule_may_hold(decide: bool, min_confidence: float, confidence: float) -> bool:
    """Whether the no-person rule could label an input at this model ``confidence``: a
    voter-only backup's vote is needed only then."""
    return bool(decide) and confidence >= min_confidence


def _result(probs: np.ndarray, labels: LabelSet) -> dict[str, Any]:
    return {
        "label": labels[int(np.argmax(probs))],
        "probs": {label: round(float(p), 6) for label, p in zip(labels, probs, strict=True)},
    }


class BackupEnsemble:
    """The configured backup models; their vote is the mean of their probabilities.

    The labels are the checkpoint's (``labels``, else read from ``checkpoint_dir``; for ``None``
    the configured ``paths.checkpoint``, the shipped one when that is null). A configured backup that cannot serve them is skipped at
    :meth:`load` with one warning, and ``names`` then lists the backups that vote.

    ``states`` gives the primary model's sentence encoder (or ``None``) when the voter is built:
    if it keeps the voter's states, ``mpnet_top`` runs only its top layers on them.
    """

    def __init__(
        self,
        config: Config,
        checkpoint_dir: Path | None = None,
        backups: list[Any] | None = None,
        labels: LabelSet | None = None,
        states: Callable[[], Any] | None = None,
    ):
        self.names: list[str] = [b.name for b in backups] if backups else list(config.backup.models)
        self._config = config
        # the configured checkpoint's labels and TF-IDF model unless another checkpoint is named
        self._checkpoint_dir = checkpoint_dir if checkpoint_dir is not None else config.paths.checkpoint
        self._backups = backups
        self._labels = labels
        self._states = states
        self._lock = threading.Lock()

    @property
    def labels(self) -> LabelSet:
        """The label set the backups vote over."""
        if self._labels is None:
            from selfheal.model.checkpoint import checkpoint_labels

            self._labels = checkpoint_labels(self._checkpoint_dir)
        return self._labels

    def load(self) -> list[Any]:
        """Build the backup models once (TF-IDF from the checkpoint, VADER, MiniLM, NLI)."""
        with self._lock:
            if self._backups is None:
                built = []
                for name in self.names:
                    try:
                        built.append(self._build(name))
                    except CannotServe as exc:
                        logger.warning("backup %s skipped: %s", name, exc)
                if not built:
                    raise ModelError(
                        f"no backup in backup.models ({', '.join(self.names)}) can serve the labels "
                        f"{', '.join(self.labels)}; add tfidf or embedding"
                    )
                self._backups = built
                self.names = [b.name for b in built]
            return self._backups

    def _build(self, name: str) -> Any:
        from selfheal.model.checkpoint import quiet_hf, resolve_base_model, resolve_checkpoint

        if name == "tfidf":
            directory = resolve_checkpoint(self._checkpoint_dir)
            try:
                backup = TfidfBackup.load(directory)
            except (OSError, ValueError, KeyError) as exc:
                raise ModelError(f"cannot load the TF-IDF backup from {directory}: {exc}") from None
            classes = [int(c) for c in backup.classes]
            if classes != list(range(len(self.labels))):
                raise ModelError(
                    f"the TF-IDF backup of {directory} predicts classes {classes}, not the "
                    f"checkpoint's {len(self.labels)} labels (damaged checkpoint?)"
                )
            return backup
        if name == "vader":
            return VaderBackup(self.labels)
        if name == "embedding":
            quiet_hf()
            model = self._config.model
            return EmbeddingZeroShotBackup(
                resolve_base_model(None), self.labels, runtime=model.runtime, threads=model.threads
            )
        if name == "mpnet_top":
            from selfheal.model.embedder import resolve_embedder
            from selfheal.model.top_layers import TopLayersBackup, has_top

            directory = resolve_checkpoint(self._checkpoint_dir)
            if not has_top(directory):
                raise CannotServe(f"{directory} has no fine-tuned top layers (selfheal train-voter)")
            quiet_hf()
            model = self._config.model
            path = resolve_embedder(self._config.embedder.model)
            shared = self._states() if self._states is not None else None
            return TopLayersBackup(
                directory, path, runtime=model.runtime, threads=model.threads, states=shared
            )
        if name == "zero_shot":
            quiet_hf()
            model = self._config.backup.zero_shot_model
            try:
                return ZeroShotPipelineBackup(str(model), self.labels)
            except (OSError, ValueError) as exc:
                raise ModelError(f"cannot load the zero-shot NLI model {model}: {exc}") from None
        raise ModelError(f"unknown backup model {name!r}")

    def predict(self, text: str, voter_needed: bool = True) -> dict[str, Any]:
        """The ensemble's label and probabilities, with each model's own vote (see
        :meth:`predict_many` for ``voter_needed``)."""
        return self.predict_many([text], [voter_needed])[0]

    def predict_many(
        self, texts: list[str], voters_needed: Sequence[bool] | None = None
    ) -> list[dict[str, Any]]:
        """:meth:`predict` for many texts, each backup called once on all of them (a batch).

        A voter-only backup (:data:`VOTER_ONLY`: the fine-tuned mpnet, as costly as the primary
        model's embedder) runs only on the texts whose ``voters_needed`` is true, those where
        the no-person rule can hold (:func:`rule_may_hold`); the others get no vote from it."""
        if not texts:
            return []
        backups = self.load()
        needed = [True] * len(texts) if voters_needed is None else [bool(x) for x in voters_needed]
        if all(b.name in VOTER_ONLY for b in backups):  # no other backup to vote: it always runs
            needed = [True] * len(texts)
        tables: dict[str, dict[int, np.ndarray]] = {}
        for backup in backups:
            rows = [i for i in range(len(texts)) if needed[i]] if backup.name in VOTER_ONLY else None
            if rows == []:
                continue
            chosen = list(texts) if rows is None else [texts[i] for i in rows]
            probs = np.asarray(backup.predict_proba(chosen))
            tables[backup.name] = dict(zip(range(len(texts)) if rows is None else rows, probs, strict=True))
        return [
            self.vote({name: table[i] for name, table in tables.items() if i in table})
            for i in range(len(texts))
        ]

    def vote(self, models: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """The vote of one text from each backup's probabilities (``{name: (k,) array}``): the
        mean of the backups that are not voter-only (:data:`VOTER_ONLY`; all of them if no other
        voted) decides the label; each model's own label and probabilities come with it."""
        members = [p for name, p in models.items() if name not in VOTER_ONLY] or list(models.values())
        mean = np.mean(members, axis=0)
        labels = self.labels
        return {**_result(mean, labels), "models": {name: _result(p, labels) for name, p in models.items()}}
