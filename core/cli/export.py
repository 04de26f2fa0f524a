"""``python -m core export --format focus [--since DATE] [--until DATE] [--out FILE.csv|FILE.parquet]``.

FOCUS 1.2 rows (core.reporting.focus) of the UTC days ``--since``..``--until`` (both included, as in
``report``), written to a CSV or Parquet file, or as CSV to stdout. A file is written beside its
target and renamed when complete, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from core.cli.common import BadInput

FORMATS = ("focus",)
SUFFIXES = (".csv", ".parquet")


def add_arguments(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    export = sub.add_parser("export", help="spend in the FinOps FOCUS 1.2 format (CSV or Parquet)")
    export.add_argument("--format", required=True, choices=FORMATS, help="focus: FOCUS 1.2")
    export.add_argument("--since", help="first UTC day, included (YYYY-MM-DD; default: the first call)")
    export.add_argument("--until", help="last UTC day, included (YYYY-MM-DD; default: the last call)")
    export.add_argument("--out", help="FILE.csv or FILE.parquet (default: CSV on stdout)")


def run(args: argparse.Namespace, engine: Callable[[], Engine]) -> int:
    from core.reporting.focus import FocusError, focus_rows, write_csv, write_parquet
    from core.reporting.focus_export import focus_groups
    from core.reporting.spend import SpendArgumentError, parse_spend_query

    try:  # the days as report reads them (2000-01-01 .. tomorrow, until not before since)
        query = parse_spend_query(args.since, args.until, prefix="--")
    except SpendArgumentError as exc:
        raise BadInput(str(exc)) from None
    out = Path(args.out) if args.out else None
    if out is not None:
        if out.suffix.lower() not in SUFFIXES:
            raise BadInput(f"--out: {args.out!r} does not end in .csv or .parquet")
        if not out.parent.is_dir():
            raise BadInput(f"--out: the folder {str(out.parent)!r} does not exist")
    db = engine()
    rows = focus_rows(focus_groups(db, query.since, query.until))
    try:
        if out is None:
            count = write_csv(rows, sys.stdout)
        else:
            count = _write_file(out, lambda path: _write(path, rows, write_csv, write_parquet))
    except FocusError as exc:
        raise BadInput(f"export: {exc}") from None
    if out is not None:
        print(f"wrote {count:,} FOCUS 1.2 rows to {out}", file=sys.stderr)
    return 0


def _write(path: Path, rows, write_csv, write_parquet) -> int:  # type: ignore[no-untyped-def]
    if path.suffix.lower() == ".parquet" or path.name.endswith(".parquet.tmp"):
        return int(write_parquet(rows, path))
    with path.open("w", newline="", encoding="utf-8") as handle:
        return int(write_csv(rows, handle))


def _write_file(out: Path, write: Callable[[Path], int]) -> int:
    """Write to a temporary file in the target's folder, then rename it over the target."""
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=f"{out.suffix}.tmp", dir=out.parent)
    os.close(fd)
    temporary = Path(name)
    try:
        count = write(temporary)
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)
    return count
