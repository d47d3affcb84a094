"""Would a shallower sentence embedder keep the ensemble's accuracy, and how much faster is it?

Issue 14's batch target (3x today's ``Classifier.predict``) leaves about 9 ms a text for the
whole ensemble, and the int8 mpnet embedder alone takes more. The ONNX export drops every layer
after the deepest one the head reads (or the voter's states come from), so a head on shallower
layers costs less in proportion. This trial measures both sides, on train and validation only
(test plays no part):

1. every hidden layer of all-mpnet-base-v2 for the train and validation texts, once (fp32 torch);
2. for each candidate layer set: the head (logistic regression, ``embedder.c``) fitted on train,
   its validation accuracy alone, and the ensemble's (the shipped checkpoint's LoRA logits,
   TF-IDF and this head; member weights and temperature fitted on one half of validation,
   accuracy measured on the other half, both ways, as ``ensemble.fit_weights`` fits them);
3. the int8 (smoothed) export of one layer set per depth, keeping the states the voter would
   start from (after layer 8, or the last layer the set reads when that is shallower), timed one
   text a call as the app runs it, on 300 validation texts, interleaved over 3 rounds.

Writes reports/embedder_depth.json. Usage: python scripts/embedder_depth_trial.py
(about 20 minutes on 2 cores; the exports are kept in the ONNX cache). ``--speed-only`` times
the exports again (step 3) and replaces only that part of the report.

``--frozen-minilm`` asks the same question of the cheapest encoder installed: the bundled
all-MiniLM-L6-v2 itself, frozen (the base weights the LoRA model was fine-tuned from, about a
fifth of mpnet's cost), in place of mpnet; steps 1 and 2 only, with a few values of the head's
``C``. Writes reports/embedder_minilm.json (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfheal.config import Config, load_config
from selfheal.model.backup import TfidfBackup
from selfheal.model.checkpoint import resolve_base_model
from selfheal.model.classifier import Classifier
from selfheal.model.embedder import EmbeddingHead, SentenceEncoder, resolve_embedder
from selfheal.model.ensemble import combine_all, fit_weights
from selfheal.model.train import load_training_splits

EVERY_LAYER = tuple(range(1, 13))
CANDIDATES: list[tuple[int, ...]] = [
    (4, 6, 8, 10, 12),  # config.yaml's embedder.layers
    (12,),
    (2, 4, 6, 8),
    (4, 6, 8),
    (2, 3, 4, 5, 6, 7),
    (3, 4, 5, 6),
    (2, 4, 6),
    (6,),
]
TIMED: list[tuple[int, ...]] = [(4, 6, 8, 10, 12), (2, 4, 6, 8), (2, 3, 4, 5, 6, 7), (3, 4, 5, 6)]
VOTER_STATES_AFTER = 8  # the shipped voter's top layers start after layer 12 - 4
OUT = Path("reports/embedder_depth.json")
MINILM_LAYERS = tuple(range(1, 7))
MINILM_CANDIDATES: list[tuple[int, ...]] = [(6,), (4, 5, 6), (2, 4, 6), MINILM_LAYERS]
MINILM_C = (0.3, 1.0, 3.0)
MINILM_OUT = Path("reports/embedder_minilm.json")


def columns(layers: tuple[int, ...], dim: int) -> np.ndarray:
    """The feature columns of ``layers`` in the all-layers features."""
    return np.concatenate([np.arange((layer - 1) * dim, layer * dim) for layer in layers])


def ensemble_accuracy(lora: np.ndarray, tfidf: np.ndarray, head: np.ndarray, labels: np.ndarray) -> float:
    """Validation accuracy of LoRA + TF-IDF + head, weights fitted on one half, measured on the
    other, both ways (a fixed random halving)."""
    order = np.random.default_rng(0).permutation(len(labels))
    halves = (order[: len(order) // 2], order[len(order) // 2 :])
    right = 0
    for fit, held in (halves, halves[::-1]):
        weights, _ = fit_weights(lora[fit], [tfidf[fit], head[fit]], labels[fit])
        combined = combine_all(lora[held], [tfidf[held], head[held]], weights)
        right += int((combined.argmax(1) == labels[held]).sum())
    return right / len(labels)


def time_depths(path: str, texts: list[str]) -> list[dict[str, object]]:
    """ms a text of each int8 export in :data:`TIMED`, one text a call, interleaved, 3 rounds."""
    encoders = {
        layers: SentenceEncoder(
            path, layers, runtime="onnx-int8", states_after=min(VOTER_STATES_AFTER, max(layers))
        )
        for layers in TIMED
    }
    spent: dict[tuple[int, ...], list[float]] = {layers: [] for layers in TIMED}
    for encoder in encoders.values():
        encoder.encode(texts[:10])  # warm up
    for _ in range(3):
        for layers, encoder in encoders.items():
            start = time.perf_counter()
            encoder.encode(texts)
            spent[layers].append(1000 * (time.perf_counter() - start) / len(texts))
    return [
        {
            "layers": list(layers),
            "depth": max(max(layers), min(VOTER_STATES_AFTER, max(layers))),
            "ms_per_text": statistics.median(times),
            "rounds": times,
        }
        for layers, times in spent.items()
    ]


def write_report(path: Path, report: dict[str, object]) -> None:
    """Write ``report`` as indented JSON to ``path`` (its folder made) and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def print_speed(speed: list[dict[str, object]]) -> None:
    """One line per timed export."""
    for row in speed:
        print(
            f"int8 export of layers {row['layers']} (runs {row['depth']} layers): "
            f"{row['ms_per_text']:.2f} ms a text",
            flush=True,
        )


