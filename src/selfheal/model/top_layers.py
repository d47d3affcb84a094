"""mpnet's last layers, fine-tuned with LoRA from the frozen embedder's cached states: the
``mpnet_top`` backup, the no-person voter.

The frozen sentence embedder (:mod:`selfheal.model.embedder`) runs every layer of
all-mpnet-base-v2. A copy of its last ``top`` layers, with LoRA on every linear layer, mean
pooling and a linear head, is trained on the hidden states cached after layer ``12 - top``: the
frozen layers run once per text, not once per epoch (``selfheal train-voter``, which writes
``embedder_top/`` into a checkpoint).

At inference (:class:`TopLayersBackup`) the LoRA weights are merged into the copied layers. The
primary model's embedder keeps each text's states after layer ``12 - top``
(:meth:`~selfheal.model.embedder.SentenceEncoder.hidden_states`; int8 ones on its int8 export),
and the voter runs only its own layers and head on them (on torch, or as an fp32 ONNX export of
those layers in the cache): the first ``12 - top`` layers are not run twice. Without such an
encoder (no embedder, ``backup.voter_states_mb: 0``) the whole model (mpnet's first ``12 - top``
layers, then the fine-tuned ones and the head) maps a text to logits, on torch or as an fp32 ONNX
export. It is a backup, not an ensemble member:
it runs only when the primary model is unsure and nobody answers, so an accepted request costs
nothing more. ``scripts/finetuned_member_trial.py`` measured it both ways (README, Results).
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

TOP_DIR = "embedder_top"  # inside a checkpoint: peft's adapter files and top_layers.json
SETTINGS_FILE = "top_layers.json"
MAX_TOKENS = 128  # the voter reads at most this many tokens (as when it was trained)


@dataclass(frozen=True)
class TopLayersRecipe:
    """How the layers are trained: ``top`` layers of the encoder's, LoRA ``rank`` (alpha twice
    that), ``epochs`` over the train split at learning rate ``lr``, shuffled with ``seed``;
    ``batch_size`` texts per cached batch (:func:`cache_states`)."""

    top: int = 4
    rank: int = 16
    epochs: int = 3
    lr: float = 5e-4
    seed: int = 42
    batch_size: int = 32


Batch = tuple[np.ndarray, Any, Any]  # (text indices, hidden states, attention mask)


def cache_states(
    model: Any, tokenizer: Any, texts: list[str], after: int, batch_size: int = 32, max_length: int = 128
) -> list[Batch]:
    """``(indices, hidden states after layer after, attention mask)`` per length-sorted batch."""
    import torch

    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    order = np.argsort([len(x) for x in ids], kind="stable")
    batches = []
    with torch.no_grad():  # not inference_mode: the cached states feed a graph that trains
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = max(len(ids[j]) for j in idx)
            inputs = torch.full((len(idx), width), tokenizer.pad_token_id)
            mask = torch.zeros((len(idx), width))
            for row, j in enumerate(idx):
                inputs[row, : len(ids[j])] = torch.tensor(ids[j])
                mask[row, : len(ids[j])] = 1
            out = model(input_ids=inputs, attention_mask=mask, output_hidden_states=True)
            batches.append((idx, out.hidden_states[after].clone(), mask))
    return batches


def build_top(model: Any, top: int, num_labels: int) -> Any:
    """A module from hidden states after layer ``12 - top`` (and the mask) to logits: copies of
    the encoder's last ``top`` layers, mean pooling and a linear head (dropout 0.1)."""
    import torch

    encoder = model.encoder

    class TopLayers(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = copy.deepcopy(encoder.layer[len(encoder.layer) - top :])
            width = model.config.hidden_size
            self.head = torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Linear(width, num_labels))

        def forward(self, hidden: Any, mask: Any) -> Any:
            bias = encoder.compute_position_bias(hidden)  # frozen: mpnet's relative positions
            additive = (1.0 - mask)[:, None, None, :] * -1e9
            for layer in self.layers:
                hidden = layer(hidden, additive, bias)[0]
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            return self.head(pooled)

    return TopLayers()


