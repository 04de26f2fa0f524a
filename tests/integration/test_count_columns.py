"""Token and call counts show thousands separators in every table, and stay numbers (issue 22, point 7).

Streamlit draws a table on a canvas; what it draws for a number column is set by the column's
``format``: ``localized`` gives ``1,234,567``, the default gives ``1234567``. The columns must
also stay numeric (not preformatted strings) so a click on the header sorts them as numbers.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.customers.service import add_customer
from core.recording.calls import make_call, record_batch
from core.storage.engine import make_engine

APP = str(Path(__file__).resolve().parents[2] / "app.py")
COUNT_COLUMNS = {  # every column of a count that a table shows
    "Calls", "Estimated calls", "Input tokens", "Output tokens", "Cache read", "Cache write 5m", "Cache write 1h",
    "Reasoning", "Web searches",
}  # fmt: skip


def _count_columns_of(at: AppTest) -> list[tuple[str, str, str | None, str]]:
    """(table's first column, column, its format, its dtype) of every count column of every table shown."""
    found = []
    for table in at.dataframe:
        config = json.loads(table.proto.columns or "{}")
        frame = table.value
        for name in frame.columns:
            if name in COUNT_COLUMNS:
                fmt = (config.get(name) or {}).get("type_config", {}).get("format")
                found.append((frame.columns[0], name, fmt, str(frame[name].dtype)))
    return found


@pytest.mark.parametrize(
    "page", ["app_pages/overview.py", "app_pages/logs.py", "app_pages/customers.py"], ids=lambda p: Path(p).stem
)
def test_every_count_column_is_a_localized_number(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    engine = make_engine(url)
    moment = datetime.now(UTC) - timedelta(hours=1)
    record_batch(
        engine,
        [
            make_call("openai", "gpt-4o", 1_234_567, 2_345_678, cached_input_tokens=1_000_000, user="u1",
                      project="acme", timestamp=moment, request_id="big", tags=("feature:a",)),
            make_call("openai", "gpt-4o-mini", 12, 34, user="u2", timestamp=moment, request_id="small"),
        ],
    )  # fmt: skip
    add_customer(engine, "acme", "project:acme", "10")
    engine.dispose()
    st.cache_data.clear()
    at.switch_page(page).run()
    assert not at.exception
    found = _count_columns_of(at)
    assert found, "no table with token or call counts was shown"
    plain = [(table, name, fmt) for table, name, fmt, _dtype in found if fmt != "localized"]
    assert not plain, f"count columns drawn without thousands separators: {plain}"
    strings = [(table, name, dtype) for table, name, _fmt, dtype in found if dtype == "object"]
    assert not strings, f"count columns preformatted as text (sorted as text): {strings}"
