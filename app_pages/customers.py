"""Customers: this month's cost, billable amount and margin per customer, statements, and calls billed to nobody."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd
import streamlit as st

from core.customers import service
from core.customers.statement import Statement, statement_csv, statement_json, statement_pdf
from core.money import format_total, to_text
from ui import common
from ui.budget_views import plain

MONTHS_BACK = 12


@st.cache_data(ttl=common.CACHE_TTL, show_spinner=False)
def _overview(url: str, month: str, tz: str) -> service.MonthOverview:
    return service.month_overview(common.get_engine(), month, tz)


@st.cache_data(ttl=common.CACHE_TTL, show_spinner=False)
def _statement(url: str, name: str, month: str, tz: str) -> Statement:
    return service.statement_for(common.get_engine(), name, month, tz)


def _cents(amount: Decimal) -> str:
    """A billable amount or margin, already to the cent: ``$14.81``, ``-$0.20``."""
    return f"{'-' if amount < 0 else ''}${abs(amount):,.2f}"


def _months(latest: str, count: int) -> list[str]:
    year, month = int(latest[:4]), int(latest[5:])
    found = []
    for _ in range(count):
        found.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return found


st.title("Customers")
common.get_engine()
flt = common.filters(period=False)  # times shown in the viewer's zone; no period here
url = common.snapshot()  # fresh figures on every reload
tz = flt.tz.key
month = st.selectbox("Month", _months(service.current_month(tz, datetime.now(UTC)), MONTHS_BACK), key="customers_month")
overview = _overview(url, month, tz)
st.caption(f"{month} in {tz} time (the sidebar's zone). Billable: cost with each customer's markup, to the cent.")

if not overview.customers:
    st.info(
        "No customers yet. Add one from the command line: "
        "`python -m core customers add --name acme --match project:acme --markup 20` "
        "(match user:U, project:P or tag:T; the first customer added wins a call two would match)."
    )
else:
    table = pd.DataFrame(
        {
            "Customer": [row.customer.name for row in overview.customers],
            "Match": [row.customer.match for row in overview.customers],
            "Markup": [f"{row.customer.markup}%" for row in overview.customers],
            "Calls": [row.totals.calls for row in overview.customers],
            "Cost": [format_total(row.totals.cost) for row in overview.customers],
            "Billable": [_cents(row.totals.billable) for row in overview.customers],
            "Margin": [_cents(row.totals.margin) for row in overview.customers],
            "Exact cost (USD)": [to_text(row.totals.cost) for row in overview.customers],
        }
    )
    st.dataframe(
        table,
        hide_index=True,
        key="customers_table",
        column_config=common.COUNTS,
    )

if overview.unmatched_calls:
    st.warning(
        f"{overview.unmatched_calls:,} call{'s' if overview.unmatched_calls != 1 else ''} this month "
        f"({format_total(overview.unmatched_cost)}, exactly ${to_text(overview.unmatched_cost)}) matched no customer: "
        "they are on nobody's statement.",
        icon=":material/warning:",
    )
else:
    st.success("Every call this month matched a customer.", icon=":material/check_circle:")

if overview.customers:
    st.subheader("Statement")
    names = [row.customer.name for row in overview.customers]
    left, right = st.columns([2, 1])
    name = left.selectbox("Customer", names, key="statement_customer")
    fmt = right.segmented_control("Format", ["PDF", "CSV", "JSON"], default="PDF", key="statement_format") or "PDF"
    statement = _statement(url, name, month, tz)
    totals = statement.totals
    st.markdown(
        f"**{plain(name)}**, {month}: {totals.calls:,} calls, cost ${to_text(totals.cost)}, "
        f"billable **{_cents(totals.billable)}** (exact ${to_text(totals.billable_exact)}, "
        "rounded half-even to the cent), "
        f"margin {_cents(totals.margin)}."
    )
    if fmt == "PDF":
        data, mime = statement_pdf(statement), "application/pdf"
    elif fmt == "CSV":
        data, mime = statement_csv(statement).encode(), "text/csv"
    else:
        data, mime = (json.dumps(statement_json(statement), indent=2) + "\n").encode(), "application/json"
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
    st.download_button(
        f"Download {fmt} statement",
        data,
        file_name=f"statement-{safe}-{month}.{fmt.lower()}",
        mime=mime,
        key="statement_download",
        type="primary",
    )
