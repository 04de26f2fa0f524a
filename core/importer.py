"""Importing calls from CSV or JSON Lines: good rows are taken, bad rows are named by line.

The file is streamed in batches, each one transaction, so a killed import leaves
only whole batches. A row without a ``request_id`` gets one derived from its
content and line number, so running the same import again adds nothing twice.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import IO

from sqlalchemy import Engine

from core.config import import_batch_size
from core.usage import CALL_FIELDS, Call, CallError, call_from_mapping, record_batch

BATCH_SIZE = 5_000
MAX_LINE_BYTES = 64 * 1024
FIELDS = CALL_FIELDS  # every field of a call (DESIGN.md, "A call's usage"); `usage` in JSON Lines only
CSV_FIELDS = tuple(name for name in CALL_FIELDS if name != "usage")
REQUIRED = ("timestamp", "provider", "model", "input_tokens", "output_tokens")
REQUIRED_WITH_USAGE = ("timestamp", "provider", "model")


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (unreadable, no header, missing columns)."""


@dataclass
class ImportResult:
    taken: int = 0
    duplicates: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)

    @property
    def lines_read(self) -> int:
        return self.taken + self.duplicates + len(self.refused)


def _derived_request_id(raw: bytes, line: int) -> str:
    return f"import-{hashlib.sha256(raw.strip()).hexdigest()[:24]}-L{line}"


def _decode(raw: bytes, line: int) -> str:
    if len(raw) > MAX_LINE_BYTES:
        raise CallError(f"line is {len(raw):,} bytes, over the limit of {MAX_LINE_BYTES:,}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CallError(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})") from None


def _json_rows(handle: IO[bytes]) -> Iterator[tuple[int, bytes, dict | None, str | None]]:
    for line, raw in enumerate(handle, start=1):
        if not raw.strip():
            continue
        try:
            text = _decode(raw, line).strip()
            try:
                value = _DECODER.decode(text)
            except json.JSONDecodeError as exc:
                raise CallError(f"broken JSON ({exc.msg} at column {exc.colno}): {_snippet(text)}") from None
            if not isinstance(value, dict):
                raise CallError(f"expected a JSON object, found {type(value).__name__}")
            if "NaN" in text or "Infinity" in text:  # cheap pre-check; the scan names the field
                for name, item in value.items():
                    if isinstance(item, _NotANumber):
                        raise CallError(f"{name}: {item} is not a number")
        except CallError as exc:
            yield line, raw, None, str(exc)
            continue
        yield line, raw, value, None


