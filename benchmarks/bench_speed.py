"""Issue 14's speed figures, each a ratio to a baseline measured in the same run.

    .venv/bin/python benchmarks/bench_speed.py [--only NAME ...] [--baseline-rev REV] [--set KEY=VALUE ...]
    make bench

"Today" (the baseline of the start-up and of the old classify path) is the code at
``--baseline-rev`` (default: the last commit before issue 14's speed work), checked out into a
temporary git worktree and run with this interpreter, so both sides share the machine, the
libraries, the page cache and the moment. In-process baselines (the old ``Classifier.predict``,
the LoRA-only request) are the old code paths, kept callable for this (``runtime="torch-peft"``).

The texts are the 1,276 test-split snippets (timing only: nothing is fitted on them). Prints a
table of medians and the ratios the issue sets targets for; nothing is asserted (timings belong
here, not in tests). Say which machine and load produced a figure when you copy it. ``--set``
changes the new path's config (e.g. ``--set embedder.int8=true``), in process and in the
``selfheal classify`` runs alike.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BASELINE_REV = "928e987"  # main before issue 14 (batched decisions, merged/ONNX encoders)
PROMPT = "> Enter text (or 'quit'):"
ANSWER = "[InferenceNode] Predicted label:"


def env_for(src: Path) -> dict[str, str]:
    """The environment of a ``selfheal`` process importing the package from ``src``."""
    return dict(
        os.environ,
        PYTHONPATH=str(src),
        NO_COLOR="1",
        TERM="dumb",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )


@contextlib.contextmanager
def baseline_tree(rev: str) -> Iterator[Path]:
    """The ``src`` folder of ``rev``, checked out into a temporary git worktree."""
    where = Path(tempfile.mkdtemp(prefix="selfheal-baseline-"))
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(where / "tree"), rev],
        check=True,
        capture_output=True,
    )
    try:
        yield where / "tree" / "src"
    finally:
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(where / "tree")],
            check=False,
            capture_output=True,
        )


def run_measured(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Run a process to completion: (wall seconds, peak RSS in MiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])}... failed: {proc.stderr.read().decode()[-500:]}")  # type: ignore[union-attr]
    return wall, usage.ru_maxrss / 1024


def classify_argv(file: Path, log_dir: Path, *sets: str) -> list[str]:
    """``selfheal classify --json --file FILE`` with its log in ``log_dir`` (and ``--set`` each of
    ``sets``)."""
    return [
        sys.executable,
        "-m",
        "selfheal",
        "classify",
        "--json",
        "--file",
        str(file),
        "--set",
        f"paths.log_dir={log_dir}",
        "--set",
        f"paths.clarified={log_dir / 'clarified.jsonl'}",
        *(arg for item in sets for arg in ("--set", item)),
    ]


def write_lines(path: Path, texts: list[str], n: int) -> Path:
    """``n`` lines cycling through ``texts`` (numbered after the first pass, so no two repeat)."""
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            text = texts[i % len(texts)]
            fh.write((text if i < len(texts) else f"{text} ({i // len(texts)})") + "\n")
    return path


def time_to_first_answer(src: Path, text: str, work: Path) -> float:
    """Seconds from launching ``selfheal run`` to its first answer, the text typed at once."""
    import pexpect

    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    child = pexpect.spawn(
        sys.executable,
        [
            "-m",
            "selfheal",
            "run",
            "--set",
            f"paths.log_dir={work / 'logs'}",
            "--accept",
            "0",
            "--clarify",
            "0",
        ],
        cwd=str(work),
        env=env_for(src),
        encoding="utf-8",
        timeout=300,
    )
    child.sendline(text)  # typed before the prompt appears: the terminal buffers it
    child.expect_exact(ANSWER)
    elapsed = time.perf_counter() - start
    child.sendline("quit")
    child.expect(pexpect.EOF)
    child.close()
    return elapsed


def median_of(repeat: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    """The median of ``repeat`` measurements, and all of them."""
    values = [measure() for _ in range(repeat)]
    return statistics.median(values), values


class Report:
    """Rows of (measurement, value, unit) and ratios against their targets, printed at the end."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str]] = []
        self.ratios: list[tuple[str, float, str]] = []

    def row(self, name: str, value: str) -> None:
        self.rows.append((name, value))
        print(f"  {name}: {value}", flush=True)

    def ratio(self, name: str, value: float, target: str) -> None:
        self.ratios.append((name, value, target))
        print(f"  => {name}: {value:.2f}x (target {target})", flush=True)

    def print(self) -> None:
        width = max(len(name) for name, _ in self.rows + [(n, "") for n, _, _ in self.ratios])
        print("\n| measurement | value |\n|---|---|")
        for name, value in self.rows:
            print(f"| {name} | {value} |")
        print("\n| ratio | value | target |\n|---|---|---|")
        for name, value, target in self.ratios:
            print(f"| {name:{width}s} | {value:.2f}x | {target} |")
        load = os.getloadavg()
        print(f"\n({os.cpu_count()} CPUs; load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")


