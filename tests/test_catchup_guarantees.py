"""The scaled catch-up's guarantees on real mongod (issue 15 point 1, issue 14 items 3, 7 and 8).

One pair of labs for the module (A plays rs1, B plays rs2); every test re-copies A's app db to B at a fresh
split optime and uses its own state dir. Run with SPLITTER_TEST_BASE_PORT set to your own port range.
"""

from __future__ import annotations

import json
import shutil
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId, Timestamp, encode
from bson.raw_bson import RawBSONDocument
from bson.son import SON
from pymongo import InsertOne, MongoClient, ReplaceOne, UpdateOne
from pymongo.errors import OperationFailure

from splitter.catchup import BackgroundCatchUp, CatchUpWorker, UnsupportedChange
from splitter.catchup.applier import RAW, Applier
from splitter.catchup.apply import Lookup, Translation
from splitter.catchup.source import last_write_ts
from splitter.errors import OperationalError
from splitter.lab.lab import Lab
from splitter.routing import Routing
from splitter.store.audit import AuditLog
from splitter.verify.compare import compare_sets
from tests.conftest import BASE
from tests.helpers import config_copy, run_cli
from tests.test_catchup_worker import (
    COLLECTIONS,
    ODD,
    ROUTING,
    client,
    copy_at_optime,
    wait_for,
)

EXCLUDING = Routing(remainders={"rs1": 0, "rs2": 1}, databases={"app": None}, exclude=["app.audit"])


class Labs(tuple):
    """(source client, target client), and the source's lab (for a config)."""

    source_lab: Lab


@pytest.fixture(scope="module")
def labs(tmp_path_factory: pytest.TempPathFactory, lab_cache: Path) -> Iterator[Labs]:
    started: list[Lab] = []
    try:
        for offset in (400, 500):
            lab = Lab(tmp_path_factory.mktemp(f"catchup-lab{offset}"), BASE + offset)
            started.append(lab)
            lab.up(3000, cache=lab_cache)
        with client(started[0]) as source, client(started[1]) as target:
            pair = Labs((source, target))
            pair.source_lab = started[0]
            yield pair
    finally:
        for lab in started:
            lab.down()
            shutil.rmtree(lab.layout.root, ignore_errors=True)


def split(labs: Labs) -> Timestamp:
    source, target = labs
    for extra in ("logs", "ev", "sess", "ev_v2", "users_summary", "audit"):
        source.app.drop_collection(extra)
        target.app.drop_collection(extra)
    return copy_at_optime(source, target)


def assert_half_equal(source: MongoClient, target: MongoClient, names: tuple[str, ...] = COLLECTIONS) -> None:
    for name in names:
        want = list(source.app[name].find(ODD).sort("_id", 1))
        assert list(target.app[name].find(ODD).sort("_id", 1)) == want, f"app.{name}: rs2's half differs"


def worker(labs: Labs, state: Path, at: Timestamp, **kwargs: Any) -> CatchUpWorker:
    return CatchUpWorker(labs[0], labs[1], kwargs.pop("routing", ROUTING), "rs2", state, at, **kwargs)


# -- issue 15: parallel apply ------------------------------------------------------------------------------
@pytest.mark.mongod
def test_burst_keeps_per_id_order_and_moves_keys(labs: Labs, tmp_path: Path) -> None:
    """Each document is updated many times within one batch, keys move back and forth mid-burst: every document
    ends with its last value on the target, in the half it ends in."""
    source, target = labs
    at = split(labs)
    users = source.app.users
    ids = [d["_id"] for d in users.find({}, {"_id": 1}).sort("_id", 1).limit(40)]
    ops: list[Any] = [InsertOne({"_id": 900_000 + i, "user_id": i, "v": -1}) for i in range(400)]
    for rnd in range(25):
        for n, _id in enumerate(ids):
            ops.append(UpdateOne({"_id": _id}, {"$set": {"v": rnd, "path.deep": [rnd, n]}}))
            if (rnd + n) % 6 == 0:  # key moves: odd <-> even, several times per document in the burst
                ops.append(UpdateOne({"_id": _id}, {"$inc": {"user_id": 1}}))
            if (rnd + n) % 11 == 0:
                ops.append(ReplaceOne({"_id": _id}, {"user_id": rnd + n, "v": rnd, "replaced": True}))
    ops += [UpdateOne({"_id": _id}, {"$set": {"path": "a scalar now"}}) for _id in ids[:10]]
    users.bulk_write(ops, ordered=True)
    stats = worker(labs, tmp_path / "state", at, threads=4, batch_size=300).drain(quiet_seconds=0.5, timeout=120)
    assert stats.events > 1000 and stats.applied > 500
    assert_half_equal(source, target)
    # A crash replays from the saved position onto a later state: replaying the whole burst again converges
    # (`path.deep` no longer fits a scalar `path`: those updates fall back to the current document).
    again = worker(labs, tmp_path / "again", at, threads=4, batch_size=300)
    again.drain(quiet_seconds=0.5, timeout=120)
    assert again.position.counters["fallbacks"] > 0
    # Inserts go in unordered runs; a replayed insert meets its own `_id` and becomes the replace it means.
    assert again.position.counters["insert_replays"] == 200
    assert_half_equal(source, target)
    assert target.app.users.count_documents({**ODD, "_id": {"$in": ids}}) == users.count_documents(
        {**ODD, "_id": {"$in": ids}}) > 0
    assert target.app.users.count_documents({"_id": {"$gte": 900_000}}) == 200  # the odd half of the inserts


