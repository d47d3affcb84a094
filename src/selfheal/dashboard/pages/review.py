"""Review queue: the requests that wait for a person, with the model's and the backups' votes.

The queue is the graph's checkpointer, as for ``selfheal review``: every paused thread (pending
reviews, and questions a run or a browser tab left open). Answering resumes the thread with
``{"answer": label, "source": "review"}`` through ``Session.resume``, which claims the question
first: the first answer wins, wherever it comes from; a later one is told "already answered" and
nothing of it is used. No model is loaded. As ``selfheal review`` does, opening the page first
records decisions whose record failed to be written and finishes answers whose reviewer died
before they were applied.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from selfheal.cli.review import backup_summary, since
from selfheal.cli.terminal import final_line, percent
from selfheal.dashboard import resources, widgets
from selfheal.dashboard.resources import SHOWN_ERRORS, Resources
from selfheal.graph.claims import AlreadyAnswered
from selfheal.vocabulary import ASK_NAMES

NOTES = "review_notes"  # st.session_state[NOTES]: what happened to the last answers


def _note(kind: str, text: str) -> None:
    st.session_state.setdefault(NOTES, []).append((kind, text))


def _answer(res: Resources, request_id: str, answer: str) -> None:
    """A choice button's callback: resume the request with the reviewer's answer."""
    try:
        with res.lock:
            done = res.session.resume(request_id, {"answer": answer, "source": "review"})
    except AlreadyAnswered:
        _note(
            "warning",
            f"Already answered: request {request_id[:8]} was answered by another reviewer; "
            "your answer was not used.",
        )
        return
    except SHOWN_ERRORS as exc:
        _note("error", f"error: {exc}")
        return
    if done.waiting is None:
        _note("success", f"Request {request_id[:8]}: {final_line(done.state)}")
    else:
        _note("warning", f"Request {request_id[:8]} still waits: {done.waiting.get('question', '')}")


def _maintain(res: Resources) -> None:
    """What ``selfheal review`` does first: record unrecorded decisions, finish abandoned answers."""
    with res.lock:
        recorded = res.session.finish_unrecorded()
        finished = res.session.recover()
    for outcome in recorded:
        _note("info", f"Recorded request {outcome.request_id[:8]} (its record had failed to be written).")
    for outcome in finished:
        _note(
            "info",
            f"Finished request {outcome.request_id[:8]}, answered by a reviewer who stopped before it "
            f"was applied: {final_line(outcome.state)}",
        )


def _overview(paused: list[Any]) -> pd.DataFrame:
    rows = []
    for outcome in paused:
        state, inference = outcome.state, outcome.state.get("inference") or {}
        rows.append(
            {
                "request": outcome.request_id[:8],
                "since": since(state),
                "waits for": ASK_NAMES.get(str((outcome.waiting or {}).get("kind")), "?"),
                "model": f"{inference.get('label')} {percent(inference.get('confidence', 0.0))}",
                "backups": backup_summary(state),
                "text": state.get("text", ""),
            }
        )
    return pd.DataFrame(rows)


def _card(res: Resources, outcome: Any) -> None:
    state, waiting = outcome.state, outcome.waiting or {}
    labels = res.session.services.labels_for(state)
    with st.container(border=True):
        kind = ASK_NAMES.get(str(waiting.get("kind")), "?")
        st.markdown(f"**{outcome.request_id[:8]}** · {since(state)} · {kind}")
        st.markdown(f"> {state.get('text', '')}")
        left, right = st.columns([2, 3])
        with left:
            st.dataframe(widgets.votes_table(state), hide_index=True)
        with right:
            widgets.probability_chart(state)
        choices = widgets.review_choices(state, waiting, labels)
        st.caption("Which label is right?")
        for column, choice in zip(st.columns(len(choices)), choices, strict=True):
            column.button(
                choice,
                key=f"review-{outcome.request_id}-{choice}",
                on_click=_answer,
                args=(res, outcome.request_id, choice),
                width="stretch",
            )


def render() -> None:
    """The page."""
    st.title("Review queue")
    loaded = resources.config_and_resources()
    if loaded is None:
        return
    _, res = loaded
    try:
        _maintain(res)
        with res.lock:
            paused = res.session.paused()
    except SHOWN_ERRORS as exc:
        resources.show_error(exc)
        return
    for kind, text in st.session_state.pop(NOTES, []):
        getattr(st, kind)(text)
    st.button("Refresh", icon=":material/refresh:")
    if not paused:
        st.info("No requests wait for review.")
        return
    st.markdown(
        f"**{len(paused)} request(s) wait for a person** (oldest first; as of {datetime.now():%H:%M:%S})."
    )
    st.dataframe(_overview(paused), hide_index=True)
    for outcome in paused:
        _card(res, outcome)


if __name__ == "__main__":
    render()