def lora_config(recipe: TopLayersRecipe) -> Any:
    """LoRA on every linear layer of the copied layers; the head is trained whole."""
    from peft import LoraConfig

    return LoraConfig(
        r=recipe.rank,
        lora_alpha=2 * recipe.rank,
        lora_dropout=0.1,
        target_modules=["q", "k", "v", "o", "dense"],
        modules_to_save=["head"],
    )


def train_top(
    model: Any,
    batches: list[Batch],
    labels: np.ndarray,
    recipe: TopLayersRecipe,
    num_labels: int,
    log: Any = None,
) -> Any:
    """Train the layers on cached train ``batches`` (AdamW, linear warm-up over 6% of the steps
    then linear decay, gradients clipped at 1); returns the peft module in eval mode."""
    import torch
    from peft import get_peft_model

    torch.manual_seed(recipe.seed)
    top = get_peft_model(build_top(model, recipe.top, num_labels), lora_config(recipe))
    params = [p for p in top.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.01)
    steps = recipe.epochs * len(batches)
    warm = max(1, int(0.06 * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: s / warm if s < warm else max(0.0, (steps - s) / max(1, steps - warm))
    )
    rng = random.Random(recipe.seed)
    for epoch in range(recipe.epochs):
        top.train()
        order = list(range(len(batches)))
        rng.shuffle(order)
        total = 0.0
        for b in order:
            idx, hidden, mask = batches[b]
            loss = torch.nn.functional.cross_entropy(top(hidden, mask), torch.as_tensor(labels[idx]))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            total += loss.item()
        if log is not None:
            log(f"top layers, epoch {epoch + 1}: train loss {total / max(1, len(order)):.4f}")
    return top.eval()


def top_logits(top: Any, batches: list[Batch], n: int) -> np.ndarray:
    """The layers' logits for ``n`` texts cached in ``batches``, in text order."""
    import torch

    out: np.ndarray | None = None
    with torch.no_grad():
        for idx, hidden, mask in batches:
            logits = top(hidden, mask).numpy()
            if out is None:
                out = np.zeros((n, logits.shape[1]), dtype=np.float32)
            out[idx] = logits
    return np.zeros((n, 0), dtype=np.float32) if out is None else out


def save_top(
    top: Any, directory: Path, recipe: TopLayersRecipe, num_labels: int, trained: dict[str, Any] | None = None
) -> None:
    """peft's adapter files (LoRA weights and the head) and the recipe (and ``trained``: what the
    training run measured, for the model card), in ``directory``."""
    directory = Path(directory)
    top.save_pretrained(str(directory))
    (directory / "README.md").unlink(missing_ok=True)  # peft's empty model-card template
    settings = {
        "recipe": asdict(recipe),
        "num_labels": num_labels,
        **({"trained": trained} if trained else {}),
    }
    (directory / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


def load_top(model: Any, directory: Path) -> tuple[Any, TopLayersRecipe]:
    """The layers saved by :func:`save_top` on top of ``model`` (the frozen mpnet), in eval mode."""
    from peft import PeftModel

    directory = Path(directory)
    settings = json.loads((directory / SETTINGS_FILE).read_text(encoding="utf-8"))
    recipe = TopLayersRecipe(**settings["recipe"])
    base = build_top(model, recipe.top, int(settings["num_labels"]))
    return PeftModel.from_pretrained(base, str(directory)).eval(), recipe


def _merged_top(model: Any, directory: Path) -> tuple[Any, TopLayersRecipe]:
    """:func:`load_top` with the LoRA weights merged in (a plain module, no peft at inference)."""
    top, recipe = load_top(model, directory)
    return top.merge_and_unload().eval(), recipe


def voter_module(model: Any, directory: Path) -> Any:
    """A module from ``(input_ids, attention_mask)`` to the voter's logits: ``model``'s first
    ``12 - top`` layers (the frozen mpnet, cut in place), then the merged layers of ``directory``."""
    import torch

    top, recipe = _merged_top(model, directory)
    keep = model.config.num_hidden_layers - recipe.top
    model.encoder.layer = model.encoder.layer[:keep]

    class Voter(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.top = top

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return self.top(hidden, attention_mask.float())

    return Voter().eval()


def head_module(model: Any, directory: Path) -> Any:
    """A module from ``(hidden, attention_mask)`` (the states after layer ``12 - top``, the 0/1
    mask as integers) to the voter's logits: the merged layers of ``directory`` and the head."""
    import torch

    top, _ = _merged_top(model, directory)
    model.requires_grad_(False)
    model.encoder.layer = torch.nn.ModuleList()  # copied into ``top``; only the position bias is used
    model.embeddings = None

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.top = top
            self.encoder = model.encoder  # its relative position bias, a parameter of the export

        def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.top(hidden, attention_mask.float())

    return Head().eval()


def pad_states(states: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(hidden, attention_mask)``: per-text ``(tokens, width)`` states zero-padded to the longest."""
    longest = max(len(x) for x in states)
    hidden = np.zeros((len(states), longest, states[0].shape[1]), dtype=np.float32)
    mask = np.zeros((len(states), longest), dtype=np.int64)
    for row, x in enumerate(states):
        hidden[row, : len(x)] = x
        mask[row, : len(x)] = 1
    return hidden, mask


def top_settings(checkpoint: Path) -> dict[str, Any] | None:
    """``embedder_top/top_layers.json`` of ``checkpoint`` (recipe, labels, what training
    measured), or ``None`` when it has no voter or the file is unreadable."""
    try:
        return json.loads((Path(checkpoint) / TOP_DIR / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def has_top(checkpoint: Path) -> bool:
    """Whether ``checkpoint`` holds trained top layers (``embedder_top/``)."""
    return (Path(checkpoint) / TOP_DIR / SETTINGS_FILE).is_file()


class TopLayersBackup:
    """The fine-tuned top layers of a checkpoint as a backup: ``(n, k)`` probabilities (softmax of
    the logits, uncalibrated; the no-person rule's thresholds are fitted on these).

    ``runtime``: ``torch``, or ONNX Runtime on an fp32 export made into the cache on first use
    (``onnx`` and ``onnx-int8`` alike: its own layers stay fp32).

    ``states``: the primary model's sentence encoder when it keeps the states this voter starts
    from (same weights, ``states_after`` = ``12 - top``, 128 tokens; see :meth:`uses_states`);
    the voter then runs only its top layers on them (:attr:`from_states`). Any other encoder, or
    ``None``, and it runs the whole model from text.
    """

    name = "mpnet_top"

    def __init__(
        self,
        checkpoint: Path,
        encoder_path: str,
        runtime: str = "torch",
        threads: int | None = None,
        force_export: bool = False,
        states: Any = None,
    ) -> None:
        from selfheal.model.checkpoint import ModelError
        from selfheal.model.runtime import (
            OnnxEncoder,
            TorchEncoder,
            apply_threads,
            cached_export,
            export_key,
            pad,
        )
        from selfheal.model.tokenizer import load_tokenizer

        self.directory = Path(checkpoint) / TOP_DIR
        if not has_top(checkpoint):
            raise ModelError(f"no fine-tuned top layers in {checkpoint} (run 'selfheal train-voter')")
        self.encoder_path = encoder_path
        try:
            self.tokenizer = load_tokenizer(encoder_path)
            settings = json.loads((self.directory / SETTINGS_FILE).read_text(encoding="utf-8"))
            self.recipe = TopLayersRecipe(**settings["recipe"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"cannot load the top layers in {self.directory}: {exc}") from None
        self.runtime = "torch" if runtime == "torch" else "onnx"
        self.threads = apply_threads(threads)
        self.export_path: Path | None = None  # the ONNX file (not on torch)
        self.states = states if self.uses_states(states) else None
        self.from_states = self.states is not None
        sources = [*self._sources(), *sorted(self.directory.iterdir())]
        settings = {"recipe": asdict(self.recipe)}
        if self.from_states:  # the top layers and the head only, from the encoder's states
            if self.runtime == "torch":
                self._head: Any = head_module(self._base_model(), self.directory)
            else:
                width = self.states.config.hidden_size
                example = pad_states([np.zeros((5, width), np.float32), np.zeros((7, width), np.float32)])
                key = export_key("mpnet_top_layers", "onnx", sources, settings)
                build = lambda: head_module(self._base_model(), self.directory)  # noqa: E731
                self.export_path = cached_export(
                    key, build, example, "logits", force=force_export, inputs=("hidden", "attention_mask")
                )
                self._head = OnnxEncoder(self.export_path, self.threads)
        elif self.runtime == "torch":
            self._encoder: Any = TorchEncoder(self._module())
        else:
            key = export_key("mpnet_top", "onnx", sources, settings)
            texts = ["a short text", "a somewhat longer text to export"]
            example = pad(self.tokenizer(texts)["input_ids"], self.tokenizer.pad_token_id or 0)
            self.export_path = cached_export(key, self._module, example, "logits", force=force_export)
            self._encoder = OnnxEncoder(self.export_path, self.threads)

    def uses_states(self, encoder: Any) -> bool:
        """Whether ``encoder`` (a sentence encoder, or ``None``) keeps the states this voter
        starts from: the same weights, after layer ``12 - top``, cut at 128 tokens."""
        after = getattr(encoder, "states_after", None)
        if after is None:
            return False
        depth = int(encoder.config.num_hidden_layers)
        same = Path(encoder.path).resolve() == Path(self.encoder_path).resolve()
        return same and after == depth - self.recipe.top and encoder.max_length == MAX_TOKENS

    def _sources(self) -> list[Path]:
        return sorted(
            p
            for p in Path(self.encoder_path).iterdir()
            if p.suffix in (".safetensors", ".bin") or p.name == "config.json"
        )

    def _module(self) -> Any:
        return self._loading(lambda: voter_module(self._base_model(), self.directory))

    def _base_model(self) -> Any:
        from transformers import AutoModel

        return self._loading(lambda: AutoModel.from_pretrained(self.encoder_path).eval())

    def _loading(self, build: Any) -> Any:
        from selfheal.model.checkpoint import ModelError

        try:
            return build()
        except ModelError:
            raise
        except Exception as exc:  # OSError, ValueError, safetensors' and peft's own errors
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelError(f"cannot load the top layers in {self.directory}: {reason}") from None

    def logits(self, texts: list[str]) -> np.ndarray:
        """The voter's logits, shape ``(len(texts), k)``, texts batched by token length."""
        from selfheal.model.runtime import Tokenized, calls_at_once, in_order, length_batches, pad, per_call

        if self.from_states:
            return self._logits_from_states(list(texts))
        tokens = Tokenized(self.tokenizer, list(texts), MAX_TOKENS)
        out: np.ndarray | None = None
        pad_id = self.tokenizer.pad_token_id or 0
        batches = list(length_batches(tokens.lengths, per_call(self.runtime, self.recipe.batch_size), True))

        def run(idx: np.ndarray) -> np.ndarray:
            return np.asarray(self._encoder(*pad([tokens.ids[i] for i in idx], pad_id)), dtype=np.float32)

        workers = calls_at_once(self.runtime, self.threads)
        for idx, logits in zip(batches, in_order(run, batches, workers), strict=True):
            if out is None:
                out = np.zeros((len(texts), logits.shape[1]), dtype=np.float32)
            out[idx] = logits
        return np.zeros((0, 0), dtype=np.float32) if out is None else out

    def _logits_from_states(self, texts: list[str]) -> np.ndarray:
        """:meth:`logits` from the encoder's kept states: the top layers and the head only."""
        from selfheal.model.runtime import length_batches

        states = self.states.hidden_states(texts)
        out: np.ndarray | None = None
        for idx in length_batches([len(x) for x in states], self.recipe.batch_size, True):
            hidden, mask = pad_states([states[i] for i in idx])
            if self.runtime == "torch":
                import torch

                with torch.inference_mode():
                    logits = self._head(torch.from_numpy(hidden), torch.from_numpy(mask)).float().numpy()
            else:
                logits = self._head.run_all(hidden, mask)[0]
            if out is None:
                out = np.zeros((len(texts), logits.shape[1]), dtype=np.float32)
            out[idx] = logits
        return np.zeros((0, 0), dtype=np.float32) if out is None else out

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Class probabilities in label order."""
        from selfheal.model.calibrate import softmax

        return softmax(self.logits(texts), 1.0)


def train_voter(config: Any, checkpoint: Path, recipe: TopLayersRecipe, log: Any = None) -> dict[str, Any]:
    """Train the top layers for ``checkpoint`` on its own train split and write them into it
    (``embedder_top/``, replaced atomically); returns the time taken and the validation accuracy.

    The train and validation splits are rebuilt from ``config.data`` and checked against the
    checkpoint's split manifest (a mismatch is a one-line :class:`~selfheal.data.DataError`), so
    the voter never sees a validation or test text in training.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    from selfheal.config import ConfigError
    from selfheal.data import prepare_splits, read_manifest, verify_split
    from selfheal.model.checkpoint import MANIFEST_FILE, checkpoint_labels
    from selfheal.model.embedder import EncoderConfig, resolve_embedder

    started = time.perf_counter()
    checkpoint = Path(checkpoint)
    labels = checkpoint_labels(checkpoint)
    manifest = read_manifest(checkpoint / MANIFEST_FILE)
    dc = config.data
    splits = prepare_splits(dc.source, dc.val_size, dc.test_size, dc.seed)
    for name in ("train", "validation"):
        verify_split(splits[name], manifest, name)
    path = resolve_embedder(config.embedder.model)
    depth = int(EncoderConfig.read(path).num_hidden_layers)
    if not 1 <= recipe.top <= depth:  # before minutes of loading and caching
        raise ConfigError(f"voter.top must be 1..{depth} (the layers of {path}), not {recipe.top}")
    if config.training.num_threads:
        torch.set_num_threads(config.training.num_threads)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    after = depth - recipe.top
    texts = {name: list(splits[name]["text"]) for name in ("train", "validation")}
    ids = {name: np.asarray(splits[name]["label"]) for name in ("train", "validation")}
    cached = cache_states(model, tokenizer, texts["train"], after, recipe.batch_size, dc.max_length)
    if log is not None:
        log(f"cached the states after layer {after} of {len(texts['train'])} train texts")
    top = train_top(model, cached, ids["train"], recipe, len(labels), log)
    del cached
    val = cache_states(model, tokenizer, texts["validation"], after, recipe.batch_size, dc.max_length)
    accuracy = float((top_logits(top, val, len(texts["validation"])).argmax(1) == ids["validation"]).mean())
    target = checkpoint / TOP_DIR
    trained = {
        "train_texts": len(texts["train"]),
        "validation_accuracy": round(accuracy, 6),
        "minutes": round((time.perf_counter() - started) / 60, 1),
        "torch_threads": torch.get_num_threads(),
    }
    staging = Path(tempfile.mkdtemp(prefix=f".{TOP_DIR}-", dir=checkpoint))
    try:
        save_top(top, staging, recipe, len(labels), trained)
        staging.chmod(0o755)  # mkdtemp makes it private; a checkpoint is shipped and shared
        for file in staging.iterdir():
            file.chmod(0o644)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{TOP_DIR}-old-", dir=checkpoint))
            os.replace(target, old / TOP_DIR)
        os.replace(staging, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {
        "directory": str(target),
        "seconds": time.perf_counter() - started,
        "train_texts": len(texts["train"]),
        "validation_accuracy": accuracy,
        "recipe": asdict(recipe),
    }
