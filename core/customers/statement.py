"""A customer's monthly statement: exact billable amounts, one rounding, and its JSON, CSV and PDF.

Contract (DESIGN.md, "Tags and statements"): a line's ``billable`` is ``cost × (1 + markup / 100)``,
exact; ``totals.cost`` is the exact sum; ``totals.billable`` is the sum of the lines' billables
rounded half-even to the cent, the only rounding; ``totals.margin`` is ``totals.billable −
totals.cost``. Issue 23's example: cost 12.3400 at markup 20 bills 14.808, due 14.81, margin 2.47.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
    localcontext,
)
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from core.customers.markup import parse_markup
from core.times import TimeError, local_midnight, next_period, zone

CENT = Decimal("0.01")
# Costs and line billables are shown with at least four decimals ("12.3400", as issue 23's
# example), and with every further digit they have: nothing below the cent is hidden.
COST_PLACES = 4
CSV_HEADER = ("provider", "model", "calls", "input_tokens", "output_tokens", "cost", "billable")

# Exact arithmetic: wide enough for any cost × factor, and any rounding raises instead of passing silently.
_EXACT = Context(prec=120, traps=[Inexact, Rounded, InvalidOperation, Overflow, DivisionByZero])
_WIDE = Context(prec=120, rounding=ROUND_HALF_EVEN)

_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")


class StatementError(ValueError):
    """A statement that cannot be built from what it was given; the message names the field and value."""


@dataclass(frozen=True)
class StatementLine:
    """One provider and model in the month: what the customer's calls used and cost."""

    provider: str
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost: Decimal


@dataclass(frozen=True)
class BilledLine(StatementLine):
    """A line with its exact billable amount, ``cost × (1 + markup / 100)``, never rounded."""

    billable: Decimal


@dataclass(frozen=True)
class StatementTotals:
    calls: int
    input_tokens: int
    output_tokens: int
    cost: Decimal  # the exact sum of the lines' costs
    billable_exact: Decimal  # the exact sum of the lines' billables, before the one rounding
    billable: Decimal  # billable_exact rounded half-even to the cent: what the customer owes
    margin: Decimal  # billable − cost, exact

    @property
    def rounding(self) -> Decimal:
        """What the rounding to the cent added (positive) or took away (negative)."""
        return self.billable - self.billable_exact


@dataclass(frozen=True)
class Statement:
    customer: str
    month: str  # YYYY-MM, in the zone ``tz``
    tz: str
    markup: Decimal  # percent; negative for a discount
    lines: tuple[BilledLine, ...]
    totals: StatementTotals


# ---------------------------------------------------------------------------------------- the month


def parse_month(month: object, *, field: str = "month") -> date:
    """``"2026-11"`` -> ``date(2026, 11, 1)``; exactly ``YYYY-MM``, from 2000-01 on."""
    match = _MONTH.fullmatch(month) if isinstance(month, str) else None
    if match is None or not 1 <= int(match[2]) <= 12:
        raise TimeError(f"{field}: {month!r} is not a month (YYYY-MM, e.g. 2026-11)")
    year = int(match[1])
    if year < 2000:
        raise TimeError(f"{field}: {month!r} is before 2000-01")
    if year > 9998:
        raise TimeError(f"{field}: {month!r} is too far in the future")
    return date(year, int(match[2]), 1)


def month_bounds(month: str, tz: str | None = "UTC") -> tuple[datetime, datetime]:
    """The month in zone ``tz`` as a half-open UTC range ``[start, end)``.

    ``month_bounds("2026-11", "Europe/Paris")`` is 2026-10-31T23:00Z to 2026-11-30T23:00Z.
    A bad month or zone raises ``TimeError`` (a ``ValueError``) naming ``month`` or ``tz``.
    """
    first = parse_month(month)
    local = zone(tz, "tz")
    return local_midnight(first, local), local_midnight(next_period(first, "month"), local)


# ---------------------------------------------------------------------------------------- building


