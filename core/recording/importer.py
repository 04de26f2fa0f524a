"""Importing calls from CSV or JSON Lines: good rows are taken, bad rows are named by line.

The file is streamed in batches, each one transaction, so a killed import leaves
only whole batches. A row without a ``request_id`` gets one derived from its
content and line number, so running the same import again adds nothing twice.
A row whose ``request_id`` is already recorded (or came earlier in the file) is
skipped and its line kept; with *different* content it is refused, named by line.
``strict=True`` reads the whole file first and writes nothing if any row is refused.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import ARRAY, Engine, String, any_, bindparam, cast, select

from core.config import import_batch_size
from core.recording.calls import CALL_FIELDS, Call, CallError, call_from_mapping, tags_text
from core.recording.refusing import Outcome, price_refusals, record_refusing
from core.storage.tables import UsageRecord

# Rows per transaction. Into a large log in random time order each batch dirties index pages
# all over the file: 50,000 rows share them ten times better than 5,000 (8.4k vs 4.6k calls/s
# into the 1M-call benchmark database, bench/bench_cardinality.py).
BATCH_SIZE = 50_000
MAX_LINE_BYTES = 64 * 1024
FIELDS = CALL_FIELDS  # every field of a call (DESIGN.md, "A call's usage"); `usage` in JSON Lines only
CSV_FIELDS = tuple(name for name in CALL_FIELDS if name != "usage")
REQUIRED = ("timestamp", "provider", "model", "input_tokens", "output_tokens")
REQUIRED_WITH_USAGE = ("timestamp", "provider", "model")


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (unreadable, no header, missing columns)."""


DUPLICATE_LINES_KEPT = 1_000  # line numbers of skipped duplicates kept for the report (all are counted)


@dataclass
class ImportResult:
    taken: int = 0
    duplicates: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)
    duplicate_lines: list[int] = field(default_factory=list)  # the first DUPLICATE_LINES_KEPT, in order
    written: bool = True  # False when ``strict`` refused the file and nothing was written

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
    strict: bool = False,
) -> ImportResult:
    """Import a CSV or JSON Lines file of calls; see the module docstring for the guarantees.

    ``batch_size`` defaults to ``SPENDBOARD_IMPORT_BATCH`` or :data:`BATCH_SIZE`. With
    ``strict``, the whole file is checked first (read-only) and nothing is written if any
    row is refused (``written`` is then False).
    """
    if batch_size is None:
        batch_size = import_batch_size(BATCH_SIZE)
    if batch_size < 1:
        raise ValueError(f"batch_size: {batch_size!r} is not a positive number of rows")
    path = Path(path)
    if strict:
        checked = _read_file(engine, path, batch_size, now, None, dry_run=True)
        if checked.refused:
            checked.written = False
            return checked
    return _read_file(engine, path, batch_size, now, progress, dry_run=False)


def _read_file(
    engine: Engine,
    path: Path,
    batch_size: int,
    now: datetime | None,
    progress: Callable[[ImportResult], None] | None,
    *,
    dry_run: bool,
) -> ImportResult:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ImportFileError(f"FILE: cannot read {str(path)!r} ({exc.strerror})") from None
    with handle:
        head = handle.read(4096)
        handle.seek(0)
        rows = _json_rows(handle) if _is_json_lines(path, head) else _csv_rows(io.BufferedReader(handle))  # type: ignore[arg-type]
        return _import_rows(engine, rows, batch_size, now, progress, dry_run=dry_run)


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


# What makes two calls with one request_id "the same call": every field but the id itself.
_CONTENT = tuple(
    (f.name, "user_id" if f.name == "user" else f.name)
    for f in dataclasses.fields(Call)
    if f.name != "request_id" and hasattr(UsageRecord, "user_id" if f.name == "user" else f.name)
)
_ID_CHUNK = 500


