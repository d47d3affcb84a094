"""The recorded demo: scripts/record_demo.py --fast drives the real CLI in bash inside ``asciinema rec``."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, process_env

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def load_recorder():
    """scripts/record_demo.py as a module (for its texts and the key-moment cut)."""
    spec = importlib.util.spec_from_file_location("record_demo", REPO / "scripts" / "record_demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def cast_text(events: list[list]) -> str:
    """Everything the terminal showed, escape sequences removed."""
    return ANSI.sub("", "".join(event[2] for event in events))


def test_fast_recording_has_the_dialogue_and_the_log_lines(tmp_path: Path) -> None:
    if importlib.util.find_spec("asciinema") is None:
        pytest.skip(f"the demo records with asciinema, not installed for {sys.executable} (requirements.txt)")
    if shutil.which("selfheal", path=str(Path(sys.executable).parent)) is None:
        pytest.skip(f"the demo types 'selfheal' in a shell: no console script beside {sys.executable}")
    demo = load_recorder()
    cast, work = tmp_path / "demo.cast", tmp_path / "work"
    script = REPO / "scripts" / "record_demo.py"
    result = subprocess.run(
        [sys.executable, str(script), "--fast", "--out", str(cast), "--workdir", str(work)],
        capture_output=True,
        text=True,
        env=process_env(),
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"wrote {work / 'demo.cast'}: 128x36," in result.stdout and f"copied to {cast}" in result.stdout

    header, events = demo.read_cast(cast)
    assert header["version"] == 2 and (header["width"], header["height"]) == (demo.COLS, demo.ROWS)
    assert all(kind == "o" for _, kind, _ in events)
    assert [t for t, _, _ in events] == sorted(t for t, _, _ in events)
    text = cast_text(events)

    # the accepted case
    assert f"selfheal run {demo.SETS}\r\n" in text
    accepted = re.escape(f"{demo.CONFIDENT}\r\n") + (
        r"(?:\(loading the model, one moment\.\.\.\)\r\n)?"
        r"\[InferenceNode\] Predicted label: Positive \| Confidence: (\d+)%\r\nFinal Label: Positive\r\n"
    )
    match = re.search(accepted, text)
    assert match and int(match.group(1)) >= 75, text
    # the unsure case: the question, the answer typed, the final label
    question = "[FallbackNode] Could you clarify your intent? Was this a negative review? (y/n)"
    unsure = (
        re.escape(f"{demo.UNSURE}\r\n")
        + r"\[InferenceNode\] Predicted label: Positive \| Confidence: (\d+)%\r\n"
        + re.escape("[ConfidenceCheckNode] Confidence too low. Triggering fallback...\r\n")
        + re.escape(f"{question}\r\n> {demo.ANSWER}\r\n{demo.GIF_END}\r\n")
    )
    match = re.search(unsure, text)
    assert match and 50 <= int(match.group(1)) < 75, text
    assert "Bye: 2 requests (1 by the model, 1 clarified by you," in text

    # the log lines: both raw JSONL lines, then the last record pretty-printed
    for start in (demo.CONFIDENT, demo.UNSURE):
        raw = r'\{"timestamp": "[-0-9T:.+]+", "request_id": "[0-9a-f-]{36}", "input_text": "'
        assert re.search(raw + re.escape(start[:10]), text), start
    for line in (
        f'"input_text": "{demo.UNSURE}",',
        '"question": "Could you clarify your intent? Was this a negative review? (y/n)",',
        f'"user_response": [\r\n            "{demo.ANSWER}"\r\n        ],',
        '"label": "Negative",\r\n        "via": "user_clarification"',
    ):
        assert line in text, line
    assert "Confidence histogram:" in text and "clarify   " in text
    assert "epoch  train_loss  val_loss" in text

    # the scratch log the demo wrote, and nothing in the repository's logs/
    (log,) = work.glob("tmp.*/app.jsonl")
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert [r["final_decision"] for r in records] == [
        {"label": "Positive", "via": "model"},
        {"label": "Negative", "via": "user_clarification"},
    ]
    assert records[1]["fallback"]["user_response"] == [demo.ANSWER]

    # the GIF's key moment: a cleared screen, the accepted case, the question, the answer, the label
    key = tmp_path / "key.cast"
    demo.cut_key_moment(cast, key)
    key_header, key_events = demo.read_cast(key)
    assert (key_header["width"], key_header["height"]) == (demo.GIF_COLS, demo.GIF_ROWS)
    assert key_events[0][0] == 0.0
    assert demo.CLEAR in key_events[0][2]
    key_text = cast_text(key_events)
    assert key_text.index(demo.CONFIDENT) < key_text.index("(y/n)") < key_text.index(demo.GIF_END)
    assert "json.tool" not in key_text
