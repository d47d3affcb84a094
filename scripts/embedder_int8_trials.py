"""Which MatMuls of the mpnet embedder can be int8: the trials behind ``embedder.int8``.

Usage: python scripts/embedder_int8_trials.py [--texts 400]

Quantizes the embedder's fp32 ONNX export (made by ``selfheal export-onnx --runtime onnx`` into
the cache, or here) with dynamic int8 weights, keeping different sets of MatMuls in fp32, and
prints for each the mean and lowest cosine of its features to the fp32 ones on the first
``--texts`` validation texts (never test texts), its batched throughput on them and the median
time of one text. The recipe ``embedder.int8`` uses is ``attention + down-projections``
(:data:`selfheal.model.embedder.EMBEDDER_FP32_RULES`).
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from selfheal.data import prepare_splits
from selfheal.errors import exit_on_user_error
from selfheal.model.embedder import SentenceEncoder, bundled_embedder_path
from selfheal.model.runtime import (
    OnnxEncoder,
    Tokenized,
    apply_threads,
    fp32_matmuls,
    length_batches,
    pad,
    quantize,
)


def measure(
    encoder: OnnxEncoder, tokens: Tokenized, pad_id: int, dim: int
) -> tuple[np.ndarray, float, float]:
    """Features of every text, texts/s in length-sorted batches of 32, median ms of one text."""
    out = np.zeros((len(tokens.ids), dim), dtype=np.float32)
    start = time.perf_counter()
    for idx in length_batches(tokens.lengths, 32, True):
        out[idx] = encoder(*pad([tokens.ids[i] for i in idx], pad_id))
    rate = len(tokens.ids) / (time.perf_counter() - start)
    times = []
    for ids in tokens.ids[:60]:
        one = pad([ids], pad_id)
        start = time.perf_counter()
        encoder(*one)
        times.append(time.perf_counter() - start)
    return out, rate, 1000 * statistics.median(times[10:])


def main() -> None:
    """Run the trials and print one line each."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--texts", type=int, default=400)
    args = parser.parse_args()
    encoder = SentenceEncoder(str(bundled_embedder_path()), (4, 6, 8, 10, 12), runtime="onnx")
    fp32 = encoder.export("onnx")
    texts = list(prepare_splits("rotten_tomatoes", 0.1, 0.1, 42)["validation"]["text"])[: args.texts]
    tokens = Tokenized(encoder.tokenizer, texts, 128)
    pad_id = encoder.tokenizer.pad_token_id or 0
    threads = apply_threads(None)
    attention = fp32_matmuls(fp32, ["activation-matmuls"])
    down = fp32_matmuls(fp32, ["down-projections"])

    def layers(names: list[str], keep: range) -> list[str]:
        return [n for n in names if (m := re.search(r"layer\.(\d+)/", n)) and int(m.group(1)) in keep]

    trials = {
        "every MatMul int8": [],
        "attention products fp32": attention,
        "attention + down-projections fp32 (embedder.int8)": attention + down,
        "attention + down-projections of layers 7-10 fp32": attention + layers(down, range(6, 10)),
    }
    reference, rate, one = measure(OnnxEncoder(fp32, threads), tokens, pad_id, encoder.dim)
    print(
        f"fp32: {rate:.1f} texts/s, one text {one:.1f} ms ({len(texts)} validation texts, {threads} threads)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name, keep in trials.items():
            target = Path(tmp) / "int8.onnx"
            quantize(fp32, target, keep)
            features, rate, one = measure(OnnxEncoder(target, threads), tokens, pad_id, encoder.dim)
            cosine = (
                np.sum(features * reference, 1)
                / np.linalg.norm(features, axis=1)
                / np.linalg.norm(reference, axis=1)
            )
            print(
                f"{name}: {len(keep)} MatMuls fp32, cosine to fp32 mean {cosine.mean():.4f} lowest "
                f"{cosine.min():.3f}, {rate:.1f} texts/s, one text {one:.1f} ms"
            )


if __name__ == "__main__":
    exit_on_user_error(main)
