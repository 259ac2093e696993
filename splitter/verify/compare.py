"""Compares the routed collections of two sets, half by half. Reads only (secondaries preferred, read concern
majority: a secondary's majority snapshot, never writes a failover could roll back).

Per collection: `_id` ranges from the source (see ranges.py); per range, half and side: a count and an
order-independent hash (sum mod 2**64 of an 8-byte blake2b of each document's raw BSON), all ranges in
parallel. A range whose count or hash differs is read again on both sides as (`_id`, digest) pairs and
diffed: that names the missing, extra and different documents, and a range that was only changing while
it was read (replication, catch-up) comes out equal the second time.

With a VerifyProgress, the ranges and each finished range's totals are kept in the state dir as they come in,
so a verify that was killed resumes with the ranges it had not read yet.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, TypeVar

import bson
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient, ReadPreference
from pymongo.collection import Collection
from pymongo.errors import PyMongoError
from pymongo.read_concern import ReadConcern

from splitter.errors import BadInput, OperationalError
from splitter.events import EventBus, EventType
from splitter.routing import RoutedCollection, Routing
from splitter.store.verify_progress import VerifyProgress
from splitter.verify.ranges import IdCondition, plan_ranges
from splitter.verify.report import CollectionHalfResult, NotCompared, UnclaimedCount, VerifyReport

MASK = (1 << 64) - 1
# DATETIME_AUTO: a date outside Python's range still decodes (only `_id`s are ever decoded).
RAW = CodecOptions(document_class=RawBSONDocument, datetime_conversion=DatetimeConversion.DATETIME_AUTO)
SIDES = ("source", "target")
MAJORITY = ReadConcern("majority")
T = TypeVar("T")

Progress = Callable[[str], None]
RangeKey = tuple[str, str, int]  # namespace, half, range index
Fingerprints = dict[bytes, tuple[Any, int]]  # encoded _id -> (_id, digest)


def digest(raw: bytes) -> int:
    """8-byte blake2b of one document's raw BSON, as an integer."""
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big")


def hash_hex(value: int) -> str:
    return f"{value:016x}"


@dataclass(frozen=True)
class _Plan:
    routed: RoutedCollection
    ranges: tuple[IdCondition, ...]
    hint: Any


def _quiet(_: str) -> None:
    return None


