"""How the two encoders run: threads, length-sorted batches, and the ONNX Runtime backend.

``model.runtime`` picks the backend of both the fine-tuned MiniLM (text -> logits) and the frozen
all-mpnet-base-v2 embedder (text -> the head's features):

- ``torch``: PyTorch, with the LoRA adapter merged into the weights at load time;
- ``onnx``: ONNX Runtime on an fp32 export of the same (merged) networks;
- ``onnx-int8``: ONNX Runtime on the export with dynamic int8 weights (per-channel).

An export is made on first use (or by ``selfheal export-onnx``) into
``$SELFHEAL_CACHE/onnx/<kind>-<runtime>-<key>/``, where the key is a digest of the source weights
and the export settings. It is written into a staging directory and moved into place atomically,
with a stamp (``export.json``: the key, the file's SHA-256, size and mtime) that each load checks
with one ``stat``; a file whose size or mtime changed is hashed again and, if it no longer
matches, exported afresh. A loaded export is never used unchecked.

Threads (``model.threads``): an explicit number wins; ``null`` means ``OMP_NUM_THREADS`` when the
user set it, else the cores this process may run on (``os.sched_getaffinity``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from selfheal.model.checkpoint import ModelError, sha256_file

if TYPE_CHECKING:
    import numpy as np

Runtime = Literal["torch", "onnx", "onnx-int8"]
RUNTIMES: tuple[str, ...] = ("torch", "onnx", "onnx-int8")
ONNX_RUNTIMES: tuple[str, ...] = ("onnx", "onnx-int8")
EXPORT_FORMAT = 1  # bump when the exported graphs change: old exports are then made again
OPSET = 17
MODEL_FILE = "model.onnx"
STAMP_FILE = "export.json"
_DIGESTS_FILE = "digests.json"

T = TypeVar("T")
R = TypeVar("R")
logger = logging.getLogger(__name__)
_EXPORT_LOCK = threading.Lock()


# --- threads ------------------------------------------------------------------------------------


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` elsewhere)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads: int | None) -> int:
    """Intra-op threads: ``threads`` when given, else a valid ``OMP_NUM_THREADS``, else the cores
    available to this process."""
    if threads:
        return int(threads)
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return available_cores()


def apply_threads(threads: int | None) -> int:
    """Resolve the thread count and give it to torch when torch is imported; returns it (ONNX
    Runtime sessions take it as ``intra_op_num_threads``)."""
    n = resolve_threads(threads)
    if "torch" in sys.modules:
        import torch

        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
    return n


# --- length-sorted batches ----------------------------------------------------------------------

MAX_PADDING = 0.1  # a sorted batch ends before its padding exceeds this share of its tokens


def length_batches(
    lengths: Sequence[int], batch_size: int, sort: bool = True, max_padding: float | None = MAX_PADDING
) -> Iterator[np.ndarray]:
    """Indices of the texts in batches of similar length (shortest first), so that each batch is
    padded only to its own longest text; ``sort=False``: in input order (the old path, for the
    benchmarks' baseline).

    A sorted batch ends at ``batch_size`` texts, or earlier where the next text would make its
    padding more than ``max_padding`` of its tokens: a few dozen texts of mixed length (a small
    chunk of ``classify``'s input) are not padded to their longest as one batch. On a CPU a
    padded token costs as much as a real one, and a smaller batch hardly less per token.
    ``max_padding=None``: sorted batches of ``batch_size`` whatever their padding.
    """
    import numpy as np

    if not sort:
        order = np.arange(len(lengths))
        for start in range(0, len(order), batch_size):
            yield order[start : start + batch_size]
        return
    sizes = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(sizes, kind="stable")
    start, real = 0, 0
    for i, index in enumerate(order):
        size = int(sizes[index])
        count = i - start
        full = count == batch_size
        if count and (
            full or (max_padding is not None and size * (count + 1) > (1 + max_padding) * (real + size))
        ):
            yield order[start:i]
            start, real = i, 0
        real += size
    if start < len(order):
        yield order[start:]


def per_call(runtime: str, batch_size: int) -> int:
    """How many texts an encoder on ``runtime`` takes per call: one on ``onnx-int8``.

    Its dynamic quantization finds one scale per activation tensor at run time, over the whole
    batch (padding included), so in a batch a text's logits move with the texts beside it (enough
    to change some labels: ``python scripts/int8_batch_drift.py``). One text a call gives each
    text the answer it gets alone, in ``classify``, ``run``, the server and ``eval`` alike.
    """
    return 1 if runtime == "onnx-int8" else batch_size


def calls_at_once(runtime: str, threads: int) -> int:
    """How many one-text calls of an encoder on ``runtime`` run at once over a batch of texts:
    ``threads`` (the cores, ``model.threads``) on ``onnx-int8``, else one (see :func:`in_order`)."""
    return max(1, threads) if per_call(runtime, 2) == 1 else 1


def in_order(run: Callable[[T], R], items: Iterable[T], workers: int = 1) -> Iterator[R]:
    """``run(item)`` for each item, yielded in the items' order; with ``workers`` > 1, that many
    calls run at once in a thread pool (at most twice as many submitted ahead).

    For the one-text calls of an int8 encoder (:func:`per_call`): a single text's matrices have
    a few dozen rows, too few to keep two cores busy, and ONNX Runtime releases the GIL while it
    runs, so two texts at once on the same session made ``Classifier.predict`` 1.6 times as fast
    as one after the other (``benchmarks/bench_speed.py --only ensemble``, README "Speed"). Each call still sees its one text
    alone, so its answer is the one it gets alone (tested: the same numbers, bit for bit). One
    item (a single request) runs here, in the caller's thread, with no pool."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        yield from map(run, items)
        return
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="selfheal-call") as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(run, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def pad(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """``input_ids`` and ``attention_mask`` (int64, right-padded to the longest row)."""
    import numpy as np

    width = max((len(row) for row in ids), default=0)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return input_ids, mask


class Tokenized:
    """Token ids of texts, computed once: the untruncated length of each (for the "truncated"
    flag) and the ids cut to ``max_length`` the way the tokenizer would cut them."""

    def __init__(self, tokenizer: Any, texts: list[str], max_length: int) -> None:
        full = tokenizer(texts, truncation=False)["input_ids"] if texts else []
        self.lengths = [len(ids) for ids in full]
        if all(n <= max_length for n in self.lengths):
            self.ids: list[list[int]] = full
        elif _cuts_like_tokenizer(tokenizer):  # [CLS] ... [SEP]: keep the head and the last token
            self.ids = [ids if len(ids) <= max_length else ids[: max_length - 1] + ids[-1:] for ids in full]
        else:  # another layout of special tokens: let the tokenizer cut
            self.ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]


def _cuts_like_tokenizer(tokenizer: Any) -> bool:
    """Whether one text becomes ``[first special] tokens [last special]`` (BERT, MPNet): then
    cutting the ids by hand equals the tokenizer's own truncation."""
    cached = getattr(tokenizer, "_selfheal_cuts", None)
    if cached is None:
        specials = set(tokenizer.all_special_ids)
        ids = tokenizer("a b c")["input_ids"]
        cached = (
            tokenizer.num_special_tokens_to_add(pair=False) == 2
            and ids[0] in specials
            and ids[-1] in specials
            and not specials & set(ids[1:-1])
        )
        with contextlib.suppress(AttributeError):
            tokenizer._selfheal_cuts = cached
    return bool(cached)


# --- encoders: torch or ONNX Runtime ------------------------------------------------------------


class TorchEncoder:
    """A torch module mapping ``(input_ids, attention_mask)`` to one array per text.

    ``bf16``: the module runs under CPU autocast to bfloat16 (the embedder's ``precision``), with
    its ``Linear`` weights cast to bfloat16 once, here. Autocast would otherwise cast every fp32
    weight again on every call, a copy of the whole model per batch; the numbers are the same
    to the bit (autocast casts a linear layer's input, weight and bias to bfloat16 either way),
    and the layer norms and the residual stream stay in fp32 as before (tested). The module is
    changed in place.
    """

    def __init__(
        self,
        module: Any,
        output: Callable[[Any], Any] | None = None,
        bf16: bool = False,
        device: str = "cpu",
    ) -> None:
        import torch

        self.module = module
        self._torch = torch
        self._output = output or (lambda out: out)
        self.bf16 = bf16
        self.device = device
        if bf16 and torch.device(device).type == "cpu":  # the autocast below is the CPU's
            for layer in module.modules():
                if isinstance(layer, torch.nn.Linear):
                    layer.to(torch.bfloat16)

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """The module's (first) output for one padded batch, as float32 numpy."""
        return self.run_all(input_ids, attention_mask)[0]

    def run_all(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> list[np.ndarray]:
        """Every output of the module (one, or each item of the tuple it returns), as float32 numpy."""
        torch = self._torch
        ids = torch.from_numpy(input_ids).to(self.device)
        mask = torch.from_numpy(attention_mask).to(self.device)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            out = self._output(self.module(input_ids=ids, attention_mask=mask))
        outputs = out if isinstance(out, tuple) else (out,)
        return [o.float().cpu().numpy() for o in outputs]


class OnnxEncoder:
    """An ONNX Runtime session over an exported encoder (CPU, ``threads`` intra-op threads).

    Its threads sleep when idle instead of spinning: a request runs two or three sessions one after
    the other (the MiniLM, the embedder, a backup), and the threads of one still spinning for work
    took the cores from the next: one full-ensemble request took 76 ms with spinning and 35 ms
    without (``benchmarks/bench_speed.py --only request``, README "Speed").

    ``fuse=False`` keeps ONNX Runtime to its basic graph optimizations, without operator fusion
    (for graphs a fusion would compute wrongly: ``scripts/embedder_int8_trials.py --per-token``).
    """

    def __init__(self, path: Path, threads: int, fuse: bool = True) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        levels = ort.GraphOptimizationLevel
        options.graph_optimization_level = levels.ORT_ENABLE_ALL if fuse else levels.ORT_ENABLE_BASIC
        options.log_severity_level = 3  # errors only
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # see the docstring
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail / InvalidGraph / RuntimeError
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelError(f"cannot load the ONNX export {path}: {reason}") from None
        self.path = Path(path)
        self._outputs = [o.name for o in self.session.get_outputs()]
        self._inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """The exported graph's (first) output for one padded batch."""
        return self.run_all(input_ids, attention_mask)[0]

    def run_all(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Every output of the graph for its inputs in export order (``input_ids`` and
        ``attention_mask`` for an encoder)."""
        return self.session.run(self._outputs, dict(zip(self._inputs, inputs, strict=True)))


def logits_module(model: Any) -> Any:
    """A module returning ``model(...).logits`` (the exported graph of the classifier)."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    return Logits().eval()


def features_module(model: Any, layers: Sequence[int], states_after: int | None = None) -> Any:
    """A module returning the embedder's features: the mean-pooled, L2-normalised hidden states of
    ``layers`` (1-based), concatenated (what :class:`~selfheal.model.embedder.SentenceEncoder`
    computes, and the embedding head reads). With ``states_after`` it returns ``(features, the
    hidden states after that layer)``: what the no-person voter's own top layers start from."""
    import torch

    chosen = tuple(int(layer) for layer in layers)

    class Features(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.model(
                input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
            ).hidden_states
            mask = attention_mask.unsqueeze(-1).float()
            count = mask.sum(1).clamp(min=1e-9)
            pooled = [
                torch.nn.functional.normalize((hidden[i].float() * mask).sum(1) / count, dim=-1)
                for i in chosen
            ]
            features = torch.cat(pooled, dim=-1)
            if states_after is None:
                return features
            return features, hidden[states_after]

    return Features().eval()


# --- the export cache ---------------------------------------------------------------------------


def onnx_cache_dir() -> Path:
    """``$SELFHEAL_CACHE/onnx`` (default ``~/.cache/selfheal/onnx``)."""
    from selfheal.model.embedder import cache_dir

    return cache_dir() / "onnx"


def file_digest(path: Path) -> str:
    """SHA-256 of a source file, remembered in the cache by path, size and mtime (one ``stat`` on
    later loads; a changed file is hashed again)."""
    path = Path(path).resolve()
    st = path.stat()
    memo_path = onnx_cache_dir() / _DIGESTS_FILE
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
        if not isinstance(memo, dict):
            memo = {}
    except (OSError, ValueError):
        memo = {}
    entry = memo.get(str(path))
    if (
        isinstance(entry, dict)
        and entry.get("size") == st.st_size
        and entry.get("mtime_ns") == st.st_mtime_ns
    ):
        return str(entry["sha256"])
    sha = sha256_file(path)
    memo[str(path)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}
    with contextlib.suppress(OSError):  # best effort: a read-only cache only costs a hash per load
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".digests-", dir=memo_path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(memo, fh)
        os.replace(tmp, memo_path)
    return sha


def export_key(kind: str, runtime: str, sources: Sequence[Path], settings: dict[str, Any]) -> dict[str, Any]:
    """What an export is made from: the digests of its source files and the export settings."""
    from importlib.metadata import version

    return {
        "format": EXPORT_FORMAT,
        "kind": kind,
        "runtime": runtime,
        "opset": OPSET,
        "torch": version("torch"),
        "onnxruntime": version("onnxruntime"),
        "sources": {Path(p).name: file_digest(Path(p)) for p in sources},
        "settings": settings,
    }


def _key_digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def export_dir(key: dict[str, Any]) -> Path:
    """The cache directory of the export made from ``key``."""
    return onnx_cache_dir() / f"{key['kind']}-{key['runtime']}-{_key_digest(key)}"


def _stamp(path: Path, sha: str, key: dict[str, Any]) -> dict[str, Any]:
    st = path.stat()
    return {"key": key, "sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def verified_export(directory: Path, key: dict[str, Any]) -> bool:
    """Whether ``directory`` holds the export of ``key``, unchanged since it was written: one
    ``stat`` when the stamp agrees, a full hash (and a new stamp) when size or mtime differ."""
    model = directory / MODEL_FILE
    try:
        stamp = json.loads((directory / STAMP_FILE).read_text(encoding="utf-8"))
        if not isinstance(stamp, dict) or stamp.get("key") != key:
            return False
        st = model.stat()
        if stamp.get("size") == st.st_size and stamp.get("mtime_ns") == st.st_mtime_ns:
            return True
        if sha256_file(model) != stamp.get("sha256"):
            return False
    except (OSError, ValueError):
        return False
    with contextlib.suppress(OSError):
        _write_json(directory / STAMP_FILE, _stamp(model, str(stamp["sha256"]), key))
    return True


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    os.replace(tmp, path)


ENCODER_INPUTS: tuple[str, ...] = ("input_ids", "attention_mask")


def export_module(
    module: Any,
    path: Path,
    example: tuple[np.ndarray, ...],
    outputs: Sequence[str],
    inputs: Sequence[str] = ENCODER_INPUTS,
) -> None:
    """``torch.onnx.export`` (the TorchScript exporter) with dynamic batch and sequence axes: every
    input's first two axes, each output's first, and its second too for an output named
    ``hidden`` (per-token states)."""
    import warnings

    import torch

    tensors = tuple(torch.from_numpy(a) for a in example)
    axes: dict[str, dict[int, str]] = {name: {0: "batch", 1: "sequence"} for name in inputs}
    for name in outputs:
        axes[name] = {0: "batch", 1: "sequence"} if name == "hidden" else {0: "batch"}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings of the legacy exporter
        torch.onnx.export(
            module,
            tensors,
            str(path),
            dynamo=False,
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
        )


FP32_RULES: tuple[str, ...] = ("activation-matmuls", "down-projections")


def fp32_matmuls(source: Path, rules: Sequence[str]) -> list[str]:
    """The MatMul nodes of the ONNX file ``source`` that :func:`quantize` is to keep in fp32 by ``rules``.

    - ``activation-matmuls``: a MatMul with no weight input (attention's query x key and
      probabilities x value); on mpnet, keeping these in fp32 changed neither the features nor
      the speed (``scripts/embedder_int8_trials.py``), so it is kept as the safer choice;
    - ``down-projections``: a weight of shape ``(in, out)`` with ``in > out`` (the feed-forward
      output projection, 3072 -> 768 in a base model), whose inputs, after GELU, have the outliers
      a per-tensor uint8 scale cannot hold.
    """
    import onnx

    unknown = sorted(set(rules) - set(FP32_RULES))
    if unknown:
        raise ValueError(f"unknown fp32 rule(s) {unknown}; known: {', '.join(FP32_RULES)}")
    graph = onnx.load(str(source), load_external_data=False).graph
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    keep = []
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        weight = shapes.get(node.input[1])
        if weight is None:
            if "activation-matmuls" in rules:
                keep.append(node.name)
        elif "down-projections" in rules and len(weight) == 2 and weight[0] > weight[1]:
            keep.append(node.name)
    return keep


def quantize(source: Path, target: Path, keep_fp32: Sequence[str] = ()) -> None:
    """Dynamic int8 weights, one scale per output channel (keeps 99.6% argmax agreement on the
    shipped MiniLM, against 96.7% with one scale per tensor); the MatMul nodes named in
    ``keep_fp32`` (see :func:`fp32_matmuls`) stay in fp32."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a pre-processing hint at WARNING
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=list(keep_fp32),
        )
    finally:
        root.setLevel(level)


def cached_export(
    key: dict[str, Any],
    build: Callable[[], Any],
    example: tuple[np.ndarray, ...],
    output: str | Sequence[str],
    force: bool = False,
    inputs: Sequence[str] = ENCODER_INPUTS,
) -> Path:
    """The verified ONNX file of ``key`` in the cache, exported now (``build()`` gives the torch
    module; ``inputs`` and ``output`` name its inputs and outputs) when it is missing, damaged or
    made from other weights or settings. Raises :class:`ModelError` (one line) when it cannot be
    written."""
    target = export_dir(key)
    if not force and verified_export(target, key):
        return target / MODEL_FILE
    logger.info("exporting the %s to ONNX (%s) into %s", key["kind"], key["runtime"], target)
    staging: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        fp32 = staging / ("fp32.onnx" if key["runtime"] == "onnx-int8" else MODEL_FILE)
        with _EXPORT_LOCK:  # the two encoders load in two threads; the exporter is not thread-safe
            export_module(build(), fp32, example, [output] if isinstance(output, str) else output, inputs)
            if key["runtime"] == "onnx-int8":
                rules = key["settings"].get("fp32_matmuls", ())
                quantize(fp32, staging / MODEL_FILE, fp32_matmuls(fp32, rules) if rules else ())
                fp32.unlink()
        model = staging / MODEL_FILE
        _write_json(staging / STAMP_FILE, _stamp(model, sha256_file(model), key))
        if not force and verified_export(target, key):  # another process finished it meanwhile
            return target / MODEL_FILE
        if target.exists() or target.is_symlink():  # damaged: replace it
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
        try:
            os.replace(staging, target)
        except OSError:  # another process put a complete export there first
            if not verified_export(target, key):
                raise
    except ModelError:
        raise
    except Exception as exc:  # OSError, the exporter's and the quantizer's own errors
        reason = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ModelError(
            f"cannot export the {key['kind']} to ONNX in {target.parent}: {reason} "
            "(set SELFHEAL_CACHE to a writable directory, or model.runtime=torch)"
        ) from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return target / MODEL_FILE
