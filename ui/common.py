"""What every page shares: the engine (created once), the sidebar filters, cached queries.

Cached queries are keyed by the database URL, not the engine, so ``st.cache_data``
never tries to hash an engine; any write calls ``clear_caches()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo, available_timezones

import streamlit as st
from sqlalchemy import Engine

from core.admin.password import bootstrap_admin_password
from core.config import ConfigError, check_environment, database_url
from core.pricing.seeding import initialize_default_pricing
from core.reporting import aggregates as reports
from core.reporting import filters as log_filters
from core.reporting.filters import CallCount
from core.reporting.forecast import MonthProjection, month_end_projection
from core.reporting.logs import LogFilter
from core.storage.engine import CONNECTION_ERRORS, DatabaseSchemaError, database_error, make_engine
from core.storage.migrate import upgrade_database
from core.times import TimeError, zone
from ui.views import COUNT_COLUMNS, DEFAULT_PERIOD, PERIODS, period_dates, utc_range

CACHE_TTL = 30
# hashable exact-match filters for cached reads: (("project", "x"),); ("tag", T) may repeat (all must match)
Where = tuple[tuple[str, str], ...]
TAG_OPTIONS = 500  # the tags that spend most in the period, offered in the tag filter
# token and call counts drawn as 1,234,567 (still numbers, so a header click sorts them as numbers)
COUNTS = {name: st.column_config.NumberColumn(name, format="localized") for name in COUNT_COLUMNS}


@st.cache_resource(show_spinner="Setting up the database...")
def _engine_for(url: str) -> Engine:
    """One engine per database for the whole server; schema upgraded, seed prices and admin password made once."""
    engine = make_engine(url)
    upgrade_database(engine)
    initialize_default_pricing(engine)
    bootstrap_admin_password(engine)
    return engine


def get_engine() -> Engine:
    return _engine_for(database_url())


def _engine_of(key: str) -> Engine:
    """The engine of a cache key made by :func:`snapshot` (the URL, then ``#`` and the data version)."""
    return _engine_for(key.split("#", 1)[0])


def snapshot() -> str:
    """The key of this run's cached reads: the database URL and its data version.

    A call recorded (over HTTP too) or repriced since the last read makes a new key, so a reload
    always shows it, and counts and tables read in one run agree.
    """
    url = database_url()
    newest_call, newest_reprice = reports.data_version(_engine_of(url))
    return f"{url}#{newest_call}.{newest_reprice}"


def start_app() -> Engine:
    """The engine, or a clear message and a stop when a setting is bad (never a traceback)."""
    try:
        check_environment()
        return get_engine()
    except DatabaseSchemaError as exc:
        st.error(f"Database error: {exc}.")
        st.stop()
        raise  # unreachable: st.stop() ends the run
    except Exception as exc:  # noqa: BLE001 - only settings and connection errors are shown, the rest raised
        if not isinstance(exc, (ConfigError, *CONNECTION_ERRORS)):
            raise
        problem = exc if isinstance(exc, ConfigError) else database_error(exc)  # type: ignore[arg-type]
        shown = str(problem).replace("\\", "\\\\").replace("*", "\\*")  # a hidden password's *** is not markdown
        st.error(f"Configuration error: {shown}. Fix it in the environment or `.env` and restart.")
        st.stop()
        raise  # unreachable: st.stop() ends the run


def clear_caches() -> None:
    st.cache_data.clear()


@dataclass(frozen=True)
class Filters:
    """The sidebar's choice: local days (None = open end) and the viewer's time zone."""

    first: date | None
    last: date | None
    tz: ZoneInfo
    label: str

    def range(self, engine: Engine) -> tuple[datetime, datetime] | None:
        if self.first is not None and self.last is not None:
            return utc_range(self.first, self.last, self.tz)
        return reports.local_range(self.first, self.last, self.tz, engine)


@st.cache_data(show_spinner=False)
def _zones() -> list[str]:
    return sorted(available_timezones())


KEPT = {"tz": "kept_tz", "period": "kept_period", "custom_range": "kept_custom_range"}


def _restore(key: str) -> None:
    """Streamlit forgets a widget's value on a page that does not draw it: keep it in a key of our own."""
    if key not in st.session_state and KEPT[key] in st.session_state:
        st.session_state[key] = st.session_state[KEPT[key]]


def _keep(key: str) -> None:
    if key in st.session_state:
        st.session_state[KEPT[key]] = st.session_state[key]


def sidebar(period: bool = True) -> Filters:
    """The time zone, and the period where the page reads one; the choice is kept across pages.

    Drawn by the pages that use it (a page the filters do not affect shows none of them).
    """
    with st.sidebar:
        st.header("Filters")
        zones = _zones()
        guess = st.context.timezone or "UTC"
        default = zones.index(guess if guess in zones else "UTC")
        _restore("tz")
        tz_name = st.selectbox("Time zone", zones, index=default, key="tz", help="Times on this page are shown in it.")
        _keep("tz")
        try:
            tz = zone(tz_name)
        except TimeError as exc:
            st.error(str(exc))
            tz = ZoneInfo("UTC")
        if not period:
            return Filters(None, None, tz, "All time")
        today = datetime.now(tz).date()
        _restore("period")
        preset = st.selectbox("Period", PERIODS, index=PERIODS.index(DEFAULT_PERIOD), key="period")
        _keep("period")
        custom = None
        if preset == "Custom":
            _restore("custom_range")
            picked = st.date_input("From - to", value=(today.replace(day=1), today), key="custom_range")
            _keep("custom_range")
            if isinstance(picked, tuple | list) and len(picked) == 2:
                custom = (picked[0], picked[1])
        first, last = period_dates(preset, today, custom)
        label = preset if preset != "Custom" or not custom else f"{custom[0]} to {custom[1]}"
    return Filters(first, last, tz, label)


def filters(period: bool = True) -> Filters:
    """The sidebar's choice for this page, drawn by the page: the zone, and the period when ``period``."""
    return sidebar(period)


# Cached reads: arguments are hashable values; the engine comes from the URL.


def _split(where: Where) -> tuple[dict[str, str] | None, tuple[str, ...]]:
    """Exact matches on columns, and the tags a call must all carry."""
    rest = {name: value for name, value in where if name != "tag"}
    return rest or None, tuple(value for name, value in where if name == "tag")


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def totals(url: str, start: datetime, end: datetime, where: Where = ()) -> reports.Totals:
    rest, tags = _split(where)
    return reports.totals(_engine_of(url), start, end, rest, tags=tags)


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def breakdown(
    url: str, start: datetime, end: datetime, by: str, where: Where = (), limit: int | None = None
) -> list[reports.Row]:
    """Totals per key, biggest spend first; ``limit``: the top N only (ranked in SQL, not by reading every user)."""
    rest, tags = _split(where)
    return reports.breakdown(_engine_of(url), start, end, by, rest, limit=limit, tags=tags)


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def over_time(
    url: str, start: datetime, end: datetime, tz: str, granularity: str, by: str, where: Where = ()
) -> list[reports.Row]:
    rest, tags = _split(where)
    return reports.over_time(_engine_of(url), start, end, ZoneInfo(tz), granularity, by, rest, tags=tags)


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def count_calls(url: str, flt: LogFilter) -> CallCount:
    return log_filters.count_calls(_engine_of(url), flt)


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def models_of(url: str, start: datetime, end: datetime, provider: str | None) -> list[str]:
    return log_filters.models_of(_engine_of(url), start, end, provider)


def tag_filter(url: str, start: datetime, end: datetime, key: str, column: object = None) -> tuple[str, ...]:
    """A multiselect of the period's tags (biggest spend first); a call must carry every tag picked."""
    options = [row.key or "" for row in breakdown(url, start, end, "tag", (), TAG_OPTIONS)]
    kept = [tag for tag in st.session_state.get(key, []) if tag in options]
    if kept != st.session_state.get(key, kept):
        st.session_state[key] = kept
    where = column if column is not None else st
    picked = where.multiselect(  # type: ignore[attr-defined]
        "Tags", options, key=key, placeholder="All calls", help="Only calls carrying every tag picked."
    )
    return tuple(picked)


def has_usage(url: str) -> bool:
    """Not cached: one indexed row, and the demo offer must vanish as soon as data arrives."""
    return reports.has_usage(_engine_of(url))


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def projection(url: str, now: datetime, tz: str, where: Where = ()) -> MonthProjection:
    return month_end_projection(_engine_of(url), now, ZoneInfo(tz), dict(where) or None)
