"""Can a six-layer mpnet, distilled from the twelve-layer one, stand in for the embedder?

Issue 14's batch target (3x today's ``Classifier.predict``) leaves about 7-9 ms a text for the
whole ensemble; the int8 mpnet embedder alone takes 8-10 ms. A shallower *cut* of mpnet (layers
2, 4, 6, 8) kept the validation accuracy but lost 0.9 pt on test (``embedder_depth_trial.py``,
README). This trial asks whether *distilling* does better, on train and validation only (test
plays no part):

1. the teacher: the shipped embedder (all-mpnet-base-v2, fp32 torch); its per-token states after
   layers 4, 6, 8, 10 and 12 for every train text, computed once;
2. the student: mpnet's embeddings and its layers 2, 4, 6, 8, 10 and 12, stacked as a six-layer
   model (DistilBERT's every-other-layer start), whose layers 2-6 learn the teacher's states after
   layers 4-12 (per-token MSE, scaled by each layer's mean square, plus 1 - cosine of the pooled
   features the head reads). Only LoRA adapters (rank ``--rank``) and the layer norms train (5.3 M
   parameters at rank 64, about 21 MB in fp32), so the student would ship as adapters on mpnet,
   like the shipped LoRA and voter. Student layer 4 learns teacher
   layer 8, the states the no-person voter starts from;
3. on validation: the head (logistic regression, ``embedder.c``) fitted on train features of the
   teacher, of the student before distilling (the plain cut) and after; each head alone, the
   ensemble with the shipped LoRA logits and TF-IDF (weights fitted on one half, measured on the
   other, both ways, as ``embedder_depth_trial.py`` does), how often each agrees with the
   teacher's head and the teacher's ensemble, the pooled features' cosine to the teacher's, and
   the voter states' relative error.

The student has the shape of a six-layer mpnet, so its int8 export costs what
``embedder_depth_trial.py --speed-only`` measures for six layers. Writes
reports/embedder_distill.json and the merged student to runs/distill-trial/ (not shipped). Usage:
``python scripts/embedder_distill_trial.py [--epochs N] [--rank R] [--output PATH]`` (the defaults, 5
and 64, are the recorded run's: about 40 minutes on 2 cores). ``--head-loss W`` adds a task term:
the head the teacher would ship (fitted on its train features) must give the same logits on the
student's pooled features as on the teacher's (mean squared difference, times ``W``), so the
student keeps what the head reads and not only the states. ``--save-student PATH`` keeps a run's
student apart from another's; ``scripts/embedder_distill_test.py --student PATH`` measures it on
test, once, as the gate before a model is built on it.
"""

from __future__ import annotations

import argparse
import copy
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from embedder_depth_trial import (
    ensemble_accuracy,
    write_report,
)  # scripts/ is on sys.path when run as a script

from selfheal.config import load_config
from selfheal.model.backup import TfidfBackup
from selfheal.model.classifier import Classifier
from selfheal.model.embedder import EmbeddingHead, resolve_embedder
from selfheal.model.ensemble import combine_all, fit_weights
from selfheal.model.runtime import Tokenized, length_batches, pad
from selfheal.model.tokenizer import load_tokenizer
from selfheal.model.train import load_training_splits

STUDENT_FROM = (2, 4, 6, 8, 10, 12)  # teacher layers copied into the student, in order
PAIRS = {2: 4, 3: 6, 4: 8, 5: 10, 6: 12}  # student layer -> the teacher layer it learns
HEAD_LAYERS = (4, 6, 8, 10, 12)  # config.yaml's embedder.layers
VOTER_PAIR = (4, 8)  # the voter's states: after teacher layer 8, learnt by student layer 4
OUT = Path("reports/embedder_distill.json")  # --extra-tweets: embedder_distill_tweets.json
ADAPTER = Path("runs/distill-trial")


def batches_of(tokenizer: Any, texts: list[str], size: int) -> list[tuple[np.ndarray, Any, Any]]:
    """Length-sorted batches: (indices, input_ids, attention_mask) as torch tensors."""
    import torch

    tokens = Tokenized(tokenizer, texts, 128)
    pad_id = tokenizer.pad_token_id or 0
    out = []
    for idx in length_batches(tokens.lengths, size, True, None):
        ids, mask = pad([tokens.ids[i] for i in idx], pad_id)
        out.append((idx, torch.from_numpy(ids), torch.from_numpy(mask)))
    return out


