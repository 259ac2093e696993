"""Whether a catch-up keeps up (issue 15 point 2): lag, apply rate, the source's write rate, drain estimate.

Touches: reads of the source only (`hello` for its last write, counts of `local.oplog.rs` entries by timestamp).
Lag events and the source's rate are counted in the same unit, oplog entries of the routed databases (both
halves: the oplog does not say which half an update or a delete belongs to), so that the drain estimate is
`lag / (rate at which the lag is consumed)`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from bson import Timestamp
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from splitter.catchup.source import events_behind, last_write_ts
from splitter.store.catchup_position import Position

log = logging.getLogger(__name__)

RATE_WINDOW = 30.0


class Rates:
    """Keeps the samples between measurements; `measure` returns the fields of a `catchup` event."""

    def __init__(self, source: MongoClient, databases: Iterable[str], events: int) -> None:
        self.source, self.databases = source, sorted(databases)
        self._samples: deque[tuple[float, int]] = deque([(time.monotonic(), events)])
        self._last: tuple[float, Timestamp, int] | None = None  # (when, source's last write, lag events)

    def apply_rate(self, events: int, sample: bool = False) -> float:
        """Change events applied per second over the last RATE_WINDOW seconds."""
        now = time.monotonic()
        if sample:
            self._samples.append((now, events))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW:
            self._samples.popleft()
        t0, e0 = self._samples[0]
        return round((events - e0) / (now - t0), 1) if now - t0 > 0.5 else 0.0

    def lag(self, through: Timestamp) -> tuple[float | None, int | None]:
        latest = self._latest()
        if latest is None:
            return None, None
        return self._lag(latest, through)

    def _latest(self) -> Timestamp | None:
        try:
            return last_write_ts(self.source)
        except PyMongoError as exc:
            log.info("catch-up lag: cannot read the source's last write: %s", exc)
            return None

    def _lag(self, latest: Timestamp, through: Timestamp) -> tuple[float, int | None]:
        if latest <= through:
            return 0.0, 0
        return float(max(latest.time - through.time, 0)), events_behind(self.source, self.databases, through)

    def measure(self, position: Position) -> dict[str, Any]:
        now, latest = time.monotonic(), self._latest()
        rate = self.apply_rate(position.counters["events"])
        fields: dict[str, Any] = {"lag_seconds": None, "lag_events": None, "rate_per_second": rate,
                                  "source_rate_per_second": None, "drain_estimate_seconds": None, "keeping_up": None}
        if latest is None:
            return fields
        seconds, events = self._lag(latest, position.applied_through)
        fields.update(lag_seconds=seconds, lag_events=events)
        last, self._last = self._last, (now, latest, events or 0)
        if last is None or events is None or now - last[0] < 0.5:
            return fields
        written = events_behind(self.source, self.databases, last[1], upto=latest) if latest > last[1] else 0
        if written is None:
            return fields
        dt = now - last[0]
        source_rate = written / dt
        consumed = source_rate + (last[2] - events) / dt  # entries/s by which the catch-up moves forward
        fields["source_rate_per_second"] = round(source_rate, 1)
        fields["drain_estimate_seconds"] = (0.0 if events == 0 else
                                            round(events / consumed, 1) if consumed > 0 else None)
        fields["keeping_up"] = events == 0 or consumed >= 0.95 * source_rate
        return fields

    @staticmethod
    def describe(fields: dict[str, Any]) -> str:
        lag = ("lag ?" if fields.get("lag_seconds") is None
               else f"lag {fields['lag_seconds']:g}s / {fields.get('lag_events') or 0:,} events")
        source = fields.get("source_rate_per_second")
        drain = fields.get("drain_estimate_seconds")
        return (f"{lag}; {fields.get('rate_per_second') or 0:,.1f} events/s applied"
                + ("" if source is None else f", source writes {source:,.1f} entries/s")
                + ("" if drain is None else f", drains in ~{drain:g}s")
                + ("" if fields.get("keeping_up") in (None, True) else " [NOT keeping up]"))
