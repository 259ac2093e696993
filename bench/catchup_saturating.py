"""The saturating-writer scenario of bench_catchup.py (issue 15): a bulk writer on rs1 as fast as rs1 takes it,
the catch-up into rs2 beside rs1's own secondary (node2, which replays every write: the physical anchor).

4 writer threads, `insert_many` of 200 documents (keys of both halves), `w: majority`, for --saturate-seconds, into a
collection of its own, from a process of their own (as the application's). At the moment the writer stops: the share
of rs2's half already on rs2 and the share of all writes already on node2; then how long each needs to have
everything."""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
from typing import Any

from pymongo import MongoClient
from pymongo.write_concern import WriteConcern

from bench.common import log, per_second, ratio

COLL = "saturate"
BATCH = 200


class BulkWriter:
    """`threads` threads of insert_many(200) on rs1, in a process of their own (as an application is: the
    catch-up's Python does not share its interpreter with the writer's); counts acknowledged documents."""

    def __init__(self, uri: str, db: str, key: str, threads: int = 4) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.threads = threads
        self._written = ctx.Value("q", 0)
        self._stop = ctx.Event()
        self._errors: Any = ctx.Queue()
        self._process = ctx.Process(target=_write, args=(uri, db, key, threads, self._written, self._stop,
                                                          self._errors), daemon=True)
        self.errors: list[str] = []

    @property
    def written(self) -> int:
        return int(self._written.value)

    @property
    def written_odd(self) -> int:
        return self.written // 2  # every batch holds BATCH consecutive keys: half of them odd

    def start(self) -> None:
        self._process.start()

    def stop(self) -> None:
        self._stop.set()
        self._process.join(60)
        while not self._errors.empty():
            self.errors.append(self._errors.get())


def _write(uri: str, db: str, key: str, threads: int, written: Any, stop: Any, errors: Any) -> None:
    """The writer process: `threads` threads of insert_many(BATCH), w: majority, until `stop`."""
    client: MongoClient = MongoClient(uri)
    coll = client[db].get_collection(COLL, write_concern=WriteConcern("majority"))
    ids = itertools.count()
    lock = threading.Lock()
    pad = "x" * 64

    def loop() -> None:
        while not stop.is_set():
            with lock:
                first = next(ids) * BATCH
            docs = [{"_id": first + i, key: first + i, "pad": pad} for i in range(BATCH)]
            try:
                coll.insert_many(docs, ordered=False)
            except Exception as exc:  # counted, the run goes on
                errors.put(str(exc)[:200])
                continue
            with written.get_lock():
                written.value += BATCH

    workers = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    client.close()


def _count(client: MongoClient, db: str) -> int:
    return client[db][COLL].estimated_document_count()


def _until(check: Any, timeout: float) -> float | None:
    """Seconds until `check()` holds, or None if it did not within `timeout` (recorded as such)."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            return None
        time.sleep(0.05)
    return round(time.monotonic() - start, 2)


def run_saturating(rs1: Any, rs1_uri: str, rs2: Any, node2: MongoClient, db: str, key: str, make_worker: Any,
                   seconds: float, threads: int, drain_timeout: float = 300.0) -> dict[str, Any]:
    """Returns the scenario's measurements; the worker comes from `make_worker()` (a fresh position)."""
    from splitter.catchup import BackgroundCatchUp

    rs1[db].drop_collection(COLL)
    rs2[db].drop_collection(COLL)
    worker = make_worker()
    background = BackgroundCatchUp(worker).start()
    writer = BulkWriter(rs1_uri, db, key, threads)
    log(f"saturating: {threads} threads of insert_many({BATCH}) w: majority for {seconds:.0f}s")
    start = time.monotonic()
    writer.start()
    time.sleep(seconds)
    writer.stop()
    stopped = time.monotonic()
    on_rs2, on_node2 = _count(rs2, db), _count(node2, db)
    written, written_odd = writer.written, writer.written_odd
    node2_s = _until(lambda: _count(node2, db) >= written, drain_timeout)
    rs2_s = _until(lambda: _count(rs2, db) >= written_odd, drain_timeout)
    on_rs2_late = _count(rs2, db)
    background.stop(120)
    elapsed = stopped - start
    out = {"seconds": round(elapsed, 2), "writer_threads": threads, "docs_written": written,
           "docs_written_rs2_half": written_odd, "writer_docs_per_s": per_second(written, elapsed),
           "writer_errors": writer.errors[:3],
           "catchup_applied_at_stop": ratio(on_rs2, written_odd), "catchup_drain_s": rs2_s,
           "node2_applied_at_stop": ratio(on_node2, written), "node2_drain_s": node2_s,
           "catchup_docs_per_s": per_second(on_rs2, elapsed), "node2_docs_per_s": per_second(on_node2, elapsed),
           "catchup_applied_after_drain_wait": ratio(on_rs2_late, written_odd), "drain_timeout_s": drain_timeout,
           "worker_counters": dict(worker.position.counters),
           "worker_seconds_by_activity": {k: round(v, 1) for k, v in worker.timing.items()}}
    log(f"saturating: {out}")
    return out
