"""`selfheal eval` end to end on a tiny split: metrics.json, the PNGs and EVALUATION.md."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from conftest import REPO, tiny_overrides
from selfheal.cli import app

runner = CliRunner()


def eval_args(tiny_run, tiny_csv, tmp_path) -> list[str]:
    """``--set`` options pointing `selfheal eval` at the tiny checkpoint, its data and tmp outputs."""
    sets = [
        *(o for o in tiny_overrides(tiny_csv, tiny_run.output_dir) if not o.startswith("paths.")),
        f"paths.checkpoint={tiny_run.output_dir}",
        f"paths.reports_dir={tmp_path / 'reports'}",
        f"paths.evaluation_md={tmp_path / 'EVALUATION.md'}",
        f"paths.output_dir={tiny_run.output_dir}",
        "evaluation.bootstrap=200",
    ]
    return [arg for item in sets for arg in ("--set", item)]


@pytest.fixture(scope="module")
def evaluated(tiny_run, tiny_csv, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval")
    cwd = os.getcwd()
    os.chdir(tmp)  # relative paths (logs/, data/clarified/) would land here
    try:
        result = runner.invoke(
            app,
            [
                "eval",
                "--quiet",
                "--config",
                str(REPO / "config.yaml"),
                *eval_args(tiny_run, tiny_csv, tmp),
                # The tiny model meets no real target: ask for the lowest threshold with no accepted
                # error on validation, whatever the share asked, so an operating point exists.
                *("--set", "evaluation.min_final=1.0", "--set", "evaluation.max_human=1.0"),
                *("--set", "evaluation.min_accepted=0"),
            ],
        )
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    return tmp, result.output


def test_eval_writes_metrics_figures_and_report(evaluated, tiny_run):
    tmp, output = evaluated
    metrics = json.loads((tmp / "reports" / "metrics.json").read_text())
    for name in ("reliability.png", "confidence_histogram.png", "risk_coverage.png"):
        png = tmp / "reports" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    data = metrics["data"]
    assert data["manifest_verified"] and data["evaluated"] == "test"
    assert 0 < data["tokens"]["mean"] <= data["tokens"]["max"] and data["tokens"]["truncated"] >= 0
    n = data["n"]
    primary = metrics["models"]["primary"]
    # The evaluation reproduces the test accuracy recorded by training (same split, same model).
    assert primary["accuracy"] == pytest.approx(tiny_run.metrics["test"]["accuracy"])
    assert sum(map(sum, primary["confusion"])) == n
    assert set(metrics["models"]) == {"primary", "tfidf", "vader", "embedding"}
    for part in ("raw", "scaled"):
        cal = metrics["calibration"][part]
        assert len(cal["bins"]) == 15 and sum(b["count"] for b in cal["bins"]) == n
        assert cal["ece_ci95"][0] <= cal["ece_ci95"][1]
        assert 0 <= cal["ece_if_calibrated"]["p_value"] <= 1
    assert set(metrics["fallback"]) == {"validation", "test"}
    assert sum(metrics["fallback"]["test"]["counts"].values()) == n
    sweep = metrics["risk_coverage"]["sweep"]
    matched = {c["coverage"]: c for c in metrics["risk_coverage"]["at_coverage"]}
    assert set(matched) == {0.7, 0.8, 0.9} and matched[0.7]["accepted"] == round(0.7 * n)
    bounded = [t for t in metrics["targets"] if "bound" in t]
    assert [t["bound"]["kind"] for t in bounded][:2] == ["if perfectly calibrated", "most confident 70%"]
    assert sweep[0]["threshold"] == 0.5 and sweep[0]["coverage"] == 1.0 and sweep[-1]["threshold"] == 1.0

    sim = metrics["simulation"]
    assert sim["status"] == "done"
    # The simulation runs the graph's knowability check, as the app does: the inputs it flags that
    # the thresholds would accept go to a person (or wait, with nobody there) instead.
    know = metrics["knowability"]
    flagged = flagged_accepted = flagged_accepted_errors = 0
    if know["status"] == "done":
        dom = know["in_domain"]
        flagged = round(n * dom["flagged"])
        flagged_accepted = round(n * (dom["accepted_without_check"] - dom["accepted_with_check"]))
        if flagged_accepted:
            flagged_accepted_errors = round(flagged_accepted * (1 - dom["accuracy_of_flagged_accepted"]))
    for scenario in sim["scenarios"].values():
        # the graph routed exactly like the thresholds and the check's verdicts
        assert scenario["route_mismatches"] == 0
        assert scenario["knowability_check"] == (know["status"] == "done") and scenario["flagged"] == flagged
        assert scenario["logged_requests"] == n  # every request was logged (to a temp dir)
        assert sum(scenario["via"].values()) == n
    user = sim["scenarios"]["user"]
    # A correct user fixes everything the graph asks about: only accepted errors the check let
    # through remain.
    at = metrics["risk_coverage"]["at_threshold"]
    remaining = at["errors"] - flagged_accepted_errors
    assert user["accuracy"] == pytest.approx(1 - remaining / n) and user["pending_share"] == 0.0
    # the sweep's column = the graph, but for the flagged accepted errors a person fixed
    assert at["final_with_user"] == pytest.approx(user["accuracy"] - flagged_accepted_errors / n)
    assert user["human_share"] == pytest.approx(1 - at["coverage"] + flagged_accepted / n)
    assert 0.5 <= at["final_predicted"] <= 1.0
    assert user["accuracy_ci95"][0] <= user["accuracy"] <= user["accuracy_ci95"][1]
    assert "pending_review" not in user["via"] or user["via"]["pending_review"] == 0

    # Per final route with nobody answering: shares add up, the model route is the accepted set
    # the check lets through, and the graph's backup_model route is exactly what the no-person
    # rule gives on the arrays (nothing: the tiny checkpoint has no fine-tuned voter, so config.yaml's
    # voter mpnet_top is skipped and the rule never holds), the rest waits for review.
    no_user, no_person = sim["scenarios"]["no_user"], metrics["no_person"]
    routes = no_user["routes"]
    assert sum(r["n"] for r in routes.values()) == n and routes["pending_review"]["accuracy"] is None
    assert routes["model"]["n"] == at["accepted"] - flagged_accepted
    if know["status"] == "done":
        assert routes["model"]["accuracy"] == pytest.approx(dom["accuracy_accepted_with_check"])
    else:
        assert routes["model"]["accuracy"] == pytest.approx(at["accuracy"])
    assert routes["user_clarification"]["n"] == routes["human_review"]["n"] == 0
    assert no_person["configured"]["decide"] and no_person["configured"]["voters"] == ["mpnet_top"]
    assert routes["backup_model"]["n"] == no_person["evaluated"]["decided"] == 0
    assert no_user["pending_share"] == pytest.approx(
        no_person["evaluated"]["pending_share"] + flagged_accepted / n
    )
    assert set(no_person["backups_on_unsure"]) == {"tfidf", "vader", "embedding"}
    fit = no_person["fit"]
    assert fit["status"] == "none" and fit["criteria"] == {"min_accuracy": 0.93, "scope": "all"}
    # other voter sets are fitted too; one that holds keeps validation's no-person labels >= 93% right
    for cand in no_person["candidates"]:
        if cand["status"] == "done":
            assert cand["chosen_on"] == "validation" and cand["validation"]["without_person_accuracy"] >= 0.93
    no_person_rows = [t for t in metrics["targets"] if "nobody answering" in t["target"]]
    assert [t["value"] for t in no_person_rows] == [
        routes["backup_model"]["accuracy"],
        no_user["pending_share"],
    ]

    op = metrics["operating_point"]
    assert op["status"] == "done" and op["chosen_on"] == "validation"
    assert op["criteria"] == {"min_final": 1.0, "max_human": 1.0, "min_accepted": 0.0}
    assert op["validation"]["final_with_user"] == 1.0  # no accepted error on validation
    lower = [p for p in op["validation_sweep"] if p["threshold"] < op["threshold"]]
    assert all(p["final_with_user"] < 1.0 for p in lower)  # the lowest threshold meeting it
    # The chosen threshold, measured on test through the real graph: a correct user leaves only the
    # accepted errors at that threshold, and the graph routed exactly like it.
    # (Inputs the check flags go to a person at any threshold: at most ``flagged`` more.)
    at_op = next(p for p in sweep if p["threshold"] == op["threshold"])
    assert op["evaluated"]["final_with_user"] == at_op["final_with_user"]
    assert op["simulation"]["accept"] == op["threshold"] and op["simulation"]["route_mismatches"] == 0
    gained = op["simulation"]["accuracy"] - at_op["final_with_user"]
    assert -1e-9 <= gained <= flagged / n + 1e-9
    extra = op["simulation"]["human_share"] - (1 - at_op["coverage"])
    assert -1e-9 <= extra <= flagged / n + 1e-9
    if not flagged:
        assert gained == pytest.approx(0) and extra == pytest.approx(0)
    if op["threshold"] != at["threshold"]:
        assert next(t["target"] for t in metrics["targets"] if t.get("operating_point")).endswith(
            f"at accept {op['threshold']:.2f} (chosen on validation)"
        )

    report = (tmp / "EVALUATION.md").read_text()
    assert "## Operating point chosen on validation" in report
    assert f"**Chosen: accept = {op['threshold']:.2f}**" in report
    assert "operating point chosen on validation: accept" in output
    for heading in (
        "## Targets",
        "## Calibration",
        "## Fallback frequency",
        "## Risk-coverage",
        "## Self-healing",
        "## Final routes, and the no-person route",
        "## Real examples",
        "## Training run",
    ):
        assert heading in report
    assert "what this model allows" in report and "ECE if calibrated" in report
    assert "final the confidences predict" in report and "themselves predict a final" in report
    assert "![Reliability diagrams" in report and "(reports/reliability.png)" in report
    assert f"{100 * primary['accuracy']:.1f}%" in report
    assert "Produced by `selfheal eval --config" in report
    assert "primary accuracy" in output and "wrote" in output and "what this model allows" in output
    assert "nobody answering, per route: model" in output and "no-person rule" in output
    # The simulation logged to a temporary directory: no logs/ or clarified examples were written.
    assert not (tmp / "logs").exists() and not (tmp / "data").exists()


def test_eval_on_a_user_file_and_bad_inputs(tiny_run, tiny_csv, tmp_path):
    args = eval_args(tiny_run, tiny_csv, tmp_path)
    ood = tmp_path / "products.jsonl"
    rows = [
        ("The battery died after two days and support never answered.", "negative"),
        ("Arrived broken, and the replacement was broken too.", "negative"),
        ("Cheap plastic, loud fan, not worth the money.", "negative"),
        ("Works exactly as described; setup took five minutes.", "positive"),
        ("Great sound for the price, I use it every day.", "positive"),
        ("Sturdy, quiet and the kids love it.", "positive"),
        ("Lovely. " * 300, "positive"),  # longer than any max_length: cut, and the report says so
    ]
    ood.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    result = runner.invoke(
        app,
        [
            "eval",
            "--quiet",
            "--data",
            str(ood),
            "--no-simulation",
            *args,
            "--set",
            "backup.models=[tfidf]",
            "--set",
            "backup.voters=null",
        ],
    )
    assert result.exit_code == 0, result.output
    out_dir = tmp_path / "reports" / "data-products"
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["data"]["n"] == 7 and not metrics["data"]["manifest_verified"]
    assert metrics["data"]["tokens"]["truncated"] == 1 and metrics["data"]["tokens"]["max"] > 300
    assert set(metrics["fallback"]) == {"file"} and metrics["simulation"]["status"] == "skipped"
    assert metrics["operating_point"]["status"] == "skipped"  # chosen on validation, not loaded here
    assert "1 of 7 texts were longer than" in (out_dir / "EVALUATION.md").read_text()
    assert not (tmp_path / "EVALUATION.md").exists()

    bad = tmp_path / "bad.csv"
    bad.write_text("review,stars\nnice,5\n")
    for extra in (["--data", str(bad)], ["--data", str(tmp_path / "missing.csv")], ["--split", "train"]):
        result = runner.invoke(app, ["eval", "--quiet", *extra, *args])
        assert result.exit_code == 2, (extra, result.output)
        assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1
        assert "Traceback" not in result.output


def test_eval_prints_the_last_training_log(tiny_run, tiny_csv, tmp_path):
    result = runner.invoke(app, ["eval", "--training-log", *eval_args(tiny_run, tiny_csv, tmp_path)])
    assert result.exit_code == 0, result.output
    assert "training_log.csv" in result.output and "val_macro_f1" in result.output
