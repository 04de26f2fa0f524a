"""Calculator: price any (provider, model, tokens) through the lookup chain, and verify a logged call."""

import streamlit as st

from core.audit import verify_call
from core.config import env_priced_providers
from core.money import format_usd
from core.pricing import PricingError, calculate_cost, current_index, formula_lines, validate_tokens
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
# Text fields parsed strictly: a number field would turn "1e3" into 1 and silently keep the last
# valid value after a bad entry, so the cost shown would not be the cost of what is typed.
a, b, c = st.columns(3)
typed = {
    "Input tokens": a.text_input("Input tokens", value="1000", key="calc_in"),
    "Output tokens": b.text_input("Output tokens", value="500", key="calc_out"),
    "Cached input tokens": c.text_input("Cached input tokens", value="0", key="calc_cached"),
}
counts: dict[str, int] = {}
problems: list[str] = []
for label, text in typed.items():
    try:
        counts[label] = validate_tokens(text, label)
    except PricingError as exc:
        problems.append(str(exc))

if problems:
    st.error("Invalid input, no cost shown: " + "; ".join(problems) + ".", icon=":material/error:")
elif model:
    try:
        result = calculate_cost(
            engine,
            provider,
            model,
            counts["Input tokens"],
            counts["Output tokens"],
            counts["Cached input tokens"],
        )
    except PricingError as exc:
        st.error(f"Invalid input, no cost shown: {user_words(str(exc))}", icon=":material/error:")
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