def pooled(hidden: Any, mask: Any) -> Any:
    """Mean-pooled, L2-normalised states (what the embedder computes per layer)."""
    import torch

    m = mask.unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden.float() * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)


def features(model: Any, batches: list, n: int, layers: tuple[int, ...]) -> np.ndarray:
    """The head's features (pooled ``layers``, concatenated) of every text, fp32, in input order."""
    import torch

    out = np.zeros((n, 768 * len(layers)), dtype=np.float32)
    with torch.inference_mode():
        for idx, ids, mask in batches:
            hidden = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
            out[idx] = torch.cat([pooled(hidden[i], mask) for i in layers], dim=-1).numpy()
    return out


def voter_state_error(teacher: Any, student: Any, batches: list) -> float:
    """Relative squared error of the student's layer-4 states against the teacher's layer-8 ones."""
    import torch

    err = norm = 0.0
    with torch.inference_mode():
        for _, ids, mask in batches:
            t = teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
            s = student(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
            m = mask.unsqueeze(-1).float()
            err += float((((s[VOTER_PAIR[0]] - t[VOTER_PAIR[1]]) * m) ** 2).sum())
            norm += float(((t[VOTER_PAIR[1]] * m) ** 2).sum())
    return err / norm


def make_student(teacher: Any, rank: int) -> Any:
    """The six-layer student with LoRA on every linear layer and trainable layer norms."""
    import torch
    from peft import LoraConfig, get_peft_model

    student = copy.deepcopy(teacher)
    student.encoder.layer = torch.nn.ModuleList([student.encoder.layer[i - 1] for i in STUDENT_FROM])
    student.config.num_hidden_layers = len(STUDENT_FROM)
    if rank == 0:
        return student
    config = LoraConfig(
        r=rank,
        lora_alpha=rank,
        lora_dropout=0.0,
        target_modules=["q", "k", "v", "o", "intermediate.dense", "output.dense"],
    )
    student = get_peft_model(student, config)
    for name, param in student.named_parameters():
        if "encoder.layer" in name and "LayerNorm" in name:
            param.requires_grad = True
    return student


def distill(
    teacher: Any,
    student: Any,
    batches: list,
    epochs: int,
    lr: float,
    head: EmbeddingHead | None = None,
    head_weight: float = 0.0,
) -> list[float]:
    """Train the student on the teacher's states; returns the mean loss of each epoch.

    ``head`` (the teacher's head, fitted on its train features) and ``head_weight`` > 0: the loss
    also has ``head_weight`` times the mean squared difference of that head's logits on the
    student's pooled features and on the teacher's, so the student keeps what the head reads."""
    import torch

    coef = intercept = None
    if head is not None and head_weight > 0:
        coef = torch.as_tensor(np.atleast_2d(head.coef), dtype=torch.float32)  # (1 or k, dim)
        intercept = torch.as_tensor(np.atleast_1d(head.intercept), dtype=torch.float32)

    def head_logits(hidden: Any, layers: tuple[int, ...], mask: Any) -> Any:
        x = torch.cat([pooled(hidden[i], mask) for i in layers], dim=-1)
        return x @ coef.T + intercept  # type: ignore[union-attr]

    print("teacher states for the train texts ...", flush=True)
    started = time.perf_counter()
    targets = []
    scale = {t: 0.0 for t in PAIRS.values()}
    count = 0
    with torch.inference_mode():
        for _, ids, mask in batches:
            hidden = teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
            m = mask.unsqueeze(-1).float()
            for t in PAIRS.values():
                scale[t] += float(((hidden[t] * m) ** 2).sum())
            count += int(mask.sum()) * hidden[0].shape[-1]
            targets.append({t: hidden[t].to(torch.float16) for t in PAIRS.values()})
            if coef is not None:
                targets[-1]["head"] = head_logits(hidden, HEAD_LAYERS, mask)
    scale = {t: s / count for t, s in scale.items()}
    print(f"  {time.perf_counter() - started:.0f} s; mean squares {scale}", flush=True)
    params = [p for p in student.parameters() if p.requires_grad]
    print(f"trainable parameters: {sum(p.numel() for p in params):,}", flush=True)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    total = epochs * len(batches)
    warmup = max(1, total // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / total))),
    )
    rng = random.Random(0)
    losses = []
    student.train()
    for epoch in range(epochs):
        order = list(range(len(batches)))
        rng.shuffle(order)
        running, started = 0.0, time.perf_counter()
        for step, b in enumerate(order):
            _, ids, mask = batches[b]
            m = mask.unsqueeze(-1).float()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                hidden = student(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
            loss = torch.zeros(())
            for s, t in PAIRS.items():
                target = targets[b][t].float()
                mse = (((hidden[s].float() - target) * m) ** 2).sum() / (m.sum() * target.shape[-1])
                cosine = (pooled(hidden[s], mask) * pooled(target, mask)).sum(-1)
                loss = loss + mse / scale[t] + 10.0 * (1.0 - cosine).mean()
            if coef is not None:
                gap = head_logits(hidden, tuple(PAIRS), mask) - targets[b]["head"]
                loss = loss + head_weight * (gap**2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            running += float(loss.detach())
            if step % 50 == 0:
                print(
                    f"  epoch {epoch + 1} step {step}/{len(order)} loss {running / (step + 1):.4f} "
                    f"({time.perf_counter() - started:.0f} s)",
                    flush=True,
                )
        losses.append(running / len(order))
        print(f"epoch {epoch + 1}: loss {losses[-1]:.4f} ({time.perf_counter() - started:.0f} s)", flush=True)
    student.eval()
    return losses


def main() -> None:
    """Distil, fit the heads, measure on validation, write the report."""
    import torch
    from transformers import AutoModel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rank", type=int, default=64, help="LoRA rank (at least 1)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--limit", type=int, default=0, help="a quick check: the first N train and N/4 validation texts"
    )
    parser.add_argument(
        "--extra-tweets",
        type=int,
        default=0,
        help="also distil on this many texts of the tweets corpus's train split (unlabelled use)",
    )
    parser.add_argument(
        "--head-loss",
        type=float,
        default=0.0,
        help="also match the teacher head's logits on the student's features, with this weight",
    )
    parser.add_argument(
        "--save-student",
        type=Path,
        default=ADAPTER / "student.pt",
        help="where the merged student is saved (default %(default)s)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"the report (default {OUT}, or embedder_distill_tweets.json beside it with --extra-tweets)",
    )
    args = parser.parse_args()
    if args.rank < 1 or args.epochs < 1:
        parser.error("--rank and --epochs must be at least 1")
    torch.manual_seed(0)
    out = args.output or (OUT.with_name("embedder_distill_tweets.json") if args.extra_tweets else OUT)
    config = load_config()
    splits = load_training_splits(config)[0]
    train, validation = splits["train"], splits["validation"]
    train_texts, val_texts = list(train["text"]), list(validation["text"])
    train_labels, val_labels = np.asarray(train["label"]), np.asarray(validation["label"])
    if args.limit:
        train_texts, train_labels = train_texts[: args.limit], train_labels[: args.limit]
        val_texts, val_labels = val_texts[: args.limit // 4], val_labels[: args.limit // 4]
    path = resolve_embedder(config.embedder.model)
    tokenizer = load_tokenizer(path)
    teacher = AutoModel.from_pretrained(path).eval()
    train_batches = batches_of(tokenizer, train_texts, 32)
    val_batches = batches_of(tokenizer, val_texts, 32)

    distil_texts = list(train_texts)
    if args.extra_tweets:
        from selfheal.data import load_tweets, split_corpus

        data = config.data
        tweets = list(split_corpus(load_tweets(), data.val_size, data.test_size, data.seed)["train"]["text"])
        distil_texts += random.Random(0).sample(tweets, min(args.extra_tweets, len(tweets)))
    distil_batches = batches_of(tokenizer, distil_texts, 32)
    cut = make_student(teacher, 0).eval()
    cached_train_x: dict[str, np.ndarray] = {}
    student = make_student(teacher, args.rank)
    started = time.perf_counter()
    head_to_keep = None
    if args.head_loss > 0:  # the head the embedder would ship, on the teacher's train features
        cached_train_x["teacher"] = features(teacher, train_batches, len(train_texts), HEAD_LAYERS)
        head_to_keep = EmbeddingHead.train(
            cached_train_x["teacher"], train_labels, HEAD_LAYERS, c=config.embedder.c
        )
    losses = distill(teacher, student, distil_batches, args.epochs, args.lr, head_to_keep, args.head_loss)
    train_seconds = time.perf_counter() - started
    student = student.merge_and_unload().eval()
    args.save_student.parent.mkdir(parents=True, exist_ok=True)
    torch.save(student.state_dict(), args.save_student)  # the merged student, for a next step

    classifier = Classifier.load()
    lora = classifier.encoder_logits(val_texts)
    tfidf = TfidfBackup.load(classifier.directory).predict_proba(val_texts)
    student_layers = tuple(PAIRS)
    rows: dict[str, dict[str, Any]] = {}
    pooled_val: dict[str, np.ndarray] = {}
    for name, model, layers in (
        ("teacher", teacher, HEAD_LAYERS),
        ("cut (not distilled)", cut, student_layers),
        ("distilled", student, student_layers),
    ):
        started = time.perf_counter()
        train_x = cached_train_x.get(name)
        if train_x is None:
            train_x = features(model, train_batches, len(train_texts), layers)
        val_x = features(model, val_batches, len(val_texts), layers)
        head = EmbeddingHead.train(train_x, train_labels, layers, c=config.embedder.c)
        probs = head.predict_proba(val_x)
        pooled_val[name] = val_x
        rows[name] = {
            "head_alone": float((probs.argmax(1) == val_labels).mean()),
            "ensemble": ensemble_accuracy(lora, tfidf, probs, val_labels),
            "probs": probs,
        }
        print(
            f"{name}: head alone {rows[name]['head_alone']:.4f}, ensemble {rows[name]['ensemble']:.4f} "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    teacher_head = rows["teacher"]["probs"].argmax(1)
    weights, _ = fit_weights(lora, [tfidf, rows["teacher"]["probs"]], val_labels)
    teacher_ensemble = combine_all(lora, [tfidf, rows["teacher"]["probs"]], weights).argmax(1)
    report_rows = []
    for name, row in rows.items():
        probs = row.pop("probs")
        together = combine_all(lora, [tfidf, probs], weights).argmax(1)
        cosines = [
            float(
                np.mean(
                    np.sum(
                        pooled_val[name][:, k * 768 : (k + 1) * 768]
                        * pooled_val["teacher"][:, k * 768 : (k + 1) * 768],
                        axis=1,
                    )
                )
            )
            for k in range(len(HEAD_LAYERS))
        ]
        row |= {
            "name": name,
            "head_agrees_with_teacher_head": float((probs.argmax(1) == teacher_head).mean()),
            "ensemble_agrees_with_teacher_ensemble (teacher's weights)": float(
                (together == teacher_ensemble).mean()
            ),
            "pooled_cosine_to_teacher_per_layer": cosines,
        }
        report_rows.append(row)
        print(name, {k: v for k, v in row.items() if k != "name"}, flush=True)
    voter = {
        "cut (not distilled)": voter_state_error(teacher, cut, val_batches),
        "distilled": voter_state_error(teacher, student, val_batches),
    }
    print(f"voter states, relative squared error: {voter}", flush=True)
    write_report(
        out,
        {
            "command": "python scripts/embedder_distill_trial.py "
            + f"--epochs {args.epochs} --rank {args.rank} --lr {args.lr}"
            + (f" --limit {args.limit}" if args.limit else "")
            + (f" --extra-tweets {args.extra_tweets}" if args.extra_tweets else "")
            + (f" --head-loss {args.head_loss}" if args.head_loss else "")
            + (f" --save-student {args.save_student}" if args.save_student != ADAPTER / "student.pt" else "")
            + (f" --output {args.output}" if args.output else ""),
            "texts_distilled_on": {
                "train": len(train_texts),
                "tweets (train split)": len(distil_texts) - len(train_texts),
            },
            "validation_texts": len(val_texts),
            "student_from_teacher_layers": list(STUDENT_FROM),
            "student_to_teacher_layers": {str(k): v for k, v in PAIRS.items()},
            "epoch_losses": losses,
            "distill_seconds": round(train_seconds),
            "rows": report_rows,
            "voter_states_relative_squared_error": voter,
        },
    )


if __name__ == "__main__":
    main()
