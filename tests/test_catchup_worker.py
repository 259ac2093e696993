"""CatchUpWorker against real mongod: lab A plays rs1 (the source), lab B plays rs2 (a copy of A at optime T).

Run with SPLITTER_TEST_BASE_PORT set to your own port range.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from bson import Timestamp
from pymongo import InsertOne, MongoClient, UpdateOne
from pymongo.errors import AutoReconnect, NotPrimaryError, ServerSelectionTimeoutError
from pymongo.write_concern import WriteConcern

from splitter.catchup import BackgroundCatchUp, CatchUpWorker, read_status
from splitter.errors import OperationalError, RetryableError
from splitter.lab.lab import Lab
from splitter.routing import Routing
from splitter.waiting import wait_until

ROUTING_ARGS = {"remainders": {"rs1": 0, "rs2": 1}, "databases": {"app": None}}
ROUTING = Routing(**ROUTING_ARGS)
COLLECTIONS = ("users", "events", "sessions")
ODD = ROUTING.half_filter("user_id", "rs2")
MAJORITY = WriteConcern("majority")


def client(lab: Lab) -> MongoClient:
    return MongoClient(lab.layout.connection_string, serverSelectionTimeoutMS=10000)


def copy_at_optime(source: MongoClient, target: MongoClient) -> Timestamp:
    """Make target's app db a copy of source's as of the returned optime (the source must be idle)."""
    split = source.local["oplog.rs"].find_one(sort=[("$natural", -1)])["ts"]
    target.drop_database("app")
    for name in COLLECTIONS:
        src, dst = source.app[name], target.app.get_collection(name, write_concern=MAJORITY)
        specs = [dict(spec) for spec in src.list_indexes() if spec["name"] != "_id_"]
        target.app.command({"createIndexes": name, "indexes": specs})
        dst.insert_many(list(src.find()), ordered=False)
    return split


class Writer(threading.Thread):
    """Writes to A (both halves, all three collections) until stopped: scripted edge cases, then random ops."""

    def __init__(self, source: MongoClient, seed: int = 1, bursts: bool = False) -> None:
        super().__init__(daemon=True)
        self.db = source.get_database("app", write_concern=MAJORITY)
        self.client = source
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.ops = 0
        self.bursts = bursts
        self.error: BaseException | None = None

    def scripted(self) -> None:
        users, events, sessions = self.db.users, self.db.events, self.db.sessions
        users.update_one({"_id": 3}, {"$set": {"user_id": 600}})          # odd -> even: must leave B
        users.update_one({"_id": 10}, {"$set": {"user_id": 601}})         # even -> odd: must appear in B
        users.update_one({"_id": 5}, {"$unset": {"user_id": ""}})         # odd -> unclaimed: must leave B
        users.replace_one({"_id": 7}, {"user_id": 7, "replaced": True})   # replace within the odd half
        users.replace_one({"_id": 9}, {"user_id": 12, "replaced": True})  # replace into the even half
        users.delete_one({"_id": 11})
        users.delete_one({"_id": 12})
        users.insert_many([{"_id": 100_001, "user_id": 1001}, {"_id": 100_002, "user_id": 1002}])
        events.create_index([("seq", 1)], name="seq_1")
        sessions.create_index([("ttl", 1)], name="tmp_ttl")
        events.update_many({"user_id": {"$lt": 10}}, {"$inc": {"bumped": 1}})
        events.delete_many({"user_id": 13})
        with self.client.start_session() as session, session.start_transaction():
            users.insert_one({"_id": 100_003, "user_id": 1003}, session=session)
            sessions.insert_one({"user_id": 1003, "seq": -1}, session=session)
        sessions.drop_index("tmp_ttl")
        self.ops += 16

    def random_op(self) -> None:
        name = self.rng.choice(COLLECTIONS)
        coll = self.db[name]
        uid = self.rng.randrange(600)
        kinds = ["insert", "insert", "update", "update", "replace", "delete", "move"] + ["burst"] * self.bursts
        kind = self.rng.choice(kinds)
        if kind == "burst":  # one bulk write: many updates and key moves of a few documents, back to back
            uids = [self.rng.randrange(600) for _ in range(3)]
            ops = [UpdateOne({"user_id": self.rng.choice(uids)}, {"$inc": {"n": 1}, "$set": {"w": self.ops + i}})
                   if i % 5 else UpdateOne({"user_id": uids[0]}, {"$set": {"user_id": self.rng.randrange(600)}})
                   for i in range(40)]
            coll.bulk_write(ops)
            self.ops += 40
            return
        if kind == "insert":
            doc: dict[str, Any] = {"user_id": uid, "seq": 10**6 + self.ops, "w": self.ops}
            if name == "users":
                doc["_id"] = 200_000 + self.ops
            coll.insert_one(doc)
        elif kind == "update":
            coll.update_one({"user_id": uid}, {"$set": {"w": self.ops}, "$inc": {"n": 1}})
        elif kind == "replace":
            coll.replace_one({"user_id": uid}, {"user_id": uid, "replaced_at": self.ops})
        elif kind == "delete":
            coll.delete_one({"user_id": uid})
        else:
            coll.update_one({"user_id": uid}, {"$set": {"user_id": self.rng.randrange(600)}})
        self.ops += 1

    def run(self) -> None:
        try:
            self.scripted()
            while not self.stop.is_set():
                self.through_elections(self.random_op)
                time.sleep(0.002)
        except BaseException as exc:  # surfaced by finish() and by wait_for_writer()
            self.error = exc

    def through_elections(self, op: Callable[[], None]) -> None:
        """An application retries across an election; a single retryable-write retry does not cover one that
        takes longer than server selection (this killed the writer in the flaky election test)."""
        deadline = time.monotonic() + 60
        while True:
            try:
                return op()
            except (AutoReconnect, NotPrimaryError, ServerSelectionTimeoutError):
                if time.monotonic() > deadline or self.stop.is_set():
                    raise
                time.sleep(0.5)

    def finish(self) -> None:
        self.stop.set()
        self.join(30)
        assert self.error is None, self.error


@dataclass
class Pair:
    source: MongoClient
    target: MongoClient
    split: Timestamp
    uris: tuple[str, str]


@pytest.fixture
def pair(lab_factory: Callable[..., Lab]) -> Iterator[Pair]:
    a, b = lab_factory(), lab_factory()
    source, target = client(a), client(b)
    try:
        yield Pair(source, target, copy_at_optime(source, target),
                   (a.layout.connection_string, b.layout.connection_string))
    finally:
        source.close()
        target.close()


def assert_odd_half_equal(source: MongoClient, target: MongoClient) -> None:
    for name in COLLECTIONS:
        want = list(source.app[name].find(ODD).sort("_id", 1))
        got = list(target.app[name].find(ODD).sort("_id", 1))
        assert len(got) == len({d["_id"] for d in got}) == len(want), name
        assert got == want, f"app.{name}: rs2's half differs"
    assert target.app.users.find_one({"_id": 3}) is None         # moved to the even half
    assert target.app.users.find_one({"_id": 5}) is None         # became unclaimed
    assert target.app.users.find_one({"_id": 10})["user_id"] == 601
    assert "seq_1" in target.app.events.index_information()
    assert "tmp_ttl" not in target.app.sessions.index_information()


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    wait_until(what, check, timeout=timeout, interval=0.1)


@pytest.mark.mongod
def test_catch_up_replays_the_target_half(pair: Pair, tmp_path: Path) -> None:
    source, target, split = pair.source, pair.target, pair.split
    messages: list[str] = []
    worker = CatchUpWorker(source, target, ROUTING, "rs2", tmp_path / "state", split, batch_size=100,
                           progress=messages.append, lag_every=0.5)
    background = BackgroundCatchUp(worker).start()
    writer = Writer(source)
    writer.start()
    # Counts of writes, not rates: on a machine shared with three other labs the writer is slow, not the worker.
    wait_for(lambda: worker.stats().applied > 100 or not background.alive, 300, "the worker to apply writes")
    source.admin.command("replSetStepDown", 10, secondaryCatchUpPeriodSecs=5)  # an election on rs1 mid-stream
    applied = worker.stats().applied
    wait_for(lambda: worker.stats().applied > applied + 100 or not background.alive or writer.error is not None, 300,
             "writes after the election")
    assert writer.error is None, f"the test's writer died at the election: {writer.error!r}"
    writer.finish()
    background.check()
    background.stop(30)
    stats = worker.drain(quiet_seconds=1.0, timeout=120)
    assert_odd_half_equal(source, target)
    assert stats.applied > 0 and stats.unclaimed >= 1 and stats.index_ops >= 3  # other-half inserts: filtered
    assert stats.deleted >= 3
    seconds, events = worker.lag()
    assert seconds is not None and seconds <= 2 and events is not None and events <= 5
    status = read_status(tmp_path / "state", "rs2")
    assert status is not None and status["resume_token"] and status["counters"]["events"] == stats.events
    assert status["lag_seconds"] is not None and status["rate_per_second"] is not None
    assert any("create index seq_1" in m for m in messages)



CHILD = """
import json, sys, threading
from bson import Timestamp
from pymongo import MongoClient, UpdateOne
from splitter.catchup import CatchUpWorker
from splitter.routing import Routing
a = json.loads(sys.argv[1])
worker = CatchUpWorker(MongoClient(a["source"]), MongoClient(a["target"]), Routing(**a["routing"]), "rs2",
                       a["state"], Timestamp(*a["split"]), batch_size=25, flush_seconds=0.2)
