"""The cleanup on real mongod, against what a live application does after `finalize`: keys that moved half, documents
it deleted on their owner (orphans), writes still on their way (late), an unhealthy secondary, rising latency.

One pair of labs for the file (lab A stands in for rs1, lab B for rs2, as in test_cleanup.py); every test puts the
documents and positions back as they were before it starts. While the cleanups run, an application writes each
document on the set that owns its key (inserts, updates, deletes) and every acknowledged write is checked at the
end, with its last value, on that set.
"""

from __future__ import annotations

import json
import random
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pymongo import MongoClient
from pymongo.write_concern import WriteConcern

from splitter.cleanup import orphans
from splitter.cleanup.budget import Budget
from splitter.cleanup.throttle import Limits
from splitter.cli.cleanup_cmd import cleanup
from splitter.config import load_config
from splitter.events import EventBus, EventType, Recorder
from splitter.lab.lab import Lab
from splitter.lab.layout import COLLECTIONS, DATABASE, KEY
from splitter.store.audit import AuditLog
from splitter.store.files import StateFiles
from splitter.waiting import wait_until
from tests.conftest import BASE, DEFAULT_DOCS
from tests.helpers import BackgroundWriter
from tests.test_cleanup import Pair, ids, make_pair, record_cutover, use_pair

pytestmark = pytest.mark.mongod
PAIR_OFFSETS = (400, 500)
MAJORITY = WriteConcern("majority")
MOVED = 6


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, lab_cache: Path) -> Iterator[Pair]:
    labs: list[Lab] = []

    def start() -> Lab:
        lab = Lab(tmp_path_factory.mktemp("cleanup-pair"), BASE + PAIR_OFFSETS[len(labs)])
        labs.append(lab)
        lab.up(DEFAULT_DOCS, cache=lab_cache)
        return lab

    try:
        yield make_pair(start)
    finally:
        for lab in labs:
            lab.down()
            shutil.rmtree(lab.layout.root, ignore_errors=True)


@pytest.fixture
def fresh(pair: Pair) -> Pair:
    """The pair as make_pair left it: both sets hold `before`, no cleanup position, the cutover final."""
    for client in (pair.ca, pair.cb):
        db = client.get_database(DATABASE, write_concern=MAJORITY)
        for name in COLLECTIONS:
            db[name].delete_many({})
            db[name].insert_many(list(pair.before[name].values()))
    state = load_config(pair.a.layout.config_path).state_path
    shutil.rmtree(StateFiles(state).root / "cleanup", ignore_errors=True)
    record_cutover(state)
    return pair


def owner_client(p: Pair, set_name: str) -> MongoClient:
    return p.clients(set_name)[0]


@dataclass
class OwnerWriter(BackgroundWriter):
    """The application after finalize: inserts, updates and deletes documents of both halves, each on the set
    that owns its key, and remembers every acknowledged write (None: deleted)."""

    p: Pair
    avoid: set[Any]
    seed: int = 7
    interval: float = 0.01
    model: dict[tuple[str, str, Any], dict[str, Any] | None] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.pool = {c: [i for i, d in docs.items() if self.p.routing.owner(d.get(KEY)) and i not in self.avoid]
                     for c, docs in self.p.before.items()}

    def write(self, n: int) -> None:
        name = self.rng.choice(COLLECTIONS)
        op = self.rng.random()
        if op < 0.3:
            doc = {"_id": f"app-{self.seed}-{n}", KEY: self.rng.randrange(10_000), "n": n}
            owner = self.p.routing.owner(doc[KEY])
            owner_client(self.p, owner)[DATABASE][name].insert_one(doc)
            self.model[(owner, name, doc["_id"])] = doc
            return
        _id = self.rng.choice(self.pool[name])
        owner = self.p.routing.owner(self.p.before[name][_id][KEY])
        current = self.model.get((owner, name, _id), self.p.before[name][_id])
        if current is None:
            return
        coll = owner_client(self.p, owner)[DATABASE][name]
        if op < 0.8:
            coll.update_one({"_id": _id}, {"$set": {"n": n}})
            self.model[(owner, name, _id)] = {**current, "n": n}
        else:
            coll.delete_one({"_id": _id})
            self.model[(owner, name, _id)] = None

    def check(self) -> None:
        """Every acknowledged write is on its owner with its last value; deleted documents are absent there."""
        assert not self.failures, self.failures[:3]
        assert len(self.model) > 50
        wrong = [key for key, doc in self.model.items()
                 if owner_client(self.p, key[0])[DATABASE][key[1]].find_one({"_id": key[2]}) != doc]
        assert wrong == []

    def deleted(self) -> set[tuple[str, Any]]:
        return {(name, _id) for (_owner, name, _id), doc in self.model.items() if doc is None}


