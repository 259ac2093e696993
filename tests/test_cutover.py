"""The cutover on real mongod under the lab application (both halves, inserts/updates/deletes, retries, follows
splitter.routing): fence, drain, switch, verification at snapshots, reverse, finalize, and SIGKILL/SIGSTOP of
`run` at each point of the protocol. Every acknowledged write must end on its owner with its last value."""

from __future__ import annotations

import json
import signal

import pytest
from bson import Timestamp
from pymongo.errors import OperationFailure

from splitter.lab.app import LabApp
from splitter.lab.lab import Lab
from splitter.routing_document import COLLECTION, DATABASE, DOCUMENT_ID
from splitter.store.catchup_position import PositionStore
from tests.cutover_driver import (
    Run,
    app_for,
    cli,
    confirm,
    cutover,
    last_switch,
    until_catch_up,
    wait_for,
    wait_gate,
    wait_switch,
)
from tests.helpers import rs1_client, rs2_client

# A whole split under the application: minutes on a loaded machine (the suite's default is 900 s per test).
pytestmark = [pytest.mark.mongod, pytest.mark.timeout(2700)]


def _check_app(app) -> None:
    assert app.failures == [], app.failures[:5]
    assert app.acknowledged > 200
    result = app.check()
    assert result.ok, result.problems[:10]
    assert result.checked > 50 and result.deleted_checked > 5


def _routing_docs(lab: Lab) -> list[dict]:
    return [c[DATABASE][COLLECTION].find_one({"_id": DOCUMENT_ID}) for c in (rs1_client(lab), rs2_client(lab))]