worker.run(threading.Event())
"""


@pytest.mark.mongod
def test_kill_9_then_resume_loses_and_duplicates_nothing(pair: Pair, tmp_path: Path) -> None:
    source, target, split = pair.source, pair.target, pair.split
    state = tmp_path / "state"
    # Routing(**ROUTING.model_dump()) is refused (both owners and remainders): that killed the child on main.
    args = {"source": pair.uris[0], "target": pair.uris[1], "routing": ROUTING_ARGS, "state": str(state),
            "split": [split.time, split.inc]}
    writer = Writer(source, seed=2, bursts=True)
    writer.start()
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args)])
    try:
        position = state / "catchup-rs2.json"
        wait_for(lambda: (position.exists() and json.loads(position.read_text())["counters"]["applied"] > 400)
                 or child.poll() is not None, 90, "the child worker to apply writes")
        assert child.poll() is None, "the child worker died on its own"
        child.kill()  # SIGKILL: no final save, pending writes may be half applied
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(30)
    saved = json.loads(position.read_text())
    time.sleep(1.5)  # rs1 keeps taking writes while the catch-up is down
    writer.finish()

    # A second, deterministic crash: the first batch is written to the target, then the process "dies"
    # before the position is saved. The next worker re-applies that batch on top of itself.
    crashing = CatchUpWorker(source, target, ROUTING, "rs2", state, split, batch_size=20)
    assert crashing.position.resume_token == {"_data": saved["resume_token"]}
    written: list[int] = []

    def crash(position: Any) -> None:
        written.append(position.counters["applied"] - saved["counters"]["applied"])  # already sent to the target
        raise CrashBeforeSave

    crashing._store.save = crash  # type: ignore[method-assign]
    with pytest.raises(CrashBeforeSave):
        crashing.drain(quiet_seconds=1.0, timeout=60)
    assert json.loads(position.read_text()) == saved and written and max(written) > 0

    resumed = CatchUpWorker(source, target, ROUTING, "rs2", state, split)
    stats = resumed.drain(quiet_seconds=1.0, timeout=120)
    assert stats.events > saved["counters"]["events"]
    assert_odd_half_equal(source, target)


class CrashBeforeSave(Exception):
    """Stands for the process dying between a batch's writes and its position save."""


