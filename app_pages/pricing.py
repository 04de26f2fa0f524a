"""Pricing: current prices per 1M tokens, an admin-only edit form, and every change ever made."""

from datetime import date

import streamlit as st

from core.auth import SESSION_SECONDS, SignInRefused, sign_in, signed_in
from core.money import per_million, to_text
from core.prices import PriceEdit, PriceEditError, current_prices, price_history, retire_model, save_price
from ui import common
from ui.views import history_table, prices_table, utc_range

SIGNED_IN_KEY = "admin_signed_in_until"
NEW = "(add a new model)"

st.title("Pricing")
engine = common.get_engine()
flt = common.filters()
prices = current_prices(engine)

st.subheader("Current prices")
st.caption(
    f"USD per 1M tokens. Source: catalog (shipped list), env (environment variables), form (edited here). "
    f"Times in {flt.tz.key}."
)
st.dataframe(prices_table(prices, flt.tz), hide_index=True, key="prices_table")


def _effective(day: date | None):  # type: ignore[no-untyped-def]
    """A chosen day starts at local midnight in the viewer's zone; none means now."""
    return utc_range(day, day, flt.tz)[0] if day else None


st.subheader("Edit prices")
if not signed_in(st.session_state.get(SIGNED_IN_KEY)):
    st.session_state.pop(SIGNED_IN_KEY, None)
    st.caption(
        f"Editing needs the admin password (SPENDBOARD_ADMIN_PASSWORD, or the one printed once in the "
        f"terminal at first start). A sign-in lasts {SESSION_SECONDS // 60} minutes."
    )
    with st.form("sign_in", clear_on_submit=True):
        attempt = st.text_input("Admin password", type="password", key="admin_password")
        if st.form_submit_button("Sign in"):
            try:
                st.session_state[SIGNED_IN_KEY] = sign_in(engine, attempt)
                st.rerun()
            except SignInRefused as exc:
                st.error(str(exc))
else:
    if st.button("Sign out", key="sign_out"):
        st.session_state.pop(SIGNED_IN_KEY, None)
        st.rerun()
    labels = [NEW] + [f"{p.provider} / {p.model_name}" for p in prices]
    choice = st.selectbox("Price to edit", range(len(labels)), format_func=lambda i: labels[i], key="edit_choice")
    current = prices[choice - 1] if choice else None
    with st.form(f"price_form_{choice}"):
        left, right = st.columns(2)
        provider = left.text_input("Provider", value=current.provider if current else "", key=f"p_{choice}")
        model = right.text_input("Model name", value=current.model_name if current else "", key=f"m_{choice}")

        def _value(amount):  # type: ignore[no-untyped-def]
            return to_text(per_million(amount)) if (current and amount is not None) else ""

        a, b, c, d = st.columns(4)
        input_1m = a.text_input("Input per 1M tokens (USD)", value=_value(current and current.input_token_cost))
        output_1m = b.text_input("Output per 1M tokens (USD)", value=_value(current and current.output_token_cost))
        cached_1m = c.text_input(
            "Cached input per 1M tokens (USD)", value=_value(current and current.cached_input_token_cost)
        )
        per_request = d.text_input(
            "Per request (USD)", value=to_text(current.cost_per_request) if current and current.cost_per_request else ""
        )
        e, f, g = st.columns([1, 2, 1])
        who = e.text_input("Changed by", value="admin")
        note = f.text_input("Note")
        since = g.date_input("In force from (empty: now)", value=None)
        submitted = st.form_submit_button("Save new price version", type="primary")
    if submitted:
        if not signed_in(st.session_state.get(SIGNED_IN_KEY)):
            st.error("Your sign-in expired; sign in again. Nothing was saved.")
        else:
            edit = PriceEdit(provider, model, input_1m, output_1m, cached_1m, per_request, who, note, _effective(since))
            try:
                new_id = save_price(engine, edit)
            except PriceEditError as exc:
                st.error(f"Not saved: {exc}")
            else:
                common.clear_caches()
                st.success(f"Saved as price version #{new_id}.")

    with st.expander("Retire a model (stop its price from a date; nothing is deleted)"):
        with st.form("retire_form"):
            pick = st.selectbox("Model to retire", range(1, len(labels)), format_func=lambda i: labels[i])
            who_r = st.text_input("Changed by", value="admin", key="retire_who")
            note_r = st.text_input("Note", key="retire_note")
            since_r = st.date_input("Retired from (empty: now)", value=None, key="retire_since")
            retire = st.form_submit_button("Retire")
        if retire and pick:
            target = prices[pick - 1]
            try:
                new_id = retire_model(engine, target.provider, target.model_name, who_r, note_r, _effective(since_r))
            except PriceEditError as exc:
                st.error(f"Not retired: {exc}")
            else:
                common.clear_caches()
                st.success(f"Retired as price version #{new_id}; later calls fall through to the next lookup step.")

st.subheader("History")
st.dataframe(history_table(price_history(engine), flt.tz), hide_index=True, key="history_table")
