"""The evaluation with k labels: metrics against scikit-learn on synthetic arrays, the measurements
and the EVALUATION.md sections of a 3-label run, a 3-label ``--data`` file, and the simulation's
user and knowability check through the real graph."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from selfheal.cli import app
from selfheal.config import Config
from selfheal.data import DataError, text_hash
from selfheal.evaluation.calibration import calibration_report, ece, probs_nll, reliability_bins
from selfheal.evaluation.metrics import detailed_metrics, one_vs_rest_auc, sweep_start
from selfheal.evaluation.pipeline import EvalOptions, Predicted, load_data, measure, progress_bar
from selfheal.evaluation.report import render_report
from selfheal.evaluation.simulate import correct_user, simulate
from selfheal.evaluation.targets import targets
from selfheal.labels import LabelSet
from selfheal.model.checkpoint import MANIFEST_FILE, META_FILE, checkpoint_labels, shipped_checkpoint

THREE = LabelSet(("negative", "neutral", "positive"))


def model_probs(labels: np.ndarray, k: int, seed: int, signal: float = 2.0) -> np.ndarray:
    """Softmax probabilities of a model that is right about ``labels`` more often than chance."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1, (len(labels), k)) + signal * np.eye(k)[labels]
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def synthetic(n: int, k: int, seed: int, signal: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and a model's probabilities."""
    labels = np.random.default_rng(seed).integers(0, k, n)
    return labels, model_probs(labels, k, seed + 1000, signal)


@pytest.mark.parametrize("k", [3, 4])
def test_k_class_metrics_match_scikit_learn(k):
    from sklearn.metrics import (
        confusion_matrix,
        log_loss,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    labels, probs = synthetic(900, k, seed=k)
    names = [f"label{i}" for i in range(k)]
    m = detailed_metrics(labels, probs, names)
    preds = probs.argmax(axis=1)
    assert m["confusion"] == confusion_matrix(labels, preds).tolist()
    assert np.array(m["confusion"]).shape == (k, k)
    p, r, f, s = precision_recall_fscore_support(labels, preds, average=None)
    for i, name in enumerate(names):
        c = m["per_class"][name]
        assert (c["precision"], c["recall"], c["f1"], c["support"]) == pytest.approx((p[i], r[i], f[i], s[i]))
        assert c["roc_auc"] == pytest.approx(roc_auc_score(labels == i, probs[:, i]))
    mp, mr, mf, _ = precision_recall_fscore_support(labels, preds, average="macro")
    assert (m["precision_macro"], m["recall_macro"], m["f1_macro"]) == pytest.approx((mp, mr, mf))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    assert m["nll"] == pytest.approx(log_loss(labels, probs)) == pytest.approx(probs_nll(labels, probs))
    assert m["accuracy"] == pytest.approx((preds == labels).mean())


def test_one_vs_rest_auc_skips_an_absent_label():
    labels, probs = synthetic(300, 3, seed=7)
    keep = labels != 1  # no "neutral" at all
    auc = one_vs_rest_auc(labels[keep], probs[keep])
    assert auc[1] is None and None not in (auc[0], auc[2])
    m = detailed_metrics(labels[keep], probs[keep], THREE.names)
    assert m["roc_auc"] == pytest.approx((auc[0] + auc[2]) / 2)
    assert detailed_metrics(np.zeros(5, dtype=int), probs[:5], THREE.names)["roc_auc"] is None


def test_top_label_ece_matches_scikit_learn_calibration_curve():
    from sklearn.calibration import calibration_curve

    labels, probs = synthetic(2000, 3, seed=11, signal=1.5)
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    n_bins = 10
    accuracy, mean_confidence = calibration_curve(correct, confidence, n_bins=n_bins, strategy="uniform")
    counts = np.histogram(confidence, bins=np.linspace(0, 1, n_bins + 1))[0]
    weights = counts[counts > 0] / len(labels)
    expected = float(np.sum(weights * np.abs(accuracy - mean_confidence)))
    assert ece(labels, probs, n_bins) == pytest.approx(expected)
    bins = [b for b in reliability_bins(labels, probs, n_bins) if b.count]
    assert [b.accuracy for b in bins] == pytest.approx(list(accuracy))
    assert min(b.lower for b in bins) < 0.5  # with 3 labels confidences go below 0.5
    report = calibration_report(labels, probs, n_bins, n_boot=50)
    assert report["ece"] == pytest.approx(expected) and sum(b["count"] for b in report["bins"]) == 2000


def test_sweep_starts_at_the_lowest_possible_confidence():
    assert sweep_start(2, 0.05) == 0.5 and sweep_start(2, 0.01) == 0.5
    assert sweep_start(3, 0.05) == 0.3 and sweep_start(3, 0.01) == 0.33
    assert sweep_start(4, 0.05) == 0.25


@pytest.fixture(scope="module")
def three_label_run():
    """``measure`` over synthetic 3-label validation and test sets with two synthetic backups
    (no simulation), rendered into EVALUATION.md as ``selfheal eval`` would."""
    config = Config()
    config.backup.voters, config.backup.decide = None, False  # no mpnet_top among these backups
    config.backup.models = ["tfidf", "embedding"]
    config.evaluation.bootstrap = 100
    sets, logits, backups = {}, {}, {}
    for name, seed in (("validation", 1), ("test", 2)):
        labels, probs = synthetic(600, 3, seed)
        texts = [f"{name} text {i}" for i in range(len(labels))]
        sets[name] = (texts, labels)
        logits[name] = np.log(probs)
        backups[name] = {
            "tfidf": model_probs(labels, 3, seed + 10, signal=1.0),
            "embedding": model_probs(labels, 3, seed + 20, signal=1.5),
        }
    data = {
        "name": "synthetic test split",
        "source": "synthetic",
        "sets": sets,
        "eval_set": "test",
        "manifest_verified": True,
        "train_overlap": 0,
    }
    predicted = Predicted(logits, temperature=1.0, deployed_temperature=1.0, backups=backups)
    with progress_bar(quiet=True, width=3) as run:
        measured = measure(config, data, predicted, THREE, run, simulate=False)
    assert measured.pop("in_domain") is None  # no knowability detector
    metrics = {
        "command": "pytest (synthetic)",
        "created": "2026-01-01T00:00:00+00:00",
        "runtime_seconds": 0.0,
        "checkpoint": {
            "directory": "synthetic",
            "version": "synthetic",
            "method": "lora",
            "tfidf_weight": 0.0,
            "members": {"lora": 1.0},
            "base_model": "none",
            "temperature": 1.0,
            "temperature_used": True,
        },
        "labels": list(THREE),
        "data": {
            "name": data["name"],
            "source": "synthetic",
            "evaluated": "test",
            "n": 600,
            "sizes": {"validation": 600, "test": 600},
            "manifest_verified": True,
            "train_overlap": 0,
            "tokens": {"mean": 3.0, "max": 3, "max_length": 128, "truncated": 0},
        },
        **measured,
        "knowability": {"status": "skipped", "reason": "synthetic run"},
        "training_log": [],
        "figures": {"reliability": "reports/reliability.png"},
    }
    metrics["targets"] = targets(metrics)
    figures = {k: f"{k}.png" for k in ("reliability", "confidence_histogram", "risk_coverage")}
    return sets["test"][1], predicted.probs("test"), metrics, render_report(metrics, figures)


def test_three_label_measurements(three_label_run):
    from sklearn.metrics import confusion_matrix, f1_score

    labels, probs, m, _ = three_label_run
    primary = m["models"]["primary"]
    assert primary["confusion"] == confusion_matrix(labels, probs.argmax(axis=1)).tolist()
    assert primary["f1_macro"] == pytest.approx(f1_score(labels, probs.argmax(axis=1), average="macro"))
    assert list(primary["per_class"]) == list(THREE)
    # With 3 labels escalation below clarify (0.5) is reachable; the counts follow the thresholds.
    confidence = probs.max(axis=1)
    counts = m["fallback"]["test"]["counts"]
    assert counts["escalate"] == int((confidence < 0.5).sum()) > 0
    assert counts["accept"] == int((confidence >= 0.75).sum())
    sweep = m["risk_coverage"]["sweep"]
    assert sweep[0]["threshold"] == 0.3 and sweep[0]["coverage"] == 1.0
    assert m["operating_point"]["status"] in ("done", "none")
    assert m["simulation"] == {"status": "skipped", "reason": "--no-simulation"}
    for row in m["examples"]["confident_right"] + m["examples"]["asked"]:
        assert row["true"] in THREE and row["predicted"] in THREE


def section(report: str, title: str) -> str:
    """The text of the ``## title`` section of a report."""
    start = report.index(f"## {title}")
    end = report.find("\n## ", start + 1)
    return report[start : end if end > 0 else None]


def test_three_label_report_sections(three_label_run):
    _, _, m, report = three_label_run
    classification = section(report, "Classification")
    assert "sum over all 3\nclasses" in classification
    assert "| ROC-AUC (one-vs-rest, macro) |" in classification
    assert "one-vs-rest AUCs" in classification and "on the top label" in classification
    assert "| model | true \\ predicted | negative | neutral | positive |" in classification
    confusion = m["models"]["primary"]["confusion"]
    assert f"| primary model | negative | {' | '.join(map(str, confusion[0]))} |" in classification
    assert f"|  | positive | {' | '.join(map(str, confusion[2]))} |" in classification
    per_class = m["models"]["primary"]["per_class"]["neutral"]
    assert (
        f"| primary model | neutral | {100 * per_class['precision']:.1f}% | {100 * per_class['recall']:.1f}% "
        f"| {100 * per_class['f1']:.1f}% | {per_class['roc_auc']:.4f} | {per_class['support']} |"
    ) in classification
    assert (
        f"| {100 * m['models']['primary']['f1_macro']:.1f}% | {m['models']['primary']['roc_auc']:.4f} |"
        in (classification)
    )
    fallback = section(report, "Fallback frequency")
    assert "never escalates" not in fallback  # clarify 0.5 > 1/3: escalation is reachable
    assert f"({m['fallback']['test']['counts']['escalate']}) |" in fallback
    risk = section(report, "Risk-coverage")
    assert "| 0.30 | 100.0% |" in risk
    assert "Not run: --no-simulation." in section(report, "Self-healing")
    calibration = section(report, "Calibration")
    assert f"{100 * m['calibration']['scaled']['ece']:.2f}%" in calibration


def test_a_three_label_file_is_read_with_the_checkpoint_labels(tmp_path):
    # The shipped checkpoint's metadata, as a 3-label checkpoint stores it (labels from its data).
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    meta = json.loads((shipped_checkpoint() / META_FILE).read_text())
    (checkpoint / META_FILE).write_text(json.dumps(meta | {"labels": list(THREE)}))
    seen = "The bus was late again."
    (checkpoint / MANIFEST_FILE).write_text(json.dumps({"hashes": {"train": [text_hash(seen)]}}))
    file = tmp_path / "tweets.csv"
    file.write_text(f"text,label\n{seen},negative\nJust landed in Oslo.,Neutral\nbest day ever,positive\n")
    names = checkpoint_labels(checkpoint)
    assert names == THREE
    data = load_data(Config(), EvalOptions(data=file), checkpoint, names)
    assert data["sets"]["file"][1].tolist() == [0, 1, 2] and data["train_overlap"] == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nwhat a mess,angry\n")
    with pytest.raises(DataError, match="row 1: unknown label 'angry'"):
        load_data(Config(), EvalOptions(data=bad), checkpoint, names)
    # The command says so in one line, before loading any model.
    result = CliRunner().invoke(
        app, ["eval", "--quiet", "--data", str(bad), "--set", f"paths.checkpoint={checkpoint}"]
    )
    assert result.exit_code == 2 and result.output.startswith("error: ")
    assert "unknown label 'angry' (expected one of negative, neutral, positive)" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_the_simulated_user_answers_with_the_true_label():
    binary = LabelSet(("Negative", "Positive"))
    state = {"inference": {"label": "Positive"}}
    # Two labels: "Was this a negative review? (y/n)": the interrupt names the label it asks about.
    asks = {"kind": "clarify", "asked": "Negative"}
    assert correct_user(asks, state, "Negative", binary) == "y"
    assert correct_user(asks, state, "Positive", binary) == "n"
    # More labels: a multiple choice, answered with the label's name; so are the other questions.
    assert (
        correct_user({"kind": "clarify"}, {"inference": {"label": "neutral"}}, "positive", THREE)
        == "positive"
    )
    assert correct_user({"kind": "review"}, state, "Negative", binary) == "negative"
    assert correct_user({"kind": "identify"}, state, "Positive", binary) == "positive"


def test_the_simulation_runs_the_knowability_check_of_the_real_graph(shipped_classifier):
    """The shipped detector and tokenizer score real texts; the graph flags the emoji-only one,
    so it is never auto-accepted: a correct user names its label, with nobody it waits."""
    texts = [
        "A warm, funny and beautifully acted film.",
        "A dull, lifeless mess of a movie.",
        "\U0001f600\U0001f600\U0001f600 \U0001f44d\U0001f44d",
    ]
    labels = np.array([1, 0, 1])
    probs = np.array([[0.03, 0.97], [0.96, 0.04], [0.05, 0.95]])  # all above accept
    detector = shipped_classifier.knowability
    scores = detector.scores(texts, shipped_classifier.tokenizer, None)
    names = LabelSet(("Negative", "Positive"))
    config = Config()
    config.backup.voters, config.backup.decide = None, False  # no mpnet_top among these backups
    config.backup.models = ["tfidf"]
    config.evaluation.bootstrap = 50
    backup = {"tfidf": probs}
    with progress_bar(quiet=True) as run:
        on = simulate(
            config, texts, labels, probs, backup, run, names=names, detector=detector, scores=scores
        )
        config.knowability.enabled = False
        off = simulate(
            config, texts, labels, probs, backup, run, names=names, detector=detector, scores=scores
        )
    assert on["scenarios"]["user"]["flagged"] == 1 and on["scenarios"]["user"]["knowability_check"]
    for scenario in on["scenarios"].values():
        assert scenario["route_mismatches"] == 0 and scenario["logged_requests"] == 3
    assert on["per_input"]["no_user"][2] == {"label": None, "via": "pending_review"}
    assert on["per_input"]["user"][2] == {"label": "Positive", "via": "user_clarification"}
    assert on["scenarios"]["user"]["asked_share"] == pytest.approx(1 / 3)  # "what is this?" was asked
    assert on["per_input"]["user"][:2] == [
        {"label": "Positive", "via": "model"},
        {"label": "Negative", "via": "model"},
    ]
    assert "it flagged 1 of the 3 inputs" in " ".join(on["method"])
    # The check off (knowability.enabled false): the same input is auto-accepted.
    assert not off["scenarios"]["user"]["knowability_check"] and off["scenarios"]["user"]["flagged"] == 0
    assert off["per_input"]["no_user"][2] == {"label": "Positive", "via": "model"}
    assert off["scenarios"]["no_user"]["route_mismatches"] == 0


def test_the_simulation_votes_with_three_label_backups():
    """Unsure 3-label requests reach the backups' vote in the simulation's graph, which votes over
    the evaluated checkpoint's labels (not the configured checkpoint's two)."""
    texts = ["the flight was fine", "gate change again", "love this crew"]
    labels = np.array([1, 0, 2])
    probs = np.array([[0.30, 0.40, 0.30], [0.45, 0.30, 0.25], [0.20, 0.20, 0.60]])  # all unsure
    backup = {"tfidf": np.array([[0.2, 0.6, 0.2], [0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])}
    config = Config()
    config.backup.voters, config.backup.decide = None, False  # no mpnet_top among these backups
    config.backup.models = ["tfidf"]
    config.knowability.enabled = False
    config.evaluation.bootstrap = 50
    with progress_bar(quiet=True) as run:
        result = simulate(config, texts, labels, probs, backup, run, names=THREE, scenarios=("no_user",))
    assert result["scenarios"]["no_user"]["logged_requests"] == 3
    assert result["scenarios"]["no_user"]["route_mismatches"] == 0
    assert [r["via"] for r in result["per_input"]["no_user"]] == ["pending_review"] * 3