def _check_line(line: object, index: int) -> StatementLine:
    where = f"lines[{index}]"
    if not isinstance(line, StatementLine):
        raise StatementError(f"{where}: not a StatementLine: {line!r}")
    for name in ("provider", "model"):
        value = getattr(line, name)
        if not isinstance(value, str) or not value:
            raise StatementError(f"{where}.{name}: not a non-empty string: {value!r}")
    for name in ("calls", "input_tokens", "output_tokens"):
        value = getattr(line, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise StatementError(f"{where}.{name}: not a whole number ≥ 0: {value!r}")
    if not isinstance(line.cost, Decimal) or not line.cost.is_finite() or line.cost < 0:
        raise StatementError(f"{where}.cost: not a finite Decimal ≥ 0: {line.cost!r}")
    return line


def build_statement(
    customer: str, month: str, tz: str | None, markup: Decimal | str | int, lines: Iterable[StatementLine]
) -> Statement:
    """A statement for one customer and month from its lines (one per provider and model).

    Lines are sorted by provider and model; a provider and model given twice is refused.
    Every amount is exact except ``totals.billable``, rounded half-even to the cent.
    Raises ``ValueError`` (``StatementError``, ``TimeError``, ``MarkupError``) naming the field.
    """
    if not isinstance(customer, str) or not customer.strip():
        raise StatementError(f"customer: not a customer name: {customer!r}")
    parse_month(month)
    zone_name = (tz or "UTC").strip() or "UTC"
    zone(zone_name, "tz")
    percent = parse_markup(markup, field="markup")
    checked = [_check_line(line, index) for index, line in enumerate(lines)]
    keys: set[tuple[str, str]] = set()
    for line in checked:
        if (line.provider, line.model) in keys:
            raise StatementError(f"lines: {line.provider}/{line.model} appears twice")
        keys.add((line.provider, line.model))
    checked.sort(key=lambda line: (line.provider, line.model))

    with localcontext(_EXACT):
        factor = 1 + percent / 100
        billed = tuple(
            BilledLine(
                provider=line.provider,
                model=line.model,
                calls=line.calls,
                input_tokens=line.input_tokens,
                output_tokens=line.output_tokens,
                cost=line.cost,
                billable=line.cost * factor,
            )
            for line in checked
        )
        cost = sum((line.cost for line in billed), Decimal(0))
        billable_exact = sum((line.billable for line in billed), Decimal(0))
        billable = billable_exact.quantize(CENT, rounding=ROUND_HALF_EVEN, context=_WIDE)
        margin = billable - cost
    totals = StatementTotals(
        calls=sum(line.calls for line in billed),
        input_tokens=sum(line.input_tokens for line in billed),
        output_tokens=sum(line.output_tokens for line in billed),
        cost=cost,
        billable_exact=billable_exact,
        billable=billable,
        margin=margin,
    )
    return Statement(customer=customer, month=month, tz=zone_name, markup=percent, lines=billed, totals=totals)


# ---------------------------------------------------------------------------------------- text


def decimal_text(amount: Decimal, min_places: int = 0, *, grouped: bool = False) -> str:
    """Exact decimal text, never an exponent, with at least ``min_places`` decimals: ``12.3400``, ``14.808``.

    ``grouped`` adds thousands separators (``1,234.5000``) for the PDF.
    """
    if amount == 0:
        amount = Decimal(0)  # no "-0.00"
    exponent = amount.normalize(context=_WIDE).as_tuple().exponent
    places = max(min_places, -exponent if isinstance(exponent, int) and exponent < 0 else 0)
    return format(amount, f"{',' if grouped else ''}.{places}f")


def _cost(amount: Decimal, *, grouped: bool = False) -> str:
    return decimal_text(amount, COST_PLACES, grouped=grouped)


def _due(amount: Decimal, *, grouped: bool = False) -> str:
    return decimal_text(amount, 2, grouped=grouped)


def statement_json(statement: Statement) -> dict[str, Any]:
    """The contract's JSON object; money as exact decimal strings, counts as integers."""
    totals = statement.totals
    return {
        "customer": statement.customer,
        "month": statement.month,
        "tz": statement.tz,
        "markup": decimal_text(statement.markup),
        "lines": [
            {
                "provider": line.provider,
                "model": line.model,
                "calls": line.calls,
                "input_tokens": line.input_tokens,
                "output_tokens": line.output_tokens,
                "cost": _cost(line.cost),
                "billable": _cost(line.billable),
            }
            for line in statement.lines
        ],
        "totals": {"cost": _cost(totals.cost), "billable": _due(totals.billable), "margin": _due(totals.margin)},
    }


# A cell a spreadsheet would run as a formula starts with one of these (OWASP "CSV Injection"):
# = + - @, tab and carriage return; line feed too, for the same reason.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
# The same characters right after a separator, for a reader that splits on ; or , inside quotes.
_FORMULA_AFTER_SEPARATOR = re.compile(r"([;,])(?=[=+\-@\t\r\n])")


def csv_text_cell(value: str) -> str:
    """A text cell that no spreadsheet runs as a formula (OWASP "CSV Injection").

    Quoted always, quotes doubled; a leading ``= + - @`` (or tab, CR, LF) gets a ``'``
    before it, and so does one that follows a ``;`` or ``,`` inside the value.
    """
    if value.startswith(_FORMULA_START):
        value = "'" + value
    value = _FORMULA_AFTER_SEPARATOR.sub(r"\1'", value)
    return '"' + value.replace('"', '""') + '"'


def statement_csv(statement: Statement) -> str:
    """The contract's CSV: the header, one row per line, a ``total`` row and a ``margin`` row.

    Provider and model are quoted and neutralised (:func:`csv_text_cell`); numbers are
    bare. The ``total`` row carries the calls, tokens, exact cost and the rounded billable
    total; the ``margin`` row carries the margin in the ``billable`` column. Lines end in CRLF
    (RFC 4180), as the logs export does.
    """
    totals = statement.totals
    rows = [",".join(CSV_HEADER)]
    for line in statement.lines:
        cells = (
            csv_text_cell(line.provider),
            csv_text_cell(line.model),
            str(line.calls),
            str(line.input_tokens),
            str(line.output_tokens),
            _cost(line.cost),
            _cost(line.billable),
        )
        rows.append(",".join(cells))
    total = ("total", "", totals.calls, totals.input_tokens, totals.output_tokens, _cost(totals.cost))
    rows.append(",".join(str(cell) for cell in total) + "," + _due(totals.billable))
    rows.append("margin,,,,,," + _due(totals.margin))
    return "\r\n".join(rows) + "\r\n"


# ---------------------------------------------------------------------------------------- PDF

# The PDF uses Helvetica, a core font: no font file is shipped, and core fonts encode latin-1
# only. Text outside latin-1 is transliterated where a plain form exists (é stays, ő -> o,
# “ ” -> " ", ﬁ -> fi) and shown as "?" where none does (CJK, emoji); the JSON and CSV keep the
# exact names.
_PLAIN = str.maketrans(
    {
        "‘": "'",
        "’": "'",
        "‚": ",",
        "“": '"',
        "”": '"',
        "„": '"',
        "–": "-",
        "—": "-",
        "−": "-",
        "…": "...",
        "€": "EUR",
        "Ł": "L",
        "ł": "l",
        "Đ": "D",
        "đ": "d",
        "Œ": "OE",
        "œ": "oe",
        "ı": "i",
    }
)


def latin1_text(text: str) -> str:
    """``text`` as a core PDF font can draw it: latin-1, transliterated where possible, else ``?``."""
    out = []
    for char in text.translate(_PLAIN):
        if unicodedata.category(char) == "Cc":
            out.append("?")
        elif ord(char) < 256:
            out.append(char)
        else:
            plain = "".join(
                part
                for part in unicodedata.normalize("NFKD", char)
                if ord(part) < 256 and unicodedata.category(part) not in ("Mn", "Cc")
            )
            out.append(plain or "?")
    return "".join(out)


def _month_title(month: str) -> str:
    return parse_month(month).strftime("%B %Y")  # the C locale's English month name


class _StatementPDF(FPDF):
    footer_text = ""

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=8)
        self.set_text_color(110)
        self.cell(0, 6, f"{self.footer_text}  ·  page {self.page_no()} of {{nb}}", align="C")


