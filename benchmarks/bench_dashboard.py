"""The dashboard's Analytics page on a large log: the first (cold) read and the cached reruns.

    .venv/bin/python benchmarks/bench_dashboard.py [--lines 100000] [--repeat 3]

The log is synthetic but made of real records: the lines of ``logs/sample/app.jsonl`` (written by
the real graph, see ``logs/sample/README.md``) repeated until ``--lines``, each copy with new
request ids (a reviewed request's two records keep sharing theirs) and timestamps spread evenly
over 30 days, plus one damaged line per 10,000. Measured, each ``--repeat`` times (median shown):

* ``read``: :func:`selfheal.dashboard.data.read_table` alone (``selfheal stats``'s reader into a
  pandas table), no cache;
* the Analytics page through ``streamlit.testing.v1.AppTest`` (the script run the server does for
  a browser, without the browser's drawing): ``cold`` with empty caches, ``cached`` the same page
  again, ``new N`` with another N (the table from the cache, the aggregation computed again),
  ``new time range`` with another range.

Prints the figures and the ratios cold / cached; nothing is asserted (timings belong here, not in
tests). Say which machine and load produced a figure when you copy it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "logs" / "sample" / "app.jsonl"
DAMAGED_EVERY = 10_000
SPAN = timedelta(days=30)
SET_ENV = "SELFHEAL_DASHBOARD_SET"  # selfheal.dashboard.SET_ENV (imported in main, after argparse)


def write_log(path: Path, lines: int) -> int:
    """Write ``lines`` lines made of the sample's records; returns the file's size in bytes."""
    sample = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    start = datetime(2026, 10, 1, tzinfo=UTC)
    step = SPAN / lines
    with path.open("w", encoding="utf-8") as out:
        ids: dict[str, str] = {}
        for n in range(lines):
            if n % len(sample) == 0:
                ids = {}  # a new copy of the sample: new request ids
            if n % DAMAGED_EVERY == DAMAGED_EVERY - 1:
                out.write('{"timestamp": "2026-10-\n')  # a line cut short by a crash
                continue
            record = dict(sample[n % len(sample)])
            record["request_id"] = ids.setdefault(record["request_id"], str(uuid.uuid4()))
            record["timestamp"] = (start + n * step).isoformat(timespec="milliseconds")
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path.stat().st_size


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def cached_rerun_of(logs: Path, app_test: type, app: Path) -> float:
    """The Analytics page's cached rerun over the log in ``logs`` (run once first to fill the cache)."""
    os.environ[SET_ENV] = json.dumps([f"paths.log_dir={logs}"])
    at = app_test.from_file(str(app), default_timeout=600)
    at.run()
    at.switch_page("pages/analytics.py")
    at.run()
    return timed(at.run)


def main() -> None:
    """Generate the log, time the reads, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the generated log")
    args = parser.parse_args()

    from streamlit.testing.v1 import AppTest

    from selfheal.dashboard import APP, CONFIG_ENV, data

    home = Path(tempfile.mkdtemp(prefix="selfheal-bench-dash-"))
    logs = home / "logs"
    logs.mkdir()
    size = write_log(logs / "app.jsonl", args.lines)
    tiny = home / "tiny"  # the sample itself (12 lines): the page's cost without a large log
    tiny.mkdir()
    shutil.copy(SAMPLE, tiny / "app.jsonl")
    os.environ[CONFIG_ENV] = str(REPO / "config.yaml")
    os.environ[SET_ENV] = json.dumps([f"paths.log_dir={logs}", f"paths.clarified={home / 'clarified.jsonl'}"])
    print(
        f"log: {args.lines:,} lines, {size / 1e6:.1f} MB ({logs / 'app.jsonl'}); load {os.getloadavg()[0]:.2f}"
    )

    read, cold, cached, new_n, new_range, small = [], [], [], [], [], []
    table = None
    for _ in range(args.repeat):
        read.append(timed(lambda: data.read_table(logs / "app.jsonl")))
        for cached_function in (data.load, data.overview, data.summarise):
            cached_function.clear()
        at = AppTest.from_file(str(APP), default_timeout=600)
        at.run()
        at.switch_page("pages/analytics.py")
        cold.append(timed(at.run))
        if at.exception or at.error:
            raise SystemExit(f"the page failed: {[e.value for e in [*at.exception, *at.error]]}")
        cached.append(timed(at.run))
        at.number_input[0].set_value(1000)
        new_n.append(timed(at.run))
        low, high = at.slider[0].value
        at.slider[0].set_range(low + (high - low) / 2, high)
        new_range.append(timed(at.run))
        table = {m.label: m.value for m in at.metric}
        small.append(cached_rerun_of(tiny, AppTest, APP))
        os.environ[SET_ENV] = json.dumps([f"paths.log_dir={logs}"])
    print(f"requests on the page (second half of the range): {table}")
    rows = [
        ("read_table (no cache)", read),
        ("page, cold (empty caches)", cold),
        ("page, cached rerun", cached),
        ("page, new N (cached table)", new_n),
        ("page, new time range (cached table)", new_range),
        ("page, cached rerun, 12-line log", small),
    ]
    for name, times in rows:
        print(
            f"  {name:<38} median {statistics.median(times):8.3f} s  (runs: {', '.join(f'{t:.3f}' for t in times)})"
        )
    print(f"cold / cached rerun: {statistics.median(cold) / statistics.median(cached):.0f}x")
    print(
        f"cached rerun, 100,000 lines / 12 lines: {statistics.median(cached) / statistics.median(small):.2f}x"
    )
    print(f"load after: {os.getloadavg()[0]:.2f}")
    if not args.keep:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
