"""Analytics of ``<paths.log_dir>/app.jsonl``: shares by confidence-check outcome and by ``via``,
the fallback frequency over time, the confidence histogram and trend over the last N requests,
and how often a person corrected the model; the time range and N are adjustable.

The log is read once per file version (:mod:`selfheal.dashboard.data`); damaged lines are
skipped and counted, as ``selfheal stats`` does.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

from selfheal.dashboard import data, resources
from selfheal.logs.stats import default_log

DEFAULT_LAST = 200


def _time_range(log: data.Overview) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """The time-range slider (whole minutes, UTC); open ends when the log spans no time."""
    if log.first is None or log.last is None:
        return None, None
    first = log.first.floor("min").tz_convert(None).to_pydatetime()
    last = log.last.ceil("min").tz_convert(None).to_pydatetime()
    if last <= first:
        return None, None
    chosen: tuple[datetime, datetime] = st.slider(
        "Time range (UTC)", min_value=first, max_value=last, value=(first, last), format="YYYY-MM-DD HH:mm"
    )
    start, end = (pd.Timestamp(t, tz="UTC") for t in chosen)
    return start, end + pd.Timedelta(seconds=59.999)  # the whole last minute


def _shares(title: str, table: pd.DataFrame, key: str) -> None:
    st.markdown(f"**{title}**")
    st.bar_chart(table, x=key, y="requests", sort=False, height=220)
    shown = table.assign(share=(100 * table["share"]).round(1).astype(str) + "%")
    st.dataframe(shown, hide_index=True)


def render() -> None:
    """The page."""
    st.title("Analytics")
    cfg = resources.config()
    if cfg is None:
        return
    path = default_log(cfg)
    try:
        version = data.file_version(path)
        if version is None:
            st.info(
                f"No decisions logged yet: {path} does not exist. Classify something first "
                "(this dashboard's Classify page, `selfheal run` or `selfheal classify`)."
            )
            return
        log = data.overview(version)
    except resources.SHOWN_ERRORS as exc:
        resources.show_error(exc)
        return
    notes = []
    if log.skipped:
        notes.append(f"{log.skipped} damaged or incomplete line(s) skipped")
    if log.superseded:
        notes.append(f"{log.superseded} earlier record(s) of reviewed requests superseded")
    st.caption(f"{path}: {log.requests} request(s) from {log.lines} line(s)")
    st.button(
        "Refresh",
        icon=":material/refresh:",
        help="Read decisions logged since (the log is re-read when it changed)",
    )
    if log.skipped:
        st.warning(f"{'; '.join(notes)}.", icon=":material/warning:")
    elif notes:
        st.caption(f"{'; '.join(notes)}.")
    if log.requests == 0:
        st.info("No requests logged yet: nothing to show.")
        return
    start, end = _time_range(log)
    last = st.number_input(
        "Confidence histogram and trend over the last N requests (0 = all in the range)",
        min_value=0,
        value=DEFAULT_LAST,
        step=50,
    )
    summary = data.summarise(version, start, end, int(last))
    if summary.requests == 0:
        st.info("No requests in this time range.")
        return
    status = summary.status.set_index("outcome")["share"]
    columns = st.columns(4)
    columns[0].metric("Requests in range", f"{summary.requests:,}")
    columns[1].metric("Accepted by the model", f"{100 * status.get('accept', 0.0):.1f}%")
    columns[2].metric("Fallback (not accepted)", f"{100 * (1 - status.get('accept', 0.0)):.1f}%")
    columns[3].metric("Mean confidence (last N)", f"{summary.trend['confidence'].mean():.3f}")
    left, right = st.columns(2)
    with left:
        _shares("Confidence check (fallback frequency)", summary.status, "outcome")
    with right:
        _shares("Final decision via", summary.via, "via")
    st.markdown(f"**Fallback frequency over time** (share not accepted per {summary.bucket} bucket, UTC)")
    st.bar_chart(summary.over_time, y="fallback share", height=220)
    left, right = st.columns(2)
    with left:
        st.markdown(f"**Confidence histogram** (last {summary.last} requests)")
        st.bar_chart(summary.histogram, x="confidence", y="requests", sort=False, height=260)
    with right:
        st.markdown(f"**Confidence trend** (last {summary.last} requests)")
        st.line_chart(summary.trend, height=260)
    st.markdown("**Clarification outcomes** (did a person confirm or correct the model's label?)")
    outcomes = summary.clarifications
    shown = outcomes.assign(**{"corrected share": outcomes["corrected share"].map(_percent)})
    st.dataframe(shown, hide_index=True)
    answered = outcomes.iloc[:2]
    if answered["answers"].sum():
        corrected = answered["corrected"].sum() / answered["answers"].sum()
        st.caption(
            f"A person corrected the model in {100 * corrected:.1f}% of the answered questions and reviews."
        )


def _percent(value: float | None) -> str:
    return "-" if value is None or pd.isna(value) else f"{100 * value:.1f}%"


if __name__ == "__main__":
    render()
