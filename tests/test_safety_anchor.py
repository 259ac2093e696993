"""Issue 14, items 4, 5 and 10 on real mongod: the split optime is anchored in rs1's committed history, arbiter 2
waits for rs2 to hold it, standalone nodes run no TTL deletes, rollback puts tags back. Failpoints need the lab's
`enableTestCommands: 1`."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import yaml
from pymongo import MongoClient
from pymongo.write_concern import WriteConcern

from splitter.catchup import PositionStore
from splitter.engine.session import open_session
from splitter.errors import StepFailed
from splitter.events import quiet_bus
from splitter.hosts.node_config import ORIGINAL_SUFFIX
from splitter.lab.lab import Lab
from splitter.lab.processes import mongod_alive, port_in_use, read_pid
from splitter.steps.catch_up import CatchUp
from splitter.store.catchup_position import Position
from splitter.waiting import wait_until
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
    with _client(fresh_lab, "node1") as primary:  # journaled: node1 still holds it after the kill below
        primary.app.get_collection("anchor", write_concern=WriteConcern(w=1, j=True)).insert_one({"user_id": 1})
    code, out = _run(fresh_lab, "run", "--yes", "--until", "rewrite-replset-config")
    assert code == 1, out
    assert "rs1's majority commit point" in out and "has not reached the moving nodes' oplog end" in out
    assert _state(fresh_lab).get("point_of_no_return") is None
    with _client(fresh_lab, "node3", maintenance=True) as node3:
        assert [d["_id"] for d in node3.local["system.replset"].find()] == ["rs1"]
    # Now rs1 rolls that entry back: node1 dies, node2 (fetching again) is elected with arbiter 1, node1 comes back,
    # rolls the entry back and rejoins; a w:majority write moves the commit point past it. The commit point is
    # past the moving nodes' oplog end, but rs1's oplog no longer holds the entry there.
    ends = []
    for name in ("node3", "node4"):
        with _client(fresh_lab, name, maintenance=True) as node:
            ends.append(node.local["oplog.rs"].find_one({}, sort=[("$natural", -1)])["ts"])
    split = max(ends)
    _kill(fresh_lab, "node1")
    with _client(fresh_lab, "node2") as node2:
        node2.admin.command("configureFailPoint", "stopReplProducer", mode="off")
        wait_until("node2 PRIMARY", lambda: node2.admin.command("hello")["isWritablePrimary"], timeout=120)
        fresh_lab.adapter.run("mongod_start.yml", ["node1"], {"mongod_mode": "replset", "replset_name": "rs1"})
        node2.app.get_collection("anchor", write_concern=WriteConcern(w="majority", wtimeout=180_000)).insert_one(
            {"user_id": 2})
        point = node2.admin.command("replSetGetStatus")["optimes"]["lastCommittedOpTime"]["ts"]
        assert point > split, (point, split)
        assert node2.local["oplog.rs"].find_one({"ts": split}) is None
    with _client(fresh_lab, "node1") as node1:
        assert node1.local["oplog.rs"].find_one({"ts": split}) is None, "node1 did not roll the entry back"
    code, out = _run(fresh_lab, "run", "--yes", "--until", "rewrite-replset-config")
    assert code == 1, out
    assert f"last oplog entry {split.time}:{split.inc} is not in rs1's committed history (absent there)" in out
    assert _state(fresh_lab).get("point_of_no_return") is None
    with _client(fresh_lab, "node3", maintenance=True) as node3:
        assert [d["_id"] for d in node3.local["system.replset"].find()] == ["rs1"]


def _kill(lab: Lab, name: str) -> None:
    """SIGKILL the lab's own mongod by its pid: a crash."""
    pid = read_pid(lab.layout.host(name).pidfile)
    assert mongod_alive(pid)
    os.kill(pid, signal.SIGKILL)
    wait_until(f"{name} gone", lambda: not mongod_alive(pid), timeout=30)


def test_arbiter2_starts_only_once_rs2_holds_the_split_optime(fresh_lab: Lab) -> None:
    _planning(fresh_lab, target_sync_timeout="5s")
    code, out = _run(fresh_lab, "run", "--yes", "--until", "stop-standalone")
    assert code == 0, out
    # Neither rs2 data node fetches: whichever is elected, the other never receives the new term's first entry,
    # so rs2's majority commit point cannot reach the split optime. start-rs2 derives their config from their own
    # file (kept at <mongod_conf>.splitter-orig since start-standalone), so the failpoint goes there.
    for name in ("node3", "node4"):
        kept = Path(f"{fresh_lab.layout.host(name).conf}{ORIGINAL_SUFFIX}")
        own = yaml.safe_load(kept.read_text())
        own["setParameter"] = {**own.get("setParameter", {}), "failpoint.stopReplProducer": "{mode: 'alwaysOn'}"}
        kept.write_text(yaml.safe_dump(own, sort_keys=False))
    code, out = _run(fresh_lab, "run", "--yes", "--until", "start-arbiter-rs2")
    assert code == 1, out
    assert "rs2's data nodes and majority commit point at the split optime" in out
    assert not port_in_use(fresh_lab.layout.host("arbiter2").port), "arbiter 2 started before rs2 held the split"
    assert _state(fresh_lab)["steps"]["start-arbiter-rs2"]["state"] == "failed"
    entered = 0
    for name in ("node3", "node4"):
        with _client(fresh_lab, name) as node:
            entered += node.admin.command("configureFailPoint", "stopReplProducer", mode="off")["count"]
    assert entered > 0, "the failpoint never held rs2's data nodes back"
    code, out = _run(fresh_lab, "run", "--yes", "--until", "catch-up")
    assert code == 0, out
    # Item 10: the catch-up step's verify can fail. A position that never moved past the split optime used to pass.
    ctx = open_session(fresh_lab.layout.config_path, dry_run=True, events=quiet_bus())
    CatchUp().verify(ctx)
    PositionStore(ctx.store.dir, "rs2").save(Position("rs2", ctx.state.split.optime.ts))
    with pytest.raises(StepFailed, match="short of rs1's write"):
        CatchUp().verify(ctx)
