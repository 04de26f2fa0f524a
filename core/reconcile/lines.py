"""What a provider's report says, per UTC day: cost lines (money) and usage lines (tokens).

Amounts are exact: parsed from the JSON text, kept to 12 decimal places (finer digits rounded
half-even), in USD. Token counts are in Spendboard's meaning: ``input_tokens`` is every input token
(uncached, cache reads and cache writes), as a logged call counts them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from core.money import from_pico, to_pico

PLACES = Decimal("1e-12")
# A day's line above a thousand billion dollars is a misread page, not a bill.
_MAX_ADJUSTED = 14
_PLAIN_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


@dataclass(frozen=True)
class CostLine:
    """One amount the provider billed for a UTC day: a model (or a non-model item) and, where given, a token type."""

    provider: str
    day: date
    model: str
    token_type: str | None
    amount: Decimal  # USD, at most 12 decimal places

    @property
    def key(self) -> tuple[date, str, str]:
        return (self.day, self.model, self.token_type or "")


@dataclass(frozen=True)
class UsageLine:
    """The provider's token counts for a UTC day and model, in Spendboard's meaning.

    ``input_tokens`` counts every input token (cached and cache writes included);
    ``cached_input_tokens`` are cache reads; ``cache_write_tokens`` are 5-minute (or unspecified)
    cache writes and ``cache_write_1h_tokens`` one-hour ones. ``requests`` is None where the
    provider does not count them (Anthropic).
    """

    provider: str
    day: date
    model: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    cache_write_1h_tokens: int
    requests: int | None

    @property
    def key(self) -> tuple[date, str]:
        return (self.day, self.model)


@dataclass(frozen=True)
class Fetched:
    """A provider's report over some days: what a fetch or an import stores.

    ``days`` are the days whose bill is known (a day in it without cost lines was billed 0);
    ``usage_days`` the days whose token counts are known. A fetch knows both for every day of its
    range; an import knows the days its pages cover. Lines with the same key are summed.
    """

    provider: str
    cost_lines: tuple[CostLine, ...]
    usage_lines: tuple[UsageLine, ...]
    days: frozenset[date]
    usage_days: frozenset[date]

    @property
    def billed_total(self) -> Decimal:
        return sum((line.amount for line in self.cost_lines), Decimal(0))


class AmountError(ValueError):
    """An amount that is not an exact, finite decimal of a sane size."""


def exact_amount(value: object, *, cents: bool = False) -> Decimal:
    """A report's amount in USD to 12 decimal places (finer digits rounded half-even).

    Takes a ``Decimal`` (a JSON number parsed with ``parse_float=Decimal``), an ``int`` or decimal
    text (Anthropic's ``"4125.00"``); never a float. ``cents``: the value is in cents (Anthropic),
    divided by 100 exactly before rounding. Negative amounts (credits) are kept.
    """
    if isinstance(value, bool) or isinstance(value, float):
        raise AmountError(f"{value!r} is not an exact decimal (a float or boolean)")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, str):
        if not _PLAIN_NUMBER.fullmatch(value):
            raise AmountError(f"{value!r} is not a decimal number")
        try:
            amount = Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only what Decimal reads
            raise AmountError(f"{value!r} is not a decimal number") from None
    else:
        raise AmountError(f"{value!r} is not a decimal amount")
    if not amount.is_finite():
        raise AmountError(f"{value!r} is not a finite number")
    if cents:
        amount = amount.scaleb(-2)
    if amount != 0 and amount.adjusted() > _MAX_ADJUSTED:
        raise AmountError(f"{value!r} is too large to be a day's bill")
    rounded = amount.quantize(PLACES, rounding=ROUND_HALF_EVEN)
    return from_pico(to_pico(rounded))  # canonical text: 41.25, not 41.250000000000


def day_range(since: date, until: date) -> frozenset[date]:
    """The days from ``since`` up to, not including, ``until``."""
    return frozenset(since + timedelta(days=n) for n in range((until - since).days))


def merge_cost_lines(lines: Iterable[CostLine]) -> tuple[CostLine, ...]:
    """One line per (day, model, token type), amounts summed, in a stable order.

    A provider may give several lines with one key (Anthropic: one per context window or service
    tier); the store keeps one.
    """
    sums: dict[tuple[str, date, str, str | None], Decimal] = defaultdict(Decimal)
    for line in lines:
        sums[(line.provider, line.day, line.model, line.token_type)] += line.amount
    merged = (CostLine(p, d, m, t, amount) for (p, d, m, t), amount in sums.items())
    return tuple(sorted(merged, key=lambda line: (line.provider, *line.key)))


def merge_usage_lines(lines: Iterable[UsageLine]) -> tuple[UsageLine, ...]:
    """One line per (day, model), counts summed (``requests`` stays None when no line counted them)."""
    sums: dict[tuple[str, date, str], list[int | None]] = {}
    for line in lines:
        counts = [
            line.input_tokens,
            line.output_tokens,
            line.cached_input_tokens,
            line.cache_write_tokens,
            line.cache_write_1h_tokens,
            line.requests,
        ]
        key = (line.provider, line.day, line.model)
        if key not in sums:
            sums[key] = counts
            continue
        total = sums[key]
        for i, count in enumerate(counts):
            before = total[i]
            total[i] = count if before is None else before if count is None else before + count
    merged = []
    for (provider, day, model), c in sums.items():
        inputs, outputs, cached, write, write_1h = (int(n or 0) for n in c[:5])
        merged.append(UsageLine(provider, day, model, inputs, outputs, cached, write, write_1h, c[5]))
    return tuple(sorted(merged, key=lambda line: (line.provider, *line.key)))
