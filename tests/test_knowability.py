"""The input-knowability check (issue 12): unknowable inputs are never auto-accepted.

Real shipped model (with its fitted ``knowability.json.gz``), real graph, real files. The
hand-written inputs of ``data/unknowable/`` are used whole, never a picked subset.
"""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

from conftest import REPO
from selfheal.config import ConfigError, load_config
from selfheal.evaluation.knowability import read_sets
from selfheal.graph.answers import NEITHER, parse_identity
from selfheal.labels import MOVIE_LABELS
from selfheal.model.knowability import (
    KNOWABILITY_FILE,
    KnowabilityDetector,
    fit_knowability,
    judge,
    resolve_thresholds,
)

UNKNOWABLE_KINDS = ("emoji", "other_scripts", "gibberish", "other_languages", "neutral_english")


@pytest.fixture(scope="session")
def hand_written():
    sets = read_sets(REPO / "data" / "unknowable")
    assert set(UNKNOWABLE_KINDS) <= set(sets) and "other_reviews" in sets
    assert all(len(texts) >= 25 for texts in sets.values())
    return sets


def records(session) -> list[dict]:
    path = session.config.paths.log_dir / "app.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --- answers and config ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "meant"),
    [
        ("p", "Positive"),
        ("N", "Negative"),
        ("negative", "Negative"),
        ("x", NEITHER),
        ("neither", NEITHER),
        ("neither positive nor negative", NEITHER),
        ("it is not a review", NEITHER),
        ("none", NEITHER),
        ("not positive", None),
        ("positive and negative", None),
        ("hmm", None),
        ("", None),
    ],
)
def test_parse_identity(answer, meant):
    assert parse_identity(answer, MOVIE_LABELS) == meant


def test_config_section_is_typed_and_validated():
    cfg = load_config(REPO / "config.yaml")
    assert cfg.knowability.enabled is True
    assert cfg.knowability.min_review == "auto"
    cfg = load_config(REPO / "config.yaml", ["knowability.min_review=0.2", "knowability.enabled=false"])
    assert cfg.knowability.min_review == 0.2 and cfg.knowability.enabled is False
    for bad in ("knowability.min_review=1.5", "knowability.max_unk_share=0", "knowability.quantile=0.7"):
        with pytest.raises(ConfigError, match="knowability"):
            load_config(REPO / "config.yaml", [bad])
    with pytest.raises(ConfigError, match=r"knowability\.threshold"):
        load_config(REPO / "config.yaml", ["knowability.threshold=0.1"])


def test_short_english_snippet_is_not_called_foreign(session):
    """py3langid gives "A dull mess." a low P(English); every word of it is a training word."""
    outcome = session.start("A dull mess.", interactive=False)
    check = outcome.state["knowability"]
    assert check["scores"]["p_english"] < check["thresholds"]["min_english"]  # the identifier alone says no
    assert check["scores"]["known_share"] == 1.0 and check["known"] is True
    assert outcome.state["via"] == "model"
    session.config.knowability.trust_known_words = False
    assert session.start("A dull mess.", interactive=False).state["knowability"]["reason"] == "not_english"


def test_thresholds_auto_means_fitted_and_numbers_override():
    cfg = load_config(REPO / "config.yaml", ["knowability.min_english=0.3"])
    fitted = {"min_known_share": 0.2, "min_english": 0.01, "min_review": 0.05}
    got = resolve_thresholds(fitted, cfg.knowability)
    assert got == {
        "max_unk_share": 0.5,
        "max_known_share_not_english": 1.0,  # trust_known_words: true
        "min_known_share": 0.2,
        "min_english": 0.3,
        "min_review": 0.05,
    }
    off = load_config(REPO / "config.yaml", ["knowability.trust_known_words=false"])
    assert resolve_thresholds(fitted, off.knowability)["max_known_share_not_english"] == 2.0


