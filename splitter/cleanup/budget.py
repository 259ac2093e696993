"""The latency budget, pure: from the application's write latency (a probe's samples) decide how hard to delete.

Touches nothing: no clock, no database. The worker measures (cleanup/probe.py) and obeys.

Like gh-ost's max-load / critical-load and Vitess's tablet throttler, but on the signal the application feels: the
latency of a small write with the application's write concern, beside the same measure taken while the cleanup
did nothing (the baseline). A delete batch delays the writes that land behind it (on the primary and, for a
majority write, on the secondary that must apply it first), so two knobs matter: how big each batch is (how long a
write can be held up) and how much of the time batches run (how many writes are). Both follow AIMD: halved when
the tail is over the budget, held just under it, grown step by step while further under (faster while far
under); far over the budget, the cleanup pauses.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from splitter.config import parse_duration

RATIO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*x?\s*$", re.IGNORECASE)
OFF = ("off", "none", "no")


def parse_increase(text: str) -> float | None:
    """'--max-latency-increase' value: '1.5x' or '1.5' -> 1.5; 'off' -> None (no relative budget)."""
    if str(text).strip().lower() in OFF:
        return None
    match = RATIO.match(str(text))
    if not match or float(match.group(1)) <= 1.0:
        raise ValueError(f"--max-latency-increase {text!r}: give a factor above 1, e.g. 1.5x, or off")
    return float(match.group(1))


def parse_latency(text: str) -> float | None:
    """'--max-p99' value: '20ms' or '0.02s' -> milliseconds; 'off' -> None."""
    if str(text).strip().lower() in OFF:
        return None
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"--max-p99 {text!r}: must be more than zero, e.g. 20ms")
    return seconds * 1000


def _percentile(data: Sequence[float], p: float) -> float:
    """Nearest rank above (a small window's p99 is its maximum: the conservative reading)."""
    return data[min(len(data) - 1, max(0, math.ceil(len(data) * p / 100) - 1))]


@dataclass(frozen=True)
class LatencyStats:
    """Write latency of some probe samples, in milliseconds."""

    n: int
    p50: float = 0.0
    p90: float = 0.0
    p99: float = 0.0

    @classmethod
    def of(cls, seconds: Sequence[float]) -> LatencyStats:
        data = sorted(s * 1000 for s in seconds)
        if not data:
            return cls(0)
        return cls(len(data), _percentile(data, 50), _percentile(data, 90), _percentile(data, 99))

    def __str__(self) -> str:
        return f"p50 {self.p50:.1f}ms, p90 {self.p90:.1f}ms, p99 {self.p99:.1f}ms over {self.n} probes"


@dataclass(frozen=True)
class Pace:
    """How hard the cleanup deletes under a budget: documents per batch, and the share of time it deletes."""

    batch: int
    duty: float

    def __str__(self) -> str:
        return f"batch {self.batch}, {self.duty:.0%} of the time"


@dataclass(frozen=True)
class Budget:
    """The operator's budget: the probe's p99 at most `increase` times the baseline's (`reference`) and/or at most
    `max_p99_ms`; the pace stays within [min_batch, max_batch] x [min_duty, max_duty].

    Why p99 and these starting values (bench/bench_cleanup.py, 2 cores, `w: majority`): deciding on the p90 let
    the application's p99 reach 2.5x while the probe's p90 stayed "within"; at fixed paces, batch 20 at 25 % of
    the time kept a busy workload's p99 at 1.2x and batch 50 or 100 at 25 % took it to 1.7-2.2x, so the run starts
    below those and climbs."""

    increase: float | None = 1.5
    max_p99_ms: float | None = None
    max_batch: int = 1000
    min_batch: int = 20
    start_batch: int = 20
    max_duty: float = 1.0
    min_duty: float = 0.02
    start_duty: float = 0.1
    duty_step: float = 0.05
    far_under: float = 0.6       # below this share of the line the pace grows by half at each step
    hold: float = 0.8            # from this share of the line up to it the pace holds: growing there overshoots
    critical: float = 2.0        # this many times over the line: pause, do not just slow down
    critical_pause: float = 2.0  # seconds
    min_samples: int = 30        # a decision needs this many probes at the current pace (its p99: ~the top one)
    calibrate: float = 5.0       # seconds of probes without deletes for the baseline (~90 probes)
    spike_cap: float = 2.0       # the baseline's p99 counts at most this many times its p90 (see reference)
    recalibrate_every: float = 300.0

    @property
    def enabled(self) -> bool:
        return self.increase is not None or self.max_p99_ms is not None

    def start(self) -> Pace:
        return Pace(min(max(self.start_batch, self.min_batch), self.max_batch),
                    min(max(self.start_duty, self.min_duty), self.max_duty))

    def slowest(self) -> Pace:
        return Pace(min(self.min_batch, self.max_batch), self.min_duty)

    def slower(self, pace: Pace) -> Pace:
        return Pace(max(min(self.min_batch, self.max_batch), pace.batch // 2), max(self.min_duty, pace.duty / 2))

    def faster(self, pace: Pace, over: float = 1.0) -> Pace:
        """A step up: by half again while the probes are far under the line (`over` < `far_under`), else by a
        quarter of the batch and one duty step."""
        far = over < self.far_under
        batch = pace.batch + max(pace.batch // (2 if far else 4), 10)
        duty = pace.duty * 1.5 if far else pace.duty + self.duty_step
        return Pace(min(self.max_batch, batch), min(self.max_duty, round(duty, 4)))

    def reference(self, baseline: LatencyStats) -> float:
        """The baseline's tail the relative budget multiplies: its p99, but at most `spike_cap` times its p90: one
        slow probe while calibrating (its p99 is nearly its maximum) would loosen the budget until the next
        calibration (measured: a 24 ms baseline p99 beside a 5 ms median let the cleanup triple a quiet
        application's tail)."""
        return min(baseline.p99, self.spike_cap * baseline.p90)

    def line(self, baseline: LatencyStats | None) -> float | None:
        """The relative budget's limit for the probes' p99 in ms (None: no relative budget or no baseline yet)."""
        if self.increase is None or baseline is None or not baseline.n:
            return None
        return self.increase * self.reference(baseline)

    def over(self, recent: LatencyStats, baseline: LatencyStats | None) -> float:
        """How far over the budget the recent probes are: > 1 is over (the worse of the two limits)."""
        ratios = []
        line = self.line(baseline)
        if line is not None:
            ratios.append(recent.p99 / max(line, 0.001))
        if self.max_p99_ms is not None:
            ratios.append(recent.p99 / self.max_p99_ms)
        return max(ratios, default=0.0)

    def describe(self, baseline: LatencyStats | None) -> str:
        parts = []
        if self.increase is not None:
            line = self.line(baseline)
            parts.append(f"p99 <= {self.increase:g}x baseline" + (f" = {line:.1f}ms" if line is not None else ""))
        if self.max_p99_ms is not None:
            parts.append(f"p99 <= {self.max_p99_ms:g}ms")
        return " and ".join(parts)


@dataclass(frozen=True)
class PaceDecision:
    """The pace to delete at next, whether to pause first, and the sentence that says why (empty: unchanged)."""

    pace: Pace
    pause: float = 0.0
    reason: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.reason)


def decide_pace(budget: Budget, pace: Pace, recent: LatencyStats, baseline: LatencyStats | None) -> PaceDecision:
    """Slow down (halve) when the probes taken at `pace` are over the budget, pause at the slowest pace when they
    are `critical` times over (and not just one of them), hold it just under the line, speed up a step while
    further under; too few probes: keep the pace."""
    if recent.n < budget.min_samples:
        return PaceDecision(pace)
    over = budget.over(recent, baseline)
    measured = f"write latency {recent} against a budget of {budget.describe(baseline)}"
    # One slow probe is the p99 of a small window; a pause needs a tenth of them over the line (its p90).
    if over > budget.critical and budget.over(replace(recent, p99=recent.p90), baseline) > 1.0:
        slowest = budget.slowest()
        return PaceDecision(slowest, budget.critical_pause,
                            f"{measured}: {over:.1f}x over, pausing {budget.critical_pause:g}s, then {slowest}")
    if over > 1.0:
        slower = budget.slower(pace)
        if slower == pace:
            return PaceDecision(pace, budget.critical_pause,
                                f"{measured}: over at the slowest pace ({pace}), pausing {budget.critical_pause:g}s")
        return PaceDecision(slower, 0.0, f"{measured}: over, slowing to {slower}")
    if over > budget.hold:  # just under the line: a step up from here overshoots it
        return PaceDecision(pace)
    faster = budget.faster(pace, over)
    if faster == pace:
        return PaceDecision(pace)
    return PaceDecision(faster, 0.0, f"{measured}: within, speeding up to {faster}")


def with_limits(budget: Budget, *, max_batch: int, max_duty: float | None) -> Budget:
    """The budget bounded by the operator's --batch-size and --sleep N% (the pace never exceeds them)."""
    duty = budget.max_duty if max_duty is None else min(budget.max_duty, max_duty)
    return replace(budget, max_batch=max_batch, max_duty=duty, start_duty=min(budget.start_duty, duty),
                   min_duty=min(budget.min_duty, duty))
