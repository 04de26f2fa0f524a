"""Spendboard's entry script: page config, one-time setup, the shared sidebar and navigation."""

import streamlit as st

from core.budgets.worker import start_worker as start_budget_worker
from ui.common import sidebar, start_app

st.set_page_config(page_title="Spendboard", page_icon=":material/payments:", layout="wide")

engine = start_app()
sidebar()
start_budget_worker(engine)  # reconciles budgets and posts due alerts every few seconds, once per process

page = st.navigation(
    [
        st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("pages/logs.py", title="Usage logs", icon=":material/receipt_long:", url_path="logs"),
        st.Page("pages/pricing.py", title="Pricing", icon=":material/sell:", url_path="pricing"),
        st.Page("pages/calculator.py", title="Calculator", icon=":material/calculate:", url_path="calculator"),
        st.Page("pages/budgets.py", title="Budgets", icon=":material/savings:", url_path="budgets"),
    ],
    position="top",
)
page.run()