def load_classifier(**kwargs: object) -> Any:
    """``Classifier.load`` of the shipped checkpoint with ``kwargs``; ``baseline=True`` gives
    today's path: the PEFT wrapper unmerged, batches of the MiniLM in input order."""
    from selfheal.model.classifier import Classifier

    baseline = bool(kwargs.pop("baseline", False))
    if baseline:
        kwargs.update(runtime="torch", merge=False)
    classifier = Classifier.load(None, **kwargs)  # type: ignore[arg-type]
    if baseline:
        classifier.sort_by_length = False
        uncast_embedder(classifier)
    return classifier


def uncast_embedder(classifier: Any) -> None:
    """Today's torch embedder let autocast cast its fp32 ``Linear`` weights to bfloat16 on every
    call; ``TorchEncoder`` now casts them once at load. Put them back in fp32 (exactly: they are
    bfloat16 values now) so that the baseline pays those casts again, with the same numbers."""
    import torch

    sentence = getattr(getattr(classifier, "_embedder", None), "encoder", None)
    encoder = getattr(sentence, "_encoder", None)
    if encoder is None or not getattr(encoder, "bf16", False):
        return
    for layer in encoder.module.modules():
        if isinstance(layer, torch.nn.Linear):
            layer.float()


@dataclass
class Setup:
    """The new path: config.yaml with the benchmark's ``--set`` overrides (``sets``)."""

    config: Any
    sets: list[str]

    def classifier(self) -> Any:
        """The shipped checkpoint loaded as this config says (runtime, threads, embedder.int8)."""
        from selfheal.model.classifier import Classifier

        return Classifier.from_config(self.config)

    def __str__(self) -> str:
        int8 = ", embedder.int8" if self.config.embedder.int8 else ""
        return f"runtime {self.config.model.runtime}{int8}"


def texts_of(split: str) -> list[str]:
    """The texts of one split of the movie data (the shipped model's splits)."""
    from selfheal.data import prepare_splits

    return list(prepare_splits("rotten_tomatoes", 0.1, 0.1, 42)[split]["text"])


def timed(run: Callable[[], object]) -> float:
    """Seconds one call takes."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def clocked(run: Callable[..., Any], into: Callable[..., list[float]]) -> Callable[..., Any]:
    """``run``, with the seconds of each call appended to the list ``into(*args, **kwargs)``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return run(*args, **kwargs)
        finally:
            into(*args, **kwargs).append(time.perf_counter() - start)

    return wrapper


def median_ms(run: Callable[[str], object], texts: list[str]) -> float:
    """Median milliseconds of ``run(text)`` over ``texts`` (after one untimed call)."""
    run(texts[0])
    return 1000 * statistics.median(timed(lambda t=t: run(t)) for t in texts)


