"""Running ``streamlit run`` on a free local port for browser tests, and Debian's Chromium to drive it.

Processes the tests start (the test server, ``python -m core``) get a clean environment and a
working directory of their own, so a developer's ``.env``, database or ``~/.streamlit`` settings
never change what the tests see (:func:`isolated_env`, :func:`isolated_cwd`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling out on a closed network.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"Chromium not installed at {CHROMIUM} (apt install chromium)"
)


# Only what a Python process needs to run; everything else is given explicitly by the test.
PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SYSTEMROOT", "TMPDIR", "TEMP", "TMP")


def isolated_env(env: Mapping[str, str] | None = None, home: Path | None = None) -> dict[str, str]:
    """A clean environment for a child process: nothing from the user's settings leaks in.

    No price, password, database or token variable of the machine is passed on, only
    ``env`` (what the test sets) plus the basics; ``HOME`` points to ``home`` when given,
    so a ``~/.streamlit/config.toml`` is not read either.
    """
    clean = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    clean["PYTHONPATH"] = str(ROOT)
    clean["PYTHONDONTWRITEBYTECODE"] = "1"
    if home is not None:
        clean["HOME"] = str(home)
    clean.update(env or {})
    return clean


def isolated_cwd(folder: Path) -> Path:
    """A working directory for a child process: no ``.env``, no ``data/``; the project's theme only."""
    folder.mkdir(parents=True, exist_ok=True)
    config = ROOT / ".streamlit" / "config.toml"
    if config.exists():
        (folder / ".streamlit").mkdir(exist_ok=True)
        shutil.copy(config, folder / ".streamlit" / "config.toml")
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def streamlit_server(script: Path, env: Mapping[str, str], log_path: Path, timeout: float = 60) -> Iterator[str]:
    """``streamlit run script`` on 127.0.0.1; yields its base URL once it answers its health check.

    The server runs in :func:`isolated_cwd` next to ``log_path`` with :func:`isolated_env`:
    it sees ``env`` and nothing of the user's environment or ``.env``.
    """
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
    ]
    workdir = isolated_cwd(log_path.parent / f"cwd-{port}")
    full_env = isolated_env(env, home=workdir)
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=workdir, env=full_env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    urllib.request.urlopen(f"{base}/_stcore/health", timeout=1)
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"streamlit did not start: {log_path.read_text()[-2000:]}")
                    time.sleep(0.2)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=10)
