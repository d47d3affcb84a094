"""The Streamlit entry of ``selfheal dashboard``: four pages in the sidebar navigation."""

from __future__ import annotations

import streamlit as st

from selfheal.dashboard import PAGES

st.set_page_config(page_title="selfheal dashboard", page_icon=":material/healing:", layout="wide")

navigation = st.navigation(
    [
        st.Page(PAGES / "classify.py", title="Classify", icon=":material/edit_note:", default=True),
        st.Page(PAGES / "review.py", title="Review queue", icon=":material/rule:"),
        st.Page(PAGES / "analytics.py", title="Analytics", icon=":material/monitoring:"),
        st.Page(PAGES / "model.py", title="Model", icon=":material/model_training:"),
    ]
)
navigation.run()
