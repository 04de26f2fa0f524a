"""The tests' own processes ignore the developer's ``.env``, environment and database (issue 14, point 3).

A README-style ``.env`` (own prices, an admin password) at the project root must not change
what the test servers and the command-line tests see.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit_server import ROOT, isolated_cwd, isolated_env
from test_cli import run

README_ENV = (
    "HUGGINGFACE_INPUT_TOKEN_COST=0.000002\n"
    "HUGGINGFACE_OUTPUT_TOKEN_COST=0.000005\n"
    "OPENAI_INPUT_TOKEN_COST=0.00001\n"
    "OPENAI_OUTPUT_TOKEN_COST=0.00003\n"
    "SPENDBOARD_ADMIN_PASSWORD=my-own-password\n"
    "DATABASE_URL=sqlite:///data/users-own.db\n"
)
PROBE = (
    "import json, os\n"
    "from core import config\n"
    "p = config.env_price('huggingface')\n"
    "print(json.dumps({'in': str(p.input_token_cost), 'out': str(p.output_token_cost),\n"
    "  'password': config.admin_password(), 'openai': config.env_price('openai') is not None,\n"
    "  'url': config.database_url(), 'cwd': os.getcwd()}))\n"
)


@pytest.fixture
def users_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The README's ``.env`` at the project root (kept if the developer has one), and the same in the environment."""
    dotenv = ROOT / ".env"
    made = not dotenv.exists()
    if made:
        dotenv.write_text(README_ENV)
    for line in README_ENV.splitlines():
        name, value = line.split("=", 1)
        monkeypatch.setenv(name, value)
    try:
        yield
    finally:
        if made:
            dotenv.unlink()


def test_a_process_started_like_the_test_server_ignores_the_users_env(users_env: None, tmp_path: Path) -> None:
    cwd = isolated_cwd(tmp_path / "server-cwd")
    env = isolated_env({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}, home=cwd)
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert (seen["in"], seen["out"]) == ("0.000001", "0.000003")  # the seed's defaults
    assert seen["password"] is None and seen["openai"] is False
    assert seen["url"] == f"sqlite:///{tmp_path / 'x.db'}"
    assert Path(seen["cwd"]) != ROOT and not (cwd / ".env").exists()
    assert (cwd / ".streamlit" / "config.toml").exists()  # the project's theme, for screenshots


def test_the_command_line_tests_ignore_the_users_env(users_env: None, db_url: str) -> None:
    assert run(db_url, "init").returncode == 0
    done = run(
        db_url,
        "cost",
        "--provider",
        "huggingface",
        "--model",
        "openai/gpt-oss-120b:groq",
        "--input-tokens",
        "1000",
        "--output-tokens",
        "500",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cost_total"] == "0.0025"