@pytest.mark.mongod
def test_majority_barrier_holds_the_position(labs: Labs, tmp_path: Path) -> None:
    """With rs2's secondaries not replicating, writes reach rs2's primary (w: 1) but the position is not saved;
    it is saved once they are majority-committed."""
    source, target = labs
    at = split(labs)
    status = target.admin.command("replSetGetStatus")
    secondaries = [m["name"] for m in status["members"] if m["stateStr"] == "SECONDARY"]
    nodes = [MongoClient(host, directConnection=True) for host in secondaries]
    state = tmp_path / "state"
    w = worker(labs, state, at, wtimeout_ms=1000, max_retries=10_000, lag_every=0.2)
    try:
        for node in nodes:
            node.admin.command("configureFailPoint", "stopReplProducer", mode="alwaysOn")
        background = BackgroundCatchUp(w).start()
        source.app.users.insert_many([{"_id": 800_000 + i, "user_id": 2 * i + 1} for i in range(200)])
        # Each attempt applies its first batch (w: 1) and then waits at the barrier: no attempt gets further.
        wait_for(lambda: target.app.users.count_documents({"_id": {"$gte": 800_000, "$lt": 900_000}}) > 0
                 or not background.alive, 60, "the writes to reach rs2's primary (w: 1)")
        threading.Event().wait(2.0)  # several barriers time out meanwhile
        position = state / "catchup-rs2.json"
        saved = json.loads(position.read_text()) if position.exists() else {}
        assert background.alive and not saved.get("resume_token"), "a position was saved ahead of the majority"
    finally:
        for node in nodes:
            node.admin.command("configureFailPoint", "stopReplProducer", mode="off")
            node.close()
    background.stop(60)
    w.drain(quiet_seconds=0.5, timeout=60)
    assert json.loads(position.read_text())["resume_token"] and w.position.applied_through > at
    majority = target.app.get_collection("users", read_concern=_majority())
    assert majority.count_documents({"_id": {"$gte": 800_000, "$lt": 900_000}}) == 200


@pytest.mark.mongod
def test_a_key_move_is_read_no_older_than_its_event(labs: Labs) -> None:
    """The read for a key move asks for at least the event's time (afterClusterTime): right after an election on
    the source, its new primary's majority snapshot may predate the move, and a read from before it would delete
    the moved document from the target. A read that cannot see the event's time yet is refused, not stale."""
    source, _target = labs
    doc = source.app.users.find_one(ODD)
    applier = Applier(source, labs[1], ROUTING, "rs2")
    try:
        now = last_write_ts(source)
        assert applier._read_source(("app", "users"), Lookup(doc["_id"], "user_id", now))["_id"] == doc["_id"]
        with pytest.raises(OperationFailure, match="afterClusterTime"):
            applier._read_source(("app", "users"), Lookup(doc["_id"], "user_id", Timestamp(now.time + 3600, 1)))
    finally:
        applier.close()


def _majority() -> Any:
    from pymongo.read_concern import ReadConcern
    return ReadConcern("majority")


