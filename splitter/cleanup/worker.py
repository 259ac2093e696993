"""Deletes, from one set, the documents of the other set's half, batch by batch along the `_id` index.

Touches: this set (finds, deletes with w:1 and w:"majority", replSetGetStatus, the latency probe's document), the
other set (counts or reads `_id`s in its half for the interlock, read concern majority), and the position files
under the state dir (not in a dry run).

A chunk: the next `_id`s after the last examined one whose key routes to the other set; the other set is asked
which of them it holds *in that half*; only those are deleted (still filtered by the other half), as `parallel`
batches at once, the last with w:"majority" (batches.py, which also examines the next chunk while this one is
deleted). Unthrottled, the next chunk is deleted while up to OVERLAP_DEPTH earlier ones wait for their majority
acknowledgement (pipeline.py). Before each send the position is saved with every unsettled chunk "in flight"; it
moves past a chunk only once that chunk is durable. So a SIGKILL at any point loses nothing, skips nothing, and the
rerun counts exactly: it counts which `_id`s in flight are gone and examines those chunks again.

Every decision comes from the Throttler (throttle.py, budget.py) on what the Observer saw; progress and decisions
are events (cleanup.started / chunk / wait / done) on the bus.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.read_concern import ReadConcern

from splitter.cleanup.batches import ChunkDeleter, ChunkScanner
from splitter.cleanup.control import RunControl
from splitter.cleanup.observer import LagSource, LatencySource, Observer
from splitter.cleanup.orphans import SETTLE_TIMEOUT, OrphanSweeper, Sweep
from splitter.cleanup.pipeline import Flight, Pipeline, Walk
from splitter.cleanup.probe import LatencyProbe
from splitter.cleanup.report import SetReport
from splitter.cleanup.tally import Tally
from splitter.cleanup.throttle import Decision, Limits, Throttler
from splitter.cluster.lag import LagReader
from splitter.errors import OperationalError
from splitter.events import EventBus, EventType
from splitter.retry import is_transient, retrying
from splitter.routing import RoutedCollection, Routing
from splitter.store.cleanup_position import FlightChunk, Position, PositionStore

MAX_TRANSIENT = 10
# Chunks whose majority batch may still wait while the next chunk is deleted: measured, 2 keeps the primary busy
# while its secondary applies the oplog (1 leaves it idle part of each wait); unthrottled runs only.
OVERLAP_DEPTH = 2
# Documents per delete command: 1000 measured ~4% faster than 500 unthrottled, and is still a short command.
DEFAULT_BATCH_SIZE = 1000


class CleanupWorker:
    """One set's cleanup run; `run()` returns its SetReport. Only waits as the Throttler decides. A chunk is
    `parallel` batches of `batch_size` deleted at once (under a latency budget, of the budget's batch size); the
    throttler rests after each chunk. `remove_orphans`: once every walk is done, one more pass deletes the
    documents the owner has deleted (orphans.py)."""

    def __init__(self, *, routing: Routing, set_name: str, this: MongoClient, other: MongoClient,
                 state_dir: Path, other_set: str | None = None, limits: Limits | None = None,
                 batch_size: int = DEFAULT_BATCH_SIZE, parallel: int = 4, dry_run: bool = False,
                 remove_orphans: bool = False, orphan_settle_timeout: float = SETTLE_TIMEOUT,
                 exact_counts: bool = False, control: RunControl | None = None,
                 events: EventBus | None = None, lag_reader: LagSource | None = None,
                 probe: LatencySource | None = None, clock: Callable[[], datetime] = datetime.now,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.routing = routing
        self.set_name = set_name
        if other_set is None:  # a two-set routing names the partner itself
            others = [s for s in routing.sets if s != set_name]
            if len(others) != 1:
                raise ValueError(f"cleanup of {set_name}: name the other set of the split (routing has {others})")
            other_set = others[0]
        self.other_set = other_set
        self.this = this
        self.other = other
        self.throttler = Throttler(limits or Limits())
        self.dry_run = dry_run
        self.remove_orphans = remove_orphans
        self.orphan_settle_timeout = orphan_settle_timeout
        self.deleter = ChunkDeleter(batch_size, parallel, overlap=self.overlaps, overlap_depth=OVERLAP_DEPTH)
        self.positions = PositionStore(state_dir, set_name, persist=not dry_run)
        self.control = control or RunControl(state_dir)
        self.events = events or EventBus()
        self.observer = Observer(self.throttler.limits, self.control, lag_reader or LagReader(this),
                                 probe or LatencyProbe(this, set_name), active=not dry_run, clock=clock,
                                 monotonic=monotonic)
        self.clock = clock
        self.monotonic = monotonic
        self.tally = Tally(SetReport(set_name, self.other_set, dry_run=dry_run), this, routing, self.other_set,
                           exact=exact_counts)
        self._deleted = 0
        self._started = 0.0
        self._last_wait = ""

    @property
    def report(self) -> SetReport:
        return self.tally.report

    @property
    def overlaps(self) -> bool:
        """Whether chunks are deleted while earlier ones wait for "majority": not in a run that rests between
        chunks (it then leaves nothing in flight while it rests) nor in a dry run."""
        return not self.throttler.limits.rests and not self.dry_run

    # -- public ---------------------------------------------------------------------------------------
    def routed_collections(self) -> list[RoutedCollection]:
        """Routed collections (not views) present on this set, in a stable order."""
        present = set(self.this.list_database_names())
        result = []
        for db_name in sorted(d for d in self.routing.databases if d in present):
            for name in sorted(self.this[db_name].list_collection_names(filter={"type": "collection"})):
                routed = self.routing.routed(db_name, name)
                if routed is not None:
                    result.append(routed)
        return result

    def run(self) -> SetReport:
        try:
            with self.observer:
                return self._run()
        finally:
            self.deleter.close()

    def _run(self) -> SetReport:
        self._started = self.monotonic()
        opening = self.throttler.opening(self.clock())
        if opening.action == "stop":
            return self._finish(opening, [], {})
        routed = self._retrying(self.routed_collections)
        positions = {c.namespace: self.positions.load(c.namespace) for c in routed}
        if not self.dry_run:
            for c in routed:
                self._retrying(lambda c=c: self._recover(c, positions[c.namespace]))
        expected = self._retrying(lambda: self.tally.expected(routed, positions, self.throttler.limits.max_docs))
        self.events.emit(EventType.CLEANUP_STARTED, f"{self.set_name}: about {expected} documents of "
                         f"{self.other_set}'s half to delete", set=self.set_name, other_set=self.other_set,
                         expected=expected, dry_run=self.dry_run)
        stop: Decision | None = None
        for c in routed:
            if positions[c.namespace].done:
                continue
            stop = self._walk(c, positions[c.namespace])
            if stop is not None:
                break
        if stop is None and self.remove_orphans:
            stop = self._sweep_orphans(routed, positions)
        return self._finish(stop or Decision.stop("every routed collection was walked to the end", "done"),
                            routed, positions)

    # -- the walk -------------------------------------------------------------------------------------
    def _scanner(self, routed: RoutedCollection, *, read_ahead: bool) -> ChunkScanner:
        coll = self.this[routed.database][routed.collection]
        other = self.other[routed.database].get_collection(routed.collection, read_concern=ReadConcern("majority"))
        return ChunkScanner(coll, other, self.routing.half_filter(routed.key, self.other_set),
                            self.routing.unclaimed_filter(routed.key), read_ahead=read_ahead)

    def _walk(self, routed: RoutedCollection, pos: Position) -> Decision | None:
        scanner = self._scanner(routed, read_ahead=not self.throttler.limits.rests)
        walk = Walk(scanner.this, scanner.half, pos, scanner, Pipeline(OVERLAP_DEPTH if self.overlaps else 0))
        try:
            while True:
                decision = self._await_go(walk)
                if decision is not None:
                    return decision
                started = self.monotonic()
                more = self._retrying(lambda: self._chunk(walk))
                if not more:
                    return None
                rest = self.throttler.rest_after(self.monotonic() - started, self.clock(), self._elapsed(),
                                                 self.observer.pace)
                self.control.wait(rest)
        finally:
            walk.pipeline.abandon()
            walk.scanner.close()

    def _chunk(self, walk: Walk) -> bool:
        """Examines and sends one chunk, settles the chunks beyond the pipeline's depth; False when the
        collection has nothing more to examine (and everything sent is settled)."""
        pos = walk.pos
        self._recover_walk(walk)
        quota = self.throttler.batch_quota(self._deleted + walk.pipeline.allowed, self.deleter.chunk_size)
        if quota <= 0:
            self._settle_all(walk)  # --max-docs reached; the throttler, counting them, stops before the next chunk
            return True
        found = walk.scanner.take(walk.started, walk.last_id, quota)
        if not found.ids:
            self._settle_all(walk)
            pos.done = True
            self.positions.save(pos)
            return False
        with walk.recover_on_error():
            sent, record = None, FlightChunk(found.ids, len(found.allowed))
            if not self.dry_run:
                pos.in_flight = walk.pipeline.in_flight(adding=record)
                self.positions.save(pos)
                sent = self.deleter.send(walk.coll, walk.half, found.allowed) if found.allowed else None
            walk.pipeline.push(Flight(found, sent, record))
            walk.started, walk.last_id = True, found.ids[-1]
            for flight in walk.pipeline.due():
                self._settle(walk, flight)
            if not walk.pipeline:
                self.positions.save(pos)
        return True

    def _settle(self, walk: Walk, flight: Flight) -> None:
        """Records a durable chunk (in memory; the next save writes it): the position moves past it."""
        deleted = len(flight.examined.allowed) if self.dry_run else flight.deleted()
        pos = walk.pos
        pos.started, pos.last_id = True, flight.examined.ids[-1]
        pos.in_flight = walk.pipeline.in_flight()
        pos.deleted += deleted
        for reason, ids in flight.examined.kept_by.items():
            pos.note_kept(reason, ids)
        pos.batches += 1
        kept = self.tally.chunk(walk.coll.full_name, deleted, flight.examined.kept_by)
        self._deleted += deleted
        pace = self.observer.pace
        self.events.emit(EventType.CLEANUP_CHUNK, f"{self.set_name}: {walk.coll.full_name}: "
                         f"{'would delete' if self.dry_run else 'deleted'} {deleted}, kept {kept} "
                         f"({self._deleted} this run)", set=self.set_name, namespace=walk.coll.full_name,
                         deleted=deleted, kept=kept, deleted_run=self._deleted,
                         throttle=str(pace) if pace is not None else None)

    def _settle_all(self, walk: Walk) -> None:
        """Waits until every chunk sent is durable and saves the position past them."""
        self._recover_walk(walk)
        if walk.pipeline:
            with walk.recover_on_error():
                for flight in walk.pipeline.drain():
                    self._settle(walk, flight)
            self.positions.save(walk.pos)

    def _recover_walk(self, walk: Walk) -> None:
        """After an error while chunks were in flight: counts what they deleted; the walk goes on from the saved
        position (the chunks are examined again)."""
        if walk.recovering:
            if walk.pos.in_flight is not None and not self.dry_run:
                self._recover_batch(walk.coll, walk.half, walk.pos)
            walk.rewind()

    def _recover(self, routed: RoutedCollection, pos: Position) -> None:
        if pos.in_flight is not None:
            coll = self.this[routed.database][routed.collection]
            self._recover_batch(coll, self.routing.half_filter(routed.key, self.other_set), pos)

    def _recover_batch(self, coll: Any, half: dict[str, Any], pos: Position) -> None:
        """Chunks were interrupted between their deletes and their record: count what they deleted, keep the
        position (those chunks are examined again)."""
        assert pos.in_flight is not None
        still = coll.count_documents({"$and": [{"_id": {"$in": pos.in_flight.ids}}, half]})
        pos.deleted += len(pos.in_flight.ids) - still
        pos.in_flight = None
        self.positions.save(pos)

    # -- orphans --------------------------------------------------------------------------------------
    def _sweep_orphans(self, routed: list[RoutedCollection], positions: dict[str, Position]) -> Decision | None:
        """One pass per walked collection over what the walk kept; stops where the throttler says stop."""
        for c in routed:
            if positions[c.namespace].done:
                stop = self._sweep(c, positions[c.namespace])
                if stop is not None:
                    return stop
        return None

    def _sweep(self, routed: RoutedCollection, pos: Position) -> Decision | None:
        scanner = self._scanner(routed, read_ahead=False)
        sweeper = OrphanSweeper(scanner, self.deleter, self.other, self.other_set, dry_run=self.dry_run,
                                sleep=self.control.wait, monotonic=self.monotonic,
                                timeout=self.orphan_settle_timeout)
        sweep, started, last = Sweep(), False, None
        try:
            while True:
                ids = self._retrying(scanner.candidates, started, last, self.deleter.chunk_size)
                if not ids:
                    return None
                decision = self._await_go(None)
                if decision is not None:
                    return decision
                self._retrying(sweeper.sweep_chunk, ids, sweep)
                started, last = True, ids[-1]
        finally:
            scanner.close()
            pos.deleted += sweep.deleted
            pos.orphans_removed += 0 if self.dry_run else sweep.removed
            self.positions.save(pos)
            self._deleted += sweep.deleted + sweep.removed
            self.tally.sweep(routed.namespace, sweep)

    # -- throttling -----------------------------------------------------------------------------------
    def _elapsed(self) -> float:
        return self.monotonic() - self._started

    def _await_go(self, walk: Walk | None) -> Decision | None:
        """Waits while the throttler says wait, with every chunk sent settled first; returns its stop decision,
        or None to go."""
        while True:
            decision = self.throttler.decide(self.observer.observe(self._elapsed(), self._deleted))
            if self.observer.adopt(decision) and decision.action == "go":
                self._note_wait(decision)  # slowed down or sped up by the latency budget
            if decision.action == "go":
                self._last_wait = ""
                if self.observer.pace is not None:
                    self.deleter.batch_size = self.observer.pace.batch
                return None
            if walk is not None:
                self._retrying(lambda: self._settle_all(walk))
            if decision.action == "stop":
                return decision
            self._note_wait(decision)
            began = self.monotonic()
            self.control.wait(decision.seconds)
            if decision.kind == "calibrate":
                self.observer.calibrated(began)
            self.report.waits[decision.kind] = self.report.waits.get(decision.kind, 0.0) + self.monotonic() - began

    def _note_wait(self, decision: Decision) -> None:
        """A wait (or a change of pace) becomes an event when its reason is new."""
        if decision.reason == self._last_wait:
            return
        self._last_wait = decision.reason
        if decision.action == "wait":
            self.report.last_wait = decision.reason
        pace = decision.pace or self.observer.pace
        self.events.emit(EventType.CLEANUP_WAIT, f"{self.set_name}: {decision.reason}",
                         level="debug" if decision.action == "go" and "speeding up" in decision.reason else "info",
                         set=self.set_name, reason=decision.reason, kind=decision.kind, seconds=decision.seconds,
                         action=decision.action, throttle=str(pace) if pace is not None else None)

    def _retrying(self, action: Callable[..., Any], *args: Any) -> Any:
        """Runs `action(*args)`, again after transient errors (elections, network), each reported as a retry
        event."""
        retry = retrying(f"cleanup of {self.set_name}", events=self.events, attempts=MAX_TRANSIENT, wait_min=0.5,
                         wait_max=4.0, sleep=self.control.wait)
        try:
            return retry(action, *args)
        except Exception as exc:
            if not is_transient(exc):
                raise
            raise OperationalError(f"cleanup of {self.set_name}: {MAX_TRANSIENT} transient errors in a row, last: "
                                   f"{exc}", hint="check the set's health; the position is saved, rerun the same "
                                   "command to continue") from exc

    # -- report ---------------------------------------------------------------------------------------
    def _finish(self, stop: Decision, routed: list[RoutedCollection], positions: dict[str, Position]) -> SetReport:
        self.report.stop_kind, self.report.stop_reason = stop.kind, stop.reason
        for c in routed:
            self._retrying(lambda c=c: self.tally.finish(c, positions[c.namespace]))
        self.report.collections.sort(key=lambda r: r.namespace)
        self.report.elapsed = self._elapsed()
        report = self.report
        self.events.emit(EventType.CLEANUP_DONE, f"{self.set_name}: {stop.reason}", set=self.set_name,
                         other_set=self.other_set, deleted=report.total("deleted"),
                         kept=report.total("kept_by_interlock"), kept_by=report.kept_by(),
                         orphans_removed=report.total("orphans_removed"), stopped=stop.kind, reason=stop.reason,
                         done=report.done, dry_run=self.dry_run)
        return report
