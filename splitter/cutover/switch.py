"""What a cutover does to the clusters, behind one interface: `RealSwitch` does it, `DryRunSwitch` only says it.

protocol.py runs the same script against either, so `splitter plan` prints exactly the sequence `run` executes.

Touches (RealSwitch): the routing document `splitter.routing` on every set (w: majority), the fence (fence.py),
the change streams between the sets (CatchUpWorker, position files `catchup-<stream>.json`),
`minSnapshotHistoryWindowInSeconds` on every member, snapshot reads (snapshot.py), the checkpoint.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from bson import Timestamp
from pymongo import MongoClient
from pymongo.write_concern import WriteConcern

from splitter.catchup import BackgroundCatchUp, CatchUpWorker
from splitter.catchup.source import last_write_ts
from splitter.config import parse_duration
from splitter.cutover import fence, snapshot
from splitter.errors import OperationalError
from splitter.retry import retrying
from splitter.routing_document import COLLECTION, DATABASE, DOCUMENT_ID, RoutingDocument
from splitter.run_context import StepContext
from splitter.store.records import CutoverRecord, OpTime

VERIFY_WINDOW = 3600  # seconds of snapshot history kept while a switch may still verify at its drain point
SWITCH_ATTEMPTS = 10  # with waits up to 30 s (and 60 s write-concern timeouts): several minutes before giving up
T = TypeVar("T")


@dataclass(frozen=True)
class Stream:
    """A change stream that replays the moving half from `source` into `target`, resumable by `name`."""

    name: str
    source: str
    target: str
    start_after: OpTime


class SwitchActions:
    """The interface protocol.py drives. Every method is idempotent."""

    lines: list[str]

    def checkpoint(self, cutover: CutoverRecord) -> None: ...
    def current(self) -> CutoverRecord | None: return None
    def published_epoch(self) -> int: return 0
    def publish(self, doc: RoutingDocument) -> None: ...
    def fence(self, set_name: str) -> None: ...
    def lift(self, set_name: str) -> None: ...
    def last_write(self, set_name: str) -> OpTime: raise NotImplementedError
    def close_gap(self, stream: Stream, old: str) -> None:
        """Before the fence, unfenced: bring the stream close to `old`'s last write (gates.fence_max_lag)."""
    def drain(self, stream: Stream, until: OpTime) -> OpTime:
        """Apply the stream through `until`, then stop; returns how far it applied (>= until)."""
        return until
    def start_stream(self, stream: Stream) -> None: ...
    def stop_stream(self) -> None: ...
    def check_stream(self) -> None: ...
    def raise_history(self) -> None: ...
    def restore_history(self) -> None: ...
    def verify(self, old: str, old_at: OpTime, new: str, new_at: OpTime) -> snapshot.SnapshotDiff:
        raise NotImplementedError
    def stray_deletes(self, old: str, since: OpTime, new: str) -> list[str]: return []


