"""Which layers of the frozen sentence embedder should feed its logistic regression?

Encodes the TRAIN split once with every hidden layer of all-mpnet-base-v2 (mean-pooled and
normalised per layer), then scores candidate layer sets by 5-fold stratified cross-validation
accuracy of the logistic regression on the train split alone: validation and test play no part
in the choice. Results go to reports/embedder_layers.json (the model card shows them) and stdout.

Usage: python scripts/embedder_layers.py        (about 4 minutes on a 2-core CPU)
"""

from __future__ import annotations

import json
import time

import numpy as np

from selfheal.config import load_config
from selfheal.model.card import EMBEDDER_LAYERS_FILE
from selfheal.model.embedder import SentenceEncoder, resolve_embedder
from selfheal.model.train import load_training_splits

EVERY_LAYER = list(range(1, 13))  # all-mpnet-base-v2 has 12
CANDIDATES: list[list[int]] = [
    [12],  # the sentence embedding itself (what the model was trained to output)
    [10],
    [8],
    [12, 10, 8],
    [12, 11, 10, 9, 8],
    [4, 6, 8, 10, 12],
    EVERY_LAYER,
]
FOLDS = 5


def main() -> None:
    """Encode the train split with all layers and cross-validate each candidate set."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    config = load_config()
    train = load_training_splits(config)[0]["train"]
    started = time.perf_counter()
    encoder = SentenceEncoder(
        resolve_embedder(config.embedder.model), EVERY_LAYER, config.embedder.batch_size
    )
    dim = encoder.dim // len(EVERY_LAYER)
    vectors = encoder.encode(list(train["text"]))
    labels = np.asarray(train["label"])
    print(f"encoded {len(labels)} train texts in {time.perf_counter() - started:.0f} s", flush=True)
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=config.training.seed)
    rows = []
    for layers in CANDIDATES:
        x = np.concatenate([vectors[:, (i - 1) * dim : i * dim] for i in layers], axis=1)
        model = LogisticRegression(C=config.embedder.c, max_iter=5000)
        scores = cross_val_score(model, x, labels, cv=folds)
        rows.append({"layers": layers, "cv_accuracy": float(scores.mean()), "cv_std": float(scores.std())})
        print(
            f"layers {layers}: {FOLDS}-fold CV accuracy {scores.mean():.4f} (sd {scores.std():.4f})",
            flush=True,
        )
    EMBEDDER_LAYERS_FILE.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": "python scripts/embedder_layers.py",
        "c": config.embedder.c,
        "folds": FOLDS,
        "rows": rows,
    }
    EMBEDDER_LAYERS_FILE.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {EMBEDDER_LAYERS_FILE}")


if __name__ == "__main__":
    from selfheal.errors import exit_on_user_error

    exit_on_user_error(main)
