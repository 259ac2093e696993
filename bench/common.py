"""Shared helpers for the benchmarks: labs, the instrumented split, latency loops, statistics, the JSON line.

Every script prints exactly one JSON line on stdout (progress goes to stderr) and writes the same line to
bench/results/<name>.json. Absolute times depend on the machine and its load, so every number that matters is
reported next to a baseline measured in the same run on identical data, and as a ratio.

Ports: labs use SPLITTER_BENCH_BASE_PORT (default 45000) for the main lab and +100 for a second one; the
scripts share these ports (and so the snapshot cache) and are meant to run one after another (run_all.py).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = Path(os.environ.get("SPLITTER_BENCH_RESULTS") or BENCH_DIR / "results")
BASE_PORT = int(os.environ.get("SPLITTER_BENCH_BASE_PORT", "45000"))
SECOND_PORT = BASE_PORT + 100
CACHE_DIR = Path(os.environ.get("SPLITTER_BENCH_CACHE") or Path.home() / ".cache" / "splitter-bench")
FORMAT = 1
_T0 = time.monotonic()


# -- small pure helpers (unit-tested without mongod) ---------------------------------------------------
def log(message: str) -> None:
    """Progress on stderr; stdout carries only the result line."""
    print(f"[{time.monotonic() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def parse_count(text: str) -> int:
    """'20000', '20k', '1m', '1_000_000' -> int."""
    value = str(text).strip().lower().replace("_", "")
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([km]?)", value)
    if not match:
        raise ValueError(f"not a document count: {text!r} (e.g. 20000, 20k, 1m)")
    number = float(match.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2)]
    if number < 1 or number != int(number):
        raise ValueError(f"not a document count: {text!r}")
    return int(number)


def parse_sizes(text: str) -> list[int]:
    sizes = [parse_count(part) for part in str(text).split(",") if part.strip()]
    if not sizes:
        raise ValueError("no sizes given")
    return sizes


def percentile(values: Iterable[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    data = sorted(values)
    if not data:
        return None
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    rank = (len(data) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return data[low] + (data[high] - data[low]) * (rank - low)


def ratio(numerator: float | None, denominator: float | None, digits: int = 3) -> float | None:
    """numerator / denominator rounded, or None when either is missing or the denominator is zero."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return round(numerator / denominator, digits)


def per_second(count: float, seconds: float, digits: int = 1) -> float | None:
    return round(count / seconds, digits) if seconds > 0 else None


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def longest_gap(times: Sequence[float], start: float, end: float) -> float:
    """Longest stretch of [start, end] without a time in `times` (e.g. acknowledged writes)."""
    return longest_gap_at(times, start, end)[0]


def longest_gap_at(times: Sequence[float], start: float, end: float) -> tuple[float, float]:
    """(length, where it began) of the longest stretch of [start, end] without a time in `times`."""
    points = [start, *sorted(t for t in times if start <= t <= end), end]
    return max(((b - a, a) for a, b in itertools.pairwise(points)), default=(0.0, start))


def latency_summary(latencies: Sequence[float]) -> dict[str, float | int | None]:
    """Seconds in, milliseconds out: n, p50, p99, max."""
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    return {"n": len(latencies), "p50_ms": ms(percentile(latencies, 50)), "p99_ms": ms(percentile(latencies, 99)),
            "max_ms": ms(max(latencies) if latencies else None)}


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def json_line(record: dict[str, Any]) -> str:
    """One line of JSON (no newline inside, keys in insertion order)."""
    return json.dumps(record, separators=(",", ":"), default=str, allow_nan=False)


# -- the machine --------------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def mongod_version() -> str:
    try:
        from splitter.mongod_binary import find_mongod

        out = subprocess.run([str(find_mongod()), "--version"], capture_output=True, text=True, timeout=30,
                             check=False).stdout
    except Exception as exc:  # the description must never fail a benchmark
        return f"unknown ({type(exc).__name__})"
    match = re.search(r"db version v?(\S+)", out)
    return match.group(1) if match else "unknown"


