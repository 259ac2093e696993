"""Benchmark: the write stall of rs2's users at the cutover (issue 13), at two data sizes, beside a baseline.

Per size: a lab split up to catch-up, the lab application (LabApp: two threads, so one thread writes rs2's users
only: inserts/updates/deletes, retries, follows splitter.routing) writing all along, then `run` without --yes:
the gate is confirmed, and the moving half is switched back and forth (`switch`/`reverse` requests) before
`finalize`. For each switch the stall is the time from the fence (the `before.cutover` event: the routing
document says `fenced`) to the first write of the moving half acknowledged by the new owner. Baseline: the
longest gap between acknowledged writes of rs2's users in the same application before the first switch.

    python bench/bench_cutover.py --sizes 20k,1m --switches 5
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    BASE_PORT,
    Result,
    arg_parser,
    lab_running,
    log,
    main_guard,
    parse_count,
    rs1_client,
    rs2_client,
)

BASELINE_SECONDS = 20.0


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "splitter", *args], capture_output=True, text=True, check=False,
                          timeout=7200)


def _state(lab: Any) -> dict:
    path = lab.layout.root / "state" / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _wait(what: str, check, run: subprocess.Popen, timeout: float = 3600) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if run.poll() is not None:
            raise RuntimeError(f"run exited {run.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.5)


def _verified(lab: Any, epoch: int) -> bool:
    switches = (_state(lab).get("cutover") or {}).get("switches") or []
    return bool(switches) and switches[-1]["epoch"] == epoch and switches[-1]["phase"] == "verified"


def _fences(lab: Any) -> list[tuple[int, float, str]]:
    """(epoch, wall time, new owner) of every `before.cutover` event in the audit log."""
    found = []
    for line in (lab.layout.root / "state" / "audit.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "before.cutover":
            found.append((event["epoch"], datetime.fromisoformat(event["at"]).timestamp(), event["to_set"]))
    return found


def measure(docs: int, switches: int, port: int) -> dict[str, Any]:
    from splitter.lab.app import LabApp

    with lab_running(docs, port, f"cutover-{docs}") as lab:
        config = str(lab.layout.config_path)
        done = cli("run", "-c", config, "--yes", "--until", "catch-up")
        if done.returncode:
            raise RuntimeError(f"split up to catch-up failed: {done.stderr[-2000:]}")
        with rs1_client(lab) as rs1, rs2_client(lab) as rs2:
            app = LabApp({"rs1": rs1, "rs2": rs2}, "rs1", threads=2, users=64, interval=0.005,
                         max_op_seconds=600).start()
            offset = time.time() - time.monotonic()
            log_path = lab.layout.root / "run.log"
            with log_path.open("w") as out:
                run = subprocess.Popen([sys.executable, "-m", "splitter", "run", "-c", config], stdout=out,
                                       stderr=subprocess.STDOUT)
            try:
                _wait("the gate", lambda: _state(lab).get("waiting_gate") == "deploy-client-v2", run)
                baseline_from = time.monotonic()
                time.sleep(BASELINE_SECONDS)
                baseline_to = time.monotonic()
                cli("confirm", "-c", config, "deploy-client-v2")
                for n in range(switches):
                    _wait(f"switch epoch {n + 2}", lambda n=n: _verified(lab, n + 2), run)
                    time.sleep(3)
                    if n + 1 < switches:
                        cli("reverse" if n % 2 == 0 else "switch", "-c", config)
                finished = cli("finalize", "-c", config) if switches % 2 else None
                if finished is None:  # an even number ends reversed: switch once more, then finalize
                    cli("switch", "-c", config)
                    _wait("the last switch", lambda: _verified(lab, switches + 2), run)
                    cli("finalize", "-c", config)
                if run.wait(timeout=600) != 0:
                    raise RuntimeError(f"run failed: {log_path.read_text()[-2000:]}")
            finally:
                app.stop()
                if run.poll() is None:
                    run.kill()
            check = app.check()
            with app._lock:
                ops = list(app.ops)
        fences = _fences(lab)  # read while the lab's directory still exists
    moving = [op for op in ops if op.user % 2 == 1]
    ends = sorted(op.ended for op in moving if baseline_from <= op.ended <= baseline_to)
    base_gaps = [b - a for a, b in itertools.pairwise(ends)]
    stalls = []
    for epoch, fenced_at, owner in fences:
        first = min((op.ended + offset for op in moving if op.acked_by == owner and op.ended + offset > fenced_at),
                    default=None)
        if first is not None:
            stalls.append({"epoch": epoch, "to": owner, "stall_s": round(first - fenced_at, 3)})
    values = [s["stall_s"] for s in stalls]
    return {"docs": docs, "switches": stalls, "stall_p50_s": round(statistics.median(values), 3) if values else None,
            "stall_max_s": max(values, default=None), "baseline_gap_p50_s": round(statistics.median(base_gaps), 4)
            if base_gaps else None, "baseline_gap_max_s": round(max(base_gaps, default=0.0), 3),
            "acknowledged": len(ops), "app_check_ok": check.ok, "problems": check.problems[:5],
            "app_failures": app.failures[:5]}


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser("rs2's users' write stall at the cutover (fence -> first write acknowledged by rs2).")
    parser.add_argument("--sizes", default=os.environ.get("SPLITTER_BENCH_CUTOVER_SIZES") or "20k,1m")
    parser.add_argument("--switches", type=int, default=5, help="switches per size (switch/reverse alternate)")
    args = parser.parse_args(argv)
    sizes = [parse_count(s) for s in args.sizes.split(",")]
    result = Result("cutover", params={"sizes": sizes, "switches": args.switches, "app": "LabApp 2 threads, 64 "
                                       "users, 5 ms pause, retryable, follows splitter.routing", "port": BASE_PORT})

    def body() -> None:
        for docs in sizes:
            found = measure(docs, args.switches, BASE_PORT)
            log(f"{docs} documents: {found}")
            result.results[str(docs)] = found
            result.row(f"rs2 users' stall at a switch, p50 ({docs} docs)", found["stall_p50_s"],
                       found["baseline_gap_p50_s"], "s", baseline_name="gap between rs2-user writes, no switch",
                       note=f"{len(found['switches'])} switches; app check ok={found['app_check_ok']}")
            result.row(f"rs2 users' stall at a switch, max ({docs} docs)", found["stall_max_s"],
                       found["baseline_gap_max_s"], "s", baseline_name="longest gap between rs2-user writes, "
                       f"{BASELINE_SECONDS:.0f}s without a switch")

    return main_guard(result, body, args.out)


if __name__ == "__main__":
    sys.exit(main())
