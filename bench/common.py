"""Shared helpers for the benchmarks: labs, the split observed through its events, the result record, the JSON line.

Statistics, latency loops and the machine's description live in bench/measure.py, the split's time breakdown in
bench/breakdown.py; both are re-exported here, so that every script imports from one place.

Every script prints exactly one JSON line on stdout (progress goes to stderr) and writes the same line to
bench/results/<name>.json. Absolute times depend on the machine and its load, so every number that matters is
reported next to a baseline measured in the same run on identical data, and as a ratio.

Ports: labs use SPLITTER_BENCH_BASE_PORT (default 45000) for the main lab and +100 for a second one; the
scripts share these ports (and so the snapshot cache) and are meant to run one after another (run_all.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.breakdown import CATCHUP_STEPS, MONGOD_PARTS, breakdown, classify_action, classify_wait
from bench.measure import (
    OpLoop,
    OpSample,
    latency_summary,
    longest_gap,
    longest_gap_at,
    machine,
    mongod_version,
    parse_count,
    parse_sizes,
    per_second,
    percentile,
    ratio,
    rounded,
)

__all__ = [  # what the scripts import from here, besides what this module defines
    "CATCHUP_STEPS", "MONGOD_PARTS", "OpLoop", "OpSample", "breakdown", "classify_action", "classify_wait",
    "latency_summary", "longest_gap", "longest_gap_at", "machine", "mongod_version", "parse_count", "parse_sizes",
    "per_second", "percentile", "ratio", "rounded",
]

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = Path(os.environ.get("SPLITTER_BENCH_RESULTS") or BENCH_DIR / "results")
BASE_PORT = int(os.environ.get("SPLITTER_BENCH_BASE_PORT", "45000"))
SECOND_PORT = BASE_PORT + 100
CACHE_DIR = Path(os.environ.get("SPLITTER_BENCH_CACHE") or Path.home() / ".cache" / "splitter-bench")
FORMAT = 1
_T0 = time.monotonic()


# -- small helpers ----------------------------------------------------------------------------------------
def log(message: str) -> None:
    """Progress on stderr; stdout carries only the result line."""
    print(f"[{time.monotonic() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def json_line(record: dict[str, Any]) -> str:
    """One line of JSON (no newline inside, keys in insertion order)."""
    return json.dumps(record, separators=(",", ":"), default=str, allow_nan=False)


# -- the result record ----------------------------------------------------------------------------------
@dataclass
class Result:
    """One benchmark's record: parameters, detailed results, table rows (tool vs baseline) and skipped parts."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    load_start: list[float] = field(default_factory=load_average)
    error: str | None = None

    def row(self, measure: str, tool: float | None, baseline: float | None, unit: str, *,
            ratio_value: float | None = None, baseline_name: str = "", note: str = "") -> None:
        """A table row; the ratio is tool / baseline unless given."""
        self.rows.append({"measure": measure, "tool": tool, "baseline": baseline, "unit": unit,
                          "ratio": ratio_value if ratio_value is not None else ratio(tool, baseline),
                          "baseline_name": baseline_name, "note": note})

    def skip(self, part: str, reason: str) -> None:
        log(f"skipped {part}: {reason}")
        self.skipped[part] = reason

    def record(self) -> dict[str, Any]:
        return {"bench": self.name, "format": FORMAT,
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "seconds": round(time.monotonic() - self.started, 1),
                "load_avg": {"start": self.load_start, "end": load_average()},
                "machine": machine(), "params": self.params, "rows": self.rows, "results": self.results,
                "skipped": {part: {"skipped": reason} for part, reason in self.skipped.items()},
                **({"error": self.error} if self.error else {})}

    def emit(self, out_dir: Path | None = None) -> str:
        """Print the line and write it to <out_dir>/<name>.json (atomically)."""
        line = json_line(self.record())
        print(line, flush=True)
        directory = Path(out_dir or RESULTS_DIR)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{self.name}.json"
        partial = target.with_suffix(".json.tmp")
        partial.write_text(line + "\n")
        partial.replace(target)
        return line


def arg_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=None, help=f"results directory (default {RESULTS_DIR})")
    return parser


def env_count(name: str, default: int) -> int:
    return parse_count(os.environ.get(name) or str(default))


def main_guard(result: Result, body: Callable[[], None], out_dir: Path | None) -> int:
    """Run the body; the record is emitted also when it fails (with `error`), exit 1 then."""
    try:
        body()
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        log(f"FAILED: {result.error}")
        result.emit(out_dir)
        return 1
    result.emit(out_dir)
    return 0


