"""Spendboard's entry script: page config, one-time setup, the shared sidebar and navigation."""

from pathlib import Path

import streamlit as st

from core.budgets.worker import start_worker as start_budget_worker
from ui.common import sidebar, start_app

# A shipped file: a ":material/...:" or emoji page icon makes the browser fetch the favicon from a font host.
ICON = Path(__file__).resolve().parent / "ui" / "spendboard-icon.png"
st.set_page_config(page_title="Spendboard", page_icon=str(ICON), layout="wide")

engine = start_app()
sidebar()
start_budget_worker(engine)  # reconciles budgets and posts due alerts every few seconds, once per process

page = st.navigation(
    [
        st.Page("app_pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("app_pages/logs.py", title="Usage logs", icon=":material/receipt_long:", url_path="logs"),
        st.Page("app_pages/budgets.py", title="Budgets", icon=":material/savings:", url_path="budgets"),
        st.Page(
            "app_pages/reconciliation.py", title="Reconciliation", icon=":material/balance:", url_path="reconciliation"
        ),
        st.Page("app_pages/customers.py", title="Customers", icon=":material/groups:", url_path="customers"),
        st.Page("app_pages/pricing.py", title="Pricing", icon=":material/sell:", url_path="pricing"),
        st.Page("app_pages/calculator.py", title="Calculator", icon=":material/calculate:", url_path="calculator"),
        st.Page("app_pages/keys.py", title="API keys", icon=":material/key:", url_path="keys"),
    ],
    position="top",
)
page.run()
