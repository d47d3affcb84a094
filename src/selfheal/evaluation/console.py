"""What ``selfheal eval`` prints: the headline figures of a run, or the last training log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfheal.config import Config
from selfheal.data import DataError
from selfheal.evaluation.no_person import criterion_text
from selfheal.evaluation.pipeline import EvalOutputs, display_path, read_training_log
from selfheal.evaluation.targets import target_bounds
from selfheal.model.checkpoint import TRAINING_LOG_FILE, resolve_checkpoint


def last_training_log(config: Config) -> Path:
    """Directory of the last training run (``paths.output_dir``), or of the evaluated checkpoint
    when no run has been written there."""
    out = Path(config.paths.output_dir)
    if (out / TRAINING_LOG_FILE).exists():
        return out
    return resolve_checkpoint(config.paths.checkpoint)


def print_training_log(config: Config, console: Any) -> None:
    """Print the per-epoch table of the last training run (the CSV's columns, aligned)."""
    directory = last_training_log(config)
    rows = read_training_log(directory)
    if not rows:
        raise DataError(f"{directory} has no {TRAINING_LOG_FILE}")

    def fmt(key: str, value: str) -> str:
        try:
            number = float(value)
        except ValueError:
            return value
        if key == "learning_rate":
            return f"{number:.2e}"
        return value if key in ("epoch", "seconds") else f"{number:.4f}"

    header = list(rows[0])
    cells = [[fmt(k, row[k]) for k in header] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    console.print(
        f"training log: {display_path(directory / TRAINING_LOG_FILE)}", highlight=False, soft_wrap=True
    )
    for line in [header, *cells]:
        console.print(
            "  ".join(v.rjust(w) for v, w in zip(line, widths, strict=True)), highlight=False, soft_wrap=True
        )


def print_summary(outputs: EvalOutputs, console: Any) -> None:
    """The headline figures of a finished evaluation and where the files went."""
    m = outputs.metrics
    raw, scaled = m["calibration"]["raw"], m["calibration"]["scaled"]
    at = m["risk_coverage"]["at_threshold"]
    acc_at = "n/a" if at["accuracy"] is None else f"{100 * at['accuracy']:.1f}%"
    if at.get("accuracy_ci95"):
        acc_at += f" [{100 * at['accuracy_ci95'][0]:.1f}, {100 * at['accuracy_ci95'][1]:.1f}]"
    lines = [
        f"{m['data']['name']}: {m['data']['n']} texts, primary accuracy {100 * m['models']['primary']['accuracy']:.1f}%"
        f", macro-F1 {100 * m['models']['primary']['f1_macro']:.1f}%",
        f"ECE {100 * raw['ece']:.2f}% [{100 * raw['ece_ci95'][0]:.2f}, {100 * raw['ece_ci95'][1]:.2f}] before, "
        f"{100 * scaled['ece']:.2f}% [{100 * scaled['ece_ci95'][0]:.2f}, {100 * scaled['ece_ci95'][1]:.2f}] "
        f"after temperature scaling (T={m['checkpoint']['temperature']:.3f})",
        f"at accept {at['threshold']}: accuracy on accepted {acc_at}, coverage {100 * at['coverage']:.1f}%; "
        f"final {100 * at['final_with_user']:.1f}% if a person labels the rest correctly "
        f"(the confidences predict {100 * at['final_predicted']:.1f}%)",
    ]
    bounds = target_bounds(m)
    floor = bounds["ece"]
    lines.append(
        f"what this model allows: ECE if perfectly calibrated {100 * floor['mean']:.2f}% "
        f"[{100 * floor['range95'][0]:.2f}, {100 * floor['range95'][1]:.2f}] (p = {floor['p_value']:.2f}); "
        f"most confident 70%: accuracy {100 * bounds['accepted_accuracy']['value']:.1f}%, "
        f"final {100 * bounds['final_accuracy']['value']:.1f}% with the other 30% labelled by a person"
    )
    for s in m["simulation"].get("scenarios", {}).values():
        lines.append(
            f"simulation, {s['title']}: final accuracy {100 * s['accuracy']:.1f}% "
            f"[{100 * s['accuracy_ci95'][0]:.1f}, {100 * s['accuracy_ci95'][1]:.1f}], "
            f"asked {100 * s['asked_share']:.1f}%, needed a human {100 * s['human_share']:.1f}%"
        )
    lines += _no_person_lines(m)
    op = m.get("operating_point", {})
    if op.get("status") == "done":
        e, sim = op["evaluated"], op.get("simulation")
        final = (
            f"final {100 * e['final_with_user']:.1f}% if a person labels the rest correctly"
            if sim is None
            else f"simulated final {100 * sim['accuracy']:.1f}% [{100 * sim['accuracy_ci95'][0]:.1f}, "
            f"{100 * sim['accuracy_ci95'][1]:.1f}] with a correct user, {100 * sim['human_share']:.1f}% needed a person"
        )
        lines.append(
            f"operating point chosen on validation: accept {op['threshold']:.2f} -> on {m['data']['evaluated']}: "
            f"accuracy on accepted {100 * (e['accuracy'] or 0):.1f}%, coverage {100 * e['coverage']:.1f}%, {final}"
            + (
                ""
                if op["threshold"] == at["threshold"]
                else f" (--set thresholds.accept={op['threshold']:.2f})"
            )
        )
    elif op:
        lines.append(f"operating point not chosen: {op['reason']}")
    if m["simulation"].get("status") != "done":
        lines.append(f"simulation {m['simulation'].get('status')}: {m['simulation'].get('reason', '')}")
    lines.append(
        f"wrote {display_path(outputs.metrics_json)}, {len(outputs.figures)} figures and {display_path(outputs.report)} "
        f"in {m['runtime_seconds']:.0f} s"
    )
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def _no_person_lines(m: dict[str, Any]) -> list[str]:
    """Console lines: accuracy and share per final route with nobody answering, and the
    no-person rule fitted on validation."""
    no_user = m["simulation"].get("scenarios", {}).get("no_user")
    lines = []
    if no_user is not None:
        parts = []
        for via, r in no_user["routes"].items():
            acc = "" if r["accuracy"] is None else f" at {100 * r['accuracy']:.1f}%"
            parts.append(f"{via} {100 * r['share']:.1f}%{acc}")
        lines.append("nobody answering, per route: " + ", ".join(parts))
    fit = m.get("no_person", {}).get("fit", {})
    if fit.get("status") == "done":
        v = fit["validation"]
        lines.append(
            f"no-person rule fitted on validation ({'+'.join(fit['voters']) or 'no voters'}): "
            f"--set backup.min_confidence={fit['min_confidence']:.2f} --set backup.min_voter_prob="
            f"{fit['min_voter_prob']:.2f} (validation: {v['right']}/{v['decided']} right, "
            f"{criterion_text(v, fit['criteria'])})"
        )
    elif fit.get("status") == "none":
        c = fit["criteria"]
        wanted = (
            "every label without a person"
            if c.get("scope") == "all"
            else f"a {100 * c['level']:.0f}% lower bound"
        )
        lines.append(
            f"no-person rule: no thresholds for voters {'+'.join(fit['voters']) or '(none)'} give "
            f"{wanted} >= {100 * c['min_accuracy']:.0f}% on validation; "
            "keep --set backup.decide=false (unsure inputs wait for review)"
        )
    return lines
