"""mpnet's last layers, fine-tuned with LoRA from the frozen embedder's cached states.

The frozen sentence embedder (:mod:`selfheal.model.embedder`) already runs every layer of
all-mpnet-base-v2. A copy of its last ``top`` layers, with LoRA on every linear layer, mean
pooling and a linear head, is trained on the hidden states cached after layer ``12 - top``: the
frozen layers run once per text, not once per epoch. ``scripts/finetuned_member_trial.py``
measured it as a fourth ensemble member and as a no-person voter (README, Results).

Used by that script only so far: not yet part of ``selfheal train``, the checkpoint, the ONNX
export or the classifier (README, Results, "Toward 15% pending").
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

TOP_DIR = "embedder_top"  # inside a checkpoint: peft's adapter files and top_layers.json
SETTINGS_FILE = "top_layers.json"


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


def save_top(top: Any, directory: Path, recipe: TopLayersRecipe, num_labels: int) -> None:
    """peft's adapter files (LoRA weights and the head) and the recipe, in ``directory``."""
    directory = Path(directory)
    top.save_pretrained(str(directory))
    settings = {"recipe": asdict(recipe), "num_labels": num_labels}
    (directory / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


def load_top(model: Any, directory: Path) -> tuple[Any, TopLayersRecipe]:
    """The layers saved by :func:`save_top` on top of ``model`` (the frozen mpnet), in eval mode."""
    from peft import PeftModel

    directory = Path(directory)
    settings = json.loads((directory / SETTINGS_FILE).read_text(encoding="utf-8"))
    recipe = TopLayersRecipe(**settings["recipe"])
    base = build_top(model, recipe.top, int(settings["num_labels"]))
    return PeftModel.from_pretrained(base, str(directory)).eval(), recipe
