"""Budgets: spend against each budget this period, a burn-up chart, the alert history; admin adds and resends."""

from datetime import UTC, datetime

import streamlit as st

from core.admin.password import signed_in
from core.budgets import service
from core.budgets.periods import PERIODS
from core.budgets.spend import SCOPE_KINDS
from core.limits import views as limits
from core.money import format_total
from ui import common
from ui.budget_views import (
    burnup_figure,
    history_rows,
    marks_text,
    percent_text,
    plain,
    progress_value,
    projection_text,
    resets_text,
)
from ui.signin import SIGNED_IN_KEY, sign_in_form

ADDED = "budget_added"  # what the form added, shown once after the page runs again with it in the list

st.title("Budgets")
if ADDED in st.session_state:
    added_name, added_secret = st.session_state.pop(ADDED)
    st.success(f"Budget {added_name!r} added.")
    if added_secret:
        st.markdown("Webhook secret, shown once (receivers verify signatures with it):")
        st.code(added_secret, language=None)
engine = common.get_engine()
flt = common.filters(period=False)  # times shown in the viewer's zone; no period here
now = datetime.now(UTC)
statuses = service.list_status(engine, now)

if not statuses:
    st.info(
        "No budgets yet. An admin can add one below, or from the command line: "
        "`python -m core budgets add --name team --amount 100 --period month --webhook https://...`"
    )
for s in statuses:
    b = s.budget
    with st.container(border=True, key=f"budget_{b.id}"):
        top = st.columns([3, 2])
        enforced = " · **enforced**" if b.enforce else ""
        closest = f" · closest: {plain(s.subject)}" if s.subject else ""
        top[0].markdown(f"**{plain(b.name)}** · {plain(b.scope)} · per {b.period} ({plain(b.tz)}){enforced}{closest}")
        top[1].markdown(f"**{format_total(s.spend)}** / {format_total(b.amount)} · {percent_text(s.percent)}")
        st.progress(progress_value(s))
        st.caption(f"Thresholds: {marks_text(s)} · {resets_text(s.period.end, now, b.tz)}")
        st.caption(projection_text(s, b.tz))

enforced_rows = limits.enforced(engine, now)
if enforced_rows:
    st.subheader("Enforced budgets")
    st.caption(
        "Checks that do not fit are denied before the call (`POST /api/v1/check`, `python -m core check`, "
        "`track(..., enforce=True)`). Denied: the checks each budget refused this period."
    )
    st.dataframe(
        [
            {"budget": r.name, "scope": r.scope, "amount": format_total(r.amount), "denied this period": r.denied}
            for r in enforced_rows
        ],
        hide_index=True,
        key="enforced_budgets",
    )
    for r in enforced_rows:
        if r.budget.scope_kind != "each":
            continue
        who = str(r.budget.scope_value)
        st.markdown(f"**{plain(r.name)}**: the {who}s closest to {format_total(r.amount)} this period")
        search = st.text_input(f"Find a {who}", key=f"limit_search_{r.budget.id}", placeholder="part of a name")
        rows = limits.closest_subjects(engine, r.budget, search=search or None, limit=10, now=now)
        if rows:
            st.dataframe(
                [
                    {
                        who: x.subject,
                        "spend": format_total(x.spend),
                        "left": format_total(x.remaining),
                        "used": f"{x.percent}%",
                        "denied": x.denied,
                    }
                    for x in rows
                ],
                hide_index=True,
                key=f"limit_subjects_{r.budget.id}",
            )
        else:
            st.caption(f"No {who} matches." if search else f"No {who} has spent this period.")

if statuses:
    st.subheader("Burn-up")
    names = [s.budget.name for s in statuses]
    pick = st.selectbox("Budget", range(len(names)), format_func=lambda i: names[i], key="burnup_budget")
    chosen = statuses[pick or 0]
    series = service.spend_series(engine, chosen.budget, chosen.period, now, chosen.subject)
    st.plotly_chart(burnup_figure(chosen, series, now), width="stretch", key="burnup_chart")
    st.caption("Cumulative spend this period, the budget, the even pace to it, and the projection (dashed).")

st.subheader("Alert history")
events = service.history(engine)
if events:
    st.dataframe(
        history_rows(events, flt.tz.key, admin=signed_in(st.session_state.get(SIGNED_IN_KEY))),
        hide_index=True,
        key="alert_history",
    )
else:
    st.caption("No threshold crossed yet.")

st.subheader("Manage budgets")
if not sign_in_form(engine, key="budgets_sign_in"):  # ui/signin.py: the one admin sign-in
    st.stop()

if st.button("Sign out", key="budgets_sign_out"):
    st.session_state.pop(SIGNED_IN_KEY, None)
    st.rerun()

resendable = [e for e in events if e.status != "no_webhook"]
if resendable:
    with st.form("resend_form"):
        labels = {
            e.id: f"#{e.id} {e.budget_name} {e.threshold}% from {e.period_start:%Y-%m-%d} ({e.status})"
            for e in resendable
        }
        event_id = st.selectbox("Alert to send again", list(labels), format_func=lambda i: labels[i], key="resend_pick")
        if st.form_submit_button("Resend"):
            if not signed_in(st.session_state.get(SIGNED_IN_KEY)):
                st.error("Your sign-in expired; sign in again. Nothing was sent.")
            else:
                try:
                    report = service.resend(engine, int(event_id))
                except service.BudgetError as exc:
                    st.error(str(exc))
                else:
                    if report.delivered:
                        st.success("Sent again, with the same webhook-id.")
                    else:
                        st.warning("Queued again; the receiver did not accept it yet (see the history).")

with st.form("add_budget", clear_on_submit=False):
    st.markdown("**Add a budget**")
    a, b_, c = st.columns([2, 1, 1])
    name = a.text_input("Name", key="budget_name")
    amount = b_.text_input("Amount (USD)", key="budget_amount")
    period = c.selectbox("Period", PERIODS, index=2, key="budget_period")
    d, e, f = st.columns([1, 2, 1])
    kind = d.selectbox("Scope", [*SCOPE_KINDS, "each"], key="budget_scope_kind")
    value = e.text_input(
        "Scope value (provider, model, user or project name; for each: user or project)", key="budget_scope_value"
    )
    tz = f.text_input("Time zone", value=flt.tz.key, key="budget_tz")
    g, h = st.columns([1, 3])
    thresholds = g.text_input("Thresholds (%)", value="50,80,100", key="budget_thresholds")
    webhook = h.text_input("Webhook URL (optional)", key="budget_webhook")
    i, j = st.columns([3, 1])
    secret = i.text_input("Secret (whsec_...; empty: generated)", type="password", key="budget_secret")
    fmt = j.selectbox("Format", service.FORMATS, key="budget_format")
    enforce = st.checkbox("Enforce: deny checks that do not fit (a hard limit)", key="budget_enforce")
    submitted = st.form_submit_button("Add budget", type="primary")
if submitted:
    if not signed_in(st.session_state.get(SIGNED_IN_KEY)):
        st.error("Your sign-in expired; sign in again. Nothing was saved.")
    else:
        scope = "all" if kind == "all" else f"{kind}:{value}"
        try:
            spec = service.validate(name, amount, period, scope, tz, thresholds, webhook, secret, fmt, enforce)
            added = service.add_budget(engine, spec)
        except service.BudgetError as exc:
            st.error(f"Not saved: {exc}")
        else:  # run the page again so the new budget shows in the list above at once
            st.session_state[ADDED] = (added.budget.name, added.secret if added.generated else None)
            st.rerun()
