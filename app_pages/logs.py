"""Usage logs: every recorded call, filtered, paged by keyset, downloadable as CSV."""

import streamlit as st

from core.pricing.rates import MATCH_STEPS
from core.reporting.logs import (
    EXPORT_PATH,
    PAGE_SIZES,
    LogFilter,
    export_query,
    fetch_page,
    get_row,
    parse_log_id,
)
from ui import common
from ui.views import EXACT_COST, VERIFY, logs_table

COST_HELP = "Whole cents from a cent up; below a cent, two significant digits. Exact: the last column."

ALL = "All"
FILTER_OPTIONS = 500  # the biggest spenders first
CURSORS_KEY = "logs_cursors"
LOG_COLUMNS = {
    **common.COUNTS,
    VERIFY: st.column_config.LinkColumn(
        VERIFY, display_text="verify", help="Recompute this call in the Calculator: stored cost, at its time, today."
    )
}

st.title("Usage logs")
engine = common.get_engine()
flt = common.filters()
url = common.snapshot()  # fresh figures on every reload

# A link from the test-call panel (?log_id=N) shows that one call first.
wanted = st.query_params.get("log_id")
if wanted:
    log_id = parse_log_id(wanted)
    found = get_row(engine, log_id) if log_id is not None else None
    if found is None:
        st.warning("No such call: no logged call has the id given in the link (log_id).")
    else:
        st.subheader(f"Log #{found.id}")
        st.dataframe(logs_table([found], flt.tz), hide_index=True, column_config=LOG_COLUMNS)

span = flt.range(engine)
if span is None:
    st.info("No usage recorded yet. Load demo data on the Overview page, or record calls with `python -m core`.")
    st.stop()

providers = common.breakdown(url, span[0], span[1], "provider")
users = common.breakdown(url, span[0], span[1], "user", limit=FILTER_OPTIONS)
projects = common.breakdown(url, span[0], span[1], "project", limit=FILTER_OPTIONS)
cols = st.columns(7)
provider = cols[0].selectbox("Provider", [ALL] + sorted(r.key or "" for r in providers), key="logs_provider")
# only the chosen provider's models; a model picked for another provider falls back to All
model_options = [ALL] + common.models_of(url, span[0], span[1], None if provider == ALL else provider)
if st.session_state.get("logs_model") not in model_options:
    st.session_state["logs_model"] = ALL
model = cols[1].selectbox("Model", model_options, key="logs_model")
user = cols[2].selectbox("User", [ALL] + sorted(r.key or "" for r in users), key="logs_user")
project = cols[3].selectbox("Project", [ALL] + sorted(r.key or "" for r in projects), key="logs_project")
matched_by = cols[4].selectbox("Matched by", [ALL, *MATCH_STEPS], key="logs_matched_by")
tags = common.tag_filter(url, span[0], span[1], "logs_tags", cols[5])
size = cols[6].selectbox("Rows per page", PAGE_SIZES, index=1, key="logs_page_size")

log_filter = LogFilter(
    start=span[0],
    end=span[1],
    provider=None if provider == ALL else provider,
    model=None if model == ALL else model,
    user=None if user == ALL else user,
    matched_by=None if matched_by == ALL else matched_by,
    project=None if project == ALL else project,
    tags=tags,
)
# The cursor stack belongs to one filter; any change starts again at the newest call.
state = st.session_state.get(CURSORS_KEY)
if not state or state[0] != (log_filter, size):
    state = ((log_filter, size), [None])
    st.session_state[CURSORS_KEY] = state
cursors = state[1]
page = fetch_page(engine, log_filter, size, cursors[-1])

matching = common.count_calls(url, log_filter)
st.caption(f"{flt.label}, times in {flt.tz.key}: {matching.text()}. Page {len(cursors)}, newest first.")
if page.rows:
    st.dataframe(
        logs_table(page.rows, flt.tz),
        hide_index=True,
        key="logs_table",
        column_config={
            "Cost": st.column_config.TextColumn("Cost", help=COST_HELP),
            EXACT_COST: st.column_config.TextColumn(EXACT_COST, help="The exact stored cost, in USD."),
            **LOG_COLUMNS,
        },
    )
else:
    st.info("No calls match these filters.")

prev_col, next_col, download_col = st.columns([1, 1, 2])
if prev_col.button("Previous page", disabled=len(cursors) == 1, key="logs_prev", width="stretch"):
    cursors.pop()
    st.rerun()
if next_col.button("Next page", disabled=page.next_cursor is None, key="logs_next", width="stretch"):
    cursors.append(page.next_cursor)
    st.rerun()


if page.rows:
    # served by server.py, streamed in keyset batches (a download button would hold the whole file in memory)
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    export_url = f"{'/' + base if base else ''}{EXPORT_PATH}?{export_query(log_filter)}"
    download_col.link_button("Download CSV of the filtered calls", export_url, width="stretch")
