"""The overwrite race of issue 13 on real mongod under the lab application: the catch-up frozen (SIGSTOP) while the
application writes rs2's users on rs1, then `run` SIGKILLed at each point of the protocol (fenced, draining,
published, the reverse's fence) and started again; every acknowledged write ends on its owner with its last
value, and the catch-up into rs2 never wrote after rs2 opened."""

from __future__ import annotations

import signal

import pytest
from bson import Timestamp

from splitter.lab.lab import Lab
from splitter.store.catchup_position import PositionStore
from tests.cutover_driver import (
    Run,
    app_for,
    check_app,
    cli,
    confirm,
    cutover,
    finish,
    last_switch,
    paused,
    until_catch_up,
    wait_for,
    wait_gate,
    wait_switch,
)
from tests.helpers import rs1_client, rs2_client

# A whole split under the application: minutes on a loaded machine (the suite's default is 900 s per test).
pytestmark = [pytest.mark.mongod, pytest.mark.timeout(2700)]


def test_overwrite_race_and_sigkill_at_each_protocol_point(fresh_lab: Lab) -> None:
    config = str(fresh_lab.layout.config_path)
    until_catch_up(fresh_lab)
    app = app_for(fresh_lab, max_op_seconds=600).start()
    run = Run(config, pause_at="fenced")
    try:
        wait_gate(fresh_lab, run=run)
        # The race of issue 13: the catch-up frozen behind while the application writes rs2's users on rs1.
        run.proc.send_signal(signal.SIGSTOP)
        before = app.acknowledged
        wait_for("writes while the catch-up is frozen", lambda: app.acknowledged > before + 100)
        confirm(config)
        run.proc.send_signal(signal.SIGCONT)
        paused(run, "fenced")
        run.kill()
        assert last_switch(fresh_lab)["phase"] == "fenced"
        # A delete of rs2's half on rs1 after the fence (deletes cannot be fenced) is replayed by the drain.
        rs1 = rs1_client(fresh_lab)
        gone = rs1.app.users.find_one({"user_id": {"$mod": [2, 1]}}, {"_id": 1})["_id"]
        assert rs1.app.users.delete_one({"_id": gone}).deleted_count == 1

        run = Run(config, pause_at="draining")
        paused(run, "draining")
        run.kill()
        run = Run(config, pause_at="published")
        paused(run, "published")
        run.kill()
        assert cutover(fresh_lab)["state"] == "switched" and last_switch(fresh_lab)["verified"] is None
        run = Run(config, pause_at="fenced")  # resumes the verification, then waits; pauses in the reverse
        wait_switch(fresh_lab, "verified", 2, run)
        assert last_switch(fresh_lab)["verified"] is True
        forward = PositionStore(fresh_lab.layout.root / "state", "rs2").load()
        drained = last_switch(fresh_lab)["drain_optime"]
        assert cli("reverse", "-c", config).returncode == 0
        paused(run, "fenced")
        run.kill()
        run = Run(config)
        wait_switch(fresh_lab, "verified", 3, run)
        assert cutover(fresh_lab)["state"] == "reversed" and last_switch(fresh_lab)["verified"] is True
        assert cli("switch", "-c", config).returncode == 0
        wait_switch(fresh_lab, "verified", 4, run)
        finish(fresh_lab, run)
    finally:
        app.stop()
        run.proc.send_signal(signal.SIGCONT)
        run.kill()
    check_app(app)
    assert rs2_client(fresh_lab).app.users.find_one({"_id": gone}) is None
    # The catch-up into rs2 stopped at the drain point: it never wrote to rs2 after rs2 opened.
    assert forward is not None and forward.applied_through <= Timestamp(drained["t"], drained["i"])
    again = PositionStore(fresh_lab.layout.root / "state", "rs2").load()
    assert again is not None and again.resume_token == forward.resume_token
