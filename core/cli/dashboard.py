"""``spendboard dashboard``: initialise the database, then start the Streamlit app (``server.py``).

The same as ``make run`` for an installed tool: the database stays where ``DATABASE_URL`` says
(relative paths from the folder the command runs in), and the theme and privacy settings of the
repository's ``.streamlit/config.toml`` are passed as flags, so no file is needed in that folder.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

# .streamlit/config.toml of the repository, as flags (a folder an installed tool runs in has no such file)
STREAMLIT_FLAGS = (
    "--browser.gatherUsageStats=false",
    "--client.toolbarMode=minimal",
    "--theme.base=light",
    "--theme.primaryColor=#1f5fa8",
    "--theme.backgroundColor=#ffffff",
    "--theme.secondaryBackgroundColor=#f3f5f8",
    "--theme.textColor=#1b2430",
    "--theme.font=sans serif",
)


def add_arguments(sub: argparse._SubParsersAction, positive_int) -> None:  # type: ignore[type-arg,no-untyped-def]
    p = sub.add_parser("dashboard", help="initialise the database and start the dashboard (Streamlit)")
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=positive_int("--port", 65535), default=8501)


def server_script() -> Path:
    """``server.py``: beside ``core`` in a checkout, a top-level module when installed."""
    spec = importlib.util.find_spec("server")
    if spec is not None and spec.origin and Path(spec.origin).with_name("app.py").exists():
        return Path(spec.origin)
    return Path(__file__).resolve().parents[2] / "server.py"


def run(args: argparse.Namespace, init: Callable[[], int]) -> int:
    """``init`` (the command, passed in by the dispatcher), then Streamlit until it stops."""
    code = init()
    if code != 0:
        return code
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(server_script()),
        f"--server.address={args.host}",
        f"--server.port={args.port}",
        *STREAMLIT_FLAGS,
    ]
    return subprocess.call(command, env=os.environ.copy())
