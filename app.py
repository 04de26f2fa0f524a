"""Spendboard's entry script: page config, one-time setup and navigation (each page draws the filters it reads)."""

from pathlib import Path

import streamlit as st

import core.limits  # noqa: F401 - enforced budgets: counters kept by recording (test calls too), holds swept
from core.budgets.worker import start_worker as start_budget_worker
from core.storage.checkpoint import start_checkpointer
from ui.common import start_app
from ui.navigation import PAGES

# A shipped file: a ":material/...:" or emoji page icon makes the browser fetch the favicon from a font host.
ICON = Path(__file__).resolve().parent / "ui" / "spendboard-icon.png"
st.set_page_config(page_title="Spendboard", page_icon=str(ICON), layout="wide")

engine = start_app()
start_budget_worker(engine)  # reconciles budgets and posts due alerts every few seconds, once per process
start_checkpointer(engine)  # SQLite: the WAL copied into the database off the requests' time

page = st.navigation(
    [
        st.Page(p.script, title=p.title, icon=p.icon, **({"url_path": p.url_path} if p.url_path else {"default": True}))
        for p in PAGES
    ],
    position="top",
)
page.run()