def move_keys(p: Pair) -> dict[str, dict[str, dict[str, Any]]]:
    """After the cutover each owner moves MOVED of its users to the other half (an order moved to another
    customer): the current versions, by the set that holds them."""
    current: dict[str, dict[str, dict[str, Any]]] = {"rs1": {}, "rs2": {}}
    for set_name in ("rs1", "rs2"):
        mine = [d for d in p.before["users"].values() if p.routing.owner(d.get(KEY)) == set_name][:MOVED]
        coll = owner_client(p, set_name)[DATABASE].get_collection("users", write_concern=MAJORITY)
        for doc in mine:
            coll.update_one({"_id": doc["_id"]}, {"$inc": {KEY: 1}, "$set": {"moved": True}})
            current[set_name][doc["_id"]] = coll.find_one({"_id": doc["_id"]})
    return current


@pytest.mark.parametrize("choice", ["rs1", "rs2", "both"])
def test_a_key_moved_after_the_cutover_keeps_every_current_version(fresh: Pair, choice: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    p = fresh
    current = move_keys(p)
    writer = OwnerWriter(p, avoid={i for docs in current.values() for i in docs}).start()
    use_pair(monkeypatch, p)
    args = ["-c", str(p.a.layout.config_path), "--set", choice, "--max-latency-increase", "off", "--json"]
    try:
        time.sleep(1.0)
        result = CliRunner().invoke(cleanup, args)
        deleted_before_sweep = writer.deleted()
        sweep = CliRunner().invoke(cleanup, [*args, "--remove-orphans"]) if choice == "both" else None
        time.sleep(0.5)
    finally:
        writer.stop()
    assert result.exit_code == 0, result.output
    for set_name, docs in current.items():  # the only current versions, on the sets that moved them
        coll = owner_client(p, set_name)[DATABASE]["users"]
        assert {d["_id"]: d for d in coll.find({"_id": {"$in": list(docs)}})} == docs
    writer.check()
    report = json.loads(result.stdout)
    for s in report["sets"]:
        assert s["stopped"] == "done" and s["deleted"] > 500
        # each set keeps its own moved copies and its stale copies of the other's: both in the wrong half there
        assert s["kept_by"]["wrong-half"] == 2 * MOVED, s["kept_by"]
        users = next(c for c in s["collections"] if c["namespace"] == "app.users")
        assert len(users["kept_sample"]["wrong-half"]) == 2 * MOVED
    if sweep is not None:  # what the application had deleted on each owner is gone from the other set too
        assert sweep.exit_code == 0, sweep.output
        for set_name in ("rs1", "rs2"):
            other = p.clients(set_name)[1]
            gone = [(n, i) for n, i in deleted_before_sweep if p.routing.owner(p.before[n][i][KEY]) == set_name]
            assert gone and all(other[DATABASE][n].find_one({"_id": i}) is None for n, i in gone)
        swept = json.loads(sweep.stdout)["sets"]
        assert sum(s["orphans_removed"] for s in swept) > 0
        assert all(s["kept_by"] == {} for s in swept)  # the walks were done: nothing examined twice
    audit = {r["event"] for r in AuditLog(load_config(p.a.layout.config_path).state_path).read()}
    assert {"cleanup.started", "cleanup.chunk", "cleanup.done"} <= audit


def test_orphans_are_reported_then_removed_but_not_a_document_on_its_way(fresh: Pair, tmp_path: Path) -> None:
    p = fresh
    odd = [i for i, d in p.before["users"].items() if p.routing.owner(d.get(KEY)) == "rs2"]
    deleted_by_app = odd[:5]
    p.cb[DATABASE].get_collection("users", write_concern=MAJORITY).delete_many({"_id": {"$in": deleted_by_app}})
    state = tmp_path / "state"

    kept = p.worker("rs1", state).run()  # the walk keeps them, says why, and keeps them run after run
    assert kept.kept_by() == {"missing": 5}
    assert sorted(kept.collection("app.users").kept_sample["missing"]) == sorted(deleted_by_app)
    again = p.worker("rs1", state).run()
    assert again.total("deleted") == 0 and ids(p.ca)["users"] >= set(deleted_by_app)

    # one more document of rs2's half on rs1 whose write on rs2 has not reached a majority yet (late, not deleted)
    late = {"_id": "late", KEY: 9_999}
    p.ca[DATABASE].get_collection("users", write_concern=MAJORITY).insert_one(late)
    locked = [MongoClient(p.b.layout.host(n).host, directConnection=True) for n in ("node3", "node4")]
    for node in locked:
        node.admin.command("fsync", lock=True)
    try:
        p.cb[DATABASE].get_collection("users", write_concern=WriteConcern(w=1)).insert_one(late)
        held = p.worker("rs1", state, remove_orphans=True, orphan_settle_timeout=3.0).run()
    finally:
        for node in locked:
            node.admin.command("fsyncUnlock")
            node.close()
    users = held.collection("app.users")
    assert users.orphans_removed == 0 and users.orphans_in_flight == 6  # one chunk: all six wait for rs2
    assert "did not reach its last write at the first read" in users.orphans_note
    assert "late" in ids(p.ca)["users"] and ids(p.ca)["users"] >= set(deleted_by_app)

    removed = p.worker("rs1", state, remove_orphans=True).run()
    users = removed.collection("app.users")
    assert users.orphans_removed == 5 and users.deleted == 1  # "late" is on rs2 now: the plain interlock rule
    assert not ids(p.ca)["users"] & {*deleted_by_app, "late"}
    assert p.cb[DATABASE]["users"].find_one({"_id": "late"}) == late
    assert ids(p.ca) == p.expected("rs1")


def test_a_late_write_is_removed_by_a_single_read_rule(fresh: Pair, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the settled second read, the document on its way above would have been removed."""
    p = fresh
    late = {"_id": "late", KEY: 9_999}
    p.ca[DATABASE].get_collection("users", write_concern=MAJORITY).insert_one(late)
    monkeypatch.setattr(orphans, "settle_verdict", lambda *_a, **_k: ("settled", "no check"))
    locked = [MongoClient(p.b.layout.host(n).host, directConnection=True) for n in ("node3", "node4")]
    for node in locked:
        node.admin.command("fsync", lock=True)
    try:
        p.cb[DATABASE].get_collection("users", write_concern=WriteConcern(w=1)).insert_one(late)
        p.worker("rs1", tmp_path / "state", remove_orphans=True, orphan_settle_timeout=3.0).run()
    finally:
        for node in locked:
            node.admin.command("fsyncUnlock")
            node.close()
    assert "late" not in ids(p.ca)["users"]


def _restart(lab: Lab, name: str) -> None:
    lab.adapter.run("mongod_start.yml", [name], {"mongod_mode": "replset", "replset_name": "rs1"})
    host = lab.layout.host(name).host
    with MongoClient(lab.layout.connection_string) as client:
        wait_until(f"{name} SECONDARY", lambda: any(m["name"] == host and m["stateStr"] == "SECONDARY"
                                                   for m in client.admin.command("replSetGetStatus")["members"]),
                   timeout=60, interval=0.5)


def test_max_lag_waits_while_a_secondary_is_down(fresh: Pair, tmp_path: Path) -> None:
    p = fresh
    down = p.a.layout.host("node4").host
    p.a.stop_hosts(["node4"])
    try:
        with MongoClient(p.a.layout.connection_string) as client:
            wait_until("node4 seen down", lambda: any(m["name"] == down and not m["health"] for m in
                                                      client.admin.command("replSetGetStatus")["members"]),
                       timeout=30, interval=0.5)
        held = p.worker("rs1", tmp_path / "state", limits=Limits(max_lag=10, max_runtime=4, lag_poll=0.5)).run()
    finally:
        _restart(p.a, "node4")
    assert held.stop_kind == "max-runtime" and held.total("deleted") == 0
    assert held.waits["health"] >= 3
    assert f"secondary {down} is unreachable, not a healthy SECONDARY" in held.last_wait
    assert ids(p.ca) == {c: set(docs) for c, docs in p.before.items()}
    going = p.worker("rs1", tmp_path / "state", limits=Limits(max_lag=10)).run()
    assert going.stop_kind == "done" and ids(p.ca) == p.expected("rs1")


def test_the_budget_slows_down_when_the_write_latency_rises(fresh: Pair, tmp_path: Path) -> None:
    p = fresh
    events, recorder = EventBus(), Recorder()
    events.subscribe(recorder)
    spike = threading.Event()

    def slow_secondaries() -> None:
        """Majority writes on rs1 wait ~1.5 s: two of its three secondaries stop applying for a moment."""
        locked = [MongoClient(p.a.layout.host(n).host, directConnection=True) for n in ("node3", "node4")]
        for node in locked:
            node.admin.command("fsync", lock=True)
        spike.set()
        time.sleep(1.5)
        for node in locked:
            node.admin.command("fsyncUnlock")
            node.close()

    def on_chunk(event: Any) -> None:
        if len(recorder.of(EventType.CLEANUP_CHUNK)) == 8 and not spike.is_set():
            threading.Thread(target=slow_secondaries, daemon=True).start()

    events.subscribe(on_chunk, types={EventType.CLEANUP_CHUNK})
    budget = Budget(increase=1.5, max_batch=40, start_batch=40, start_duty=0.5, calibrate=1.0, min_samples=5)
    report = p.worker("rs1", tmp_path / "state", limits=Limits(budget=budget, max_runtime=30), parallel=1,
                      events=events).run()
    assert spike.is_set() and report.stop_kind in ("done", "max-runtime")
    assert report.waits["calibrate"] >= 1.0
    assert ids(p.ca)["users"] >= p.expected("rs1")["users"]  # it deleted only the other half
    slowed = [e for e in recorder.of(EventType.CLEANUP_WAIT) if e.data["kind"] == "latency"
              and ("slowing" in e.message or "pausing" in e.message)]
    assert slowed, [e.message for e in recorder.of(EventType.CLEANUP_WAIT)]
    chunks = recorder.events
    at = chunks.index(slowed[0])
    before = [e.data["throttle"] for e in chunks[:at] if e.type is EventType.CLEANUP_CHUNK]
    after = [e.data["throttle"] for e in chunks[at:] if e.type is EventType.CLEANUP_CHUNK]
    assert before and after and _batch(after[0]) < _batch(before[-1])
    assert sum(e.data["deleted"] for e in chunks[at:] if e.type is EventType.CLEANUP_CHUNK) > 0  # and went on


def _batch(throttle: str) -> int:
    """'batch 40, 50% of the time' -> 40."""
    return int(throttle.split(",")[0].split()[1])
