"""Parallel apply of one batch of translated events to the target, then a `w: majority` barrier.

Touches: the target set (runs of inserts unordered, everything else in ordered bulk writes, `w: 1`, one thread per
partition; one no-op update with `w: majority` per batch; deletes of stale other-half copies that block a unique
index before the switch) and reads of the source by `_id` (majority read concern) for updates whose key may have
moved.

Events are partitioned by a hash of their `_id`, so every document's events are applied in stream order by one
thread; documents are independent of each other except through unique secondary indexes, whose transient
conflicts across partitions are retried after the others have finished (`_Deferred`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bson.raw_bson import RawBSONDocument
from pymongo import DeleteOne, InsertOne, MongoClient, ReplaceOne
from pymongo.errors import AutoReconnect, BulkWriteError
from pymongo.write_concern import WriteConcern

from splitter.catchup.apply import Lookup, Translation, WriteOp, get_path, resolve_lookup
from splitter.catchup.rawdoc import RAW, top_level
from splitter.errors import OperationalError
from splitter.routing import Routing

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
W1 = WriteConcern(w=1)


@dataclass
class BatchResult:
    counts: Counter[str] = field(default_factory=Counter)  # deleted, stale_removed, lookups, target_writes, ...
    notes: list[str] = field(default_factory=list)
    timing: Counter[str] = field(default_factory=Counter)  # seconds: apply (all partitions), barrier


class _Deferred(Exception):
    """A duplicate key held by a document of the target's own half: another partition may not have applied the
    event that frees the value yet; the rest of this partition is retried after the others."""

    def __init__(self, remaining: list[tuple[tuple[str, str], list[WriteOp]]], error: Mapping[str, Any]) -> None:
        super().__init__("deferred")
        self.remaining, self.error = remaining, error


class Applier:
    """Applies batches for `target_set`'s half from `source` into `target` with `threads` partitions."""

    def __init__(self, source: MongoClient, target: MongoClient, routing: Routing, target_set: str, *,
                 threads: int = 4, bypass_validation: bool = False, before_switch: bool = True,
                 wtimeout_ms: int = 60_000) -> None:
        self.source, self.target, self.routing, self.target_set = source, target, routing, target_set
        self.threads, self.bypass_validation, self.before_switch = max(1, threads), bypass_validation, before_switch
        self.wtimeout_ms = wtimeout_ms
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix=f"apply-{target_set}")
        self._election_id: Any = None
        self._fallbacks: dict[int, Lookup] = {}  # id(UpdateOne) -> its document, for this batch

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # -- one batch --------------------------------------------------------------------------------------------
    def apply(self, batch: list[tuple[int, Translation]]) -> BatchResult:
        """Apply `(partition hash, translation)` pairs (stream order) with `w: 1`, then the majority barrier."""
        result = BatchResult()
        if self._election_id is None:
            self._election_id = self.target.admin.command("hello").get("electionId")
        parts: list[list[Translation]] = [[] for _ in range(self.threads)]
        for h, tr in batch:
            parts[h % self.threads].append(tr)
        started = time.monotonic()
        futures = [self._pool.submit(self._partition, part, result) for part in parts if part]
        deferred = []
        for future in futures:
            try:
                future.result()
            except _Deferred as later:
                result.counts["deferred"] += 1
                deferred.append(later.remaining)
        for remaining in deferred:  # every other partition has applied its events: the value is free now
            self._write(remaining, result, defer=False)
        self._fallbacks.clear()
        result.timing["apply"] += time.monotonic() - started
        if batch:
            started = time.monotonic()
            self.barrier()
            result.timing["barrier"] += time.monotonic() - started
        return result

    def _partition(self, part: list[Translation], result: BatchResult) -> None:
        grouped: list[tuple[tuple[str, str], list[WriteOp]]] = []
        for tr in part:
            writes = tr.writes
            if tr.lookup is not None:
                writes = self._resolve(tr.namespace, tr.lookup, result)
            elif tr.fallback is not None:
                for op in writes:
                    self._fallbacks[id(op)] = tr.fallback
            if not writes:
                continue
            if grouped and grouped[-1][0] == tr.namespace:
                grouped[-1][1].extend(writes)
            else:
                grouped.append((tr.namespace, list(writes)))
        self._write(grouped, result, defer=True)

    def _resolve(self, ns: tuple[str, str], lookup: Lookup, result: BatchResult) -> list[WriteOp]:
        outcome, writes = resolve_lookup(self._read_source(ns, lookup), lookup, self.routing, self.target_set,
                                         self.before_switch)
        result.counts["lookups"] += 1
        if outcome == "unclaimed":
            result.counts["unclaimed"] += 1
        return writes

    def _read_source(self, ns: tuple[str, str], lookup: Lookup) -> RawBSONDocument | None:
        """The source's current document, majority-committed and at least as new as the event (afterClusterTime:
        right after an election on the source, its new primary's majority snapshot can be older than an event
        the old one already returned, and a key move read from before the move would delete the document)."""
        read_concern: dict[str, Any] = {"level": "majority"}
        if lookup.at is not None:
            read_concern["afterClusterTime"] = lookup.at
        reply = self.source[ns[0]].command({"find": ns[1], "filter": {"_id": lookup._id}, "limit": 1,
                                            "singleBatch": True, "readConcern": read_concern}, codec_options=RAW)
        batch = reply["cursor"]["firstBatch"]
        return batch[0] if batch else None

    def _write(self, grouped: list[tuple[tuple[str, str], list[WriteOp]]], result: BatchResult, defer: bool) -> None:
        for i, (ns, ops) in enumerate(grouped):
            coll = self.target[ns[0]].get_collection(ns[1], write_concern=W1, codec_options=RAW)
            while ops:
                inserts = _leading_inserts(ops)
                if inserts:  # failed inserts come back as replaces, applied next in order
                    ops = self._insert_run(coll, inserts, result) + ops[len(inserts):]
                    continue
                applied, held = self._ordered(coll, ns, ops, result)
                if held is None:
                    ops = ops[applied:]
                elif defer:
                    raise _Deferred([(ns, ops[applied:]), *grouped[i + 1:]], held)
                else:
                    raise OperationalError(
                        f"catch-up into {self.target_set}: {ns[0]}.{ns[1]}: duplicate key "
                        f"{dict(held.get('keyValue') or {})} held by a document of {self.target_set}'s own "
                        f"half: {held.get('errmsg')}")

    def _insert_run(self, coll: Any, inserts: list[InsertOne], result: BatchResult) -> list[WriteOp]:
        """Insert unordered; returns the inserts that failed on a duplicate key as replaces (upserts), in order:
        a duplicate `_id` is a replay of this insert (the replace is what it means), another unique index goes
        the ordered way below (stale holders, deferral)."""
        try:
            res = coll.bulk_write(inserts, ordered=False, bypass_document_validation=self.bypass_validation)
            result.counts["target_writes"] += res.inserted_count
            return []
        except BulkWriteError as exc:
            details = exc.details or {}
            errors = details.get("writeErrors") or []
            result.counts["target_writes"] += details.get("nInserted", 0)
            if details.get("writeConcernErrors") or any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            failed = sorted(e["index"] for e in errors)
            result.counts["insert_replays"] += len(failed)
            return [_as_replace(inserts[at]) for at in failed]

    def _ordered(self, coll: Any, ns: tuple[str, str], ops: list[WriteOp],
                 result: BatchResult) -> tuple[int, Mapping[str, Any] | None]:
        """Apply `ops` in order up to the next run of inserts: (how many were applied or freed to be retried, None),
        or (where it stopped, the write error) at a duplicate held by a document of the target's own half."""
        upto = next((n for n, op in enumerate(ops) if isinstance(op, InsertOne)), len(ops))
        try:
            res = coll.bulk_write(ops[:upto], ordered=True, bypass_document_validation=self.bypass_validation)
            result.counts["deleted"] += res.deleted_count
            # Documents of the target's half written (other halves' updates match nothing): the drain's quiet
            # period watches these, not the other half's traffic.
            result.counts["target_writes"] += res.matched_count + res.upserted_count
            return upto, None
        except BulkWriteError as exc:
            details = exc.details or {}
            result.counts["deleted"] += details.get("nRemoved", 0)
            error = (details.get("writeErrors") or [{}])[0]
            result.counts["target_writes"] += details.get("nMatched", 0) + details.get("nUpserted", 0)
            at = error.get("index", 0)
            fallback = self._fallbacks.get(id(ops[at]))
            if error.get("code") != DUPLICATE_KEY and fallback is not None and not details.get("writeConcernErrors"):
                # The description does not fit the target's copy (a replay onto a later state after a crash):
                # take the source's current document instead, as updateLookup would.
                ops[at:at + 1] = self._resolve(ns, fallback, result)
                result.counts["fallbacks"] += 1
                return at, None
            if error.get("code") != DUPLICATE_KEY or details.get("writeConcernErrors"):
                raise
            freed = self._free_duplicate(coll, ns, error, result)  # a stale other-half holder, removed
            return at, None if freed else error

    def _free_duplicate(self, coll: Any, ns: tuple[str, str], error: Mapping[str, Any], result: BatchResult) -> bool:
        """Delete the target's copy that holds the duplicate value if it is a stale copy of another half (safe
        before the switch: the target serves none of it). False when the holder is the target's own."""
        key_value = error.get("keyValue")
        if not self.before_switch or not key_value:
            return False
        key = self.routing.key_for(*ns)
        holder = coll.find_one(dict(key_value))
        if holder is None:
            return True  # freed meanwhile: retry
        if self.routing.owner(get_path(holder, key)) == self.target_set:
            return False
        half = self.routing.half_filter(key, self.target_set)
        coll.bulk_write([DeleteOne({"$and": [{"_id": holder["_id"]}, {"$nor": [half]}]})])
        result.counts["stale_removed"] += 1
        result.notes.append(f"{ns[0]}.{ns[1]}: removed the stale copy of _id {holder['_id']!r} (not "
                            f"{self.target_set}'s half) that held {dict(key_value)} in a unique index")
        return True

    # -- the barrier --------------------------------------------------------------------------------------------
    def barrier(self) -> None:
        """Wait until every write so far is majority-committed on the target, in the same term.

        A no-op write with `w: majority` waits for the primary's latest optime (the server sets a no-op's last op
        to the system's). If the primary changed since the last barrier, `w: 1` writes may have been rolled back:
        raise a transient error so that the batch is re-applied from the saved position.
        """
        db = self.target[next(iter(sorted(self.routing.databases)))]
        reply = db.command({"update": "splitter.catchup.barrier", "updates": [
            {"q": {"_id": "barrier"}, "u": {"$set": {"never": True}}, "upsert": False}],
            "writeConcern": {"w": "majority", "wtimeout": self.wtimeout_ms}})
        if reply.get("writeConcernError"):
            raise AutoReconnect(f"majority barrier on the target: {reply['writeConcernError']}")
        election = reply.get("electionId")
        if election is not None and self._election_id is not None and election != self._election_id:
            self._election_id = election
            raise AutoReconnect("the target's primary changed during the batch; re-applying from the saved position")
        self._election_id = election or self._election_id


def _leading_inserts(ops: list[WriteOp]) -> list[InsertOne]:
    run: list[InsertOne] = []
    for op in ops:
        if not isinstance(op, InsertOne):
            break
        run.append(op)
    return run


def _as_replace(op: InsertOne) -> ReplaceOne:
    doc = op._doc
    return ReplaceOne({"_id": doc["_id"]}, doc, upsert=True)


def partition_hash(event: Mapping[str, Any]) -> int:
    """Same `_id`, same partition: the raw bytes of the document key when there are any."""
    key = top_level(event).get("documentKey")
    if isinstance(key, RawBSONDocument):
        return hash(key.raw)
    return hash(repr(key)) if key is not None else 0

