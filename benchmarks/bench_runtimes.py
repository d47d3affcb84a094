"""The forward pass of each model runtime on the same validation texts, in one run, as ratios to
today's baseline (the LoRA adapter unmerged, batches in input order).

    .venv/bin/python benchmarks/bench_runtimes.py [--texts 512] [--repeat 1] [--threads N]

MiniLM: ``Classifier.encoder_logits`` (logits of the fine-tuned transformer alone, batches of 128);
embedder: ``SentenceEncoder.encode`` (the mpnet features of the ensemble's head, batches of 32).
The ONNX files are exported into ``$SELFHEAL_CACHE/onnx`` first, untimed. Prints seconds (best of
``--repeat``), texts/s, ratios, the argmax agreement of each runtime's MiniLM logits with the
baseline's, and the load average before and after; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

from selfheal.model.classifier import Classifier

# name -> (Classifier.load keyword arguments, batches sorted by token length)
MINILM = {
    "torch, LoRA unmerged, input order (baseline)": ({"runtime": "torch", "merge": False}, False),
    "torch, LoRA unmerged, length-sorted": ({"runtime": "torch", "merge": False}, True),
    "torch, LoRA merged, length-sorted": ({"runtime": "torch"}, True),
    "onnx (fp32), length-sorted": ({"runtime": "onnx"}, True),
    "onnx-int8, length-sorted": ({"runtime": "onnx-int8"}, True),
}
# The embedder's batches were sorted by characters before; by tokens now (about the same padding).
EMBEDDER = {
    "torch (bf16 where available), length-sorted (baseline)": ({"runtime": "torch"}, True),
    "onnx (fp32; onnx-int8 with embedder.int8=false), length-sorted": ({"runtime": "onnx"}, True),
    "onnx-int8 (embedder.int8: smoothed, one text a call)": (
        {"runtime": "onnx-int8", "embedder_int8": True},
        True,
    ),
}


def best_seconds(run: Callable[[list[str]], Any], texts: list[str], repeat: int) -> tuple[float, Any]:
    """The shortest of ``repeat`` timed calls ``run(texts)`` (after an untimed warm-up on a few of
    them) and the last result."""
    run(texts[:16])
    result = None
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = run(texts)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    """Time every runtime's MiniLM and embedder forward on the same texts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=512, help="validation texts")
    parser.add_argument("--repeat", type=int, default=1, help="timed passes per runtime (best kept)")
    parser.add_argument("--threads", type=int, default=None, help="model.threads (default: null)")
    args = parser.parse_args()
    from selfheal.data import prepare_splits

    texts = list(prepare_splits("rotten_tomatoes", 0.1, 0.1, 42)["validation"]["text"][: args.texts])
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    base_logits = None
    for title, configs, member in (
        ("MiniLM encoder_logits", MINILM, False),
        ("embedder encode", EMBEDDER, True),
    ):
        print(f"\n{title}, {len(texts)} validation texts:")
        baseline = None
        for name, (kwargs, sort) in configs.items():
            classifier = Classifier.load(
                None, use_embedder=member, use_knowability=False, threads=args.threads, **kwargs
            )
            if member:
                encoder = classifier._embedder.encoder
                encoder.sort_by_length = sort
                seconds, _ = best_seconds(encoder.encode, texts, args.repeat)
                agreement = ""
            else:
                classifier.sort_by_length = sort
                seconds, logits = best_seconds(classifier.encoder_logits, texts, args.repeat)
                base_logits = logits if base_logits is None else base_logits
                agree = float((logits.argmax(1) == base_logits.argmax(1)).mean())
                agreement = f" | argmax agreement {agree:.1%}"
            baseline = baseline or seconds
            print(
                f"  {name:55s} {seconds:7.2f} s {len(texts) / seconds:7.1f} texts/s "
                f"| {baseline / seconds:4.2f}x the baseline's speed{agreement} "
                f"| {classifier.threads} threads"
            )
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    from selfheal.errors import exit_on_user_error

    exit_on_user_error(main)