def bench_ensemble(report: Report, new: Setup, test: list[str]) -> float:
    """Batched ensemble throughput, today's ``Classifier.predict`` against the configured runtime's;
    returns the new path's texts/s (the bare batched forward of the classify benchmark)."""
    print(f"ensemble: Classifier.predict on the {len(test)} test texts, one call", flush=True)
    old = load_classifier(baseline=True)
    old.predict(test[:16])
    old_s = timed(lambda: old.predict(test))
    model = new.classifier()
    model.predict(test[:16])
    new_s = timed(lambda: model.predict(test))
    report.row(
        "Classifier.predict, today's path (torch, LoRA unmerged, input order)",
        f"{len(test) / old_s:.1f} texts/s",
    )
    report.row(
        f"Classifier.predict, {new} (merged/exported, length-sorted)",
        f"{len(test) / new_s:.1f} texts/s",
    )
    report.ratio("batched ensemble throughput, new / today", old_s / new_s, ">= 3")
    # where the time goes, and what running one-text calls two at once gives (int8 only)
    from selfheal.model.runtime import calls_at_once

    per_text = 1000 / len(test)
    report.row(
        "3x today's throughput leaves, for the whole ensemble", f"{old_s * per_text / 3:.1f} ms a text"
    )
    encoder = getattr(model, "_embedder", None) and model._embedder.encoder
    if encoder is not None:
        report.row(
            "of the new path: the sentence embedder alone",
            f"{timed(lambda: encoder.encode(test)) * per_text:.1f} ms a text",
        )
    saved = model.threads, getattr(encoder, "threads", None)
    try:  # calls_at_once follows the threads: one, so the one-text calls run one after the other
        model.threads = 1
        if encoder is not None:
            encoder.threads = 1
        serial_s = timed(lambda: model.predict(test))
    finally:
        model.threads = saved[0]
        if encoder is not None:
            encoder.threads = saved[1]
    report.row(
        f"Classifier.predict, {new}, one-text calls one after the other",
        f"{len(test) / serial_s:.1f} texts/s (with {calls_at_once(model.runtime, saved[0])} at once: "
        f"{serial_s / new_s:.2f}x as fast)",
    )
    return len(test) / new_s


def bench_request(report: Report, new: Setup, texts: list[str]) -> None:
    """One interactive request: the full ensemble now against today's LoRA-MiniLM-only request."""
    print(f"request: Classifier.predict([text]), median of {len(texts)} validation texts", flush=True)
    lora_only = load_classifier(baseline=True, use_embedder=False)
    base = median_ms(lambda t: lora_only.predict([t]), texts)
    full = new.classifier()
    now = median_ms(lambda t: full.predict([t]), texts)
    report.row("one request, today's LoRA-MiniLM-only path (+ TF-IDF, no embedder)", f"{base:.1f} ms")
    report.row(f"one request, full ensemble, {new}", f"{now:.1f} ms")
    report.ratio("one request, full ensemble now / LoRA-only today", now / base, "<= 1.5")


def langgraph_floor_ms(runs: int = 200) -> float:
    """Milliseconds of one run of a bare three-node LangGraph graph (nodes that return one key, a
    five-key state, no checkpointer, streamed as ``Session._advance`` streams), warm: no model
    runs between the runs, so this is LangGraph's own cost at its lowest on this machine (the
    lowest median of three rounds of ``runs``)."""
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    class Small(TypedDict, total=False):
        text: str
        label: str
        route: str
        via: str
        record: dict[str, Any]

    graph = StateGraph(Small)
    graph.add_node("first", lambda state: {"label": "Positive"})
    graph.add_node("second", lambda state: {"route": "accept"})
    graph.add_node("third", lambda state: {"via": "model"})
    graph.add_edge(START, "first")
    graph.add_edge("first", "second")
    graph.add_conditional_edges("second", lambda state: state["route"], {"accept": "third"})
    graph.add_edge("third", END)
    compiled = graph.compile()

    def run() -> None:
        for _ in compiled.stream({"text": "a text"}, stream_mode="updates"):
            pass

    for _ in range(50):  # the first runs of a new graph are slower (caches being filled)
        run()
    # the lowest of three medians: a floor, and this machine's speed drifts within seconds
    return 1000 * min(statistics.median(timed(run) for _ in range(runs)) for _ in range(3))


