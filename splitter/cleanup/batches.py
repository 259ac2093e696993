"""The cleanup's batches: examines the next chunk of candidates ahead of time, and sends a chunk's deletes as
several batches at once, its last batch with w:"majority" (which may still be waiting when `send` returns), so that
neither the interlock lookup nor the wait for replication stalls the deletes.

The interlock: a candidate (a document of the other set's half on this set) may be deleted only when the other
set holds that `_id` *in that same half*, its own, read with majority. An `_id` alone is not enough: after a key
changed on the owner, this set's copy may be the only one in that half, or the other set's copy may be the stale
one; with `--set both` each side would see the other's copy and both would go.

Touches: this set (finds `_id`s, deletes with w:1 and w:"majority") and the other set (counts or finds `_id`s,
read concern majority). Never the position files: the worker records a chunk as in flight before `send`.
"""

from __future__ import annotations

from collections.abc import Hashable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from bson import Binary, Int64, ObjectId, Timestamp, json_util
from bson.json_util import CANONICAL_JSON_OPTIONS
from pymongo.collection import Collection
from pymongo.write_concern import WriteConcern

DELETE_CONCERN = WriteConcern("majority", wtimeout=60_000)
PRIMARY_ONLY = WriteConcern(1)
ID_INDEX = [("_id", 1)]
HASHABLE_IDS = (ObjectId, int, Int64, str, float, bool, datetime, Binary, bytes, Timestamp)
# `_id` types a query's $in matches only with the very same value: no numeric equality across int, long and
# double, no collation (strings may have one). A count of such `_id`s on the other set is as exact as reading them.
MATCHED_EXACTLY = frozenset({ObjectId, Binary, bytes, UUID, datetime})

# Why the interlock kept a candidate: the other set lacks the `_id` (deleted there by the application, or not
# yet there), holds it in another half (its key changed), or holds it with a key that routes nowhere.
KeepReason = Literal["missing", "wrong-half", "bad-key"]
KEEP_REASONS: tuple[KeepReason, ...] = ("missing", "wrong-half", "bad-key")
KEEP_REASON_TEXT: dict[str, str] = {"missing": "missing on the other set", "wrong-half": "in the wrong half there",
                                    "bad-key": "key not an integer there"}


def id_key(value: Any) -> Hashable:
    """A hashable, type-exact key for an `_id` (1, 1.0 and Int64(1) are equal in Python, not in BSON). The
    type and value for the usual `_id`s; Extended JSON, twenty times slower, for documents and arrays."""
    if isinstance(value, HASHABLE_IDS):
        return type(value), value
    return json_util.dumps(value, json_options=CANONICAL_JSON_OPTIONS)


@dataclass(frozen=True)
class Examined:
    """One chunk: the next candidate `_id`s of the other half, split by the interlock into those the other set
    holds in that half (`allowed`) and those it keeps, by reason (`kept_by`)."""

    ids: list[Any]
    allowed: list[Any]
    kept_by: dict[KeepReason, list[Any]] = field(default_factory=dict)

    @property
    def kept(self) -> list[Any]:
        return [i for reason in KEEP_REASONS for i in self.kept_by.get(reason, [])]


