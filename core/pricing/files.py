"""Reading a price file for ``prices import``: JSON Lines, or CSV of the flat fields.

Each line becomes a mapping (or a refusal naming what was wrong); ``core.prices`` checks
the values. In CSV, ``tiers`` is a cell holding the JSON list. JSON numbers are read as
exact decimals, never floats.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

from core.pricing.edits import FILE_FIELDS, REQUIRED_FILE_FIELDS

MAX_LINE_BYTES = 64 * 1024


class PriceFileError(ValueError):
    """The file as a whole cannot be read (missing, not UTF-8 CSV, no usable header)."""


Line = tuple[int, dict[str, object] | None, str | None]  # (line number, mapping, refusal)


def _not_a_number(name: str) -> object:
    raise ValueError(f"{name} is not a number")


def _json_lines(data: bytes) -> Iterator[Line]:
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        if len(raw) > MAX_LINE_BYTES:
            yield number, None, f"line is {len(raw):,} bytes, over the limit of {MAX_LINE_BYTES:,}"
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield number, None, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
            continue
        try:
            value = json.loads(text, parse_float=Decimal, parse_constant=_not_a_number)
        except json.JSONDecodeError as exc:
            yield number, None, f"broken JSON ({exc.msg} at column {exc.colno})"
            continue
        except ValueError as exc:
            yield number, None, str(exc)
            continue
        if not isinstance(value, dict):
            yield number, None, f"expected a JSON object, found {type(value).__name__}"
            continue
        yield number, value, None


def _csv_lines(data: bytes) -> Iterator[Line]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PriceFileError(f"FILE: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        raise PriceFileError("FILE: the file is empty (expected a CSV header or JSON Lines)") from None
    except csv.Error as exc:
        raise PriceFileError(f"CSV header: not readable CSV ({exc})") from None
    missing = [name for name in REQUIRED_FILE_FIELDS if name not in header]
    if missing:
        raise PriceFileError(f"CSV header: missing column(s) {', '.join(missing)} (found: {', '.join(header)})")
    unknown = [name for name in header if name not in FILE_FIELDS]
    if unknown:
        raise PriceFileError(f"CSV header: unknown column(s) {', '.join(unknown)} (known: {', '.join(FILE_FIELDS)})")
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, None, f"broken CSV ({exc})"
            continue
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            yield start, None, f"{len(record)} columns where the header has {len(header)}"
            continue
        yield start, {k: v for k, v in zip(header, record, strict=True) if v.strip()}, None


def read_price_file(path: str | Path) -> list[Line]:
    """Every line of the file, numbered as an editor shows them (a CSV header is line 1)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PriceFileError(f"FILE: cannot read {str(path)!r} ({exc.strerror})") from None
    suffix = path.suffix.lower()
    is_json = suffix in (".jsonl", ".ndjson", ".json") or (
        suffix not in (".csv", ".tsv") and data.lstrip().startswith(b"{")
    )
    return list(_json_lines(data) if is_json else _csv_lines(data))
