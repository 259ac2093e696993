"""Deletes, from one set, the documents of the other set's half, batch by batch along the `_id` index.

Touches: this set (finds, deletes with w:1 and w:"majority", replSetGetStatus), the other set (counts or reads
`_id`s for the interlock, read concern majority), and the position files under the state dir (not in a dry run).

A chunk: the next `_id`s after the last examined one whose key routes to the other set; the other set is asked
which of them it holds; only those are deleted (still filtered by the other half), as `parallel` batches at once,
the last with w:"majority" (batches.py, which also examines the next chunk while this one is deleted). Unthrottled,
the next chunk is deleted while up to OVERLAP_DEPTH earlier ones wait for their majority acknowledgement
(pipeline.py). Before each send the position is saved with every unsettled chunk "in flight"; it moves past a chunk
only once that chunk is durable. So a SIGKILL at any point loses nothing, skips nothing, and the rerun counts
exactly: it counts which `_id`s in flight are gone and examines those chunks again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import AutoReconnect, ConnectionFailure, NotPrimaryError, WTimeoutError
from pymongo.read_concern import ReadConcern

from splitter.cleanup.batches import ChunkDeleter, ChunkScanner
from splitter.cleanup.control import RunControl
from splitter.cleanup.pipeline import Flight, Pipeline, Walk
from splitter.cleanup.progress import NullProgress, ProgressSink
from splitter.cleanup.report import CollectionReport, SetReport
from splitter.cleanup.throttle import Decision, Limits, Observation, Throttler
from splitter.cluster.lag import LagReader, LagReading
from splitter.errors import OperationalError
from splitter.routing import RoutedCollection, Routing
from splitter.store.cleanup_position import FlightChunk, Position, PositionStore

TRANSIENT = (AutoReconnect, ConnectionFailure, NotPrimaryError, WTimeoutError)
MAX_TRANSIENT = 10
TRANSIENT_PAUSE = 2.0
# Chunks whose majority batch may still wait while the next chunk is deleted: measured, 2 keeps the primary busy
# while its secondary applies the oplog (1 leaves it idle part of each wait); unthrottled runs only.
OVERLAP_DEPTH = 2
# Documents per delete command: 1000 measured ~4% faster than 500 unthrottled, and is still a short command.
DEFAULT_BATCH_SIZE = 1000


class LagSource(Protocol):
    def read(self) -> LagReading: ...


class CleanupWorker:
    """One set's cleanup run; `run()` returns its SetReport. Only waits as the Throttler decides. A chunk is
    `parallel` batches of `batch_size` deleted at once; the throttler rests after each chunk."""

    def __init__(self, *, routing: Routing, set_name: str, this: MongoClient, other: MongoClient,
                 state_dir: Path, other_set: str | None = None, limits: Limits | None = None,
                 batch_size: int = DEFAULT_BATCH_SIZE, parallel: int = 4,
                 dry_run: bool = False, control: RunControl | None = None, progress: ProgressSink | None = None,
                 lag_reader: LagSource | None = None, clock: Callable[[], datetime] = datetime.now,
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
        self.deleter = ChunkDeleter(batch_size, parallel, overlap=self.overlaps, overlap_depth=OVERLAP_DEPTH)
        self.positions = PositionStore(state_dir, set_name, persist=not dry_run)
        self.control = control or RunControl(state_dir)
        self.progress: ProgressSink = progress or NullProgress()
        self.lag = lag_reader or LagReader(this)
        self.clock = clock
        self.monotonic = monotonic
        self.report = SetReport(set_name, self.other_set, dry_run=dry_run)
        self._deleted = 0
        self._started = 0.0

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
            return self._run()
        finally:
            self.deleter.close()

    def _run(self) -> SetReport:
        self._started = self.monotonic()
        opening = self.throttler.opening(self.clock())
        if opening.action == "stop":
            return self._finish(opening, [])
        routed = self._retrying(self.routed_collections)
        positions = {c.namespace: self.positions.load(c.namespace) for c in routed}
        if not self.dry_run:
            for c in routed:
                self._retrying(lambda c=c: self._recover(c, positions[c.namespace]))
        self.progress.start(self.set_name, self._retrying(lambda: self._expected(routed, positions)))
        stop: Decision | None = None
        for c in routed:
            if positions[c.namespace].done:
                continue
            stop = self._walk(c, positions[c.namespace])
            if stop is not None:
                break
        return self._finish(stop or Decision.stop("every routed collection was walked to the end", "done"),
                            routed, positions)

    # -- the walk -------------------------------------------------------------------------------------
    def _walk(self, routed: RoutedCollection, pos: Position) -> Decision | None:
        coll = self.this[routed.database][routed.collection]
        other = self.other[routed.database].get_collection(routed.collection, read_concern=ReadConcern("majority"))
        half = self.routing.half_filter(routed.key, self.other_set)
        walk = Walk(coll, half, pos, ChunkScanner(coll, other, half, read_ahead=not self.throttler.limits.rests),
                    Pipeline(OVERLAP_DEPTH if self.overlaps else 0))
        try:
            while True:
                decision = self._await_go(walk)
                if decision is not None:
                    return decision
                started = self.monotonic()
                more = self._retrying(lambda: self._chunk(walk))
                if not more:
                    return None
                rest = self.throttler.rest_after(self.monotonic() - started, self.clock(), self._elapsed())
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
        pos.note_kept(flight.examined.kept)
        pos.batches += 1
        rep = self._collection_report(walk.coll.full_name)
        rep.deleted += deleted
        rep.kept_by_interlock += len(flight.examined.kept)
        self._deleted += deleted
        self.progress.advance(self.set_name, deleted)

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

    def _recover_batch(self, coll: Collection, half: dict[str, Any], pos: Position) -> None:
        """Chunks were interrupted between their deletes and their record: count what they deleted, keep the
        position (those chunks are examined again)."""
        assert pos.in_flight is not None
        still = coll.count_documents({"$and": [{"_id": {"$in": pos.in_flight.ids}}, half]})
        pos.deleted += len(pos.in_flight.ids) - still
        pos.in_flight = None
        self.positions.save(pos)

    # -- throttling -----------------------------------------------------------------------------------
    def _elapsed(self) -> float:
        return self.monotonic() - self._started

    def _observe(self) -> Observation:
        reading = LagReading()
        if self.throttler.limits.max_lag is not None and not self.dry_run:
            reading = self.lag.read()
        return Observation(now=self.clock(), elapsed=self._elapsed(), deleted=self._deleted, lags=reading.lags,
                           lag_error=reading.error, paused=self.control.paused(),
                           stop_requested=self.control.stop_requested)

    def _await_go(self, walk: Walk) -> Decision | None:
        """Waits while the throttler says wait, with every chunk sent settled first; returns its stop decision,
        or None to go."""
        waited = False
        while True:
            decision = self.throttler.decide(self._observe())
            if decision.action == "go":
                if waited:
                    self.progress.status(self.set_name, "deleting")
                return None
            self._retrying(lambda: self._settle_all(walk))
            if decision.action == "stop":
                return decision
            waited = True
            self.progress.status(self.set_name, decision.reason)
            self.report.last_wait = decision.reason
            began = self.monotonic()
            self.control.wait(decision.seconds)
            self.report.waits[decision.kind] = self.report.waits.get(decision.kind, 0.0) + self.monotonic() - began

    def _retrying(self, action: Callable[[], Any]) -> Any:
        failures = 0
        while True:
            try:
                return action()
            except TRANSIENT as exc:
                failures += 1
                if failures >= MAX_TRANSIENT:
                    raise OperationalError(f"cleanup of {self.set_name}: {failures} transient errors in a row, "
                                           f"last: {exc}", hint="check the set's health; the position is "
                                           "saved, rerun the same command to continue") from exc
                self.progress.status(self.set_name, f"transient error ({type(exc).__name__}); retrying")
                self.control.wait(TRANSIENT_PAUSE)

    # -- report ---------------------------------------------------------------------------------------
    def _collection_report(self, namespace: str) -> CollectionReport:
        for rep in self.report.collections:
            if rep.namespace == namespace:
                return rep
        rep = CollectionReport(namespace)
        self.report.collections.append(rep)
        return rep

    def _expected(self, routed: list[RoutedCollection], positions: dict[str, Position]) -> int:
        """About how many documents this run will delete (for the bar and its ETA): the collections' document
        counts from their metadata, split by the modulus, less what earlier runs deleted. Counting the half
        exactly would read every document once more before the first delete."""
        total = 0
        for c in routed:
            pos = positions[c.namespace]
            if not pos.done:
                now = self.this[c.database][c.collection].estimated_document_count()
                # the other half was about 1/modulus of the documents before earlier runs deleted some of it
                total += max((now + pos.deleted) // self.routing.modulus - pos.deleted - pos.kept_by_interlock, 0)
        limit = self.throttler.limits.max_docs
        return min(total, limit) if limit is not None else total

    def _finish(self, stop: Decision, routed: list[RoutedCollection],
                positions: dict[str, Position] | None = None) -> SetReport:
        self.report.stop_kind, self.report.stop_reason = stop.kind, stop.reason
        for c in routed:
            pos = (positions or {})[c.namespace]
            rep = self._collection_report(c.namespace)
            coll = self.this[c.database][c.collection]
            rep.remaining = self._retrying(
                lambda coll=coll, c=c: coll.count_documents(self.routing.half_filter(c.key, self.other_set)))
            rep.bad_keys = self._retrying(lambda coll=coll, c=c: coll.count_documents(
                self.routing.unclaimed_filter(c.key)))
            rep.deleted_total, rep.kept_total, rep.kept_sample = pos.deleted, pos.kept_by_interlock, pos.kept_sample
            rep.done = pos.done
        self.report.collections.sort(key=lambda r: r.namespace)
        self.report.elapsed = self._elapsed()
        self.progress.status(self.set_name, stop.reason)
        return self.report
