"""Issue 14, items 4, 5 and 10 on real mongod: the split optime is anchored in rs1's committed history, arbiter 2
waits for rs2 to hold it, standalone nodes run no TTL deletes, rollback puts tags back. Failpoints need the lab's
`enableTestCommands: 1`."""

from __future__ import annotations

import datetime
import json
import time

import pytest
import yaml
from bson import Timestamp
from pymongo import MongoClient

from splitter.catchup import PositionStore
from splitter.engine.session import open_session
from splitter.errors import StepFailed
from splitter.events import quiet_bus
from splitter.lab.lab import Lab
from splitter.lab.processes import port_in_use
from splitter.steps.catch_up import CatchUp
from splitter.store.catchup_position import Position
from tests.helpers import run_cli, state_file

pytestmark = pytest.mark.mongod


def _client(lab: Lab, name: str, *, maintenance: bool = False) -> MongoClient:
    host = lab.layout.host(name)
    port = host.maintenance_port if maintenance else host.port
    return MongoClient(f"127.0.0.1:{port}", directConnection=True, serverSelectionTimeoutMS=20000)


def _run(lab: Lab, *args: str) -> tuple[int, str]:
    result = run_cli(*args, "-c", str(lab.layout.config_path))
    return result.returncode, result.stdout + result.stderr


def _planning(lab: Lab, **changes: str) -> None:
    config = yaml.safe_load(lab.layout.config_path.read_text())
    config["planning"] = {**config.get("planning", {}), **changes}
    lab.layout.config_path.write_text(yaml.safe_dump(config, sort_keys=False))


def _state(lab: Lab) -> dict:
    return json.loads(state_file(lab).read_text())


def test_rollback_restores_tags_and_standalone_nodes_run_no_ttl_monitor(fresh_lab: Lab) -> None:
    with _client(fresh_lab, "node1") as primary:
        config = primary.admin.command("replSetGetConfig")["config"]
        node3 = fresh_lab.layout.host("node3").host
        for member in config["members"]:
            if member["host"] == node3:
                member["tags"] = {"rack": "r3"}
        primary.admin.command("replSetReconfig", {**config, "version": config["version"] + 1})
    code, out = _run(fresh_lab, "run", "--yes", "--until", "start-standalone")
    assert code == 0, out
    with _client(fresh_lab, "node3", maintenance=True) as standalone:
        assert standalone.admin.command("getParameter", 1, ttlMonitorEnabled=1)["ttlMonitorEnabled"] is False
    code, out = _run(fresh_lab, "rollback")
    assert code == 0, out
    with _client(fresh_lab, "node1") as primary:
        members = {m["host"]: m for m in primary.admin.command("replSetGetConfig")["config"]["members"]}
    assert members[node3].get("tags") == {"rack": "r3"}
    with _client(fresh_lab, "node3") as member:
        assert member.admin.command("getParameter", 1, ttlMonitorEnabled=1)["ttlMonitorEnabled"] is True


def test_split_optime_must_be_in_rs1s_committed_history(fresh_lab: Lab) -> None:
    _planning(fresh_lab, anchor_timeout="5s")
    code, out = _run(fresh_lab, "run", "--yes", "--until", "start-standalone")
    assert code == 0, out
    # node3 holds an entry rs1 does not (as if rs1 rolled it back after node3 stopped), past rs1's commit point,
    # which stays behind while node2, rs1's only other data-bearing voter, stops fetching.
    with _client(fresh_lab, "node2") as node2:
        node2.admin.command("configureFailPoint", "stopReplProducer", mode="alwaysOn")
    with _client(fresh_lab, "node1") as primary:
        primary.app.anchor.insert_one({"user_id": 1})  # w:1, never majority-committed while node2 is stopped
    with _client(fresh_lab, "node3", maintenance=True) as node3:
        last = node3.local["oplog.rs"].find_one({}, sort=[("$natural", -1)])
        node3.local["oplog.rs"].insert_one({"ts": Timestamp(int(time.time()) + 1, 1), "t": last["t"], "v": 2,
                                            "op": "n", "ns": "", "o": {"msg": "rolled back on rs1"},
                                            "wall": datetime.datetime.now(datetime.timezone.utc)})
    code, out = _run(fresh_lab, "run", "--yes", "--until", "rewrite-replset-config")
    assert code == 1, out
    assert "rs1's majority commit point" in out and "has not reached the moving nodes' oplog end" in out
    assert _state(fresh_lab).get("point_of_no_return") is None
    with _client(fresh_lab, "node2") as node2:
        node2.admin.command("configureFailPoint", "stopReplProducer", mode="off")
    code, out = _run(fresh_lab, "run", "--yes", "--until", "rewrite-replset-config")
    assert code == 1, out
    assert "is not in rs1's committed history (absent there)" in out
    assert _state(fresh_lab).get("point_of_no_return") is None
    with _client(fresh_lab, "node3", maintenance=True) as node3:
        assert [d["_id"] for d in node3.local["system.replset"].find()] == ["rs1"]


def test_arbiter2_starts_only_once_rs2_holds_the_split_optime(fresh_lab: Lab) -> None:
    _planning(fresh_lab, target_sync_timeout="5s")
    code, out = _run(fresh_lab, "run", "--yes", "--until", "stop-standalone")
    assert code == 0, out
    # Neither rs2 data node fetches: whichever is elected, the other never receives the new term's first entry,
    # so rs2's majority commit point cannot reach the split optime.
    inventory = yaml.safe_load(fresh_lab.layout.inventory_path.read_text())
    common = inventory["all"]["vars"]["mongod_set_parameters"]
    for name in ("node3", "node4"):
        inventory["all"]["children"]["data_nodes"]["hosts"][name]["mongod_set_parameters"] = {
            **common, "failpoint.stopReplProducer": {"mode": "alwaysOn"}}
    fresh_lab.layout.inventory_path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    code, out = _run(fresh_lab, "run", "--yes", "--until", "start-arbiter-rs2")
    assert code == 1, out
    assert "rs2's data nodes and majority commit point at the split optime" in out
    assert not port_in_use(fresh_lab.layout.host("arbiter2").port), "arbiter 2 started before rs2 held the split"
    assert _state(fresh_lab)["steps"]["start-arbiter-rs2"]["state"] == "failed"
    for name in ("node3", "node4"):
        with _client(fresh_lab, name) as node:
            node.admin.command("configureFailPoint", "stopReplProducer", mode="off")
    code, out = _run(fresh_lab, "run", "--yes", "--until", "catch-up")
    assert code == 0, out
    # Item 10: the catch-up step's verify can fail. A position that never moved past the split optime used to pass.
    ctx = open_session(fresh_lab.layout.config_path, dry_run=True, events=quiet_bus())
    CatchUp().verify(ctx)
    PositionStore(ctx.store.dir, "rs2").save(Position("rs2", ctx.state.split.optime.ts))
    with pytest.raises(StepFailed, match="short of rs1's write"):
        CatchUp().verify(ctx)