def bench_graph(report: Report, new: Setup, texts: list[str], work: Path) -> None:
    """The whole graph per request against the bare model call of the same model."""
    from selfheal.config import load_config
    from selfheal.graph.services import Services
    from selfheal.graph.session import Session

    print(f"graph: per request, median of {len(texts)} validation texts", flush=True)
    sets = [f"paths.log_dir={work / 'graph-logs'}", f"paths.clarified={work / 'clarified.jsonl'}"]
    sets += new.sets
    accepted = load_config(REPO / "config.yaml", [*sets, "thresholds.accept=0", "thresholds.clarify=0"])
    classifier = new.classifier()
    session = Session(Services(accepted, classifier=classifier))
    # interleaved, text by text (bare forward, then the whole graph on the same text), 3 rounds:
    # a single forward varies by 10% from call to call, more than the graph costs
    classifier.predict([texts[0]])
    session.start(texts[0], interactive=False)
    # where the accepted request's time over the forward goes: the graph's run (LangGraph's steps
    # and the nodes), inside it the log record, and the forward inside the request (one predict
    # call, so the calls alternate: bare, in the request, ...); each wrapper adds two clock reads
    inside: dict[str, list[float]] = {"advance": [], "record": [], "forward": []}
    session._advance = clocked(session._advance, lambda *a, **k: inside["advance"])  # type: ignore[method-assign]
    log = session.services.log
    log.write = clocked(log.write, lambda *a, **k: inside["record"])  # type: ignore[method-assign]
    predict = classifier.predict
    classifier.predict = clocked(predict, lambda *a, **k: inside["forward"])  # type: ignore[method-assign]
    bare_ms, whole_ms = [], []
    for _ in range(3):
        for text in texts:
            bare_ms.append(1000 * timed(lambda text=text: classifier.predict([text])))
            whole_ms.append(1000 * timed(lambda text=text: session.start(text, interactive=False)))
    classifier.predict = predict  # type: ignore[method-assign]
    bare, whole = statistics.median(bare_ms), statistics.median(whole_ms)
    advance, record = (1000 * statistics.median(inside[key]) for key in ("advance", "record"))
    rest = statistics.median(  # per request: the time over its own forward, outside the graph's run
        w - 1000 * (a + f)
        for w, a, f in zip(whole_ms, inside["advance"], inside["forward"][1::2], strict=True)
    )
    asked = load_config(REPO / "config.yaml", [*sets, "thresholds.accept=1", "thresholds.clarify=0"])
    paused = Session(Services(asked, classifier=classifier))

    def pause_and_resume(text: str) -> None:
        outcome = paused.start(text, interactive=True)
        assert outcome is not None and outcome.waiting is not None, "the request did not pause"
        paused.resume(outcome.request_id, "y")

    cycle = median_ms(pause_and_resume, texts)
    # nobody to ask (classify): the backups vote; the request waits for review (one checkpoint),
    # or the no-person rule labels it (no checkpoint: it cannot pause); each kind on its own
    ends: dict[bool, list[float]] = {True: [], False: []}
    for text in texts:
        start = time.perf_counter()
        outcome = paused.start(text, interactive=False)
        ends[outcome is not None and outcome.pending_review].append(1000 * (time.perf_counter() - start))
    pending = statistics.median(ends[True]) if ends[True] else float("nan")
    labelled = statistics.median(ends[False]) if ends[False] else float("nan")
    report.row(f"bare Classifier.predict([text]), {new} (interleaved)", f"{bare:.1f} ms")
    report.row("whole graph, accepted request (Session.start, interleaved)", f"{whole:.1f} ms")
    report.row(
        "  of which the graph's run (Session._advance: LangGraph's steps, the nodes, the record)",
        f"{advance:.2f} ms",
    )
    report.row(
        "    of which the log record (LogWriter.write: the app.jsonl line, its fsync, app.log)",
        f"{record:.2f} ms",
    )
    report.row(
        "  of which the rest over the request's own forward (its state, its route, the outcome)",
        f"{rest:.2f} ms",
    )
    report.row(
        "  for comparison: LangGraph alone, a bare three-node graph, warm (langgraph_floor_ms)",
        f"{langgraph_floor_ms():.2f} ms",
    )
    report.row("whole graph, asked, paused, answered (start + resume)", f"{cycle:.1f} ms")
    report.row("checkpoint cost of a paused request (pause+resume - bare)", f"{cycle - bare:.1f} ms")
    report.row(
        f"whole graph, left pending for review (Session.start, nobody to ask; {len(ends[True])} texts)",
        f"{pending:.1f} ms",
    )
    report.row(
        "cost of a pending request over the bare forward (backups, graph, checkpoint)",
        f"{pending - bare:.1f} ms",
    )
    report.row(
        f"whole graph, labelled by the backups (nobody to ask, no checkpoint; {len(ends[False])} texts)",
        f"{labelled:.1f} ms",
    )
    report.ratio("whole graph per accepted request / bare forward", whole / bare, "<= 1.15")
    report.ratio(
        "the same with a log record that cost nothing ((whole - record) / bare)",
        (whole - record) / bare,
        "none (for information)",
    )


