"""`selfheal stats` on a real-looking log, a corrupted line, an empty log and a missing log."""

from __future__ import annotations

import csv
import json

from selfheal.logs.decisions import JSONL_NAME


def record(request_id: str, confidence: float, route: str, via: str, minute: int) -> dict:
    status = {"accept": "ACCEPT", "ask_clarify": "LOW", "escalate": "VERY_LOW"}[route]
    return {
        "timestamp": f"2026-01-01T10:{minute:02d}:00+00:00",
        "request_id": request_id,
        "input_text": "A warm and funny film.",
        "inference": {
            "label": "Positive",
            "probs": {"Negative": 1 - confidence, "Positive": confidence},
            "confidence": confidence,
        },
        "confidence_check": {
            "thresholds": {"accept": 0.75, "clarify": 0.5},
            "status": status,
            "route": route,
        },
        "fallback": {"activated": route != "accept"},
        "final_decision": {"label": "Positive", "via": via},
    }


def write_log(path, records, corrupt_after: int | None = None) -> None:
    lines = [json.dumps(r) for r in records]
    if corrupt_after is not None:
        lines.insert(corrupt_after, '{"timestamp": "2026-01-01T10:0')  # a partial line (crash mid-write)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_stats_skips_a_corrupted_line_and_writes_the_trend_csv(tmp_path, selfheal_cli):
    log = tmp_path / JSONL_NAME
    records = [
        record("r1", 0.97, "accept", "model", 0),
        record("r2", 0.62, "ask_clarify", "user_clarification", 1),
        record("r3", 0.91, "accept", "model", 2),
        record("r4", 0.55, "escalate", "pending_review", 3),
        record("r5", 0.58, "ask_clarify", "backup_model", 4),
        record("r4", 0.55, "escalate", "human_review", 9),  # the review of r4, logged later
    ]
    write_log(log, records, corrupt_after=2)
    out_csv = tmp_path / "out" / "trend.csv"
    result = selfheal_cli("stats", "--log", str(log), "--last", "3", "--csv", str(out_csv))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "5 request(s) from 7 line(s)" in out
    assert "1 corrupt or incomplete line(s) skipped" in out
    assert "Fallback frequency" in out and "Final decision via" in out and "Confidence histogram" in out
    accept_line = next(line for line in out.splitlines() if line.strip().startswith("accept "))
    assert "2   40.0%" in accept_line
    review_line = next(line for line in out.splitlines() if line.strip().startswith("human_review"))
    assert "1   20.0%" in review_line  # r4 counted once, with its latest decision
    assert "last 3 request(s)" in out
    with out_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["timestamp", "request_id", "confidence", "status", "via"]
    assert [r["request_id"] for r in rows] == ["r3", "r4", "r5"]
    assert rows[1] == {
        "timestamp": "2026-01-01T10:03:00+00:00",
        "request_id": "r4",
        "confidence": "0.550000",
        "status": "escalate",
        "via": "human_review",
    }


def test_stats_on_an_empty_log(tmp_path, selfheal_cli):
    log = tmp_path / JSONL_NAME
    log.write_text("")
    result = selfheal_cli("stats", "--log", str(log))
    assert result.returncode == 0, result.stderr
    assert "no requests logged yet" in result.stdout


def test_stats_on_a_missing_log_is_one_clear_line(tmp_path, selfheal_cli):
    result = selfheal_cli("stats", "--set", f"paths.log_dir={tmp_path / 'nowhere'}")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("error: log file")
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def three_label_record(request_id: str, probs: dict, route: str, via: str, label, minute: int) -> dict:
    """A log record of a 3-label model (negative / neutral / positive)."""
    status = {"accept": "ACCEPT", "ask_clarify": "LOW", "escalate": "VERY_LOW", "unknowable": "UNKNOWN"}[
        route
    ]
    return {
        "timestamp": f"2026-01-02T09:{minute:02d}:00+00:00",
        "request_id": request_id,
        "input_text": "the bus was late again",
        "inference": {"label": max(probs, key=probs.get), "probs": probs, "confidence": max(probs.values())},
        "confidence_check": {
            "thresholds": {"accept": 0.75, "clarify": 0.5},
            "status": status,
            "route": route,
        },
        "fallback": {"activated": route != "accept"},
        "final_decision": {"label": label, "via": via},
    }


def test_stats_lists_whatever_labels_a_three_label_log_holds(tmp_path, selfheal_cli):
    log = tmp_path / JSONL_NAME
    p = {"negative": 0.1, "neutral": 0.1, "positive": 0.8}
    low = {"negative": 0.36, "neutral": 0.34, "positive": 0.30}
    records = [
        three_label_record("a", p, "accept", "model", "positive", 0),
        three_label_record("b", p, "accept", "model", "positive", 1),
        three_label_record("c", low, "escalate", "user_clarification", "neutral", 2),
        three_label_record("d", low, "escalate", "pending_review", None, 3),
        three_label_record("e", low, "unknowable", "user_none", None, 4),
    ]
    write_log(log, records)
    result = selfheal_cli("stats", "--log", str(log))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("Final label:")
    block = [line.split()[0] for line in lines[start + 1 : start + 6] if line.strip()]
    # The model's labels in its order (from the logged probabilities), then the unlabelled ones.
    assert block == ["negative", "neutral", "positive", "(no"]
    counts = {line.split()[0]: line for line in lines[start + 1 : start + 5]}
    assert "0    0.0%" in counts["negative"] and "1   20.0%" in counts["neutral"]
    assert "2   40.0%" in counts["positive"] and "2   40.0%" in counts["(no"]
    # Three labels: a confidence can be as low as 1/3, so the histogram starts at 0.30.
    assert "[0.30, 0.35)" in result.stdout and "[0.00," not in result.stdout
    outcomes = {line.split()[0]: line for line in lines if line.startswith("  ")}
    assert "1   20.0%" in outcomes["unknowable"] and "2   40.0%" in outcomes["escalate"]
