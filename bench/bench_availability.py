"""Benchmark 3: rs1's availability during the split, as the application sees it.

One writer (retryable writes, seed list node1 + node2 as after deploy-client-v1) inserts into app.bench_writer
every --interval seconds, keys of both halves; when deploy-client-v2 starts it writes rs1's half only (the app
now routes by key). Baseline: the same writer on the same lab for --baseline-seconds before the split starts.
Reported: failed writes, the longest stretch without an acknowledged write (and the step it fell in), p50/p99
latency during the split against the baseline.

    python bench/bench_availability.py --docs 100k --baseline-seconds 20
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    BASE_PORT,
    OpLoop,
    Result,
    arg_parser,
    lab_docs,
    lab_running,
    log,
    longest_gap_at,
    main_guard,
    parse_count,
    ratio,
    rs1_client,
    run_split,
    shared_lab,
    split_done,
)

DEFAULT_DOCS = "100k"
WARMUP = 1.0


class AppWriter:
    """The application's writes to rs1: both halves until it routes by key, then rs1's half (even keys)."""

    def __init__(self, client: Any) -> None:
        self.coll = client.app.bench_writer
        self.routed = False

    def key(self, n: int) -> int:
        return 2 * n if self.routed else n

    def write(self, n: int) -> None:
        self.coll.insert_one({"user_id": self.key(n), "seq": n, "at": time.time()})

    def before_step(self, step: str) -> None:
        if step == "deploy-client-v2":
            self.routed = True


def step_of(run: Any, moment: float) -> str | None:
    """The step running at absolute monotonic `moment` (None before or after the split)."""
    return run.step_at(moment - run.origin)


def availability(loop: OpLoop, run: Any, baseline_start: float) -> dict[str, Any]:
    split_start, split_end = run.origin, run.origin + run.wall
    before = loop.summary(baseline_start, split_start)
    during = loop.summary(split_start, split_end)
    ok_ends = [s.end for s in loop.samples if s.ok]
    gap, gap_start = longest_gap_at(ok_ends, split_start, split_end)
    failed_by_step = Counter(step_of(run, s.start) or "?" for s in loop.samples
                             if not s.ok and split_start <= s.start <= split_end)
    return {"baseline": before, "during_split": during, "longest_gap_step": step_of(run, gap_start),
            "longest_gap_s": round(gap, 3), "failed_by_step": dict(failed_by_step), "errors": loop.errors[:5],
            "p50_ratio": ratio(during["p50_ms"], before["p50_ms"]),
            "p99_ratio": ratio(during["p99_ms"], before["p99_ms"]),
            "gap_ratio": ratio(during["longest_gap_s"], before["longest_gap_s"])}


def add_rows(result: Result, found: dict[str, Any]) -> None:
    before, during = found["baseline"], found["during_split"]
    result.row("rs1 writes failed during the split", during["failed"], before["failed"], "writes",
               ratio_value=None, baseline_name="same writer before the split",
               note=f"{during['ok']} acknowledged in {during['seconds']:.0f}s (retryable writes)")
    result.row("rs1 longest write gap during the split", during["longest_gap_s"], before["longest_gap_s"], "s",
               baseline_name="same writer before the split", note=f"in step {found['longest_gap_step']}")
    result.row("rs1 write latency p50 during the split", during["p50_ms"], before["p50_ms"], "ms",
               baseline_name="same writer before the split")
    result.row("rs1 write latency p99 during the split", during["p99_ms"], before["p99_ms"], "ms",
               baseline_name="same writer before the split")


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser("rs1 availability during the split: failed writes, longest gap, p50/p99 latency.")
    parser.add_argument("--docs", default=os.environ.get("SPLITTER_BENCH_DOCS") or DEFAULT_DOCS)
    parser.add_argument("--baseline-seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=0.02, help="pause between writes (default 0.02s)")
    parser.add_argument("--watchdog-seconds", type=float, default=900.0,
                        help="stop the writer if the split is still running after this long (so a catch-up that "
                             "cannot drain under writes shows up as a result instead of a hang)")
    args = parser.parse_args(argv)
    docs = parse_count(args.docs)
    result = Result("availability", params={"docs": docs, "baseline_seconds": args.baseline_seconds,
                                            "interval_s": args.interval, "writer": "insert_one, retryable writes, "
                                            "seeds node1+node2", "port": BASE_PORT})

    def body() -> None:
        with ExitStack() as stack:
            lab = shared_lab()
            if lab is not None and split_done(lab):
                log("the shared lab is split already; starting a lab of our own")
                lab = None
            if lab is None:
                lab = stack.enter_context(lab_running(docs, BASE_PORT, "availability"))
            result.params["docs"] = lab_docs(lab) or docs
            client = stack.enter_context(rs1_client(lab))
            writer = AppWriter(client)
            loop = OpLoop(writer.write, interval=args.interval, name="writer")
            stack.callback(loop.stop)
            loop.start()
            log(f"writer: {args.baseline_seconds:.0f}s baseline before the split")
            time.sleep(args.baseline_seconds + WARMUP)
            fired = threading.Event()

            def watchdog() -> None:
                log(f"watchdog: the split still runs after {args.watchdog_seconds:.0f}s; stopping the writer")
                fired.set()
                loop.halt()

            timer = threading.Timer(args.watchdog_seconds, watchdog)
            timer.daemon = True
            timer.start()
            stack.callback(timer.cancel)
            run = run_split(lab, before_step=writer.before_step)
            timer.cancel()
            time.sleep(1.0)
            loop.stop()
        found = availability(loop, run, loop.started + WARMUP)
        found["split_s"] = round(run.wall, 2)
        found["writer_stopped_by_watchdog"] = fired.is_set()
        if fired.is_set():
            result.rows.append({"measure": "WATCHDOG: the writer was stopped while the split still ran",
                                "tool": args.watchdog_seconds, "baseline": None, "unit": "s", "ratio": None,
                                "baseline_name": "", "note": "the split did not finish under a continuous writer"})
        result.results.update(found)
        add_rows(result, found)
        log(f"during the split: {found['during_split']}")

    return main_guard(result, body, args.out)


if __name__ == "__main__":
    sys.exit(main())
