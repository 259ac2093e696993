"""`splitter confirm GATE` is taken only while a live `splitter run` waits at that gate, and it writes nothing
otherwise (issue 13, gate hygiene)."""

from __future__ import annotations

from pathlib import Path

import pytest

from splitter.engine.gates import confirm_refusal
from splitter.lab.lab import Lab
from splitter.store.checkpoint import RunState, StateStore
from splitter.store.files import StateFiles
from splitter.store.lock import StateLock
from splitter.store.records import GatePass
from tests.helpers import config_copy, run_cli

RUN = {"pid": 4242, "command": "splitter run"}


@pytest.mark.parametrize(("state", "holder", "gate", "sentence"), [
    (RunState(), None, "deploy-client-v1", "no `splitter run` is running for this state dir, so no gate is waiting"),
    (RunState(waiting_gate="deploy-client-v2"), None, "deploy-client-v2",
     "no `splitter run` is running for this state dir; the last run stopped while waiting at deploy-client-v2, "
     "so no gate is waiting"),
    (RunState(), RUN, "deploy-client-v2", "`splitter run` (pid 4242) is not waiting at a gate now"),
    (RunState(waiting_gate="deploy-client-v1"), RUN, "deploy-client-v2",
     "`splitter run` is waiting at deploy-client-v1, not at deploy-client-v2"),
    (RunState(gates={"deploy-client-v1": GatePass(at="t0", by="--yes")}), RUN, "deploy-client-v1",
     "gate deploy-client-v1 was already passed (--yes at t0)"),
    (RunState(waiting_gate="deploy-client-v2"), RUN, "deploy-client-v2", None),
])
def test_confirm_is_refused_unless_that_gate_is_waiting(state: RunState, holder: dict | None, gate: str,
                                                          sentence: str | None) -> None:
    assert confirm_refusal(state, holder, gate) == sentence


@pytest.mark.mongod
def test_confirm_of_a_gate_not_waiting_exits_2_and_writes_nothing(shared_lab: Lab, tmp_path: Path) -> None:
    config = config_copy(shared_lab, tmp_path)
    files = StateFiles(tmp_path / "state")
    StateStore(files).save(RunState(waiting_gate="deploy-client-v2"))  # a run that was killed while waiting

    refused = run_cli("confirm", "-c", str(config), "deploy-client-v2")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "no `splitter run` is running" in " ".join(refused.stderr.split())
    assert not files.gate_confirmation("deploy-client-v2").exists()

    lock = StateLock(files.root)
    lock.acquire("splitter run")  # a live run (this process) waiting at deploy-client-v2
    try:
        wrong = run_cli("confirm", "-c", str(config), "deploy-client-v1")
        taken = run_cli("confirm", "-c", str(config), "deploy-client-v2")
    finally:
        lock.release()
    assert wrong.returncode == 2 and "waiting at deploy-client-v2, not at deploy-client-v1" in wrong.stderr
    assert not files.gate_confirmation("deploy-client-v1").exists()
    assert taken.returncode == 0, taken.stderr
    assert files.gate_confirmation("deploy-client-v2").exists()