def _finish(lab: Lab, run: Run) -> None:
    result = cli("finalize", "-c", str(lab.layout.config_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert run.wait(600) == 0, run.output()[-4000:]


def test_full_split_with_confirm_at_each_gate_under_a_live_app(fresh_lab: Lab) -> None:
    config = str(fresh_lab.layout.config_path)
    app = LabApp({"rs1": rs1_client(fresh_lab)}, "rs1").start()
    run = Run(config)
    try:
        wait_gate(fresh_lab, "deploy-client-v1", run)
        confirm(config, "deploy-client-v1")
        wait_gate(fresh_lab, "deploy-client-v2", run)
        app.connect("rs2", rs2_client(fresh_lab))  # client v2 knows rs2 (a client made before rs2 existed cannot)
        wait_for("the split's routing published on both sets",
                 lambda: [(d or {}).get("state") for d in _routing_docs(fresh_lab)] == ["split", "split"])
        confirm(config, "deploy-client-v2")
        wait_switch(fresh_lab, "verified", 2, run)
        switch = last_switch(fresh_lab)
        assert switch["verified"] is True and "equal at the snapshot" in switch["verify_summary"]

        # A client that still writes an rs2 user to rs1 gets an error it can see; following the routing
        # document it lands on rs2.
        rs1, rs2 = rs1_client(fresh_lab), rs2_client(fresh_lab)
        with pytest.raises(OperationFailure) as refused:
            rs1.app.ledger.insert_one({"_id": "stray-1", "user_id": 1, "v": 1})
        assert refused.value.code == 121
        victim = rs1.app.users.find_one({"user_id": {"$mod": [2, 1]}})
        with pytest.raises(OperationFailure):
            rs1.app.users.update_one({"_id": victim["_id"]}, {"$set": {"stray": True}})
        docs = _routing_docs(fresh_lab)
        assert {d["epoch"] for d in docs} == {2} and docs[0]["owners"] == {"0": "rs1", "1": "rs2"}
        rs2.app.ledger.insert_one({"_id": "stray-1", "user_id": 1, "v": 1})

        # A delete cannot be fenced: one that reaches rs1 after the switch is reported, not lost silently.
        gone = rs1.app.events.find_one({"user_id": {"$mod": [2, 1]}}, {"_id": 1})["_id"]
        assert rs1.app.events.delete_one({"_id": gone}).deleted_count == 1

        refused_cleanup = cli("cleanup", "-c", config, "--set", "both")
        assert refused_cleanup.returncode == 2 and "final" in refused_cleanup.stderr
        _finish(fresh_lab, run)
    finally:
        app.stop()
        run.kill()
    _check_app(app)
    assert rs2.app.ledger.find_one({"_id": "stray-1"}) is not None
    assert rs2.app.users.find_one({"_id": victim["_id"]}) == victim  # the refused update changed nothing
    assert any(repr(gone) in s for s in last_switch(fresh_lab)["stray_deletes"])
    assert "repeat them on rs2" in run.output()
    assert {d["state"] for d in _routing_docs(fresh_lab)} == {"final"}
    status = json.loads(cli("status", "-c", config, "--json").stdout)
    assert status["cutover"]["state"] == "final"
    # The fence on rs1 stays after finalize (stray writes of rs2's half keep failing visibly).
    with pytest.raises(OperationFailure):
        rs1.app.ledger.insert_one({"_id": "stray-2", "user_id": 3, "v": 1})


def _paused(run: Run, phase: str) -> None:
    def there() -> bool:
        if run.proc.poll() is not None:
            raise AssertionError(f"run exited {run.proc.returncode}: {run.output()[-3000:]}")
        return f"paused at {phase}" in run.output()
    wait_for(f"run paused at {phase}", there)


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
        _paused(run, "fenced")
        run.kill()
        assert last_switch(fresh_lab)["phase"] == "fenced"
        # A delete of rs2's half on rs1 after the fence (deletes cannot be fenced) is replayed by the drain.
        rs1 = rs1_client(fresh_lab)
        gone = rs1.app.users.find_one({"user_id": {"$mod": [2, 1]}}, {"_id": 1})["_id"]
        assert rs1.app.users.delete_one({"_id": gone}).deleted_count == 1

        run = Run(config, pause_at="draining")
        _paused(run, "draining")
        run.kill()
        run = Run(config, pause_at="published")
        _paused(run, "published")
        run.kill()
        assert cutover(fresh_lab)["state"] == "switched" and last_switch(fresh_lab)["verified"] is None
        run = Run(config, pause_at="fenced")  # resumes the verification, then waits; pauses in the reverse
        wait_switch(fresh_lab, "verified", 2, run)
        assert last_switch(fresh_lab)["verified"] is True
        forward = PositionStore(fresh_lab.layout.root / "state", "rs2").load()
        drained = last_switch(fresh_lab)["drain_optime"]
        assert cli("reverse", "-c", config).returncode == 0
        _paused(run, "fenced")
        run.kill()
        run = Run(config)
        wait_switch(fresh_lab, "verified", 3, run)
        assert cutover(fresh_lab)["state"] == "reversed" and last_switch(fresh_lab)["verified"] is True
        assert cli("switch", "-c", config).returncode == 0
        wait_switch(fresh_lab, "verified", 4, run)
        _finish(fresh_lab, run)
    finally:
        app.stop()
        run.proc.send_signal(signal.SIGCONT)
        run.kill()
    _check_app(app)
    assert rs2_client(fresh_lab).app.users.find_one({"_id": gone}) is None
    # The catch-up into rs2 stopped at the drain point: it never wrote to rs2 after rs2 opened.
    assert forward is not None and forward.applied_through <= Timestamp(drained["t"], drained["i"])
    again = PositionStore(fresh_lab.layout.root / "state", "rs2").load()
    assert again is not None and again.resume_token == forward.resume_token


def test_reverse_round_trip_then_cleanup(fresh_lab: Lab) -> None:
    config = str(fresh_lab.layout.config_path)
    until_catch_up(fresh_lab)
    app = app_for(fresh_lab).start()
    run = Run(config)
    try:
        wait_gate(fresh_lab, run=run)
        confirm(config)
        wait_switch(fresh_lab, "verified", 2, run)
        refused = cli("cleanup", "-c", config, "--set", "both")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert cli("switch", "-c", config).returncode == 2  # not possible now: nothing was reversed
        assert cli("reverse", "-c", config).returncode == 0
        wait_switch(fresh_lab, "verified", 3, run)
        moved = app.acknowledged
        wait_for("writes of rs2's users on rs1 again", lambda: app.acknowledged > moved + 100)
        with app._lock:
            recent = [op for op in app.ops[moved:] if op.user % 2 == 1]
        assert recent and all(op.acked_by == "rs1" for op in recent[-10:])
        assert cli("finalize", "-c", config).returncode == 2  # not while reversed
        assert cli("switch", "-c", config).returncode == 0
        wait_switch(fresh_lab, "verified", 4, run)
        _finish(fresh_lab, run)
    finally:
        app.stop()
        run.kill()
    _check_app(app)
    result = cli("cleanup", "-c", config, "--set", "both")
    assert result.returncode == 0, result.stdout + result.stderr
    _check_app(app)
    # What the app deleted on rs2 after finalize is still on rs1 (nothing replays it back any more): the
    # interlock keeps it (missing on the other set) until --remove-orphans, which deletes it safely.
    result = cli("cleanup", "-c", config, "--set", "both", "--remove-orphans")
    assert result.returncode == 0, result.stdout + result.stderr
    _check_app(app)
    assert rs1_client(fresh_lab).app.ledger.count_documents({"user_id": {"$mod": [2, 1]}}) == 0
