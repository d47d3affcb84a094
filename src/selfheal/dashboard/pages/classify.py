"""Classify: a text through the graph, its label, probabilities, node trace and route; when the
graph asks, the question right here, and the answer resumes the same paused thread.

A request runs as in ``selfheal run`` (``Session.start(..., interactive=True)``, the node trace
from the session's ``on_update``, printed with the terminal's own lines). Its thread id is kept
in the browser session; an answer resumes it with ``Session.resume``, which claims the question
first: if it was answered elsewhere (the Review queue, ``selfheal review``), this answer is not
used and the page says so. A question left unanswered (the tab closed) stays paused in the
checkpointer and shows up in the Review queue.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from selfheal.cli.terminal import final_line, update_lines
from selfheal.dashboard import resources, widgets
from selfheal.dashboard.resources import SHOWN_ERRORS, Resources
from selfheal.graph.claims import AlreadyAnswered
from selfheal.graph.state import FALLBACK
from selfheal.vocabulary import REVIEW_QUEUE

KEY = "classify"  # st.session_state[KEY]: the request on screen


def _remember(outcome: Any, text: str, lines: list[str], note: str | None = None) -> None:
    st.session_state[KEY] = {
        "request_id": outcome.request_id,
        "text": text,
        "state": outcome.state,
        "waiting": outcome.waiting,
        "lines": lines,
        "note": note,
    }


def _classify(res: Resources) -> None:
    """The Classify button's callback: start a request for the text in the box."""
    text = st.session_state.get("classify_text", "")
    lines: list[str] = []

    def collect(path: tuple[str, ...], update: dict[str, Any], state: dict[str, Any]) -> None:
        lines.extend(update_lines(path, update, state))

    try:
        with res.lock:
            outcome = res.session.start(text, interactive=True, on_update=collect)
    except SHOWN_ERRORS as exc:
        st.session_state[KEY] = {"error": exc}
        return
    if outcome is None:
        st.session_state[KEY] = {"note": "Please type some text (it was empty)."}
        return
    _remember(outcome, text, lines)


def _answer(res: Resources, answer: str) -> None:
    """An answer button's callback: resume the paused request with ``answer``."""
    shown = st.session_state.get(KEY) or {}
    lines = list(shown.get("lines") or [])
    lines += [f"[{FALLBACK}] {(shown.get('waiting') or {}).get('question', '')}", f"> {answer}"]

    def collect(path: tuple[str, ...], update: dict[str, Any], state: dict[str, Any]) -> None:
        lines.extend(update_lines(path, update, state))

    try:
        with res.lock:
            outcome = res.session.resume(shown["request_id"], answer, on_update=collect)
    except AlreadyAnswered:
        shown.update(
            waiting=None,
            note="Already answered (in the Review queue or by another reviewer); your answer was not used.",
        )
        return
    except SHOWN_ERRORS as exc:
        shown["error"] = exc
        return
    _remember(outcome, shown["text"], lines)


def _typed_answer(res: Resources) -> None:
    answer = st.session_state.get("classify_answer", "").strip()
    st.session_state["classify_answer"] = ""
    if answer:
        _answer(res, answer)


def _question(res: Resources, shown: dict[str, Any]) -> None:
    """The question the request waits at, with its answers."""
    waiting = shown["waiting"]
    attempt = waiting.get("attempt", 1)
    st.info(waiting["question"], icon=":material/help:")
    key = f"{shown['request_id']}-{len(shown['lines'])}-{attempt}"
    choices = widgets.question_choices(waiting)
    extra = [("I don't know", widgets.UNSURE)] if widgets.asks_freely(waiting) else []
    extra.append(("Leave for review", widgets.LEAVE))
    columns = st.columns(len(choices) + len(extra))
    for column, (text, answer) in zip(columns, [*choices, *extra], strict=True):
        column.button(
            text,
            key=f"answer-{key}-{answer}",
            on_click=_answer,
            args=(res, answer),
            type="primary" if (text, answer) in choices else "secondary",
            width="stretch",
        )
    if widgets.asks_freely(waiting):
        st.text_input(
            'Or type an answer (free text, e.g. "No, it was positive."), then Enter',
            key="classify_answer",
            on_change=_typed_answer,
            args=(res,),
        )


def _result(res: Resources, shown: dict[str, Any]) -> None:
    state = shown["state"]
    waiting = shown.get("waiting")
    left, right = st.columns([3, 2])
    with left:
        if waiting is None or waiting.get("kind") == REVIEW_QUEUE:
            label = final_line(state)
            (st.success if state.get("final_label") else st.warning)(label)
            if waiting is not None:
                st.caption(f"Request {shown['request_id']} waits in the Review queue.")
        else:
            _question(res, shown)
        st.markdown(widgets.route_line(state))
        st.markdown("**Node trace**")
        st.code("\n".join(shown["lines"]) or "(no steps)", language=None, wrap_lines=True)
        st.caption(" → ".join(state.get("trace") or []))
    with right:
        st.markdown("**Probabilities** (calibrated)")
        widgets.probability_chart(state)
        votes = widgets.votes_table(state)
        if len(votes) > 1:
            st.markdown("**Votes**")
            st.dataframe(votes, hide_index=True)


def render() -> None:
    """The page."""
    st.title("Classify")
    loaded = resources.config_and_resources()
    if loaded is None:
        return
    cfg, res = loaded
    st.caption(
        f"Thresholds: accept at ≥ {cfg.thresholds.accept:.2f}, ask at ≥ {cfg.thresholds.clarify:.2f}, "
        f"else escalate. Log: {cfg.paths.log_dir}"
    )
    with st.form("classify_form", border=False):
        st.text_area("Text", key="classify_text", height=100, placeholder="Type a review...")
        submitted = st.form_submit_button("Classify", type="primary")
    if submitted and not resources.load_model(res):
        return
    if submitted:
        with st.spinner("Classifying..."):
            _classify(res)
    shown = st.session_state.get(KEY)
    if not shown:
        return
    if shown.get("error") is not None:
        resources.show_error(shown.pop("error"))
    if shown.get("note"):
        st.warning(shown["note"])
    if "state" in shown:
        _result(res, shown)


if __name__ == "__main__":
    render()
