"""LoRA fine-tuning, read top to bottom: data -> model -> loop -> calibrate -> save.

A plain ``accelerate`` loop (CPU by default; mixed precision and multi-GPU when present) with
dynamic padding, length-grouped batches, per-epoch validation, best-by-macro-F1 selection (for
two labels as for k), a per-epoch CSV log and, optionally, Weights & Biases. The label set is the
data's (:func:`selfheal.data.split_labels`) and is stored in the checkpoint's ``selfheal.json``.
"""

from __future__ import annotations

import csv
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from selfheal.config import Config
from selfheal.data import (
    add_examples_to_train,
    build_manifest,
    check_no_leak,
    load_splits,
    split_labels,
    stratified_sample,
    write_manifest,
)
from selfheal.model.backup import TfidfBackup
from selfheal.model.calibrate import fit_temperature, nll, softmax
from selfheal.model.checkpoint import (
    FULL_WEIGHTS_FILE,
    MANIFEST_FILE,
    META_FILE,
    METRICS_FILE,
    TRAINING_LOG_FILE,
    resolve_base_model,
    write_json,
)
from selfheal.model.classifier import build_model
from selfheal.model.embedder import EmbeddingHead, SentenceEncoder, resolve_embedder
from selfheal.model.ensemble import WEIGHT_GRID, combine_all, fit_weights
from selfheal.model.metrics import classification_metrics

LOG_FIELDS = ["epoch", "train_loss", "val_loss", "val_accuracy", "val_macro_f1", "learning_rate", "seconds"]


@dataclass
class TrainResult:
    """What a training run produced."""

    output_dir: Path
    best_epoch: int
    temperature: float
    metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    checks: dict[str, int] = field(default_factory=dict)  # what the data checks dropped


def load_training_splits(
    config: Config, clarified: list[tuple[str, object]] | None = None
) -> tuple[Any, dict[str, int]]:
    """The split for ``config.data``, with the optional sample and clarified examples (``(text,
    label name)`` pairs) applied, and the counts of the corpus's data checks."""
    d = config.data
    corpus, splits = load_splits(d.source, d.val_size, d.test_size, d.seed)
    if d.sample is not None:
        splits["train"] = stratified_sample(splits["train"], d.sample, d.seed)
    if clarified:
        splits, _ = add_examples_to_train(splits, clarified)
    return splits, corpus.checks


def _tokenize(splits: Any, tokenizer: Any, max_length: int) -> Any:
    def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
        return tokenizer(batch["text"], truncation=True, max_length=max_length)

    return splits.map(encode, batched=True, remove_columns=["text"]).rename_column("label", "labels")


def _loader(split: Any, batch_size: int, collate: Any, group: bool, seed: int | None) -> Any:
    import torch
    from torch.utils.data import DataLoader
    from transformers.trainer_pt_utils import LengthGroupedSampler

    if seed is None:  # evaluation: keep order
        return DataLoader(split, batch_size=batch_size, collate_fn=collate, shuffle=False)
    generator = torch.Generator().manual_seed(seed)
    if group:
        lengths = [len(ids) for ids in split["input_ids"]]
        sampler = LengthGroupedSampler(batch_size, lengths=lengths, generator=generator)
        return DataLoader(split, batch_size=batch_size, sampler=sampler, collate_fn=collate)
    return DataLoader(split, batch_size=batch_size, shuffle=True, generator=generator, collate_fn=collate)


def _predict_logits(model: Any, loader: Any, accelerator: Any) -> tuple[np.ndarray, np.ndarray]:
    import torch

    model.eval()
    all_logits, all_labels = [], []
    with torch.inference_mode():
        for batch in loader:
            labels = batch.pop("labels")
            logits = model(**batch).logits
            logits, labels = accelerator.gather_for_metrics((logits, labels))
            all_logits.append(logits.float().cpu().numpy())
            all_labels.append(labels.cpu().numpy())
    model.train()
    return np.concatenate(all_logits), np.concatenate(all_labels)


