"""API keys of the ingestion API (admin only): create (the key is shown once), list with last use, revoke;
and the rejected ingestions: what the routes refused, by reason and count."""

import pandas as pd
import streamlit as st

from core.admin.password import signed_in
from core.ingest.keys import DEFAULT_SCOPE, SCOPES, ApiKeyError, create_key, list_keys, revoke_key
from core.ingest.rejections import rejection_summary
from ui import common
from ui.signin import SIGNED_IN_KEY, sign_in_form

NEW_KEY = "new_api_key"

st.title("API keys")
engine = common.get_engine()
flt = common.filters(period=False)  # times shown in the viewer's zone; no period here
st.caption(
    "Keys let other programs use the HTTP API with `Authorization: Bearer KEY`. A key's scope says which routes: "
    "`ingest` sends calls (`POST /api/v1/calls`, `POST /v1/traces`, `POST /api/v1/litellm`), `read` reads "
    "figures (`GET /api/v1/spend`, `GET /metrics`), `check` asks `POST /api/v1/check`, `all` does everything."
)
SCOPE_HELP = {
    "ingest": "ingest: send calls (JSON, OTLP, LiteLLM)",
    "read": "read: spend totals and Prometheus metrics",
    "check": "check: ask whether a call fits the enforced budgets",
    "all": "all: every route",
}


def _when(moment):  # type: ignore[no-untyped-def]
    return moment.astimezone(flt.tz).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


if not sign_in_form(engine, key="keys_sign_in"):  # ui/signin.py: the one admin sign-in, shared with Pricing
    st.stop()

if st.button("Sign out", key="keys_sign_out"):
    st.session_state.pop(SIGNED_IN_KEY, None)
    st.session_state.pop(NEW_KEY, None)
    st.rerun()

shown = st.session_state.pop(NEW_KEY, None)
if shown:
    st.success(f"Key {shown[0]!r} created. Copy it now: it is shown once, only its hash is kept.")
    st.code(shown[1], language=None)

with st.form("create_key", clear_on_submit=True):
    left, middle, right = st.columns(3)
    name = left.text_input("Name", help="who or what sends with it, e.g. checkout-service")
    scope = middle.selectbox(
        "Scope", SCOPES, index=SCOPES.index(DEFAULT_SCOPE), format_func=SCOPE_HELP.__getitem__, key="key_scope"
    )
    project = right.text_input("Project (optional)", help="tags the calls this key sends that name no project")
    if st.form_submit_button("Create key", type="primary"):
        if not signed_in(st.session_state.get(SIGNED_IN_KEY)):
            st.error("Your sign-in expired; sign in again. Nothing was created.")
        else:
            try:
                new = create_key(engine, name, project or None, scope)
            except ApiKeyError as exc:
                st.error(f"Not created: {exc}")
            else:
                st.session_state[NEW_KEY] = (new.info.name, new.key)
                st.rerun()

keys = list_keys(engine)
st.subheader("Keys")
if not keys:
    st.info("No API keys yet.")
else:
    table = pd.DataFrame(
        [
            {
                "Name": k.name,
                "Prefix": f"{k.prefix}...",
                "Scope": k.scope,
                "Project": k.project or "",
                "Created": _when(k.created_at),
                "Last used": _when(k.last_used_at) or "never",
                "State": f"revoked {_when(k.revoked_at)}" if k.revoked_at else "active",
            }
            for k in keys
        ]
    )
    st.dataframe(table, hide_index=True, key="keys_table")
    active = [k.name for k in keys if k.active]
    if active:
        with st.form("revoke_key"):
            target = st.selectbox("Key to revoke", active, key="revoke_choice")
            sure = st.checkbox("Senders using this key get 401 from now on", key="revoke_sure")
            if st.form_submit_button("Revoke"):
                if not sure:
                    st.error("Tick the box to confirm; nothing was revoked.")
                elif not signed_in(st.session_state.get(SIGNED_IN_KEY)):
                    st.error("Your sign-in expired; sign in again. Nothing was revoked.")
                else:
                    try:
                        revoke_key(engine, target)
                    except ApiKeyError as exc:
                        st.error(str(exc))
                    else:
                        st.rerun()

st.subheader("Rejected ingestions")
st.caption("Items the routes could not record (the rest of each request was recorded), by route and reason.")
summary = rejection_summary(engine)
if not summary:
    st.info("Nothing refused.")
else:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Route": s.route,
                    "Reason": s.reason,
                    "Count": s.count,
                    "Last": _when(s.last_at),
                    "Key": s.key_name or "",
                    "Sample": (s.sample or "")[:300],
                }
                for s in summary
            ]
        ),
        hide_index=True,
        key="rejections_table",
    )
