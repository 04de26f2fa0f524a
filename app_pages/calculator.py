"""Calculator: price any (provider, model, tokens) through the lookup chain, and verify a logged call."""

import json

import streamlit as st

from core.config import env_priced_providers
from core.money import format_exact_usd
from core.pricing.formula import formula_lines
from core.pricing.lookup import calculate_cost, current_index
from core.pricing.provider_usage import UsageShapeError, normalise_usage
from core.pricing.rates import SERVICE_TIERS, STANDARD, PricingError
from core.pricing.validation import validate_tokens
from core.recording.audit import verify_call
from core.times import TimeError, parse_timestamp
from ui import common, test_call_panel
from ui.views import parse_lookup, prices_used, user_words, verification_table, verification_verdict

DEFAULT_PROVIDER = "huggingface"
DEFAULT_MODEL = "openai/gpt-oss-120b:groq"

st.title("Calculator")
engine = common.get_engine()
index = current_index(engine)
providers = sorted(set(index.providers) | set(env_priced_providers()) | {DEFAULT_PROVIDER})

st.subheader("Cost of a call")
left, right = st.columns(2)
if st.session_state.get("calc_provider") not in providers:
    st.session_state["calc_provider"] = DEFAULT_PROVIDER
provider = left.selectbox("Provider", providers, key="calc_provider")
if "calc_model" not in st.session_state:
    st.session_state["calc_model"] = DEFAULT_MODEL
# Every model of the price table (the whole genai-prices catalog included), the chosen provider's first.
catalog = index.models()
known = [f"{p} / {m}" for p, m in catalog if p == provider] + [f"{p} / {m}" for p, m in catalog if p != provider]


def _use_suggestion() -> None:
    picked = st.session_state.get("calc_suggestion")
    if picked:
        chosen_provider, chosen_model = picked.split(" / ", 1)
        st.session_state["calc_provider"] = chosen_provider
        st.session_state["calc_model"] = chosen_model
    st.session_state["calc_suggestion"] = None


model = right.text_input(
    "Model",
    key="calc_model",
    help="Any name: the lookup chain (exact, short, alias, default, env, estimate) decides which price applies.",
)
st.selectbox(
    f"Find a model in the price table ({len(known):,}; type to search)",
    known,
    index=None,
    placeholder="Type part of a name, e.g. sonnet or gpt-4o",
    key="calc_suggestion",
    on_change=_use_suggestion,
)
# Text fields parsed strictly: a number field would turn "1e3" into 1 and silently keep the last
# valid value after a bad entry, so the cost shown would not be the cost of what is typed.
COUNT_FIELDS = {  # session key -> (label, core field)
    "calc_in": ("Input tokens", "input_tokens"),
    "calc_out": ("Output tokens", "output_tokens"),
    "calc_cached": ("Cached input tokens", "cached_input_tokens"),
    "calc_write": ("Cache write tokens (5 min)", "cache_write_tokens"),
    "calc_write_1h": ("Cache write tokens (1 h)", "cache_write_1h_tokens"),
    "calc_reasoning": ("Reasoning tokens", "reasoning_tokens"),
    "calc_searches": ("Web searches", "web_search_calls"),
}
DEFAULTS = {"calc_in": "1000", "calc_out": "500"}
for key in COUNT_FIELDS:
    st.session_state.setdefault(key, DEFAULTS.get(key, "0"))
st.session_state.setdefault("calc_tier", STANDARD)


def _use_pasted_usage() -> None:
    """Fill the fields from a usage block as an API returned it (OpenAI, Anthropic, Gemini)."""
    text = st.session_state.get("calc_usage_text") or ""
    try:
        fields = normalise_usage(json.loads(text))
    except json.JSONDecodeError as exc:
        st.session_state["calc_usage_problem"] = f"Usage block: not JSON ({exc.msg} at column {exc.colno})."
        return
    except UsageShapeError as exc:
        st.session_state["calc_usage_problem"] = f"Usage block: {exc}"
        return
    st.session_state.pop("calc_usage_problem", None)
    for key, (_label, name) in COUNT_FIELDS.items():
        st.session_state[key] = str(getattr(fields, name))
    if fields.service_tier:
        st.session_state["calc_tier"] = fields.service_tier


