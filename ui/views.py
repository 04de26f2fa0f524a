"""Tables and texts the pages show, as pure functions (no Streamlit), so they are tested directly.

Money is formatted with ``core.money`` so tiny amounts stay visible; names that come
from data are left as plain strings for ``st.dataframe`` / ``st.text``, never markdown.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd

from core.money import format_exact_usd, format_per_million, format_total, format_usd, to_text
from core.pricing.formula import CostBreakdown
from core.recording.audit import Verification
from core.reporting.aggregates import Row, Totals
from core.reporting.logs import LogRow
from core.times import local_midnight

PERIODS = ("Last 7 days", "Last 30 days", "Last 90 days", "This month", "All time", "Custom")
DEFAULT_PERIOD = "Last 30 days"


def period_dates(preset: str, today: date, custom: tuple[date, date] | None = None) -> tuple[date | None, date | None]:
    """The local days (first, last, inclusive) a sidebar choice covers; ``None`` ends are open."""
    if preset == "All time":
        return None, None
    if preset == "This month":
        return today.replace(day=1), today
    if preset == "Custom":
        if not custom:
            return today - timedelta(days=29), today
        first, last = custom
        return (first, last) if first <= last else (last, first)
    days = {"Last 7 days": 7, "Last 30 days": 30, "Last 90 days": 90}.get(preset)
    if days is None:
        raise ValueError(f"period: {preset!r} is not one of {', '.join(PERIODS)}")
    return today - timedelta(days=days - 1), today


def utc_range(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[first 00:00, last+1 00:00) in ``tz``, as UTC instants."""
    return local_midnight(first, tz), local_midnight(last + timedelta(days=1), tz)


EXACT_SPEND = "Exact spend (USD)"
EXACT_COST = "Exact cost (USD)"
# st.column_config help texts: one rounding rule per money column, the exact amount beside it
SPEND_HELP = "Whole cents from a cent up; below a cent, two significant digits. Exact: the last column."
# counts stay integers in the tables (so they sort as numbers); the pages draw them with thousands separators
COUNT_COLUMNS = (
    "Calls", "Estimated calls", "Input tokens", "Output tokens", "Cache read", "Cache write 5m", "Cache write 1h",
    "Reasoning", "Web searches",
)  # fmt: skip


def kpi_values(current: Totals) -> dict[str, str]:
    return {
        "Total spend": format_total(current.cost_total),
        "Calls": f"{current.calls:,}",
        "Input tokens": f"{current.input_tokens:,}",
        "Output tokens": f"{current.output_tokens:,}",
        "Average cost per call": format_total(current.average_cost)
        if current.calls
        else format_usd(Decimal(0)),
    }


def estimate_notice(current: Totals) -> str | None:
    """The flag for calls priced only by the $1/1M estimate."""
    if not current.estimated_calls:
        return None
    calls = f"{current.estimated_calls:,} call{'s' if current.estimated_calls != 1 else ''}"
    return (
        f"{calls} had no price; shown at the $1/1M estimate ({format_usd(current.estimated_cost)} of the total). "
        "Add a price on the Pricing page (a model's first price covers its past calls), then run "
        "`python -m core reprice --only-estimated`."
    )


def top_caption(rows: list[Row], limit: int, total: Decimal, noun: str, overlap: bool = False) -> str:
    """How many keys there are, and what the ones not shown add up to: ``rows`` is the top ``limit`` + 1."""
    if len(rows) <= limit:
        return f"All {len(rows):,} {noun}."
    shown = rows[:limit]
    if overlap:  # a call counts under each of its tags: the rest is not the total less the rows shown
        return f"The top {limit} of more than {limit} {noun}."
    rest = total - sum((r.totals.cost_total for r in shown), Decimal(0))
    share = f" ({rest / total * 100:.1f}% of the total)" if total else ""
    return f"The top {limit} of more than {limit} {noun}; the rest add up to {format_total(rest)}{share}."


def breakdown_table(rows: list[Row], label: str, top: int | None = None, total: Decimal | None = None) -> pd.DataFrame:
    """Spend per provider / model / user / project, biggest first, with its share of ``total`` (the period's
    spend; by default the sum of ``rows``, right only when they are every key and not a top N)."""
    if total is None:
        total = sum((r.totals.cost_total for r in rows), Decimal(0))
    chosen = rows[:top] if top else rows
    return pd.DataFrame(
        {
            label: [r.key or "" for r in chosen],
            "Spend": [format_total(r.totals.cost_total) for r in chosen],
            "Share": [f"{(r.totals.cost_total / total * 100):.1f}%" if total else "-" for r in chosen],
            "Calls": [r.totals.calls for r in chosen],
            "Input tokens": [r.totals.input_tokens for r in chosen],
            "Output tokens": [r.totals.output_tokens for r in chosen],
            "Estimated calls": [r.totals.estimated_calls for r in chosen],
            EXACT_SPEND: [to_text(r.totals.cost_total) for r in chosen],
        }
    )


def _price_pair(row: LogRow) -> str:
    if row.input_token_cost is None or row.output_token_cost is None:
        return "estimate $1.00 / 1M" if row.matched_by == "estimate" else "from the environment"
    return f"in {format_per_million(row.input_token_cost)}, out {format_per_million(row.output_token_cost)}"


VERIFY = "Verify"  # a link per row: the Calculator recomputes that call (``/calculator?verify=ID``)


