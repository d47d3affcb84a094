"""Would ensembling the trained trials close the gap? Score every combination of recipe-search runs.

For each combination of the trials in runs/trials/ (written by scripts/recipe_search.py), the
members' encoder logits are averaged, the TF-IDF log-probabilities are added with a weight, and the
weight and the temperature are fitted on the validation split only (as `selfheal train` does for
one model). Test figures are reported for information; nothing is chosen on them.

Results go to reports/trial_ensembles.json, a table on stdout (best validation accuracy first) and
the shipped checkpoint's model card.

Usage: python scripts/trial_ensembles.py [TRIAL ...]     (default: every finished trial)
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np

from selfheal.config import load_config
from selfheal.data import prepare_splits
from selfheal.evaluation.calibration import ece
from selfheal.evaluation.metrics import aurc, selective_accuracy, selective_at_coverage
from selfheal.model.backup import TfidfBackup
from selfheal.model.calibrate import softmax
from selfheal.model.card import rewrite_model_card
from selfheal.model.checkpoint import resolve_checkpoint
from selfheal.model.classifier import Classifier
from selfheal.model.ensemble import combine, fit_weight

TRIALS = Path("runs/trials")
OUT = Path("reports/trial_ensembles.json")


def trial_logits(names: list[str], texts: dict[str, list[str]]) -> dict[str, dict[str, np.ndarray]]:
    """Encoder-only logits of each trial on each split."""
    logits = {}
    for name in names:
        classifier = Classifier(TRIALS / name)
        logits[name] = {split: classifier.encoder_logits(t) for split, t in texts.items()}
        print(f"scored {name}", flush=True)
    return logits


def score(members: tuple[str, ...], logits: dict, tfidf: dict, labels: dict) -> dict[str, object]:
    """Validation-fitted ensemble of ``members`` (+ TF-IDF), with its validation and test figures."""
    mean = {s: np.mean([logits[m][s] for m in members], axis=0) for s in labels}
    weight, temperature = fit_weight(mean["validation"], tfidf["validation"], labels["validation"])
    probs = {s: softmax(combine(mean[s], tfidf[s], weight), temperature) for s in labels}
    test, y = probs["test"], labels["test"]
    at = selective_accuracy(y, test, 0.75)
    return {
        "members": list(members),
        "tfidf_weight": weight,
        "temperature": temperature,
        "val_accuracy": float((probs["validation"].argmax(1) == labels["validation"]).mean()),
        "test_accuracy": float((test.argmax(1) == y).mean()),
        "test_ece": ece(y, test),
        "test_aurc": aurc(y, test),
        "test_accuracy_top70": selective_at_coverage(y, test, 0.7)["accuracy"],
        "test_accepted_accuracy_075": at["accuracy"],
        "test_coverage_075": at["coverage"],
    }


def main(names: list[str]) -> None:
    """Score every combination of the named (default: all finished) trials."""
    names = names or sorted(p.parent.name for p in TRIALS.glob("*/selfheal.json"))
    missing = [n for n in names if not (TRIALS / n / "selfheal.json").exists()]
    if not names or missing:
        what = f"trial {', '.join(missing)}" if missing else "trials"
        sys.exit(f"error: no finished {what} in {TRIALS} (run python scripts/recipe_search.py first)")
    cfg = load_config()
    splits = prepare_splits(cfg.data.source, cfg.data.val_size, cfg.data.test_size, cfg.data.seed)
    texts = {s: list(splits[s]["text"]) for s in ("validation", "test")}
    labels = {s: np.asarray(splits[s]["label"]) for s in texts}
    backup = TfidfBackup.load(TRIALS / names[0])  # same train split and recipe in every trial
    tfidf = {s: backup.predict_proba(t) for s, t in texts.items()}
    logits = trial_logits(names, texts)
    rows = [
        score(members, logits, tfidf, labels)
        for k in range(1, len(names) + 1)
        for members in itertools.combinations(names, k)
    ]
    rows.sort(key=lambda r: -r["val_accuracy"])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"{'members':70s} {'val':>6s} {'test':>6s} {'ECE':>6s} {'top70':>6s} {'acc@.75':>7s} {'cov':>6s}")
    for r in rows:
        print(
            f"{'+'.join(r['members']):70s} {100 * r['val_accuracy']:6.2f} {100 * r['test_accuracy']:6.2f} "
            f"{100 * r['test_ece']:6.2f} {100 * r['test_accuracy_top70']:6.2f} "
            f"{100 * r['test_accepted_accuracy_075']:7.2f} {100 * r['test_coverage_075']:6.1f}"
        )
    print(f"wrote {OUT}")
    print(f"updated {rewrite_model_card(resolve_checkpoint(None))}")


if __name__ == "__main__":
    main(sys.argv[1:])
