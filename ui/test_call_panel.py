"""The Calculator page's "Make a test call" panel: one real call, shown as the usage log stored it.

It calls ``core.recording.testcall`` only; the token stays in the environment (``HF_TOKEN``) and is never
drawn, so the panel has no token field at all. A test call spends the operator's token and writes to
the billing log, so it needs the admin sign-in and is limited per browser session; the provider's
reply is shown as plain text (never Markdown: no image is fetched, no link is live).
"""

from __future__ import annotations

import time

import streamlit as st
from sqlalchemy import Engine
from streamlit.errors import StreamlitAPIException

from core.money import format_per_million, format_usd
from core.pricing.formula import formula_lines
from core.pricing.lookup import current_index
from core.recording.calls import CallError
from core.recording.testcall import (
    DEFAULT_MODEL,
    DEFAULT_PROMPT,
    DEFAULT_PROVIDER,
    MAX_PROMPT_CHARS,
    TestCallError,
    TestCallResult,
    configured_base_url,
    make_test_call,
    token_configured,
)
from ui.signin import is_signed_in, sign_in_form

LOGS_PAGE = "app_pages/logs.py"
RESULT_KEY = "test_call_result"
TIMES_KEY = "test_call_times"
RATE_LIMIT = 10  # test calls per browser session ...
RATE_WINDOW_SECONDS = 600  # ... in any 10 minutes


def rate_wait(times: list[float], now: float, limit: int = RATE_LIMIT, window: float = RATE_WINDOW_SECONDS) -> int:
    """Seconds until another test call is allowed (0: now), given the times of this session's recent calls."""
    recent = sorted(t for t in times if now - t < window)
    if len(recent) < limit:
        return 0
    return int(recent[-limit] + window - now + 0.999)


def _providers(engine: Engine) -> list[str]:
    return sorted(set(current_index(engine).providers) | {DEFAULT_PROVIDER})


def _show(result: TestCallResult, logs_page: str) -> None:
    if result.duplicate:
        st.info(f"This response (id `{result.request_id}`) was already recorded as log #{result.log_id}; nothing new.")
    else:
        st.success(f"Recorded as log #{result.log_id} in {result.elapsed_seconds:.1f} s.")
    if result.reply:
        st.text(f"Reply: {result.reply[:300]}")  # text, not Markdown: a reply is the provider's, not ours
    b = result.breakdown
    tokens_in, tokens_out, cached = st.columns(3)
    tokens_in.metric("Input tokens", f"{result.input_tokens:,}")
    tokens_out.metric("Output tokens", f"{result.output_tokens:,}")
    cached.metric("Cached input tokens", f"{result.cached_input_tokens:,}")
    st.markdown(
        f"**Matched price** ({result.stored_matched_by}): input {format_per_million(b.input_token_cost)}, "
        f"output {format_per_million(b.output_token_cost)}"
    )
    st.caption(b.reason)
    st.code("\n".join(formula_lines(b)), language=None)
    st.markdown(f"**Stored cost:** {format_usd(result.stored_cost_total)}")
    try:
        st.page_link(
            logs_page, label=f"Open log #{result.log_id} in Usage logs", query_params={"log_id": result.log_id}
        )
    except StreamlitAPIException:  # the panel drawn outside the app (tests, a lone script)
        st.caption(f"See log #{result.log_id} on the Usage logs page.")


def render(engine: Engine, logs_page: str = LOGS_PAGE) -> None:
    """Draw the panel; the last result stays shown across reruns until the next call."""
    with st.expander("Make a test call", expanded=RESULT_KEY in st.session_state):
        _panel(engine, logs_page)


@st.fragment
def _panel(engine: Engine, logs_page: str) -> None:
    """A fragment, so a test call reruns this panel only, not the whole Calculator page."""
    if not is_signed_in():
        st.caption("A test call spends the token in `HF_TOKEN` and is recorded in the billing log: sign in as admin.")
        sign_in_form(engine, key="test_call_sign_in")
        return
    token_state = "set" if token_configured() else "**not set**: add it to `.env` and restart"
    st.caption(
        f"Sends one small chat completion to `{configured_base_url()}` (`HF_BASE_URL`) with the token in "
        f"`HF_TOKEN` ({token_state}), records it, and shows its cost as the usage log stored it."
    )
    with st.form("test_call_form"):
        providers = _providers(engine)
        provider = st.selectbox("Provider", providers, index=providers.index(DEFAULT_PROVIDER))
        model = st.text_input("Model", value=DEFAULT_MODEL)
        prompt = st.text_area("Prompt", value=DEFAULT_PROMPT, max_chars=MAX_PROMPT_CHARS, height=80)
        submitted = st.form_submit_button("Make a test call")
    now = time.time()
    times = [t for t in st.session_state.get(TIMES_KEY, []) if now - t < RATE_WINDOW_SECONDS]
    wait = rate_wait(times, now) if submitted else 0
    if wait:
        st.error(f"At most {RATE_LIMIT} test calls in {RATE_WINDOW_SECONDS // 60} minutes: the next one in {wait} s.")
    elif submitted:
        st.session_state[TIMES_KEY] = [*times, now]  # counted when asked, whatever the provider answers
        st.session_state.pop(RESULT_KEY, None)
        try:
            with st.spinner("Calling the provider..."):
                st.session_state[RESULT_KEY] = make_test_call(engine, provider, model, prompt)
        except (TestCallError, CallError) as exc:
            st.error(str(exc))
    result = st.session_state.get(RESULT_KEY)
    if isinstance(result, TestCallResult):
        _show(result, logs_page)