@pytest.mark.mongod
def test_split_optime_out_of_the_oplog_stops_with_a_clear_error(lab_factory: Callable[..., Lab],
                                                                  tmp_path: Path) -> None:
    with client(lab_factory()) as source:
        worker = CatchUpWorker(source, source, ROUTING, "rs2", tmp_path / "state", Timestamp(1, 0))
        with pytest.raises(OperationalError) as info:
            worker.drain(quiet_seconds=0.1, timeout=30)
    assert "split optime 1:0 is no longer in rs1's oplog" in info.value.message
    assert "re-split" in (info.value.hint or "")
    assert not (tmp_path / "state" / "catchup-rs2.json").exists()


# -- the loop's retry path, with fakes (no mongod) -------------------------------------------------------
def token(t: int, i: int) -> dict[str, str]:
    return {"_data": f"82{t:08X}{i:08X}2B0229"}


class FakeStream:
    def __init__(self, events: list[dict[str, Any]], fail_after: int | None) -> None:
        self.events, self.fail_after = events, fail_after
        self.resume_token: dict[str, str] | None = None

    def __enter__(self) -> FakeStream:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def try_next(self) -> dict[str, Any] | None:
        if self.fail_after == 0:
            raise AutoReconnect("connection reset (fake)")
        if self.fail_after is not None:
            self.fail_after -= 1
        if not self.events:
            self.resume_token = token(100, 9)  # postBatchResumeToken past everything
            return None
        event = self.events.pop(0)
        self.resume_token = event["_id"]
        return event