def statement_pdf(statement: Statement, *, show_margin: bool = False) -> bytes:
    """A statement a customer can be sent: who, which month in which zone, the markup, the lines, the totals.

    Tokens have thousands separators; costs and line billables are exact; the total due is
    rounded half-even to the cent, and a line says so with the exact sum it came from.
    The margin is internal and shown only with ``show_margin``. Flows onto more pages
    (table headings repeated) when the lines do not fit on one.
    """
    totals = statement.totals
    customer = latin1_text(statement.customer)
    start, end = month_bounds(statement.month, statement.tz)
    local = zone(statement.tz)
    pdf = _StatementPDF(format="A4")
    pdf.footer_text = latin1_text(f"Spendboard statement  ·  {statement.customer}  ·  {statement.month}")
    pdf.set_title(f"Statement {statement.customer} {statement.month}")
    pdf.set_author("Spendboard")
    pdf.set_creator("Spendboard")
    pdf.set_margins(10, 12, 10)
    pdf.set_auto_page_break(auto=True, margin=16)
    pdf.add_page()

    pdf.set_font("Helvetica", style="B", size=18)
    pdf.cell(0, 10, "Statement", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", size=10)
    markup = decimal_text(statement.markup)
    if statement.markup >= 0:
        terms = f"Markup: {markup}% on cost"
    else:
        terms = f"Discount: {decimal_text(-statement.markup)}% off cost (markup {markup}%)"
    month = f"Month: {_month_title(statement.month)} ({statement.month}), time zone {statement.tz}"
    period = (
        f"Calls from {start.astimezone(local):%Y-%m-%d %H:%M} to {end.astimezone(local):%Y-%m-%d %H:%M} "
        f"{statement.tz} ({start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC)"
    )
    for text in (f"Customer: {customer}", month, period, terms, "Amounts in USD."):
        pdf.multi_cell(0, 6, latin1_text(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)

    pdf.set_font("Helvetica", size=8)
    bold = FontFace(emphasis="BOLD")
    with pdf.table(
        col_widths=(22, 40, 16, 26, 26, 30, 30),
        text_align=("LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"),
        headings_style=FontFace(emphasis="BOLD", fill_color=(230, 230, 230)),
        line_height=5,
        wrapmode="CHAR",
    ) as table:
        heading = table.row()
        for title in ("Provider", "Model", "Calls", "Input tokens", "Output tokens", "Cost", "Billable"):
            heading.cell(title)
        if not statement.lines:
            table.row().cell("No calls in this month.", colspan=7)
        for line in statement.lines:
            row = table.row()
            row.cell(latin1_text(line.provider))
            row.cell(latin1_text(line.model))
            row.cell(f"{line.calls:,}")
            row.cell(f"{line.input_tokens:,}")
            row.cell(f"{line.output_tokens:,}")
            row.cell(_cost(line.cost, grouped=True))
            row.cell(_cost(line.billable, grouped=True))
        row = table.row()
        row.cell("Total", style=bold, colspan=2)
        row.cell(f"{totals.calls:,}", style=bold)
        row.cell(f"{totals.input_tokens:,}", style=bold)
        row.cell(f"{totals.output_tokens:,}", style=bold)
        row.cell(_cost(totals.cost, grouped=True), style=bold)
        row.cell(_cost(totals.billable_exact, grouped=True), style=bold)
    pdf.ln(4)

    pdf.set_font("Helvetica", style="B", size=12)
    pdf.cell(0, 8, f"Total due: USD {_due(totals.billable, grouped=True)}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", size=9)
    rounding = totals.rounding
    sign = "+" if rounding > 0 else ""
    pdf.multi_cell(
        0,
        5,
        f"The total due is the exact sum of the billable amounts, {_cost(totals.billable_exact, grouped=True)}, "
        f"rounded half-even to the cent (rounding {sign}{decimal_text(rounding, 2)}). "
        "Line amounts are exact and not rounded.",
        align="L",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    if show_margin:
        pdf.multi_cell(
            0,
            5,
            f"Margin: {_due(totals.margin, grouped=True)} (total due less total cost "
            f"{_cost(totals.cost, grouped=True)}).",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
    return bytes(pdf.output())
