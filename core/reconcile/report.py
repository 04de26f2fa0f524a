"""``reconcile report``: the provider's bill against the computed one, per UTC day (and model), with a
status and the likely cause of each gap in words.

The computed side is read from the day buckets of the roll-ups (``usage_rollups``, grain one UTC
day), never from the calls: a year of days at millions of calls is a few thousand rows. Both sides
are keyed by the reconciled provider (calls logged under another name of it included) and, with
``by="model"``, by the model of the price version that prices the name (a dated id and its alias
meet in one row).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from core.pricing.lookup import PriceIndex
from core.pricing.providers import equivalent_providers
from core.pricing.rates import Price
from core.reconcile import anthropic, openai
from core.reconcile.store import billed
from core.recording.rollups import ALL_MODELS, DAY
from core.storage.tables import PriceVersion, UsageRollup

PROVIDERS = (openai.PROVIDER, anthropic.PROVIDER)  # the providers whose own bill can be had
DEFAULT_TOLERANCE = Decimal(1)  # percent of the billed amount
CENT = Decimal("0.01")
STATUSES = ("match", "under", "over", "not_billed", "no_report")
DRIFT = frozenset({"under", "over", "not_billed"})
KEEPS_ITS_NAME = frozenset({"default", "env", "estimate"})  # priced without naming a model: the name stays


@dataclass(frozen=True)
class ReconcileRow:
    """One provider and UTC day (and model): billed against computed, tokens side by side."""

    provider: str
    day: date
    model: str | None  # with by="model"
    billed: Decimal | None  # None: the day's bill was never fetched
    computed: Decimal
    calls: int
    billed_input_tokens: int | None  # None: the day's usage was never fetched
    billed_output_tokens: int | None
    logged_input_tokens: int
    logged_output_tokens: int
    status: str
    cause: str

    @property
    def delta(self) -> Decimal | None:
        return None if self.billed is None else self.computed - self.billed

    @property
    def delta_pct(self) -> Decimal | None:
        return percent(self.delta, self.billed)

    @property
    def drifts(self) -> bool:
        return self.status in DRIFT


@dataclass(frozen=True)
class Totals:
    billed: Decimal = Decimal(0)
    computed: Decimal = Decimal(0)

    @property
    def delta(self) -> Decimal:
        return self.computed - self.billed

    @property
    def delta_pct(self) -> Decimal | None:
        return percent(self.delta, self.billed)


@dataclass(frozen=True)
class Reconciliation:
    rows: list[ReconcileRow]
    totals: Totals
    tolerance: Decimal
    by: str
    fetched_days: dict[str, list[date]] = field(default_factory=dict)  # per provider, the days whose bill is known

    @property
    def drifts(self) -> bool:
        return any(row.drifts for row in self.rows)


def percent(delta: Decimal | None, base: Decimal | None) -> Decimal | None:
    """delta / base x 100 to two decimals, half-even; None when the base is 0 or unknown."""
    if delta is None or base is None or base == 0:
        return None
    return (delta * 100 / base).quantize(CENT, rounding=ROUND_HALF_EVEN)


def status_of(billed_amount: Decimal | None, computed: Decimal, calls: int, tolerance: Decimal) -> str:
    """The contract's status: no bill -> no_report; billed 0 with calls -> not_billed; within the
    tolerance (or under a cent) -> match; else under or over."""
    if billed_amount is None:
        return "no_report"
    if billed_amount == 0 and calls > 0:
        return "not_billed"
    delta = computed - billed_amount
    if abs(delta) < CENT or abs(delta) <= abs(billed_amount) * tolerance / 100:
        return "match"
    return "under" if delta < 0 else "over"


def _tokens_agree(billed_count: int, logged: int, tolerance: Decimal) -> bool:
    allowed = Decimal(billed_count) * max(tolerance, DEFAULT_TOLERANCE) / 100
    return abs(logged - billed_count) <= allowed


def likely_cause(
    status: str,
    billed_in: int | None,
    billed_out: int | None,
    logged_in: int,
    logged_out: int,
    calls: int,
    tolerance: Decimal = DEFAULT_TOLERANCE,
) -> str:
    """What most likely explains the row, in words: prices when tokens agree and money does not,
    calls never logged when tokens are short, calls logged twice when there are more."""
    if status == "match":
        return "agrees with the bill"
    if status == "no_report":
        return "no bill fetched for this day yet: run reconcile fetch (or import) for it"
    if status == "not_billed":
        return (
            "calls logged that the provider did not bill: sent with another account or organization's key, "
            "logged under the wrong provider, or free"
        )
    money = "computed below the bill" if status == "under" else "computed above the bill"
    if billed_in is None or billed_out is None:
        return f"{money}; usage not fetched, so prices and missing calls cannot be told apart"
    if billed_in == 0 and billed_out == 0 and status == "under":
        if calls == 0:
            return f"{money}: a charge without tokens (web search, tools or another fee) and no logged calls"
        return f"{money}: the provider billed no tokens here; a fee not per token, or a model name that differs"
    agree = _tokens_agree(billed_in, logged_in, tolerance) and _tokens_agree(billed_out, logged_out, tolerance)
    if agree:
        return (
            f"{money} though the tokens agree: prices differ (a rate, tier, cache or long-context price "
            "in the price table for this model and day)"
        )
    short = logged_in < billed_in or logged_out < billed_out
    more = logged_in > billed_in or logged_out > billed_out
    if short and not more:
        return f"{money}: fewer tokens logged than billed: calls that were never logged (another app, key, or retries)"
    if more and not short:
        return f"{money}: more tokens logged than billed: calls logged twice, or under the wrong provider or day"
    return f"{money}: token counts differ both ways: calls logged under another model name, or missing and extra calls"


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


class _PriceKeys:
    """The model a name meets under: the price version's model when exact, short or alias prices it,
    else the name itself. Looked up once per name and stretch of time between price changes."""

    def __init__(self, index: PriceIndex) -> None:
        self._index = index
        self._changes = index.change_times()
        self._memo: dict[tuple[str, str, int], str] = {}

    def __call__(self, provider: str, model: str, day: date) -> str:
        at = day_start(day) + timedelta(hours=12)  # the day's middle: a version added that morning prices it
        key = (provider, model, bisect_right(self._changes, at.timestamp()))
        found = self._memo.get(key)
        if found is None:
            match = self._index.lookup(provider, model, at)
            found = model if match.matched_by in KEEPS_ITS_NAME else match.price.model_name
            self._memo[key] = found
        return found


def price_index(engine: Engine, providers: Iterable[str]) -> PriceIndex:
    """The price versions of these providers (every name of each) only: the lookup of their model names
    needs no other, and reading the whole table (thousands of versions) would cost more than the report."""
    names = sorted({name for provider in providers for name in equivalent_providers(provider)})
    with Session(engine) as session:
        rows = session.scalars(select(PriceVersion).where(func.lower(PriceVersion.provider).in_(names)))
        return PriceIndex([Price.from_row(row) for row in rows])


@dataclass
class _Cell:
    billed: Decimal = Decimal(0)
    billed_in: int = 0
    billed_out: int = 0
    computed: Decimal = Decimal(0)
    calls: int = 0
    logged_in: int = 0
    logged_out: int = 0
    has_bill_line: bool = False


def _epoch(day: date) -> int:
    return int(day_start(day).timestamp())


def computed_by_day(
    engine: Engine, providers: Iterable[str], since: date | None, until: date | None, by_model: bool
) -> list[tuple[str, date, str, Decimal, int, int, int]]:
    """(reconciled provider, UTC day, model or '', cost, calls, input tokens, output tokens) from the day
    buckets of the roll-ups, each logged provider name mapped to the provider it is a name of."""
    names: dict[str, str] = {}
    for provider in providers:
        for name in equivalent_providers(provider):
            names.setdefault(name, provider)
    table = UsageRollup
    conditions = [table.grain == DAY, table.provider.in_(sorted(names))]
    conditions.append(table.model != ALL_MODELS if by_model else table.model == ALL_MODELS)
    if since is not None:
        conditions.append(table.bucket_start >= _epoch(since))
    if until is not None:
        conditions.append(table.bucket_start < _epoch(until + timedelta(days=1)))
    query = select(
        table.bucket_start,
        table.provider,
        table.model,
        table.cost_total,
        table.calls,
        table.input_tokens,
        table.output_tokens,
    ).where(*conditions)
    out = []
    with engine.connect() as conn:
        for r in conn.execute(query):
            day = datetime.fromtimestamp(r.bucket_start, UTC).date()
            out.append(
                (
                    names[r.provider],
                    day,
                    r.model,
                    Decimal(r.cost_total),
                    int(r.calls),
                    int(r.input_tokens),
                    int(r.output_tokens),
                )
            )
    return out


def reconcile(
    engine: Engine,
    *,
    provider: str | None = None,
    since: date | None = None,
    until: date | None = None,
    by: str = "day",
    tolerance: Decimal = DEFAULT_TOLERANCE,
) -> Reconciliation:
    """The report: per provider and UTC day (and model, ``by="model"``), from ``since`` to ``until``
    (both included; open ends: every stored bill and call)."""
    if by not in ("day", "model"):
        raise ValueError(f"by: {by!r} is not day or model")
    if provider is not None and provider not in PROVIDERS:
        raise ValueError(f"provider: {provider!r} is not one of {', '.join(PROVIDERS)}")
    if tolerance < 0:
        raise ValueError(f"tolerance: {tolerance} is negative")
    providers = [provider] if provider else list(PROVIDERS)
    by_model = by == "model"
    days, amounts, tokens = billed(engine, providers, since, until)
    computed = computed_by_day(engine, providers, since, until, by_model)
    keys = _PriceKeys(price_index(engine, providers)) if by_model else None

    def model_key(p: str, model: str, day: date) -> str:
        return keys(p, model, day) if keys is not None else ""

    cells: dict[tuple[str, date, str], _Cell] = defaultdict(_Cell)
    for a in amounts:
        cell = cells[(a.provider, a.day, model_key(a.provider, a.model, a.day))]
        cell.billed += a.amount
        cell.has_bill_line = True
    for t in tokens:
        cell = cells[(t.provider, t.day, model_key(t.provider, t.model, t.day))]
        cell.billed_in += t.input_tokens
        cell.billed_out += t.output_tokens
    for p, day, model, cost, calls, logged_in, logged_out in computed:
        cell = cells[(p, day, model_key(p, model, day))]
        cell.computed += cost
        cell.calls += calls
        cell.logged_in += logged_in
        cell.logged_out += logged_out
    cost_known = {(d.provider, d.day) for d in days if d.cost_known}
    usage_known = {(d.provider, d.day) for d in days if d.usage_known}

    rows = []
    for (p, day, model), cell in sorted(cells.items()):
        has_bill = (p, day) in cost_known
        if cell.calls == 0 and (not has_bill or cell.billed == 0):
            continue  # neither a bill nor calls
        billed_amount = cell.billed if has_bill else None
        usage = (p, day) in usage_known
        billed_in = cell.billed_in if usage else None
        billed_out = cell.billed_out if usage else None
        status = status_of(billed_amount, cell.computed, cell.calls, tolerance)
        cause = likely_cause(status, billed_in, billed_out, cell.logged_in, cell.logged_out, cell.calls, tolerance)
        rows.append(
            ReconcileRow(
                provider=p,
                day=day,
                model=model if by_model else None,
                billed=billed_amount,
                computed=cell.computed,
                calls=cell.calls,
                billed_input_tokens=billed_in,
                billed_output_tokens=billed_out,
                logged_input_tokens=cell.logged_in,
                logged_output_tokens=cell.logged_out,
                status=status,
                cause=cause,
            )
        )
    with_bill = [row for row in rows if row.billed is not None]
    totals = Totals(
        billed=sum((row.billed for row in with_bill if row.billed is not None), Decimal(0)),
        computed=sum((row.computed for row in with_bill), Decimal(0)),
    )
    fetched: dict[str, list[date]] = defaultdict(list)
    for d in days:
        if d.cost_known:
            fetched[d.provider].append(d.day)
    return Reconciliation(rows, totals, tolerance, by, dict(fetched))


def coverage(rows: Iterable[ReconcileRow]) -> Decimal | None:
    """The share (0..1) of the billed amount that logged calls explain: per row, the computed cost up to
    the bill, summed, over the bill. Rows by model give the honest figure (one model's surplus does not
    hide another's gap). None when nothing positive was billed."""
    explained = Decimal(0)
    total = Decimal(0)
    for row in rows:
        if row.billed is None or row.billed <= 0:
            continue
        total += row.billed
        explained += min(max(row.computed, Decimal(0)), row.billed)
    return None if total == 0 else explained / total


def out_of_tolerance_first(rows: Iterable[ReconcileRow]) -> list[ReconcileRow]:
    """Drifting rows first (largest gap first), then the rest by day."""
    ordered = list(rows)

    def key(row: ReconcileRow) -> tuple:
        gap = abs(row.delta) if row.delta is not None else Decimal(0)
        return (0 if row.drifts else 1, -gap if row.drifts else 0, row.day, row.provider, row.model or "")

    return sorted(ordered, key=key)
