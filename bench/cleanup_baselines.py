"""The cleanup bench's baselines and workload: deleteMany, the one-at-a-time loop, the application beside it.

Touches the bench lab's rs1 only: deletes in the copies bench_cleanup.py made, reads app.users and inserts into
WORKLOAD_DB.
"""

from __future__ import annotations

import random
import time
from typing import Any

from bench.common import OpLoop, latency_summary, per_second

WORKLOAD_DB = "bench_workload"
KEY = "user_id"
OTHER_REMAINDER = 1  # rs1 deletes rs2's half (odd keys)


def delete_filter() -> dict[str, Any]:
    """The baseline's filter, exactly as in the issue."""
    return {KEY: {"$mod": [2, OTHER_REMAINDER]}}


def run_delete_many(rs1: Any, database: str, name: str) -> dict[str, Any]:
    from pymongo.write_concern import WriteConcern

    coll = rs1[database].get_collection(name, write_concern=WriteConcern("majority"))
    started = time.monotonic()
    deleted = coll.delete_many(delete_filter()).deleted_count
    return {"deleted": deleted, "seconds": round(time.monotonic() - started, 3)}


def run_delete_many_all(rs1: Any, database: str, collections: tuple[str, ...]) -> dict[str, Any]:
    found = [run_delete_many(rs1, database, name) for name in collections]
    return {"deleted": sum(f["deleted"] for f in found), "seconds": round(sum(f["seconds"] for f in found), 3)}


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs of one variant: deleted and seconds summed, each run kept."""
    return {"deleted": sum(r["deleted"] for r in runs), "seconds": round(sum(r["seconds"] for r in runs), 3),
            "runs": runs}


def run_naive(rs1: Any, database: str, collections: tuple[str, ...], limit_seconds: float) -> dict[str, Any]:
    """One document at a time: the loop an operator writes first."""
    from pymongo.write_concern import WriteConcern

    started, deleted = time.monotonic(), 0
    for name in collections:
        coll = rs1[database].get_collection(name, write_concern=WriteConcern("majority"))
        for doc in coll.find(delete_filter(), {"_id": 1}, batch_size=1000):
            coll.delete_one({"_id": doc["_id"]})
            deleted += 1
            if time.monotonic() - started >= limit_seconds:
                return {"deleted": deleted, "seconds": round(time.monotonic() - started, 3), "capped": True}
    return {"deleted": deleted, "seconds": round(time.monotonic() - started, 3), "capped": False}


class Workload:
    """The application on rs1 during the cleanup: reads of its own half, inserts elsewhere."""

    def __init__(self, client: Any, users: int) -> None:
        self.users = client.app.users
        self.writes = client[WORKLOAD_DB].ops
        self.even_users = max(users // 2, 1)
        self.rng = random.Random(11)

    def op(self, n: int) -> None:
        key = 2 * self.rng.randrange(self.even_users)
        if n % 2:
            self.users.find_one({"_id": key})
        else:
            self.writes.insert_one({KEY: key, "n": n, "at": time.time()})


def phase(seconds: float, during: Any = None) -> tuple[float, float, Any]:
    """Let the workload run alone for `seconds`, or while `during()` runs (its max runtime is `seconds`):
    (start, end, during's result); the window ends when `during` returns."""
    start = time.monotonic()
    if during is None:
        time.sleep(seconds)
        return start, time.monotonic(), None
    outcome = during()
    return start, time.monotonic(), outcome


def latencies(loop: OpLoop, windows: list[tuple[float, float]]) -> dict[str, Any]:
    samples = [s for s in loop.samples if s.ok and any(a <= s.start <= b for a, b in windows)]
    seconds = sum(b - a for a, b in windows)
    failed = sum(1 for s in loop.samples if not s.ok and any(a <= s.start <= b for a, b in windows))
    return {**latency_summary([s.end - s.start for s in samples]), "ops_per_s": per_second(len(samples), seconds),
            "failed": failed}
