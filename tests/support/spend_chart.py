"""Read the Overview's spend chart back from an AppTest run as a person reads it: per period, the
label under its column, each bar's hover text, the anomaly marker's hover; the legend and the axis."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from streamlit.testing.v1 import AppTest


@dataclass
class Column:
    label: str = ""  # the period's label under the column ("" where the axis skips one)
    bars: list[str] = field(default_factory=list)  # each bar's hover text, bottom first
    top: float = 0.0  # the stack's height, in % of the spend axis
    marker: str | None = None  # the anomaly marker's hover text
    marker_at: float | None = None  # where the marker sits, in % of the spend axis


@dataclass
class DrawnChart:
    columns: list[Column] = field(default_factory=list)
    legend: list[str] = field(default_factory=list)
    ticks: list[str] = field(default_factory=list)  # the spend axis's labels, bottom first


def _percent(style: str, name: str) -> float:
    found = re.search(rf"(?:^|;){name}:([0-9.]+)%", style)
    assert found, (name, style)
    return float(found.group(1))


class _Reader(HTMLParser):
    """Walks the chart's markup; each element's text goes to the list of the part it stands in."""

    def __init__(self) -> None:
        super().__init__()
        self.chart = DrawnChart()
        self.labels: list[str] = []
        self.open: list[tuple[set[str], list[str] | None]] = []  # (classes, where its text goes)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = set(a.get("class", "").split())
        parent, sink = self.open[-1] if self.open else (set(), None)
        if "sc-col" in classes:
            self.chart.columns.append(Column())
        elif "sc-bar" in classes:
            self.chart.columns[-1].bars.append(a["aria-label"])
            self.chart.columns[-1].top += _percent(a["style"], "height")
        elif "sc-mark" in classes:
            self.chart.columns[-1].marker = a["aria-label"]
            self.chart.columns[-1].marker_at = _percent(a["style"], "bottom")
        else:
            part = {"sc-yticks": self.chart.ticks, "sc-x": self.labels, "sc-legend": self.chart.legend}
            for name, items in part.items():
                if name in parent and tag in ("span", "div"):
                    items.append("")
                    sink = items
        self.open.append((classes, sink))

    def handle_endtag(self, tag: str) -> None:
        self.open.pop()

    def handle_data(self, data: str) -> None:
        sink = self.open[-1][1] if self.open else None
        if sink is not None:
            sink[-1] += data


def drawn_chart(at: AppTest) -> DrawnChart:
    """The page's spend chart (the ``st.html`` holding it)."""
    (body,) = [h.proto.body for h in at.html if 'class="spend-chart"' in h.proto.body]
    reader = _Reader()
    reader.feed(body)
    assert len(reader.labels) == len(reader.chart.columns)
    for column, label in zip(reader.chart.columns, reader.labels, strict=True):
        column.label = label
    return reader.chart