def _guard(what: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except PyMongoError as exc:
        raise OperationalError(f"verify: {what}: {exc}") from exc


class _Sides:
    """Raw-BSON, secondary-preferred, majority-read collection handles on both sets; only reads."""

    def __init__(self, source: MongoClient, target: MongoClient, names: dict[str, str]) -> None:
        self.clients = {"source": source, "target": target}
        self.names = names

    def coll(self, side: str, database: str, collection: str) -> Collection:
        db = self.clients[side].get_database(database, codec_options=RAW, read_concern=MAJORITY,
                                             read_preference=ReadPreference.SECONDARY_PREFERRED)
        return db[collection]

    def _list(self, side: str, database: str, query: dict[str, Any]) -> list[dict[str, Any]]:
        cmd = {"listCollections": 1, "filter": query, "cursor": {"batchSize": 100_000}}
        reply = _guard(f"listing {database} on {self.names[side]}", lambda: self.clients[side][database].command(
            cmd, read_preference=ReadPreference.SECONDARY_PREFERRED))
        return list(reply["cursor"]["firstBatch"])

    def collections(self, side: str, database: str) -> dict[str, dict[str, Any]]:
        """name -> options of the plain collections (no views, no time series) of `database`."""
        return {c["name"]: c.get("options", {}) for c in self._list(side, database, {"type": "collection"})}

    def not_compared(self, routing: Routing) -> tuple[NotCompared, ...]:
        """Namespaces of routed databases that verify does not compare, on either side, and why."""
        found: dict[str, str] = {}
        for side in SIDES:
            for database in sorted(routing.databases):
                for info in self._list(side, database, {}):
                    ns, kind = f"{database}.{info['name']}", info.get("type", "collection")
                    if info["name"].startswith("system."):
                        continue
                    if kind != "collection":
                        found.setdefault(ns, "a time-series collection" if kind == "timeseries" else f"a {kind}")
                    elif ns in routing.exclude:
                        found.setdefault(ns, "excluded in routing.exclude")
        return tuple(NotCompared(ns, why) for ns, why in sorted(found.items()))


def _routed(sides: _Sides, routing: Routing) -> list[tuple[RoutedCollection, bool]]:
    """Routed collections present on either side, with whether they are clustered (no `_id_` index)."""
    found: list[tuple[RoutedCollection, bool]] = []
    for database in sorted(routing.databases):
        options = {**sides.collections("target", database), **sides.collections("source", database)}
        for name in sorted(options):
            routed = routing.routed(database, name)
            if routed is not None:
                found.append((routed, "clusteredIndex" in options[name]))
    return found


def _hash_range(coll: Collection, query: dict[str, Any], hint: Any) -> tuple[int, int]:
    count = total = 0
    for doc in coll.find(query, hint=hint, batch_size=1000):
        total = (total + digest(doc.raw)) & MASK
        count += 1
    return count, total


def _fingerprints(coll: Collection, query: dict[str, Any], hint: Any) -> Fingerprints:
    found: Fingerprints = {}
    for doc in coll.find(query, hint=hint, batch_size=1000):
        value = doc["_id"]
        found[bson.encode({"_id": value})] = (value, digest(doc.raw))
    return found


def _totals(prints: Fingerprints) -> tuple[int, int]:
    return len(prints), sum(d for _, d in prints.values()) & MASK


@dataclass
class _HalfTally:
    """Accumulates one (collection, half) over its ranges."""

    plan: _Plan
    half: str
    samples: int

    def __post_init__(self) -> None:
        self.count = {"source": 0, "target": 0}
        self.hash = {"source": 0, "target": 0}
        self.ids: dict[str, list[Any]] = {"missing": [], "extra": [], "different": []}
        self.counts = {"missing": 0, "extra": 0, "different": 0}

    def add(self, side: str, count: int, value: int) -> None:
        self.count[side] += count
        self.hash[side] = (self.hash[side] + value) & MASK

    def add_diff(self, source: Fingerprints, target: Fingerprints) -> None:
        categories = {
            "missing": [v for k, (v, _) in source.items() if k not in target],
            "extra": [v for k, (v, _) in target.items() if k not in source],
            "different": [v for k, (v, d) in source.items() if k in target and target[k][1] != d],
        }
        for name, values in categories.items():
            self.counts[name] += len(values)
            room = self.samples - len(self.ids[name])
            self.ids[name].extend(values[:max(room, 0)])

    def result(self) -> CollectionHalfResult:
        return CollectionHalfResult(
            namespace=self.plan.routed.namespace, half=self.half, key=self.plan.routed.key,
            ranges=len(self.plan.ranges), count_source=self.count["source"], count_target=self.count["target"],
            hash_source=hash_hex(self.hash["source"]), hash_target=hash_hex(self.hash["target"]),
            missing=tuple(self.ids["missing"]), extra=tuple(self.ids["extra"]),
            different=tuple(self.ids["different"]), missing_count=self.counts["missing"],
            extra_count=self.counts["extra"], different_count=self.counts["different"])


class _Run:
    """One verification: submits every read to the shared pool and keeps the futures by (range, side)."""

    def __init__(self, sides: _Sides, routing: Routing, pool: ThreadPoolExecutor, resume: VerifyProgress) -> None:
        self.sides, self.routing, self.pool, self.resume = sides, routing, pool, resume

    def plan(self, routed: RoutedCollection, clustered: bool, range_docs: int, max_ranges: int) -> _Plan:
        source, target = (self.sides.coll(side, routed.database, routed.collection) for side in SIDES)
        ranges = self.resume.plan(routed.namespace, lambda: _guard(
            f"planning _id ranges of {routed.namespace}", lambda: plan_ranges(source, target, range_docs, max_ranges)))
        # The _id index keeps each range a bounded scan (the planner might prefer the key's index).
        return _Plan(routed, tuple(ranges), None if clustered or len(ranges) == 1 else [("_id", 1)])

    def query(self, plan: _Plan, half: str, index: int) -> dict[str, Any]:
        return {"$and": [self.routing.half_filter(plan.routed.key, half), plan.ranges[index]]}

    def submit(self, side: str, plan: _Plan, what: str, fn: Callable[[Collection], T]) -> Future[T]:
        coll = self.sides.coll(side, plan.routed.database, plan.routed.collection)
        label = f"{what} {plan.routed.namespace} on {self.sides.names[side]}"
        return self.pool.submit(_guard, label, lambda: fn(coll))

    def unclaimed(self, plan: _Plan, side: str) -> Future[int]:
        query = self.routing.unclaimed_filter(plan.routed.key)
        return self.submit(side, plan, "counting unclaimed documents of", lambda c: c.count_documents(query))

    def hash(self, plan: _Plan, half: str, index: int, side: str) -> Future[tuple[int, int]]:
        query = self.query(plan, half, index)
        return self.submit(side, plan, "hashing", lambda c: _hash_range(c, query, plan.hint))

    def fingerprints(self, plan: _Plan, half: str, index: int, side: str) -> Future[Fingerprints]:
        query = self.query(plan, half, index)
        return self.submit(side, plan, "diffing", lambda c: _fingerprints(c, query, plan.hint))


def _resolve(futures: dict[Any, Future[T]]) -> dict[Any, T]:
    return {key: future.result() for key, future in futures.items()}


class _Pace:
    """Progress of the hashing pass: a line every few seconds and a VERIFY_PROGRESS event, with an ETA from
    this run's own rate (ranges taken from a resumed verify do not count towards it)."""

    def __init__(self, total: int, done: int, progress: Progress, events: EventBus | None) -> None:
        self.total, self.done, self.first = total, done, done
        self.progress, self.events = progress, events
        self.started = self.shown = time.monotonic()

    def eta(self) -> float | None:
        read = self.done - self.first
        return (self.total - self.done) * (time.monotonic() - self.started) / read if read else None

    def tick(self) -> None:
        self.done += 1
        if time.monotonic() - self.shown < 2.0 and self.done < self.total:
            return
        self.shown = time.monotonic()
        eta = self.eta()
        message = (f"compared {self.done}/{self.total} ranges ({100 * self.done // max(self.total, 1)}%)"
                   + (f", ETA {eta:.0f}s" if eta is not None else ""))
        self.progress(message)
        if self.events is not None:
            self.events.emit(EventType.VERIFY_PROGRESS, message, ranges_done=self.done, ranges_total=self.total,
                             eta_seconds=eta)


def _hash_all(run: _Run, keys: dict[RangeKey, _Plan], pace: _Pace) -> dict[tuple[RangeKey, str], Any]:
    """(count, hash) per range and side: from the saved progress where a range was finished before, else read;
    each range is recorded once both of its sides are in."""
    hashes: dict[tuple[RangeKey, str], Any] = {}
    pending: dict[Future[tuple[int, int]], tuple[RangeKey, str]] = {}
    for key, plan in keys.items():
        if key in run.resume.done:
            hashes[key, "source"], hashes[key, "target"] = run.resume.done[key]
            continue
        for side in SIDES:
            pending[run.hash(plan, key[1], key[2], side)] = (key, side)
    try:
        for future in as_completed(pending):
            key, side = pending[future]
            hashes[key, side] = future.result()
            if (key, "source") in hashes and (key, "target") in hashes:
                run.resume.record(key, hashes[key, "source"], hashes[key, "target"])
                pace.tick()
    finally:
        run.resume.save()
    return hashes


def compare_sets(source: MongoClient, target: MongoClient, routing: Routing, halves: Iterable[str],
                 samples: int = 5, workers: int = 4, *, range_docs: int = 20_000, max_ranges: int = 2_000,
                 source_name: str = "source", target_name: str = "target",
                 progress: Progress = _quiet, resume: VerifyProgress | None = None,
                 events: EventBus | None = None) -> VerifyReport:
    """Compare `halves` (set names of `routing.owners`) of every routed collection, source vs target.

    Documents whose key no set owns are counted per side (`unclaimed`), not compared. Raises
    OperationalError when a read fails, BadInput for a half that is not one of the routing's sets.
    """
    halves = tuple(dict.fromkeys(halves))
    unknown = [h for h in halves if h not in routing.sets]
    if unknown or not halves:
        raise BadInput(f"verify: half must be one of {', '.join(routing.sets)} (got {', '.join(unknown)})")
    started = time.monotonic()
    sides = _Sides(source, target, {"source": source_name, "target": target_name})
    found = _routed(sides, routing)
    progress(f"planning _id ranges for {len(found)} routed collections")
    with ThreadPoolExecutor(max(workers, 1)) as pool:
        resume = resume if resume is not None else VerifyProgress(None)
        run = _Run(sides, routing, pool, resume)
        plans = list(pool.map(lambda item: run.plan(*item, range_docs, max_ranges), found))
        unclaimed_futures = {(p.routed.namespace, side): run.unclaimed(p, side) for p in plans for side in SIDES}
        keys: dict[RangeKey, _Plan] = {(p.routed.namespace, half, index): p
                                       for p in plans for half in halves for index in range(len(p.ranges))}
        finished = sum(1 for k in keys if k in resume.done)
        progress(f"hashing {len(keys)} ranges on {source_name} and {target_name} ({workers} workers)"
                 + (f"; resuming: {finished} already compared since {resume.started}" if finished else ""))
        hashes = _hash_all(run, keys, _Pace(len(keys), finished, progress, events))
        differing = [k for k in keys if hashes[k, "source"] != hashes[k, "target"]]
        if differing:
            progress(f"re-reading {len(differing)} differing ranges document by document")
        prints = _resolve({(k, side): run.fingerprints(keys[k], k[1], k[2], side)
                           for k in differing for side in SIDES})
        unclaimed_counts = _resolve(unclaimed_futures)

    tallies = {(p.routed.namespace, half): _HalfTally(p, half, samples) for p in plans for half in halves}
    for key in keys:  # ranges in order, so samples come from the lowest differing ranges first
        tally = tallies[key[0], key[1]]
        if (key, "source") in prints:
            source_prints, target_prints = prints[key, "source"], prints[key, "target"]
            tally.add("source", *_totals(source_prints))
            tally.add("target", *_totals(target_prints))
            tally.add_diff(source_prints, target_prints)
        else:
            for side in SIDES:
                tally.add(side, *hashes[key, side])
    unclaimed = tuple(UnclaimedCount(p.routed.namespace, p.routed.key, unclaimed_counts[p.routed.namespace, "source"],
                                     unclaimed_counts[p.routed.namespace, "target"]) for p in plans)
    return VerifyReport(source_name, target_name, halves, tuple(t.result() for t in tallies.values()), unclaimed,
                        time.monotonic() - started, sides.not_compared(routing))