def logs_table(rows: list[LogRow], tz: ZoneInfo) -> pd.DataFrame:
    """One page of the usage log: tokens, cost, the price used and how it matched."""
    return pd.DataFrame(
        {
            "Log id": [r.id for r in rows],
            VERIFY: [f"calculator?verify={r.id}" for r in rows],
            "Time": [r.timestamp.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") for r in rows],
            "Provider": [r.provider for r in rows],
            "Model": [r.model for r in rows],
            "User": [r.user or "" for r in rows],
            "Project": [r.project or "" for r in rows],
            "Tags": [", ".join(r.tags) for r in rows],
            "Cost": [format_total(r.cost_total) for r in rows],
            "Matched by": [r.matched_by for r in rows],
            "Input tokens": [r.input_tokens for r in rows],
            "Output tokens": [r.output_tokens for r in rows],
            "Cache read": [r.cached_input_tokens for r in rows],
            "Cache write 5m": [r.cache_write_tokens for r in rows],
            "Cache write 1h": [r.cache_write_1h_tokens for r in rows],
            "Reasoning": [r.reasoning_tokens for r in rows],
            "Web searches": [r.web_search_calls for r in rows],
            "Service tier": [_tier_text(r.service_tier, r.price_service_tier) for r in rows],
            "Long-context tier": [f"above {r.tier:,}" if r.tier is not None else "" for r in rows],
            "Status": [r.status for r in rows],
            "Price used": [_price_pair(r) for r in rows],
            "Request id": [r.request_id or "" for r in rows],
            # nullable integers: an estimated call has no price id (null, not "": a column of one type)
            "Price id": pd.array([r.pricing_id for r in rows], dtype="Int64"),
            EXACT_COST: [to_text(r.cost_total) for r in rows],
        }
    )


def _tier_text(asked: str, used: str | None) -> str:
    """``flex``; ``flex (standard rates)`` when no flex price existed."""
    if used is None or used == asked:
        return asked
    return f"{asked} ({used} rates)"












def prices_used(b: CostBreakdown) -> pd.DataFrame:
    """The unit prices a calculation used (per 1M tokens; per search and per call where said), as in force for
    the call: inside a long-context tier, the tier's."""
    items = [("Input", format_per_million(b.input_token_cost)), ("Output", format_per_million(b.output_token_cost))]
    if b.cached_input_tokens:
        items.append(("Cache read", format_per_million(b.cached_input_token_cost)))
    if b.cache_write_tokens:
        items.append(("Cache write (5 min)", format_per_million(b.cache_write_token_cost)))
    if b.cache_write_1h_tokens:
        items.append(("Cache write (1 h)", format_per_million(b.cache_write_1h_token_cost)))
    if b.reasoning_tokens:
        items.append(("Reasoning", format_per_million(b.reasoning_token_cost)))
    if b.web_search_calls or b.cost_web_search:
        items.append(("Per web search", format_usd(b.cost_per_web_search)))
    if b.cost_per_request:
        items.append(("Per request", format_usd(b.cost_per_request)))
    return pd.DataFrame({"Price": [k for k, _ in items], "Rate": [v for _, v in items]})


def verification_table(v: Verification) -> pd.DataFrame:
    """Stored cost beside the cost under the prices at its time and today's."""
    return pd.DataFrame(
        {
            "": ["Stored", "Prices at its time", "Today's prices"],
            "Cost": [
                format_exact_usd(v.stored_cost_total),
                format_exact_usd(v.at_its_time.cost_total),
                format_exact_usd(v.today.cost_total),
            ],
            "Matched by": [v.stored_matched_by, v.at_its_time.matched_by, v.today.matched_by],
            "Price id": [
                _id(v.stored_pricing_id),
                _id(v.at_its_time.pricing_id),
                _id(v.today.pricing_id),
            ],
        }
    )


def _id(value: int | None) -> str:
    return "-" if value is None else str(value)


def verification_verdict(v: Verification) -> tuple[bool, str]:
    """Plain words: is the stored cost right?"""
    if v.matches:
        text = (
            f"The stored cost {format_exact_usd(v.stored_cost_total)} is right: "
            "it is what the prices in force at the time give."
        )
    else:
        text = (
            f"The stored cost {format_exact_usd(v.stored_cost_total)} differs from the "
            f"{format_exact_usd(v.at_its_time.cost_total)} that the prices in force at the time give"
            + (
                " (it was only estimated; `python -m core reprice --only-estimated` corrects it)."
                if v.stored_matched_by == "estimate"
                else "."
            )
        )
    if v.today.cost_total != v.at_its_time.cost_total:
        text += f" Under today's prices it would cost {format_exact_usd(v.today.cost_total)}."
    return v.matches, text


# Field names the core's messages use, as the pages label them.
FIELD_LABELS = {
    "cached_input_tokens": "Cached input tokens",
    "cache_write_tokens": "Cache write tokens (5 min)",
    "cache_write_1h_tokens": "Cache write tokens (1 h)",
    "reasoning_tokens": "Reasoning tokens",
    "web_search_calls": "Web searches",
    "service_tier": "Service tier",
    "input_tokens": "Input tokens",
    "output_tokens": "Output tokens",
    "provider": "Provider",
    "model": "Model",
}


def user_words(message: str) -> str:
    """A core message with internal field names replaced by the labels the user sees."""
    for name, label in FIELD_LABELS.items():
        message = re.sub(rf"(?<![\w-]){name}(?![\w-])", label, message)
    return message


def parse_lookup(value: str) -> tuple[int | None, str | None]:
    """A log id (digits) or a request id (anything else); both ``None`` when empty."""
    text = (value or "").strip()
    if not text:
        return None, None
    if text.isascii() and text.isdigit():
        return int(text), None
    return None, text
