"""The shared sign-in form (ui/signin.py): a wrong password is answered right below the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

PASSWORD = "correct horse battery staple"


def _signin_app() -> None:
    import streamlit as st

    from core.storage.engine import make_engine
    from core.storage.migrate import create_tables
    from ui.signin import sign_in_form

    engine = make_engine()
    create_tables(engine)
    st.title("Pricing")
    if sign_in_form(engine):
        st.success("signed in")
    for i in range(40):  # a long page below the form: the answer must not land down there
        st.text(f"history row {i}")


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'signin.db'}")
    monkeypatch.setenv("SPENDBOARD_ADMIN_PASSWORD", PASSWORD)
    at = AppTest.from_function(_signin_app, default_timeout=30)
    at.run()
    return at


def test_a_wrong_password_is_answered_inside_the_form_below_the_field(app: AppTest) -> None:
    app.text_input(key="admin_password").set_value("not it")
    app.form_submit_button[0].click().run()
    assert not app.exception
    form = app.get("form")[0]
    kinds = [node.type for node in form.children.values()]
    assert kinds.index("text_input") < kinds.index("error") < kinds.index("button"), kinds  # field, answer, button
    assert "Wrong password" in form.error[0].value
    assert "not it" not in form.error[0].value
    assert "SPENDBOARD_ADMIN_PASSWORD" in app.caption[0].value  # the caption says which password is in use


def test_the_right_password_signs_in(app: AppTest) -> None:
    app.text_input(key="admin_password").set_value(PASSWORD)
    app.form_submit_button[0].click().run()
    assert not app.exception
    assert app.success and app.success[0].value == "signed in"
    assert not app.get("form")
