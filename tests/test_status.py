"""`splitter status`: the next action decided by a pure function (sentences asserted), the report of a state
directory in the middle of a split (JSON with schema_version, the readable table), and `--watch` in a real terminal
(tmux) redrawing what changes and exiting 0 on Ctrl-C."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from bson import Timestamp

from splitter.engine.next_action import NextAction, Situation, next_action
from splitter.lab.lab import Lab
from splitter.steps.registry import STEP_IDS
from splitter.store import catchup_position, cleanup_position
from splitter.store.checkpoint import RunState, StateStore, StepRecord
from splitter.store.files import StateFiles
from splitter.store.gatefiles import write_confirmation
from splitter.store.lock import StateLock
from splitter.store.records import GatePass, OpTime, PointOfNoReturn, SplitPoint
from splitter.waiting import wait_until
from tests.helpers import config_copy, run_cli

CONFIG = "split.yaml"
HOLDER = {"pid": 4242, "host": "ops1", "command": "splitter run"}


def steps(*states: str) -> tuple[tuple[str, str], ...]:
    return tuple(zip(STEP_IDS, (*states, *["pending"] * (len(STEP_IDS) - len(states))), strict=True))


@pytest.mark.parametrize(("situation", "expected"), [
    (Situation(CONFIG, steps()), NextAction(
        "nothing has run yet: read the plan (read-only), then run it", "splitter plan -c split.yaml")),
    (Situation(CONFIG, steps("done", "done", "done", "waiting"), run_holder=HOLDER, waiting_gate="deploy-client-v1"),
     NextAction("`splitter run` (pid 4242 on ops1) waits at gate deploy-client-v1: make the application change it "
                "asks for, then confirm it", "splitter confirm -c split.yaml deploy-client-v1")),
    (Situation(CONFIG, steps("done", "done", "done", "waiting"), run_holder=HOLDER, waiting_gate="deploy-client-v1",
               confirmed_gates=frozenset({"deploy-client-v1"})),
     NextAction("gate deploy-client-v1 is confirmed; `splitter run` (pid 4242 on ops1) takes it at its next poll",
                "splitter status -c split.yaml --watch")),
    (Situation(CONFIG, steps("done", "running"), run_holder=HOLDER), NextAction(
        "`splitter run` (pid 4242 on ops1) is working on prepare-arbiters; nothing to do but watch",
        "splitter status -c split.yaml --watch")),
    (Situation(CONFIG, steps("done", "failed"), errors={"prepare-arbiters": "dbpath not empty"}), NextAction(
        "step prepare-arbiters failed: dbpath not empty; fix the cause, then resume: the run re-verifies "
        "prepare-arbiters first", "splitter run -c split.yaml")),
    (Situation(CONFIG, steps("done", "running")), NextAction(
        "a run stopped during prepare-arbiters (no process holds the state directory); resume it: it re-verifies "
        "prepare-arbiters and continues", "splitter run -c split.yaml")),
    (Situation(CONFIG, steps("done", "done", "done", "waiting"), waiting_gate="deploy-client-v1"), NextAction(
        "the run stopped while waiting at gate deploy-client-v1; start it again, and confirm once the application "
        "change is live", "splitter run -c split.yaml")),
    (Situation(CONFIG, steps("done", "done", "done", "waiting"), waiting_gate="deploy-client-v1",
               confirmed_gates=frozenset({"deploy-client-v1"})), NextAction(
        "gate deploy-client-v1 is confirmed but no run is waiting; start the run to pass it",
        "splitter run -c split.yaml")),
    (Situation(CONFIG, steps("done", "done")), NextAction(
        "stopped after prepare-arbiters; the next step is add-arbiter-rs1 (or undo it with `splitter rollback`, "
        "possible until rewrite-replset-config)", "splitter run -c split.yaml")),
    (Situation(CONFIG, steps(*["done"] * 8), point_of_no_return=True), NextAction(
        "stopped after rewrite-replset-config; the next step is stop-standalone", "splitter run -c split.yaml")),
    (Situation(CONFIG, steps(*["done"] * 13), point_of_no_return=True, cutover_state="switched", cutover_epoch=2,
               cutover_possible=("reverse", "finalize")),
     NextAction("the traffic of rs2's half is switched (epoch 2); possible now: reverse, finalize; finalize once you "
                "will not switch back (cleanup waits for it)", "splitter finalize -c split.yaml")),
    (Situation(CONFIG, steps(*["done"] * 12, "running"), point_of_no_return=True, cutover_state="reversed",
               cutover_epoch=3, cutover_possible=("switch",), run_holder=HOLDER),
     NextAction("`splitter run` (pid 4242 on ops1) keeps the way back running: the traffic of rs2's half is "
                "reversed (epoch 3); possible now: switch (finalize closes the way back; cleanup waits for it)",
                "splitter switch -c split.yaml")),
    (Situation(CONFIG, steps(*["done"] * 13), point_of_no_return=True, cutover_state="final", cutover_epoch=1),
     NextAction("the split is complete: delete each set's other half, throttled, in a quiet window (it resumes where "
                "it stopped)", "splitter cleanup -c split.yaml --set both --window 01:00-05:00")),
    (Situation(CONFIG, steps(*["done"] * 13), cutover_state="final", cleanup_holder=HOLDER, paused=True), NextAction(
        "a cleanup is running (paused: the pause file exists): `splitter run` (pid 4242 on ops1); watch it",
        "splitter status -c split.yaml --watch")),
    (Situation(CONFIG, steps(*["done"] * 13), cutover_state="final", cleanup_done=True), NextAction(
        "the split is complete and both sets are cleaned up; nothing left to do")),
])
def test_next_action(situation: Situation, expected: NextAction) -> None:
    assert next_action(situation) == expected


# -- a state directory in the middle of the cutover, against the shared lab's cluster ---------------------------
def _mid_cutover(state_dir: Path) -> None:
    """Steps 0-11 done (12 at its gate, confirmed), the point of no return passed, a catch-up position with lag,
    a cleanup position, the pause file."""
    started, finished = "2026-01-01T10:00:00+00:00", "2026-01-01T10:01:23+00:00"
    records = {s: StepRecord(state="done", started=started, finished=finished, attempts=1) for s in STEP_IDS[:12]}
    records["catch-up"] = StepRecord(state="done", started=started, finished=finished, attempts=2)
    optime = OpTime(t=1_767_261_600, i=3, term=2)
    state = RunState(steps=records, waiting_gate="deploy-client-v2",
                     gates={"deploy-client-v1": GatePass(at=started, by="splitter confirm (ops@ops1)")},
                     split=SplitPoint(optime=optime, oplog_ends={"node3": optime, "node4": optime}),
                     point_of_no_return=PointOfNoReturn(step="rewrite-replset-config", at=finished, detail="written"))
    files = StateFiles(state_dir)
    StateStore(files).save(state)
    write_confirmation(files, "deploy-client-v2", by="ops@ops1")
    catchup_position.PositionStore(state_dir, "rs2").save(catchup_position.Position(
        target_set="rs2", split_optime=Timestamp(optime.t, optime.i), lag_seconds=2.0, lag_events=17,
        rate_per_second=340.5, counters={**dict.fromkeys(catchup_position.COUNTERS, 0), "events": 900,
                                         "applied": 850}))
    cleanup_position.PositionStore(state_dir, "rs1").save(cleanup_position.Position(
        "rs1", "app.users", started=True, deleted=1234, kept={"missing on the other set": 5}))
    files.pause.touch()


@pytest.fixture
def mid_cutover(shared_lab: Lab, tmp_path: Path) -> Path:
    config = config_copy(shared_lab, tmp_path)
    _mid_cutover(tmp_path / "state")
    return config


@pytest.mark.mongod
def test_status_reports_everything_an_operator_needs(mid_cutover: Path) -> None:
    config = str(mid_cutover)
    lock = StateLock(mid_cutover.parent / "state")
    lock.acquire("splitter run")  # held by this process: status (another process) must name it
    try:
        result = run_cli("status", "-c", config, "--json")
        text = run_cli("status", "-c", config, env={"COLUMNS": "200"})
    finally:
        lock.release()
    assert result.returncode == 0 and text.returncode == 0, result.stderr + text.stderr
    report = json.loads(result.stdout)
    assert report["schema_version"] == 1
    assert [s["id"] for s in report["steps"]] == STEP_IDS
    assert [s["state"] for s in report["steps"]] == ["done"] * 12 + ["waiting"]
    assert report["steps"][11]["seconds"] == 83.0 and report["steps"][11]["attempts"] == 2
    assert report["run"] == {"alive": True, "holder": {**report["run"]["holder"], "command": "splitter run"}}
    assert report["gates"]["deploy-client-v1"]["state"] == "passed"
    assert report["gates"]["deploy-client-v2"] == {**report["gates"]["deploy-client-v2"], "state": "confirmed",
                                                   "by": "ops@ops1"}
    assert report["pause_file"]["present"]
    assert report["catch_up_streams"]["rs2"]["lag_events"] == 17 and report["catch_up"]["lag_seconds"] == 2.0
    assert report["cleanup"]["rs1"]["deleted"] == 1234 and report["cleanup"]["rs1"]["kept"] == 5
    assert report["point_of_no_return"]["step"] == "rewrite-replset-config"
    assert report["next"]["sentence"].startswith("gate deploy-client-v2 is confirmed; `splitter run` (pid")
    assert set(report["topology"]["rs1"].values()) >= {"PRIMARY", "SECONDARY"}
    out = text.stdout
    for expected in ("#", "step", "state", "started", "duration", "attempts", "last error", *STEP_IDS,
                     "1m 23s", "gates: deploy-client-v1 passed", "deploy-client-v2 confirmed", "pause file: present",
                     "catch-up rs2: lag 2s / 17 events, 340.5 events/s", "cleanup rs1: 1,234 deleted, 5 kept",
                     "point of no return: passed", "run: splitter run pid", "next: gate deploy-client-v2 is confirmed"):
        assert expected in out, expected


def _tmux(socket: str, *args: str) -> str:
    """tmux on a server of this test's own (-L): other users' servers and their options stay out of it."""
    return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, check=True).stdout


@pytest.mark.mongod
@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_status_watch_renders_in_a_terminal_and_ctrl_c_exits_0(mid_cutover: Path, tmp_path: Path) -> None:
    socket = session = f"splitter-status-{uuid.uuid4().hex[:8]}"
    # pytest's environment carries COLUMNS=80 LINES=24 into the pane: let the terminal's own size rule
    command = (f"env -u COLUMNS -u LINES {sys.executable} -m splitter status -c {mid_cutover} --watch 0.5; "
               "echo EXIT=$?; sleep 30")
    _tmux(socket, "new-session", "-d", "-s", session, "-x", "160", "-y", "50", command)
    try:
        def screen() -> str:
            return _tmux(socket, "capture-pane", "-p", "-t", session)

        try:  # a loaded 2-core machine can take tens of seconds to start Python and splitter
            wait_until("the first frame", lambda: "last error" in screen(), timeout=240, interval=0.5)
        except Exception as exc:
            raise AssertionError(f"no table on the screen:\n{screen()}") from exc
        first = screen()
        header = next(line for line in first.splitlines() if "last error" in line)
        assert header.split() == ["#", "step", "state", "started", "duration", "attempts", "last", "error"]
        for step in STEP_IDS:
            assert f" {step} " in first, step
        assert "next: gate deploy-client-v2 is confirmed but no run is waiting" in first
        # the run finishes the step: the next frame shows it, with no restart of the watch
        store = StateStore(StateFiles(tmp_path / "state"))
        state = store.load()
        state.steps["deploy-client-v2"] = StepRecord(state="failed", attempts=1, error="verification failed: 3 differ")
        state.waiting_gate = None
        store.save(state)
        wait_until("the redraw", lambda: "verification failed: 3 differ" in screen(), timeout=30, interval=0.2)
        assert "next: step deploy-client-v2 failed" in screen()
        _tmux(socket, "send-keys", "-t", session, "C-c")
        wait_until("the watch to end", lambda: "EXIT=" in screen(), timeout=30, interval=0.2)
        assert "EXIT=0" in screen()
        assert "Traceback" not in screen()
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False)
