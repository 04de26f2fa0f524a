"""Money: parsing, the exact storage unit, and formatting.

Every amount is a ``Decimal`` made from text (``Decimal(str(x))``) so a float
never leaks in. Amounts are stored as whole pico-dollars (1e-12 USD): per-token
prices down to 1e-12 USD and ``tokens * price`` are then exact integers.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

PICO = 10**12
PER_MILLION = Decimal(1_000_000)

# A per-token price above this is refused as absurd: $10,000 per 1M tokens.
MAX_TOKEN_PRICE = Decimal("0.01")
# A price per request above this is refused as absurd.
MAX_REQUEST_PRICE = Decimal("1000")


class MoneyError(ValueError):
    """A value that is not an acceptable amount; the message names field and value."""


def parse_amount(value: object, field: str, *, maximum: Decimal | None = None) -> Decimal:
    """Parse a non-negative, finite amount with at most 12 decimal places.

    Accepts ``Decimal``, ``int`` or text; refuses floats, booleans, NaN,
    infinities, negatives and values above ``maximum``.
    """
    if isinstance(value, bool) or isinstance(value, float):
        raise MoneyError(f"{field}: {value!r} is not a decimal amount (give it as text)")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise MoneyError(f"{field}: empty value is not an amount")
        if "_" in text:  # Decimal("0.000_001") parses; a price with underscores is a typo
            raise MoneyError(f"{field}: {value!r} is not a number")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise MoneyError(f"{field}: {value!r} is not a number") from None
    else:
        raise MoneyError(f"{field}: {value!r} is not a decimal amount")
    if not amount.is_finite():
        raise MoneyError(f"{field}: {value!r} is not a finite number")
    if amount < 0:
        raise MoneyError(f"{field}: {value!r} is negative")
    if maximum is not None and amount > maximum:
        raise MoneyError(f"{field}: {value!r} is above the sane maximum of {maximum}")
    if amount.adjusted() >= 15:
        raise MoneyError(f"{field}: {value!r} is too large")
    if amount != 0 and amount.normalize().as_tuple().exponent < -12:  # type: ignore[operator]
        raise MoneyError(f"{field}: {value!r} has more than 12 decimal places")
    return amount


def to_pico(amount: Decimal) -> int:
    """Exact conversion to whole pico-dollars; refuses anything finer than 1e-12."""
    scaled = amount.scaleb(12)
    integral = int(scaled)
    if scaled != integral:
        raise MoneyError(f"amount {amount} has more than 12 decimal places")
    return integral


_ZERO = Decimal(0)


def from_pico(pico: int) -> Decimal:
    """Whole pico-dollars back to a normalised ``Decimal`` (no trailing zeros).

    On the pricing hot path: a whole number of dollars (zero included) is built from the
    integer; anything else has a fractional part, so ``normalize`` cannot produce an exponent
    above zero and needs no quantize.
    """
    if pico % PICO == 0:
        return Decimal(pico // PICO) if pico else _ZERO
    return Decimal(pico).scaleb(-12).normalize()


def per_million(per_token: Decimal) -> Decimal:
    return _normalize(per_token * PER_MILLION)


def per_token(per_1m: Decimal) -> Decimal:
    return _normalize(per_1m / PER_MILLION)


def _normalize(amount: Decimal) -> Decimal:
    """Drop trailing zeros without switching to scientific notation."""
    if amount == 0:
        return Decimal(0)
    normalized = amount.normalize()
    if normalized.as_tuple().exponent > 0:  # type: ignore[operator]
        normalized = normalized.quantize(Decimal(1))
    return normalized


def to_text(amount: Decimal) -> str:
    """Plain decimal text for JSON and CSV: ``0.0025``, never ``2.5E-3``."""
    return format(_normalize(amount), "f")


def format_usd(amount: Decimal) -> str:
    """``$0.0025``, ``$0.000003``, ``$12.50``, ``$1,234.57``: tiny amounts stay visible.

    At or above one dollar, cents are shown (rounded half-even); below, every
    significant digit is shown, with at least two decimals.
    """
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount >= 1:
        return f"{sign}${amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN):,.2f}"
    text = to_text(amount)
    if "." not in text:
        text += ".00"
    elif len(text.split(".")[1]) < 2:
        text += "0"
    return f"{sign}${text}"


def format_exact_usd(amount: Decimal) -> str:
    """Every digit of an amount: ``$1,000.0015``, ``$0.0025``, ``$12.50``.

    For formulas and verification, where each line must add up to the next and two different
    costs must never print alike; at least two decimals, thousands separated.
    """
    sign = "-" if amount < 0 else ""
    whole, _, fraction = to_text(abs(amount)).partition(".")
    return f"{sign}${int(whole):,}.{fraction.ljust(2, '0')}"


CENT = Decimal("0.01")


def format_total(amount: Decimal) -> str:
    """A total as a table column or a KPI shows it: one rule for every row of the column.

    From a cent up, whole cents (``$17.39``, ``$0.43``); below a cent, two significant
    digits so a tiny spend stays visible (``$0.0025``, ``$0.000043``); zero is ``$0.00``.
    Pages show the exact amount (:func:`to_text`) beside it or on hover.
    """
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount == 0:
        return "$0.00"
    if amount >= CENT:
        return f"{sign}${amount.quantize(CENT, rounding=ROUND_HALF_EVEN):,.2f}"
    rounded = amount.quantize(Decimal(1).scaleb(amount.adjusted() - 1), rounding=ROUND_HALF_EVEN)
    return f"{sign}${to_text(rounded)}"


def format_per_million(per_token_price: Decimal) -> str:
    """A unit price as people read it: ``$3.00 / 1M tokens``."""
    return f"{format_usd(per_million(per_token_price))} / 1M tokens"
