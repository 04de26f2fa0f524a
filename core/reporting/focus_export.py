"""The FOCUS export's groups, summed in SQL from the usage log (DESIGN.md, "Figures for other tools").

A FOCUS row needs the day, provider, model, service tier, project, token type and a single unit
price. The roll-ups keep neither the project with the model nor the price, so the log is read:
one ``GROUP BY`` over the period's calls (through ``ix_usage_time``) per UTC day, provider, model,
requested tier, project and the price that priced them (its version id and long-context tier, or
for calls priced without a stored version, by ``env`` or ``estimate``, the rate itself). Each
group's token counts are split by type and priced at the version's rates (fallbacks resolved by
``core.pricing.rates``); the split is checked against the group's stored cost lines, so every
row's cost is a part of what was recorded and the rows add up exactly to ``report``'s total.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Engine, and_, case, cast, func, null, select, type_coerce

from core.money import from_pico, to_pico
from core.pricing.rates import Price, Rates
from core.reporting.focus import FocusError, FocusGroup
from core.storage.columns import Money
from core.storage.tables import PriceVersion, UsageRecord

DAY_SECONDS = 86400
COUNTS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "web_search_calls",
)
COSTS = ("cost_input", "cost_output", "cost_web_search", "cost_request")


def _day_epoch(dialect: str) -> Any:
    """The call's UTC day as epoch seconds, in the database's own SQL."""
    logs = UsageRecord.__table__
    if dialect == "sqlite":
        epoch: Any = cast(func.strftime("%s", logs.c.timestamp), BigInteger)
    else:
        epoch = cast(func.floor(func.extract("epoch", logs.c.timestamp)), BigInteger)
    return epoch - epoch % DAY_SECONDS


def _rates(price: Price, tier: int | None) -> Rates:
    """The rates of a version as in force for calls that used its long-context tier ``tier`` (or the base)."""
    if tier is None:
        return price.rates_for(0)[1]
    found, rates = price.rates_for(tier + 1)  # the tier applies to calls strictly above its threshold
    if found != tier:
        raise FocusError(f"tier: {tier} is not a long-context tier of price version {price.pricing_id}")
    return rates


@dataclass
class _Sums:
    calls: int
    counts: dict[str, int]
    costs: dict[str, int]  # whole pico-dollars


def _split(rates: Rates, sums: _Sums) -> list[tuple[str, int, int]]:
    """(token type, quantity, unit price in pico-dollars) of a group; each token in exactly one."""
    c = sums.counts
    uncached = c["input_tokens"] - c["cached_input_tokens"] - c["cache_write_tokens"] - c["cache_write_1h_tokens"]
    parts = [
        ("input", uncached, rates.input),
        ("cached_input", c["cached_input_tokens"], rates.cached),
        ("cache_write", c["cache_write_tokens"], rates.cache_write),
        ("cache_write_1h", c["cache_write_1h_tokens"], rates.cache_write_1h),
        ("output", c["output_tokens"] - c["reasoning_tokens"], rates.output),
        ("reasoning", c["reasoning_tokens"], rates.reasoning),
        ("web_search", c["web_search_calls"], rates.web_search),
        ("request", sums.calls if rates.request else 0, rates.request),
    ]
    return [part for part in parts if part[1]]


def _matches(parts: list[tuple[str, int, int]], sums: _Sums) -> bool:
    """The split prices to the stored cost lines exactly."""
    line = {"input": 0, "output": 0, "web_search": 0, "request": 0}
    for kind, quantity, rate in parts:
        bucket = "input" if kind in ("input", "cached_input", "cache_write", "cache_write_1h") else kind
        bucket = "output" if kind in ("output", "reasoning") else bucket
        line[bucket] += quantity * rate
    stored = sums.costs
    return (line["input"], line["output"], line["web_search"], line["request"]) == (
        stored["cost_input"],
        stored["cost_output"],
        stored["cost_web_search"],
        stored["cost_request"],
    )


def _flat_rates(sums: _Sums) -> Rates | None:
    """One input and one output rate (``env`` and ``estimate`` prices have no others), if the sums divide."""
    c, costs = sums.counts, sums.costs
    rate_in, left_in = divmod(costs["cost_input"], c["input_tokens"]) if c["input_tokens"] else (0, costs["cost_input"])
    rate_out, left_out = (
        divmod(costs["cost_output"], c["output_tokens"]) if c["output_tokens"] else (0, costs["cost_output"])
    )
    if left_in or left_out or costs["cost_web_search"] or costs["cost_request"]:
        return None
    return Rates(rate_in, rate_out, rate_in, rate_in, rate_in, rate_out, 0, 0)


def _rate(cost: Any, tokens: Any, unversioned: Any) -> Any:
    """cost / tokens in the database's own arithmetic (SQLite: whole pico-dollars, integer division, exact;
    PostgreSQL: numeric), only as a grouping key; NULL for versioned calls and calls without such tokens."""
    return case((and_(unversioned, tokens > 0), cost.op("/")(tokens)), else_=null())


def utc_range(since: date | None, until: date | None, engine: Engine) -> tuple[datetime, datetime] | None:
    """[since 00:00 UTC, until + 1 day 00:00 UTC); open ends cover every recorded call; None when there are none."""
    logs = UsageRecord.__table__
    if since is None or until is None:
        with engine.connect() as conn:
            first, last = conn.execute(select(func.min(logs.c.timestamp), func.max(logs.c.timestamp))).one()
        if first is None:
            return None
        first_day, last_day = first.astimezone(UTC).date(), last.astimezone(UTC).date()
        since = since or first_day
        until = until or last_day
    start = datetime(since.year, since.month, since.day, tzinfo=UTC)
    end = datetime(until.year, until.month, until.day, tzinfo=UTC) + timedelta(days=1)
    return start, end


def focus_groups(engine: Engine, since: date | None = None, until: date | None = None) -> Iterator[FocusGroup]:
    """The FOCUS groups of the UTC days ``since``..``until`` (both included), in day, provider, model order.

    Streams: the database returns one row per group, read in batches.
    """
    span = utc_range(since, until, engine)
    if span is None:
        return
    start, end = span
    logs = UsageRecord.__table__
    day = _day_epoch(engine.dialect.name).label("day")
    unversioned = logs.c.pricing_id.is_(None)
    keys = [
        day,
        logs.c.provider,
        logs.c.model,
        logs.c.service_tier,
        logs.c.project,
        logs.c.pricing_id,
        logs.c.tier,
        logs.c.matched_by,
        # calls priced without a stored version (``env``, ``estimate``): the rates themselves, as
        # cost / tokens (exact: a cost is its tokens times one rate), so an environment price
        # changed within a day makes a group per rate, never an average that was never charged
        _rate(logs.c.cost_input, logs.c.input_tokens, unversioned).label("input_rate"),
        _rate(logs.c.cost_output, logs.c.output_tokens, unversioned).label("output_rate"),
    ]
    query = (
        select(
            *keys,
            func.count().label("calls"),
            *[func.sum(logs.c[name]).label(name) for name in COUNTS],
            *[type_coerce(func.sum(logs.c[name]), Money()).label(name) for name in COSTS],
        )
        .where(logs.c.timestamp >= start, logs.c.timestamp < end)
        .group_by(*keys)
        .order_by(day, logs.c.provider, logs.c.model, logs.c.service_tier, logs.c.project, logs.c.pricing_id)
    )
    prices: dict[int, Price] = {}
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=5000).execute(query)
        for row in result:
            sums = _Sums(
                int(row.calls),
                {name: int(getattr(row, name) or 0) for name in COUNTS},
                {name: to_pico(getattr(row, name) or Decimal(0)) for name in COSTS},
            )
            priced: list[tuple[Rates, _Sums]]
            if row.pricing_id is None:
                flat = _flat_rates(sums)  # one rate pair per group: the rates are part of its key
                if flat is None:
                    raise FocusError(f"{row.provider}/{row.model}: calls priced by {row.matched_by} mix rates")
                priced = [(flat, sums)]
            else:
                price = prices.get(row.pricing_id)
                if price is None:
                    with engine.connect() as lookup:
                        version = lookup.execute(select(PriceVersion).where(PriceVersion.id == row.pricing_id)).one()
                    price = prices[row.pricing_id] = Price.from_row(version)  # type: ignore[arg-type]
                priced = [(_rates(price, row.tier), sums)]
            moment = datetime.fromtimestamp(int(row.day), UTC).date()
            for rates, part_sums in priced:
                parts = _split(rates, part_sums)
                if not _matches(parts, part_sums):
                    raise FocusError(
                        f"{row.provider}/{row.model} on {moment}: the stored costs are not the rates × tokens"
                    )
                yield from _groups(row, moment, parts)


def _groups(row: Any, moment: date, parts: list[tuple[str, int, int]]) -> Iterator[FocusGroup]:
    """One FocusGroup per token type of a summed group."""
    for kind, quantity, rate in parts:
        yield FocusGroup(
            day=moment,
            provider=row.provider,
            model=row.model,
            service_tier=row.service_tier or "standard",
            project=row.project,
            tags=(),
            token_type=kind,
            quantity=quantity,
            unit_price=from_pico(rate),
            cost=from_pico(quantity * rate),
        )
