"""The ``selfheal`` command: classify, review, bad input, ``python -m``, concurrency.

Commands run in process (the ``cli`` fixture: Typer's CliRunner, the session's models, every file
under the test's tmp_path); real processes only where a process is the point: ``python -m
selfheal``, two processes writing one log, the cost of importing the CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import graph_overrides, process_env, selfheal_argv, set_args
from selfheal.labels import MOVIE_LABELS
from selfheal.logs.decisions import JSONL_NAME

# Texts on which a sentiment model and the backups may well disagree (sarcasm, contrast, mixed).
CANDIDATES = [
    "The movie was painfully slow and boring.",
    "Oh great, another two hours of my life I will never get back.",
    "I expected to hate it, but it won me over.",
    "Not bad, not good, just there.",
    "A brilliant cast wasted on a dreadful script.",
    "So bad it is almost good.",
    "It tries so hard to be clever that it forgets to be fun.",
    "Predictable, yet strangely comforting.",
    "The best thing about it is the end credits.",
    "Dull as dishwater but beautifully shot.",
    "An ugly, brutal film that I could not stop thinking about.",
    "It was fine I guess",
]


def records(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "logs" / JSONL_NAME).read_text().splitlines()]


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_classify_json_prints_the_log_records(cli, tmp_path):
    # --accept 0 accepts everything the model can know; the knowability check is on: the language
    # identifier calls "A dull mess." not English, but every word of it was used in training
    result = cli(
        "classify",
        *("--json", "--accept", "0", "--clarify", "0", "A joy.", "   ", "A dull mess."),
        check=True,
    )
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert printed == records(tmp_path)
    assert [r["input_text"] for r in printed] == ["A joy.", "A dull mess."]
    assert all(r["final_decision"]["via"] == "model" and r["mode"] == "batch" for r in printed)
    assert "skipped arg 2: empty text" in result.stderr


def test_classify_reads_a_file_and_stdin_and_prints_a_table(cli, tmp_path):
    (tmp_path / "texts.txt").write_text(
        "A warm, funny film.\n\n\x1b[1mBold\x1b[0m and brave.\n", encoding="utf-8"
    )
    result = cli(
        "classify", "--accept", "0", "--clarify", "0", "--file", "texts.txt", "-", stdin="From stdin.\n"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["#", "label", "via", "model", "conf", "text"]
    assert len(lines) == 4 and lines[1].rstrip().endswith("From stdin.")
    assert [r["input_text"] for r in records(tmp_path)] == [
        "From stdin.",
        "A warm, funny film.",
        "[1mBold [0m and brave.",
    ]


def test_non_utf8_file_is_a_one_line_error_naming_the_line(cli, tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"fine\ncaf\xe9 au lait\n")
    assert_one_line_error(cli("classify", "--file", "bad.txt"), "bad.txt: line 2 is not valid UTF-8")
    assert_one_line_error(cli("classify", "-", stdin=b"ok\n\xff\n"), "stdin: line 2 is not valid UTF-8")
    assert not (tmp_path / "logs" / JSONL_NAME).exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--accept", "0.3"], "thresholds.clarify (0.5) must be <= thresholds.accept (0.3)"),
        (["--accept", "1.5"], "thresholds.accept"),
        (["--set", "paths.checkpoint=no/such/dir"], "no selfheal checkpoint at no/such/dir"),
        (["--config", "missing.yaml"], "config file missing.yaml does not exist"),
        (["--config", "broken.yaml"], "config file broken.yaml is not valid YAML"),
        (["--file", "nope.txt"], "cannot read nope.txt"),
        (["--set", "paths.log_dir=broken.yaml"], "cannot use log directory broken.yaml"),
        ([], "nothing to classify"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(cli, tmp_path, args, fragment):
    (tmp_path / "broken.yaml").write_text("thresholds: [accept: 0.7\n")
    extra = [] if args == [] or args[0] == "--file" else ["some text"]
    assert_one_line_error(cli("classify", *extra, *args), fragment)


def test_run_with_a_missing_checkpoint_fails_before_the_prompt(cli):
    result = cli("run", "--set", "paths.checkpoint=no/such/dir", stdin="")
    assert_one_line_error(result, "no selfheal checkpoint")
    assert "Enter text" not in result.stdout


def test_python_m_selfheal_without_arguments_starts_run(tmp_path):
    """The module entry point in a real process: no arguments is ``selfheal run``."""
    sections: dict[str, list[str]] = {}
    for item in graph_overrides(tmp_path):
        key, value = item.split("=", 1)
        section, name = key.split(".")
        sections.setdefault(section, []).append(f"  {name}: {value}")
    config = "\n".join(f"{s}:\n" + "\n".join(v) for s, v in sections.items())
    (tmp_path / "config.yaml").write_text(config + "\n")
    result = subprocess.run(
        selfheal_argv(), input=b"", capture_output=True, cwd=tmp_path, env=process_env(), timeout=120
    )
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr
    assert out.splitlines()[0] == "> Enter text (or 'quit'):"
    assert out.splitlines()[-1].startswith("Bye: 0 requests")


def test_pending_escalation_is_resolved_by_a_later_review(cli, tmp_path, classifier, backup_ensemble):
    text = next(
        (t for t in CANDIDATES if backup_ensemble.predict(t)["label"] != classifier.predict([t])[0].label),
        None,
    )
    if text is None:
        pytest.skip("the model and the backups agree on every candidate text")
    predicted = classifier.predict([text])[0].label
    corrected = MOVIE_LABELS.other(predicted)

    made = cli("classify", "--json", "--accept", "1", "--clarify", "1", text, check=True)
    pending = json.loads(made.stdout)
    assert pending["final_decision"] == {"label": None, "via": "pending_review"}
    assert pending["fallback"]["backup"]["agree"] is False
    assert "1 pending human review" in made.stderr

    listed = cli("review", "--list", check=True)
    assert "1 request(s) wait for a person" in listed.stdout and text in listed.stdout

    answer = corrected.lower()
    reviewed = cli("review", stdin=f"what?\n{answer}\n", check=True)
    assert f"Final Label: {corrected} (via human review)" in reviewed.stdout
    assert "Reviewed 1, skipped 0, 0 still waiting." in reviewed.stdout

    first, second = records(tmp_path)
    assert second["request_id"] == first["request_id"] == pending["request_id"]
    assert second["final_decision"] == {"label": corrected, "via": "human_review"}
    assert second["fallback"]["review"] == {
        "mode": "queue",
        "answer": answer,
        "label": corrected,
    }
    clarified = json.loads((tmp_path / "clarified.jsonl").read_text())
    assert (clarified["source"], clarified["label"]) == ("human_review", corrected)
    assert "No requests wait for review." in cli("review", "--list", check=True).stdout


def test_concurrent_classify_processes_write_only_valid_lines(tmp_path):
    """Two real processes append to one app.jsonl at once: every line is one whole record.
    (Without the sentence embedder, which is not what is tested, and with one torch thread each:
    two processes of two threads on two cores spend most of their time waiting for each other.)"""
    words = ["wonderful", "awful", "fine", "odd", "moving", "dull"]
    texts = [f"Review {i}: {word}{'!' * i}" for i, word in enumerate(words * 2)]
    sets = set_args([*graph_overrides(tmp_path), "embedder.enabled=false"])
    command = selfheal_argv("classify", "--json", *sets)
    procs = [
        subprocess.Popen(
            [*command, "--accept", "0", "--clarify", "0", *texts],
            cwd=tmp_path,
            env=process_env(OMP_NUM_THREADS="1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err.decode() for _, err in outputs]
    lines = (tmp_path / "logs" / JSONL_NAME).read_bytes().splitlines()
    assert len(lines) == 24
    parsed = [json.loads(line) for line in lines]  # every line is one whole JSON object
    assert len({r["request_id"] for r in parsed}) == 24
    assert sorted(r["input_text"] for r in parsed) == sorted(texts * 2)


def test_import_of_the_cli_stays_light():
    """The prompt can only appear fast if importing the CLI pulls in no torch or LangGraph."""
    code = "import sys, selfheal.cli; print(sorted(m for m in ('torch', 'transformers', 'langgraph') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=process_env(), check=True
    )
    assert out.stdout.strip() == "[]"


def test_graph_command_prints_mermaid(cli):
    out = cli("graph", check=True).stdout
    for node in ("InferenceNode", "ConfidenceCheckNode", "FallbackNode", "FinalDecisionNode"):
        assert node in out
    assert "graph TD" in out
