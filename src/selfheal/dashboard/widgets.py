"""Pieces the Classify and Review queue pages share: the model's probabilities, the backups'
votes, and the buttons that answer a question (what each one sends to the graph)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from selfheal.cli.terminal import percent
from selfheal.graph.answers import NEITHER
from selfheal.labels import LabelSet
from selfheal.vocabulary import CLARIFY, IDENTIFY, STATUS, UNKNOWABLE

# Sent as the answer to leave a question for the review queue ("quit" at the terminal).
LEAVE = "quit"
# Sent by the "I don't know" button: read as unsure (asked again, then the backups decide).
UNSURE = "I don't know"


def probability_chart(state: dict[str, Any]) -> None:
    """The model's calibrated probability of each label, as a bar chart."""
    probs = (state.get("inference") or {}).get("probs") or {}
    if not probs:
        return
    frame = pd.DataFrame({"label": list(probs), "probability": [float(p) for p in probs.values()]})
    st.bar_chart(frame, x="label", y="probability", horizontal=True, sort=False, height=60 + 40 * len(probs))


def route_line(state: dict[str, Any]) -> str:
    """``Route: ask_clarify (LOW, confidence 65%) -> via user_clarification``."""
    route = state.get("route")
    if route is None:
        return ""
    confidence = (state.get("inference") or {}).get("confidence")
    parts = [f"Route: **{route}** ({STATUS.get(route, '?')}"]
    parts.append(f", confidence {percent(confidence)})" if confidence is not None else ")")
    if state.get("via"):
        parts.append(f" → via **{state['via']}**")
    return "".join(parts)


def votes_table(state: dict[str, Any]) -> pd.DataFrame:
    """The model's vote and each backup's (label and its probability), one row each."""
    inference = state.get("inference") or {}
    rows = []
    if inference:
        label = inference.get("label")
        rows.append({"voter": "model", "label": label, "probability": percent(inference["confidence"])})
    backup = (state.get("fallback") or {}).get("backup") or {}
    for name, vote in (backup.get("models") or {}).items():
        rows.append(
            {"voter": name, "label": vote["label"], "probability": percent(vote["probs"][vote["label"]])}
        )
    if backup:
        label = backup["label"]
        verdict = "agree" if backup.get("agree") else "disagree"
        rows.append(
            {
                "voter": f"backups together ({verdict})",
                "label": label,
                "probability": percent(backup["probs"][label]),
            }
        )
    return pd.DataFrame(rows, columns=["voter", "label", "probability"])


def question_choices(waiting: dict[str, Any]) -> list[tuple[str, str]]:
    """``(button text, answer sent)`` for a question the graph asks the person who typed the text:
    Yes / No to the y/n question (two labels), else one button per label, and "Neither" where an
    input the model cannot know may be none of them."""
    if waiting.get("asked"):
        return [("Yes", "yes"), ("No", "no")]
    choices = [(str(label), str(label)) for label in waiting.get("choices") or []]
    if waiting.get("none"):
        choices.append(("Neither" if len(choices) == 2 else "None of these", NEITHER))
    return choices


def asks_freely(waiting: dict[str, Any]) -> bool:
    """Whether a typed answer (and "I don't know") fits: the clarifying and identifying questions
    read free text; the forced choice of a review takes a label."""
    return waiting.get("kind") in (CLARIFY, IDENTIFY)


def review_choices(state: dict[str, Any], waiting: dict[str, Any], labels: LabelSet) -> list[str]:
    """What a reviewer may answer (as ``selfheal review``): a label, or ``neither`` for an input
    the model cannot know."""
    choices = list(labels.names)
    if waiting.get("none") or state.get("route") == UNKNOWABLE:
        choices.append(NEITHER)
    return choices