@dataclass(frozen=True)
class Features:
    """An encoder's features of the train and validation texts, and the other members' part."""

    val_texts: list[str]
    train_x: np.ndarray
    val_x: np.ndarray
    dim: int  # features per layer
    train_labels: np.ndarray
    val_labels: np.ndarray
    lora: np.ndarray  # the shipped checkpoint's LoRA logits on validation
    tfidf: np.ndarray  # its TF-IDF probabilities on validation
    base: float  # LoRA + TF-IDF alone, weights fitted on all of validation

    def score(self, layers: tuple[int, ...], c: float) -> tuple[float, float]:
        """The head on ``layers`` (fitted on train): its validation accuracy alone, and the
        ensemble's (:func:`ensemble_accuracy`)."""
        cols = columns(layers, self.dim)
        head = EmbeddingHead.train(self.train_x[:, cols], self.train_labels, layers, c=c)
        probs = head.predict_proba(self.val_x[:, cols])
        alone = float((probs.argmax(1) == self.val_labels).mean())
        return alone, ensemble_accuracy(self.lora, self.tfidf, probs, self.val_labels)


def encode_splits(config: Config, path: str, layers: tuple[int, ...], batch_size: int) -> Features:
    """Every layer in ``layers`` of the encoder at ``path`` (fp32) for the train and validation
    texts, with the shipped LoRA and TF-IDF members on validation; prints the times and the base."""
    splits = load_training_splits(config)[0]
    train, validation = splits["train"], splits["validation"]
    train_texts, val_texts = list(train["text"]), list(validation["text"])
    val_labels = np.asarray(validation["label"])
    started = time.perf_counter()
    encoder = SentenceEncoder(path, layers, batch_size, precision="fp32")
    train_x, val_x = encoder.encode(train_texts), encoder.encode(val_texts)
    print(
        f"encoded {len(train_texts)} + {len(val_texts)} texts in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    classifier = Classifier.load()
    lora = classifier.encoder_logits(val_texts)
    tfidf = TfidfBackup.load(classifier.directory).predict_proba(val_texts)
    base_weights, _ = fit_weights(lora, [tfidf], val_labels)
    base = float((combine_all(lora, [tfidf], base_weights).argmax(1) == val_labels).mean())
    print(f"LoRA + TF-IDF alone (weights fitted on all of validation): {base:.4f}", flush=True)
    return Features(
        val_texts,
        train_x,
        val_x,
        encoder.dim // len(layers),
        np.asarray(train["label"]),
        val_labels,
        lora,
        tfidf,
        base,
    )


def frozen_minilm(config: Config) -> None:
    """``--frozen-minilm``: the head on frozen all-MiniLM-L6-v2 layers in place of mpnet's."""
    features = encode_splits(config, resolve_base_model(None), MINILM_LAYERS, 64)
    rows = []
    for layers in MINILM_CANDIDATES:
        for c in MINILM_C:
            alone, together = features.score(layers, c)
            rows.append({"layers": list(layers), "c": c, "head_alone": alone, "ensemble": together})
            print(f"MiniLM layers {list(layers)}, C {c}: head alone {alone:.4f}, ensemble {together:.4f}")
    write_report(
        MINILM_OUT,
        {
            "encoder": "all-MiniLM-L6-v2 (bundled base weights, frozen, fp32)",
            "validation_texts": len(features.val_texts),
            "lora_tfidf_alone": features.base,
            "candidates": rows,
            "command": "python scripts/embedder_depth_trial.py --frozen-minilm",
        },
    )


def main() -> None:
    """Fit and measure each candidate, time each depth, write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed-only", action="store_true", help="time the exports again, nothing else")
    parser.add_argument(
        "--frozen-minilm", action="store_true", help="the head on the frozen MiniLM in place of mpnet"
    )
    args = parser.parse_args()
    config = load_config()
    if args.frozen_minilm:
        frozen_minilm(config)
        return
    if args.speed_only:
        if not OUT.exists():
            raise SystemExit(f"error: {OUT} does not exist yet: run without --speed-only first")
        report = json.loads(OUT.read_text(encoding="utf-8"))
        validation = load_training_splits(config)[0]["validation"]
        report["int8_speed"] = time_depths(
            resolve_embedder(config.embedder.model), list(validation["text"])[:300]
        )
        report["int8_speed_command"] = "python scripts/embedder_depth_trial.py --speed-only"
        print_speed(report["int8_speed"])
        write_report(OUT, report)
        return
    path = resolve_embedder(config.embedder.model)
    features = encode_splits(config, path, EVERY_LAYER, config.embedder.batch_size)
    rows = []
    for layers in CANDIDATES:
        alone, together = features.score(layers, config.embedder.c)
        rows.append({"layers": list(layers), "head_alone": alone, "ensemble": together})
        print(f"layers {list(layers)}: head alone {alone:.4f}, ensemble {together:.4f}", flush=True)
    speed = time_depths(path, features.val_texts[:300])
    print_speed(speed)
    write_report(
        OUT,
        {
            "validation_texts": len(features.val_texts),
            "lora_tfidf_alone": features.base,
            "candidates": rows,
            "int8_speed": speed,
            "command": "python scripts/embedder_depth_trial.py",
        },
    )


if __name__ == "__main__":
    main()
