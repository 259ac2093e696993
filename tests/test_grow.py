"""`splitter grow` on real mongod: two new data nodes join rs1 by initial sync under a writer that never fails,
resumes after SIGKILL during the initial sync and during the votes reconfigs, and `grow rollback` puts the set
back as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
from pymongo import MongoClient

from splitter.lab.lab import Lab
from splitter.lab.processes import mongod_alive, read_pid
from tests.helpers import Writer, fingerprint, run_cli

pytestmark = pytest.mark.mongod


def _register(lab: Lab) -> tuple[Lab, str]:
    result = run_cli("lab", "grow", "--dir", str(lab.layout.root), "--set", "rs1", "--no-run")
    assert result.returncode == 0, result.stdout + result.stderr
    return Lab.existing(lab.layout.root), str(lab.layout.root / "grow-rs1.yaml")


def _members(lab: Lab) -> dict[str, tuple[float, int]]:
    with MongoClient(lab.layout.connection_string, serverSelectionTimeoutMS=30000) as client:
        config = client.admin.command("replSetGetConfig")["config"]
    return {m["host"]: (m.get("priority", 1), m.get("votes", 1)) for m in config["members"]}


def _states(lab: Lab) -> dict[str, str]:
    with MongoClient(lab.layout.connection_string, serverSelectionTimeoutMS=30000) as client:
        return {m["name"]: m["stateStr"] for m in client.admin.command("replSetGetStatus")["members"]}


def _writer(lab: Lab) -> Writer:
    # w: majority, so that the votes reconfigs (5, then 6 voters) are part of what the writes depend on.
    client = MongoClient(lab.layout.connection_string, w="majority", retryWrites=True,
                         serverSelectionTimeoutMS=30000)
    return Writer(client, collection="grow_writer", interval=0.01).start()


def test_grow_under_a_writer_resumes_after_sigkill_in_the_initial_sync(fresh_lab: Lab) -> None:
    lab, config = _register(fresh_lab)
    node5, node6 = (lab.layout.host(n) for n in ("node5", "node6"))
    before = fingerprint(lab)
    plan = run_cli("grow", "plan", "-c", config)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert f"add {{host: {node5.host}, priority: 0, votes: 0}}" in " ".join(plan.stdout.split())
    assert fingerprint(lab) == before  # plan is read-only

    writer = _writer(lab)
    try:
        # Killed right after the second member was added: both initial syncs are running.
        killed = run_cli("grow", "run", "-c", config,
                         env={"SPLITTER_CRASH_AFTER": "grow-add-members:(priority 0, votes 0):2"})
        assert killed.returncode == -9, killed.stdout + killed.stderr
        status = run_cli("grow", "status", "-c", config)
        assert "grow-add-members       running" in status.stdout, status.stdout
        resumed = run_cli("grow", "run", "-c", config)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "grow complete" in resumed.stdout
    finally:
        writer.stop()
    assert writer.failures == []
    assert len(writer.acknowledged) > 50
    members = _members(lab)
    assert members[node5.host] == (1, 1) and members[node6.host] == (1, 1)
    assert sorted(_states(lab).values()) == ["PRIMARY"] + ["SECONDARY"] * 5
    # Every acknowledged write is on the new members (initial sync + oplog replay).
    for host in (node5, node6):
        with MongoClient(host.host, directConnection=True) as client:
            ids = {d["_id"] for d in client.app.grow_writer.find({}, {"_id": 1})}
        assert set(writer.acknowledged) <= ids
    assert mongod_alive(read_pid(node5.pidfile)) and mongod_alive(read_pid(node6.pidfile))


def test_grow_killed_during_the_votes_resumes_and_rollback_restores_the_set(fresh_lab: Lab) -> None:
    lab, config = _register(fresh_lab)
    node5, node6 = (lab.layout.host(n) for n in ("node5", "node6"))
    original = _members(lab)
    killed = run_cli("grow", "run", "-c", config,
                     env={"SPLITTER_CRASH_AFTER": "grow-grant-votes:votes 1, priority 1 for:1"})
    assert killed.returncode == -9, killed.stdout + killed.stderr
    halfway = _members(lab)
    assert halfway[node5.host] == (1, 1) and halfway[node6.host] == (0, 0)  # one votes reconfig at a time
    resumed = run_cli("grow", "run", "-c", config)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert _members(lab)[node6.host] == (1, 1)

    rolled = run_cli("grow", "rollback", "-c", config)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert _members(lab) == original
    assert sorted(_states(lab).values()) == ["PRIMARY", "SECONDARY", "SECONDARY", "SECONDARY"]
    assert not mongod_alive(read_pid(node5.pidfile)) and not mongod_alive(read_pid(node6.pidfile))
    assert not (Path(lab.layout.root) / "state-grow-rs1" / "state.json").exists()  # archived


def test_lab_down_stops_grown_nodes(fresh_lab: Lab) -> None:
    result = run_cli("lab", "grow", "--dir", str(fresh_lab.layout.root), "--set", "rs1")
    assert result.returncode == 0, result.stdout + result.stderr
    lab = Lab.existing(fresh_lab.layout.root)
    pids = [read_pid(lab.layout.host(n).pidfile) for n in ("node5", "node6")]
    assert all(mongod_alive(p) for p in pids)
    assert {"rs1/SECONDARY"} == {p.state for p in lab.processes() if p.name in ("node5", "node6")}
    down = run_cli("lab", "down", "--dir", str(lab.layout.root))
    assert down.returncode == 0, down.stdout + down.stderr
    assert not any(mongod_alive(p) for p in pids)