def _content(call: Call) -> tuple[Any, ...]:
    """As stored: the tags as their JSON text."""
    return tuple(tags_text(call.tags) if name == "tags" else getattr(call, name) for name, _column in _CONTENT)


def _stored_content(engine: Engine, request_ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """The content of the calls already recorded under these request ids (one query per chunk)."""
    found: dict[str, tuple[Any, ...]] = {}
    columns = [getattr(UsageRecord, column) for _name, column in _CONTENT]
    with engine.connect() as conn:
        postgres = conn.dialect.name == "postgresql"
        for start in range(0, len(request_ids), _ID_CHUNK):
            chunk = list(request_ids[start : start + _ID_CHUNK])
            if postgres:  # one array parameter, as core.recording.calls does: the unique index is used
                matches = UsageRecord.request_id == any_(cast(bindparam("ids", chunk), ARRAY(String)))
            else:
                matches = UsageRecord.request_id.in_(chunk)
            for row in conn.execute(select(UsageRecord.request_id, *columns).where(matches)):
                found[row[0]] = tuple(row[1:])
    return found


def _import_rows(
    engine: Engine,
    rows: Iterator[tuple[int, bytes, dict | None, str | None]],
    batch_size: int,
    now: datetime | None,
    progress: Callable[[ImportResult], None] | None,
    *,
    dry_run: bool = False,
) -> ImportResult:
    """Parse, check and (unless ``dry_run``) record the rows, one transaction per batch."""
    result = ImportResult()
    batch: list[tuple[int, Call]] = []
    # request ids met earlier in the file: the current batch's (a dry run, writing nothing, keeps all)
    earlier: dict[str, tuple[int, tuple[Any, ...]]] = {}

    def flush() -> None:
        stored = _stored_content(engine, [call.request_id for _line, call in batch if call.request_id])
        fresh: list[tuple[int, Call]] = []
        for line, call in batch:
            rid = call.request_id
            assert rid is not None
            content = _content(call)
            if rid in stored or rid in earlier:
                same = stored[rid] == content if rid in stored else earlier[rid][1] == content
                if same:
                    result.duplicates += 1
                    if len(result.duplicate_lines) < DUPLICATE_LINES_KEPT:
                        result.duplicate_lines.append(line)
                elif rid in stored:
                    result.refused.append((line, f"request_id {rid!r} is already recorded with different content"))
                else:
                    result.refused.append(
                        (line, f"request_id {rid!r} is already used on line {earlier[rid][0]} with different content")
                    )
                continue
            earlier[rid] = (line, content)
            fresh.append((line, call))
        calls = [call for _line, call in fresh]
        if not dry_run:  # a call the database cannot take (priced past the limit, an overflow) is its line's refusal
            outcome = record_refusing(engine, calls)
            result.taken += outcome.recorded
            result.duplicates += outcome.duplicates  # stored by a concurrent writer meanwhile
            earlier.clear()  # now in the database: the next batch finds them there
        else:  # --strict's check prices every call, so a call priced past the limit fails the check, not the write
            outcome = Outcome(recorded=len(calls))
            outcome.refused = price_refusals(engine, calls)
            result.taken += len(calls) - len(outcome.refused)
        result.refused.extend((fresh[position][0], reason) for position, reason in outcome.refused)
        batch.clear()
        if progress:
            progress(result)

    for line, raw, mapping, error in rows:
        if error is None and mapping is not None:
            try:
                _check_fields(mapping)
                call = call_from_mapping(mapping, now=now)
                if call.request_id is None:
                    call = dataclasses.replace(call, request_id=_derived_request_id(raw, line))
            except CallError as exc:
                error = str(exc)
            else:
                batch.append((line, call))
                if len(batch) >= batch_size:
                    flush()
                continue
        result.refused.append((line, error or "unreadable row"))
    if batch:
        flush()
    result.refused.sort()
    return result


call_content = _content  # what "the same call" means, for the other entry points (core.ingest)
stored_content = _stored_content
