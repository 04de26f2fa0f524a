"""Pricing: current prices per 1M tokens, an admin-only edit form, and every change ever made."""

from datetime import UTC, date, datetime

import pandas as pd
import streamlit as st

from core.admin.password import signed_in
from core.money import format_usd, per_million, to_text
from core.pricing.edits import PriceEdit, PricePlan, plan_price, retire_model, save_price, unit_preview
from core.pricing.versions import (
    DEFAULT_TIER,
    RATE_FIELDS,
    SERVICE_TIERS,
    PriceEditError,
    PriceRow,
    current_prices,
    price_history,
)
from core.recording.audit import count_calls_since, reprice_calls
from core.times import BEGINNING_OF_TIME
from ui import common
from ui.price_tables import SHORT, history_table, matching_changes, matching_prices, prices_table
from ui.signin import SIGNED_IN_KEY, author, sign_in_form
from ui.views import utc_range

NEW = "(add a new model)"
FLASH = "pricing_flash"
GENERATION = "price_form_generation"
TIER_COLUMNS = [("above_input_tokens", "Above input tokens")] + [
    (f.edit, f"{SHORT[f.column]} per 1M" if f.per_token else f"{SHORT[f.column]} (USD)") for f in RATE_FIELDS
]

st.title("Pricing")
engine = common.get_engine()
flt = common.filters(period=False)  # times shown in the viewer's zone; no period here
prices = current_prices(engine)

st.subheader("Current prices")
st.caption(
    f"USD per 1M tokens (per web search and per request: USD each). Source: catalog (shipped list), "
    f"env (environment variables), form (edited here), import (`python -m core prices import`). Times in {flt.tz.key}."
)
ANY = "All"
search, by_provider, by_source = st.columns([2, 1, 1])
text = search.text_input("Search", key="prices_search", placeholder="e.g. claude sonnet, gpt-4o batch")
providers = sorted({p.provider for p in prices})
provider_pick = by_provider.selectbox("Provider", [ANY, *providers], key="prices_provider")
source_pick = by_source.selectbox("Source", [ANY, *sorted({p.source for p in prices})], key="prices_source")
shown = matching_prices(
    prices, text, None if provider_pick == ANY else provider_pick, None if source_pick == ANY else source_pick
)
st.caption(f"{len(shown):,} of {len(prices):,} prices in force")
# st.dataframe draws only the rows in view, so thousands of models scroll without paging
st.dataframe(prices_table(shown, flt.tz), hide_index=True, key="prices_table")


def _effective(day: date | None):  # type: ignore[no-untyped-def]
    """A chosen day starts at local midnight in the viewer's zone; none means now."""
    return utc_range(day, day, flt.tz)[0] if day else None


def _label(p: PriceRow) -> str:
    return f"{p.provider} / {p.model_name}" + ("" if p.service_tier == DEFAULT_TIER else f" ({p.service_tier})")


def _per_1m_text(amount, per_token: bool) -> str:  # type: ignore[no-untyped-def]
    if amount is None:
        return ""
    return to_text(per_million(amount)) if per_token else to_text(amount)


def _tier_frame(current: PriceRow | None) -> pd.DataFrame:
    """The current tiers in the form's units (per 1M tokens), one row each."""
    by_column = {f.column: f for f in RATE_FIELDS}
    rows = []
    for tier in current.tiers if current else ():
        row = {"above_input_tokens": str(tier.above_input_tokens)}
        for column, value in tier.rates:
            spec = by_column[column]
            row[spec.edit] = _per_1m_text(value, spec.per_token)
        rows.append(row)
    return pd.DataFrame(rows, columns=[name for name, _ in TIER_COLUMNS], dtype="object")


def _tier_rows(frame: pd.DataFrame) -> list[dict[str, object]]:
    """The edited table as a tier list (empty cells left out, empty rows dropped); checked by the server."""
    tiers = []
    for record in frame.to_dict("records"):
        row = {k: str(v).strip() for k, v in record.items() if v is not None and not pd.isna(v) and str(v).strip()}
        if row:
            tiers.append(row)
    return tiers