def test_rules_in_order():
    th = {"max_unk_share": 0.5, "min_known_share": 0.3, "min_english": 0.1, "min_review": 0.2}
    base = {"unk_share": 0.0, "words": 5, "known_share": 1.0, "p_english": 0.9}
    base |= {"p_review": 0.9, "p_objective": 0.05, "p_junk": 0.05}
    assert judge(base, th).known
    assert judge(base | {"unk_share": 0.6}, th).reason == "no_known_words"
    assert judge(base | {"words": 0, "known_share": 0.0}, th).reason == "no_known_words"
    assert judge(base | {"p_english": 0.01}, th).reason == "not_english"
    low = base | {"p_review": 0.1}
    assert judge(low | {"p_objective": 0.8, "p_junk": 0.1}, th).reason == "not_a_review"
    assert judge(low | {"p_objective": 0.1, "p_junk": 0.8}, th).reason == "out_of_distribution"
    # not_english needs a word never used in training when known words are trusted (1.0)
    trusted = th | {"max_known_share_not_english": 1.0}
    assert judge(base | {"p_english": 0.01}, trusted).known
    assert judge(base | {"p_english": 0.01, "known_share": 0.9}, trusted).reason == "not_english"
    # a signal that is missing (no mpnet features, no language identifier) is skipped
    assert judge(base | {"p_english": None, "p_review": None}, th).known


def test_fit_without_features_and_save_load_are_deterministic(tmp_path, rt_splits, shipped_classifier):
    train = list(rt_splits["train"]["text"][:300])
    val = list(rt_splits["validation"]["text"][:200])
    detector = fit_knowability(train, None, val, None, shipped_classifier.tokenizer, None, quantile=0.05)
    assert set(detector.thresholds) == {"min_known_share", "min_english", "min_review"}
    assert detector.coef is None and "good" in detector.vocabulary
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = detector.save(tmp_path / "a").read_bytes()
    again = KnowabilityDetector.load(tmp_path / "a")
    assert again.thresholds == detector.thresholds and again.vocabulary == detector.vocabulary
    assert again.save(tmp_path / "b").read_bytes() == first


# --- the shipped detector through the real graph ----------------------------------------------


def test_shipped_checkpoint_has_a_detector(classifier):
    assert classifier.knowability is not None
    assert classifier.knowability.coef is not None  # the mpnet classifier is in use


def test_no_hand_written_unknowable_input_is_auto_accepted(session, hand_written):
    """Every unknowable input of every kind, non-interactively: none via the model."""
    accepted, no_person = [], []
    for kind in UNKNOWABLE_KINDS:
        for text in hand_written[kind]:
            state = session.start(text, interactive=False).state
            if state["via"] == "model":
                accepted.append((kind, text))
            if state["via"] in ("model", "backup_model"):
                no_person.append((kind, text))
    assert accepted == []
    total = sum(len(hand_written[k]) for k in UNKNOWABLE_KINDS)
    assert len(no_person) <= 0.10 * total, no_person


def test_unknowable_input_without_a_person_waits_for_review_unlabelled(session):
    outcome = session.start("🤮", interactive=False)
    state = outcome.state
    assert state["status"] == "UNKNOWN" and state["route"] == "unknowable"
    assert state["via"] == "pending_review" and state["final_label"] is None
    assert state["fallback"].get("backup") is None  # the backups never saw it
    [record] = records(session)
    check = record["confidence_check"]
    assert check["status"] == "UNKNOWN"
    assert check["knowability"]["known"] is False
    assert check["knowability"]["reason"] == "no_known_words"
    assert check["knowability"]["scores"]["unk_share"] == 1.0
    assert record["final_decision"] == {"label": None, "via": "pending_review"}
    assert record["fallback"]["backup"] is None
    assert outcome.pending_review