with st.expander("Paste a usage block (the `usage` of an API response, as it came back)"):
    st.text_area(
        "Usage block (JSON)",
        key="calc_usage_text",
        placeholder='{"prompt_tokens": 10000, "completion_tokens": 2000, '
        '"prompt_tokens_details": {"cached_tokens": 8000}}',
        help="OpenAI Chat Completions or Responses, Anthropic Messages, Gemini usageMetadata: "
        "the fields below are filled in from it.",
    )
    st.button("Fill in the fields", key="calc_use_usage", on_click=_use_pasted_usage)
    if st.session_state.get("calc_usage_problem"):
        st.error(st.session_state["calc_usage_problem"])

rows = [("calc_in", "calc_out", "calc_cached", "calc_write"), ("calc_write_1h", "calc_reasoning", "calc_searches")]
typed: dict[str, str] = {}
for row in rows:
    columns = st.columns(4)
    for column, key in zip(columns, row, strict=False):
        typed[key] = column.text_input(COUNT_FIELDS[key][0], key=key)
tier_column, at_column = st.columns(4)[:2]
tier = tier_column.selectbox("Service tier", SERVICE_TIERS, key="calc_tier")
at_text = at_column.text_input(
    "Prices in force at (UTC)",
    key="calc_at",
    placeholder="now",
    help="An ISO time such as 2026-11-03T14:00 (as `cost --at`): the price versions in force then. Empty: now.",
)

counts: dict[str, int] = {}
problems: list[str] = []
for key, text in typed.items():
    label, name = COUNT_FIELDS[key]
    try:
        counts[name] = validate_tokens(text, label)
    except PricingError as exc:
        problems.append(str(exc))

at = None
if at_text.strip():
    try:
        at = parse_timestamp(at_text, "Prices in force at")
    except TimeError as exc:
        problems.append(str(exc))

if problems:
    st.error("Invalid input, no cost shown: " + "; ".join(problems) + ".", icon=":material/error:")
elif model:
    try:
        result = calculate_cost(
            engine,
            provider,
            model,
            counts.pop("input_tokens"),
            counts.pop("output_tokens"),
            counts.pop("cached_input_tokens"),
            at,
            service_tier=tier,
            **counts,
        )
    except PricingError as exc:
        st.error(f"Invalid input, no cost shown: {user_words(str(exc))}", icon=":material/error:")
    else:
        total, step, used = st.columns(3)
        total.metric("Cost", format_exact_usd(result.cost_total))
        step.metric("Matched by", result.matched_by)
        used.metric(
            "Rates used",
            result.service_tier + (f", tier above {result.tier:,}" if result.tier is not None else ""),
            help="The service tier whose prices were used, and the long-context tier when the call is above one.",
        )
        st.text(result.reason)
        st.dataframe(prices_used(result), hide_index=True)
        st.code("\n".join(formula_lines(result)), language=None)
else:
    st.info("Pick or type a model name.")

st.subheader("Verify a logged call")
linked = st.query_params.get("verify")  # a Usage logs row's "verify" link
if linked and st.session_state.get("verify_linked") != linked:
    st.session_state["verify_linked"] = st.session_state["verify_id"] = linked
with st.form("verify_form"):
    wanted = st.text_input("Log id or request id", key="verify_id")
    go = st.form_submit_button("Verify")
if go or (linked and wanted == linked):
    log_id, request_id = parse_lookup(wanted)
    if log_id is None and request_id is None:
        st.error("Log id or request id: enter one.")
    else:
        found = verify_call(engine, log_id=log_id, request_id=request_id)
        if found is None and log_id is not None:  # a request id may be all digits
            found = verify_call(engine, request_id=str(log_id))
        if found is None:
            st.error("No such call: no logged call has that log id or request id.")
        else:
            st.text(
                f"Log #{found.id}: {found.provider} / {found.model}, {found.timestamp:%Y-%m-%d %H:%M:%S} UTC, "
                f"{found.input_tokens:,} in / {found.output_tokens:,} out / {found.cached_input_tokens:,} cached"
                + (f", request id {found.request_id}" if found.request_id else "")
            )
            st.dataframe(verification_table(found), hide_index=True)
            right_cost, verdict = verification_verdict(found)
            (st.success if right_cost else st.error)(verdict)

st.divider()
test_call_panel.render(engine)
