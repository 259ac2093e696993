"""The catch-up position: one JSON file per target set in the state dir (atomic write, mode 0600).

It holds where the change stream resumes (resume token, else the split optime), the counters, and the
last measured lag and rate so that `status` can show them without talking to the cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bson import Timestamp

from splitter.errors import OperationalError
from splitter.store.atomic import atomic_write_json, now_iso
from splitter.store.files import StateFiles

FORMAT = 1
COUNTERS = ("events", "applied", "deleted", "skipped", "unclaimed", "index_ops", "ddl_ops", "lookups",
            "stale_removed", "skipped_by_operator")


def ts_to_json(ts: Timestamp | None) -> dict[str, int] | None:
    return None if ts is None else {"t": ts.time, "i": ts.inc}


def ts_from_json(doc: dict[str, int] | None) -> Timestamp | None:
    return None if doc is None else Timestamp(int(doc["t"]), int(doc["i"]))


def token_time(token: dict[str, Any] | None) -> Timestamp | None:
    """The cluster time a resume token stands for (its KeyString starts with 0x82 + 8-byte Timestamp)."""
    data = (token or {}).get("_data")
    if not isinstance(data, str) or len(data) < 18 or data[:2].upper() != "82":
        return None
    try:
        return Timestamp(int(data[2:10], 16), int(data[10:18], 16))
    except ValueError:
        return None


def next_timestamp(ts: Timestamp) -> Timestamp:
    """The first Timestamp after `ts` (the stream starts there: split optime + 1)."""
    return Timestamp(ts.time + 1, 0) if ts.inc >= 0xFFFFFFFF else Timestamp(ts.time, ts.inc + 1)


@dataclass
class Position:
    """Where catch-up into `target_set` stands. `resume_token` None means: start after `split_optime`."""

    target_set: str
    split_optime: Timestamp
    resume_token: dict[str, Any] | None = None
    resume_time: Timestamp | None = None
    last_event_time: Timestamp | None = None
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    lag_seconds: float | None = None
    lag_events: int | None = None
    rate_per_second: float | None = None
    source_rate_per_second: float | None = None
    drain_estimate_seconds: float | None = None
    skip_tokens: list[str] = field(default_factory=list)  # unsupported events the operator chose to skip
    updated_at: str | None = None

    @property
    def applied_through(self) -> Timestamp:
        """Every change up to this cluster time is applied to the target."""
        return self.resume_time or self.split_optime

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "target_set": self.target_set,
            "split_optime": ts_to_json(self.split_optime),
            "resume_token": (self.resume_token or {}).get("_data"),
            "resume_time": ts_to_json(self.resume_time),
            "last_event_time": ts_to_json(self.last_event_time),
            "counters": dict(self.counters),
            "lag_seconds": self.lag_seconds,
            "lag_events": self.lag_events,
            "rate_per_second": self.rate_per_second,
            "source_rate_per_second": self.source_rate_per_second,
            "drain_estimate_seconds": self.drain_estimate_seconds,
            "skip_tokens": list(self.skip_tokens),
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Position:
        if doc.get("format") != FORMAT:
            raise OperationalError(f"catch-up position file has format {doc.get('format')!r}, expected {FORMAT}")
        split = ts_from_json(doc["split_optime"])
        assert split is not None
        token = doc.get("resume_token")
        return cls(
            target_set=doc["target_set"],
            split_optime=split,
            resume_token={"_data": token} if token else None,
            resume_time=ts_from_json(doc.get("resume_time")),
            last_event_time=ts_from_json(doc.get("last_event_time")),
            counters={**dict.fromkeys(COUNTERS, 0), **doc.get("counters", {})},
            lag_seconds=doc.get("lag_seconds"),
            lag_events=doc.get("lag_events"),
            rate_per_second=doc.get("rate_per_second"),
            source_rate_per_second=doc.get("source_rate_per_second"),
            drain_estimate_seconds=doc.get("drain_estimate_seconds"),
            skip_tokens=list(doc.get("skip_tokens") or []),
            updated_at=doc.get("updated_at"),
        )


class PositionStore:
    """Reads and writes one stream's position file in the state dir (`catchup-<stream>.json`)."""

    def __init__(self, state_dir: Path, stream: str) -> None:
        self.files = StateFiles(state_dir)
        self.dir = self.files.root
        self.path = self.files.catchup_position(stream)

    def load(self) -> Position | None:
        if not self.path.exists():
            return None
        try:
            return Position.from_json(json.loads(self.path.read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            raise OperationalError(f"catch-up position file {self.path} is unreadable: {exc}",
                                   hint="it is written atomically, so this means it was edited by hand") from exc

    def save(self, position: Position) -> None:
        position.updated_at = now_iso()
        self.files.ensure()
        atomic_write_json(self.path, position.to_json())


def read_status(state_dir: Path, stream: str) -> dict[str, Any] | None:
    """What `status` shows for a stream (no cluster access): counters, lag, rate, position; None if not started."""
    position = PositionStore(state_dir, stream).load()
    if position is None:
        return None
    doc = position.to_json()
    doc["applied_through"] = ts_to_json(position.applied_through)
    return doc
