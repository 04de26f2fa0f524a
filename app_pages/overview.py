"""Overview: KPIs for the period, spend over time, and where the money went."""

from datetime import UTC, datetime
from decimal import Decimal

import streamlit as st

from core.config import database_url
from core.money import format_total, to_text
from core.recording.demo import load_demo
from core.reporting.forecast import change_ratio, format_change, previous_period
from ui import budget_banner, common
from ui.charts import spend_figure
from ui.signin import is_signed_in, sign_in_form
from ui.views import EXACT_SPEND, SPEND_HELP, breakdown_table, estimate_notice, kpi_values

DEMO_DAYS, DEMO_ROWS = 90, 20_000
FILTER_OPTIONS = 500  # the biggest spenders first; a filter list of every user would not help anyone
TOP = 50  # rows of the top models / users / projects tables

st.title("Overview")
engine = common.get_engine()
budget_banner.render(engine)  # a budget at or past a threshold shows first
url = database_url()
flt = common.filters()

if not common.has_usage(url):
    st.info("No usage recorded yet. Record calls with `python -m core record` or `import`, or load demo data.")
    if not is_signed_in():  # demo rows land in the billing log: the admin's call
        st.caption(
            f"An admin can load demo data here ({DEMO_ROWS:,} calls, marked as demo; "
            "`python -m core demo --remove` deletes them)."
        )
        sign_in_form(engine, key="demo_sign_in")
    elif st.button(f"Load demo data ({DEMO_DAYS} days, {DEMO_ROWS:,} calls)", type="primary", key="load_demo"):
        with st.spinner("Recording demo calls..."):
            result = load_demo(engine, days=DEMO_DAYS, rows=DEMO_ROWS)
        common.clear_caches()
        st.toast(f"Loaded {result.recorded:,} demo calls.")
        st.rerun()
    st.stop()

span = flt.range(engine)
if span is None:
    st.info("No usage in this period.")
    st.stop()
start, end = span

# Narrow everything below to one provider, model, user or project (served from the roll-ups).
ALL = "All"
pick = st.columns(4)
chosen: dict[str, str] = {}
for column, (by, label) in zip(
    pick, (("provider", "Provider"), ("model", "Model"), ("user", "User"), ("project", "Project")), strict=True
):
    narrowed = tuple((k, v) for k, v in chosen.items())
    options = [r.key or "" for r in common.breakdown(url, start, end, by, narrowed, FILTER_OPTIONS)]
    if st.session_state.get(f"overview_{by}") not in (None, ALL, *options):
        st.session_state[f"overview_{by}"] = ALL
    value = column.selectbox(label, [ALL, *options], key=f"overview_{by}")
    if value != ALL:
        chosen[by] = value
where = tuple(chosen.items())

current = common.totals(url, start, end, where)
# "All time" has no previous period of the same length to compare with: no comparison is shown
compare = flt.first is not None
before = common.totals(url, *previous_period(start, end), where) if compare else None
now = datetime.now(UTC).replace(second=0, microsecond=0)
projection = common.projection(url, now, flt.tz.key)

st.caption(f"{flt.label}, {flt.tz.key} time")
values = kpi_values(current)
cols = st.columns(4)
exact = f"Exact: ${to_text(current.cost_total)}."
cols[0].metric(
    "Total spend",
    values["Total spend"],
    delta=format_change(change_ratio(current.cost_total, before.cost_total)) if before else None,
    delta_color="inverse",
    help=f"{exact} Change against the previous period of the same length ({format_total(before.cost_total)})."
    if before
    else exact,
)
calls_change = change_ratio(Decimal(current.calls), Decimal(before.calls)) if before else None
cols[1].metric("Calls", values["Calls"], delta=format_change(calls_change), delta_color="off")  # neither good nor bad
cols[2].metric("Average cost per call", values["Average cost per call"])
cols[3].metric(
    "Month-end projection",
    format_total(projection.projected),
    help=f"This month so far: {format_total(projection.spent_so_far)}, continued at the same daily rate.",
)
cols = st.columns(4)
cols[0].metric("Input tokens", values["Input tokens"])
cols[1].metric("Output tokens", values["Output tokens"])
cols[2].metric("Cached input tokens", f"{current.cached_input_tokens:,}")
if before is not None:
    cols[3].metric(
        "Previous period spend", format_total(before.cost_total), help=f"Exact: ${to_text(before.cost_total)}."
    )
cols = st.columns(4)
cols[0].metric("Cache write tokens (5 min)", f"{current.cache_write_tokens:,}")
cols[1].metric("Cache write tokens (1 h)", f"{current.cache_write_1h_tokens:,}")
cols[2].metric("Reasoning tokens", f"{current.reasoning_tokens:,}", help="Part of the output tokens.")
cols[3].metric("Web searches", f"{current.web_search_calls:,}")

notice = estimate_notice(current)
if notice:
    st.warning(notice, icon=":material/warning:")

st.subheader("Spend over time")
left, right = st.columns(2)
stack = left.segmented_control("Stack by", ["provider", "model"], default="provider", key="stack_by")
granularity = right.segmented_control("Granularity", ["day", "week", "month"], default="day", key="granularity")
rows = common.over_time(url, start, end, flt.tz.key, granularity or "day", stack or "provider", where)
if rows:
    st.plotly_chart(spend_figure(rows, (stack or "provider").title(), granularity or "day"), width="stretch")
else:
    st.info("No spend in this period.")

st.subheader("Where the money went")
# Full width for the providers (few rows, every column readable); models and users side by side.
MONEY_COLUMNS = {
    "Spend": st.column_config.TextColumn("Spend", help=SPEND_HELP),
    "Calls": st.column_config.NumberColumn("Calls", format="localized"),
    EXACT_SPEND: st.column_config.TextColumn(EXACT_SPEND, help="The exact sum, in USD."),
}
st.markdown("**Spend per provider**")
st.dataframe(
    breakdown_table(common.breakdown(url, start, end, "provider", where), "Provider", None),
    hide_index=True,
    column_config=MONEY_COLUMNS,
    key="providers_table",
)
models, users = st.columns([1.4, 1])
with models:
    st.markdown("**Top models**")
    table = breakdown_table(common.breakdown(url, start, end, "model", where, TOP), "Model", total=current.cost_total)
    st.dataframe(table, hide_index=True, column_config=MONEY_COLUMNS)
with users:
    st.markdown("**Top users**")
    table = breakdown_table(common.breakdown(url, start, end, "user", where, TOP), "User", total=current.cost_total)
    st.dataframe(table, hide_index=True, column_config=MONEY_COLUMNS)
st.markdown("**Top projects**")
table = breakdown_table(common.breakdown(url, start, end, "project", where, TOP), "Project", total=current.cost_total)
st.dataframe(table, hide_index=True, column_config=MONEY_COLUMNS, key="projects_table")