# -- issue 14 item 3: a stale other-half copy in a unique index ---------------------------------------------
@pytest.mark.mongod
def test_duplicate_key_from_a_stale_other_half_copy_is_resolved(labs: Labs,
                                                                tmp_path: Path) -> None:
    source, target = labs
    source.app.users.update_many({}, {"$unset": {"handle": ""}})
    source.app.users.create_index("handle", unique=True, sparse=True, name="handle_unique")
    source.app.users.update_one({"_id": 2}, {"$set": {"user_id": 2, "handle": "taken"}})   # rs1's half
    source.app.users.update_one({"_id": 1}, {"$set": {"user_id": 1, "handle": "free"}})    # rs2's half
    source.app.users.update_one({"_id": 4}, {"$set": {"user_id": 4}})                      # rs1's half
    try:
        at = split(labs)
        source.app.users.update_one({"_id": 2}, {"$set": {"handle": "moved-on"}})  # not replayed: rs1's half
        source.app.users.update_one({"_id": 1}, {"$set": {"handle": "taken"}})     # rs2's copy of 2 still has it
        source.app.users.delete_one({"_id": 4})
        messages: list[str] = []
        stats = worker(labs, tmp_path / "state", at, progress=messages.append).drain(quiet_seconds=0.5, timeout=60)
        assert target.app.users.find_one({"_id": 1})["handle"] == "taken"
        assert target.app.users.find_one({"_id": 2}) is None  # the stale copy that held the value
        assert target.app.users.find_one({"_id": 4}) is None  # deletes reach the other half's stale copies
        assert stats.events >= 3 and any("removed the stale copy of _id 2" in m for m in messages)
        assert worker(labs, tmp_path / "state", at).position.counters["stale_removed"] == 1
    finally:
        source.app.users.drop_index("handle_unique")
        target.app.users.drop_index("handle_unique")


# -- a unique value held by the target's own half: deferred until the other partitions have run --------------
def _handles(target: MongoClient) -> Any:
    """app.handles on the target only: _id 1 holds handle "x", _id 3 has none; both in rs2's half (odd)."""
    coll = target.app.handles
    coll.drop()
    coll.create_index("handle", unique=True, sparse=True)
    coll.insert_many([{"_id": 1, "user_id": 1, "handle": "x"}, {"_id": 3, "user_id": 3}])
    return coll


def _update(_id: int, handle: str) -> Translation:
    return Translation("app", "handles", "applied", writes=[UpdateOne({"_id": _id}, {"$set": {"handle": handle}})])


@pytest.mark.mongod
def test_a_unique_value_freed_in_another_partition_waits_for_it(labs: Labs) -> None:
    """In stream order _id 1 gives "x" up, then _id 3 takes it; in other partitions the take may run first. It is
    then held by a document of rs2's own half (not a stale copy to remove): deferred, applied after the rest."""
    source, target = labs
    coll = _handles(target)
    applier = Applier(source, target, ROUTING, "rs2", threads=2)
    freeing, taking = _update(1, "y"), _update(3, "x")
    held = threading.Event()
    free_duplicate, ordered = applier._free_duplicate, applier._ordered

    def free_and_tell(*args: Any) -> bool:
        freed = free_duplicate(*args)
        held.set()
        return freed

    def free_only_after_the_take(coll: Any, ns: Any, ops: list, result: Any) -> Any:
        if freeing.writes[0] in ops:  # the take runs into the held value first, every time
            assert held.wait(10)
        return ordered(coll, ns, ops, result)

    applier._free_duplicate, applier._ordered = free_and_tell, free_only_after_the_take
    try:
        result = applier.apply([(0, freeing), (1, taking)])
        assert coll.find_one({"_id": 1})["handle"] == "y" and coll.find_one({"_id": 3})["handle"] == "x"
        assert result.counts["deferred"] == 1 and result.counts["stale_removed"] == 0
    finally:
        applier.close()
        coll.drop()


@pytest.mark.mongod
def test_a_unique_value_the_own_half_keeps_stops_the_catch_up(labs: Labs) -> None:
    """Nothing in the batch frees the value: an error naming the key, not a write that drops either document."""
    source, target = labs
    coll = _handles(target)
    applier = Applier(source, target, ROUTING, "rs2", threads=2)
    try:
        with pytest.raises(OperationalError, match=r"app.handles: duplicate key \{'handle': 'x'\} held by a "
                                                   r"document of rs2's own half"):
            applier.apply([(1, _update(3, "x"))])
        assert list(coll.find({}, {"_id": 1, "handle": 1}).sort("_id", 1)) == [{"_id": 1, "handle": "x"}, {"_id": 3}]
    finally:
        applier.close()
        coll.drop()


