"""A customer's markup: a percent added to cost (negative for a discount), kept as an exact ``Decimal``."""

from __future__ import annotations

import re
from decimal import Decimal

MAX_PLACES = 6
# Above -100: a discount of 100% or more would bill nothing or less than nothing.
MINIMUM_EXCLUSIVE = Decimal(-100)
# 1,000,000% bills 10,001 times the cost: anything above is a typo, not a price.
MAXIMUM = Decimal(1_000_000)

_PERCENT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)%?")


class MarkupError(ValueError):
    """A markup that is not a usable percent; the message names the field and the value."""


def parse_markup(text: object, *, field: str = "--markup") -> Decimal:
    """``"20"`` -> ``Decimal("20")``, ``"-12.5%"`` -> ``Decimal("-12.5")``.

    Plain decimal notation only (no exponent, no underscores), an optional trailing ``%``,
    more than -100, at most 1,000,000, at most 6 decimal places. A ``Decimal`` or ``int``
    is checked the same way; a float is refused (it is not exact).
    """
    if isinstance(text, bool) or isinstance(text, float):
        raise MarkupError(f"{field}: {text!r} is not an exact percent (give it as text, e.g. 20 or -10)")
    if isinstance(text, Decimal | int):
        if isinstance(text, Decimal) and not text.is_finite():
            raise MarkupError(f"{field}: {text!r} is not a finite number")
        value = Decimal(text)
    elif isinstance(text, str):
        stripped = text.strip()
        if not _PERCENT.fullmatch(stripped):
            raise MarkupError(f"{field}: {text!r} is not a number (a percent such as 20, 12.5 or -10)")
        value = Decimal(stripped.removesuffix("%"))
    else:
        raise MarkupError(f"{field}: {text!r} is not a number (a percent such as 20, 12.5 or -10)")
    if value <= MINIMUM_EXCLUSIVE:
        raise MarkupError(f"{field}: {text!r} must be more than -100 (a discount of 100% or more bills nothing)")
    if value > MAXIMUM:
        raise MarkupError(f"{field}: {text!r} is above the sane maximum of {MAXIMUM:,}%")
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_PLACES:
        raise MarkupError(f"{field}: {text!r} has more than {MAX_PLACES} decimal places")
    return plain(value)


def plain(value: Decimal) -> Decimal:
    """Without trailing zeros or an exponent: ``20.0`` -> ``20``, ``-0`` -> ``0``, ``12.50`` -> ``12.5``."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1)) + 0  # + 0 turns -0 into 0
    return value.normalize()