def bench_classify(report: Report, new: Setup, bare_rate: float, test: list[str], work: Path) -> None:
    """``selfheal classify --json --file`` on the test texts: its marginal throughput (the wall
    time of N texts minus that of 1, so model loading cancels) against the bare batched forward."""
    print(f"classify: selfheal classify --json --file, {len(test)} texts against 1", flush=True)
    env = env_for(REPO / "src")
    many = write_lines(work / "test.txt", test, len(test))
    one = write_lines(work / "one.txt", test, 1)
    wall_one, _ = run_measured(classify_argv(one, work / "c1", *new.sets), env, work)
    wall_many, _ = run_measured(classify_argv(many, work / "cn", *new.sets), env, work)
    rate = (len(test) - 1) / (wall_many - wall_one)
    report.row("selfheal classify --file, 1 text (start-up and loading)", f"{wall_one:.1f} s")
    report.row(
        f"selfheal classify --file, {len(test)} texts",
        f"{wall_many:.1f} s ({len(test) / wall_many:.1f} texts/s with loading)",
    )
    report.row("selfheal classify --file, marginal throughput", f"{rate:.1f} texts/s")
    report.ratio("classify --file marginal throughput / bare batched predict", rate / bare_rate, ">= 0.8")
    per_record = "logging.fsync=record"  # one fsync of app.jsonl per record instead of per input chunk
    wall_one, _ = run_measured(classify_argv(one, work / "k1", *new.sets, per_record), env, work)
    wall_many, _ = run_measured(classify_argv(many, work / "kn", *new.sets, per_record), env, work)
    rate = (len(test) - 1) / (wall_many - wall_one)
    report.row(f"selfheal classify --file --set {per_record}, marginal throughput", f"{rate:.1f} texts/s")
    report.ratio(
        f"classify --file ({per_record}) / bare batched predict", rate / bare_rate, "none (default: chunk)"
    )


