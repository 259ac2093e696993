"""Pure tests of the catch-up translation (change event -> target writes), the position file and error triage."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from bson import Int64, ObjectId, Timestamp
from pymongo import DeleteOne, InsertOne, ReplaceOne, UpdateOne
from pymongo.errors import AutoReconnect, BulkWriteError, NotPrimaryError, OperationFailure

from splitter.catchup.apply import (
    DdlOp,
    Lookup,
    UnsupportedChange,
    get_path,
    resolve_lookup,
    source_filter,
    translate,
    update_touches_key,
)
from splitter.catchup.source import history_lost_error, is_history_lost, is_transient
from splitter.errors import OperationalError
from splitter.routing import Routing
from splitter.store.catchup_position import Position, PositionStore, next_timestamp, read_status, token_time

ROUTING = Routing(remainders={"rs1": 0, "rs2": 1}, databases={"app": None, "shop": "customer"},
                  collections={"app.orders": "owner.id"}, exclude=["app.audit"])
ODD = ROUTING.half_filter("user_id", "rs2")


def event(op: str, coll: str = "users", db: str = "app", **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": {"_data": "82AA"}, "operationType": op, "ns": {"db": db, "coll": coll},
                           "clusterTime": Timestamp(100, 1)}
    doc.update(extra)
    return doc


def doc_event(op: str, _id: Any, full: dict[str, Any] | None, coll: str = "users", **extra: Any) -> dict[str, Any]:
    return event(op, coll, documentKey={"_id": _id}, fullDocument=full, **extra)


def upd(fields: dict[str, Any] | None = None, removed: list[str] | None = None) -> dict[str, Any]:
    return {"updateDescription": {"updatedFields": fields or {}, "removedFields": removed or [],
                                  "truncatedArrays": []}}


def run(ev: dict[str, Any], target: str = "rs2"):
    return translate(ev, ROUTING, target)


# -- documents ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["insert", "replace"])
def test_target_half_document_is_upserted(op: str) -> None:
    full = {"_id": 3, "user_id": 3, "name": "c"}
    tr = run(doc_event(op, 3, full))
    assert tr.outcome == "applied" and tr.namespace == ("app", "users")
    assert tr.writes == [InsertOne(full) if op == "insert" else ReplaceOne({"_id": 3}, full, upsert=True)]


def test_update_applies_its_description_to_the_target_half_copy() -> None:
    tr = run(doc_event("update", 3, None, **upd({"name": "c", "a.b": 2}, removed=["old"])))
    assert tr.outcome == "applied" and tr.lookup is None
    assert tr.writes == [UpdateOne({"_id": 3, **ODD}, {"$set": {"name": "c", "a.b": 2}, "$unset": {"old": ""}})]
    assert run(doc_event("update", 3, None, **upd())).writes == []  # nothing to do


def test_int64_key_counts_as_integer() -> None:
    full = {"_id": ObjectId(), "user_id": Int64(7)}
    assert run(doc_event("insert", full["_id"], full)).writes == [InsertOne(full)]


def test_other_half_insert_is_skipped() -> None:
    assert run(doc_event("insert", 4, {"_id": 4, "user_id": 4})).outcome == "skipped"


@pytest.mark.parametrize("desc", [upd({"user_id": 4}), upd(removed=["user_id"]), upd({"n": 1}) | {
    "updateDescription": {"updatedFields": {}, "removedFields": [], "truncatedArrays": [{"field": "a", "newSize": 1}]}},
    {"updateDescription": {"updatedFields": {"a.b": 1}, "disambiguatedPaths": {"a.b": ["a", "b"]}}}])
def test_updates_the_description_cannot_express_ask_for_the_document(desc: dict[str, Any]) -> None:
    tr = run(doc_event("update", 3, None, **desc))
    assert tr.writes == [] and tr.lookup == Lookup(3, "user_id", Timestamp(100, 1))  # read at least as new


def test_lookup_resolution() -> None:
    look = Lookup(3, "user_id")
    assert resolve_lookup({"_id": 3, "user_id": 5}, look, ROUTING, "rs2") == (
        "applied", [ReplaceOne({"_id": 3}, {"_id": 3, "user_id": 5}, upsert=True)])
    assert resolve_lookup({"_id": 3, "user_id": 4}, look, ROUTING, "rs2") == ("applied", [DeleteOne({"_id": 3})])
    assert resolve_lookup({"_id": 3}, look, ROUTING, "rs2") == ("unclaimed", [DeleteOne({"_id": 3})])
    assert resolve_lookup(None, look, ROUTING, "rs2") == ("applied", [DeleteOne({"_id": 3})])
    after = resolve_lookup(None, look, ROUTING, "rs2", before_switch=False)
    assert after == ("applied", [DeleteOne({"_id": 3, **ODD})])


def test_replace_into_the_other_half_deletes_from_the_target() -> None:
    assert run(doc_event("replace", 3, {"_id": 3, "user_id": 8})).writes == [DeleteOne({"_id": 3})]
    after = translate(doc_event("replace", 3, {"_id": 3, "user_id": 8}), ROUTING, "rs2", before_switch=False)
    assert after.writes == [DeleteOne({"_id": 3, **ODD})]


@pytest.mark.parametrize("value", [None, "7", 7.0, True])
def test_unclaimed_documents_are_never_written(value: Any) -> None:
    full = {"_id": 9, "name": "n"} if value is None else {"_id": 9, "user_id": value}
    tr = run(doc_event("insert", 9, full))
    assert tr.outcome == "unclaimed" and tr.writes == []


def test_delete_is_by_id_in_any_half_before_the_switch_and_in_the_half_after() -> None:
    tr = run(event("delete", "events", documentKey={"_id": "e1"}))
    assert tr.outcome == "applied" and tr.writes == [DeleteOne({"_id": "e1"})]
    tr = translate(event("delete", "events", documentKey={"_id": "e1"}), ROUTING, "rs2", before_switch=False)
    assert tr.writes == [DeleteOne({"_id": "e1", **ODD})]


def test_per_collection_and_per_database_keys() -> None:
    full = {"_id": 1, "owner": {"id": 11}, "user_id": 2}
    assert run(doc_event("insert", 1, full, coll="orders")).outcome == "applied"
    tr = run(doc_event("update", 1, None, coll="orders", **upd({"owner": {"id": 12}})))
    assert tr.lookup == Lookup(1, "owner.id", Timestamp(100, 1))
    tr = run(doc_event("update", 1, None, coll="orders", **upd({"user_id": 12})))
    assert tr.writes == [UpdateOne({"_id": 1, **ROUTING.half_filter("owner.id", "rs2")}, {"$set": {"user_id": 12}})]
    shop = event("insert", "carts", db="shop", documentKey={"_id": 1}, fullDocument={"_id": 1, "customer": 5})
    assert run(shop).outcome == "applied"
    assert run(shop, target="rs1").outcome == "skipped"


def test_key_on_id_uses_and() -> None:
    routing = Routing(remainders={"a": 0, "b": 1}, databases={"app": "_id"})
    tr = translate(event("delete", documentKey={"_id": 5}), routing, "b", before_switch=False)
    assert tr.writes == [DeleteOne({"$and": [{"_id": 5}, ROUTING.half_filter("_id", "rs2")]})]


def test_negative_keys_follow_the_server() -> None:  # -3 % 2 is -1 on the server: no set claims it
    assert run(doc_event("insert", 1, {"_id": 1, "user_id": -3})).outcome == "unclaimed"


def test_source_filter_drops_inserts_of_other_halves_per_key() -> None:
    match = source_filter(ROUTING, "rs2")
    assert match["ns.db"] == {"$in": ["app", "shop"]}
    clauses = {(c["ns.db"], json.dumps(c.get("ns.coll"))): c for c in match["$nor"]}
    assert clauses[("app", json.dumps({"$nin": ["orders"]}))]["$nor"] == [ROUTING.half_filter("fullDocument.user_id",
                                                                                              "rs2")]
    assert clauses[("app", '"orders"')]["$nor"] == [ROUTING.half_filter("fullDocument.owner.id", "rs2")]
    assert clauses[("shop", "null")]["$nor"] == [ROUTING.half_filter("fullDocument.customer", "rs2")]
    assert all(c["operationType"] == "insert" for c in match["$nor"])


@pytest.mark.parametrize("ns", [("app", "audit"), ("other", "users"), ("app", "system.views")])
def test_namespaces_that_are_not_routed_are_skipped(ns: tuple[str, str]) -> None:
    ev = event("insert", ns[1], db=ns[0], documentKey={"_id": 1}, fullDocument={"_id": 1, "user_id": 1})
    tr = run(ev)
    assert tr.outcome == "skipped" and tr.writes == []


def test_update_touches_key_paths() -> None:
    assert update_touches_key(upd({"user_id": 1}), "user_id")
    assert update_touches_key(upd({"owner": {"id": 1}}), "owner.id")
    assert update_touches_key(upd({"owner.id": 1}), "owner")
    assert not update_touches_key(upd({"user_idx": 1}), "user_id")
    assert update_touches_key({"updateDescription": {"truncatedArrays": [{"field": "user_id", "newSize": 0}]}},
                              "user_id")
    assert get_path({"a": {"b": 3}}, "a.b") == 3 and get_path({"a": 1}, "a.b") is None


# -- indexes and fatal events --------------------------------------------------------------------------
def test_create_and_drop_indexes() -> None:
    spec = {"v": 2, "key": {"seq": 1}, "name": "seq_1", "sparse": True}
    tr = run(event("createIndexes", "events", operationDescription={"indexes": [spec]}))
    assert tr.outcome == "index" and tr.index is not None
    assert tr.index.action == "create" and tr.index.create_specs() == [spec]
    tr = run(event("dropIndexes", "events", operationDescription={"indexes": [spec]}))
    assert tr.index is not None and tr.index.action == "drop" and tr.index.names == ["seq_1"]
    tr = run(event("createIndexes", "audit", operationDescription={"indexes": [spec]}))
    assert tr.outcome == "skipped" and tr.index is None


@pytest.mark.parametrize(("ev", "ddl"), [
    (event("drop", "users"), DdlOp("drop")),
    (event("rename", "users", to={"db": "app", "coll": "users_old"}), DdlOp("rename", ("app", "users_old"))),
    (event("rename", "tmp.agg_out.1", to={"db": "app", "coll": "users"}), DdlOp("rename", ("app", "users"))),
    (event("dropDatabase", db="app", ns={"db": "app"}), DdlOp("dropDatabase")),
])
def test_drop_rename_and_drop_database_are_replayed(ev: dict[str, Any], ddl: DdlOp) -> None:
    tr = run(ev)
    assert tr.outcome == "ddl" and tr.ddl == ddl


@pytest.mark.parametrize("ev", [
    event("rename", "users", to={"db": "app", "coll": "audit"}),      # into an excluded collection
    event("rename", "users", to={"db": "other", "coll": "users"}),    # out of the routed databases
    event("rename", "audit", to={"db": "app", "coll": "users"}),      # from a collection the target never follows
    event("invalidate"),
])
def test_changes_across_the_routing_boundary_stop_the_catch_up(ev: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedChange) as info:
        run(ev)
    assert isinstance(info.value, OperationalError) and "--skip-event" in (info.value.hint or "")


def test_drop_of_a_collection_that_is_not_routed_is_fine() -> None:
    assert run(event("drop", "audit")).outcome == "skipped"
    assert run(event("dropDatabase", db="other", ns={"db": "other"})).outcome == "skipped"


def test_collmod_is_skipped_with_a_note() -> None:
    tr = run(event("modify", "users", operationDescription={"validator": {}}))
    assert tr.outcome == "skipped" and tr.note and "rs2" in tr.note
    assert run(event("create", "new", operationDescription={"idIndex": {}})).note is None


# -- position file -------------------------------------------------------------------------------------
def test_position_roundtrip_atomic_and_private(tmp_path: Path) -> None:
    store = PositionStore(tmp_path / "state", "rs2")
    assert store.load() is None and read_status(tmp_path / "state", "rs2") is None
    pos = Position("rs2", Timestamp(1700000000, 5))
    assert pos.applied_through == Timestamp(1700000000, 5)
    pos.resume_token = {"_data": "826553F1000000000A2B022C0100296E5A1004"}
    pos.resume_time = token_time(pos.resume_token)
    pos.counters["applied"] = 7
    store.save(pos)
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    raw = json.loads(store.path.read_text())
    assert raw["split_optime"] == {"t": 1700000000, "i": 5}
    assert raw["resume_token"] == "826553F1000000000A2B022C0100296E5A1004"
    assert raw["resume_time"] == {"t": 0x6553F100, "i": 10}
    loaded = store.load()
    assert loaded is not None and loaded.resume_token == pos.resume_token and loaded.counters["applied"] == 7
    assert loaded.applied_through == Timestamp(0x6553F100, 10)
    status = read_status(tmp_path / "state", "rs2")
    assert status is not None and status["applied_through"] == {"t": 0x6553F100, "i": 10}
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["catchup-rs2.json"]


def test_token_time_and_next_timestamp() -> None:
    assert token_time({"_data": "826B047585000001522B02"}) == Timestamp(0x6B047585, 0x152)
    assert token_time(None) is None and token_time({"_data": "XYZ"}) is None
    assert next_timestamp(Timestamp(5, 1)) == Timestamp(5, 2)
    assert next_timestamp(Timestamp(5, 0xFFFFFFFF)) == Timestamp(6, 0)


def test_unreadable_position_is_an_operational_error(tmp_path: Path) -> None:
    (tmp_path / "catchup-rs2.json").write_text("{not json")
    with pytest.raises(OperationalError):
        PositionStore(tmp_path, "rs2").load()


# -- error triage --------------------------------------------------------------------------------------
def test_error_triage() -> None:
    assert is_transient(AutoReconnect("x")) and is_transient(NotPrimaryError("x"))
    assert is_transient(OperationFailure("x", code=11602))
    assert not is_transient(OperationFailure("x", code=11000))
    assert not is_transient(OperationFailure("history", code=286))
    assert is_history_lost(OperationFailure("history", code=286))
    assert is_transient(BulkWriteError({"writeErrors": [], "writeConcernErrors": [{"code": 64}]}))
    assert not is_transient(BulkWriteError({"writeErrors": [{"code": 11000}], "writeConcernErrors": []}))
    err = history_lost_error("rs2", Timestamp(1, 0), None, "oldest is 5:1")
    assert "split optime 1:0 is no longer in rs1's oplog" in err.message and "re-split" in (err.hint or "")


# -- keeping up: what status shows -------------------------------------------------------------------------------
def test_status_shows_whether_the_catch_up_keeps_up(tmp_path: Path) -> None:
    from splitter.cli.status_cmd import _catch_up_line

    pos = Position("rs2", Timestamp(1700000000, 5), lag_seconds=4.0, lag_events=12_000, rate_per_second=9000.0,
                   source_rate_per_second=14_000.0, drain_estimate_seconds=None)
    PositionStore(tmp_path, "rs2").save(pos)
    doc = read_status(tmp_path, "rs2")
    assert doc is not None and doc["source_rate_per_second"] == 14_000.0 and doc["drain_estimate_seconds"] is None
    assert "source writes 14,000.0 entries/s, [bold red]not keeping up[/]" in _catch_up_line("rs2", doc)
    doc.update(drain_estimate_seconds=1.5, lag_events=300)
    assert "drains in ~1.5s" in _catch_up_line("rs2", doc)


def test_rates_estimate_the_drain_from_the_source_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    from splitter.catchup import rates

    clock = [100.0]
    monkeypatch.setattr(rates, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    latest = iter([Timestamp(1000, 1), Timestamp(1010, 1)])
    monkeypatch.setattr(rates, "last_write_ts", lambda _source: next(latest))
    counts = {(Timestamp(900, 1), None): 5000, (Timestamp(1000, 1), Timestamp(1010, 1)): 10_000,
              (Timestamp(905, 1), None): 2000}
    monkeypatch.setattr(rates, "events_behind", lambda _s, _dbs, through, upto=None: counts[through, upto])
    r = rates.Rates(object(), ["app"], 0)  # type: ignore[arg-type]
    pos = Position("rs2", Timestamp(900, 1), resume_time=Timestamp(900, 1))
    first = r.measure(pos)
    assert first["lag_events"] == 5000 and first["source_rate_per_second"] is None
    pos.resume_time, clock[0] = Timestamp(905, 1), 110.0
    second = r.measure(pos)
    # 10,000 written in 10 s; the lag fell from 5,000 to 2,000: 1,300 entries/s consumed; 2,000 left
    assert second["source_rate_per_second"] == 1000.0 and second["drain_estimate_seconds"] == round(2000 / 1300, 1)
    assert second["keeping_up"] is True
    assert "drains in ~1.5s" in rates.Rates.describe(second)


def test_a_filtered_stream_s_inserts_are_taken_as_the_server_matched_them() -> None:
    """The worker's stream matches rs2's inserts on the server (`source_filter`, the half filter verify and cleanup
    use): such an insert is written without a second look at its key; unfiltered, the key is still checked."""
    asked: list[tuple[str, str]] = []

    def routed_of(db: str, coll: str) -> Any:
        asked.append((db, coll))
        return ROUTING.routed(db, coll)

    full = {"_id": 4, "user_id": 4}
    filtered = translate(doc_event("insert", 4, full), ROUTING, "rs2", routed_of=routed_of, inserts_filtered=True)
    assert filtered.writes == [InsertOne(full)] and asked == [("app", "users")]
    assert run(doc_event("insert", 4, full)).outcome == "skipped"
    excluded = translate(doc_event("insert", 5, {"_id": 5, "user_id": 5}, coll="system.views"), ROUTING, "rs2",
                         inserts_filtered=True)
    assert excluded.outcome == "skipped" and excluded.writes == []  # not routed: never written
