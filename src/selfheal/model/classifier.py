"""Inference with a trained checkpoint: text -> label, probabilities, confidence.

The labels are the checkpoint's (``labels`` in its ``selfheal.json``; the movie model's
Negative / Positive for a checkpoint that does not store them), in the order of the model's outputs.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selfheal.labels import LabelSet
from selfheal.model.backup import TfidfBackup
from selfheal.model.calibrate import softmax
from selfheal.model.checkpoint import (
    ADAPTER_CONFIG_FILE,
    ADAPTER_WEIGHTS_FILE,
    FULL_WEIGHTS_FILE,
    ModelError,
    labels_of,
    read_meta,
    resolve_base_model,
    resolve_checkpoint,
)
from selfheal.model.ensemble import combine_all
from selfheal.model.runtime import (
    RUNTIMES,
    OnnxEncoder,
    Tokenized,
    TorchEncoder,
    apply_threads,
    cached_export,
    calls_at_once,
    export_key,
    in_order,
    length_batches,
    logits_module,
    pad,
    per_call,
)

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


def build_checkpoint_model(
    directory: Path, meta: dict[str, Any], labels: LabelSet, merge: bool = True
) -> Any:
    """The checkpoint's torch model in eval mode: full weights, or the base model with the LoRA
    adapter, merged into the weights (``merge``, a plain model: about twice as fast on a CPU) or
    kept as a PEFT wrapper (what training produced, the baseline of the benchmarks)."""
    model = build_model(resolve_base_model(meta.get("base_model")), meta["pooling"], labels)
    if meta.get("method", "lora") == "full":
        from safetensors.torch import load_model

        load_model(model, str(Path(directory) / FULL_WEIGHTS_FILE))
    else:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(directory))
        if merge:
            model = model.merge_and_unload()
    return model.eval()


def classifier_export_key(directory: Path, meta: dict[str, Any], runtime: str) -> dict[str, Any]:
    """What the classifier's ONNX export is made from: the digests of the checkpoint's weights and
    of the base model's, and the settings that shape the network."""
    directory = Path(directory)
    if meta.get("method", "lora") == "full":
        sources = [directory / FULL_WEIGHTS_FILE]
    else:
        sources = [directory / ADAPTER_WEIGHTS_FILE, directory / ADAPTER_CONFIG_FILE]
        base = resolve_base_model(meta.get("base_model"))
        if Path(base).is_dir():  # a Hub id is keyed by its name only
            sources += sorted(
                p
                for p in Path(base).iterdir()
                if p.suffix in (".safetensors", ".bin") or p.name == "config.json"
            )
    settings = {
        "method": meta.get("method", "lora"),
        "base_model": meta.get("base_model"),
        "pooling": meta["pooling"],
        "labels": list(labels_of(meta, directory)),
        "merged": True,
    }
    return export_key("classifier", runtime, sources, settings)


def voter_states_budget(config: Any) -> int:
    """Bytes of embedder states kept for the no-person voter (``backup.voter_states_mb``; 0 when
    ``mpnet_top`` is not among the backups)."""
    if "mpnet_top" not in config.backup.models:
        return 0
    return int(config.backup.voter_states_mb * 2**20)


