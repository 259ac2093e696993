"""Issue 19's whole story on one lab, under an application that never stops writing and follows the routing
document: split rs1 into rs1 + rs2 (% 2) and clean up, grow rs1 onto node5 + node6, split rs1 again into rs1 + rs3
(% 4, rs1 keeps 0, rs3 gets 2, rs2 keeps 1 and 3) and clean up. At the end every acknowledged write is on the set
that owns its user with its last value, each set holds exactly its residues, and the topology is the story's.

Step 1 covers tests/test_split_e2e.py::test_full_split_with_a_writer_that_never_fails_then_cleanup (its writer is
LabApp here, which also updates and deletes, so the interlock keeps what the app deleted on the owner until
--remove-orphans: the `kept_by_interlock == 0` of that test becomes "kept = exactly what the app deleted")."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from pymongo import MongoClient

from splitter.lab.app import LEDGER, LabApp
from splitter.lab.lab import Lab
from tests.helpers import rs1_client, rs2_client, run_cli

# Two splits, a grow and three cleanups under a live application: minutes each on a loaded machine.
pytestmark = [pytest.mark.mongod, pytest.mark.timeout(3600)]

SEEDED = ("users", "events", "sessions")   # loaded by the lab; the application writes only app.ledger
ROUTED = (*SEEDED, LEDGER)
FIRST = {0: "rs1", 1: "rs2"}
SECOND = {0: "rs1", 1: "rs2", 2: "rs3", 3: "rs2"}


def _client(lab: Lab, set_name: str, *nodes: str) -> MongoClient:
    seeds = ",".join(lab.layout.host(n).host for n in nodes)
    return MongoClient(f"mongodb://{seeds}/?replicaSet={set_name}&retryWrites=true", serverSelectionTimeoutMS=30000)


def _keys(client: MongoClient, collection: str) -> dict:
    """_id -> user_id of every document of one collection."""
    return {d["_id"]: d["user_id"] for d in client.app[collection].find({}, {"user_id": 1})}


def _owned(keys: dict, owners: dict[int, str], set_name: str) -> set:
    return {i for i, u in keys.items() if owners[u % len(owners)] == set_name}


def _cli(*args: str) -> str:
    result = run_cli(*args, timeout=2400)
    assert result.returncode == 0, (args, result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout


def _split(config: str, app: LabApp, new_set: str, connect: Callable[[], MongoClient]) -> MongoClient:
    """`run --yes` to the catch-up, client v2 (knows the new set, made once it exists: a client made before has
    dropped its seeds) deployed, then `run --yes` through the cutover (on the lab inventory it finalizes by itself
    after the verification). Returns the new set's client."""
    _cli("run", "-c", config, "--yes", "--until", "catch-up")
    client = connect()
    app.connect(new_set, client)
    assert "split complete" in _cli("run", "-c", config, "--yes")
    return client


def _cleanup(config: str, *extra: str) -> dict[str, dict]:
    out = _cli("cleanup", "-c", config, "--set", "both", "--json", *extra)
    report = json.loads(out.strip().splitlines()[-1])
    assert report["ok"], report
    return {s["set"]: s for s in report["sets"]}


def _by_ns(report: dict) -> dict[str, dict]:
    return {c["namespace"].split(".", 1)[1]: c for c in report["collections"]}


def _clean_both(config: str, app: LabApp, sets: dict[str, MongoClient], owners: dict[int, str], *,
                again: bool = True) -> None:
    """Cleanup of the split's two sets to the end: each deletes exactly the documents it no longer owns that the
    owner holds; what the interlock keeps is exactly what the application deleted on the owner (orphans), which
    --remove-orphans then deletes; a third run has nothing left to do."""
    strays = {s: {c: set(keys) - _owned(keys, owners, s) for c in ROUTED for keys in [_keys(cl, c)]}
              for s, cl in sets.items()}
    first = _cleanup(config, "--batch-size", "300", "--exact-counts")
    kept: dict[str, int] = {}
    for set_name, report in first.items():
        assert report["done"] and report["bad_keys"] == 0, report
        by_ns = _by_ns(report)
        for c in SEEDED:  # nobody writes these: the interlock finds every one on its owner
            assert by_ns[c]["deleted"] == len(strays[set_name][c]) and by_ns[c]["kept_by_interlock"] == 0, (c, report)
        ledger = by_ns[LEDGER]
        assert ledger["deleted"] + ledger["kept_by_interlock"] == len(strays[set_name][LEDGER]), report
        assert set(ledger["kept_by"]) <= {"missing"}, report
        left = {i for i in _keys(sets[set_name], LEDGER) if i in strays[set_name][LEDGER]}
        assert len(left) == ledger["kept_by_interlock"]
        with app._lock:
            assert all(app.values[i] is None for i in left), "the interlock kept a document the app did not delete"
        kept[set_name] = len(left)
    orphans = _cleanup(config, "--remove-orphans")
    for set_name, report in orphans.items():
        assert report["deleted"] == 0 and report["orphans_in_flight"] == 0, report
        assert report["orphans_removed"] == kept[set_name], report
    for set_name, client in sets.items():
        for c in ROUTED:
            keys = _keys(client, c)
            assert set(keys) == _owned(keys, owners, set_name), (set_name, c)
    if again:
        third = _cleanup(config, "--remove-orphans")
        assert all(s["deleted"] == 0 and s["orphans_removed"] == 0 for s in third.values()), third