class RealSwitch(SwitchActions):
    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx
        self.lines = []
        self._background: BackgroundCatchUp | None = None

    def client(self, set_name: str) -> MongoClient:
        return self.ctx.rs1() if set_name == self.ctx.source_name else self.ctx.rs2()

    def _members(self) -> list[MongoClient]:
        return [self.ctx.member(h) for h in self.ctx.keep_hosts + self.ctx.move_hosts]

    def checkpoint(self, cutover: CutoverRecord) -> None:
        self.ctx.state.cutover = cutover
        self.ctx.save()

    def current(self) -> CutoverRecord | None:
        return self.ctx.state.cutover

    def _retried(self, what: str, action: Callable[[], T]) -> T:
        """Run a cluster action of the switch, retrying what is transient (an election, a write-concern timeout
        while a member catches up): a run that gives up here leaves the half fenced, so it tries for minutes."""
        return retrying(what, events=self.ctx.events, attempts=SWITCH_ATTEMPTS, wait_max=30.0)(action)

    def published_epoch(self) -> int:
        """The epoch an earlier split published on the source (0: none); this split's epochs continue after it."""
        coll = self.client(self.ctx.source_name)[DATABASE][COLLECTION]
        doc = self._retried("reading the published routing", lambda: coll.find_one({"_id": DOCUMENT_ID}, {"epoch": 1}))
        return int(doc["epoch"]) if doc else 0

    def publish(self, doc: RoutingDocument) -> None:
        for set_name in (self.ctx.source_name, self.ctx.target_name):
            coll = self.client(set_name)[DATABASE].get_collection(
                COLLECTION, write_concern=WriteConcern("majority", wtimeout=60_000))
            self._retried(f"publishing the routing on {set_name}",
                          lambda coll=coll: coll.replace_one({"_id": DOCUMENT_ID}, doc.to_bson(), upsert=True))

    def fence(self, set_name: str) -> None:
        def record(records: tuple) -> None:
            cutover = self.ctx.state.cutover
            assert cutover is not None
            self.checkpoint(cutover.model_copy(update={"fences": records}))

        cutover = self.ctx.state.cutover
        assert cutover is not None
        # Each attempt re-reads the fences: a retry must see the collections the attempt before already fenced.
        self._retried(f"the fence on {set_name}", lambda: fence.put_up(
            self.client(set_name), set_name, self.ctx.config.routing, self.ctx.target_name,
            self.ctx.state.cutover.fences if self.ctx.state.cutover else (), record))

    def lift(self, set_name: str) -> None:
        cutover = self.ctx.state.cutover
        assert cutover is not None
        rest = self._retried(f"lifting the fence on {set_name}",
                             lambda: fence.lift(self.client(set_name), set_name, cutover.fences))
        self.checkpoint(cutover.model_copy(update={"fences": rest}))

    def last_write(self, set_name: str) -> OpTime:
        return OpTime.of(self._retried(f"reading {set_name}'s last write",
                                       lambda: last_write_ts(self.client(set_name))))

    def _worker(self, stream: Stream) -> CatchUpWorker:
        # Only a stream into the new set may delete beyond the moving half (stale copies of the other half, a
        # duplicate key's stale holder): the new set serves nothing while one runs. The way back writes into
        # the set that serves its own half: it must touch the moving half only.
        into_new_set = stream.target == self.ctx.target_name
        return CatchUpWorker(self.client(stream.source), self.client(stream.target), self.ctx.config.routing,
                             self.ctx.target_name, self.ctx.store.dir, stream.start_after.ts, stream=stream.name,
                             bypass_validation=True, events=self.ctx.events, before_switch=into_new_set)

    def close_gap(self, stream: Stream, old: str) -> None:
        """Drain the stream to `old`'s last write, pass after pass, while the application writes on, until a pass
        takes at most gates.fence_max_lag: the fence then holds the half's writes for about that long, not for a
        whole backlog (gh-ost postpones its cut-over the same way). Gives up after gates.fence_max_wait with
        nothing fenced."""
        gates = self.ctx.config.gates
        max_lag, max_wait = parse_duration(gates.fence_max_lag), parse_duration(gates.fence_max_wait)
        worker, started = self._worker(stream), time.monotonic()
        while True:
            began = time.monotonic()
            worker.drain(until=self.last_write(old).ts, quiet_seconds=0, timeout=max_wait)
            took = time.monotonic() - began
            if took <= max_lag:
                return
            waited = time.monotonic() - started
            if waited + took > max_wait:
                raise OperationalError(
                    f"cutover: stream {stream.name} still needed {took:.0f}s to reach {old}'s last write after "
                    f"{waited:.0f}s of trying (gates.fence_max_lag {gates.fence_max_lag}); nothing is fenced, the "
                    f"application writes as before", hint=f"lower the write load of {self.ctx.target_name}'s half "
                    f"(`splitter status -c {self.ctx.config.config_path}` shows the catch-up's rate beside rs1's), "
                    f"then `splitter run -c {self.ctx.config.config_path}` again")
            self.ctx.progress(f"cutover: stream {stream.name} needed {took:.1f}s to reach {old}'s last write; the "
                              f"fence waits for a pass of at most {max_lag:g}s (another pass)")

    def drain(self, stream: Stream, until: OpTime) -> OpTime:
        worker = self._worker(stream)
        worker.drain(until=until.ts, quiet_seconds=0, timeout=1800)
        # The last batch may hold events past `until`: the snapshot of the old owner must include them.
        return OpTime.of(max(worker.position.applied_through, until.ts))

    def start_stream(self, stream: Stream) -> None:
        if self._background is None:
            self._background = BackgroundCatchUp(self._worker(stream)).start()

    def stop_stream(self) -> None:
        if self._background is not None:
            background, self._background = self._background, None
            background.stop()

    def check_stream(self) -> None:
        if self._background is not None:
            self._background.check()

    def raise_history(self) -> None:
        cutover = self.ctx.state.cutover
        assert cutover is not None
        if cutover.history_window is None:
            original = snapshot.history_window(self.ctx.rs1())
            self.checkpoint(cutover.model_copy(update={"history_window": original}))
        snapshot.set_history_window(self._members(), max(VERIFY_WINDOW, self.ctx.state.cutover.history_window or 0))

    def restore_history(self) -> None:
        cutover = self.ctx.state.cutover
        if cutover is None or cutover.history_window is None:
            return
        snapshot.set_history_window(self._members(), cutover.history_window)
        self.checkpoint(cutover.model_copy(update={"history_window": None}))

    def verify(self, old: str, old_at: OpTime, new: str, new_at: OpTime) -> snapshot.SnapshotDiff:
        return snapshot.compare_at(self.client(old), old_at.ts, self.client(new), new_at.ts,
                                   self.ctx.config.routing, self.ctx.target_name)

    def stray_deletes(self, old: str, since: OpTime, new: str) -> list[str]:
        """Deletes on `old` after `since` of documents the new owner still has in the moving half: a client
        deleted on the wrong set after the switch (a validator cannot refuse a delete)."""
        routing = self.ctx.config.routing
        dbs = sorted(routing.databases)
        oplog = self.client(old).local["oplog.rs"]
        found: list[str] = []
        query = {"op": "d", "ts": {"$gt": since.ts}, "ns": {"$regex": "^(" + "|".join(dbs) + r")\."}}
        for entry in oplog.find(query, {"ns": 1, "o": 1}).limit(10_000):
            database, _, name = entry["ns"].partition(".")
            routed = routing.routed(database, name)
            if routed is None:
                continue
            half = routing.half_filter(routed.key, self.ctx.target_name)
            with contextlib.suppress(Exception):
                if self.client(new)[database][name].find_one({"$and": [{"_id": entry["o"]["_id"]}, half]}, {"_id": 1}):
                    found.append(f"{entry['ns']} {entry['o']['_id']!r}")
        return found


