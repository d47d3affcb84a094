"""Which MatMuls of the mpnet embedder can be int8: the trials behind ``embedder.int8``.

Usage: python scripts/embedder_int8_trials.py [--texts 400] [--alphas 0.5 0.75 0.85 0.95]

Quantizes the embedder's fp32 ONNX export (made by ``selfheal export-onnx --runtime onnx`` into
the cache, or here) with dynamic int8 weights, keeping different sets of MatMuls in fp32, and
then every weight MatMul int8 after SmoothQuant at several ``alpha`` (:mod:`selfheal.model.smoothing`,
maxima measured on 256 train texts), and prints for each the mean and lowest cosine of its
features to the fp32 ones on the first ``--texts`` validation texts (never test texts), in
length-sorted batches of 32 and one text a call (how int8 runs in the app), its batched
throughput and the median time of one text. The recipe ``embedder.int8`` uses is SmoothQuant at
``alpha`` = :data:`selfheal.model.smoothing.ALPHA` with the attention products in fp32
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
from transformers import AutoModel

from selfheal.data import prepare_splits
from selfheal.errors import exit_on_user_error
from selfheal.model.embedder import SentenceEncoder, bundled_embedder_path
from selfheal.model.runtime import (
    OnnxEncoder,
    Tokenized,
    apply_threads,
    export_module,
    features_module,
    fp32_matmuls,
    length_batches,
    pad,
    quantize,
)
from selfheal.model.smoothing import ALPHA, activation_maxima, calibration_texts, smooth


def measure(
    encoder: OnnxEncoder, tokens: Tokenized, pad_id: int, dim: int
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Features of every text in length-sorted batches of 32 and one text a call, texts/s in the
    batches, median ms of one text."""
    out = np.zeros((len(tokens.ids), dim), dtype=np.float32)
    start = time.perf_counter()
    for idx in length_batches(tokens.lengths, 32, True):
        out[idx] = encoder(*pad([tokens.ids[i] for i in idx], pad_id))
    rate = len(tokens.ids) / (time.perf_counter() - start)
    alone = np.zeros_like(out)
    times = []
    for i, ids in enumerate(tokens.ids):
        one = pad([ids], pad_id)
        start = time.perf_counter()
        alone[i] = encoder(*one)
        times.append(time.perf_counter() - start)
    return out, alone, rate, 1000 * statistics.median(times[10:])


def cosine(features: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity."""
    return (
        np.sum(features * reference, 1) / np.linalg.norm(features, axis=1) / np.linalg.norm(reference, axis=1)
    )


def main() -> None:
    """Run the trials and print one line each."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--texts", type=int, default=400)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.5, ALPHA, 0.85, 0.95])
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

    trials: dict[str, tuple[Path, list[str]]] = {
        "every MatMul int8": (fp32, []),
        "attention products fp32": (fp32, attention),
        "attention + down-projections fp32 (embedder.int8 before SmoothQuant)": (fp32, attention + down),
        "attention + down-projections of layers 7-10 fp32": (fp32, attention + layers(down, range(6, 10))),
    }
    reference, _, rate, one = measure(OnnxEncoder(fp32, threads), tokens, pad_id, encoder.dim)
    print(
        f"fp32: {rate:.1f} texts/s, one text {one:.1f} ms ({len(texts)} validation texts, {threads} threads)",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        model = AutoModel.from_pretrained(encoder.path).eval()
        maxima = activation_maxima(model, encoder.tokenizer, calibration_texts())
        example = pad(encoder.tokenizer(["a short text", "a longer text to export"])["input_ids"], pad_id)
        for alpha in args.alphas:
            source = Path(tmp) / f"smoothed-{alpha}.onnx"
            smoothed = smooth(AutoModel.from_pretrained(encoder.path).eval(), maxima, alpha)
            export_module(features_module(smoothed, encoder.layers), source, example, ["features"])
            name = f"SmoothQuant alpha {alpha}, attention products fp32"
            if alpha == ALPHA:
                name += " (embedder.int8)"
            trials[name] = (source, fp32_matmuls(source, ["activation-matmuls"]))
        for name, (source, keep) in trials.items():
            target = Path(tmp) / "int8.onnx"
            quantize(source, target, keep)
            features, alone, rate, one = measure(OnnxEncoder(target, threads), tokens, pad_id, encoder.dim)
            batched, single = cosine(features, reference), cosine(alone, reference)
            print(
                f"{name}: {len(keep)} MatMuls fp32, cosine to fp32 in batches mean {batched.mean():.4f} "
                f"lowest {batched.min():.3f}, one text a call mean {single.mean():.4f} lowest "
                f"{single.min():.3f}, {rate:.1f} texts/s, one text {one:.1f} ms",
                flush=True,
            )


if __name__ == "__main__":
    exit_on_user_error(main)
