"""What the worker shows the throttler: clock, replication lag and member health, the latency probe's samples at
the current pace and its baseline, the pause and stop flags.

Touches this set through the lag reader (replSetGetStatus, the oplog) and the probe (its own document), both only
when the limits ask for them and never in a dry run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from splitter.cleanup.budget import LatencyStats, Pace
from splitter.cleanup.control import RunControl
from splitter.cleanup.throttle import Decision, Limits, Observation
from splitter.cluster.lag import LagReading

# Samples older than this do not speak for the current pace, however long it has been kept.
WINDOW_SECONDS = 5.0


class LagSource(Protocol):
    def read(self) -> LagReading: ...


class LatencySource(Protocol):
    def start(self) -> object: ...

    def since(self, moment: float) -> list[float]: ...

    def stop(self) -> None: ...


class Observer:
    """Builds Observations and adopts the throttler's pace; the probe runs only while the budget is on."""

    def __init__(self, limits: Limits, control: RunControl, lag: LagSource, probe: LatencySource | None, *,
                 active: bool, clock: Callable[[], datetime] = datetime.now,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.control = control
        self.lag = lag
        self.active = active  # False in a dry run: nothing is deleted, so nothing is measured
        self.probe = probe if active and limits.budgeted else None
        self.clock = clock
        self.monotonic = monotonic
        self.pace: Pace | None = limits.budget.start() if self.probe is not None and limits.budget else None
        self.baseline: LatencyStats | None = None
        self._paced_since = self._baseline_at = monotonic()

    def __enter__(self) -> Observer:
        if self.probe is not None:
            self.probe.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self.probe is not None:
            self.probe.stop()

    def observe(self, elapsed: float, deleted: int) -> Observation:
        reading = LagReading()
        if self.limits.max_lag is not None and self.active:
            reading = self.lag.read()
        latency = None
        if self.probe is not None:
            now = self.monotonic()
            latency = LatencyStats.of(self.probe.since(max(self._paced_since, now - WINDOW_SECONDS)))
        return Observation(now=self.clock(), elapsed=elapsed, deleted=deleted, lags=reading.lags,
                           lag_error=reading.error, unhealthy=reading.unhealthy, paused=self.control.paused(),
                           stop_requested=self.control.stop_requested, pace=self.pace, latency=latency,
                           baseline=self.baseline, baseline_age=self.monotonic() - self._baseline_at)

    def adopt(self, decision: Decision) -> bool:
        """Take the decision's pace (probes count for a pace only from when it began); True when it changed."""
        if decision.pace is None or decision.pace == self.pace:
            return False
        self.pace = decision.pace
        self._paced_since = self.monotonic()
        return True

    def calibrated(self, began: float) -> None:
        """The probes since `began` (nothing was deleted meanwhile) are the new baseline."""
        if self.probe is not None:
            self.baseline = LatencyStats.of(self.probe.since(began))
            self._baseline_at = self._paced_since = self.monotonic()
