"""`pip install .` gives a working `spendboard` command that keeps its database where DATABASE_URL says."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    # build from a copy: setuptools writes build/ and *.egg-info/ next to the sources
    skip = shutil.ignore_patterns(".git", ".venv*", "data", "build", "*.egg-info", "__pycache__", "*_cache", "test-*")
    shutil.copytree(REPO, build / "src", ignore=skip)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), "."],
        cwd=build / "src",
        check=True,
    )
    (found,) = out.glob("spendboard-*.whl")
    return found


def test_the_wheel_ships_what_the_app_reads_at_run_time(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "app.py",
        "server.py",
        "app_pages/overview.py",
        "ui/spendboard-icon.png",
        "routes/ingest.py",
        "core/pricing/catalog/catalog.csv",
        "core/storage/migrations/script.py.mako",
        "core/storage/migrations/versions/0001_release1.py",
    ):
        assert needed in names, needed
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "spendboard = core.cli.main:main" in text
    requires = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    runtime = [line.split("#")[0].strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    for requirement in filter(None, runtime):
        assert f"Requires-Dist: {requirement}" in requires, requirement  # one list, read from requirements.txt


def test_an_installed_command_in_any_folder_keeps_its_database_where_database_url_says(
    wheel: Path, tmp_path: Path
) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    # the dependencies come from the test environment (a .pth after the venv's own site-packages);
    # the package itself only from the wheel
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True
    ).stdout.strip()
    Path(purelib, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", str(wheel)],
        check=True,
    )
    spendboard = env_dir / "bin" / "spendboard"
    folder = tmp_path / "anywhere"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PYTHONPATH")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'books' / 'spend.db'}"
    init = subprocess.run([spendboard, "init"], cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert init.returncode == 0, init.stderr
    assert (tmp_path / "books" / "spend.db").exists()
    record = subprocess.run(
        [spendboard, "record", "--provider", "huggingface", "--model", "m", "--input-tokens", "1000",
         "--output-tokens", "500", "--json"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert record.returncode == 0, record.stderr
    assert json.loads(record.stdout)["cost_total"] == "0.0025"
    report = subprocess.run(
        [spendboard, "report", "--json"], cwd=folder, env=env, capture_output=True, text=True, timeout=120
    )
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["cost_total"] == "0.0025"
    bad = subprocess.run([spendboard, "report", "--by", "planet"], cwd=folder, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: spendboard report:"), bad.stderr
    assert not (folder / "data").exists()  # nothing written beside the command but where DATABASE_URL says
