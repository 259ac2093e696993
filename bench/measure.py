"""What the benchmarks measure with: counts, statistics, latency loops, and a description of the machine.

Pure helpers and thread loops only (no lab, no splitter import at module level); bench/common.py re-exports them.
"""

from __future__ import annotations

import itertools
import math
import os
import platform
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


# -- counts and statistics (pure) ---------------------------------------------------
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