# -- labs ---------------------------------------------------------------------------------------------
def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def restore_signals() -> None:
    """ansible-runner installs SIGINT/SIGTERM handlers that only set a flag, so after a playbook Ctrl-C no longer
    interrupts this process; put back handlers that raise, so `finally` still stops the labs."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _terminate)


@contextmanager
def lab_running(docs: int, port: int = BASE_PORT, label: str = "lab", attempts: int = 3) -> Iterator[Any]:
    """A lab of real mongod (restored from the snapshot cache when it holds this size); always stopped.

    Ports 45000+ lie in Linux's ephemeral range (32768-60999): an outgoing connection of any process may hold
    one of them for a while, and a mongod then fails to bind. A failed start is stopped and retried in a new
    directory, up to `attempts` times."""
    from splitter.errors import SplitterError
    from splitter.lab.lab import Lab

    for attempt in range(1, attempts + 1):
        root = Path(tempfile.mkdtemp(prefix=f"splitter-bench-{label}-"))
        lab = Lab(root, port, progress=lambda m: log(f"{label}: {m}"))
        started = time.monotonic()
        try:
            lab.up(docs, cache=CACHE_DIR)
        except SplitterError as exc:
            lab.down()
            restore_signals()
            shutil.rmtree(root, ignore_errors=True)
            if attempt == attempts:
                raise
            log(f"{label}: start failed ({exc}); retrying in 10s ({attempt} of {attempts})")
            time.sleep(10)
            continue
        except BaseException:
            lab.down()
            shutil.rmtree(root, ignore_errors=True)
            raise
        break
    try:
        restore_signals()
        log(f"{label}: up with {docs} documents on {port} in {time.monotonic() - started:.0f}s")
        yield lab
    finally:
        lab.down()
        restore_signals()
        shutil.rmtree(root, ignore_errors=True)


def set_uri(lab: Any, set_name: str, nodes: Sequence[str]) -> str:
    return f"mongodb://{','.join(lab.layout.host(n).host for n in nodes)}/?replicaSet={set_name}"


def set_client(lab: Any, set_name: str, nodes: Sequence[str], **options: Any) -> Any:
    from pymongo import MongoClient

    return MongoClient(set_uri(lab, set_name, nodes), serverSelectionTimeoutMS=30000, **options)


def rs1_client(lab: Any, **options: Any) -> Any:
    """How the application reaches rs1 once deploy-client-v1 is live: node1 + node2 only."""
    return set_client(lab, "rs1", ("node1", "node2"), **options)


def rs2_client(lab: Any, **options: Any) -> Any:
    return set_client(lab, "rs2", ("node3", "node4"), **options)


# -- the split, observed through its events ------------------------------------------------------------------
@dataclass
class SplitRun:
    """What one in-process split did, with monotonic timestamps (seconds since the run started)."""

    wall: float = 0.0
    steps: dict[str, tuple[float, float]] = field(default_factory=dict)  # step -> (start, end)
    audit: list[dict[str, Any]] = field(default_factory=list)  # the applier's `action` events
    waits: list[dict[str, Any]] = field(default_factory=list)  # {"step", "what", "start", "seconds"}
    checks: list[dict[str, Any]] = field(default_factory=list)  # read-only playbooks (preflight, dbpath checks)
    events: list[tuple[float, str]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    origin: float = 0.0  # time.monotonic() when the runner started: times above are relative to it

    def step_at(self, moment: float) -> str | None:
        for step, (start, end) in self.steps.items():
            if start <= moment <= end:
                return step
        return None


class SplitObserver:
    """An event-bus subscriber that measures a split from its events alone: `step.started`/`step.done` give each
    step's window, finished `waiting` events the waits, `host.check` the read-only playbooks, `action` the
    changes. Times are seconds since `origin` (time.monotonic())."""

    def __init__(self, run: SplitRun, origin: float, *, echo: bool = True) -> None:
        from splitter.events import EventType

        self.types = EventType
        self.run = run
        self.origin = origin
        self.echo = echo

    def __call__(self, event: Any) -> None:
        now = time.monotonic() - self.origin
        kind, data = self.types(event.type), event.data
        self.run.events.append((now, event.message))
        if self.echo:
            log(f"split: {event.message}")
        if kind is self.types.STEP_STARTED and event.step:
            self.run.steps[event.step] = (now, now)
        elif kind is self.types.STEP_DONE and event.step in self.run.steps:
            self.run.steps[event.step] = (self.run.steps[event.step][0], now)
        elif kind is self.types.WAITING and data.get("state") in ("done", "timed-out"):
            seconds = float(data.get("seconds") or 0.0)
            self.run.waits.append({"what": data.get("what", ""), "start": now - seconds, "seconds": seconds,
                                   "step": event.step})
        elif kind is self.types.HOST_CHECK:
            seconds = float(data.get("seconds") or 0.0)
            self.run.checks.append({"playbook": data.get("playbook", ""), "start": now - seconds,
                                    "seconds": seconds, "step": event.step})
            restore_signals()
        elif kind is self.types.ACTION:
            self.run.audit.append(event.to_json())
            if str(data.get("what", "")).startswith("playbook "):
                restore_signals()


def run_split(lab: Any, until: str | None = None, before_step: Callable[[str], None] | None = None) -> SplitRun:
    """The split on `lab` in this process (as `splitter run --yes` / the demo), measured through its events.

    `before_step(step_id)` runs when each step starts (e.g. to stop the application's writes of rs2's half before
    deploy-client-v2, as the demo does); its exception stops the run."""
    from splitter.engine.gates import GateKeeper
    from splitter.engine.runner import Runner
    from splitter.engine.session import open_session
    from splitter.events import EventBus, EventType
    from splitter.steps.registry import all_steps
    from splitter.store.lock import StateLock

    run = SplitRun()
    bus = EventBus()
    observer = SplitObserver(run, time.monotonic())
    bus.subscribe(observer)
    if before_step is not None:
        bus.subscribe(lambda event: before_step(event.step), types={EventType.STEP_STARTED}, blocking=True)
    ctx = open_session(lab.layout.config_path, dry_run=False, events=bus, auto_confirm=True)
    lock = StateLock(ctx.config.state_path)
    lock.acquire("bench")
    started = time.monotonic()
    try:
        Runner(ctx, all_steps(), GateKeeper(ctx, auto_yes=True), until=until).run()
    finally:
        run.wall = time.monotonic() - started
        lock.release()
        bus.close()
    rebase(run, started - observer.origin)
    run.origin = started
    run.state = ctx.state.to_json()
    return run


def rebase(run: SplitRun, offset: float) -> None:
    """Make every time relative to the runner's start (`offset` seconds after the observer's origin)."""
    run.events = [(t - offset, m) for t, m in run.events]
    run.steps = {step: (start - offset, end - offset) for step, (start, end) in run.steps.items()}
    for item in (*run.waits, *run.checks):
        item["start"] -= offset


SHARED_LAB_ENV = "SPLITTER_BENCH_LAB"


def split_done(lab: Any) -> bool:
    """Whether the lab's split reached the cutover (its checkpoint says so)."""
    from splitter.store.checkpoint import StateStore

    return StateStore(lab.layout.root / "state").load().cutover is not None