class FakeSource:
    """watch() fails `open_failures` times; then the first stream dies after `fail_after` events."""

    def __init__(self, events: list[dict[str, Any]], open_failures: int, fail_after: int | None) -> None:
        self.events, self.open_failures, self.fail_after = events, open_failures, fail_after
        self.watch_calls: list[dict[str, Any]] = []
        self.local = {"oplog.rs": SimpleNamespace(find_one=lambda *a, **k: {"ts": Timestamp(1, 1)},
                                                  count_documents=lambda *a, **k: 0)}
        self.admin = SimpleNamespace(command=lambda *a, **k: {"lastWrite": {"opTime": {"ts": Timestamp(100, 5)}}})

    def watch(self, pipeline: list[dict[str, Any]], **kwargs: Any) -> FakeStream:
        self.watch_calls.append(kwargs)
        if self.open_failures:
            self.open_failures -= 1
            raise NotPrimaryError("not primary (fake)")
        start = kwargs.get("resume_after")
        events = [e for e in self.events if start is None or e["_id"]["_data"] > start["_data"]]
        stream = FakeStream(events, self.fail_after)
        self.fail_after = None
        return stream


class FakeTarget:
    def __init__(self) -> None:
        self.writes: list[tuple[str, list[Any]]] = []
        self.barriers = 0
        self.admin = SimpleNamespace(command=lambda *a, **k: {"electionId": 1})

    def __getitem__(self, db: str) -> Any:
        def get_collection(coll: str, **_options: Any) -> Any:
            def bulk_write(ops: list[Any], ordered: bool = True, bypass_document_validation: bool = False) -> Any:
                self.writes.append((f"{db}.{coll}", list(ops)))
                inserted = sum(isinstance(op, InsertOne) for op in ops)
                return SimpleNamespace(deleted_count=0, matched_count=0, upserted_count=len(ops) - inserted,
                                       inserted_count=inserted)
            return SimpleNamespace(bulk_write=bulk_write)

        def command(doc: dict[str, Any]) -> dict[str, Any]:
            assert doc["writeConcern"]["w"] == "majority"
            self.barriers += 1
            return {"ok": 1, "electionId": 1}
        return SimpleNamespace(get_collection=get_collection, command=command)


def fake_events(n: int) -> list[dict[str, Any]]:
    return [{"_id": token(100, i + 1), "operationType": "insert", "clusterTime": Timestamp(100, i + 1),
             "ns": {"db": "app", "coll": "users"}, "documentKey": {"_id": i},
             "fullDocument": {"_id": i, "user_id": 2 * i + 1}} for i in range(n)]


def test_transient_errors_reopen_from_the_saved_position(tmp_path: Path) -> None:
    source, target, messages = FakeSource(fake_events(5), open_failures=1, fail_after=3), FakeTarget(), []
    worker = CatchUpWorker(source, target, ROUTING, "rs2", tmp_path, Timestamp(100, 0),  # type: ignore[arg-type]
                           batch_size=2, progress=messages.append, threads=1, flush_seconds=60)
    stats = worker.drain(quiet_seconds=0, timeout=30)
    assert sum("transient error" in m for m in messages) == 2
    assert source.watch_calls[0]["start_at_operation_time"] == Timestamp(100, 1)
    assert source.watch_calls[2]["resume_after"] == token(100, 2)  # the batch saved before the stream died
    ids = [op._doc["_id"] if isinstance(op, InsertOne) else op._filter["_id"] for _, ops in target.writes for op in ops]
    assert ids == [0, 1, 2, 3, 4] and stats.events == 5 and stats.applied == 5
    assert target.barriers == len(target.writes)  # a majority barrier after every batch, before its save
    # Drained as soon as everything up to rs1's last write (100, 5) is applied, even with events still coming.
    assert worker.position.applied_through >= Timestamp(100, 5)


def test_transient_errors_are_retried_a_bounded_number_of_times(tmp_path: Path) -> None:
    source = FakeSource([], open_failures=10, fail_after=None)
    worker = CatchUpWorker(source, FakeTarget(), ROUTING, "rs2", tmp_path, Timestamp(100, 0),  # type: ignore[arg-type]
                           max_retries=2)
    with pytest.raises(RetryableError, match="gave up after 2 attempts"):
        worker.drain(quiet_seconds=0, timeout=30)
    assert len(source.watch_calls) == 2
