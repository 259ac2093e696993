"""Verification of a switch at a snapshot: the moving half on the old owner at its drain point vs the new owner at
its open point, read with `readConcern: snapshot` and `atClusterTime`, while the application keeps writing.

Touches: reads only, on each set's primary; `setParameter minSnapshotHistoryWindowInSeconds` on every member of
both sets (raised for the duration of a switch so that the drain point is still readable, restored after).

Both points are fixed in the past, so the application's writes after them do not disturb the comparison and a
difference is a real one: it is named by `_id` (count + order-independent hash first, then `_id` by `_id`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import bson
from bson import Timestamp
from pymongo import MongoClient

from splitter.routing import Routing
from splitter.verify.compare import MASK, RAW, digest

HISTORY_PARAMETER = "minSnapshotHistoryWindowInSeconds"
BATCH = 5_000


@dataclass
class SnapshotDiff:
    """The outcome for the half: per namespace counts, and the differing `_id`s (a few of each kind)."""

    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    missing: list[Any] = field(default_factory=list)      # on the old owner, not on the new one
    extra: list[Any] = field(default_factory=list)        # on the new owner only
    different: list[Any] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.different)

    def summary(self) -> str:
        docs = sum(a for a, _ in self.counts.values())
        if self.ok:
            return f"{len(self.counts)} collections, {docs} documents equal at the snapshot"
        parts = [f"{name} {ids[:5]!r}" for name, ids in (("missing", self.missing), ("extra", self.extra),
                                                         ("different", self.different)) if ids]
        return "differences at the snapshot: " + "; ".join(parts)


def _snapshot_docs(client: MongoClient, database: str, collection: str, query: dict[str, Any],
                   at: Timestamp) -> Iterator[Any]:
    db = client.get_database(database, codec_options=RAW)
    # One explicit session for the find and its getMores: the server refuses a getMore from another session
    # (each bare command would get its own implicit one).
    with client.start_session(causal_consistency=False) as session:
        reply = db.command({"find": collection, "filter": query, "batchSize": BATCH,
                            "readConcern": {"level": "snapshot", "atClusterTime": at}}, codec_options=RAW,
                           session=session)
        cursor = reply["cursor"]
        yield from cursor["firstBatch"]
        cursor_id = cursor["id"]
        while cursor_id:
            reply = db.command({"getMore": cursor_id, "collection": collection, "batchSize": BATCH},
                               codec_options=RAW, session=session)
            cursor = reply["cursor"]
            yield from cursor["nextBatch"]
            cursor_id = cursor["id"]


def _hash(docs: Iterator[Any]) -> tuple[int, int]:
    count = total = 0
    for doc in docs:
        total = (total + digest(doc.raw)) & MASK
        count += 1
    return count, total


def _prints(docs: Iterator[Any]) -> dict[bytes, tuple[Any, int]]:
    return {bson.encode({"_id": doc["_id"]}): (doc["_id"], digest(doc.raw)) for doc in docs}


def compare_at(old: MongoClient, old_at: Timestamp, new: MongoClient, new_at: Timestamp, routing: Routing,
               half: str, samples: int = 20) -> SnapshotDiff:
    """Compare `half` of every routed collection: `old` at `old_at` against `new` at `new_at`."""
    from splitter.cutover.fence import routed_collections

    result = SnapshotDiff()
    found = {(db, name): key for db, name, key, _ in routed_collections(old, routing)}
    found |= {(db, name): key for db, name, key, _ in routed_collections(new, routing)}
    for (database, name), key in sorted(found.items()):
        query = routing.half_filter(key, half)
        a = _hash(_snapshot_docs(old, database, name, query, old_at))
        b = _hash(_snapshot_docs(new, database, name, query, new_at))
        result.counts[f"{database}.{name}"] = (a[0], b[0])
        if a == b:
            continue
        left = _prints(_snapshot_docs(old, database, name, query, old_at))
        right = _prints(_snapshot_docs(new, database, name, query, new_at))
        result.missing += [v for k, (v, _) in left.items() if k not in right][:samples]
        result.extra += [v for k, (v, _) in right.items() if k not in left][:samples]
        result.different += [v for k, (v, d) in left.items() if k in right and right[k][1] != d][:samples]
    return result


def history_window(client: MongoClient) -> int:
    return int(client.admin.command({"getParameter": 1, HISTORY_PARAMETER: 1})[HISTORY_PARAMETER])


def set_history_window(members: list[MongoClient], seconds: int) -> None:
    for member in members:
        member.admin.command({"setParameter": 1, HISTORY_PARAMETER: seconds})
