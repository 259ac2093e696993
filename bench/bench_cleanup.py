"""Benchmark 4: the cleanup's throughput against deleteMany and a naive loop, and its cost to the application.

On a split lab (rs1 = node1 + node2 + arbiter1, rs2 = node3 + node4 + arbiter2), rs1's app.users/events/sessions
are copied server-side ($out, w: majority) into one database per variant, so every variant deletes the same
documents (rs2's half, user_id odd) from identical data; the tool's variants are also copied on rs2, where its
interlock looks the `_id`s up. Measured on rs1:
  - tool, unthrottled: CleanupWorker (its defaults: batch 1000, 4 in flight; no sleep, no lag check) over all
    collections, as the CLI runs it (including its counts before and after), and again with one batch per chunk
    (--parallel 1: each batch w: majority, up to three waiting for it at once);
  - baseline: `deleteMany({user_id: {$mod: [2, 1]}})` (w: majority), one per collection;
    these three in --rounds rounds on fresh copies, the order reversed every other round (load drifts);
  - naive: find the `_id`s, `delete_one` each (w: majority), for --naive-seconds;
  - a read/write workload on rs1 (app.users reads by _id, inserts into another database) for --phase-seconds
    alone (before and after), with the tool under its default latency budget (what `splitter cleanup` does
    without options: --max-latency-increase 1.5x, --max-lag 10s), with the fixed duty cycle of earlier versions
    (--duty, --max-lag, no budget) and with the unthrottled tool, each for at most --phase-seconds; latencies
    count while the cleanup runs (its calibration included);
  - a light workload (one thread, --light-interval apart) alone, with the budgeted tool (how fast the budget
    lets it delete when the application is quiet, beside the unthrottled rate), with the tool at a fixed pace
    of about a quarter of its unthrottled rate (--light-pace: what that rate costs the quiet application) and
    under an absolute budget only (--light-max-p99, the relative one off: what an operator who accepts that tail
    gets).

    python bench/bench_cleanup.py --docs 100k --phase-seconds 30
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cleanup_baselines import (
    KEY,
    WORKLOAD_DB,
    Workload,
    combine,
    delete_filter,
    latencies,
    phase,
    run_delete_many_all,
    run_naive,
)
from bench.common import (
    OpLoop,
    Result,
    arg_parser,
    lab_docs,
    log,
    main_guard,
    parse_count,
    per_second,
    ratio,
    rs1_client,
    rs2_client,
    split_lab,
)
from splitter.cleanup.worker import DEFAULT_BATCH_SIZE

DEFAULT_DOCS = "100k"
PREFIX = "bench_cleanup_"
ROUNDS = ("tool", "tool_serial", "deletemany")  # measured against each other, in --rounds rounds
LIGHT = ("budget_light", "paced_light", "capped_light")
ONCE = ("naive", "throttled", "budget", *LIGHT, "unthrottled")
# looked up on rs2 too
ON_BOTH = ("tool", "tool_serial", "throttled", "budget", *LIGHT, "unthrottled")


def copy_collections(client: Any, collections: tuple[str, ...], database: str) -> None:
    from pymongo.write_concern import WriteConcern

    for name in collections:
        source = client.app.get_collection(name, write_concern=WriteConcern("majority"))
        source.aggregate([{"$out": {"db": database, "coll": name}}])
        client[database].get_collection(name, write_concern=WriteConcern("majority")).create_index(KEY)


def routing_for(database: str, collections: tuple[str, ...], only: str | None = None) -> Any:
    from splitter.routing import Routing

    exclude = [f"{database}.{c}" for c in collections if only is not None and c != only]
    return Routing(modulus=2, remainders={"rs1": 0, "rs2": 1}, default_key=KEY, databases={database: KEY},
                   exclude=exclude)


def _timed(target: Any, name: str, spent: dict[str, float]) -> None:
    """Accumulate the time spent in target.name() under spent[name] (skipped if the method is not there)."""
    original = getattr(target, name, None)
    if original is None:
        return
    spent.setdefault(name, 0.0)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return original(*args, **kwargs)
        finally:
            spent[name] += time.monotonic() - started

    setattr(target, name, timed)


def run_tool(rs1: Any, rs2: Any, routing: Any, limits: Any, batch_size: int, parallel: int = 4) -> dict[str, Any]:
    """One CleanupWorker run on rs1 against rs2 (positions in a throw-away state dir), with where its time went:
    the counts before and after (_expected, _finish), the chunks, and inside them the position saves and the
    sends (until a chunk's w:1 batches have finished)."""
    from splitter.cleanup.worker import CleanupWorker
    from splitter.events import EventBus, EventType

    state = Path(tempfile.mkdtemp(prefix="splitter-bench-cleanup-"))
    spent: dict[str, float] = {}
    events, paces = EventBus(), []
    events.subscribe(lambda e: paces.append(e.message), types={EventType.CLEANUP_WAIT})
    try:
        worker = CleanupWorker(routing=routing, set_name="rs1", this=rs1, other=rs2, state_dir=state,
                               limits=limits, batch_size=batch_size, parallel=parallel, events=events)
        for name in ("_finish", "_chunk"):
            _timed(worker, name, spent)
        _timed(worker.tally, "expected", spent)
        _timed(worker.positions, "save", spent)
        _timed(worker.deleter, "send", spent)
        started = time.monotonic()
        report = worker.run()
        seconds = time.monotonic() - started
    finally:
        shutil.rmtree(state, ignore_errors=True)
    return {"deleted": report.total("deleted"), "seconds": round(seconds, 3), "stopped": report.stop_kind,
            "paces": paces[-5:], "slowdowns": sum(1 for p in paces if "slowing" in p or "pausing" in p),
            "kept_by_interlock": report.total("kept_by_interlock"), "waits": report.waits,
            "batch_size": batch_size, "parallel": parallel,
            "spent_s": {k.strip("_"): round(v, 3) for k, v in spent.items()}}


def budget_limits(increase: str, batch_size: int, max_lag: float, seconds: float, max_p99: str = "off") -> Any:
    """The limits `splitter cleanup` runs with when given no option but the budget (and a runtime cap)."""
    from splitter.cleanup.budget import Budget, parse_increase, parse_latency, with_limits
    from splitter.cleanup.throttle import Limits

    budget = with_limits(Budget(increase=parse_increase(increase), max_p99_ms=parse_latency(max_p99)),
                         max_batch=batch_size, max_duty=None)
    return Limits(max_lag=max_lag, max_runtime=seconds, budget=budget)


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser("cleanup throughput vs deleteMany and a naive loop; throttled cost to a workload.")
    parser.add_argument("--docs", default=os.environ.get("SPLITTER_BENCH_DOCS") or DEFAULT_DOCS)
    parser.add_argument("--naive-seconds", type=float, default=15.0)
    parser.add_argument("--phase-seconds", type=float, default=30.0,
                        help="each workload phase (a nightly cleanup runs for hours: a phase should be more than its "
                             "calibration and first steps)")
    parser.add_argument("--duty", type=float, default=0.25, help="throttled run: work at most this share of time")
    parser.add_argument("--max-lag", type=float, default=10.0, help="throttled run: wait while a secondary lags more")
    parser.add_argument("--workload-threads", type=int, default=2)
    parser.add_argument("--budget", default="1.5x", help="the latency budget's --max-latency-increase (the default)")
    parser.add_argument("--light-interval", type=float, default=0.05,
                        help="the light workload: one thread, this many seconds between operations")
    parser.add_argument("--light-pace", default="200,0.5", metavar="BATCH,DUTY",
                        help="the light workload's fixed-pace run: documents per batch, share of the time deleting")
    parser.add_argument("--light-max-p99", default="25ms",
                        help="the light workload's run with --max-latency-increase off and this --max-p99")
    parser.add_argument("--parallel", type=int, default=4, help="the tool's delete commands in flight at once")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="the tool's documents per delete")
    parser.add_argument("--rounds", type=int, default=7,
                        help="rounds of tool / serial tool / deleteMany (fresh copies, order reversed each round)")
    args = parser.parse_args(argv)
    docs = parse_count(args.docs)
    pace_batch, pace_duty = (float(x) for x in args.light_pace.split(","))
    result = Result("cleanup", params={"docs": docs, "batch_size": args.batch_size, "parallel": args.parallel,
                                       "naive_seconds": args.naive_seconds,
                                       "phase_seconds": args.phase_seconds, "throttle": {"duty_cycle": args.duty,
                                       "max_lag_s": args.max_lag}, "budget": args.budget,
                                       "light_interval_s": args.light_interval, "light_pace": args.light_pace,
                                       "light_max_p99": args.light_max_p99,
                                       "workload_threads": args.workload_threads,
                                       "write_concern": "majority", "rounds": args.rounds,
                                       "serial": {"batch_size": args.batch_size, "parallel": 1}})

    def body() -> None:
        from splitter.cleanup.throttle import Limits
        from splitter.lab.layout import COLLECTIONS

        with split_lab(docs, "cleanup") as (lab, _run), ExitStack() as stack:
            result.params["docs"] = lab_docs(lab) or docs
            rs1 = stack.enter_context(rs1_client(lab))
            rs2 = stack.enter_context(rs2_client(lab))
            rounds = max(args.rounds, 1)
            databases = {f"{v}_{r}": f"{PREFIX}{v}_{r}" for v in ROUNDS for r in range(rounds)}
            databases.update({v: PREFIX + v for v in ONCE})

            def drop_all() -> None:
                for name in (*databases.values(), WORKLOAD_DB):
                    rs1.drop_database(name)
                    rs2.drop_database(name)

            stack.callback(drop_all)
            log("copying rs1's collections into one database per variant (and the tool's also on rs2)")
            for variant, database in databases.items():
                copy_collections(rs1, COLLECTIONS, database)
                if variant.rsplit("_", 1)[0] in ON_BOTH or variant in ON_BOTH:
                    copy_collections(rs2, COLLECTIONS, database)
            total = {c: rs1[databases["naive"]][c].count_documents(delete_filter()) for c in COLLECTIONS}
            result.results["half_to_delete"] = total

            # 1. unthrottled tool (one run over all collections, as the CLI does), the same with a big batch, and
            #    deleteMany; in --rounds rounds on fresh copies, the order reversed every other round
            runs: dict[str, list[dict[str, Any]]] = {v: [] for v in ROUNDS}
            for r in range(rounds):
                for variant in (ROUNDS if r % 2 == 0 else tuple(reversed(ROUNDS))):
                    database = databases[f"{variant}_{r}"]
                    log(f"round {r + 1}: {variant}")
                    if variant == "deletemany":
                        runs[variant].append(run_delete_many_all(rs1, database, COLLECTIONS))
                    else:
                        parallel = 1 if variant == "tool_serial" else args.parallel
                        runs[variant].append(run_tool(rs1, rs2, routing_for(database, COLLECTIONS), Limits(),
                                                      args.batch_size, parallel))
            tool, tool_serial, many = (combine(runs[v]) for v in ROUNDS)
            log(f"naive loop for up to {args.naive_seconds:.0f}s")
            naive = run_naive(rs1, databases["naive"], COLLECTIONS, args.naive_seconds)
            rates = {"tool": per_second(tool["deleted"], tool["seconds"]),
                     "tool_serial": per_second(tool_serial["deleted"], tool_serial["seconds"]),
                     "deletemany": per_second(many["deleted"], many["seconds"]),
                     "naive": per_second(naive["deleted"], naive["seconds"])}

            # 2. the workload alone, with the throttled and with the unthrottled tool, alone again
            loop = OpLoop(Workload(rs1, total.get("users", 0) * 2 or docs).op, threads=args.workload_threads,
                          interval=0.005, name="workload")
            stack.callback(loop.stop)
            loop.start()
            time.sleep(1.0)
            throttled_limits = Limits(duty_cycle=args.duty, max_lag=args.max_lag, max_runtime=args.phase_seconds)
            fast_limits = Limits(max_runtime=args.phase_seconds)
            budget = budget_limits(args.budget, args.batch_size, args.max_lag, args.phase_seconds)
            log("workload alone")
            a1 = phase(args.phase_seconds)
            log("workload + cleanup with the latency budget")
            bud = phase(args.phase_seconds,
                        lambda: run_tool(rs1, rs2, routing_for(databases["budget"], COLLECTIONS), budget,
                                         args.batch_size, parallel=1))  # as the CLI without options
            log("workload + throttled cleanup (fixed duty cycle, no budget)")
            thr = phase(args.phase_seconds,
                        lambda: run_tool(rs1, rs2, routing_for(databases["throttled"], COLLECTIONS), throttled_limits,
                                         args.batch_size, parallel=1))  # as the CLI with --sleep
            log("workload + unthrottled cleanup")
            fast = phase(args.phase_seconds,
                         lambda: run_tool(rs1, rs2, routing_for(databases["unthrottled"], COLLECTIONS), fast_limits,
                                          args.batch_size, args.parallel))
            log("workload alone again")
            a2 = phase(args.phase_seconds)
            loop.stop()

            # 3. a light workload, alone and with the budgeted tool
            light = OpLoop(Workload(rs1, total.get("users", 0) * 2 or docs).op, threads=1,
                           interval=args.light_interval, name="light")
            stack.callback(light.stop)
            light.start()
            log("light workload alone")
            l1 = phase(args.phase_seconds)
            capped = budget_limits("off", args.batch_size, args.max_lag, args.phase_seconds, args.light_max_p99)
            light_runs = {
                "budget_light": ("the latency budget", budget, args.batch_size),
                "paced_light": (f"a fixed pace (batch {pace_batch:g}, {pace_duty:.0%} of the time)",
                                Limits(duty_cycle=pace_duty, max_runtime=args.phase_seconds), int(pace_batch)),
                "capped_light": (f"--max-p99 {args.light_max_p99} only", capped, args.batch_size)}
            lights = {}
            for variant, (what, limits, batch) in light_runs.items():
                log(f"light workload + cleanup with {what}")
                lights[variant] = phase(args.phase_seconds,
                                        lambda d=databases[variant], li=limits, b=batch:
                                        run_tool(rs1, rs2, routing_for(d, COLLECTIONS), li, b, parallel=1))
            light.stop()

        alone = latencies(loop, [a1[:2], a2[:2]])
        with_budget = latencies(loop, [bud[:2]])
        with_throttled = latencies(loop, [thr[:2]])
        with_fast = latencies(loop, [fast[:2]])
        light_alone = latencies(light, [l1[:2]])
        light_budget, light_paced, light_capped = (latencies(light, [lights[v][:2]]) for v in LIGHT)
        rates.update({v: per_second(lights[v][2]["deleted"], lights[v][2]["seconds"]) for v in LIGHT})
        rates["budget"] = per_second(bud[2]["deleted"], bud[2]["seconds"])
        rates["throttled"] = per_second(thr[2]["deleted"], thr[2]["seconds"])
        rates["unthrottled_under_workload"] = per_second(fast[2]["deleted"], fast[2]["seconds"])
        p99_budget = ratio(with_budget["p99_ms"], alone["p99_ms"])
        light_share = ratio(rates["budget_light"], rates["tool"])
        result.results.update({
            "tool": tool, "tool_serial": tool_serial, "deletemany": many, "naive": naive, "throttled": thr[2],
            "budget": bud[2], **{v: lights[v][2] for v in LIGHT}, "unthrottled_under_workload": fast[2],
            "light_workload": {"alone": light_alone, "with_budget": light_budget, "with_fixed_pace": light_paced,
                               "with_max_p99_only": light_capped},
            "workload_p99_ratio_budget": p99_budget, "budget_light_vs_unthrottled": light_share,
            "budget_targets_met": {"p99_ratio_le_1.5": p99_budget is not None and p99_budget <= 1.5,
                                   "light_rate_ge_0.25": light_share is not None and light_share >= 0.25},
            "docs_per_s": rates, "tool_vs_deletemany": ratio(rates["tool"], rates["deletemany"]),
            "tool_vs_naive": ratio(rates["tool"], rates["naive"]),
            "tool_serial_vs_deletemany": ratio(rates["tool_serial"], rates["deletemany"]),
            "workload": {"alone": alone, "with_budget": with_budget, "with_throttled_cleanup": with_throttled,
                         "with_unthrottled_cleanup": with_fast, "errors": loop.errors[:5]},
            "workload_p99_ratio_throttled": ratio(with_throttled["p99_ms"], alone["p99_ms"]),
            "workload_p99_ratio_unthrottled": ratio(with_fast["p99_ms"], alone["p99_ms"]),
            "target_met": (ratio(rates["tool"], rates["deletemany"]) or 0) >= 0.8,
        })
        spent: dict[str, float] = {}
        for run in tool["runs"]:
            for key, value in run.get("spent_s", {}).items():
                spent[key] = spent.get(key, 0.0) + value
        result.row("cleanup unthrottled, docs/s", rates["tool"], rates["deletemany"], "docs/s",
                   baseline_name="deleteMany({user_id: {$mod: [2, 1]}})",
                   note=f"target >= 0.8; batch {args.batch_size} x {args.parallel} in flight; of its "
                        f"{tool['seconds']:.1f}s: chunks {spent.get('chunk', 0):.1f}s "
                        f"(sends {spent.get('send', 0):.1f}s, position saves {spent.get('save', 0):.1f}s), "
                        f"counts before/after {spent.get('expected', 0) + spent.get('finish', 0):.1f}s; "
                        f"{len(tool['runs'])} rounds")
        result.row("cleanup unthrottled, one batch per chunk (--parallel 1), docs/s", rates["tool_serial"],
                   rates["deletemany"], "docs/s", baseline_name="deleteMany")
        result.row("cleanup unthrottled vs one-at-a-time loop", rates["tool"], rates["naive"], "docs/s",
                   baseline_name="find + delete_one per document")
        result.row(f"workload p99 with the latency budget ({args.budget}, the default)", with_budget["p99_ms"],
                   alone["p99_ms"], "ms", baseline_name="same workload, no cleanup",
                   note=f"target <= 1.5; cleanup at {rates['budget']} docs/s; p50 {with_budget['p50_ms']} vs "
                        f"{alone['p50_ms']} ms; {with_budget['ops_per_s']} vs {alone['ops_per_s']} ops/s")
        result.row("cleanup with the latency budget under a light workload, docs/s", rates["budget_light"],
                   rates["tool"], "docs/s", baseline_name="cleanup unthrottled, no workload",
                   note=f"target >= 0.25; light workload p99 {light_budget['p99_ms']} vs {light_alone['p99_ms']} ms "
                        f"alone ({light_alone['ops_per_s']} ops/s)")
        result.row(f"light workload p99 with the cleanup at a fixed pace (batch {pace_batch:g}, {pace_duty:.0%} of the "
                   "time, no budget)", light_paced["p99_ms"], light_alone["p99_ms"], "ms",
                   baseline_name="same light workload, no cleanup",
                   note=f"cleanup at {rates['paced_light']} docs/s = "
                        f"{ratio(rates['paced_light'], rates['tool'])} of unthrottled: what that share costs a quiet "
                        f"application's tail")
        result.row(f"cleanup under a light workload with --max-p99 {args.light_max_p99} only (relative budget off), "
                   "docs/s", rates["capped_light"], rates["tool"], "docs/s",
                   baseline_name="cleanup unthrottled, no workload",
                   note=f"light workload p99 {light_capped['p99_ms']} vs {light_alone['p99_ms']} ms alone")
        result.row(f"cleanup throttled ({args.duty:.0%} duty, max-lag {args.max_lag:g}s, no budget), docs/s",
                   rates["throttled"], rates["tool"], "docs/s", baseline_name="cleanup unthrottled, no workload")
        result.row("workload p99 with throttled cleanup (no budget)", with_throttled["p99_ms"], alone["p99_ms"], "ms",
                   baseline_name="same workload, no cleanup",
                   note=f"{with_throttled['ops_per_s']} vs {alone['ops_per_s']} ops/s")
        result.row("workload p99 with unthrottled cleanup", with_fast["p99_ms"], alone["p99_ms"], "ms",
                   baseline_name="same workload, no cleanup",
                   note=f"cleanup at {rates['unthrottled_under_workload']} docs/s")

    return main_guard(result, body, args.out)


if __name__ == "__main__":
    sys.exit(main())
