"""The no-person rule: its checks at their boundaries, its fit on validation-like arrays, its
config keys, and the real graph (shipped model, real backups) deciding or leaving pending by it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import REPO
from selfheal.cli.terminal import update_lines
from selfheal.config import ConfigError, load_config
from selfheal.evaluation.metrics import wilson_lower
from selfheal.evaluation.no_person import apply_no_person_rule, fit_no_person_rule
from selfheal.logs.decisions import JSONL_NAME
from selfheal.model.backup import no_person_rule, rule_passes

VOTERS = ["vader", "embedding"]


def votes(vader: float, embedding: float, label: str = "Positive") -> dict:
    """Backup votes giving ``label`` these probabilities."""
    other = "Negative" if label == "Positive" else "Positive"
    return {
        name: {"label": label if p >= 0.5 else other, "probs": {label: p, other: 1 - p}}
        for name, p in (("vader", vader), ("embedding", embedding))
    }


def rule(confidence: float, models: dict, decide: bool = True, voters=VOTERS) -> dict:
    return no_person_rule("Positive", confidence, models, voters, 0.7, 0.8, decide)


@pytest.mark.parametrize(
    ("confidence", "vader", "embedding", "passed", "reason"),
    [
        (0.70, 0.80, 0.80, True, "ok"),  # every check exactly at its threshold: holds
        (0.6999999, 0.80, 0.80, False, "model_confidence_low"),
        (0.70, 0.7999999, 0.90, False, "voter_unsure:vader"),
        (0.74, 0.95, 0.7999999, False, "voter_unsure:embedding"),
        (0.74, 0.95, 0.49, False, "voter_disagrees:embedding"),
        (0.74, 1.0, 1.0, True, "ok"),
    ],
)
def test_rule_checks_at_their_boundaries(confidence, vader, embedding, passed, reason):
    out = rule(confidence, votes(vader, embedding))
    assert (out["passed"], out["reason"]) == (passed, reason)
    assert out["voters"] == {"vader": pytest.approx(vader), "embedding": pytest.approx(embedding)}
    # the vectorised form used by the evaluation agrees with the per-request one
    assert rule_passes(np.array([confidence]), np.array([[vader, embedding]]), 0.7, 0.8)[0] == passed


def test_rule_disabled_or_voter_missing_never_decides():
    assert rule(0.74, votes(1.0, 1.0), decide=False)["reason"] == "disabled"
    only_vader = {"vader": votes(1.0, 1.0)["vader"]}
    out = rule(0.74, only_vader)
    assert (out["passed"], out["reason"]) == (False, "voter_missing:embedding")
    # no voters: the model's confidence alone decides
    assert rule(0.71, {}, voters=[])["passed"] and not rule(0.69, {}, voters=[])["passed"]


def test_wilson_lower_bound():
    assert wilson_lower(0, 0) == 0.0
    z2 = 1.2815515655446004**2
    assert wilson_lower(10, 10, 0.9) == pytest.approx(10 / (10 + z2))  # p = 1: n / (n + z^2)
    # below the observed 90%, and closer to it with more data
    assert wilson_lower(45, 50, 0.9) < wilson_lower(450, 500, 0.9) < 0.9


# the fits below read these, not whatever config.yaml ships
ROUTE = ["backup.voters=[vader,embedding]", "evaluation.no_person_scope=route"]
ALL = ["backup.voters=[vader,embedding]", "evaluation.no_person_scope=all"]


def _arrays(n_good: int, n_bad: int, n_sure: int = 2):
    """Unsure inputs (confidence 0.6): ``n_good`` right ones the voters back at 0.9, and
    ``n_bad`` wrong ones they back at 0.6; ``n_sure`` confident right ones (accepted by the
    model; the rule never sees them, though scope ``all`` counts them)."""
    n = n_good + n_bad
    labels = np.array([1] * n_good + [0] * n_bad + [1] * n_sure)
    probs = np.array([[0.4, 0.6]] * n + [[0.1, 0.9]] * n_sure)  # the model says Positive throughout
    voter = np.array([0.9] * n_good + [0.6] * n_bad + [0.5] * n_sure)
    backups = {name: np.stack([1 - voter, voter], axis=1) for name in ("vader", "embedding", "tfidf")}
    return labels, probs, backups


def test_fit_picks_the_thresholds_that_label_the_most_within_the_bound():
    config = load_config(REPO / "config.yaml", ROUTE)
    labels, probs, backups = _arrays(n_good=60, n_bad=40)
    fit = fit_no_person_rule(config, labels, probs, backups)
    assert fit["status"] == "done" and fit["voters"] == ["vader", "embedding"]
    v = fit["validation"]
    assert (v["decided"], v["right"]) == (60, 60)  # only the 0.9-backed inputs, all right
    assert 0.6 < fit["min_voter_prob"] <= 0.9 and fit["min_confidence"] <= 0.6
    assert v["lower_bound"] >= 0.93 and v["unsure"] == 100
    # applied with decide: false nothing is labelled and every unsure input waits
    applied = apply_no_person_rule(labels, probs, backups, config, decide=False)
    assert applied["decided"] == 0 and applied["pending_share"] == pytest.approx(100 / 102)
    # with the fitted values switched on, the same 60
    on = load_config(
        REPO / "config.yaml",
        [
            *ROUTE,
            "backup.decide=true",
            f"backup.min_voter_prob={fit['min_voter_prob']}",
            f"backup.min_confidence={fit['min_confidence']}",
        ],
    )
    assert apply_no_person_rule(labels, probs, backups, on)["right"] == 60


def test_fit_finds_nothing_when_too_few_are_right():
    config = load_config(REPO / "config.yaml", ROUTE)
    labels, probs, backups = _arrays(n_good=8, n_bad=40)  # 8/8 has a 90% lower bound of 0.83
    fit = fit_no_person_rule(config, labels, probs, backups)
    assert fit["status"] == "none"
    assert fit["criteria"] == {"min_accuracy": 0.93, "scope": "route", "level": 0.9}


def test_scope_all_counts_the_models_accepted_labels_too():
    """200 accepted and right, 60 unsure the voters back at 0.9 (right), 10 at 0.6 (wrong):
    labelling all 70 keeps every label given without a person 260/270 = 96.3% right, so scope
    ``all`` labels them; the rule's own 60/70 = 85.7% fails scope ``route``, which keeps to the 60."""
    labels, probs, backups = _arrays(n_good=60, n_bad=10, n_sure=200)
    every = fit_no_person_rule(load_config(REPO / "config.yaml", ALL), labels, probs, backups)
    assert every["status"] == "done" and every["criteria"] == {"min_accuracy": 0.93, "scope": "all"}
    v = every["validation"]
    assert (v["decided"], v["right"], v["without_person"]) == (70, 60, 270)
    assert v["without_person_accuracy"] == pytest.approx(260 / 270)
    assert every["min_voter_prob"] <= 0.6  # the loosest that holds
    route = fit_no_person_rule(load_config(REPO / "config.yaml", ROUTE), labels, probs, backups)
    assert (route["validation"]["decided"], route["validation"]["right"]) == (60, 60)
    # with more wrong ones the accepted labels cannot carry them: (200 + 60) / 300 < 93%
    labels, probs, backups = _arrays(n_good=60, n_bad=40, n_sure=200)
    assert (
        fit_no_person_rule(load_config(REPO / "config.yaml", ALL), labels, probs, backups)["validation"][
            "decided"
        ]
        == 60
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["backup.voters=[zero_shot]"], "backup.voters ['zero_shot'] must also be in backup.models"),
        (["backup.voters=[vader,vader]"], "backup.voters lists a model twice"),
        (["backup.voters=[bert]"], "'backup.voters'"),
        (["backup.min_voter_prob=0.4"], "'backup.min_voter_prob'"),
        (["backup.min_confidence=1.2"], "'backup.min_confidence'"),
        (["backup.decide=perhaps"], "'backup.decide'"),
        (["evaluation.no_person_level=1"], "'evaluation.no_person_level'"),
    ],
)
def test_bad_rule_config_is_a_one_line_error(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(REPO / "config.yaml", override)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_null_voters_mean_mpnet_top_if_a_backup_else_every_backup_but_tfidf(selfheal_cli):
    config = load_config(REPO / "config.yaml")
    assert config.backup.voters is None and config.backup.voter_names == ["mpnet_top"]
    before = load_config(REPO / "config.yaml", ["backup.models=[tfidf,vader,embedding]"]).backup
    assert before.voter_names == ["vader", "embedding"]  # a config from before the voter still loads
    assert load_config(REPO / "config.yaml", ["backup.models=[tfidf,vader]"]).backup.voter_names == ["vader"]
    result = selfheal_cli("classify", "--set", "backup.voters=[zero_shot]", "x")
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "backup.voters" in result.stderr


# --- the real graph: shipped model, real backups ------------------------------------------------

CLEAR = "A warm, funny and moving film, a pure delight from start to finish."


DULL = "A dull, lifeless and badly acted mess; I was bored from start to finish."


def _run(session, text: str = CLEAR, **backup) -> dict:
    for key, value in backup.items():
        setattr(session.config.backup, key, value)
    session.config.thresholds.accept = 1.0  # every request goes to the backups
    outcome = session.start(text, interactive=False)
    path = session.config.paths.log_dir / JSONL_NAME
    return outcome, json.loads(path.read_text().splitlines()[-1])


def test_rule_that_holds_decides_via_backup_model_and_the_record_says_why(session):
    outcome, record = _run(session, decide=True, min_confidence=0.5, min_voter_prob=0.5, voters=VOTERS)
    backup = record["fallback"]["backup"]
    model_label = record["inference"]["label"]
    assert model_label == "Positive"  # the shipped model is sure about this one
    assert all(backup["models"][v]["probs"]["Positive"] >= 0.5 for v in VOTERS)
    assert backup["decided_without_person"] is True
    assert backup["rule"]["passed"] is True and backup["rule"]["reason"] == "ok"
    assert set(backup["rule"]["voters"]) == set(VOTERS)
    assert record["final_decision"] == {"label": "Positive", "via": "backup_model"} and outcome.done


def test_the_shipped_rule_with_the_real_voter(session):
    """config.yaml's rule as shipped (decide on, the fine-tuned mpnet voter, the thresholds
    `selfheal eval` fitted): a clear review is labelled without a person, and the record gives
    the voter's probability and the thresholds it passed."""
    shipped = load_config(REPO / "config.yaml").backup
    assert shipped.decide and shipped.voter_names == ["mpnet_top"]
    session.config.backup.models = shipped.models
    outcome, record = _run(
        session, **shipped.model_dump(include={"decide", "voters", "min_confidence", "min_voter_prob"})
    )
    backup = record["fallback"]["backup"]
    voter = backup["models"]["mpnet_top"]["probs"]["Positive"]
    assert set(backup["models"]) == {"tfidf", "vader", "embedding", "mpnet_top"}
    assert voter >= shipped.min_voter_prob and backup["rule"]["voters"] == {"mpnet_top": pytest.approx(voter)}
    assert (backup["rule"]["min_confidence"], backup["rule"]["min_voter_prob"]) == (
        shipped.min_confidence,
        shipped.min_voter_prob,
    )
    assert backup["decided_without_person"] and backup["rule"]["reason"] == "ok"
    assert record["final_decision"] == {"label": "Positive", "via": "backup_model"} and outcome.done
    _, negative = _run(session, DULL)
    assert negative["fallback"]["backup"]["models"]["mpnet_top"]["label"] == "Negative"
    assert negative["final_decision"] == {"label": "Negative", "via": "backup_model"}


def test_a_request_the_backups_decide_writes_no_checkpoint_one_left_pending_does(session):
    """Checkpoint only what a pause needs (issue 14): the batched path knows the backups' vote
    before the graph runs, so a request the rule labels cannot pause and runs without the
    checkpointer or a review-queue row; one the rule leaves for a person is checkpointed at its
    pause. The decision and the rule it records are those of the path that checkpoints every
    request (InferenceNode calling the model)."""
    shipped = load_config(REPO / "config.yaml").backup
    session.config.backup.models = shipped.models
    rule = shipped.model_dump(include={"decide", "voters", "min_confidence", "min_voter_prob"})
    written: list[str] = []
    put = session.checkpointer.put

    def spy(config, *args, **kwargs):
        written.append(config["configurable"]["thread_id"])
        return put(config, *args, **kwargs)

    session.checkpointer.put = spy
    decided, record = _run(session, **rule)
    assert record["final_decision"]["via"] == "backup_model" and decided.done
    assert written == [] and session.paused() == []
    session.start(CLEAR, interactive=False, precompute=False)  # InferenceNode calls the model
    path = session.config.paths.log_dir / JSONL_NAME
    alone = json.loads(path.read_text().splitlines()[-1])
    assert alone["final_decision"] == record["final_decision"]
    assert alone["fallback"]["backup"]["rule"] == record["fallback"]["backup"]["rule"]
    assert written  # that path checkpoints a request that may pause
    written.clear()
    pending, left = _run(session, **(rule | {"min_voter_prob": 1.0}))
    assert left["final_decision"]["via"] == "pending_review" and pending.pending_review
    assert set(written) == {pending.request_id}
    assert [o.request_id for o in session.paused()] == [pending.request_id]


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"decide": False}, "disabled"),  # the shipped config.yaml
        ({"decide": True, "min_voter_prob": 1.0}, "voter_unsure:"),
    ],
)
def test_rule_that_fails_leaves_the_request_pending(session, settings, reason):
    outcome, record = _run(session, **settings)
    backup = record["fallback"]["backup"]
    assert backup["agree"] is True  # the backups agree with the model, yet that is not enough
    assert backup["decided_without_person"] is False and backup["rule"]["reason"].startswith(reason)
    assert record["final_decision"] == {"label": None, "via": "pending_review"}
    assert outcome.pending_review
    # what a person at the terminal is told: the backups agree, but not enough to decide alone
    after = {"inference": record["inference"], "fallback": record["fallback"]}  # the state after the step
    (line,) = update_lines(("FallbackNode", "backup"), {"fallback": record["fallback"]}, after)
    assert line.endswith(
        f"agree with the model, but too weakly to decide without a person ({backup['rule']['reason']})"
    )


def test_the_voter_runs_only_where_the_rule_can_hold_and_stays_out_of_the_mean(backup_ensemble):
    """mpnet_top costs a whole mpnet forward: it votes only for texts whose ``voters_needed`` is
    true (the rule on and the model's confidence >= backup.min_confidence); the mean vote, which
    picks the backups' label, is the other backups' either way."""
    from selfheal.model.backup import rule_may_hold

    assert rule_may_hold(True, 0.62, 0.62) and not rule_may_hold(True, 0.62, 0.61)
    assert not rule_may_hold(False, 0.62, 0.74)
    with_voter, without = backup_ensemble.predict_many([DULL, DULL], [True, False])
    assert set(with_voter["models"]) == {"tfidf", "vader", "embedding", "mpnet_top"}
    assert set(without["models"]) == {"tfidf", "vader", "embedding"}
    assert with_voter["probs"] == without["probs"]  # the mean leaves the voter out
    others = np.mean([list(without["models"][m]["probs"].values()) for m in without["models"]], axis=0)
    assert list(without["probs"].values()) == pytest.approx(others, abs=1e-6)
