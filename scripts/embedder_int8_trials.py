"""Which MatMuls of the mpnet embedder can be int8: the trials behind ``embedder.int8``.

Usage: python scripts/embedder_int8_trials.py [--texts 400] [--alphas 0.5 0.75 0.85 0.95]
       python scripts/embedder_int8_trials.py --per-token [--texts 400]

Quantizes the embedder's fp32 ONNX export (made by ``selfheal export-onnx --runtime onnx`` into
the cache, or here) with dynamic int8 weights, keeping different sets of MatMuls in fp32, and
then every weight MatMul int8 after SmoothQuant at several ``alpha`` (:mod:`selfheal.model.smoothing`,
maxima measured on 256 train texts), and prints for each the mean and lowest cosine of its
features to the fp32 ones on the first ``--texts`` validation texts (never test texts), in
length-sorted batches of 32 and one text a call (how int8 runs in the app), its batched
throughput and the median time of one text. The recipe ``embedder.int8`` uses is SmoothQuant at
``alpha`` = :data:`selfheal.model.smoothing.ALPHA` with the attention products in fp32
(:data:`selfheal.model.embedder.EMBEDDER_FP32_RULES`).

``--per-token`` runs that recipe only, as it is and with per-token activation scales
(:func:`per_token`): each token's activations get their own int8 scale, so a text's features
would not depend on the texts batched with it, and int8 could run in batches instead of one text
a call. It prints the same figures for both, and the largest difference between a text's
features in a batch and alone. The per-token file runs without ONNX Runtime's operator fusion
(``OnnxEncoder(fuse=False)``) and, to show why, with it: the fused int8 MatMul takes one
activation scale per tensor and computes a per-token file wrongly.
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


def per_token(source: Path, target: Path) -> int:
    """Write ``source`` (an int8 file from :func:`~selfheal.model.runtime.quantize`) to
    ``target`` with each ``DynamicQuantizeLinear`` (one scale and zero point for the whole
    activation tensor, the batch included) replaced by per-token symmetric quantization: scale
    ``max|x| / 127`` over each row's last axis, zero point 128 for every row (ONNX Runtime's
    ``MatMulInteger`` takes only a scalar one). The scale keeps the row's shape, so the
    ``Mul`` by the weight's per-channel scales that follows broadcasts it. Returns how many
    it replaced."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(127.0, np.float32), "per_token_127"),
            numpy_helper.from_array(np.array(128.0, np.float32), "per_token_128"),
            numpy_helper.from_array(np.array(1e-12, np.float32), "per_token_tiny"),
            numpy_helper.from_array(np.array(128, np.uint8), "per_token_zero_point"),
        ]
    )
    nodes, replaced = [], 0
    for node in graph.node:
        if node.op_type != "DynamicQuantizeLinear":
            nodes.append(node)
            continue
        x, (quantized, scale, zero_point), p = node.input[0], node.output, node.name + "/per_token"
        nodes += [
            helper.make_node("Abs", [x], [p + "/abs"]),
            helper.make_node("ReduceMax", [p + "/abs"], [p + "/max"], axes=[-1], keepdims=1),
            helper.make_node("Max", [p + "/max", "per_token_tiny"], [p + "/max_or_tiny"]),
            helper.make_node("Div", [p + "/max_or_tiny", "per_token_127"], [scale]),
            helper.make_node("Div", [x, scale], [p + "/scaled"]),
            helper.make_node("Round", [p + "/scaled"], [p + "/rounded"]),
            helper.make_node("Add", [p + "/rounded", "per_token_128"], [p + "/shifted"]),
            helper.make_node("Cast", [p + "/shifted"], [quantized], to=TensorProto.UINT8),
            helper.make_node("Identity", ["per_token_zero_point"], [zero_point]),
        ]
        replaced += 1
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # shapes recorded for the old scalar scales no longer hold
    onnx.save(model, str(target))
    return replaced


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


def report(name: str, measured: tuple[np.ndarray, np.ndarray, float, float], reference: np.ndarray) -> None:
    """One line: the features' cosine to fp32 in batches and one text a call, how far a text's
    features in a batch are from its features alone, texts/s in batches, ms for one text."""
    features, alone, rate, one = measured
    batched, single = cosine(features, reference), cosine(alone, reference)
    print(
        f"{name}: cosine to fp32 in batches mean {batched.mean():.4f} lowest {batched.min():.3f}, "
        f"one text a call mean {single.mean():.4f} lowest {single.min():.3f}, batched - alone "
        f"at most {np.abs(features - alone).max():.2g}, {rate:.1f} texts/s in batches of 32, "
        f"one text {one:.1f} ms",
        flush=True,
    )


def main() -> None:
    """Run the trials and print one line each."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--texts", type=int, default=400)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.5, ALPHA, 0.85, 0.95])
    parser.add_argument(
        "--per-token", action="store_true", help="the embedder.int8 recipe with per-token scales"
    )
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

        def smoothed_export(alpha: float) -> Path:
            source = Path(tmp) / f"smoothed-{alpha}.onnx"
            smoothed = smooth(AutoModel.from_pretrained(encoder.path).eval(), maxima, alpha)
            export_module(features_module(smoothed, encoder.layers), source, example, ["features"])
            return source

        if args.per_token:
            source = smoothed_export(ALPHA)
            target, rewritten = Path(tmp) / "int8.onnx", Path(tmp) / "int8-per-token.onnx"
            quantize(source, target, fp32_matmuls(source, ["activation-matmuls"]))
            count = per_token(target, rewritten)
            for name, runner in (
                ("embedder.int8 (one scale per activation tensor)", OnnxEncoder(target, threads)),
                (
                    f"the same, per-token scales ({count} activations), no fusion",
                    OnnxEncoder(rewritten, threads, fuse=False),
                ),
                ("the same, per-token scales, ONNX Runtime's fusion on", OnnxEncoder(rewritten, threads)),
            ):
                report(name, measure(runner, tokens, pad_id, encoder.dim), reference)
            return
        for alpha in args.alphas:
            source = smoothed_export(alpha)
            name = f"SmoothQuant alpha {alpha}, attention products fp32"
            if alpha == ALPHA:
                name += " (embedder.int8)"
            trials[name] = (source, fp32_matmuls(source, ["activation-matmuls"]))
        for name, (source, keep) in trials.items():
            target = Path(tmp) / "int8.onnx"
            quantize(source, target, keep)
            report(
                f"{name}: {len(keep)} MatMuls fp32",
                measure(OnnxEncoder(target, threads), tokens, pad_id, encoder.dim),
                reference,
            )


if __name__ == "__main__":
    exit_on_user_error(main)
