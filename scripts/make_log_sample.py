"""Regenerate logs/sample/: real output of `selfheal classify`, `run` (in a pty) and `review`.

    .venv/bin/python scripts/make_log_sample.py [--checkpoint DIR]

Runs the installed ``selfheal`` command in a temporary directory, scripts one interactive
session with pexpect, answers the review queue, and copies app.jsonl, app.log and the run
transcript into logs/sample/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pexpect

REPO = Path(__file__).resolve().parents[1]
SELFHEAL = str(REPO / ".venv" / "bin" / "selfheal")
PROMPT = "> Enter text (or 'quit'):"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="checkpoint directory (default: the shipped one)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="selfheal-sample-"))
    env = dict(os.environ, NO_COLOR="1", TERM="dumb", HF_HUB_OFFLINE="1")
    sets = ["--set", "paths.log_dir=logs", "--set", "paths.clarified=clarified.jsonl"]
    sets += ["--set", f"paths.checkpoint={Path(args.checkpoint).resolve()}"] if args.checkpoint else []

    def selfheal(command: str, *rest: str, stdin: str | None = None) -> None:
        result = subprocess.run(
            [SELFHEAL, command, *sets, *rest], input=stdin, text=True, capture_output=True, cwd=work, env=env
        )
        print(result.stdout + result.stderr)
        result.check_returncode()

    selfheal(
        "classify", "An absolute joy from start to finish.", "A tedious, joyless slog.", "It has its moments."
    )
    selfheal(
        "classify",
        "--accept",
        "1",
        "--clarify",
        "1",
        "The best thing about it is the end credits.",
        "Oh great, another two hours of my life I will never get back.",
    )

    child = pexpect.spawn(SELFHEAL, ["run", *sets], cwd=str(work), env=env, encoding="utf-8", timeout=180)
    transcript = (work / "run_transcript.txt").open("w", encoding="utf-8")
    child.logfile_read = transcript

    def say(text: str, *answers: str) -> None:
        child.expect_exact(PROMPT)
        child.sendline(text)
        for answer in answers:
            if child.expect_exact(["(y/n)", "(negative/positive)", "Final Label"]) == 2:
                return
            child.expect_exact("> ")
            child.sendline(answer)

    say("The movie was painfully slow and boring.", "y", "negative")
    say("Not bad, not good, just there.", "I don't know", "No, it was definitely negative.", "negative")
    say("A warm, funny and moving film.", "n", "positive")
    child.expect_exact(PROMPT)
    child.sendline("Visually stunning, emotionally empty.")
    if child.expect_exact(["(y/n)", "Final Label"]) == 0:
        child.expect_exact("> ")
        child.sendeof()  # no answer: the backup models decide, and the loop ends
    else:
        child.expect_exact(PROMPT)
        child.sendline("quit")
    child.expect(pexpect.EOF)
    transcript.close()

    selfheal("review", stdin="negative\npositive\nnegative\n")

    out = REPO / "logs" / "sample"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("app.jsonl", "app.log"):
        shutil.copy(work / "logs" / name, out / name)
    shutil.copy(work / "run_transcript.txt", out / "run_transcript.txt")
    print(f"wrote {out} (work directory {work})")


if __name__ == "__main__":
    main()
