"""Issue 19, point 13: crafted ids in a link or in Verify say "no such call", never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.recording.audit import verify_call
from core.reporting.logs import get_row

APP = str(Path(__file__).resolve().parents[2] / "app.py")
CRAFTED = ["²", "12345678901234567890123", "9223372036854775808", "-1", "0", "1e3", "٣"]


@pytest.mark.parametrize("text", CRAFTED)
def test_a_crafted_id_is_no_id(text: str) -> None:
    from core.reporting.logs import parse_log_id

    assert parse_log_id(text) is None


def test_ids_no_row_can_have_find_nothing(engine) -> None:  # type: ignore[no-untyped-def]
    assert get_row(engine, 10**22) is None and get_row(engine, 0) is None
    assert verify_call(engine, log_id=10**22) is None


@pytest.fixture
def app_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SPENDBOARD_ADMIN_PASSWORD", "correct horse battery staple")
    return url


@pytest.mark.parametrize("text", ["²", "12345678901234567890123"])
def test_the_logs_link_with_a_crafted_id_says_no_such_call(app_db: str, text: str) -> None:
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params["log_id"] = text
    at.run()
    at.switch_page("app_pages/logs.py").run()
    assert not at.exception, at.exception
    assert any("No such call" in w.value for w in at.warning), [w.value for w in at.warning]


def test_verify_with_a_23_digit_id_says_no_such_call(app_db: str) -> None:
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    at.switch_page("app_pages/calculator.py").run()
    at.text_input(key="verify_id").input("12345678901234567890123")
    at.button(key="FormSubmitter:verify_form-Verify").click().run()
    assert not at.exception, at.exception
    assert any("No such call" in e.value for e in at.error), [e.value for e in at.error]


def test_pages_show_no_traceback() -> None:
    import tomllib

    config = tomllib.loads((Path(APP).parent / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "none"
