"""The admin-only API keys page through AppTest: sign in, create (shown once), list, revoke; rejected ingestions."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.ingest.keys import authenticate, list_keys
from core.ingest.rejections import Refusal, keep_refusals
from core.storage.engine import make_engine

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PASSWORD = "correct horse battery staple"


@pytest.fixture
def app_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SPENDBOARD_ADMIN_PASSWORD", PASSWORD)
    return url


def _keys_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    at.switch_page("app_pages/keys.py").run()
    assert not at.exception, at.exception
    return at


def test_keys_page_admin_only_create_once_revoke_and_rejections(app_db: str) -> None:
    at = _keys_page()
    assert not [f for f in at.text_input if f.label == "Name"]  # nothing but the sign-in before the password
    at.text_input(key="admin_password").set_value("not the password")
    at.form_submit_button[0].click().run()
    assert at.error and "Wrong password" in at.error[0].value
    assert not [b for b in at.button if b.key == "keys_sign_out"]
    at.text_input(key="admin_password").set_value(PASSWORD)
    at.form_submit_button[0].click().run()
    assert not at.exception, at.exception
    form = at.form("create_key")
    form.text_input[0].set_value("checkout-service")
    form.text_input[1].set_value("checkout")
    form.selectbox(key="key_scope").set_value("all")
    next(b for b in at.form_submit_button if b.label == "Create key").click().run()
    assert not at.exception, at.exception
    shown = [c.value for c in at.code]
    assert len(shown) == 1 and shown[0].startswith("sb_")
    engine = make_engine(app_db)
    try:
        found = authenticate(engine, shown[0])
        assert found is not None and found.project == "checkout" and found.scope == "all"
        keep_refusals(engine, "/api/v1/litellm", "checkout-service", [Refusal("model: missing", "{}")] * 3)
        at.run()  # the key is shown once: a rerun no longer has it
        assert not at.code
        table = at.dataframe[0].value
        assert list(table["Name"]) == ["checkout-service"] and table["Last used"][0] != "never"
        assert list(table["Scope"]) == ["all"]
        rejected = at.dataframe[1].value
        assert list(rejected["Reason"]) == ["model: missing"] and list(rejected["Count"]) == [3]
        at.checkbox(key="revoke_sure").check()
        next(b for b in at.form_submit_button if b.label == "Revoke").click().run()
        assert not at.exception, at.exception
        assert authenticate(engine, shown[0]) is None and list_keys(engine)[0].revoked_at is not None
        assert "revoked" in at.dataframe[0].value["State"][0]
        form = at.form("create_key")
        form.text_input[0].set_value("grafana")
        form.selectbox(key="key_scope").set_value("read")
        next(b for b in at.form_submit_button if b.label == "Create key").click().run()
        assert {k.name: k.scope for k in list_keys(engine)} == {"checkout-service": "all", "grafana": "read"}
    finally:
        engine.dispose()
