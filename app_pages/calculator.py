"""Calculator: price any (provider, model, tokens) through the lookup chain, and verify a logged call."""

import streamlit as st

from core.audit import verify_call
from core.config import env_priced_providers
from core.money import format_usd
from core.pricing import PricingError, calculate_cost, current_index, formula_lines
from ui import common, test_call_panel
from ui.views import parse_lookup, prices_used, verification_table, verification_verdict

DEFAULT_PROVIDER = "huggingface"
DEFAULT_MODEL = "openai/gpt-oss-120b:groq"

st.title("Calculator")
engine = common.get_engine()
index = current_index(engine)
providers = sorted(set(index.providers) | set(env_priced_providers()) | {DEFAULT_PROVIDER})

st.subheader("Cost of a call")
left, right = st.columns(2)
provider = left.selectbox("Provider", providers, index=providers.index(DEFAULT_PROVIDER), key="calc_provider")
known = [name for _p, name in index.models(provider)]
if "calc_model" not in st.session_state:
    st.session_state["calc_model"] = DEFAULT_MODEL


def _use_suggestion() -> None:
    picked = st.session_state.get("calc_suggestion")
    if picked:
        st.session_state["calc_model"] = picked
    st.session_state["calc_suggestion"] = None


model = right.text_input(
    "Model",
    key="calc_model",
    help="Any name: the lookup chain (exact, short, default, env, estimate) decides which price applies.",
)
st.selectbox(
    f"Known models for {provider} ({len(known)})",
    known,
    index=None,
    placeholder="Pick one to fill in the model name",
    key="calc_suggestion",
    on_change=_use_suggestion,
)
a, b, c = st.columns(3)
tokens_in = a.number_input("Input tokens", min_value=0, value=1000, step=1, key="calc_in")
tokens_out = b.number_input("Output tokens", min_value=0, value=500, step=1, key="calc_out")
cached = c.number_input("Cached input tokens", min_value=0, value=0, step=1, key="calc_cached")

if model:
    try:
        result = calculate_cost(engine, provider, model, int(tokens_in), int(tokens_out), int(cached))
    except PricingError as exc:
        st.error(str(exc))
    else:
        total, step = st.columns(2)
        total.metric("Cost", format_usd(result.cost_total))
        step.metric("Matched by", result.matched_by)
        st.text(result.reason)
        st.dataframe(prices_used(result), hide_index=True)
        st.code("\n".join(formula_lines(result)), language=None)
else:
    st.info("Pick or type a model name.")

st.subheader("Verify a logged call")
with st.form("verify_form"):
    wanted = st.text_input("Log id or request id", key="verify_id")
    go = st.form_submit_button("Verify")
if go:
    log_id, request_id = parse_lookup(wanted)
    if log_id is None and request_id is None:
        st.error("Log id or request id: enter one.")
    else:
        found = verify_call(engine, log_id=log_id, request_id=request_id)
        if found is None and log_id is not None:  # a request id may be all digits
            found = verify_call(engine, request_id=str(log_id))
        if found is None:
            st.error("No logged call has that log id or request id.")
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
