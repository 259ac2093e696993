"""The package as an operator installs it: a wheel, non-editable, in a fresh venv outside the checkout, used
from another directory for a whole lab split. Slow (a real install with every dependency), so one test."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from splitter.mongod_binary import find_mongod
from tests.conftest import BASE

ROOT = Path(__file__).resolve().parents[1]
WHEEL_OFFSET = 400  # beside the conftest fixtures' offsets (0, 100, 200, 300)


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """bin/ of a fresh venv with the wheel built from this checkout installed (built and installed once)."""
    where = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(where / "dist"), str(ROOT)],
                   check=True, cwd=where)
    wheel = next((where / "dist").glob("splitter-*.whl"))
    venv.EnvBuilder(with_pip=True).create(where / "venv")
    bin_dir = where / "venv" / "bin"
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", str(wheel)], check=True, cwd=where)
    yield bin_dir


def _run(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    # Nothing of the checkout may leak in: no PYTHONPATH, the cwd outside it, the mongod named explicitly
    # (the fresh venv has no lab extra).
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(SPLITTER_MONGOD=str(find_mongod()), PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}")
    return subprocess.run([str(bin_dir / "splitter"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=1800, check=False)


@pytest.mark.mongod
@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_installed_wheel_runs_a_whole_lab_split_from_another_directory(installed: Path, tmp_path: Path) -> None:
    probe = subprocess.run([str(installed / "python"), "-c", "import splitter; print(splitter.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True)
    assert Path(probe.stdout.strip()).is_relative_to(installed.parent) and ROOT.as_posix() not in probe.stdout
    work = tmp_path / "elsewhere"
    work.mkdir()
    port = str(BASE + WHEEL_OFFSET)
    up = _run(installed, work, "lab", "up", "--dir", "lab", "--base-port", port, "--docs", "500")
    try:
        assert up.returncode == 0, up.stderr
        plan = _run(installed, work, "plan", "-c", "lab/split.yaml")
        assert plan.returncode == 0, plan.stderr
        assert "config diff node3" in plan.stdout and "/site-packages/" not in plan.stderr
        run = _run(installed, work, "run", "--yes", "-c", "lab/split.yaml")
        assert run.returncode == 0, (run.stdout[-3000:], run.stderr)
        schedule = _run(installed, work, "cleanup", "-c", "lab/split.yaml", "--set", "rs2", "--window",
                        "01:00-05:00", "--print-schedule")
        assert schedule.returncode == 0, schedule.stderr
        assert f"ExecStart={installed / 'splitter'} cleanup -c {work / 'lab' / 'split.yaml'}" in schedule.stdout
        assert "Traceback" not in schedule.stderr
    finally:
        down = _run(installed, work, "lab", "down", "--dir", "lab")
    assert down.returncode == 0, down.stderr
