"""switch / reverse / finalize refuse what is not possible now (exit 2, nothing touched), and every command
refuses a split.yaml whose routing differs from the one pinned at the first run (exit 2, naming the field).
Files only: nothing listens on the lab layout's ports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from splitter.config import load_config
from splitter.lab.layout import LabLayout
from splitter.store.checkpoint import RunState, StateStore
from splitter.store.records import CutoverRecord, OpTime, SwitchRecord


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "splitter", *args], capture_output=True, text=True, timeout=120,
                          check=False)


def _lab_config(tmp_path: Path, cutover: CutoverRecord | None, pin_modulus: int | None = None) -> Path:
    layout = LabLayout(tmp_path / "lab", 42895)
    layout.write_files(Path("/bin/true"))
    config = load_config(layout.config_path)
    state = RunState(cutover=cutover)
    if pin_modulus is not None:
        state.routing_pin = {**config.routing.pin(), "modulus": pin_modulus}
    StateStore(config.state_path).save(state)
    return layout.config_path


def _switch(phase: str, verified: bool | None = None) -> SwitchRecord:
    t = OpTime(t=1, i=1)
    return SwitchRecord(epoch=2, from_set="rs1", to_set="rs2", started_at="x", fence_optime=t, drain_optime=t,
                        open_optime=t, phase=phase, verified=verified, back_stream="rs2-to-rs1-e2")  # type: ignore


@pytest.mark.parametrize(("verb", "cutover", "expected"), [
    ("finalize", None, "no cutover has started yet"),
    ("reverse", CutoverRecord(state="split", epoch=1, owner="rs1"), "reverse needs the traffic switched"),
    ("finalize", CutoverRecord(state="switched", epoch=2, owner="rs2", switches=(_switch("published"),)),
     "finalize needs a verified switch"),
    ("finalize", CutoverRecord(state="switched", epoch=2, owner="rs2", switches=(_switch("verified", False),)),
     "failed its verification"),
    ("switch", CutoverRecord(state="switched", epoch=2, owner="rs2", switches=(_switch("verified", True),)),
     "switch needs the traffic reversed"),
    ("reverse", CutoverRecord(state="final", epoch=2, owner="rs2"), "the cutover is final"),
])
def test_a_request_that_is_not_possible_now_exits_2(tmp_path: Path, verb: str, cutover: CutoverRecord | None,
                                                    expected: str) -> None:
    config = _lab_config(tmp_path, cutover)
    before = (load_config(config).state_path / "state.json").read_text()
    result = _cli(verb, "-c", str(config))
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    state_dir = load_config(config).state_path
    assert (state_dir / "state.json").read_text() == before and not (state_dir / "requests").exists()


@pytest.mark.parametrize("command", [("run", "--yes"), ("verify",), ("cleanup", "--set", "both"), ("status",),
                                     ("finalize",), ("reverse",)])
def test_a_routing_that_differs_from_the_pinned_one_exits_2(tmp_path: Path, command: tuple[str, ...]) -> None:
    cutover = CutoverRecord(state="switched", epoch=2, owner="rs2", switches=(_switch("verified", True),))
    config = _lab_config(tmp_path, cutover, pin_modulus=4)
    result = _cli(command[0], "-c", str(config), *command[1:])
    assert result.returncode == 2, result.stdout + result.stderr
    assert "routing.modulus" in result.stderr and "pinned 4" in result.stderr
