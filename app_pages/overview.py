"""Overview: KPIs for the period, spend over time, and where the money went."""

from datetime import UTC, datetime
from decimal import Decimal

import streamlit as st

from core.money import format_total, to_text
from core.recording.demo import load_demo
from core.reporting.aggregates import axis_periods
from core.reporting.forecast import change_ratio, format_change, previous_period
from ui import anomaly_views, budget_banner, common
from ui.charts import chart_html, spend_chart
from ui.signin import is_signed_in, sign_in_form
from ui.views import EXACT_SPEND, SPEND_HELP, breakdown_table, estimate_notice, kpi_values, top_caption

DEMO_DAYS, DEMO_ROWS = 90, 20_000
FILTER_OPTIONS = 500  # the biggest spenders first; a filter list of every user would not help anyone
TOP = 50  # rows of the top models / users / projects tables

st.title("Overview")
engine = common.get_engine()
budget_banner.render(engine)  # a budget at or past a threshold shows first
url = common.snapshot()  # fresh figures on every reload
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

# Narrow everything below to one provider, model, user or project, and tags (served from the roll-ups).
ALL = "All"
pick = st.columns(5)
chosen: dict[str, str] = {}
for column, (by, label) in zip(
    pick[:4], (("provider", "Provider"), ("model", "Model"), ("user", "User"), ("project", "Project")), strict=True
):
    narrowed = tuple((k, v) for k, v in chosen.items())
    options = [r.key or "" for r in common.breakdown(url, start, end, by, narrowed, FILTER_OPTIONS)]
    if st.session_state.get(f"overview_{by}") not in (None, ALL, *options):
        st.session_state[f"overview_{by}"] = ALL
    value = column.selectbox(label, [ALL, *options], key=f"overview_{by}")
    if value != ALL:
        chosen[by] = value
tags = common.tag_filter(url, start, end, "overview_tags", pick[4])
where = tuple(chosen.items()) + tuple(("tag", tag) for tag in tags)

current = common.totals(url, start, end, where)
# "All time" has no previous period of the same length to compare with: no comparison is shown
compare = flt.first is not None
before = common.totals(url, *previous_period(start, end), where) if compare else None
now = datetime.now(UTC).replace(second=0, microsecond=0)
projection = common.projection(url, now, flt.tz.key, where)  # the same calls as the figures beside it

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
# The counts behind the spend, one click away: drawn (and their row of the page built) only when opened.
details = st.expander("Tokens, cache writes, reasoning and web searches", key="overview_counts", on_change="rerun")
if details.open:
    with details:
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
    axis = axis_periods(start, end, flt.tz, granularity or "day")  # every period, zero where nothing was spent
    marked = anomaly_views.matching(anomaly_views.between(url, start, end), where)
    chart = spend_chart(rows, (stack or "provider").title(), granularity or "day", marked, flt.tz, axis)
    st.html(chart_html(chart))  # plain HTML bars: no chart library for the browser to load and run first
    if marked:
        st.caption(
            f"▼ {len(marked)} anomalies in this period: hover a red marker for the key, its spend and its usual."
        )
else:
    st.info("No spend in this period.")
anomaly_views.render_latest(url)

st.subheader("Where the money went")
MONEY_COLUMNS = {
    "Spend": st.column_config.TextColumn("Spend", help=SPEND_HELP),
    **common.COUNTS,
    EXACT_SPEND: st.column_config.TextColumn(EXACT_SPEND, help="The exact sum, in USD."),
}
# One table at a time: only the open tab's query runs (a switch reruns the page), so the first view
# reads what is flat at any size (providers) and draws one grid, not five.
BREAKDOWNS = {"Providers": "provider", "Models": "model", "Users": "user", "Projects": "project", "Tags": "tag"}
for tab, (title, by) in zip(
    st.tabs(list(BREAKDOWNS), key="overview_breakdown", on_change="rerun"), BREAKDOWNS.items(), strict=True
):
    if not tab.open:
        continue
    with tab, st.container(key=f"breakdown_{by}"):
        label = title.removesuffix("s")
        if by == "provider":
            rows = common.breakdown(url, start, end, by, where)
            table = breakdown_table(rows, label, None)
            st.dataframe(table, hide_index=True, column_config=MONEY_COLUMNS, key="providers_table")
            continue
        rows = common.breakdown(url, start, end, by, where, TOP + 1)  # one more: are there others?
        if not rows:
            st.caption(f"No {'tagged calls' if by == 'tag' else 'calls'} in this period.")
            continue
        table = breakdown_table(rows, label, TOP, total=current.cost_total)
        st.dataframe(table, hide_index=True, column_config=MONEY_COLUMNS, key=f"{by}s_table")
        caption = top_caption(rows, TOP, current.cost_total, title.lower(), overlap=by == "tag")
        if by == "tag":
            caption += " A call counts under each of its tags: the rows overlap and can add up to more than the total."
        st.caption(caption)
