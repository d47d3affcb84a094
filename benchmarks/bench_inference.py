"""What the frozen sentence embedder costs: load time and per-request latency of the shipped
classifier, as ratios to the same checkpoint without it (`embedder.enabled=false`), measured in
the same run.

    .venv/bin/python benchmarks/bench_inference.py [--repeat 30] [--loads 3]

One request is one text, as in `selfheal run`. The texts are real validation snippets (never
test texts). Prints medians in milliseconds and the ratios; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time

from selfheal.model.classifier import Classifier


def _median_request_ms(classifier: Classifier, texts: list[str]) -> float:
    times = []
    for text in texts:
        start = time.perf_counter()
        classifier.predict([text])
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main() -> None:
    """Time loading and single-text prediction with and without the embedder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="requests timed per configuration")
    parser.add_argument("--loads", type=int, default=3, help="loads timed per configuration")
    args = parser.parse_args()
    from selfheal.data import prepare_splits

    texts = list(prepare_splits("rotten_tomatoes", 0.1, 0.1, 42)["validation"]["text"][: args.repeat])
    Classifier.load(None, use_embedder=True)  # first import of the libraries, page cache: untimed
    results = {}
    for name, use in (("without embedder (baseline)", False), ("with embedder (shipped)", True)):
        loads = []
        for _ in range(args.loads):
            start = time.perf_counter()
            classifier = Classifier.load(None, use_embedder=use)
            loads.append(1000 * (time.perf_counter() - start))
        load_ms = statistics.median(loads)
        classifier.predict([texts[0]])  # warm-up
        request_ms = _median_request_ms(classifier, texts)
        results[name] = (load_ms, request_ms)
        print(
            f"{name:30s} load (median of {args.loads}) {load_ms:6.0f} ms | one request, median of {args.repeat}: {request_ms:6.1f} ms"
        )
    (base_load, base_req), (load, req) = results.values()
    print(f"ratio with/without: load {load / base_load:.1f}x, per request {req / base_req:.1f}x")


if __name__ == "__main__":
    from selfheal.errors import exit_on_user_error

    exit_on_user_error(main)