def _backdated_notice(plan: PricePlan, now: datetime) -> int:
    """How many stored calls the new version reaches back to (0 when it starts now or later)."""
    if plan.unchanged or plan.effective_from >= now:
        return 0
    provider, model_name = str(plan.values["provider"]), str(plan.values["model_name"])
    return count_calls_since(engine, provider, model_name, plan.effective_from, plan.key[2])


for message_kind, message in st.session_state.pop(FLASH, []):
    getattr(st, message_kind)(message)

st.subheader("Edit prices")
if not sign_in_form(engine):  # ui/signin.py: caption, form, a refusal right below the field
    pass
else:
    if st.button("Sign out", key="sign_out"):
        st.session_state.pop(SIGNED_IN_KEY, None)
        st.rerun()
    by_label = {_label(p): p for p in prices}
    choice = st.selectbox("Price to edit", [NEW, *by_label], key="edit_choice")
    current = by_label.get(choice)
    # Widgets are keyed by choice and a generation that a save bumps, so after a save the
    # fields pre-fill afresh from the prices in force today (not a future version just saved).
    generation = st.session_state.setdefault(GENERATION, 0)
    k = f"{choice}|{generation}"

    left, middle, right = st.columns([2, 3, 1])
    provider = left.text_input("Provider", value=current.provider if current else "", key=f"p_{k}")
    model = middle.text_input("Model name", value=current.model_name if current else "", key=f"m_{k}")
    tier = right.selectbox(
        "Service tier",
        SERVICE_TIERS,
        index=SERVICE_TIERS.index(current.service_tier) if current else 0,
        key=f"t_{k}",
    )
    st.caption(
        "Token prices in **USD per 1M tokens** (a price of $0.000002 per token is 2 here); the line under each "
        "field shows both units. Empty: cached input and cache writes take the input rate, the 1-hour write "
        "the 5-minute one, reasoning the output rate; per web search and per request are 0."
    )
    typed: dict[str, str] = {}
    for position, spec in enumerate(RATE_FIELDS):
        if position % 4 == 0:
            columns = st.columns(4)  # one row of four, so each caption sits under its own field
        column = columns[position % 4]
        typed[spec.edit] = column.text_input(
            spec.label,
            value=_per_1m_text(current.rate(spec.column), spec.per_token) if current else "",
            key=f"{spec.edit}_{k}",
        )
        preview = unit_preview(typed[spec.edit], spec)
        column.caption(preview or " ")
    st.markdown("**Long-context tiers**")
    st.caption(
        "Above a number of input tokens, a tier's rates replace the base ones for the whole call "
        "(per 1M tokens; thresholds increasing, each once; an empty cell keeps the base rate)."
    )
    tier_frame = st.data_editor(
        _tier_frame(current),
        num_rows="dynamic",
        hide_index=True,
        column_config={name: st.column_config.TextColumn(label) for name, label in TIER_COLUMNS},
        key=f"tiers_{k}",
    )
    f, g = st.columns([3, 1])
    who = author()  # the signed-in session, not free text
    note = f.text_input("Note (why; kept with the version)", key=f"note_{k}")
    since = g.date_input("In force from (empty: now; a new price: always)", value=None, key=f"since_{k}")

    edit = PriceEdit(
        provider,
        model,
        typed["input_per_1m"],
        typed["output_per_1m"],
        typed["cached_input_per_1m"],
        typed["cost_per_request"],
        who,
        note,
        _effective(since),
        cache_write_per_1m=typed["cache_write_per_1m"],
        cache_write_1h_per_1m=typed["cache_write_1h_per_1m"],
        reasoning_per_1m=typed["reasoning_per_1m"],
        cost_per_web_search=typed["cost_per_web_search"],
        service_tier=tier,
        tiers=_tier_rows(tier_frame),
    )
    now = datetime.now(UTC)
    plan: PricePlan | None = None
    problem: PriceEditError | None = None
    try:
        plan = plan_price(engine, edit, now)
    except PriceEditError as exc:
        problem = exc
    confirmed, reprice_after, affected = True, False, 0
    if plan is not None and not plan.unchanged:
        if plan.big_changes:
            biggest = max(plan.big_changes, key=lambda c: c.factor)
            st.warning(
                "This changes a price by more than 100x: "
                + "; ".join(c.describe() for c in plan.big_changes)
                + ". Prices here are per 1M tokens, not per token."
            )
            confirmed = st.checkbox(f"Yes, change it by {biggest.factor_text}", key=f"confirm_{k}")
        affected = _backdated_notice(plan, now)
        if affected:
            calls = f"{affected:,} stored call{'s' if affected != 1 else ''}"
            if plan.effective_from <= BEGINNING_OF_TIME:
                when = "it is the first price of its key, in force from the beginning"
            else:
                when = f"it is in force from {plan.effective_from.astimezone(flt.tz):%Y-%m-%d %H:%M} ({flt.tz.key})"
            st.warning(
                f"{calls} of {plan.label} fall after the start of this version ({when}). They keep the cost they "
                "were recorded with, and verify will show them as MISMATCH, unless you re-price them."
            )
            reprice_after = st.checkbox(
                f"Also re-price those {calls} (each change is kept in usage_corrections)", key=f"reprice_{k}"
            )
    if st.button("Save new price version", type="primary", key=f"save_{k}"):
        if not signed_in(st.session_state.get(SIGNED_IN_KEY)):
            st.error("Your sign-in expired; sign in again. Nothing was saved.")
        elif problem is not None:
            st.error(f"Not saved: {problem}")
        elif not confirmed:
            st.error("Not saved: tick the box to confirm a change of more than 100x (or correct the value).")
        else:
            try:
                new_id = save_price(engine, edit)
            except PriceEditError as exc:
                st.error(f"Not saved: {exc}")
            else:
                if new_id is None:
                    st.info("Nothing changed: these are the prices already in force; nothing was saved.")
                else:
                    assert plan is not None
                    messages = [("success", f"Saved as price version #{new_id}.")]
                    if reprice_after:
                        result = reprice_calls(
                            engine,
                            str(plan.values["provider"]),
                            str(plan.values["model_name"]),
                            plan.effective_from,
                            f"price version #{new_id} in force from {plan.effective_from:%Y-%m-%d %H:%M} UTC",
                            plan.key[2],
                        )
                        messages.append(
                            (
                                "success",
                                f"Re-priced {result.repriced} of {result.examined} calls: "
                                f"{format_usd(result.cost_before)} -> {format_usd(result.cost_after)}.",
                            )
                        )
                    common.clear_caches()
                    st.session_state[FLASH] = messages
                    st.session_state[GENERATION] = generation + 1
                    st.rerun()

    with st.expander("Retire a model (stop its price from a date; nothing is deleted)"):
        with st.form("retire_form"):
            pick = st.selectbox("Model to retire", list(by_label))
            who_r = author()
            note_r = st.text_input("Note (why; kept with the version)", key="retire_note")
            since_r = st.date_input("Retired from (empty: now)", value=None, key="retire_since")
            retire = st.form_submit_button("Retire")
        if retire and pick:
            target = by_label[pick]
            try:
                new_id = retire_model(
                    engine,
                    target.provider,
                    target.model_name,
                    who_r,
                    note_r,
                    _effective(since_r),
                    service_tier=target.service_tier,
                )
            except PriceEditError as exc:
                st.error(f"Not retired: {exc}")
            else:
                common.clear_caches()
                st.success(f"Retired as price version #{new_id}; later calls fall through to the next lookup step.")

st.subheader("History")
wanted = st.text_input(
    "Search the history", key="history_search", placeholder="provider, model, who or note, e.g. gpt-4o admin"
)
changes = matching_changes(price_history(engine), wanted)
st.caption(f"{len(changes):,} price versions" + (f" match {wanted.strip()!r}" if wanted.strip() else ", newest first"))
st.dataframe(
    history_table(changes, flt.tz),
    hide_index=True,
    key="history_table",
    column_config={
        "Old": st.column_config.TextColumn("Old", width="large"),
        "New": st.column_config.TextColumn("New", width="large"),
        "Who": st.column_config.TextColumn("Who", width="medium"),
    },
)
