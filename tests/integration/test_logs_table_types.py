"""The Usage logs table: one type per column, so Streamlit hands it to Arrow without a traceback (issue 22, 11)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pyarrow as pa
from sqlalchemy import Engine

from core.recording.calls import make_call, record_batch
from core.reporting.logs import LogFilter, fetch_page
from ui.views import logs_table


def test_an_estimated_call_beside_a_priced_one_converts_to_arrow(engine: Engine) -> None:
    moment = datetime(2026, 11, 3, 12, tzinfo=UTC)
    record_batch(
        engine,
        [
            make_call("huggingface", "priced-by-env", 100, 50, timestamp=moment, request_id="a"),
            make_call("nobody-knows", "mystery", 100, 50, timestamp=moment, request_id="b"),  # estimate: no price id
        ],
    )
    rows = fetch_page(engine, LogFilter()).rows
    table = logs_table(rows, ZoneInfo("UTC"))
    arrow = pa.Table.from_pandas(table)  # what st.dataframe does; a mixed int/"" column raised here
    ids = arrow.column("Price id").to_pylist()
    assert arrow.schema.field("Price id").type == pa.int64()
    assert None in ids and any(isinstance(i, int) for i in ids)