def machine() -> dict[str, Any]:
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "ram_gb": _ram_gb(), "mongod": mongod_version(),
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version()}


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


def set_client(lab: Any, set_name: str, nodes: Sequence[str], **options: Any) -> Any:
    from pymongo import MongoClient

    seeds = ",".join(lab.layout.host(n).host for n in nodes)
    return MongoClient(f"mongodb://{seeds}/?replicaSet={set_name}", serverSelectionTimeoutMS=30000, **options)


def rs1_client(lab: Any, **options: Any) -> Any:
    """How the application reaches rs1 once deploy-client-v1 is live: node1 + node2 only."""
    return set_client(lab, "rs1", ("node1", "node2"), **options)


def rs2_client(lab: Any, **options: Any) -> Any:
    return set_client(lab, "rs2", ("node3", "node4"), **options)


# -- the split, instrumented --------------------------------------------------------------------------------
STEP_LINE = re.compile(r"^\[([a-z0-9-]+)\] (.*)$")


@dataclass
class SplitRun:
    """What one in-process split did, with monotonic timestamps (seconds since the run started)."""

    wall: float = 0.0
    steps: dict[str, tuple[float, float]] = field(default_factory=dict)  # step -> (start, end)
    audit: list[dict[str, Any]] = field(default_factory=list)
    waits: list[dict[str, Any]] = field(default_factory=list)  # {"step", "what", "start", "seconds"}
    checks: list[dict[str, Any]] = field(default_factory=list)  # un-audited playbooks (preflight, verify)
    events: list[tuple[float, str]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    origin: float = 0.0  # time.monotonic() when the runner started: times above are relative to it

    def step_at(self, moment: float) -> str | None:
        for step, (start, end) in self.steps.items():
            if start <= moment <= end:
                return step
        return None


def step_windows(events: Sequence[tuple[float, str]]) -> dict[str, tuple[float, float]]:
    """From the runner's progress lines ('[id] title' ... '[id] done'), each step's (start, end)."""
    windows: dict[str, tuple[float, float]] = {}
    for moment, message in events:
        match = STEP_LINE.match(message)
        if not match:
            continue
        step, text = match.groups()
        if step not in windows:
            windows[step] = (moment, moment)
        elif text in ("done", "already complete"):
            windows[step] = (windows[step][0], moment)
    return windows


def run_split(lab: Any, until: str | None = None, before_step: Callable[[str], None] | None = None) -> SplitRun:
    """The split on `lab` in this process (as `splitter run --yes` / the demo), timing every wait and playbook.

    `before_step(step_id)` runs before each step (e.g. to stop the application's writes of rs2's half before
    deploy-client-v2, as the demo does)."""
    from splitter.engine.gates import GateKeeper
    from splitter.engine.runner import Runner
    from splitter.engine.session import open_session
    from splitter.events import EventBus
    from splitter.steps.registry import all_steps
    from splitter.store.audit import AuditLog
    from splitter.store.lock import StateLock

    run = SplitRun()
    t0 = time.monotonic()

    def progress(event: Any) -> None:
        run.events.append((time.monotonic() - t0, event.message))
        log(f"split: {event.message}")

    bus = EventBus()
    bus.subscribe(progress)
    ctx = open_session(lab.layout.config_path, dry_run=False, events=bus, auto_confirm=True)
    original_wait, applier = ctx.wait_for, ctx.applier
    adapter_run, applier_playbook = applier.adapter.run, applier.playbook
    in_action = threading.local()

    def timed_wait(what: str, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return original_wait(what, *args, **kwargs)
        finally:
            run.waits.append({"what": what, "start": started - t0, "seconds": time.monotonic() - started})

    def audited_playbook(*args: Any, **kwargs: Any) -> Any:
        in_action.on = True
        try:
            return applier_playbook(*args, **kwargs)
        finally:
            in_action.on = False

    def timed_adapter_run(playbook: str, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return adapter_run(playbook, *args, **kwargs)
        finally:
            restore_signals()
            if not getattr(in_action, "on", False):
                run.checks.append({"playbook": playbook, "start": started - t0,
                                   "seconds": time.monotonic() - started})

    ctx.wait_for = timed_wait  # type: ignore[method-assign]
    applier.playbook = audited_playbook  # type: ignore[method-assign]
    applier.adapter.run = timed_adapter_run  # type: ignore[method-assign]
    steps = all_steps()
    if before_step is not None:
        for step in steps:
            original_apply = step.apply

            def apply(ctx_: Any, step_id: str = step.id, original: Callable[[Any], None] = original_apply) -> None:
                before_step(step_id)
                original(ctx_)

            step.apply = apply  # type: ignore[method-assign]
    lock = StateLock(ctx.config.state_path)
    lock.acquire("bench")
    since = datetime.now(timezone.utc).isoformat(timespec="seconds")  # the audit log's own format
    started = time.monotonic()
    try:
        Runner(ctx, steps, GateKeeper(ctx, auto_yes=True), until=until).run()
    finally:
        run.wall = time.monotonic() - started
        lock.release()
    run.origin = started
    offset = started - t0
    run.events = [(t - offset, m) for t, m in run.events]
    for item in (*run.waits, *run.checks):
        item["start"] -= offset
    run.steps = step_windows(run.events)
    for item in (*run.waits, *run.checks):
        item["step"] = run.step_at(item["start"])
    run.audit = [e for e in AuditLog(ctx.config.state_path).read() if str(e.get("at", "")) >= since]
    run.state = ctx.state.to_json()
    return run


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


# -- where the time goes -------------------------------------------------------------------------------
CATCHUP_STEPS = ("catch-up", "deploy-client-v2")
MONGOD_PARTS = ("startup", "shutdown", "elections", "secondary_catchup", "reconfig_and_commands", "dbpath_prep",
                "other_waits")


def classify_action(action: str) -> str:
    """An audit log action -> the part of mongod's time it stands for."""
    if action.startswith("playbook mongod_start"):
        return "startup"
    if action.startswith("playbook mongod_stop") or action == "shutdown":
        return "shutdown"
    if action.startswith("playbook prepare_dbpath"):
        return "dbpath_prep"
    return "reconfig_and_commands"


def classify_wait(what: str) -> str:
    text = what.lower()
    if "catch up" in text or "caught up" in text or "optime" in text:
        return "secondary_catchup"
    if "primary" in text or "arbiter" in text or "secondary" in text:
        return "elections"
    return "other_waits"


def breakdown(wall: float, audit: Sequence[dict[str, Any]], waits: Sequence[dict[str, Any]],
              checks: Sequence[dict[str, Any]], ansible_fixed: float,
              steps: dict[str, tuple[float, float]] | None = None) -> dict[str, Any]:
    """Split the wall time into waiting on mongod, Ansible's own per-playbook cost and the orchestrator's own
    time (everything else: preflight and verify reads, checkpoints, Python).

    Audited playbooks count as mongod time minus `ansible_fixed` (a no-op playbook's time on this machine);
    un-audited playbooks (`checks`: preflight's reachability check, verify's dbpath checks) count as Ansible.
    """
    parts = dict.fromkeys(MONGOD_PARTS, 0.0)
    ansible = 0.0
    per_step: dict[str, dict[str, float]] = {}

    def add(step: str | None, key: str, seconds: float) -> None:
        slot = per_step.setdefault(step or "?", {"mongod_s": 0.0, "ansible_s": 0.0})
        slot[key] += seconds

    playbooks = 0
    for entry in audit:
        seconds = float(entry.get("seconds") or 0.0)
        action = str(entry.get("action", ""))
        if action.startswith("playbook "):
            playbooks += 1
            fixed = min(ansible_fixed, seconds)
            ansible += fixed
            add(entry.get("step"), "ansible_s", fixed)
            seconds -= fixed
        parts[classify_action(action)] += seconds
        add(entry.get("step"), "mongod_s", seconds)
    for wait in waits:
        parts[classify_wait(str(wait.get("what", "")))] += wait["seconds"]
        add(wait.get("step"), "mongod_s", wait["seconds"])
    for check in checks:
        playbooks += 1
        ansible += check["seconds"]
        add(check.get("step"), "ansible_s", check["seconds"])
    mongod = sum(parts.values())
    own = max(wall - mongod - ansible, 0.0)
    step_table: dict[str, dict[str, float]] = {}
    for step, (start, end) in (steps or {}).items():
        slot = per_step.get(step, {"mongod_s": 0.0, "ansible_s": 0.0})
        length = end - start
        step_table[step] = {"wall_s": round(length, 2), "mongod_s": round(slot["mongod_s"], 2),
                            "ansible_s": round(slot["ansible_s"], 2),
                            "own_s": round(max(length - slot["mongod_s"] - slot["ansible_s"], 0.0), 2)}
    return {
        "wall_s": round(wall, 2),
        "waiting_on_mongod_s": round(mongod, 2),
        "ansible_s": round(ansible, 2),
        "orchestrator_own_s": round(own, 2),
        # of which the catch-up and the cutover's drain + verify (the tool's own reads and writes)
        "catchup_and_verify_s": round(sum(step_table.get(s, {}).get("own_s", 0.0) for s in CATCHUP_STEPS), 2),
        "waiting_on_mongod_fraction": ratio(mongod, wall),
        "orchestrator_fraction": ratio(ansible + own, wall),
        "mongod": {f"{k}_s": round(v, 2) for k, v in parts.items()},
        "playbooks": playbooks,
        "ansible_fixed_per_playbook_s": round(ansible_fixed, 2),
        "steps": step_table,
    }


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


# -- operation loops with latencies --------------------------------------------------------------------
@dataclass
class OpSample:
    start: float
    end: float
    ok: bool


class OpLoop:
    """Runs `op(n)` over and over in `threads` threads (optionally `interval` apart per thread) and records
    each call's start, end and success. Errors are counted, the first few kept."""

    def __init__(self, op: Callable[[int], Any], *, threads: int = 1, interval: float = 0.0, name: str = "op") -> None:
        self.op, self.threads, self.interval, self.name = op, threads, interval, name
        self.samples: list[OpSample] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._counter = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.started = self.stopped = 0.0

    def _next(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter

    def _loop(self) -> None:
        while not self._stop.is_set():
            n = self._next()
            began = time.monotonic()
            ok = True
            try:
                self.op(n)
            except Exception as exc:
                ok = False
                if len(self.errors) < 10:
                    self.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            self.samples.append(OpSample(began, time.monotonic(), ok))
            if self.interval:
                self._stop.wait(self.interval)

    def start(self) -> OpLoop:
        self.started = time.monotonic()
        self._threads = [threading.Thread(target=self._loop, name=f"{self.name}-{i}", daemon=True)
                         for i in range(self.threads)]
        for thread in self._threads:
            thread.start()
        return self

    def halt(self) -> None:
        """Ask the threads to stop after their current call, without waiting (e.g. from a watchdog timer)."""
        self._stop.set()

    def stop(self) -> OpLoop:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)
        self.stopped = time.monotonic()
        return self

    def __enter__(self) -> OpLoop:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def summary(self, start: float | None = None, end: float | None = None) -> dict[str, Any]:
        """Calls that started within [start, end] (default: the whole run)."""
        start = self.started if start is None else start
        end = (self.stopped or time.monotonic()) if end is None else end
        window = [s for s in self.samples if start <= s.start <= end]
        ok = [s for s in window if s.ok]
        return {"ops": len(window), "ok": len(ok), "failed": len(window) - len(ok),
                "seconds": round(end - start, 2), "ok_per_s": per_second(len(ok), end - start),
                **latency_summary([s.end - s.start for s in ok]),
                "longest_gap_s": round(longest_gap([s.end for s in ok], start, end), 3)}
