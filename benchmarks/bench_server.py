"""Load check of ``selfheal serve``: N concurrent clients against one server (or two replicas),
as ratios to the bare model forward measured in the same run.

    .venv/bin/python benchmarks/bench_server.py [--clients 4] [--requests 200] [--max-seconds 120]
    .venv/bin/python benchmarks/bench_server.py --db postgresql://USER@HOST/DB --replicas 2

1. The bare forward: ``Classifier.predict([text])`` on the benchmark texts, one text per call (what
   one ``/v1/classify`` asks of the model), in a worker thread of this process (as the server runs
   it), before and again after the server run, pooled (the machine's load may change between
   them): per-call latency and calls per second.
2. The server: ``selfheal serve`` as real processes on loopback ports (one, or ``--replicas``
   sharing the database: the CLI's SQLite file by default, or ``--db``), its files in a temporary
   directory; ``--clients`` threads, each with its own ``httpx`` client, send ``POST /v1/classify``
   for the same texts (round robin over the replicas) until ``--requests`` are done or
   ``--max-seconds`` pass; a request that pauses at a question counts when its interrupt comes
   back (nobody answers it). 503s (``server.max_inflight``) are counted, not retried.

The texts are the test-split snippets (timing only). Prints throughput, p50 and p95 latency of
both, and the ratios. Nothing is asserted; say which machine and load produced a figure when you
copy it (the load average is printed before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bench_texts(count: int) -> list[str]:
    """The first ``count`` test-split snippets."""
    from selfheal.data import prepare_splits

    return list(prepare_splits("rotten_tomatoes", 0.1, 0.1, 42)["test"]["text"][:count])


def load_classifier(overrides: list[str]) -> Any:
    """The classifier ``selfheal serve`` loads for the same config."""
    from selfheal.config import load_config
    from selfheal.model.checkpoint import quiet_hf
    from selfheal.model.classifier import Classifier

    quiet_hf()
    return Classifier.from_config(load_config(REPO / "config.yaml", overrides))


def bare_forward(classifier: Any, texts: list[str]) -> tuple[list[float], float]:
    """``Classifier.predict([text])`` per text in a worker thread, as the server calls it (on this
    machine, under load, the same calls from the main thread were several times slower): the
    latencies and the wall time."""
    out: list[tuple[list[float], float]] = []
    worker = threading.Thread(target=lambda: out.append(_forward(classifier, texts)))
    worker.start()
    worker.join()
    return out[0]


def _forward(classifier: Any, texts: list[str]) -> tuple[list[float], float]:
    classifier.predict(texts[:4])  # warm-up
    latencies = []
    start = time.perf_counter()
    for text in texts:
        t0 = time.perf_counter()
        classifier.predict([text])
        latencies.append(time.perf_counter() - t0)
    return latencies, time.perf_counter() - start


def summary(latencies: list[float], wall: float, done: int) -> dict[str, float]:
    """Requests per second, p50 and p95 latency (ms)."""
    return {
        "n": float(done),
        "per_s": done / wall,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
    }


def start_servers(
    replicas: int, db: str | None, log_dir: Path, overrides: list[str]
) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    """``selfheal serve`` processes on free loopback ports; waits until each is ready."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("SELFHEAL_TOKEN", None)
    env.pop("SELFHEAL_REVIEW_TOKEN", None)
    procs, urls = [], []
    for _ in range(replicas):
        port = free_port()
        argv = [sys.executable, "-m", "selfheal", "serve", "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--config", str(REPO / "config.yaml")]
        argv += [arg for item in overrides for arg in ("--set", item)]
        argv += ["--db", db] if db else []
        log = (log_dir / f"serve-{port}.txt").open("wb")
        procs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=log_dir))
        urls.append(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 300
    for proc, url in zip(procs, urls, strict=True):
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"selfheal serve exited with {proc.returncode}; see {log_dir}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"selfheal serve at {url} not ready after 300 s")
            time.sleep(0.5)
    return procs, urls


def load(urls: list[str], texts: list[str], clients: int, max_seconds: float) -> dict[str, Any]:
    """``clients`` threads sending ``POST /v1/classify`` for ``texts`` (each once)."""
    lock = threading.Lock()
    queue = list(enumerate(texts))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    interrupted = 0
    stop_at = time.monotonic() + max_seconds

    def client(n: int) -> None:
        nonlocal interrupted
        with httpx.Client(timeout=120) as http:
            while time.monotonic() < stop_at:
                with lock:
                    if not queue:
                        return
                    i, text = queue.pop(0)
                url = urls[i % len(urls)]
                t0 = time.perf_counter()
                response = http.post(f"{url}/v1/classify", json={"text": text})
                elapsed = time.perf_counter() - t0
                with lock:
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    if response.status_code == 200:
                        latencies.append(elapsed)
                        interrupted += response.json()["status"] == "interrupted"

    for url in urls:  # warm-up, not measured
        httpx.post(f"{url}/v1/classify", json={"text": "A warm, funny and moving film."}, timeout=120)
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    result: dict[str, Any] = summary(latencies, wall, len(latencies)) if latencies else {"n": 0.0}
    result["statuses"] = statuses
    result["interrupted"] = interrupted
    return result


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (1-64)")
    parser.add_argument("--requests", type=int, default=200, help="requests in all (texts of the test split)")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="stop sending after this long")
    parser.add_argument("--db", default=None, help="sqlite (default) or a postgresql:// URL")
    parser.add_argument("--replicas", type=int, default=1, help="server processes on the same database")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override")
    args = parser.parse_args()
    if not 1 <= args.clients <= 64 or not 1 <= args.requests <= 5000 or args.replicas not in (1, 2):
        raise SystemExit("--clients 1-64, --requests 1-5000, --replicas 1 or 2")
    texts = bench_texts(args.requests)
    print(f"load average before: {os.getloadavg()[0]:.2f}  (cores: {os.cpu_count()})", flush=True)
    classifier = load_classifier(args.overrides)
    before, before_wall = bare_forward(classifier, texts)
    print(f"bare forward (before): {summary(before, before_wall, len(texts))}", flush=True)
    with tempfile.TemporaryDirectory(prefix="selfheal-bench-server-") as tmp:
        log_dir = Path(tmp)
        overrides = [f"paths.log_dir={log_dir / 'logs'}", f"paths.clarified={log_dir / 'clarified.jsonl'}"]
        procs, urls = start_servers(args.replicas, args.db, log_dir, overrides + args.overrides)
        try:
            served = load(urls, texts, args.clients, args.max_seconds)
        finally:
            for proc in procs:
                proc.terminate()  # SIGTERM: uvicorn finishes what is in flight
            for proc in procs:
                proc.wait(timeout=60)
        logged = [
            json.loads(line)["inference"]["latency_ms"]
            for line in (log_dir / "logs" / "app.jsonl").read_text(encoding="utf-8").splitlines()
        ]
    after, after_wall = bare_forward(classifier, texts)  # the load may have changed: pool both
    print(f"bare forward (after): {summary(after, after_wall, len(texts))}", flush=True)
    bare = summary(before + after, before_wall + after_wall, 2 * len(texts))
    print(
        f"bare forward: {bare['n']:.0f} calls, {bare['per_s']:.1f}/s, p50 {bare['p50_ms']:.1f} ms, "
        f"p95 {bare['p95_ms']:.1f} ms"
    )
    where = f"{args.replicas} replica(s) on {args.db or 'SQLite'}"
    print(
        f"server ({where}, {args.clients} clients): {served['n']:.0f} answered "
        f"({served['interrupted']} paused at a question), statuses {served['statuses']}"
    )
    if served["n"]:
        print(f"  {served['per_s']:.1f}/s, p50 {served['p50_ms']:.1f} ms, p95 {served['p95_ms']:.1f} ms")
        print(
            f"ratios server/bare: throughput {served['per_s'] / bare['per_s']:.2f}x, "
            f"p50 {served['p50_ms'] / bare['p50_ms']:.2f}x, p95 {served['p95_ms'] / bare['p95_ms']:.2f}x"
        )
    if logged:  # the model's own time inside the server (InferenceNode's latency_ms in the records)
        print(
            f"model time inside the server, waiting for the models' lock included (app.jsonl latency_ms, {len(logged)} records): "
            f"p50 {percentile(logged, 0.5):.1f} ms, p95 {percentile(logged, 0.95):.1f} ms"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