def _trainable_state(model: Any) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _start_wandb(config: Config) -> Any:
    if not config.training.wandb:
        return None
    try:
        import wandb
    except ImportError:
        return None
    import os

    os.environ.setdefault("WANDB_MODE", "offline")
    return wandb.init(project="selfheal", config=config.to_dict())


def train(
    config: Config, clarified: list[tuple[str, object]] | None = None, quiet: bool = False
) -> TrainResult:
    """Fine-tune the base encoder with LoRA over the data's label set, calibrate, train the
    backup, save a checkpoint. ``clarified``: ``(text, label name)`` pairs added to train."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from peft import LoraConfig, TaskType, get_peft_model
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from transformers import AutoTokenizer, DataCollatorWithPadding, get_scheduler

    started = time.perf_counter()
    tc, out = config.training, Path(config.paths.output_dir)
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    set_seed(tc.seed)
    accelerator = Accelerator(mixed_precision=tc.mixed_precision)

    # --- data -------------------------------------------------------------------------------
    splits, checks = load_training_splits(config, clarified)
    labels = split_labels(splits)
    manifest = build_manifest(splits, config.data.source, config.data.seed, checks)
    check_no_leak(manifest)
    base_path = resolve_base_model(config.model.base_model)
    # Resolved before the long part, so a missing embedder fails in seconds.
    embedder_path = resolve_embedder(config.embedder.model) if config.embedder.enabled else None
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    encoded = _tokenize(splits, tokenizer, config.data.max_length)
    collate = DataCollatorWithPadding(tokenizer)
    train_loader = _loader(encoded["train"], tc.batch_size, collate, tc.group_by_length, tc.seed)
    val_loader = _loader(encoded["validation"], tc.eval_batch_size, collate, False, None)
    test_loader = _loader(encoded["test"], tc.eval_batch_size, collate, False, None)

    # --- model --------------------------------------------------------------------------------
    model = build_model(base_path, config.model.pooling, labels, config.model.dropout)
    if config.lora.enabled:
        lora = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=config.lora.r,
            lora_alpha=config.lora.alpha,
            lora_dropout=config.lora.dropout,
            target_modules=list(config.lora.target_modules),
        )
        model = get_peft_model(model, lora)
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    n_total = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(trainable, lr=tc.learning_rate, weight_decay=tc.weight_decay)
    total_steps = tc.epochs * len(train_loader)
    scheduler = get_scheduler(
        "constant_with_warmup" if tc.scheduler == "constant" else tc.scheduler,
        optimizer,
        num_warmup_steps=int(tc.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
    model, optimizer, train_loader, val_loader, test_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, val_loader, test_loader, scheduler
    )
    run = _start_wandb(config)

    # --- loop ---------------------------------------------------------------------------------
    out.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, float]] = []
    best_f1, best_epoch, best_state = -1.0, 0, _trainable_state(model)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, disable=quiet or not accelerator.is_main_process, transient=False) as bar:
        task = bar.add_task("training", total=total_steps)
        model.train()
        for epoch in range(1, tc.epochs + 1):
            epoch_start, losses = time.perf_counter(), []
            for batch in train_loader:
                with accelerator.accumulate(model):
                    loss = model(**batch).loss
                    accelerator.backward(loss)
                    accelerator.clip_grad_norm_(trainable, tc.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                losses.append(loss.item())
                bar.update(
                    task, advance=1, description=f"epoch {epoch}/{tc.epochs} loss {np.mean(losses[-50:]):.4f}"
                )
            val_logits, val_labels = _predict_logits(model, val_loader, accelerator)
            val = classification_metrics(val_labels, softmax(val_logits))
            row = {
                "epoch": epoch,
                "train_loss": float(np.mean(losses)),
                "val_loss": val["nll"],
                "val_accuracy": val["accuracy"],
                "val_macro_f1": val["f1_macro"],
                "learning_rate": float(scheduler.get_last_lr()[0]),
                "seconds": round(time.perf_counter() - epoch_start, 1),
            }
            history.append(row)
            _write_log(out / TRAINING_LOG_FILE, history)
            if run is not None:
                run.log(row)
            if not quiet:
                accelerator.print(
                    f"epoch {epoch}: train_loss={row['train_loss']:.4f} val_loss={row['val_loss']:.4f} "
                    f"val_acc={row['val_accuracy']:.4f} val_f1={row['val_macro_f1']:.4f} ({row['seconds']}s)"
                )
            if val["f1_macro"] > best_f1:
                best_f1, best_epoch, best_state = val["f1_macro"], epoch, _trainable_state(model)

    # --- best checkpoint, calibration, backup -----------------------------------------------------
    accelerator.unwrap_model(model).load_state_dict(best_state, strict=False)
    val_logits, val_labels = _predict_logits(model, val_loader, accelerator)
    test_logits, test_labels = _predict_logits(model, test_loader, accelerator)
    for name, got in (("validation", val_labels), ("test", test_labels)):
        if not np.array_equal(got, np.asarray(splits[name]["label"])):  # logits must align with texts
            raise RuntimeError(f"{name} predictions are out of order with the {name} split")
    quiet_bar = quiet or not accelerator.is_main_process
    ensemble = fit_ensemble(config, splits, val_logits, test_logits, embedder_path, quiet_bar)
    metrics = ensemble.metrics
    temperature = ensemble.temperature
    knowability = None
    if config.knowability.enabled:  # the input-knowability check (selfheal.model.knowability)
        from selfheal.model.knowability import fit_from_splits

        encoder = None
        if embedder_path is not None:
            e = config.embedder
            encoder = SentenceEncoder(
                embedder_path, e.layers, e.batch_size, e.precision, config.data.max_length
            )
        knowability = fit_from_splits(
            splits, tokenizer, encoder, ensemble.embeddings, config.knowability.quantile, tc.seed
        )
    seconds = time.perf_counter() - started

    # --- save -----------------------------------------------------------------------------------
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        if config.lora.enabled:
            unwrapped.save_pretrained(str(out))
        else:
            from safetensors.torch import save_model

            save_model(unwrapped, str(out / FULL_WEIGHTS_FILE))
        tokenizer.save_pretrained(str(out))
        ensemble.tfidf.save(out)
        if ensemble.head is not None:
            ensemble.head.save(out)
        if knowability is not None:
            knowability.save(out)
        write_manifest(manifest, out / MANIFEST_FILE)
        write_json(out / METRICS_FILE, metrics)
        (out / "training_config.yaml").write_text(_config_yaml(config), encoding="utf-8")
        meta = {
            "format_version": 1,
            "version": datetime.now(UTC).strftime("%Y%m%d-%H%M%S"),
            "base_model": config.model.base_model,
            "method": "lora" if config.lora.enabled else "full",
            "pooling": config.model.pooling,
            "max_length": config.data.max_length,
            "labels": list(labels),
            "id2label": {str(k): v for k, v in labels.id2label.items()},
            "temperature": temperature,
            "tfidf_weight": ensemble.weights["tfidf"],
            "embedder_weight": ensemble.weights.get("embedder", 0.0),
            "embedder_model": config.embedder.model,
            "without_embedder": ensemble.without_embedder,
            "best_epoch": best_epoch,
            "trainable_parameters": n_trainable,
            "total_parameters": n_total,
            "train_seconds": round(seconds, 1),
            "train_size": len(splits["train"]),
            "device": str(accelerator.device),
            "torch_threads": torch.get_num_threads(),
        }
        write_json(out / META_FILE, meta)
        from selfheal.model.card import write_model_card

        write_model_card(out, config, meta, metrics, history, manifest=manifest)
    if run is not None:
        run.finish()
    return TrainResult(out, best_epoch, temperature, metrics, history, seconds, checks)


@dataclass
class Ensemble:
    """The fitted members around the LoRA model, their weights, temperature and metrics."""

    tfidf: TfidfBackup
    head: EmbeddingHead | None
    weights: dict[str, float]
    temperature: float
    without_embedder: dict[str, float] | None
    metrics: dict[str, Any]
    embeddings: dict[str, np.ndarray] | None = None  # the frozen embedder's features per split


def _weight_grid(setting: str | float) -> tuple[float, ...]:
    return WEIGHT_GRID if setting == "auto" else (float(setting),)


def _embed_splits(config: Config, splits: Any, path: str, quiet: bool) -> dict[str, np.ndarray]:
    """Sentence embeddings of every split with the frozen embedder at ``path`` (one pass, no training)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    encoder = SentenceEncoder(
        path,
        config.embedder.layers,
        config.embedder.batch_size,
        config.embedder.precision,
        config.data.max_length,
    )
    names = ["train", "validation", "test"]
    total = sum(len(splits[n]) for n in names)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, disable=quiet, transient=False) as bar:
        task = bar.add_task("embedding (frozen encoder)", total=total)
        return {n: encoder.encode(list(splits[n]["text"]), lambda k: bar.advance(task, k)) for n in names}


