"""The admin sign-in that guards price edits, shared by the pages that edit.

A refused attempt is shown inside the form, right below the password field, not
below the fold; the caption says which password is in use.
"""

from __future__ import annotations

import secrets

import streamlit as st
from sqlalchemy import Engine

from core import config
from core.admin.password import SESSION_SECONDS, SignInRefused, sign_in, signed_in

SIGNED_IN_KEY = "admin_signed_in_until"
SESSION_KEY = "admin_sign_in_session"  # wrong passwords are counted per browser session


def is_signed_in() -> bool:
    return signed_in(st.session_state.get(SIGNED_IN_KEY))


def sign_out() -> None:
    st.session_state.pop(SIGNED_IN_KEY, None)


def sign_in_form(engine: Engine, key: str = "sign_in") -> bool:
    """True when the viewer is signed in; otherwise draws the sign-in form and returns False."""
    if is_signed_in():
        return True
    sign_out()  # an expired sign-in is dropped
    which = (
        "the value of SPENDBOARD_ADMIN_PASSWORD, set in the environment or `.env`"
        if config.admin_password()
        else "the one printed once in the terminal at first start (`python -m core reset-admin-password`: a new one)"
    )
    st.caption(f"Editing needs the admin password: {which}. A sign-in lasts {SESSION_SECONDS // 60} minutes.")
    with st.form(key, clear_on_submit=True):
        attempt = st.text_input("Admin password", type="password", key="admin_password")
        message = st.empty()  # right below the field: where the eye is when the answer comes
        if st.form_submit_button("Sign in"):
            try:
                session = st.session_state.setdefault(SESSION_KEY, secrets.token_hex(16))
                st.session_state[SIGNED_IN_KEY] = sign_in(engine, attempt, session=session)
            except SignInRefused as exc:
                message.error(str(exc), icon=":material/lock:")
            else:
                st.rerun()
    return False


AUTHOR_KEY = "admin_author"


def author() -> str:
    """Who a price change is recorded as: the signed-in admin's browser session, not a name anyone can type.

    One admin password means one role; the session tag (random, made once per browser session) tells
    apart changes made from different browsers.
    """
    found = st.session_state.get(AUTHOR_KEY)
    if not isinstance(found, str):
        found = st.session_state[AUTHOR_KEY] = f"admin (browser session {secrets.token_hex(3)})"
    return found
