"""A latency probe: a small write with the application's write concern, every `interval`, timed.

Touches this set: one document per set in `splitter.cleanup_probe` (upserted with `$inc`, removed at the end),
and `getDefaultRWConcern` once, to write as the application does by default (w: "majority" when none is set).
Samples live in memory only; the worker turns them into LatencyStats for the (pure) budget.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError
from pymongo.write_concern import WriteConcern

PROBE_DATABASE = "splitter"
PROBE_COLLECTION = "cleanup_probe"
DEFAULT_INTERVAL = 0.05
KEEP_SECONDS = 30.0


def application_write_concern(client: MongoClient) -> WriteConcern:
    """The cluster-wide default write concern (what an application without its own gets), else majority."""
    try:
        doc = client.admin.command("getDefaultRWConcern").get("defaultWriteConcern") or {}
    except PyMongoError:
        doc = {}
    w = doc.get("w", "majority")
    return WriteConcern(w=w, wtimeout=doc.get("wtimeout") or 10_000, j=doc.get("j"))


class LatencyProbe:
    """Writes and times one small document every `interval` seconds in a thread of its own. A failed write counts
    as a sample of the time it took to fail (an election shows as a slow write, never as no data)."""

    def __init__(self, client: MongoClient, set_name: str, *, interval: float = DEFAULT_INTERVAL,
                 write_concern: WriteConcern | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.probe_id = f"cleanup-{set_name}"
        self.interval = interval
        self.write_concern = write_concern
        self.monotonic = monotonic
        self._samples: deque[tuple[float, float]] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0

    def start(self) -> LatencyProbe:
        concern = self.write_concern or application_write_concern(self.client)
        coll = self.client[PROBE_DATABASE].get_collection(PROBE_COLLECTION, write_concern=concern)
        self._thread = threading.Thread(target=self._loop, args=(coll,), name="cleanup-probe", daemon=True)
        self._thread.start()
        return self

    def _loop(self, coll: Any) -> None:
        while not self._stop.is_set():
            began = self.monotonic()
            try:
                coll.update_one({"_id": self.probe_id}, {"$inc": {"n": 1}}, upsert=True)
            except PyMongoError:
                self.failures += 1
            ended = self.monotonic()
            with self._lock:
                self._samples.append((began, ended - began))
                while self._samples and self._samples[0][0] < ended - KEEP_SECONDS:
                    self._samples.popleft()
            self._stop.wait(self.interval)

    def since(self, moment: float) -> list[float]:
        """Latencies (seconds) of the probes that started at or after `moment` (monotonic clock)."""
        with self._lock:
            return [seconds for began, seconds in self._samples if began >= moment]

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
            with suppress(PyMongoError):  # a leftover counter document is harmless; the next run reuses it
                self.client[PROBE_DATABASE][PROBE_COLLECTION].delete_one({"_id": self.probe_id})
