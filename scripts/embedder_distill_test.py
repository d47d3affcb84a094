"""The distilled six-layer embedder on the test split: would it keep issue 14's figures?

``embedder_distill_trial.py`` distils on train and measures on validation only, and saves the
merged student to runs/distill-trial/student.pt. This is the gate before carrying that student to
a model: the teacher (the shipped embedder, fp32 torch) and the student, each with a head fitted
on train (``embedder.c``) and ensemble weights and temperature fitted on the whole validation
split (as ``selfheal train`` fits them), combined with the shipped LoRA logits and TF-IDF, then
measured once on test against issue 14's bands (accuracy and ECE +-0.5 pt, accepted share at
``thresholds.accept`` +-1 pt). Nothing is fitted on test.

Usage: ``python scripts/embedder_distill_test.py [--student PATH] [--output PATH]`` (about 8
minutes on 2 cores); writes reports/embedder_distill_test.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from embedder_depth_trial import write_report  # scripts/ is on sys.path when run as a script
from embedder_distill_trial import ADAPTER, HEAD_LAYERS, PAIRS, batches_of, features, make_student

from selfheal.config import load_config
from selfheal.evaluation.calibration import ece
from selfheal.model.backup import TfidfBackup
from selfheal.model.calibrate import softmax
from selfheal.model.classifier import Classifier
from selfheal.model.embedder import EmbeddingHead, resolve_embedder
from selfheal.model.ensemble import combine_all, fit_weights
from selfheal.model.tokenizer import load_tokenizer
from selfheal.model.train import load_training_splits

SPLITS = ("train", "validation", "test")
BANDS = {"accuracy": 0.005, "ece": 0.005, "accepted_share": 0.01}


def measure(
    model: Any,
    layers: tuple[int, ...],
    batches: dict[str, list],
    texts: dict[str, list[str]],
    labels: dict[str, np.ndarray],
    members: dict[str, dict[str, np.ndarray]],
    c: float,
    accept: float,
) -> dict[str, Any]:
    """Head on train, weights and temperature on validation, figures on validation and test."""
    x = {s: features(model, batches[s], len(texts[s]), layers) for s in SPLITS}
    head = EmbeddingHead.train(x["train"], labels["train"], layers, c=c)
    probs = {s: head.predict_proba(x[s]) for s in ("validation", "test")}
    lora, tfidf = members["lora"], members["tfidf"]
    weights, temperature = fit_weights(
        lora["validation"], [tfidf["validation"], probs["validation"]], labels["validation"]
    )
    row: dict[str, Any] = {"weights (tfidf, embedder)": list(weights), "temperature": temperature}
    for s in ("validation", "test"):
        final = softmax(combine_all(lora[s], [tfidf[s], probs[s]], weights), temperature)
        row[s] = {
            "head_alone": float((probs[s].argmax(1) == labels[s]).mean()),
            "accuracy": float((final.argmax(1) == labels[s]).mean()),
            "ece": ece(labels[s], final),
            "accepted_share": float((final.max(1) >= accept).mean()),
        }
        row[f"{s}_predictions"] = final.argmax(1)
    return row


def main() -> None:
    """Measure teacher and student on test and write the report."""
    import torch
    from transformers import AutoModel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", type=Path, default=ADAPTER / "student.pt")
    parser.add_argument("--output", type=Path, default=Path("reports/embedder_distill_test.json"))
    args = parser.parse_args()
    if not args.student.is_file():
        raise SystemExit(f"error: {args.student} not found (run scripts/embedder_distill_trial.py first)")
    config = load_config()
    splits = load_training_splits(config)[0]
    texts = {s: list(splits[s]["text"]) for s in SPLITS}
    labels = {s: np.asarray(splits[s]["label"]) for s in SPLITS}
    path = resolve_embedder(config.embedder.model)
    tokenizer = load_tokenizer(path)
    teacher = AutoModel.from_pretrained(path).eval()
    student = make_student(teacher, 0)
    student.load_state_dict(torch.load(args.student))
    student.eval()
    batches = {s: batches_of(tokenizer, texts[s], 32) for s in SPLITS}
    classifier = Classifier.load(use_embedder=False, use_knowability=False)  # torch, LoRA merged
    tfidf = TfidfBackup.load(classifier.directory)
    members = {
        "lora": {s: classifier.encoder_logits(texts[s]) for s in ("validation", "test")},
        "tfidf": {s: tfidf.predict_proba(texts[s]) for s in ("validation", "test")},
    }
    rows = {}
    for name, model, layers in (("teacher", teacher, HEAD_LAYERS), ("distilled", student, tuple(PAIRS))):
        started = time.perf_counter()
        rows[name] = measure(
            model, layers, batches, texts, labels, members, config.embedder.c, config.thresholds.accept
        )
        print(f"{name} ({time.perf_counter() - started:.0f} s): validation {rows[name]['validation']}")
        print(f"{name}: test {rows[name]['test']}", flush=True)
    teacher_row, student_row = rows["teacher"], rows["distilled"]
    agreement = {
        s: float((teacher_row.pop(f"{s}_predictions") == student_row.pop(f"{s}_predictions")).mean())
        for s in ("validation", "test")
    }
    gaps = {k: student_row["test"][k] - teacher_row["test"][k] for k in BANDS}
    within = {k: abs(v) <= BANDS[k] for k, v in gaps.items()}
    print(f"test, distilled minus teacher: {gaps}; within the bands: {within}")
    write_report(
        args.output,
        {
            "command": f"python scripts/embedder_distill_test.py --student {args.student}",
            "student": str(args.student),
            "texts": {s: len(texts[s]) for s in SPLITS},
            "accept_threshold": config.thresholds.accept,
            "rows": rows,
            "ensemble_agreement_with_teacher": agreement,
            "test_gap_distilled_minus_teacher": gaps,
            "bands": BANDS,
            "within_bands": within,
        },
    )


if __name__ == "__main__":
    main()
