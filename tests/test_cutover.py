"""The cutover on real mongod under the lab application (both halves, inserts/updates/deletes, retries, follows
splitter.routing): the whole split with `confirm` at each gate, fence, drain, switch, verification at snapshots,
finalize. Every acknowledged write must end on its owner with its last value. (The race and SIGKILL at each
protocol point: test_cutover_race.py; reverse and switch again: test_cutover_reverse.py.)"""

from __future__ import annotations

import json

import pytest
from pymongo.errors import OperationFailure

from splitter.lab.app import LabApp
from splitter.lab.lab import Lab
from tests.cutover_driver import (
    Run,
    check_app,
    cli,
    confirm,
    finish,
    last_switch,
    routing_docs,
    wait_for,
    wait_gate,
    wait_switch,
)
from tests.helpers import rs1_client, rs2_client

# A whole split under the application: minutes on a loaded machine (the suite's default is 900 s per test).
pytestmark = [pytest.mark.mongod, pytest.mark.timeout(2700)]


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
                 lambda: [(d or {}).get("state") for d in routing_docs(fresh_lab)] == ["split", "split"])
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
        docs = routing_docs(fresh_lab)
        assert {d["epoch"] for d in docs} == {2} and docs[0]["owners"] == {"0": "rs1", "1": "rs2"}
        rs2.app.ledger.insert_one({"_id": "stray-1", "user_id": 1, "v": 1})

        # A delete cannot be fenced: one that reaches rs1 after the switch is reported, not lost silently.
        gone = rs1.app.events.find_one({"user_id": {"$mod": [2, 1]}}, {"_id": 1})["_id"]
        assert rs1.app.events.delete_one({"_id": gone}).deleted_count == 1

        refused_cleanup = cli("cleanup", "-c", config, "--set", "both")
        assert refused_cleanup.returncode == 2 and "final" in refused_cleanup.stderr
        finish(fresh_lab, run)
    finally:
        app.stop()
        run.kill()
    check_app(app)
    assert rs2.app.ledger.find_one({"_id": "stray-1"}) is not None
    assert rs2.app.users.find_one({"_id": victim["_id"]}) == victim  # the refused update changed nothing
    assert any(repr(gone) in s for s in last_switch(fresh_lab)["stray_deletes"])
    assert "repeat them on rs2" in run.output()
    assert {d["state"] for d in routing_docs(fresh_lab)} == {"final"}
    status = json.loads(cli("status", "-c", config, "--json").stdout)
    assert status["cutover"]["state"] == "final"
    # The fence on rs1 stays after finalize (stray writes of rs2's half keep failing visibly).
    with pytest.raises(OperationFailure):
        rs1.app.ledger.insert_one({"_id": "stray-2", "user_id": 3, "v": 1})
