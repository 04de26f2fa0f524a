"""Reconciliation: the provider's own bill against the computed one, per UTC day, and where they part."""

from datetime import UTC, date, datetime, timedelta

import streamlit as st

from core.config import ConfigError
from core.money import format_total
from core.reconcile import service
from core.reconcile.errors import ReconcileError
from core.reconcile.report import DEFAULT_TOLERANCE, PROVIDERS, Reconciliation, coverage, reconcile
from ui import common
from ui.reconcile_views import (
    billed_vs_computed_figure,
    coverage_text,
    day_table,
    fetch_command,
    model_table,
)

FETCH_DAYS = 31
NAMES = {"openai": "OpenAI", "anthropic": "Anthropic"}


@st.cache_data(ttl=common.CACHE_TTL, show_spinner=False)
def _report(url: str, first: date | None, last: date | None, by: str) -> Reconciliation:
    return reconcile(common.get_engine(), since=first, until=last, by=by, tolerance=DEFAULT_TOLERANCE)


st.title("Reconciliation")
st.caption(
    "The provider's own bill (its cost and usage reports) against the cost Spendboard computed from the "
    "calls it logged, per UTC day. Within 1 % (or a cent) is a match."
)
engine = common.get_engine()
url = common.snapshot()  # fresh figures on every reload
flt = common.filters()
today = datetime.now(UTC).date()

by_day = _report(url, flt.first, flt.last, "day")
by_model = _report(url, flt.first, flt.last, "model")

with st.expander("How to fetch the provider's bill", expanded=not by_day.fetched_days):
    for provider in PROVIDERS:
        name = NAMES[provider]
        module = service.client(provider)
        try:
            key = service.admin_key(provider)
        except ConfigError as exc:
            st.error(str(exc))
            continue
        if key:
            # the key is read from the environment only; it is never shown
            label = f"Fetch the last {FETCH_DAYS} days from {name}"
            if st.button(label, key=f"fetch_{provider}"):
                with st.spinner(f"Fetching {name}'s cost and usage reports..."):
                    try:
                        stored = service.fetch_and_store(
                            engine, provider, today - timedelta(days=FETCH_DAYS - 1), today + timedelta(days=1)
                        )
                    except (ReconcileError, ConfigError) as exc:
                        st.error(f"Nothing stored: {exc}")
                    else:
                        common.clear_caches()
                        st.success(
                            f"{name}: {stored.days} days stored, {stored.lines} cost lines, "
                            f"billed {format_total(stored.billed_total)}."
                        )
                        st.rerun()
            st.caption(f"{name}: admin key set ({module.KEY_VARIABLE}).")
        else:
            st.markdown(
                f"**{name}**: set `{module.KEY_VARIABLE}` (an admin key) and run, or import saved pages "
                f"with `python -m core reconcile import FILE --provider {provider}`:"
            )
            st.code(fetch_command(provider, today, FETCH_DAYS), language="bash")

if not by_day.rows:
    st.info("No bill and no calls of OpenAI or Anthropic in this period. Fetch the provider's report first.")
    st.stop()

drifting = [row for row in by_day.rows if row.drifts]
share = coverage(by_model.rows)
kpis = st.columns(4)
kpis[0].metric("Billed", format_total(by_day.totals.billed), help="days with a fetched bill")
kpis[1].metric(
    "Computed",
    format_total(by_day.totals.computed),
    delta=f"{by_day.totals.delta_pct}%" if by_day.totals.delta_pct is not None else None,
    delta_color="off",
    help="the stored cost of the calls logged on those days",
)
kpis[2].metric(
    "Coverage",
    coverage_text(share),
    help="the share of the billed amount that logged calls explain (per model, up to its bill)",
)
kpis[3].metric("Days out of tolerance", f"{len({row.day for row in drifting})}")

st.plotly_chart(billed_vs_computed_figure(by_day.rows), width="stretch", key="reconcile_chart")
st.caption("The shaded area between the lines is the drift; an x marks a day out of tolerance.")

st.subheader("Per day, out of tolerance first")
st.dataframe(day_table(by_day.rows), hide_index=True, key="reconcile_days", width="stretch")

st.subheader("A day by model")
drift_days = {row.day for row in drifting}
days = sorted({row.day for row in by_day.rows}, key=lambda d: (d not in drift_days, d))
# keyed by the first day offered: when a fetch changes which days drift, the worst one opens again
first_key = f"reconcile_day_{days[0].isoformat()}"
picked = st.selectbox("Day (UTC)", days, format_func=lambda d: d.isoformat(), key=first_key)
opened = [row for row in by_model.rows if row.day == picked]
st.dataframe(model_table(opened), hide_index=True, key="reconcile_models", width="stretch")
st.caption(
    "Token counts in Spendboard's meaning: input includes cached tokens and cache writes "
    "(OpenAI's input_tokens; Anthropic's four input counts summed). A model's dated id and its alias meet in one row."
)
