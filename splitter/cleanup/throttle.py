"""Pure throttling logic: given what was observed (clock, lag, member health, write latency, pause, counters), go
(at some pace), wait or stop, with a sentence that says why.

Touches nothing: no clock, no database, no files. The worker observes, asks, and obeys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as dtime
from typing import Literal

from splitter.cleanup.budget import Budget, LatencyStats, Pace, decide_pace
from splitter.config import parse_duration

WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
DUTY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def fmt_seconds(seconds: float) -> str:
    """12.3 -> '12.3s', 95 -> '1m35s', 7260 -> '2h01m'."""
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds % 1 else f"{seconds:.0f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@dataclass(frozen=True)
class Window:
    """A daily window in local time, start inclusive, end exclusive; may run across midnight."""

    start: dtime
    end: dtime

    @classmethod
    def parse(cls, text: str) -> Window:
        match = WINDOW.match(text)
        if not match:
            raise ValueError(f"not a window: {text!r} (use HH:MM-HH:MM, e.g. 01:00-05:30)")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            raise ValueError(f"not a window: {text!r} (hours 00-23, minutes 00-59)")
        if (h1, m1) == (h2, m2):
            raise ValueError(f"window {text!r} starts where it ends; leave --window out to run at any time")
        return cls(dtime(h1, m1), dtime(h2, m2))

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    @property
    def crosses_midnight(self) -> bool:
        return self.start > self.end

    @property
    def length(self) -> float:
        """Seconds from start to end."""
        start = self.start.hour * 3600 + self.start.minute * 60
        end = self.end.hour * 3600 + self.end.minute * 60
        return float((end - start) % 86400)

    def contains(self, moment: datetime) -> bool:
        t = moment.time().replace(tzinfo=None)
        if self.crosses_midnight:
            return t >= self.start or t < self.end
        return self.start <= t < self.end

    def seconds_left(self, moment: datetime) -> float:
        """Seconds until the window closes (0 when outside)."""
        if not self.contains(moment):
            return 0.0
        end = moment.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if end <= moment:
            end += timedelta(days=1)
        return (end - moment).total_seconds()


def parse_sleep(text: str) -> tuple[float, float | None]:
    """'--sleep' value: a duration ('200ms', '2s') or a duty cycle ('30%': work at most 30% of the time).

    Returns (sleep seconds, duty fraction or None)."""
    match = DUTY.match(str(text))
    if match:
        percent = float(match.group(1))
        if not 0 < percent <= 100:
            raise ValueError(f"duty cycle {text!r} must be above 0% and at most 100%")
        return 0.0, percent / 100
    return parse_duration(text), None


@dataclass(frozen=True)
class Limits:
    """The operator's limits for one run (all optional)."""

    max_docs: int | None = None
    max_runtime: float | None = None
    max_lag: float | None = None
    sleep: float = 0.0
    duty_cycle: float | None = None
    window: Window | None = None
    budget: Budget | None = None
    lag_poll: float = 2.0
    pause_poll: float = 1.0

    @property
    def budgeted(self) -> bool:
        return self.budget is not None and self.budget.enabled

    @property
    def rests(self) -> bool:
        """Whether the run rests between chunks (--sleep, or a latency budget's pace): it then does all its work
        inside the duty window, one batch at a time."""
        return bool(self.sleep or self.duty_cycle or self.budgeted)


@dataclass(frozen=True)
class Observation:
    """What the worker saw just before asking."""

    now: datetime
    elapsed: float
    deleted: int
    lags: Mapping[str, float] = field(default_factory=dict)
    lag_error: str | None = None
    unhealthy: Mapping[str, str] = field(default_factory=dict)  # secondary host -> its state (DOWN, ROLLBACK, ...)
    paused: str | None = None
    stop_requested: str | None = None
    pace: Pace | None = None                 # the budget's current pace
    latency: LatencyStats | None = None      # probes taken at that pace
    baseline: LatencyStats | None = None     # probes taken while nothing was deleted
    baseline_age: float = 0.0                # seconds since the baseline was measured


Action = Literal["go", "wait", "stop"]


@dataclass(frozen=True)
class Decision:
    """go, wait `seconds` (then ask again), or stop; `reason` is a sentence for the operator."""

    action: Action
    reason: str = ""
    seconds: float = 0.0
    kind: str = ""
    pace: Pace | None = None  # the pace to delete at from now on (None: as before)

    @classmethod
    def go(cls, reason: str = "", kind: str = "", pace: Pace | None = None) -> Decision:
        return cls("go", reason, 0.0, kind, pace)

    @classmethod
    def wait(cls, reason: str, seconds: float, kind: str, pace: Pace | None = None) -> Decision:
        return cls("wait", reason, max(seconds, 0.0), kind, pace)

    @classmethod
    def stop(cls, reason: str, kind: str) -> Decision:
        return cls("stop", reason, 0.0, kind)