def shared_lab() -> Any | None:
    """The lab run_all.py started for several scripts (SPLITTER_BENCH_LAB), or None. run_all stops it."""
    from splitter.lab.lab import Lab

    root = os.environ.get(SHARED_LAB_ENV)
    return Lab.existing(Path(root), progress=lambda m: log(f"shared lab: {m}")) if root else None


def lab_docs(lab: Any) -> int | None:
    try:
        return int(json.loads(lab.layout.meta_path.read_text())["docs"])
    except (OSError, ValueError, KeyError):
        return None


@contextmanager
def split_lab(docs: int, label: str) -> Iterator[tuple[Any, SplitRun | None]]:
    """A lab split into rs1 + rs2 (through the cutover): the shared one when run_all.py gives one (split here
    if nobody did yet, resuming from its checkpoint), else a lab of our own, stopped afterwards."""
    lab = shared_lab()
    if lab is not None:
        run = None if split_done(lab) else run_split(lab)
        yield lab, run
        return
    with lab_running(docs, label=label) as own:
        yield own, run_split(own)


def ansible_fixed_cost(lab: Any, repeats: int = 3) -> float:
    """Median time of a no-op playbook against two lab hosts: Ansible's own cost per playbook run here."""
    from splitter.hosts.ansible_adapter import AnsibleAdapter

    work = Path(tempfile.mkdtemp(prefix="splitter-bench-ansible-"))
    try:
        adapter = AnsibleAdapter(lab.layout.inventory_path, work, playbook_dir=BENCH_DIR)
        times = []
        for _ in range(repeats):
            started = time.monotonic()
            adapter.run("noop.yml", ["arbiter1", "arbiter2"])
            times.append(time.monotonic() - started)
            restore_signals()
        return float(percentile(times, 50) or 0.0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
