"""Spendboard's entry script: page config, one-time setup, the shared sidebar and navigation."""

import streamlit as st

from ui.common import sidebar, start_app

st.set_page_config(page_title="Spendboard", page_icon=":material/payments:", layout="wide")

start_app()
sidebar()

page = st.navigation(
    [
        st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("pages/logs.py", title="Usage logs", icon=":material/receipt_long:", url_path="logs"),
        st.Page("pages/pricing.py", title="Pricing", icon=":material/sell:", url_path="pricing"),
        st.Page("pages/calculator.py", title="Calculator", icon=":material/calculate:", url_path="calculator"),
        st.Page("pages/keys.py", title="API keys", icon=":material/key:", url_path="keys"),
    ],
    position="top",
)
page.run()