class Answers:
    """A prompter that types the given answers (the real ``review_one`` asks it)."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []

    def ask(self, prompt: str, timeout: float | None = None) -> str:
        self.prompts.append(prompt)
        return self.answers.pop(0)


def test_reviewer_may_answer_neither_for_an_unknowable_input(session):
    """A pending unknowable input in the review queue: the reviewer is offered "neither"; a
    label-only answer such as "maybe" is asked again; "neither" ends it with no label, not kept."""
    from rich.console import Console

    from selfheal.cli.review import review_one
    from selfheal.cli.terminal import Printer

    pending = session.start("👎👎👎", interactive=False)
    assert pending.pending_review
    [waiting] = session.paused()
    console = Console(record=True, width=200)
    prompter = Answers("maybe", "neither")
    assert review_one(session, waiting, prompter, Printer(console)) == "answered"
    shown = console.export_text()
    assert "negative/positive/neither; s = skip, q = quit" in shown
    assert "Please answer negative/positive/neither, s or q." in shown
    assert len(prompter.prompts) == 2
    assert "Final Label: none (neither a positive nor a negative review, said the reviewer)" in shown
    final = records(session)[-1]
    assert final["request_id"] == pending.request_id
    assert final["final_decision"] == {"label": None, "via": "human_review"}
    assert final["fallback"]["review"] == {"mode": "queue", "answer": "neither", "label": None}
    assert not session.config.paths.clarified.exists()  # no label, nothing for retraining
    assert session.paused() == []


def test_interactive_neither_is_user_none_and_not_kept_for_retraining(session):
    outcome = session.start("asdfghjkl qwerty", interactive=True)
    assert outcome.waiting["kind"] == "identify"
    assert "neither" in outcome.waiting["question"]
    done = session.resume(outcome.request_id, "x")
    assert done.done
    assert done.state["via"] == "user_none" and done.state["final_label"] is None
    [record] = records(session)
    assert record["final_decision"] == {"label": None, "via": "user_none"}
    assert record["fallback"]["user_response"] == ["x"]
    assert not session.config.paths.clarified.exists()


def test_interactive_label_for_unknowable_input_is_kept(session):
    outcome = session.start("Der Film war langweilig und viel zu lang.", interactive=True)
    assert outcome.waiting["kind"] == "identify"
    unclear = session.resume(outcome.request_id, "hmm")
    assert unclear.waiting["kind"] == "identify" and "Sorry" in unclear.waiting["question"]
    done = session.resume(outcome.request_id, "negative")
    assert done.state["via"] == "user_clarification" and done.state["final_label"] == "Negative"
    rows = [json.loads(line) for line in session.config.paths.clarified.read_text().splitlines()]
    assert [r["label"] for r in rows] == ["Negative"]


def test_no_answer_to_the_question_waits_for_review(session):
    outcome = session.start("👎👎👎", interactive=True)
    done = session.resume(outcome.request_id, {"answer": None, "reason": "eof"})
    assert done.state["via"] == "pending_review"
    assert done.state["fallback"]["no_answer_reason"] == "eof"
    assert done.state["fallback"].get("backup") is None


def test_known_review_is_unaffected(session):
    state = session.start("A warm, funny and moving film.", interactive=False).state
    assert state["knowability"]["known"] is True and state["via"] == "model"


def test_check_off_by_config(session):
    session.config.knowability.enabled = False
    state = session.start("🤮", interactive=False).state
    assert state["knowability"] is None and state["route"] != "unknowable"


@pytest.fixture(scope="session")
def test_split_predictions(classifier, rt_splits):
    """The shipped model's predictions (with knowability scores) on the whole test split, once."""
    return classifier.predict(list(rt_splits["test"]["text"]))


def test_test_split_auto_accepted_share_drops_at_most_3_points(
    classifier, test_split_predictions, graph_config
):
    thresholds = resolve_thresholds(classifier.knowability.thresholds, graph_config.knowability)
    accept = graph_config.thresholds.accept
    confident = np.array([p.confidence >= accept for p in test_split_predictions])
    known = np.array([judge(p.knowability, thresholds).known for p in test_split_predictions])
    drop = confident.mean() - (confident & known).mean()
    assert 0 <= drop <= 0.03, drop


def test_checkpoint_without_detector_still_works(tmp_path, caplog):
    from selfheal.model.checkpoint import shipped_checkpoint
    from selfheal.model.classifier import Classifier

    directory = tmp_path / "ckpt"
    shutil.copytree(shipped_checkpoint(), directory)
    (directory / KNOWABILITY_FILE).unlink()
    with caplog.at_level(logging.WARNING):
        loaded = Classifier.load(directory, use_embedder=False)
    assert loaded.knowability is None
    assert "knowability-check is off" in caplog.text.replace("knowability check", "knowability-check")
    [prediction] = loaded.predict(["🤮"])
    assert prediction.knowability is None and prediction.label in ("Negative", "Positive")


def test_stats_counts_unknowable_and_user_none(tmp_path, session):
    """Real records of the graph (a neither answer, a pending unknowable input), then `selfheal stats`."""
    from selfheal.logs.stats import read_log, render

    outcome = session.start("asdfghjkl qwerty", interactive=True)
    session.resume(outcome.request_id, "neither")
    session.start("🤮", interactive=False)
    text = render(read_log(session.config.paths.log_dir / "app.jsonl"), 10)
    assert "unknowable" in text and "user_none" in text and "pending_review" in text
    lines = text.splitlines()
    assert any("unknowable" in line and " 2" in line for line in lines), text
