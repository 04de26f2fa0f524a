"""The Overview's anomalies: cached reads of what detection stored, and the table of the latest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import pandas as pd
import streamlit as st

from core.anomalies import service
from core.money import format_usd
from ui.common import CACHE_TTL, _engine_of

LATEST = 10


@dataclass(frozen=True)
class Shown:
    """An anomaly as the page shows it (plain values: cached results are pickled)."""

    scope: str
    key: str
    hour: datetime
    spend: Decimal
    baseline: Decimal
    ratio: str | None
    late: bool


def _shown(rows: list) -> list[Shown]:  # type: ignore[type-arg]
    return [Shown(a.scope, a.key, a.hour, a.spend, a.baseline, a.ratio, a.late) for a in rows]


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def between(url: str, start: datetime, end: datetime) -> list[Shown]:
    return _shown(service.between(_engine_of(url), start, end))


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def latest(url: str, limit: int = LATEST) -> list[Shown]:
    return _shown(service.latest(_engine_of(url), limit))


def matching(anomalies: list[Shown], where: tuple[tuple[str, str], ...]) -> list[Shown]:
    """With the Overview narrowed to a provider, model, user or project: only that key's anomalies."""
    if not where:
        return anomalies
    chosen = dict(where)
    keep = []
    for a in anomalies:
        if a.scope == "model" and "model" in chosen:
            provider, _, model = a.key.partition("/")
            if model == chosen["model"] and chosen.get("provider", provider) == provider:
                keep.append(a)
        elif chosen.get(a.scope) == a.key:
            keep.append(a)
    return keep


def latest_table(anomalies: list[Shown]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Hour (UTC)": [f"{a.hour:%Y-%m-%d %H:00}" for a in anomalies],
            "Scope": [a.scope for a in anomalies],
            "Key": [a.key for a in anomalies],
            "Spend": [format_usd(a.spend) for a in anomalies],
            "Usual spend": [format_usd(a.baseline) for a in anomalies],
            "Ratio": [f"{a.ratio}x" if a.ratio is not None else "new" for a in anomalies],
            "Found late": ["yes" if a.late else "" for a in anomalies],
        }
    )


def render_latest(url: str) -> None:
    rows = latest(url)
    st.markdown("**Latest anomalies**")
    if not rows:
        st.caption(
            "None yet. An hour is an anomaly when a provider, model, user or project spends at least $1, "
            "3 times its usual and far beyond its usual variation (the same hour of the previous four weeks)."
        )
        return
    st.dataframe(latest_table(rows), hide_index=True, key="anomalies_table")
    st.caption("Usual spend: the median of the same UTC hour in the previous four weeks. `alerts add` sends each one.")