class Throttler:
    """Decides from an Observation; holds only the limits."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def opening(self, now: datetime) -> Decision:
        """Before anything is touched: stop when outside the window, else go."""
        window = self.limits.window
        if window is not None and not window.contains(now):
            return Decision.stop(f"outside the window {window} (now {now:%H:%M}); nothing to do until "
                                 f"{window.start:%H:%M}", "window")
        return Decision.go()

    def decide(self, obs: Observation) -> Decision:
        lim = self.limits
        if obs.stop_requested:
            return Decision.stop(obs.stop_requested, "signal")
        if lim.max_docs is not None and obs.deleted >= lim.max_docs:
            return Decision.stop(f"reached --max-docs {lim.max_docs}", "max-docs")
        if lim.max_runtime is not None and obs.elapsed >= lim.max_runtime:
            return Decision.stop(f"reached --max-runtime {fmt_seconds(lim.max_runtime)}", "max-runtime")
        if lim.window is not None and not lim.window.contains(obs.now):
            return Decision.stop(f"the window {lim.window} closed (now {obs.now:%H:%M})", "window")
        if obs.paused:
            return Decision.wait(f"paused: {obs.paused}", self._cap(lim.pause_poll, obs), "pause")
        if lim.max_lag is not None:
            lag = self._lag(obs, lim.max_lag)
            if lag is not None:
                return lag
        if lim.budget is not None and lim.budget.enabled and obs.pace is not None:
            return self._budget(lim.budget, obs)
        return Decision.go()

    def _lag(self, obs: Observation, max_lag: float) -> Decision | None:
        """Wait while the lag cannot be read, a secondary is not healthy, or one lags more than --max-lag."""
        poll = self._cap(self.limits.lag_poll, obs)
        if obs.lag_error:
            return Decision.wait(f"cannot read replication lag ({obs.lag_error}); waiting", poll, "lag")
        if obs.unhealthy:
            host, state = sorted(obs.unhealthy.items())[0]
            others = f" (and {len(obs.unhealthy) - 1} more)" if len(obs.unhealthy) > 1 else ""
            return Decision.wait(f"secondary {host}{others} is {state}, not a healthy SECONDARY: its lag is unknown, "
                                 f"so --max-lag waits until it is back", poll, "health")
        over = {host: lag for host, lag in obs.lags.items() if lag > max_lag}
        if over:
            host, lag = max(over.items(), key=lambda item: item[1])
            others = f" (and {len(over) - 1} more)" if len(over) > 1 else ""
            return Decision.wait(f"secondary {host}{others} lags {fmt_seconds(lag)}, more than --max-lag "
                                 f"{fmt_seconds(max_lag)}; waiting", poll, "lag")
        return None

    def _budget(self, budget: Budget, obs: Observation) -> Decision:
        """Measure a baseline first (and again every `recalibrate_every`), then keep to the budget's pace."""
        assert obs.pace is not None
        if obs.baseline is None or obs.baseline_age >= budget.recalibrate_every:
            again = "again " if obs.baseline is not None else ""
            return Decision.wait(f"measuring the write latency {again}without deletes for "
                                 f"{fmt_seconds(budget.calibrate)} (the baseline of the latency budget)",
                                 self._cap(budget.calibrate, obs), "calibrate")
        paced = decide_pace(budget, obs.pace, obs.latency or LatencyStats(0), obs.baseline)
        if paced.pause:
            return Decision.wait(paced.reason, self._cap(paced.pause, obs), "latency", paced.pace)
        if paced.changed:
            return Decision.go(paced.reason, "latency", paced.pace)
        return Decision.go()

    def _cap(self, seconds: float, obs: Observation) -> float:
        """Never wait past the runtime limit or the window's end."""
        return min(seconds, self.time_left(obs.now, obs.elapsed))

    def time_left(self, now: datetime, elapsed: float) -> float:
        left = float("inf")
        if self.limits.max_runtime is not None:
            left = min(left, max(self.limits.max_runtime - elapsed, 0.0))
        if self.limits.window is not None:
            left = min(left, self.limits.window.seconds_left(now))
        return left

    def batch_quota(self, deleted: int, batch_size: int) -> int:
        """How many candidates the next batch may take so --max-docs is never passed."""
        if self.limits.max_docs is None:
            return batch_size
        return max(0, min(batch_size, self.limits.max_docs - deleted))

    def rest_after(self, batch_seconds: float, now: datetime, elapsed: float, pace: Pace | None = None) -> float:
        """Pause after a batch: --sleep, or enough to keep the duty cycle (the budget's pace when it has one);
        never past the limits."""
        rest = self.limits.sleep
        duty = pace.duty if pace is not None and self.limits.budgeted else self.limits.duty_cycle
        if duty is not None and duty < 1:
            rest = max(rest, batch_seconds * (1 - duty) / duty)
        return min(rest, self.time_left(now, elapsed))