# -- issue 14 item 7: drop, rename, $out; --skip-event for the rest --------------------------------------------
@pytest.mark.mongod
def test_drop_rename_and_out_are_replayed_and_the_rest_can_be_skipped(labs: Labs,
                                                                      tmp_path: Path) -> None:
    source, target = labs
    at = split(labs)
    for name in ("ev", "sess"):  # routed collections of this test, on both sets at the split
        source.app[name].insert_many([{"_id": i, "user_id": i} for i in range(20)])
        target.app[name].insert_many([{"_id": i, "user_id": i} for i in range(20)])
    at = source.local["oplog.rs"].find_one(sort=[("$natural", -1)])["ts"]
    source.app.audit.insert_one({"_id": 1})
    source.app.logs.insert_many([{"user_id": i, "n": i} for i in range(40)])
    source.app.ev.insert_many([{"user_id": i, "late": True} for i in range(20, 30)])
    source.app.drop_collection("sess")
    source.admin.command("renameCollection", "app.ev", to="app.ev_v2")
    source.app.users.aggregate([{"$match": {"user_id": {"$lt": 100}}}, {"$project": {"user_id": 1, "x": "out"}},
                                {"$out": "users_summary"}])
    source.admin.command("renameCollection", "app.logs", to="app.audit", dropTarget=True)  # out of the routing
    state = tmp_path / "state"
    with pytest.raises(UnsupportedChange) as info:
        worker(labs, state, at, routing=EXCLUDING).drain(quiet_seconds=0.5, timeout=60)
    token = info.value.message.rsplit("event token ", 1)[1].rstrip(")")
    assert "app.logs was renamed to app.audit" in info.value.message
    names = set(target.app.list_collection_names())
    assert "sess" not in names and "ev" not in names and {"ev_v2", "users_summary"} <= names
    config = config_copy(labs.source_lab, tmp_path)  # its state dir is `state` beside it
    recorded = run_cli("catch-up", "-c", str(config), "--skip-event", token)
    assert recorded.returncode == 0, recorded.stderr
    assert any(r.get("token") == token for r in AuditLog(state).read())
    skipping = worker(labs, state, at, routing=EXCLUDING)
    skipping.drain(quiet_seconds=0.5, timeout=60)
    assert skipping.position.counters["skipped_by_operator"] == 1 and skipping.position.counters["ddl_ops"] >= 3
    assert_half_equal(source, target, ("ev_v2", "users_summary"))
    assert target.app.ev_v2.count_documents({"late": True}) == 5
    assert target.app.users_summary.count_documents({"$nor": [ODD]}) == 0  # only rs2's half of the $out result


# -- issue 14 item 8: byte-faithful replay ----------------------------------------------------------------------
def _element(kind: int, name: str, payload: bytes) -> bytes:
    return bytes([kind]) + name.encode() + b"\0" + payload


def _string(value: str) -> bytes:
    data = value.encode() + b"\0"
    return struct.pack("<i", len(data)) + data


def legacy_document(_id: int, user_id: int) -> RawBSONDocument:
    """A document pymongo cannot round-trip through dicts: a date outside Python's range, symbol, undefined,
    DBPointer and a DBRef whose fields are not in pymongo's order."""
    elements = b"".join([
        _element(0x10, "_id", struct.pack("<i", _id)),
        _element(0x10, "user_id", struct.pack("<i", user_id)),
        _element(0x09, "far", struct.pack("<q", -(2 ** 62))),
        _element(0x0E, "sym", _string("a symbol")),
        _element(0x06, "undef", b""),
        _element(0x0C, "ptr", _string("app.users") + ObjectId().binary),
        _element(0x03, "ref", encode(SON([("$id", 5), ("$ref", "users"), ("extra", 1), ("$db", "app")]))),
    ])
    return RawBSONDocument(struct.pack("<i", len(elements) + 5) + elements + b"\0")


@pytest.mark.mongod
def test_replay_is_byte_faithful(labs: Labs, tmp_path: Path) -> None:
    source, target = labs
    at = split(labs)
    raw_source = source.app.get_collection("users", codec_options=RAW)
    raw_source.insert_many([legacy_document(700_001, 1), legacy_document(700_003, 3)])
    raw_source.insert_one(legacy_document(700_002, 5))
    source.app.command({"update": "users", "updates": [
        {"q": {"_id": 700_002}, "u": RawBSONDocument(encode({"$set": {"copy": legacy_document(1, 1)}}))}]})
    source.app.command({"update": "users", "updates": [  # replace_one would decode the replacement to check it
        {"q": {"_id": 700_003}, "u": legacy_document(700_003, 7)}]})
    worker(labs, tmp_path / "state", at).drain(quiet_seconds=0.5, timeout=60)
    raw_target = target.app.get_collection("users", codec_options=RAW)
    for _id in (700_001, 700_002, 700_003):
        assert raw_target.find_one({"_id": _id}).raw == raw_source.find_one({"_id": _id}).raw, _id
    assert compare_sets(source, target, ROUTING, ["rs2"]).ok