def fit_ensemble(
    config: Config,
    splits: Any,
    val_logits: np.ndarray,
    test_logits: np.ndarray,
    embedder_path: str | None,
    quiet: bool = True,
) -> Ensemble:
    """Train the TF-IDF model (and, given ``embedder_path``, the embedder head), fit member weights
    and the temperature on validation NLL, and measure every combination on validation and test."""
    labels = {s: np.asarray(splits[s]["label"]) for s in ("train", "validation", "test")}
    logits = {"validation": val_logits, "test": test_logits}
    tc = config.training
    tfidf = TfidfBackup.train(list(splits["train"]["text"]), list(labels["train"]), tc.seed)
    members = {"tfidf": {s: tfidf.predict_proba(list(splits[s]["text"])) for s in logits}}
    grids = {"tfidf": _weight_grid(config.model.tfidf_weight)}
    head = None
    embeddings: dict[str, np.ndarray] | None = None
    if embedder_path is not None:
        embeddings = _embed_splits(config, splits, embedder_path, quiet)
        layers = config.embedder.layers
        head = EmbeddingHead.train(
            embeddings["train"], labels["train"], layers, config.embedder.c, tc.seed, split_labels(splits)
        )
        members["embedder"] = {s: head.predict_proba(embeddings[s]) for s in logits}
        grids["embedder"] = _weight_grid(config.embedder.weight)

    def fit(names: list[str]) -> tuple[dict[str, float], float, dict[str, Any]]:
        w, t = fit_weights(
            val_logits,
            [members[n]["validation"] for n in names],
            labels["validation"],
            [grids[n] for n in names],
        )
        final = {s: combine_all(logits[s], [members[n][s] for n in names], w) for s in logits}
        scored = {s: classification_metrics(labels[s], softmax(final[s], t)) for s in logits}
        scored["validation_nll_raw"] = nll(final["validation"], labels["validation"])
        scored["validation_nll_scaled"] = nll(final["validation"], labels["validation"], t)
        return dict(zip(names, w, strict=True)), t, scored

    weights, temperature, metrics = fit(list(members))
    encoder_t = fit_temperature(val_logits, labels["validation"])
    metrics.update(
        {
            "tfidf_weight": weights["tfidf"],
            "embedder_weight": weights.get("embedder", 0.0),
            "encoder_only": {
                "temperature": encoder_t,
                **{s: classification_metrics(labels[s], softmax(logits[s], encoder_t)) for s in logits},
            },
        }
    )
    for name in members:
        metrics[f"backup_{name}"] = {s: classification_metrics(labels[s], members[name][s]) for s in logits}
    without = None
    if head is not None:
        w_small, t_small, m_small = fit(["tfidf"])
        without = {"tfidf_weight": w_small["tfidf"], "temperature": t_small}
        metrics["without_embedder"] = {**without, **m_small}
    return Ensemble(tfidf, head, weights, temperature, without, metrics, embeddings)


def _write_log(path: Path, history: list[dict[str, float]]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=LOG_FIELDS)
        writer.writeheader()
        writer.writerows(history)
    shutil.move(tmp, path)


def _config_yaml(config: Config) -> str:
    import yaml

    return yaml.safe_dump(config.to_dict(), sort_keys=False)