def _members(client: MongoClient) -> list[tuple[str, bool, int]]:
    config = client.admin.command("replSetGetConfig")["config"]
    return sorted((m["host"], bool(m.get("arbiterOnly")), m.get("votes", 1)) for m in config["members"])


def _assert_topology(lab: Lab, sets: dict[str, tuple[str, ...]], clients: dict[str, MongoClient]) -> None:
    states = {p.name: p.state for p in lab.processes()}
    for set_name, (data1, data2, arbiter) in sets.items():
        assert sorted(states[n] for n in (data1, data2, arbiter)) == [
            f"{set_name}/ARBITER", f"{set_name}/PRIMARY", f"{set_name}/SECONDARY"], states
        host = lab.layout.host
        assert _members(clients[set_name]) == sorted([(host(data1).host, False, 1), (host(data2).host, False, 1),
                                                      (host(arbiter).host, True, 1)])


def _check_app(app: LabApp, owner_of: Callable[[int], str] | None = None) -> None:
    assert app.failures == [], app.failures[:5]
    result = app.check(owner_of)
    assert result.ok, result.problems[:10]
    assert result.checked > 50 and result.deleted_checked > 5


def test_split_grow_and_split_again_by_4_under_a_live_app(fresh_lab: Lab) -> None:
    lab, root = fresh_lab, str(fresh_lab.layout.root)
    config = str(lab.layout.config_path)
    rs1 = rs1_client(lab)
    seeded = {c: _keys(rs1, c) for c in SEEDED}
    refused = run_cli("cleanup", "-c", config, "--set", "both")
    assert refused.returncode == 2 and "cutover" in refused.stderr, refused.stderr

    # The app's final check (after it stopped) is the story's claim; a check while it writes would race it.
    app = LabApp({"rs1": rs1}, "rs1", interval=0.02).start()
    try:
        # 1. rs1 -> rs1 + rs2 by % 2, through the cutover; cleanup of both to the end.
        rs2 = _split(config, app, "rs2", lambda: rs2_client(lab))
        _assert_topology(lab, {"rs1": ("node1", "node2", "arbiter1"), "rs2": ("node3", "node4", "arbiter2")},
                         {"rs1": rs1, "rs2": rs2})
        for c in SEEDED:  # each set a complete copy before the cleanup
            assert _keys(rs1, c) == seeded[c] and _keys(rs2, c) == seeded[c], c
        assert app.acknowledged > 100 and app.failures == []
        _clean_both(config, app, {"rs1": rs1, "rs2": rs2}, FIRST)

        # 2. rs1 grows onto node5 + node6 while the application writes: no write of rs1's users fails.
        _cli("lab", "grow", "--dir", root, "--set", "rs1", "--no-run")
        lab = Lab.existing(lab.layout.root)
        started = time.monotonic()
        assert "grow complete" in _cli("grow", "run", "-c", f"{root}/grow-rs1.yaml")
        ended = time.monotonic()
        with app._lock:
            during = [op for op in app.ops if op.acked_by == "rs1" and started <= op.started and op.ended <= ended]
        assert len(during) > 50
        assert [op for op in during if op.attempts > 1] == []  # not even a retried attempt
        assert app.failures == []

        # 3. rs1 -> rs1 + rs3 by % 4 (node5 + node6 move, arbiter1 stays, rs3 gets arbiter3); cleanup of both.
        _cli("lab", "split-again", "--dir", root, "--set", "rs1", "--target", "rs3")
        lab = Lab.existing(lab.layout.root)
        second = f"{root}/split-rs3.yaml"
        assert lab.layout.host("arbiter3").port == lab.layout.base_port + 80
        rs3 = _split(second, app, "rs3", lambda: _client(lab, "rs3", "node5", "node6"))
        published = app.follower.refresh()
        assert published.owners == {str(r): s for r, s in SECOND.items()}
        # Its epochs continue the first split's (final at 2 on rs1 and rs2): split 3, switched 4.
        assert published.epoch == 4 and rs2.splitter.routing.find_one()["epoch"] == 2
        _clean_both(second, app, {"rs1": rs1, "rs3": rs3}, SECOND, again=False)
    finally:
        app.stop()

    # 4. Every acknowledged write on its owner with its last value (nothing deleted came back); each set holds
    # exactly its residues of the seeded collections (and of the ledger); the story's topology.
    _check_app(app, lambda u: SECOND[u % 4])
    assert app.follower.current is not None and app.follower.current.state == "final"
    clients = {"rs1": rs1, "rs2": rs2, "rs3": rs3}
    for c in SEEDED:
        for set_name, client in clients.items():
            assert set(_keys(client, c)) == _owned(seeded[c], SECOND, set_name), (set_name, c)
    for set_name, client in clients.items():
        keys = _keys(client, LEDGER)
        assert keys and set(keys) == _owned(keys, SECOND, set_name), set_name
    _assert_topology(lab, {"rs1": ("node1", "node2", "arbiter1"), "rs2": ("node3", "node4", "arbiter2"),
                           "rs3": ("node5", "node6", "arbiter3")}, clients)
