"""Names full of SQL metacharacters are stored and read back as text, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect

from core.pricing.edits import PriceEdit, save_price
from core.pricing.lookup import current_index
from core.recording.calls import get_call, make_call, record_usage
from core.recording.importer import import_file
from core.reporting import aggregates as reports

NASTY = [
    "'; DROP TABLE api_usage_logs; --",
    'model" OR "1"="1',
    "x') ; DELETE FROM api_provider_pricing; --",
    "%s %(name)s :name ? $1 \\ \\x00",
    "**bold** <script>alert(1)</script> [link](http://x)",
]


@pytest.mark.parametrize("name", NASTY)
def test_names_with_sql_metacharacters_are_stored_and_read_back_as_text(name: str, engine: Engine) -> None:
    moment = datetime(2025, 6, 1, 12, tzinfo=UTC)
    call = make_call("acme", name, 10, 5, user=name, request_id=name, timestamp=moment)
    stored = record_usage(engine, call)
    record = get_call(engine, log_id=stored.id)
    assert record is not None
    assert (record.model, record.user_id, record.request_id) == (name, name, name)
    assert get_call(engine, request_id=name).id == stored.id  # type: ignore[union-attr]
    assert record_usage(engine, call).duplicate  # the id is compared as text, not interpreted

    end = datetime(2025, 6, 2, tzinfo=UTC)
    assert [r.key for r in reports.breakdown(engine, moment, end, "model")] == [name]
    assert [r.key for r in reports.breakdown(engine, moment, end, "user")] == [name]

    save_price(engine, PriceEdit("acme", name, "2", "4", changed_by=name, effective_from=moment.replace(day=1)))
    match = current_index(engine).lookup("acme", name, moment)
    assert match.matched_by == "exact"
    assert set(inspect(engine).get_table_names()) >= {"api_usage_logs", "api_provider_pricing"}


def test_imported_names_with_quotes_are_text(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "quotes.csv"
    path.write_text(
        "timestamp,provider,model,input_tokens,output_tokens,user,request_id\n"
        '2025-06-01T10:00:00Z,acme,"a\'; DROP TABLE api_usage_logs; --",1,1,"o\'brien","r\'1"\n'
    )
    result = import_file(engine, path)
    assert (result.taken, result.refused) == (1, [])
    record = get_call(engine, request_id="r'1")
    assert record is not None
    assert (record.model, record.user_id) == ("a'; DROP TABLE api_usage_logs; --", "o'brien")
