"""`splitter demo` (what `make demo` runs) exits 0, prints the summary and leaves no mongod of its own running."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import BASE
from tests.helpers import run_cli

pytestmark = pytest.mark.mongod


def _mongods_under(root: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "mongod" in cmdline and str(root) in cmdline:
                found.append(int(entry.name))
    return found


def test_demo_runs_the_whole_story_and_cleans_up(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    result = run_cli("demo", "--dir", str(root), "--docs", "2000", "--base-port", str(BASE + 400))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "split complete" in out or "demo finished" in out
    for expected in ("rs1", "rs2", "users", "events", "sessions", "PRIMARY", "ARBITER", "0 failed",
                     "rs2's users' longest write stall at the switch"):
        assert expected in out, expected
    assert "lab stopped" in out
    assert _mongods_under(root) == []
    assert os.path.exists(root / "state" / "state.json")
