"""Fit the input-knowability check for an existing checkpoint, without retraining the model.

Usage: python scripts/fit_knowability.py [CHECKPOINT] [--config config.yaml] [--set key=value ...]
                                         [--train-sample N] [--features DIR]

Rebuilds the checkpoint's train/validation split from the config's data settings (checked against
the checkpoint's split manifest; the test split is never read), encodes them with the checkpoint's
frozen sentence embedder and writes ``CHECKPOINT/knowability.json.gz`` with the same function
``selfheal train`` uses (:func:`selfheal.model.knowability.fit_from_splits`). ``--train-sample N``
fits the mpnet classifier on N random train texts (encoding all 10k takes minutes on a busy CPU;
the known-word vocabulary still comes from the whole train split). ``--features DIR`` reuses
``feats_train.npy`` and/or ``feats_validation.npy`` of that embedder saved there earlier (all rows
of the split, in split order). Default CHECKPOINT: the shipped one.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from selfheal.config import load_config
from selfheal.data import prepare_splits, read_manifest, verify_split
from selfheal.errors import exit_on_user_error
from selfheal.model.checkpoint import MANIFEST_FILE, resolve_checkpoint
from selfheal.model.classifier import Classifier
from selfheal.model.knowability import fit_from_splits


def main() -> None:
    """Fit and save the detector; print its thresholds."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default=None)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--train-sample", type=int, default=None)
    parser.add_argument("--features", default=None, help="a directory with feats_<split>.npy")
    args = parser.parse_args()
    config = load_config(args.config, args.overrides)
    directory = resolve_checkpoint(Path(args.checkpoint) if args.checkpoint else None)
    started = time.perf_counter()
    d = config.data
    splits = prepare_splits(d.source, d.val_size, d.test_size, d.seed)
    manifest = read_manifest(directory / MANIFEST_FILE)
    for name in ("train", "validation"):
        verify_split(splits[name], manifest, name)
    classifier = Classifier(directory, use_knowability=False, use_embedder=config.embedder.enabled)
    embedder = getattr(classifier, "_embedder", None)
    encoder = None if embedder is None else embedder.encoder
    embeddings = None
    if args.features and encoder is not None:
        embeddings = {}
        for name in ("train", "validation"):
            path = Path(args.features) / f"feats_{name}.npy"
            if path.is_file():
                embeddings[name] = np.load(path).astype(np.float32)
                if len(embeddings[name]) != len(splits[name]):
                    raise SystemExit(
                        f"error: {path} has {len(embeddings[name])} rows, not {len(splits[name])}"
                    )
    detector = fit_from_splits(
        splits,
        classifier.tokenizer,
        encoder,
        embeddings,
        config.knowability.quantile,
        config.training.seed,
        args.train_sample,
    )
    path = detector.save(directory)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB) in {time.perf_counter() - started:.0f} s")
    print(f"fitted thresholds (validation quantile {config.knowability.quantile}): {detector.thresholds}")
    print(f"fitted on: {detector.info}")


if __name__ == "__main__":
    exit_on_user_error(main)