def bench_parts(report: Report, new: Setup, test: list[str], work: Path) -> None:
    """Where ``classify``'s time goes: its decision path in this process (the chunks, the
    per-chunk sync and ``Session.start_many`` it runs, nothing printed), timed in parts by
    wrapping the model's ``predict``, the backups' ``predict_many``, the session's per-request
    graph run (``Session._advance``, one call a request, checkpoints and log record included) and,
    inside the graph's time, the log record FinalDecisionNode writes (``DecisionLog.write``)."""
    from selfheal.cli.classify import input_chunks
    from selfheal.config import load_config
    from selfheal.graph.services import Services
    from selfheal.graph.session import Session
    from selfheal.graph.storage import open_storage

    print(f"parts: classify's decisions of the {len(test)} test texts in process, timed in parts", flush=True)
    log_dir = work / "parts"
    config = load_config(
        REPO / "config.yaml",
        [f"paths.log_dir={log_dir}", f"paths.clarified={log_dir / 'c.jsonl'}", *new.sets],
    )
    services = Services(config, classifier=new.classifier())
    storage = open_storage(config, None)
    session = Session(services, checkpointer=storage.checkpointer, claims=storage.claims)
    session.start(test[0], interactive=False)  # loads the backups
    spent: dict[str, list[float]] = {
        "forward": [],
        "backups": [],
        "graph, cannot pause (accepted, or labelled by the backups; no checkpoint)": [],
        "graph, may pause (checkpointed)": [],
        "log records": [],  # inside the graph's time
    }

    classifier, backups = services.classifier, services.backups
    classifier.predict = clocked(classifier.predict, lambda *a, **k: spent["forward"])  # type: ignore[method-assign]
    backups.predict_many = clocked(backups.predict_many, lambda *a, **k: spent["backups"])  # type: ignore[method-assign]
    session._advance = clocked(  # type: ignore[method-assign]
        session._advance,
        lambda *a, **k: spent[
            "graph, may pause (checkpointed)"
            if k.get("pausable", True)
            else "graph, cannot pause (accepted, or labelled by the backups; no checkpoint)"
        ],
    )
    services.log.write = clocked(services.log.write, lambda *a, **k: spent["log records"])  # type: ignore[method-assign]
    file = write_lines(work / "parts.txt", test, len(test))
    chunks = list(input_chunks([], file, config.input.chunk_size, config.input.first_chunk_size))
    start = time.perf_counter()
    for chunk in chunks:  # as classify does with logging.fsync: chunk (the default)
        with services.log.batched_sync(), storage.batched_sync():
            for _ in session.start_many([text for _, text in chunk], interactive=False):
                pass
    total = time.perf_counter() - start
    storage.close()
    report.row(
        f"classify's decisions in process ({len(chunks)} chunks, nothing printed)",
        f"{total:.1f} s ({len(test) / total:.1f} texts/s)",
    )
    records = spent.pop("log records")
    for name, times in spent.items():
        median = (
            f", median {1000 * statistics.median(times):.1f} ms a request" if name.startswith("graph") else ""
        )
        report.row(f"  of which {name} ({len(times)} calls{median})", f"{sum(times):.1f} s")
    report.row(
        f"    the graph's time includes the log records (FinalDecisionNode, {len(records)}, "
        f"median {1000 * statistics.median(records):.2f} ms)",
        f"{sum(records):.1f} s",
    )
    rest = total - sum(sum(times) for times in spent.values())
    report.row("  of which the rest (states, routes, iteration)", f"{rest:.1f} s")
    forward = sum(spent["forward"])
    report.ratio(
        "forward / (forward + backups): classify's ceiling with a graph that cost nothing",
        forward / (forward + sum(spent["backups"])),
        "none (for information)",
    )
    floor = langgraph_floor_ms() / 1000
    report.row(
        "LangGraph alone, a bare three-node graph, warm (langgraph_floor_ms)", f"{1000 * floor:.2f} ms a run"
    )
    report.ratio(
        "forward / (forward + backups + that bare graph once a text): the ceiling with LangGraph's floor",
        forward / (forward + sum(spent["backups"]) + floor * len(test)),
        "none (for information)",
    )


