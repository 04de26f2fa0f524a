"""Spendboard's entry script: page config, one-time setup, the shared sidebar and navigation."""

from pathlib import Path

import streamlit as st

from ui.common import sidebar, start_app

# A shipped file: a ":material/...:" or emoji page icon makes the browser fetch the favicon from a font host.
ICON = Path(__file__).resolve().parent / "static" / "spendboard-icon.png"
st.set_page_config(page_title="Spendboard", page_icon=str(ICON), layout="wide")

start_app()
sidebar()

page = st.navigation(
    [
        st.Page("app_pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("app_pages/logs.py", title="Usage logs", icon=":material/receipt_long:", url_path="logs"),
        st.Page("app_pages/pricing.py", title="Pricing", icon=":material/sell:", url_path="pricing"),
        st.Page("app_pages/calculator.py", title="Calculator", icon=":material/calculate:", url_path="calculator"),
    ],
    position="top",
)
page.run()