class _NotANumber:
    """JSON's NaN/Infinity, kept as a marker so the refusal can name the field it was given for."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_DECODER = json.JSONDecoder(parse_constant=_NotANumber)  # one decoder: json.loads(**kw) builds one per call
FIELD_SET = frozenset(FIELDS)
TEXT_FIELDS = ("provider", "model", "user", "request_id", "project", "service_tier", "status")


def _snippet(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _csv_rows(handle: IO[bytes]) -> Iterator[tuple[int, bytes, dict | None, str | None]]:
    raw_lines: list[bytes] = []

    def text_lines() -> Iterator[str]:
        for raw in handle:
            raw_lines.append(raw)
            yield raw.decode("utf-8", errors="surrogateescape")

    reader = csv.reader(text_lines())
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError("the file is empty (expected a CSV header or JSON Lines)") from None
    except csv.Error as exc:
        first = b"".join(raw_lines)
        raise ImportFileError(
            f"CSV header: line 1 is not readable CSV ({exc}): {_snippet(first.decode('utf-8', 'replace'))}"
        ) from None
    header = [name.strip().lstrip("\ufeff").lower() for name in header]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise ImportFileError(f"CSV header: missing column(s) {', '.join(missing)} (found: {', '.join(header)})")
    unknown = [name for name in header if name not in CSV_FIELDS]
    if unknown:
        raise ImportFileError(f"CSV header: unknown column(s) {', '.join(unknown)} (known: {', '.join(CSV_FIELDS)})")
    raw_lines.clear()
    line = reader.line_num
    while True:
        start = line + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line = reader.line_num
            yield start, b"".join(raw_lines), None, f"broken CSV ({exc})"
            raw_lines.clear()
            continue
        line = reader.line_num
        raw = b"".join(raw_lines)
        raw_lines.clear()
        if not any(cell.strip() for cell in record):
            continue
        try:
            _decode(raw, start)
        except CallError as exc:
            yield start, raw, None, str(exc)
            continue
        if len(record) != len(header):
            yield start, raw, None, f"{len(record)} columns where the header has {len(header)}"
            continue
        yield start, raw, dict(zip(header, record, strict=True)), None


def _is_json_lines(path: Path, head: bytes) -> bool:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return True
    if suffix in (".csv", ".tsv"):
        return False
    return head.lstrip().startswith(b"{")


def import_file(
    engine: Engine,
    path: str | Path,
    batch_size: int | None = None,
    *,
    now: datetime | None = None,
    progress: Callable[[ImportResult], None] | None = None,
) -> ImportResult:
    """Import a CSV or JSON Lines file of calls; see the module docstring for the guarantees.

    ``batch_size`` defaults to ``SPENDBOARD_IMPORT_BATCH`` or :data:`BATCH_SIZE`.
    """
    if batch_size is None:
        batch_size = import_batch_size(BATCH_SIZE)
    if batch_size < 1:
        raise ValueError(f"batch_size: {batch_size!r} is not a positive number of rows")
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ImportFileError(f"FILE: cannot read {str(path)!r} ({exc.strerror})") from None
    with handle:
        head = handle.read(4096)
        handle.seek(0)
        rows = _json_rows(handle) if _is_json_lines(path, head) else _csv_rows(io.BufferedReader(handle))  # type: ignore[arg-type]
        return _import_rows(engine, rows, batch_size, now, progress)


def _check_fields(mapping: dict) -> None:
    """Field names and types a file row must have, before the values are checked as a call."""
    if not FIELD_SET.issuperset(mapping):
        raise CallError(f"unknown field(s) {', '.join(sorted(set(mapping) - FIELD_SET))}")
    for name in REQUIRED_WITH_USAGE if mapping.get("usage") is not None else REQUIRED:
        value = mapping.get(name, _MISSING)
        if value is _MISSING:
            raise CallError(f"{name}: missing")
        if value is None or value == "":
            raise CallError(f"{name}: {value!r} is empty (a value is required)")
    for name in TEXT_FIELDS:
        value = mapping.get(name)
        if value is not None and not isinstance(value, str):
            raise CallError(f"{name}: {value!r} is not text")
    if not isinstance(mapping["timestamp"], str):
        raise CallError(f"timestamp: {mapping['timestamp']!r} is not an ISO 8601 text")


_MISSING = object()


def _import_rows(
    engine: Engine,
    rows: Iterator[tuple[int, bytes, dict | None, str | None]],
    batch_size: int,
    now: datetime | None,
    progress: Callable[[ImportResult], None] | None,
) -> ImportResult:
    result = ImportResult()
    batch: list[Call] = []

    def flush() -> None:
        outcome = record_batch(engine, batch)
        result.taken += outcome.recorded
        result.duplicates += outcome.duplicates
        batch.clear()
        if progress:
            progress(result)

    for line, raw, mapping, error in rows:
        if error is None and mapping is not None:
            try:
                _check_fields(mapping)
                call = call_from_mapping(mapping, now=now)
                if call.request_id is None:
                    call = replace(call, request_id=_derived_request_id(raw, line))
            except CallError as exc:
                error = str(exc)
            else:
                batch.append(call)
                if len(batch) >= batch_size:
                    flush()
                continue
        result.refused.append((line, error or "unreadable row"))
    if batch:
        flush()
    return result
