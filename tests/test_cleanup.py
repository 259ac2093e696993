"""`splitter cleanup`: the worker on real mongod, and the command's refusal / input paths.

No real rs2 exists in a lab yet, so two labs stand in for the two sets: lab A is "rs1", lab B is "rs2", both
loaded with the same documents (B's app db is replaced by a copy of A's). The worker API is driven with the two
clients. Both labs' replica sets are named rs1, which split.yaml cannot describe as two sets, so the CLI is
tested on its input and refusal paths only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pymongo import MongoClient
from pymongo.write_concern import WriteConcern

from splitter.cleanup.control import CleanupLock, RunControl
from splitter.cleanup.throttle import Limits, Window
from splitter.cleanup.worker import CleanupWorker
from splitter.cli.cleanup_cmd import cleanup
from splitter.cluster.lag import LagReader
from splitter.config import load_config
from splitter.errors import BadInput, LockHeld
from splitter.lab.lab import Lab
from splitter.lab.layout import COLLECTIONS, DATABASE, KEY, LabLayout
from splitter.routing import Routing
from splitter.store.checkpoint import RunState, StateStore
from splitter.store.cleanup_position import InFlight, Position, PositionStore
from splitter.store.records import CutoverRecord

MAJORITY = WriteConcern("majority")
# Never routed: missing, string, double and negative keys (all of them must survive every cleanup).
BAD_USERS = [{"_id": "bad-missing"}, {"_id": "bad-string", KEY: "7"}, {"_id": "bad-double", KEY: 4.0},
             {"_id": "bad-negative", KEY: -1}, {"_id": "bad-array", KEY: [1]}]
# Routed documents whose _id types differ from the collection's ObjectIds: the walk must cross BSON types.
MIXED_EVENTS = [{"_id": "odd-string-id", KEY: 1}, {"_id": 10**12, KEY: 3}, {"_id": "even-string-id", KEY: 2}]

Snapshot = dict[str, dict[Any, dict[str, Any]]]


@dataclass
class Pair:
    """Lab A standing in for rs1, lab B for rs2, holding the same documents (`before`)."""

    a: Lab
    b: Lab
    ca: MongoClient
    cb: MongoClient
    routing: Routing
    before: Snapshot

    def clients(self, set_name: str) -> tuple[MongoClient, MongoClient]:
        return (self.ca, self.cb) if set_name == "rs1" else (self.cb, self.ca)

    def worker(self, set_name: str, state_dir: Path, **kwargs: Any) -> CleanupWorker:
        this, other = self.clients(set_name)
        return CleanupWorker(routing=self.routing, set_name=set_name, this=this, other=other, state_dir=state_dir,
                             **kwargs)

    def expected(self, set_name: str) -> dict[str, set[Any]]:
        """The ids a set keeps: its own half and every unroutable document."""
        return {c: {i for i, d in docs.items() if self.routing.owner(d.get(KEY)) in (set_name, None)}
                for c, docs in self.before.items()}

    def count(self, set_name: str) -> int:
        return sum(1 for docs in self.before.values() for d in docs.values()
                   if self.routing.owner(d.get(KEY)) == set_name)


class FakeConnector:
    """Hands the command lab A as rs1 and lab B as rs2 (both labs' sets are really named rs1)."""

    def __init__(self, pair: Pair) -> None:
        self.pair = pair

    def replica_set(self, name: str, hosts: list[str]) -> MongoClient:
        return self.pair.clients(name)[0]


def record_cutover(state_dir: Path, state: str = "final") -> None:
    """A checkpoint whose cutover is in `state` (what `finalize` leaves is "final")."""
    run = RunState()
    run.cutover = CutoverRecord(state=state, epoch=1, owner="rs2")  # type: ignore[arg-type]
    StateStore(state_dir).save(run)


def use_pair(monkeypatch: pytest.MonkeyPatch, pair: Pair) -> None:
    """The command's session connects through the fake connector."""
    monkeypatch.setattr("splitter.engine.cleanup_session.Connector", lambda _creds: FakeConnector(pair))


def snapshot(client: MongoClient) -> Snapshot:
    return {c: {d["_id"]: d for d in client[DATABASE][c].find()} for c in COLLECTIONS}


def ids(client: MongoClient) -> dict[str, set[Any]]:
    return {c: {d["_id"] for d in client[DATABASE][c].find({}, {"_id": 1})} for c in COLLECTIONS}


def make_pair(lab_factory: Callable[..., Lab]) -> Pair:
    a, b = lab_factory(), lab_factory()
    ca = MongoClient(a.layout.connection_string, serverSelectionTimeoutMS=10000)
    cb = MongoClient(b.layout.connection_string, serverSelectionTimeoutMS=10000)
    db_a = ca.get_database(DATABASE, write_concern=MAJORITY)
    db_a.users.insert_many(BAD_USERS)
    db_a.events.insert_many(MIXED_EVENTS)
    cb.drop_database(DATABASE)
    db_b = cb.get_database(DATABASE, write_concern=MAJORITY)
    for name in COLLECTIONS:
        db_b[name].insert_many(list(db_a[name].find()))
        db_b[name].create_index(KEY)
    before = snapshot(ca)
    assert snapshot(cb) == before
    return Pair(a, b, ca, cb, load_config(a.layout.config_path).routing, before)


def window_around(now: datetime, open_now: bool) -> Window:
    if open_now:
        return Window.parse(f"{now - timedelta(hours=1):%H:%M}-{now + timedelta(hours=1):%H:%M}")
    return Window.parse(f"{now + timedelta(hours=2):%H:00}-{now + timedelta(hours=3):%H:00}")


@pytest.mark.mongod
def test_each_set_keeps_exactly_its_half_and_limits_hold(lab_factory: Callable[..., Lab],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    p = make_pair(lab_factory)
    state_a = load_config(p.a.layout.config_path).state_path  # the command below uses the config's state dir
    odd = p.count("rs2")

    dry = p.worker("rs1", state_a, dry_run=True, batch_size=100).run()
    assert dry.dry_run and dry.stop_kind == "done"
    assert dry.total("deleted") == odd and dry.total("kept_by_interlock") == 0
    assert snapshot(p.ca) == p.before and not (state_a / "cleanup").exists()  # deleted and saved nothing

    closed = p.worker("rs1", state_a, limits=Limits(window=window_around(datetime.now(), open_now=False))).run()
    assert closed.stop_kind == "window" and "outside the window" in closed.stop_reason
    assert closed.total("deleted") == 0 and snapshot(p.ca) == p.before

    state_a.mkdir(exist_ok=True)
    (state_a / "cleanup.pause").touch()
    paused = p.worker("rs1", state_a, limits=Limits(max_runtime=1.5, pause_poll=0.2)).run()
    assert paused.stop_kind == "max-runtime" and paused.total("deleted") == 0
    assert "pause file" in paused.last_wait and paused.waits["pause"] >= 1.0
    assert snapshot(p.ca) == p.before
    (state_a / "cleanup.pause").unlink()

    limited = p.worker("rs1", state_a, batch_size=50,
                       limits=Limits(max_docs=137, window=window_around(datetime.now(), open_now=True))).run()
    assert limited.stop_kind == "max-docs" and limited.total("deleted") == 137
    gone = {(c, i) for c in COLLECTIONS for i in p.before[c].keys() - ids(p.ca)[c]}
    assert len(gone) == 137 and all(p.routing.owner(p.before[c][i].get(KEY)) == "rs2" for c, i in gone)

    # the rest through the command itself (--set both: one worker per set), clients handed in by a fake connector
    record_cutover(state_a)
    use_pair(monkeypatch, p)
    result = CliRunner().invoke(cleanup, ["-c", str(p.a.layout.config_path), "--set", "both", "--batch-size", "200",
                                          "--max-latency-increase", "off", "--exact-counts", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    r1, r2 = (next(s for s in doc["sets"] if s["set"] == name) for name in ("rs1", "rs2"))
    assert ids(p.ca) == p.expected("rs1") and ids(p.cb) == p.expected("rs2")
    # what stays is untouched, document for document
    assert snapshot(p.ca) == {c: {i: p.before[c][i] for i in keep} for c, keep in p.expected("rs1").items()}
    assert doc["ok"] and r1["stopped"] == r2["stopped"] == "done" and r1["done"] and r2["done"]
    assert r1["deleted"] == odd - 137 and r1["deleted_total"] == odd
    assert r2["deleted"] == r2["deleted_total"] == p.count("rs1")
    for r in (r1, r2):
        assert r["remaining"] == 0 and r["kept_by_interlock"] == 0 and r["bad_keys"] == len(BAD_USERS)

    again = p.worker("rs1", state_a).run()
    assert again.stop_kind == "done" and again.total("deleted") == 0 and ids(p.ca) == p.expected("rs1")


KILLED_RUN = """
import sys
from pathlib import Path
from pymongo import MongoClient
from splitter.cleanup.throttle import Limits
from splitter.cleanup.worker import CleanupWorker
from splitter.config import load_config
config, this, other, state, mode = sys.argv[1:6]
# resting: one batch per chunk, durable before the rest; overlapping: chunks sent while earlier ones wait
limits, parallel = (Limits(sleep=0.02), 1) if mode == "resting" else (Limits(), 2)
CleanupWorker(routing=load_config(config).routing, set_name="rs1", this=MongoClient(this), other=MongoClient(other),
              state_dir=Path(state), limits=limits, batch_size=7, parallel=parallel).run()
"""


class CrashingStore(PositionStore):
    """Raises as a crash would right after the `after`-th save that records chunks in flight, before the chunk it
    adds is sent; the chunks sent before it may still be waiting for "majority" (`flights` keeps what each such
    save recorded)."""

    def __init__(self, *args: Any, after: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.after, self.flights = after, []

    def save(self, position: Position) -> None:
        super().save(position)
        if position.in_flight is not None:
            self.flights.append(len(position.in_flight.ids))
            if len(self.flights) == self.after:
                raise KeyboardInterrupt("simulated crash before a send")


def crash_after_send(worker: CleanupWorker, after: int) -> None:
    """Raises as a crash would right after the `after`-th chunk's deletes were sent, before anything records them."""
    send, sends = worker.deleter.send, []

    def crashing(*args: Any) -> Any:
        sent = send(*args)
        sends.append(sent)
        if len(sends) == after:
            raise KeyboardInterrupt("simulated crash between a send and its record")
        return sent

    worker.deleter.send = crashing  # type: ignore[method-assign]


def _deleted_so_far(state: Path) -> int:
    return sum(p.deleted for p in PositionStore(state, "rs1").all())


@pytest.mark.mongod
def test_sigkill_mid_run_then_rerun_gives_the_same_result(lab_factory: Callable[..., Lab], tmp_path: Path) -> None:
    p = make_pair(lab_factory)
    state = tmp_path / "state"
    for mode in ("resting", "overlapping"):
        proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(p.a.layout.config_path),
                                 p.a.layout.connection_string, p.b.layout.connection_string, str(state), mode])
        try:
            deadline, start = time.monotonic() + 120, _deleted_so_far(state)
            while _deleted_so_far(state) < start + 100:
                assert proc.poll() is None, f"the {mode} cleanup ended before it could be killed"
                assert time.monotonic() < deadline, "no progress recorded"
                time.sleep(0.05)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        positions = PositionStore(state, "rs1").all()
        assert positions and not all(pos.done for pos in positions)
        assert all(i in ids(p.ca)[c] for c, keep in p.expected("rs1").items() for i in keep)  # no kept doc deleted

    # unthrottled, chunks are sent while earlier ones wait for "majority": crashes just before a send (with earlier
    # chunks in flight) and between a send and its record; the reruns neither skip nor double count
    crashing = p.worker("rs1", state, batch_size=10, parallel=2)
    store = crashing.positions = CrashingStore(state, "rs1", after=4)
    with pytest.raises(KeyboardInterrupt):
        crashing.run()
    assert crashing.overlaps and max(store.flights) > crashing.deleter.chunk_size  # several chunks were in flight
    crashing = p.worker("rs1", state, batch_size=10, parallel=2)
    crash_after_send(crashing, after=3)
    with pytest.raises(KeyboardInterrupt):
        crashing.run()
    assert any(pos.in_flight is not None for pos in PositionStore(state, "rs1").all())

    final = p.worker("rs1", state, batch_size=25).run()
    assert final.stop_kind == "done" and final.done
    assert ids(p.ca) == p.expected("rs1")
    assert snapshot(p.ca) == {c: {i: p.before[c][i] for i in keep} for c, keep in p.expected("rs1").items()}
    assert final.total("deleted_total") == p.count("rs2")  # every deletion counted once across four runs
    assert all(pos.in_flight is None for pos in PositionStore(state, "rs1").all())


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.mongod
def test_lag_throttle_then_interlock(lab_factory: Callable[..., Lab], tmp_path: Path) -> None:
    p = make_pair(lab_factory)
    state = tmp_path / "state"
    lag = LagReader(p.ca)
    locked = MongoClient(p.a.layout.host("node3").host, directConnection=True, serverSelectionTimeoutMS=5000)
    locked.admin.command("fsync", lock=True)
    try:
        p.ca.scratch.get_collection("ticks", write_concern=WriteConcern(w=1)).insert_one({"at": datetime.now()})
        _wait_for("node3 to lag", lambda: lag.read().lags.get(p.a.layout.host("node3").host, 0) > 1.5)
        held = p.worker("rs1", state, limits=Limits(max_lag=1.0, max_runtime=4, lag_poll=0.5)).run()
    finally:
        locked.admin.command("fsyncUnlock")
    assert held.stop_kind == "max-runtime" and held.total("deleted") == 0
    assert "secondary 127.0.0.1:" in held.last_wait and "--max-lag 1s" in held.last_wait
    assert held.waits["lag"] >= 3
    assert snapshot(p.ca) == p.before
    _wait_for("node3 to catch up", lambda: lag.read().worst < 1.0)

    # rs2's half removed from rs2 by hand: rs1 must keep those documents (the interlock)
    by_hand = {c: [i for i, d in p.before[c].items() if p.routing.owner(d.get(KEY)) == "rs2"][5:45:4]
               for c in COLLECTIONS}
    for c, hand_ids in by_hand.items():
        p.cb[DATABASE].get_collection(c, write_concern=MAJORITY).delete_many({"_id": {"$in": hand_ids}})
    n_hand = sum(len(v) for v in by_hand.values())
    done = p.worker("rs1", state, batch_size=40, limits=Limits(max_lag=1.0)).run()
    assert done.stop_kind == "done"
    assert done.total("kept_by_interlock") == n_hand and done.total("remaining") == n_hand
    assert done.total("deleted") == p.count("rs2") - n_hand
    expected = {c: keep | set(by_hand[c]) for c, keep in p.expected("rs1").items()}
    assert ids(p.ca) == expected
    assert done.kept_by() == {"missing": n_hand}
    for rep in done.collections:
        sample = rep.kept_sample["missing"]
        assert sample and set(sample) <= set(by_hand[rep.namespace.split(".", 1)[1]])


# -- no mongod: runtime control, positions, the command's refusals ---------------------------------------
def test_pause_file_and_sigusr1_toggle(tmp_path: Path) -> None:
    control = RunControl(tmp_path)
    assert control.paused() is None
    (tmp_path / "cleanup.pause").touch()
    assert "cleanup.pause" in control.paused()
    (tmp_path / "cleanup.pause").unlink()
    control.install_signals()
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert "SIGUSR1" in (control.paused() or "")
        os.kill(os.getpid(), signal.SIGUSR1)
        assert control.paused() is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert "SIGTERM" in (control.stop_requested or "")
    finally:
        control.restore_signals()


def test_position_round_trips_bson_ids(tmp_path: Path) -> None:
    from bson import Int64, ObjectId

    store = PositionStore(tmp_path, "rs1")
    pos = Position("rs1", "app.events", started=True, last_id=ObjectId(), deleted=5)
    pos.note_kept("missing", [Int64(7), "x", ObjectId()])
    pos.note_kept("wrong-half", [Int64(8)])
    pos.in_flight = InFlight.of([1, Int64(2), "3"], 2)
    pos.orphans_removed = 4
    store.save(pos)
    loaded = store.load("app.events")
    assert loaded.last_id == pos.last_id and type(loaded.kept_samples["missing"][0]) is Int64
    assert loaded.in_flight == pos.in_flight and loaded.kept_samples == pos.kept_samples
    assert loaded.kept == {"missing": 3, "wrong-half": 1} and loaded.kept_by_interlock == 4
    assert loaded.orphans_removed == 4
    assert json.loads(store.path("app.events").read_text())["format"] == 2
    assert store.load("app.other") == Position("rs1", "app.other")
    earlier = {"format": 1, "set_name": "rs1", "namespace": "app.users", "kept_by_interlock": 2,  # one reason then
               "kept_sample": [{"$numberLong": "9"}, "y"]}
    old = Position.from_json(earlier)
    assert old.kept == {"missing": 2} and old.kept_samples == {"missing": [Int64(9), "y"]}


def test_second_cleanup_is_refused_naming_the_holder(tmp_path: Path) -> None:
    with CleanupLock(tmp_path), pytest.raises(LockHeld) as err:
        CleanupLock(tmp_path).acquire()
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in err.value.message
    with CleanupLock(tmp_path):  # released: free again
        pass


def _config(tmp_path: Path, cutover: bool, state: str = "final") -> Path:
    layout = LabLayout(tmp_path / "lab", 42995)  # files only, nothing listens there
    layout.write_files(Path("/bin/true"))
    if cutover:
        record_cutover(load_config(layout.config_path).state_path, state)
    return layout.config_path


def test_refuses_before_the_cutover_is_recorded(tmp_path: Path) -> None:
    config = _config(tmp_path, cutover=False)
    result = CliRunner().invoke(cleanup, ["-c", str(config), "--set", "rs1"])
    assert isinstance(result.exception, BadInput) and result.exception.exit_code == 2
    assert "cutover is not recorded" in result.exception.message
    assert "deploy-client-v2" in result.exception.hint and "splitter finalize" in result.exception.hint
    run = subprocess.run([sys.executable, "-m", "splitter", "cleanup", "-c", str(config), "--set", "both"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "cutover is not recorded" in run.stderr and "deploy-client-v2" in run.stderr


@pytest.mark.parametrize("state", ["split", "switching", "switched", "reversing", "reversed"])
def test_refuses_before_finalize(tmp_path: Path, state: str) -> None:
    config = _config(tmp_path, cutover=True, state=state)
    result = CliRunner().invoke(cleanup, ["-c", str(config), "--set", "both"])
    assert isinstance(result.exception, BadInput) and result.exception.exit_code == 2
    assert f"the cutover is {state!r}, not final" in result.exception.message
    assert "switched back" in result.exception.message and "way back" in result.exception.message
    assert f"splitter finalize -c {config}" in result.exception.hint
    assert not (load_config(config).state_path / "cleanup").exists()  # nothing touched, not even a position
    if state == "switched":
        run = subprocess.run([sys.executable, "-m", "splitter", "cleanup", "-c", str(config), "--set", "rs2"],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 2 and "not final" in run.stderr and "splitter finalize" in run.stderr


def test_outside_the_window_exits_0_without_touching_the_cluster(tmp_path: Path) -> None:
    config = _config(tmp_path, cutover=True)
    window = window_around(datetime.now(), open_now=False)
    result = CliRunner().invoke(cleanup, ["-c", str(config), "--set", "both", "--window", str(window)])
    assert result.exit_code == 0, result.output
    assert f"outside the window {window}" in result.output and "nothing was deleted" in result.output
    result = CliRunner().invoke(cleanup, ["-c", str(config), "--set", "rs2", "--window", str(window), "--json"])
    doc = json.loads(result.output)
    assert result.exit_code == 0 and doc["ok"] and doc["stopped"] == "window" and doc["sets"] == []


def test_lock_is_checked_before_connecting(tmp_path: Path) -> None:
    config = _config(tmp_path, cutover=True)
    with CleanupLock(load_config(config).state_path):
        result = CliRunner().invoke(cleanup, ["-c", str(config), "--set", "rs1"])
    assert isinstance(result.exception, LockHeld) and f"pid {os.getpid()}" in result.exception.message


@pytest.mark.parametrize("args, needle", [
    (["--set", "rs3"], "--set 'rs3'"),
    (["--set", "rs1", "--window", "25:00-01:00"], "not a window"),
    (["--set", "rs1", "--max-runtime", "soon"], "not a duration"),
    (["--set", "rs1", "--sleep", "0%"], "duty cycle"),
    (["--set", "rs1", "--max-latency-increase", "0.9x"], "factor above 1"),
    (["--set", "rs1", "--max-p99", "soon"], "not a duration"),
])
def test_bad_input_exits_2(tmp_path: Path, args: list[str], needle: str) -> None:
    result = CliRunner().invoke(cleanup, ["-c", str(_config(tmp_path, cutover=True)), *args])
    assert result.exception is not None and result.exception.exit_code == 2
    assert needle in result.exception.message
