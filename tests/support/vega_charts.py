"""Read a Vega-Lite chart back from an AppTest run: its spec and its named datasets as rows."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
from streamlit.testing.v1 import AppTest


def vega_chart(at: AppTest, index: int = 0) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """(spec, {dataset name: rows}) of the page's ``index``-th ``st.vega_lite_chart``: Streamlit moves the
    chart's named datasets out of the spec into Arrow IPC bytes, read back here as dicts."""
    proto = at.get("vega_lite_chart")[index].proto
    datasets = {d.name: pa.ipc.open_stream(d.data.data).read_all().to_pylist() for d in proto.datasets}
    return json.loads(proto.spec), datasets
