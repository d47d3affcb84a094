"""Time to the first prompt of `selfheal run`, as a ratio to baselines measured in the same run.

    .venv/bin/python benchmarks/bench_startup.py [--repeat 5]

Baselines: a bare Python start (`python -c pass`) and the eager import of the ML stack that
`selfheal run` defers to a background thread (`import torch, transformers, peft, langgraph`).
Prints medians in seconds and the ratios; nothing is asserted (timings belong here, not in tests).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pexpect

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROMPT = "> Enter text (or 'quit'):"


def _time_command(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - start


def _time_to_prompt(workdir: str) -> float:
    env = dict(os.environ, NO_COLOR="1", TERM="dumb", HF_HUB_OFFLINE="1")
    start = time.perf_counter()
    child = pexpect.spawn(
        str(BIN / "selfheal"),
        ["run", "--set", "paths.log_dir=logs"],
        cwd=workdir,
        env=env,
        encoding="utf-8",
        timeout=120,
    )
    child.expect_exact(PROMPT)
    elapsed = time.perf_counter() - start
    child.sendline("quit")
    child.expect(pexpect.EOF)
    child.close()
    return elapsed


def main() -> None:
    """Measure and print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    python = str(BIN / "python")
    work = tempfile.mkdtemp(prefix="selfheal-bench-")
    rows = {
        "python -c pass": [_time_command([python, "-c", "pass"]) for _ in range(args.repeat)],
        "import torch, transformers, peft, langgraph": [
            _time_command([python, "-c", "import torch, transformers, peft, langgraph"])
            for _ in range(args.repeat)
        ],
        "selfheal run: time to prompt": [_time_to_prompt(work) for _ in range(args.repeat)],
    }
    medians = {name: statistics.median(values) for name, values in rows.items()}
    prompt = medians["selfheal run: time to prompt"]
    print(f"{'measurement':48s} {'median s':>9s} {'min s':>7s} {'max s':>7s}")
    for name, values in rows.items():
        print(f"{name:48s} {medians[name]:9.3f} {min(values):7.3f} {max(values):7.3f}")
    print(
        f"time to prompt / eager ML imports: {prompt / medians['import torch, transformers, peft, langgraph']:.2f}"
    )
    print(f"time to prompt / bare python start: {prompt / medians['python -c pass']:.2f}")
    print(f"({args.repeat} runs each, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