class ChunkScanner:
    """Finds candidates on this set and asks the other set about them; while the caller deletes one chunk, it
    already examines the next one (one background thread; not with `read_ahead=False`). Reading ahead is as safe
    as reading just before the delete: once the other set holds a document with majority, only the application
    can remove it there."""

    def __init__(self, this: Collection, other: Collection, half: dict[str, Any], unclaimed: dict[str, Any], *,
                 read_ahead: bool = True) -> None:
        self.this = this
        self.other = other
        self.half = half
        self.unclaimed = unclaimed
        self.read_ahead = read_ahead
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="cleanup-scan")
        self._ahead: tuple[tuple[Hashable, int], Future[Examined]] | None = None

    def take(self, started: bool, last_id: Any, limit: int) -> Examined:
        """The chunk after `last_id` (from the start unless `started`; at most `limit` candidates); starts
        examining the one after it."""
        found = self._from_ahead((id_key(last_id) if started else None, limit))
        if found is None:
            found = self.examine(started, last_id, limit)
        if found.ids and self.read_ahead:
            after = found.ids[-1]
            self._ahead = ((id_key(after), limit), self._pool.submit(self.examine, True, after, limit))
        return found

    def _from_ahead(self, wanted: tuple[Hashable, int]) -> Examined | None:
        ahead, self._ahead = self._ahead, None
        if ahead is None or ahead[0] != wanted:
            return None
        try:
            return ahead[1].result()
        except Exception:  # examined again in the caller's thread, where errors are handled
            return None

    def examine(self, started: bool, last_id: Any, limit: int) -> Examined:
        return self.interlock(self.candidates(started, last_id, limit))

    def interlock(self, ids: list[Any]) -> Examined:
        """Which of `ids` the other set holds in the half (majority reads), and why it keeps the rest."""
        if not ids:
            return Examined([], [])
        in_half = {"$and": [{"_id": {"$in": ids}}, self.half]}
        exact = all(type(i) in MATCHED_EXACTLY for i in ids)
        if exact and self.other.count_documents(in_half) == len(ids):
            return Examined(ids, ids)  # the usual case, without reading the `_id`s back
        held = self._ids_on_other(in_half)
        allowed = [i for i in ids if id_key(i) in held]
        rest = [i for i in ids if id_key(i) not in held]
        return Examined(ids, allowed, self.reasons(rest)) if rest else Examined(ids, allowed)

    def reasons(self, ids: list[Any]) -> dict[KeepReason, list[Any]]:
        """Why the other set does not hold `ids` in the half: missing there, or there with a key of another half
        or with no routable key (two more majority reads, only for the chunks that keep something)."""
        present = self._ids_on_other({"_id": {"$in": ids}})
        unclaimed = self._ids_on_other({"$and": [{"_id": {"$in": ids}}, self.unclaimed]})
        kept: dict[KeepReason, list[Any]] = {}
        for i in ids:
            key = id_key(i)
            reason: KeepReason = "missing" if key not in present else "bad-key" if key in unclaimed else "wrong-half"
            kept.setdefault(reason, []).append(i)
        return kept

    def _ids_on_other(self, query: dict[str, Any]) -> set[Hashable]:
        return {id_key(d["_id"]) for d in self.other.find(query, {"_id": 1})}

    def candidates(self, started: bool, last_id: Any, limit: int) -> list[Any]:
        """The next `limit` `_id`s of the other half after `last_id`, in `_id` index order (all BSON types)."""
        if not started:
            cursor = self.this.find(self.half, {"_id": 1}).hint(ID_INDEX)
        else:
            cursor = self.this.find({"$and": [self.half, {"_id": {"$ne": last_id}}]}, {"_id": 1}).hint(ID_INDEX)
            cursor = cursor.min([("_id", last_id)])  # inclusive lower bound in index order, across types
        return [d["_id"] for d in cursor.limit(limit).batch_size(limit)]

    def close(self) -> None:
        self._ahead = None
        self._pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class Sent:
    """A chunk's deletes once its w:1 batches have finished: how many they deleted, and its last batch, sent with
    w:"majority" and maybe still waiting for replication."""

    fast: int
    majority: Future[int]

    def deleted(self) -> int:
        """Waits for the majority batch (and raises its error); the chunk is then durable."""
        return self.fast + self.majority.result()


class ChunkDeleter:
    """Sends a chunk as batches of `batch_size`, each still filtered by the other half: all but the last with w:1,
    up to `parallel` at once; once they have all finished, the last with w:"majority". Its acknowledgement means
    the majority commit point passed it, and so every earlier batch: the chunk as a whole is durable (no rollback
    can bring a document back) with one wait for replication instead of one per batch.

    `overlap=True`: the majority batch runs in a thread of its own and `send` returns without waiting for it, so
    the next chunk's deletes keep the primary busy while the secondaries catch up (at most `overlap_depth`
    majority batches wait at once). `send` returns only when every w:1 batch has finished (or failed)."""

    def __init__(self, batch_size: int, parallel: int, *, overlap: bool = False, overlap_depth: int = 2) -> None:
        if batch_size < 1 or parallel < 1:
            raise ValueError("batch_size and parallel must be at least 1")
        self.batch_size = batch_size
        self.parallel = parallel
        self._pool = ThreadPoolExecutor(parallel, thread_name_prefix="cleanup-delete") if parallel > 1 else None
        self._majority_pool = (ThreadPoolExecutor(overlap_depth + 1, thread_name_prefix="cleanup-majority")
                               if overlap else None)

    @property
    def chunk_size(self) -> int:
        return self.batch_size * self.parallel

    def send(self, coll: Collection, half: dict[str, Any], ids: list[Any]) -> Sent:
        pieces = [ids[i:i + self.batch_size] for i in range(0, len(ids), self.batch_size)] or [[]]
        *first, last = pieces
        fast = coll.with_options(write_concern=PRIMARY_ONLY)
        if self._pool is None or len(first) <= 1:
            deleted = sum(self._one(fast, half, piece) for piece in first)
        else:
            futures = [self._pool.submit(self._one, fast, half, piece) for piece in first]
            wait(futures)  # all of them, also when one failed: the caller recovers the chunk only once none runs
            deleted = sum(f.result() for f in futures)
        durable = coll.with_options(write_concern=DELETE_CONCERN)
        if self._majority_pool is not None:
            return Sent(deleted, self._majority_pool.submit(self._one, durable, half, last))
        done: Future[int] = Future()
        done.set_result(self._one(durable, half, last))
        return Sent(deleted, done)

    def delete(self, coll: Collection, half: dict[str, Any], ids: list[Any]) -> int:
        """Sends the chunk and waits until it is durable; the number of documents deleted."""
        return self.send(coll, half, ids).deleted() if ids else 0

    @staticmethod
    def _one(coll: Collection, half: dict[str, Any], ids: list[Any]) -> int:
        if not ids:
            return 0
        # The hint spares every delete a trial of the routing key's index, which the planner would reject.
        return coll.delete_many({"$and": [{"_id": {"$in": ids}}, half]}, hint=ID_INDEX).deleted_count

    def close(self) -> None:
        for pool in (self._pool, self._majority_pool):
            if pool is not None:
                pool.shutdown(wait=True)