class Classifier:
    """A LoRA checkpoint loaded for CPU inference, with optional temperature scaling.

    The checkpoint's ensemble members (TF-IDF, the frozen sentence embedder) are loaded with it.
    Without the embedder (``use_embedder=False``, or its weights are not installed) the LoRA +
    TF-IDF ensemble fitted without it is used, with its own weight and temperature.

    ``voter_states``: up to this many bytes of the embedder's per-token states after the layer the
    checkpoint's no-person voter starts from (``embedder_top/``), kept for the voter
    (:attr:`voter_states`); 0 or no voter in the checkpoint: none.
    """

    def __init__(
        self,
        directory: Path,
        use_temperature: bool = True,
        device: str = "cpu",
        use_embedder: bool = True,
        use_knowability: bool = True,
        runtime: str = "torch",
        merge: bool = True,
        threads: int | None = None,
        embedder_int8: bool = False,
        voter_states: int = 0,
    ) -> None:
        from selfheal.model.tokenizer import load_tokenizer

        if runtime not in RUNTIMES:
            raise ModelError(f"model.runtime '{runtime}' is not one of {', '.join(RUNTIMES)}")
        self.directory = Path(directory)
        self.meta = read_meta(self.directory)
        self.labels: LabelSet = labels_of(self.meta, self.directory)
        self.max_length: int = int(self.meta["max_length"])
        self.device = device
        self.runtime = runtime
        self.embedder_int8 = embedder_int8  # embedder.int8: the embedder on int8 too (onnx-int8)
        self.voter_states_budget = int(voter_states)
        self.sort_by_length = True  # False: batches in input order (the benchmarks' baseline)
        self.threads = apply_threads(threads)
        self.model: Any = None  # the torch module (runtime "torch" only)
        if runtime == "torch":  # import before the loading thread starts: transformers' lazy
            import transformers  # module is not safe to import from two threads at once

            _ = transformers.AutoModel
        # The sentence embedder (the larger model) and the small members load in a second thread
        # while this one loads the MiniLM: on two or more cores the first answer comes sooner.
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="selfheal-load")
        embedder = pool.submit(self._load_embedder) if use_embedder else None
        weights = [self.meta, self.meta.get("without_embedder") or {}]
        needs_tfidf = any(float(w.get("tfidf_weight") or 0) > 0 for w in weights)
        tfidf = pool.submit(TfidfBackup.load, self.directory) if needs_tfidf else None
        knowability = pool.submit(self._load_knowability) if use_knowability else None
        pool.shutdown(wait=False)
        try:
            self.tokenizer = load_tokenizer(self.directory)
            if runtime == "torch":
                self.model = build_checkpoint_model(self.directory, self.meta, self.labels, merge).to(device)
                self._encoder: Any = TorchEncoder(self.model, output=lambda out: out.logits, device=device)
            else:
                self._encoder = OnnxEncoder(self.export(runtime), self.threads)
        except ModelError:
            raise
        except Exception as exc:  # OSError, ValueError, safetensors' and tokenizers' own errors...
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelError(f"cannot load checkpoint {self.directory}: {reason}") from None
        finally:  # a failed load still waits for the thread, so no work outlives this call
            wait([f for f in (embedder, tfidf, knowability) if f is not None])
        self._embedder = None if embedder is None else embedder.result()
        tfidf_model = None if tfidf is None else tfidf.result()
        self.knowability = None if knowability is None else knowability.result()
        self.threads = apply_threads(threads)  # torch is imported now if this runtime needs it
        # Without the embedder: the LoRA + TF-IDF fit stored beside it; a checkpoint trained without
        # one stores null there, and its own weight and temperature are that fit. Every runtime
        # uses them: `selfheal eval` gives the same figures with onnx and onnx-int8 (README).
        combo = self.meta if self._embedder is not None else (self.meta.get("without_embedder") or self.meta)
        self.fitted_temperature: float = float(combo.get("temperature", 1.0))
        self.temperature: float = self.fitted_temperature if use_temperature else 1.0
        self.tfidf_weight: float = float(combo.get("tfidf_weight", 0.0))
        self.embedder_weight: float = float(self.meta.get("embedder_weight", 0.0)) if self._embedder else 0.0
        self._tfidf = tfidf_model if self.tfidf_weight > 0 else None

    def export(self, runtime: str, force: bool = False) -> Path:
        """The checkpoint's ONNX export for ``runtime`` (``onnx`` or ``onnx-int8``) in the cache,
        made now from the merged model when missing, damaged or stale (or ``force``)."""
        texts = ["a short text", "a somewhat longer text to export"]
        example = pad(self.tokenizer(texts)["input_ids"], self.tokenizer.pad_token_id or 0)
        return cached_export(
            classifier_export_key(self.directory, self.meta, runtime),
            lambda: logits_module(build_checkpoint_model(self.directory, self.meta, self.labels, merge=True)),
            example,
            "logits",
            force=force,
        )

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
            embedder_runtime,
            resolve_embedder,
        )

        head = EmbeddingHead.load(self.directory)  # a damaged head is an error, not a fallback
        try:
            path = resolve_embedder(self.meta.get("embedder_model"))
        except EmbedderNotInstalled as exc:
            logger.warning("ensemble without the sentence embedder (%s)", exc)
            return None
        encoder = SentenceEncoder(
            path,
            head.layers,
            max_length=self.max_length,
            runtime=embedder_runtime(self.runtime, self.embedder_int8),
            threads=self.threads,
            **self._voter_states_args(path),
        )
        return EmbedderMember(encoder, head)

    def _voter_states_args(self, path: str) -> dict[str, int]:
        """``states_after`` and ``states_budget`` of the embedder when it is to keep the states the
        checkpoint's voter starts from (see the class docstring), else nothing."""
        from selfheal.model.embedder import EncoderConfig
        from selfheal.model.top_layers import top_settings

        settings = top_settings(self.directory) if self.voter_states_budget > 0 else None
        if not settings:
            return {}
        try:
            top = int(settings["recipe"]["top"])
            depth = EncoderConfig.read(path).num_hidden_layers
        except (KeyError, TypeError, ValueError, OSError):
            return {}  # the voter itself says what is wrong with it when it loads
        return {"states_after": depth - top, "states_budget": self.voter_states_budget}

    @property
    def voter_states(self) -> Any:
        """The embedder's sentence encoder if it keeps the voter's states, else ``None``."""
        encoder = getattr(self._embedder, "encoder", None)
        return encoder if getattr(encoder, "states", None) is not None else None

    @property
    def exports(self) -> dict[str, Path]:
        """The ONNX files in use (``classifier``, ``embedder``); empty for the torch runtime."""
        files = {}
        if isinstance(self._encoder, OnnxEncoder):
            files["classifier"] = self._encoder.path
        encoder = getattr(self._embedder, "encoder", None)
        if isinstance(getattr(encoder, "_encoder", None), OnnxEncoder):
            files["embedder"] = encoder._encoder.path  # type: ignore[union-attr]
        return files

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
        runtime: str = "torch",
        merge: bool = True,
        threads: int | None = None,
        embedder_int8: bool = False,
        voter_states: int = 0,
    ) -> Classifier:
        """Load the configured checkpoint (the shipped one for ``None``) for ``runtime`` (``torch``,
        ``onnx``, ``onnx-int8``: both encoders); ``merge=False`` keeps the torch model's LoRA
        adapter unmerged (the slower path of earlier versions); ``threads`` as ``model.threads``;
        ``embedder_int8`` as ``embedder.int8``; ``voter_states`` as in the class docstring."""
        return cls(
            resolve_checkpoint(path),
            use_temperature=use_temperature,
            use_embedder=use_embedder,
            use_knowability=use_knowability,
            runtime=runtime,
            merge=merge,
            threads=threads,
            embedder_int8=embedder_int8,
            voter_states=voter_states,
        )

    @classmethod
    def from_config(cls, config: Any, use_temperature: bool | None = None) -> Classifier:
        """Load the classifier a :class:`~selfheal.config.Config` describes (checkpoint, embedder,
        knowability, runtime, threads)."""
        return cls.load(
            config.paths.checkpoint,
            use_temperature=config.calibration.temperature if use_temperature is None else use_temperature,
            use_embedder=config.embedder.enabled,
            use_knowability=config.knowability.enabled,
            runtime=config.model.runtime,
            threads=config.model.threads,
            embedder_int8=config.embedder.int8,
            voter_states=voter_states_budget(config),
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
        return np.array(Tokenized(self.tokenizer, texts, self.max_length).lengths, dtype=int)

    def logits(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        """Un-scaled logits of the ensemble (LoRA logits plus each member's weighted
        log-probabilities), shape ``(len(texts), len(self.labels))``."""
        return self.logits_and_features(texts, batch_size)[0]

    def logits_and_features(
        self, texts: list[str], batch_size: int = 128, tokens: Tokenized | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The ensemble's logits and the sentence embedder's features (``None`` without it), which
        the knowability check reuses at no extra cost. ``tokens``: the texts already tokenized."""
        logits = self.encoder_logits(texts, batch_size, tokens)
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

    def encoder_logits(
        self, texts: list[str], batch_size: int = 128, tokens: Tokenized | None = None
    ) -> np.ndarray:
        """Logits of the fine-tuned transformer alone, shape ``(len(texts), len(self.labels))``:
        each text tokenized once, batches of similar token length, results in input order."""
        tokens = tokens or Tokenized(self.tokenizer, texts, self.max_length)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        pad_id = self.tokenizer.pad_token_id or 0
        size = per_call(self.runtime, batch_size)  # one text a call on int8: see per_call
        batches = list(length_batches(tokens.lengths, size, self.sort_by_length))
        workers = calls_at_once(self.runtime, self.threads)  # int8: two texts at once, see in_order

        def run(idx: np.ndarray) -> np.ndarray:
            return self._encoder(*pad([tokens.ids[i] for i in idx], pad_id))

        for idx, logits in zip(batches, in_order(run, batches, workers), strict=True):
            out[idx] = logits
        return out

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Temperature-scaled probabilities in the order of :attr:`labels`."""
        return softmax(self.logits(texts), self.temperature)

    def predict(self, texts: list[str]) -> list[Prediction]:
        """One :class:`Prediction` per text, with its knowability scores when the checkpoint has
        a detector."""
        tokens = Tokenized(self.tokenizer, texts, self.max_length)
        logits, features = self.logits_and_features(texts, tokens=tokens)
        probs = softmax(logits, self.temperature)
        scores = self.knowability_scores(texts, features) or [None] * len(texts)
        return [
            Prediction(
                label=self.labels[int(row.argmax())],
                probs={label: float(p) for label, p in zip(self.labels, row, strict=True)},
                confidence=float(row.max()),
                truncated=length > self.max_length,
                knowability=score,
            )
            for row, score, length in zip(probs, scores, tokens.lengths, strict=True)
        ]
