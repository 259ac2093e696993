"""The cleanup's batch pipeline: the scanner (real mongod, scratch databases on the shared lab), the deleter's
write-concern order (a recording fake: what matters is which command goes when), type-exact `_id` keys, and the
position store's fsync policy."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from bson import Binary, Int64, ObjectId
from pymongo import MongoClient
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from splitter.cleanup.batches import ChunkDeleter, ChunkScanner, Examined, Sent, id_key
from splitter.cleanup.options import parse_options
from splitter.cleanup.pipeline import Flight, Pipeline
from splitter.cleanup.throttle import Limits
from splitter.config import load_config
from splitter.lab.lab import Lab
from splitter.store import cleanup_position as position_module
from splitter.store.cleanup_position import FlightChunk, InFlight, Position, PositionStore


@pytest.mark.parametrize(("sleep", "budget", "parallel", "expected"), [
    ("0s", "off", None, 4), ("25%", "off", None, 1), ("200ms", "off", None, 1), ("25%", "off", 3, 3),
    ("0s", "off", 1, 1), ("0s", "1.5x", None, 1), ("0s", "2", 2, 2)])
def test_throttled_runs_delete_one_batch_at_a_time_unless_told(sleep: str, budget: str, parallel: int | None,
                                                               expected: int) -> None:
    config = SimpleNamespace(source=SimpleNamespace(name="rs1"), target=SimpleNamespace(name="rs2"),
                             planning=SimpleNamespace(max_member_lag="10s"))
    opts = parse_options(config, "rs1", batch_size=500, parallel=parallel, sleep=sleep,  # type: ignore[arg-type]
                         max_latency_increase=budget)
    assert opts.parallel == expected
    assert opts.limits.budgeted == (budget != "off")
    assert ("--parallel", str(parallel)) in opts.schedule_args if parallel else "--parallel" not in dict(
        opts.schedule_args)


def test_id_keys_are_exact_about_bson_types() -> None:
    values = [1, 1.0, Int64(1), True, "1", b"1", Binary(b"1", 4), ObjectId(), {"a": 1}, {"a": 1.0}, [1]]
    assert len({id_key(v) for v in values}) == len(values)
    assert id_key({"a": 1, "b": 2}) != id_key({"b": 2, "a": 1})  # field order is part of a BSON document


class RecordingCollection:
    """Stands in for a pymongo Collection: records each delete_many with its write concern, start and end."""

    def __init__(self, calls: list[dict[str, Any]], fail_on: Any = None, concern: WriteConcern | None = None):
        self.calls, self.fail_on, self.concern = calls, fail_on, concern
        self.lock = threading.Lock()

    def with_options(self, write_concern: WriteConcern) -> RecordingCollection:
        clone = RecordingCollection(self.calls, self.fail_on, write_concern)
        clone.lock = self.lock
        return clone

    def delete_many(self, query: dict[str, Any], hint: Any = None) -> Any:
        ids = query["$and"][0]["_id"]["$in"]
        started = time.monotonic()
        time.sleep(0.05)
        with self.lock:
            self.calls.append({"w": self.concern.document.get("w"), "ids": ids, "start": started,
                               "end": time.monotonic()})
        if self.fail_on in ids:
            raise RuntimeError("delete failed")
        return type("Result", (), {"deleted_count": len(ids)})()


def test_deleter_sends_the_majority_batch_last_after_all_others_finished() -> None:
    calls: list[dict[str, Any]] = []
    deleter = ChunkDeleter(batch_size=10, parallel=4)
    try:
        assert deleter.chunk_size == 40
        assert deleter.delete(RecordingCollection(calls), {}, list(range(35))) == 35
    finally:
        deleter.close()
    assert sorted(len(c["ids"]) for c in calls) == [5, 10, 10, 10]
    *first, last = sorted(calls, key=lambda c: c["start"])
    assert [c["w"] for c in first] == [1, 1, 1] and last["w"] == "majority" and last["ids"] == list(range(30, 35))
    assert last["start"] >= max(c["end"] for c in first)
    assert max(c["start"] for c in first) < min(c["end"] for c in first)  # the w:1 batches ran at once


def test_deleter_waits_for_every_batch_and_skips_the_majority_one_when_one_fails() -> None:
    calls: list[dict[str, Any]] = []
    single = ChunkDeleter(batch_size=10, parallel=1)
    assert single.delete(RecordingCollection(calls), {}, [1, 2]) == 2 and calls[0]["w"] == "majority"
    calls.clear()
    deleter = ChunkDeleter(batch_size=10, parallel=4)
    try:
        with pytest.raises(RuntimeError):
            deleter.delete(RecordingCollection(calls, fail_on=0), {}, list(range(40)))
    finally:
        deleter.close()
    assert len(calls) == 3 and all(c["w"] == 1 for c in calls)  # the others finished; no majority batch was sent


def test_overlapping_deleter_returns_while_the_majority_batch_still_waits() -> None:
    calls: list[dict[str, Any]] = []
    deleter = ChunkDeleter(batch_size=10, parallel=2, overlap=True)
    try:
        sent = deleter.send(RecordingCollection(calls), {}, list(range(20)))
        assert sent.fast == 10 and not sent.majority.done()  # the w:1 batch finished, the majority one runs
        assert sent.deleted() == 20 and [c["w"] for c in calls] == [1, "majority"]
    finally:
        deleter.close()
    calls.clear()
    plain = ChunkDeleter(batch_size=10, parallel=2)  # throttled runs: durable when send returns
    assert plain.send(RecordingCollection(calls), {}, list(range(20))).majority.done() and len(calls) == 2


def _flight(ids: list[int], future: Future[int] | None = None, allowed: int | None = None) -> Flight:
    examined = Examined(ids, ids[:allowed], {"missing": ids[allowed:]} if allowed is not None else {})
    sent = Sent(0, future) if future is not None else None
    return Flight(examined, sent, FlightChunk(ids, len(examined.allowed)))


def test_pipeline_keeps_depth_chunks_unsettled_oldest_first_and_records_them_all() -> None:
    pipeline = Pipeline(depth=2)
    assert pipeline.in_flight() is None
    flights = [_flight([1, 2]), _flight([3, 4], allowed=1), _flight([5])]
    for flight in flights:
        pipeline.push(flight)
    assert pipeline.allowed == 4
    record = pipeline.in_flight(adding=FlightChunk([6], 1))
    assert record is not None and record.ids == [1, 2, 3, 4, 5, 6] and record.allowed == 5
    assert list(pipeline.due()) == flights[:1] and len(pipeline) == 2  # only the oldest goes beyond the depth
    assert list(pipeline.drain()) == flights[1:] and not pipeline


def test_pipeline_abandons_its_chunks_only_once_their_deletes_have_ended() -> None:
    pipeline = Pipeline(depth=1)
    pending: Future[int] = Future()
    pipeline.push(_flight([1], pending))
    done = threading.Event()

    def abandon() -> None:
        pipeline.abandon()
        done.set()

    thread = threading.Thread(target=abandon)
    thread.start()
    assert not done.wait(0.3)  # the majority batch still runs
    pending.set_exception(RuntimeError("not primary"))
    assert done.wait(5) and not pipeline
    thread.join()


def test_position_saves_are_atomic_always_and_durable_once_a_second(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    flags: list[bool] = []
    real = position_module.atomic_write_json

    def recording(path: Path, data: Any, *, durable: bool = True) -> None:
        flags.append(durable)
        real(path, data, durable=durable)

    monkeypatch.setattr(position_module, "atomic_write_json", recording)
    now = [100.0]
    store = PositionStore(tmp_path, "rs1", monotonic=lambda: now[0])
    pos = Position("rs1", "app.users", started=True, last_id=Int64(7))
    pos.in_flight = InFlight.of([ObjectId(), Int64(2), "3", {"k": 1}], 3)
    for step in (0.0, 0.3, 0.3, 0.5, 0.1):
        now[0] += step
        store.save(pos)
    pos.done, pos.in_flight = True, None
    store.save(pos)
    assert flags == [True, False, False, True, False, True]
    loaded = store.load("app.users")
    assert loaded.done and loaded.last_id == Int64(7) and isinstance(loaded.last_id, Int64)
    earlier = {"set_name": "rs1", "namespace": "app.users", "in_flight": {  # written before chunks existed
        "ids": [{"$numberInt": "1"}, {"$numberLong": "2"}, "x"], "allowed": 2}}
    flight = Position.from_json(earlier).in_flight
    assert flight is not None and flight.ids == [1, Int64(2), "x"] and isinstance(flight.ids[1], Int64)
    one_chunk = {"set_name": "rs1", "namespace": "app.users", "in_flight": {  # written before chunks overlapped
        "ids_bson": position_module.encode_ids([Int64(5), "y"]), "allowed": 1}}
    assert Position.from_json(one_chunk).in_flight == InFlight.of([Int64(5), "y"], 1)


def test_chunks_in_flight_are_saved_together_and_each_encoded_once(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    encoded: list[int] = []
    real = position_module.encode_ids
    monkeypatch.setattr(position_module, "encode_ids", lambda ids: encoded.append(len(ids)) or real(ids))
    store = PositionStore(tmp_path, "rs1")
    older, newer = FlightChunk([ObjectId(), ObjectId()], 1), FlightChunk([Int64(9), "z", 2.5], 3)
    pos = Position("rs1", "app.events", started=True, last_id="a")
    for chunks in ([older], [older, newer], [newer]):  # one chunk sent, a second sent, the first settled
        pos.in_flight = InFlight(chunks)
        store.save(pos)
        loaded = store.load("app.events").in_flight
        assert loaded is not None and [c.ids for c in loaded.chunks] == [c.ids for c in chunks]
        assert loaded.allowed == sum(c.allowed for c in chunks)
    assert encoded == [2, 3]


@pytest.fixture
def scratch(shared_lab: Lab) -> Any:
    client = MongoClient(shared_lab.layout.connection_string, serverSelectionTimeoutMS=10000)
    majority = WriteConcern("majority")
    this = client.get_database("scan_this", write_concern=majority).docs
    other = client.get_database("scan_other", write_concern=majority).docs
    this.insert_many([{"_id": i, "user_id": i} for i in range(100)])
    other.insert_many([{"_id": i, "user_id": i} for i in range(1, 100, 2) if i not in (51, 53)])
    try:
        yield shared_lab, this, other.with_options(read_concern=ReadConcern("majority"))
    finally:
        client.drop_database("scan_this")
        client.drop_database("scan_other")
        client.close()


def test_scanner_reads_ahead_and_examines_again_when_the_position_moved_otherwise(scratch: Any) -> None:
    lab, this, other = scratch
    routing = load_config(lab.layout.config_path).routing
    half = routing.half_filter("user_id", "rs2")
    scanner = ChunkScanner(this, other, half, routing.unclaimed_filter("user_id"))
    in_main: list[tuple[Any, ...]] = []  # examinations the caller waited for (the rest ran ahead, in the thread)
    examine = scanner.examine

    def spy(*args: Any) -> Any:
        if threading.current_thread() is threading.main_thread():
            in_main.append(args)
        return examine(*args)

    scanner.examine = spy  # type: ignore[method-assign]
    try:
        first = scanner.take(False, None, 10)
        assert first.ids == list(range(1, 21, 2)) and first.allowed == first.ids and first.kept == []
        second = scanner.take(True, first.ids[-1], 10)
        assert second.ids == list(range(21, 41, 2)) and in_main == [(False, None, 10)]  # read ahead
        again = scanner.take(True, 19, 10)  # a retried chunk: the look-ahead (from 39) does not fit, examined anew
        assert again == second and in_main[-1] == (True, 19, 10)
        third = scanner.take(True, 49, 10)
        assert third.kept == [51, 53] and 51 not in third.allowed and third.ids[0] == 51
    finally:
        scanner.close()

    assert Limits(duty_cycle=0.25).rests and Limits(sleep=0.2).rests and not Limits().rests
    # a throttled run works only inside its duty window
    resting = ChunkScanner(this, other, half, routing.unclaimed_filter("user_id"), read_ahead=False)
    try:
        resting.take(False, None, 10)
        assert resting._ahead is None
    finally:
        resting.close()


def test_scanner_counts_object_ids_on_the_other_set_and_reads_back_ids_whose_type_could_differ(
        shared_lab: Lab) -> None:
    client = MongoClient(shared_lab.layout.connection_string, serverSelectionTimeoutMS=10000)
    db_this = client.get_database("count_this", write_concern=WriteConcern("majority"))
    db_other = client.get_database("count_other", write_concern=WriteConcern("majority"))
    oids = [ObjectId() for _ in range(6)]
    db_this.docs.insert_many([{"_id": i, "user_id": 1} for i in oids] + [{"_id": 1, "user_id": 1}])
    db_other.docs.insert_many([{"_id": i, "user_id": 1} for i in oids] + [{"_id": 1.0, "user_id": 1}])
    routing = load_config(shared_lab.layout.config_path).routing
    half = routing.half_filter("user_id", "rs2")
    other = db_other.docs.with_options(read_concern=ReadConcern("majority"))
    finds: list[Any] = []
    real_find = other.find
    other.find = lambda *a, **k: finds.append(a) or real_find(*a, **k)  # type: ignore[method-assign]
    scanner = ChunkScanner(db_this.docs, other, half, routing.unclaimed_filter("user_id"), read_ahead=False)
    try:
        everything = scanner.examine(False, None, 10)
        # 1 on this set is an int, 1.0 on the other a double: a $in (and so a count) takes them for one document
        assert everything.kept_by == {"missing": [1]} and everything.allowed == oids
        assert len(finds) == 3  # the `_id`s in the half, then which of the rest exist and which have no key
        finds.clear()
        object_ids = scanner.examine(True, 1, 10)  # after the int in index order: only the ObjectIds
        assert object_ids.allowed == oids and object_ids.kept == [] and finds == []  # counted, not read back
        db_other.docs.update_one({"_id": oids[1]}, {"$set": {"user_id": 2}})  # its key moved to the other half
        db_other.docs.update_one({"_id": oids[3]}, {"$set": {"user_id": "3"}})  # a key that routes nowhere
        db_other.docs.delete_one({"_id": oids[2]})
        kept = scanner.examine(True, 1, 10)
        assert kept.kept_by == {"wrong-half": [oids[1]], "missing": [oids[2]], "bad-key": [oids[3]]}
        assert kept.allowed == [oids[0], *oids[4:]] and len(finds) == 3
    finally:
        scanner.close()
        client.drop_database("count_this")
        client.drop_database("count_other")
        client.close()
