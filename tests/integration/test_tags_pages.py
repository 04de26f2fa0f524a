"""Pages through AppTest: the Customers page (month's cost, billable, margin, unmatched calls, a statement
download), the Overview's "By tag" table and tag filter, the Usage logs' tag filter and tags column."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from overview_tabs import open_tab
from streamlit.testing.v1 import AppTest

from core.customers import service
from core.recording.calls import make_call, record_batch
from core.storage.engine import make_engine
from core.storage.migrate import create_tables

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def app_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SPENDBOARD_ADMIN_PASSWORD", "correct horse battery staple")
    monkeypatch.setenv("SPENDBOARD_BUDGET_WORKER", "0")
    return url


def _this_month() -> datetime:
    """A moment safely inside the current UTC month (the page's default month)."""
    now = datetime.now(UTC)
    return max(now - timedelta(minutes=5), now.replace(day=1, hour=0, minute=0, second=1, microsecond=0))


def _seed(url: str, customers: bool = True) -> None:
    engine = make_engine(url)
    create_tables(engine)
    at = _this_month()
    # the estimate: USD 1 per 1M input tokens
    record_batch(
        engine,
        [
            make_call("acmeai", "m1", 10_000_000, 0, timestamp=at, project="acme", tags=["feature:summarize"]),
            make_call(
                "acmeai", "m2", 2_340_000, 0, timestamp=at, project="acme", tags=["feature:summarize", "env:prod"]
            ),
            make_call("acmeai", "m1", 7_000_000, 0, timestamp=at, project="other", tags=["env:prod"]),
            make_call("acmeai", "m1", 1_000_000, 0, timestamp=at),
        ],
    )
    if customers:
        service.add_customer(engine, "acme", "project:acme", "20")
    engine.dispose()
    st.cache_data.clear()


def _app(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def _table(at: AppTest, column: str):  # type: ignore[no-untyped-def]
    """The one table with this column (AppTest finds dataframes by position, not key)."""
    (found,) = [d.value for d in at.dataframe if column in d.value.columns]
    return found


def _texts(at: AppTest) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.caption] + [e.value for e in at.info]
    parts += [e.value for e in at.success] + [e.value for e in at.warning]
    return "\n".join(str(p) for p in parts)


def test_customers_page_month_billable_margin_unmatched_download(app_db: str) -> None:
    _seed(app_db)
    at = _app("app_pages/customers.py")
    table = _table(at, "Billable")
    row = table.iloc[0]
    assert (row["Customer"], row["Match"], row["Markup"], row["Calls"]) == ("acme", "project:acme", "20%", 2)
    assert (row["Billable"], row["Margin"], row["Exact cost (USD)"]) == ("$14.81", "$2.47", "12.34")
    text = _texts(at)
    assert "2 calls this month" in text and "$8.00" in text and "matched no customer" in text
    assert "billable **$14.81** (exact $14.808" in text
    button = at.get("download_button")[0]
    assert button.proto.label == "Download PDF statement"


def test_customers_page_empty_explains_the_command(app_db: str) -> None:
    _seed(app_db, customers=False)
    at = _app("app_pages/customers.py")
    text = _texts(at)
    assert "customers add --name acme --match project:acme" in text
    assert "4 calls this month" in text  # every call is unmatched, and said so


def test_overview_by_tag_and_tag_filter(app_db: str) -> None:
    _seed(app_db, customers=False)
    at = _app("app_pages/overview.py")
    assert not [d for d in at.dataframe if "Tag" in d.value.columns]  # the Providers tab opens first
    open_tab(at, "Tags")
    tags = _table(at, "Tag")
    assert dict(zip(tags["Tag"], tags["Calls"], strict=True)) == {"env:prod": 2, "feature:summarize": 2}
    assert "rows overlap" in _texts(at)
    at.multiselect(key="overview_tags").select("env:prod").run()
    assert not at.exception
    assert [m.value for m in at.metric if m.label == "Calls"] == ["2"]
    open_tab(at, "Providers")
    providers = _table(at, "Provider")
    assert list(providers["Calls"]) == [2] and list(providers["Exact spend (USD)"]) == ["9.34"]
    at.multiselect(key="overview_tags").select("feature:summarize").run()  # both tags: all must match
    assert [m.value for m in at.metric if m.label == "Calls"] == ["1"]


def test_logs_tag_filter_and_tags_column(app_db: str) -> None:
    _seed(app_db, customers=False)
    at = _app("app_pages/logs.py")
    rows = _table(at, "Tags")
    assert sorted(rows["Tags"]) == ["", "env:prod", "feature:summarize", "feature:summarize, env:prod"]
    at.multiselect(key="logs_tags").select("feature:summarize").run()
    rows = _table(at, "Tags")
    assert sorted(rows["Tags"]) == ["feature:summarize", "feature:summarize, env:prod"]
    assert "2 calls match" in _texts(at)
