"""Model: the configured checkpoint's model card, and the evaluation targets table and figures
(reliability, risk-coverage) of the last ``selfheal eval`` (``<paths.reports_dir>/metrics.json``).

No model is loaded: the card is the checkpoint's ``README.md`` and its metadata ``selfheal.json``.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from selfheal.dashboard import resources
from selfheal.model.card import CARD_FILE

METRICS_FILE = "metrics.json"
FIGURES = (("reliability", "Reliability diagram"), ("risk_coverage", "Risk-coverage"))


def strip_front_matter(text: str) -> str:
    """The card without its YAML front matter (Hugging Face metadata between ``---`` lines)."""
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end != -1:
            return text[end + 5 :].lstrip()
    return text


def _card(checkpoint: Path) -> dict[str, Any] | None:
    """Show the model card; the checkpoint's metadata, or ``None`` when it cannot be read."""
    from selfheal.model.checkpoint import read_meta

    try:
        meta = read_meta(checkpoint)
        card = (checkpoint / CARD_FILE).read_text(encoding="utf-8")
    except resources.SHOWN_ERRORS as exc:
        resources.show_error(exc)
        return None
    shown = checkpoint.resolve()
    with contextlib.suppress(ValueError):
        shown = shown.relative_to(Path.cwd())
    st.caption(f"Checkpoint {shown} · version {meta.get('version', '?')}")
    st.subheader("Model card")
    with st.container(height=480, border=True):
        st.markdown(strip_front_matter(card))
    return meta


def _evaluation(reports: Path, meta: dict[str, Any] | None) -> None:
    from selfheal.evaluation.report import TARGETS_HEADER, targets_rows

    path = reports / METRICS_FILE
    if not path.exists():
        st.info(f"No evaluation yet: {path} does not exist (run `selfheal eval`).")
        return
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        rows = targets_rows(metrics, missed="no")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        st.error(f"error: cannot read {path}: {exc}")
        return
    evaluated = metrics.get("checkpoint") or {}
    st.caption(
        f"From `{metrics.get('command', 'selfheal eval')}` on {metrics.get('created', '?')}: "
        f"{(metrics.get('data') or {}).get('name', '?')}, checkpoint {evaluated.get('directory', '?')} "
        f"(version {evaluated.get('version', '?')})."
    )
    if meta is not None and evaluated.get("version") not in (None, meta.get("version")):
        st.warning(
            f"This evaluation is of checkpoint version {evaluated.get('version')}, not the configured "
            f"{meta.get('version')}: run `selfheal eval` again."
        )
    st.subheader("Evaluation targets")
    st.dataframe(pd.DataFrame(rows, columns=TARGETS_HEADER), hide_index=True, height=36 * (len(rows) + 1) + 4)
    figures = metrics.get("figures") or {}
    columns = st.columns(len(FIGURES))
    for column, (key, title) in zip(columns, FIGURES, strict=True):
        written = Path(figures.get(key) or f"{key}.png")  # as eval wrote it (relative to its cwd)
        figure = next((p for p in (written, reports / written.name) if p.is_file()), written)
        with column:
            st.markdown(f"**{title}**")
            if figure.is_file():
                st.image(str(figure), width="stretch")
            else:
                st.info(f"{figure} is missing (run `selfheal eval`).")


def render() -> None:
    """The page."""
    st.title("Model")
    cfg = resources.config()
    if cfg is None:
        return
    from selfheal.model.checkpoint import resolve_checkpoint

    try:
        checkpoint = resolve_checkpoint(cfg.paths.checkpoint)
    except resources.SHOWN_ERRORS as exc:
        resources.show_error(exc)
        checkpoint = None
    meta = _card(checkpoint) if checkpoint is not None else None
    _evaluation(Path(cfg.paths.reports_dir), meta)


if __name__ == "__main__":
    render()