def bench_startup(report: Report, rev: str, text: str, repeat: int, work: Path) -> None:
    """Launch -> first answer of ``selfheal run``, the text typed at once, today's code against now."""
    print(f"startup: selfheal run, launch to first answer, median of {repeat}", flush=True)
    with baseline_tree(rev) as old_src:
        old, _ = median_of(repeat, lambda: time_to_first_answer(old_src, text, work / "old"))
        new, _ = median_of(repeat, lambda: time_to_first_answer(REPO / "src", text, work / "new"))
    report.row(f"selfheal run, launch to first answer, today ({rev})", f"{old:.2f} s")
    report.row("selfheal run, launch to first answer, now", f"{new:.2f} s")
    report.ratio("start-up speed-up, today / now", old / new, ">= 2")


def bench_memory(report: Report, new: Setup, test: list[str], lines: int, work: Path) -> None:
    """Peak RSS of ``selfheal classify --file`` on 1,000 lines against ``lines`` lines."""
    print(f"memory: peak RSS of selfheal classify --file, 1000 against {lines} lines", flush=True)
    env = env_for(REPO / "src")
    small = write_lines(work / "small.txt", test, 1000)
    big = write_lines(work / "big.txt", test, lines)
    _, rss_small = run_measured(classify_argv(small, work / "m1", *new.sets), env, work)
    wall, rss_big = run_measured(classify_argv(big, work / "m2", *new.sets), env, work)
    report.row("peak RSS, classify 1,000 lines", f"{rss_small:.0f} MiB")
    report.row(f"peak RSS, classify {lines:,} lines", f"{rss_big:.0f} MiB ({wall:.0f} s)")
    report.ratio(f"peak RSS {lines:,} lines / 1,000 lines", rss_big / rss_small, "<= 1.2")


SECTIONS = ("ensemble", "request", "graph", "classify", "parts", "startup", "memory")


def main() -> None:
    """Run the chosen sections and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--baseline-rev", default=BASELINE_REV, help="git revision of 'today'")
    parser.add_argument(
        "--runtime", default=None, help="model.runtime of the new path (default: config.yaml's)"
    )
    parser.add_argument("--requests", type=int, default=30, help="validation texts timed one by one")
    parser.add_argument("--repeat", type=int, default=3, help="start-up runs per side")
    parser.add_argument("--memory-lines", type=int, default=100_000, help="lines of the large file")
    parser.add_argument(
        "--set", action="append", default=[], dest="overrides", help="a config override of the new path"
    )
    args = parser.parse_args()
    from selfheal.config import load_config
    from selfheal.model.checkpoint import quiet_hf

    quiet_hf()
    overrides = [*args.overrides, *([f"model.runtime={args.runtime}"] if args.runtime else [])]
    new = Setup(load_config(REPO / "config.yaml", overrides), overrides)
    report = Report()
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory(prefix="selfheal-bench-") as tmp:  # logs, inputs: removed after
        work = Path(tmp)
        test = texts_of("test")
        requests = texts_of("validation")[: args.requests]
        bare_rate = None
        if "ensemble" in args.only or "classify" in args.only:
            bare_rate = bench_ensemble(report, new, test)
        if "request" in args.only:
            bench_request(report, new, requests)
        if "graph" in args.only:
            bench_graph(report, new, requests, work)
        if "classify" in args.only and bare_rate is not None:
            bench_classify(report, new, bare_rate, test, work)
        if "parts" in args.only:
            bench_parts(report, new, test, work)
        if "startup" in args.only:
            bench_startup(report, args.baseline_rev, requests[0], args.repeat, work)
        if "memory" in args.only:
            bench_memory(report, new, test, args.memory_lines, work)
    report.print()


if __name__ == "__main__":
    from selfheal.errors import exit_on_user_error

    exit_on_user_error(main)