class DryRunSwitch(SwitchActions):
    """Says each action in order; nothing is read or written."""

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx
        self.lines = []
        self._t = 0

    def _say(self, line: str) -> None:
        self.lines.append(line)

    def publish(self, doc: RoutingDocument) -> None:
        owners = ", ".join(f"{r}->{s}" for r, s in doc.owners.items())
        self._say(f"publish splitter.routing on both sets (w: majority): epoch {doc.epoch}, state {doc.state}, "
                  f"fenced {str(doc.fenced).lower()}, owners {owners}")

    def fence(self, set_name: str) -> None:
        self._say(f"fence {set_name}: collMod every routed collection with a validator rejecting "
                  f"{self.ctx.target_name}'s half (validationLevel strict, validationAction error); originals "
                  "recorded first")

    def lift(self, set_name: str) -> None:
        self._say(f"lift the fence on {set_name} (restore the recorded validator settings)")

    def last_write(self, set_name: str) -> OpTime:
        self._t += 1
        return OpTime(t=0, i=self._t)

    def close_gap(self, stream: Stream, old: str) -> None:
        self._say(f"unfenced, drain stream {stream.name} to {old}'s last write pass after pass until a pass takes at "
                  f"most {self.ctx.config.gates.fence_max_lag} (gates.fence_max_lag); nothing is fenced if that "
                  f"takes longer than {self.ctx.config.gates.fence_max_wait}")

    def drain(self, stream: Stream, until: OpTime) -> OpTime:
        self._say(f"drain stream {stream.name} ({stream.source} -> {stream.target}) to {stream.source}'s last write "
                  "after the fence, then stop it; record the cutover point (both optimes)")
        return until

    def start_stream(self, stream: Stream) -> None:
        self._say(f"start the way back: stream {stream.name} ({stream.source} -> {stream.target}, through the "
                  "fence) from the open point")

    def raise_history(self) -> None:
        self._say(f"raise minSnapshotHistoryWindowInSeconds to {VERIFY_WINDOW} on every member (restored after)")

    def restore_history(self) -> None:
        self._say("restore minSnapshotHistoryWindowInSeconds")

    def verify(self, old: str, old_at: OpTime, new: str, new_at: OpTime) -> snapshot.SnapshotDiff:
        self._say(f"verify {self.ctx.target_name}'s half at a snapshot: {old} at the drain point vs {new} at the "
                  "open point (readConcern snapshot, atClusterTime), while the application writes")
        return snapshot.SnapshotDiff()


def is_lab(ctx: StepContext) -> bool:
    """The lab's inventory marks itself (`splitter_lab: true`): there `run --yes` finalizes by itself."""
    return any(bool(h.vars.get("splitter_lab")) for h in ctx.inventory.values())


def ts_of(optime: OpTime | None) -> Timestamp | None:
    return optime.ts if optime else None
