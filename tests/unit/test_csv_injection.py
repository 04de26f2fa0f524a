"""Issue 19, point 18: the CSV export quotes every text field and neutralises formulas, also after a separator."""

from __future__ import annotations

import csv
import io

import pytest


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("x;=cmd|' /C calc'!A0", "x;'=cmd|' /C calc'!A0"),
        ("x,@SUM(A1)", "x,'@SUM(A1)"),
        ("a\t+1", "a\t'+1"),
        ("x|-2+3", "x|'-2+3"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("openai/gpt-oss-120b:groq", "openai/gpt-oss-120b:groq"),
    ],
)
def test_formula_characters_at_the_start_or_after_a_separator_are_neutralised(name: str, safe: str) -> None:
    from core.reporting.logs import _cell

    assert _cell(name) == safe


def test_no_cell_of_a_semicolon_spreadsheet_starts_a_formula() -> None:
    from core.reporting.logs import _cell

    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_NONNUMERIC).writerow([_cell("x;=cmd|' /C calc'!A0"), 12])
    line = out.getvalue().strip()
    assert line.startswith('"') and line.endswith(",12")  # text quoted, numbers bare
    for cell in line.replace('"', "").split(";"):  # as a ;-separated spreadsheet reads it
        assert cell[:1] not in ("=", "+", "-", "@"), cell
