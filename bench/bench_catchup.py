"""Benchmark 5: the catch-up's apply rate against the write rate it follows, and the lag when the cutover drains.

On a split lab, a writer on rs1 (inserts 60%, $inc updates 30%, deletes 10%; keys of both halves; w: majority;
--writer-threads threads, no pause) writes into a database of its own, `bench_catchup`, which a CatchUpWorker
(the same class the catch-up step runs) replays into rs2 from a fresh position (rs1's last write when the
benchmark starts; its position file in a throw-away state dir). Three phases:
  1. follow: writer and catch-up (in its background thread, as while `run` waits at deploy-client-v2) run
     together for --follow-seconds; change events applied per second against events written per second,
     and the lag (seconds and events behind, sampled every second);
  2. cutover: the writer stops; the lag at that moment, then the drain time (background stopped, a new worker
     drains from the saved position, as deploy-client-v2 does; the configured quiet period comes on top);
  3. backlog: the catch-up stopped, the writer alone for --burst-seconds (its best write rate), then a drain:
     the catch-up's best apply rate against it.
  4. saturating (issue 15, `catchup_saturating.py`): a bulk writer as fast as rs1 takes it for
     --saturate-seconds; the share of rs2's half applied when it stops and the drain time, beside rs1's own
     secondary node2 (which replays every write). --only-saturating skips phases 1-3.

    python bench/bench_catchup.py --follow-seconds 30 --burst-seconds 15 --saturate-seconds 60
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.catchup_saturating import run_saturating
from bench.common import (
    OpLoop,
    Result,
    arg_parser,
    lab_docs,
    log,
    main_guard,
    parse_count,
    per_second,
    percentile,
    ratio,
    rs1_client,
    rs2_client,
    set_uri,
    split_lab,
)

DEFAULT_DOCS = "100k"
DB = "bench_catchup"
COLL = "items"
KEY = "user_id"


class MixedWriter:
    """Inserts, updates and deletes on rs1; remembers when each acknowledged write changed how many documents
    (a change event per changed document)."""

    def __init__(self, client: Any) -> None:
        self.coll = client[DB][COLL]
        self.changes: list[tuple[float, int]] = []

    def op(self, n: int) -> None:
        kind = n % 10
        if kind < 6:
            self.coll.insert_one({"_id": n, KEY: n, "v": 0, "pad": "x" * 64})
            changed = 1
        elif kind < 9:  # one of the first three inserts of the previous ten
            changed = self.coll.update_one({"_id": n - 10 + (kind - 6)}, {"$inc": {"v": 1}}).modified_count
        else:
            changed = self.coll.delete_one({"_id": n - 6}).deleted_count
        self.changes.append((time.monotonic(), changed))

    def events(self, start: float, end: float) -> int:
        return sum(c for t, c in self.changes if start <= t <= end)


class LagSampler:
    """Samples worker.lag() and the processed-event counter every `every` seconds in a thread."""

    def __init__(self, worker: Any, node2: Any, every: float = 1.0) -> None:
        self.worker, self.node2, self.every = worker, node2, every
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lag-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                seconds, events = self.worker.lag()
            except Exception as exc:  # a sample may fail under load; the next one counts
                log(f"lag sample failed: {exc}")
                continue
            self.samples.append({"t": time.monotonic(), "lag_s": seconds, "lag_events": events,
                                 "node2_lag_s": self._node2_lag(), "processed": self.worker.stats().events})

    def _node2_lag(self) -> float | None:
        """The baseline: how far rs1's own secondary is behind rs1's last write, in the same 1-second unit."""
        from splitter.catchup.source import last_write_ts

        try:
            latest, node2 = last_write_ts(self.worker.source), last_write_ts(self.node2)
        except Exception as exc:  # a missed sample
            log(f"node2 lag sample failed: {exc}")
            return None
        return float(max(latest.time - node2.time, 0))

    def start(self) -> LagSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def lag_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    events = [s["lag_events"] for s in samples if s.get("lag_events") is not None]
    seconds = [s["lag_s"] for s in samples if s.get("lag_s") is not None]
    node2 = [s["node2_lag_s"] for s in samples if s.get("node2_lag_s") is not None]
    return {"samples": len(samples), "events_p50": percentile(events, 50), "events_max": max(events, default=None),
            "seconds_p50": percentile(seconds, 50), "seconds_p99": percentile(seconds, 99),
            "seconds_max": max(seconds, default=None), "node2_seconds_p99": percentile(node2, 99)}


def _n(value: float | None) -> str:
    return "?" if value is None else f"{value:,.0f}"


def _saturating_rows(result: Result, s: dict[str, Any]) -> None:
    result.row("saturating writer: share of rs2's half applied when the writer stops", s["catchup_applied_at_stop"],
               s["node2_applied_at_stop"], "share", baseline_name="rs1's secondary node2, share of all writes",
               note=f"writer {s['writer_docs_per_s']:,.0f} docs/s ({s['writer_threads']} threads x insert_many(200), "
                    f"w: majority, {s['seconds']:.0f}s); target >= 0.95")
    result.row("saturating writer: drain time after the writer stops", s["catchup_drain_s"], s["node2_drain_s"], "s",
               baseline_name="node2's catch-up time",
               note=f"target <= 2 s; none = not drained in {s['drain_timeout_s']:.0f}s (then "
                    f"{s['catchup_applied_after_drain_wait']} applied); catch-up seconds by activity "
                    f"{s['worker_seconds_by_activity']}")
    result.row("saturating writer: apply rate, docs/s", s["catchup_docs_per_s"], s["node2_docs_per_s"], "docs/s",
               baseline_name="node2 applying every write (twice the work)")


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser("catch-up apply rate vs the write rate it follows; lag when the cutover drains.")
    parser.add_argument("--docs", default=os.environ.get("SPLITTER_BENCH_DOCS") or DEFAULT_DOCS)
    parser.add_argument("--follow-seconds", type=float, default=30.0)
    parser.add_argument("--burst-seconds", type=float, default=15.0)
    parser.add_argument("--writer-threads", type=int, default=2)
    parser.add_argument("--saturate-seconds", type=float, default=60.0)
    parser.add_argument("--saturate-threads", type=int, default=4)
    parser.add_argument("--catchup-threads", type=int, default=4)
    parser.add_argument("--only-saturating", action="store_true")
    args = parser.parse_args(argv)
    docs = parse_count(args.docs)
    # --only-saturating writes its own record (catchup-saturating.json): the full run's record stays as it is.
    name = "catchup-saturating" if args.only_saturating else "catchup"
    result = Result(name, params={"docs": docs, "follow_seconds": args.follow_seconds,
                                       "burst_seconds": args.burst_seconds, "writer_threads": args.writer_threads,
                                       "writes": "60% insert, 30% $inc update, 10% delete, both halves",
                                       "worker_batch_size": 2000, "catchup_threads": args.catchup_threads,
                                       "saturate_seconds": args.saturate_seconds,
                                       "saturate_threads": args.saturate_threads})

    def body() -> None:
        from pymongo import MongoClient
        from pymongo.write_concern import WriteConcern

        from splitter.catchup import BackgroundCatchUp, CatchUpWorker
        from splitter.catchup.source import last_write_ts
        from splitter.config import load_config
        from splitter.routing import Routing

        with split_lab(docs, "catchup") as (lab, _run), ExitStack() as stack:
            result.params["docs"] = lab_docs(lab) or docs
            quiet = load_config(lab.layout.config_path).gates.quiet_period
            rs1 = stack.enter_context(rs1_client(lab))
            rs2 = stack.enter_context(rs2_client(lab))
            source = stack.enter_context(rs1_client(lab))
            state = Path(tempfile.mkdtemp(prefix="splitter-bench-catchup-"))
            stack.callback(shutil.rmtree, state, True)
            for client in (rs1, rs2):
                client.drop_database(DB)
                stack.callback(client.drop_database, DB)
            rs1[DB].get_collection(COLL, write_concern=WriteConcern("majority")).create_index(KEY)
            rs2[DB].get_collection(COLL, write_concern=WriteConcern("majority")).create_index(KEY)
            routing = Routing(modulus=2, remainders={"rs1": 0, "rs2": 1}, default_key=KEY, databases={DB: KEY})
            follow_from: list[Any] = []  # phases 1-3 start after phase 4's writes (set below)

            def worker() -> Any:
                return CatchUpWorker(source, rs2, routing, "rs2", state, follow_from[0],
                                     threads=args.catchup_threads, progress=lambda m: log(f"catch-up: {m}"))

            node2 = stack.enter_context(MongoClient(lab.layout.host("node2").host, directConnection=True,
                                                    readPreference="secondaryPreferred"))
            if args.saturate_seconds > 0:
                saturating_state = Path(tempfile.mkdtemp(prefix="splitter-bench-saturate-"))
                stack.callback(shutil.rmtree, saturating_state, True)
                saturate_from = last_write_ts(rs1)
                saturating = run_saturating(
                    rs1, set_uri(lab, "rs1", ("node1", "node2")), rs2, node2, DB, KEY,
                    lambda: CatchUpWorker(source, rs2, routing, "rs2", saturating_state, saturate_from,
                                          threads=args.catchup_threads, progress=lambda m: log(f"catch-up: {m}")),
                    args.saturate_seconds, args.saturate_threads)
                result.results["saturating"] = saturating
                _saturating_rows(result, saturating)
                if args.only_saturating:
                    return

            follow_from.append(last_write_ts(rs1))
            writer = MixedWriter(rs1)
            # 1. follow
            log(f"follow: writer and catch-up together for {args.follow_seconds:.0f}s")
            following = worker()
            background = BackgroundCatchUp(following).start()
            sampler = LagSampler(following, node2).start()
            loop = OpLoop(writer.op, threads=args.writer_threads, name="writer")
            stack.callback(loop.stop)
            processed_0 = following.stats().events
            f_start = time.monotonic()
            loop.start()
            time.sleep(args.follow_seconds)
            loop.stop()
            f_end = time.monotonic()
            processed_1 = following.stats().events
            # 2. cutover: lag now, then drain as deploy-client-v2 does
            sampler.stop()
            cut_lag_s, cut_lag_events = following.lag()
            background.stop()
            d_start = time.monotonic()
            drained = worker().drain(quiet_seconds=0, timeout=900)
            drain_s = time.monotonic() - d_start
            written_follow = writer.events(f_start, f_end)
            follow = {"seconds": round(f_end - f_start, 2), "events_written": written_follow,
                      "write_events_per_s": per_second(written_follow, f_end - f_start),
                      "events_processed": processed_1 - processed_0,
                      "apply_events_per_s": per_second(processed_1 - processed_0, f_end - f_start),
                      "writer": loop.summary(f_start, f_end), "lag": lag_summary(sampler.samples)}
            cutover = {"lag_s": cut_lag_s, "lag_events": cut_lag_events, "drain_s": round(drain_s, 2),
                       "quiet_period_configured": quiet, "events_total": drained.events,
                       "applied_total": drained.applied}
            # 3. backlog
            log(f"backlog: writer alone for {args.burst_seconds:.0f}s, then a drain")
            burst = OpLoop(writer.op, threads=args.writer_threads, name="burst")
            stack.callback(burst.stop)
            before = drained.events
            b_start = time.monotonic()
            burst.start()
            time.sleep(args.burst_seconds)
            burst.stop()
            b_end = time.monotonic()
            written_burst = writer.events(b_start, b_end)
            r_start = time.monotonic()
            after = worker().drain(quiet_seconds=0, timeout=900)
            r_end = time.monotonic()
            backlog = {"write_seconds": round(b_end - b_start, 2), "events_written": written_burst,
                       "write_events_per_s": per_second(written_burst, b_end - b_start),
                       "events_processed": after.events - before, "drain_s": round(r_end - r_start, 2),
                       "apply_events_per_s": per_second(after.events - before, r_end - r_start)}
            half = routing.half_filter(KEY, "rs2")
            consistent = rs1[DB][COLL].count_documents(half) == rs2[DB][COLL].count_documents(half)

        result.results.update({"follow": follow, "cutover": cutover, "backlog": backlog,
                               "rs2_half_counts_equal": consistent,
                               "follow_apply_vs_write": ratio(follow["apply_events_per_s"],
                                                              follow["write_events_per_s"]),
                               "backlog_apply_vs_write": ratio(backlog["apply_events_per_s"],
                                                               backlog["write_events_per_s"])})
        result.row("catch-up while following the writer, events/s", follow["apply_events_per_s"],
                   follow["write_events_per_s"], "events/s", baseline_name="writer's events/s (same time)",
                   note=f"lag p50 {_n(follow['lag']['events_p50'])} / max {_n(follow['lag']['events_max'])} events, "
                        f"p50 {_n(follow['lag']['seconds_p50'])} / max {_n(follow['lag']['seconds_max'])} s; the "
                        "worker never sees rs1's own inserts (filtered on the server), so keeping up reads ~0.7 here")
        result.row("catch-up lag p99 while following a single-document writer, s", follow["lag"]["seconds_p99"],
                   follow["lag"]["node2_seconds_p99"], "s", baseline_name="rs1's secondary node2, same samples",
                   note=f"target <= 1 s; whole seconds of oplog time, sampled every second "
                        f"({follow['lag']['samples']} samples)")
        result.row("catch-up draining a backlog, events/s", backlog["apply_events_per_s"],
                   backlog["write_events_per_s"], "events/s", baseline_name="writer alone, events/s",
                   note=f"{backlog['events_processed']} events in {backlog['drain_s']}s")
        result.row("cutover: drain time after the last write", cutover["drain_s"], None, "s",
                   note=f"lag at cutover {cutover['lag_events']} events / {cutover['lag_s']}s; "
                        f"plus the quiet period ({quiet})")

    return main_guard(result, body, args.out)


if __name__ == "__main__":
    sys.exit(main())
