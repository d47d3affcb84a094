"""The reviewer's dashboard: a Streamlit app over the same config, log and checkpointer as the CLI.

``selfheal dashboard`` runs ``streamlit run`` on :data:`APP` with the config passed in two
environment variables (:data:`CONFIG_ENV`: the config file, :data:`SET_ENV`: the ``--set``
overrides as a JSON list), so a request the CLI leaves pending shows up in the Review queue and
one the dashboard leaves pending shows up in ``selfheal review``.

Modules: ``app`` (the entry, ``st.navigation``), ``resources`` (the config, and the graph session
and models loaded once per server process), ``data`` (the log read once per file version and
its aggregations), ``pages/`` (Classify, Review queue, Analytics, Model).
"""

from __future__ import annotations

from pathlib import Path

APP = Path(__file__).with_name("app.py")
PAGES = Path(__file__).with_name("pages")
CONFIG_ENV = "SELFHEAL_DASHBOARD_CONFIG"
SET_ENV = "SELFHEAL_DASHBOARD_SET"
