"""All SQL through bound parameters: a static check of ``core/`` and names full of SQL read back as text."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "core"
MIGRATIONS = CORE / "storage" / "migrations" / "versions"
SQL_SINKS = {"text", "literal_column", "exec_driver_sql", "execute", "executemany", "executescript"}
SQL_WORDS = ("SELECT ", "INSERT ", "UPDATE ", "DELETE ", "DROP ", "CREATE ", "ALTER ", "PRAGMA ", "BEGIN ", "TRUNCATE ")

# Reviewed places that build statement text from something other than a literal. Each entry is
# (file, enclosing function, source of the statement argument) and why it cannot carry user input.
ALLOWED = {
    ("storage/engine.py", "_on_connect", "f'PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}'"): "a module constant int",
    ("storage/engine.py", "_on_begin", "f'BEGIN {mode}'"): "mode is one of the literals IMMEDIATE / DEFERRED",
    ("recording/calls.py", "_insert_sqlite", "sql"): (
        "str() of SQLAlchemy's compiled insert(UsageRecord); values are bound"
    ),
    ("pricing/catalog/sync.py", "work", "f'SELECT pg_advisory_xact_lock({_LOCK_KEY})'"): "a module constant int",
    # PostgreSQL COPY ingestion: statements made once at import from the staging table's constant
    # name and LOG_COLUMNS (constant column names); values travel through COPY and are never spliced
    (
        "recording/calls.py",
        "<module>",
        "f'CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING} ON COMMIT DELETE ROWS AS "
        "SELECT {_COLUMN_LIST} FROM api_usage_logs WITH NO DATA'",
    ): "constant names",
    (
        "recording/calls.py",
        "<module>",
        "f'INSERT INTO api_usage_logs ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM {STAGING} "
        "ORDER BY request_id ON CONFLICT (request_id) DO NOTHING RETURNING id'",
    ): "constant names",
    ("recording/calls.py", "<module>", "f'TRUNCATE {STAGING}'"): "constant name",
    ("recording/calls.py", "_insert_postgresql", "CREATE_STAGING"): "module constant above",
    ("recording/calls.py", "_insert_postgresql", "INSERT_STAGED"): "module constant above",
    ("recording/calls.py", "_insert_postgresql", "EMPTY_STAGING"): "module constant above",
}


def _unsafe_text(node: ast.expr) -> bool:
    """Statement text made at run time: an f-string, ``%`` or ``+`` on strings, or ``.format()``."""
    if isinstance(node, ast.JoinedStr):
        return any(not isinstance(part, ast.Constant) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        return True
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"


def _sink_name(call: ast.Call) -> str | None:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    return name if name in SQL_SINKS else None


def find_sql_building(source: str, filename: str) -> list[tuple[str, str, str, int]]:
    """(file, function, statement source, line) for every statement text not a plain literal."""
    found = []
    tree = ast.parse(source)
    parents: dict[ast.AST, ast.AST] = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}

    def function_of(node: ast.AST) -> str:
        while node in parents:
            node = parents[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return node.name
        return "<module>"

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _sink_name(node) and node.args:
            statement = node.args[0]
            text_arg = _sink_name(node) in ("text", "literal_column", "exec_driver_sql", "executescript")
            literal = isinstance(statement, ast.Constant) and isinstance(statement.value, str)
            if _unsafe_text(statement) or (text_arg and not literal):
                found.append((filename, function_of(node), ast.unparse(statement), node.lineno))
        elif isinstance(node, ast.JoinedStr) and _unsafe_text(node):
            head = "".join(p.value for p in node.values if isinstance(p, ast.Constant) and isinstance(p.value, str))
            if head.lstrip().upper().startswith(SQL_WORDS):
                found.append((filename, function_of(node), ast.unparse(node), node.lineno))
    return found


def test_core_builds_no_sql_text_outside_the_reviewed_places() -> None:
    found = []
    for path in sorted(CORE.rglob("*.py")):
        if MIGRATIONS in path.parents:
            continue  # DDL and back-fills built from the revision's own constants (column lists, grains); no input
        found += find_sql_building(path.read_text(), path.relative_to(CORE).as_posix())
    unreviewed = sorted({f"{f}:{line} in {fn}(): {src}" for f, fn, src, line in found if (f, fn, src) not in ALLOWED})
    assert unreviewed == [], "SQL text built at run time; bind the values instead:\n" + "\n".join(unreviewed)
    stale = set(ALLOWED) - {(f, fn, src) for f, fn, src, _ in found}
    assert not stale, f"allow-list entries that no longer match any code: {stale}"


@pytest.mark.parametrize(
    "snippet",
    [
        "def f(conn, name):\n    conn.execute(text(f\"SELECT * FROM t WHERE name = '{name}'\"))",
        "def f(conn, name):\n    conn.exec_driver_sql(\"DELETE FROM t WHERE name = '%s'\" % name)",
        "def f(conn, name):\n    conn.execute(text(\"SELECT * FROM t WHERE name = '{}'\".format(name)))",
        "def f(conn, name):\n    sql = f\"UPDATE t SET x = 1 WHERE name = '{name}'\"\n    conn.execute(text(sql))",
        'def f(conn, name):\n    conn.execute(text("SELECT * FROM t WHERE n = \'" + name + "\'"))',
    ],
)
def test_the_check_catches_sql_built_from_values(snippet: str) -> None:
    assert find_sql_building(snippet, "x.py"), snippet


def test_the_check_passes_bound_parameters() -> None:
    snippet = "def f(conn, name):\n    conn.execute(text('SELECT * FROM t WHERE name = :n'), {'n': name})"
    assert find_sql_building(snippet, "x.py") == []
