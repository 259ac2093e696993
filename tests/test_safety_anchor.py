"""Issue 14, items 4, 5 and 10 on real mongod: the split optime is anchored in rs1's committed history, arbiter 2
waits for rs2 to hold it, standalone nodes run no TTL deletes, rollback puts tags back. Failpoints need the lab's
`enableTestCommands: 1`."""

from __future__ import annotations

import json

import pytest
import yaml
from pymongo import MongoClient
from pymongo.write_concern import WriteConcern

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


def test_split_optime_waits_for_rs1s_majority_commit_point(fresh_lab: Lab) -> None:
    _planning(fresh_lab, anchor_timeout="5s")
    code, out = _run(fresh_lab, "run", "--yes", "--until", "deploy-client-v1")
    assert code == 0, out
    # node2, rs1's only other data-bearing voter, stops fetching: the write below reaches nodes 3+4 (synced from
    # node1) but not rs1's majority, so the moving nodes stop holding an entry rs1 could still roll back.
    with _client(fresh_lab, "node2") as node2:
        node2.admin.command("configureFailPoint", "stopReplProducer", mode="alwaysOn")
    for name in ("node3", "node4"):
        with _client(fresh_lab, name) as node:
            node.admin.command("replSetSyncFrom", fresh_lab.layout.host("node1").host)
    with _client(fresh_lab, "node1") as primary:
        primary.app.get_collection("anchor", write_concern=WriteConcern(w=1)).insert_one({"user_id": 1})
    code, out = _run(fresh_lab, "run", "--yes", "--until", "rewrite-replset-config")
    assert code == 1, out
    assert "rs1's majority commit point" in out and "has not reached the moving nodes' oplog end" in out
    assert _state(fresh_lab).get("point_of_no_return") is None
    with _client(fresh_lab, "node3", maintenance=True) as node3:
        assert [d["_id"] for d in node3.local["system.replset"].find()] == ["rs1"]
    with _client(fresh_lab, "node2") as node2:
        node2.admin.command("configureFailPoint", "stopReplProducer", mode="off")
    code, out = _run(fresh_lab, "run", "--yes", "--until", "rewrite-replset-config")
    assert code == 0, out  # committed now, and rs1's oplog holds the identical entry at the split optime
    assert _state(fresh_lab)["point_of_no_return"]["step"] == "rewrite-replset-config"


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
            **common, "failpoint.stopReplProducer": "{mode: 'alwaysOn'}"}
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
