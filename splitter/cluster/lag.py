"""Replication lag of each secondary, read from the primary (replSetGetStatus + the primary's oplog).

A secondary's lag is how long the oldest write it has not applied has been waiting: the primary's clock
(status `date`) minus the wall time of the first oplog entry after the secondary's optime. Unlike the plain
optimeDate difference this does not jump to "time since the previous write" after every sparse write, and an
fsyncLocked secondary shows a lag that grows with the clock. Without read access to local.oplog.rs it falls
back to the optimeDate difference.

Members that are not a healthy PRIMARY, SECONDARY or ARBITER (DOWN, RECOVERING, ROLLBACK, STARTUP2, unreachable)
have no meaningful lag: they are listed in `unhealthy` with their state, for callers that must not treat them as
"not lagging".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

HEALTHY = ("PRIMARY", "SECONDARY", "ARBITER")


@dataclass(frozen=True)
class LagReading:
    """Seconds behind per secondary host, or why it could not be read."""

    lags: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    unhealthy: dict[str, str] = field(default_factory=dict)  # host -> state, e.g. "DOWN", "ROLLBACK"

    @property
    def worst(self) -> float:
        return max(self.lags.values(), default=0.0)


def _wall(entry: dict[str, Any]) -> datetime:
    wall = entry.get("wall")
    if isinstance(wall, datetime):
        return wall.replace(tzinfo=None)
    return datetime.fromtimestamp(entry["ts"].time, timezone.utc).replace(tzinfo=None)


class LagReader:
    """Reads lag through a replica-set client (commands go to the primary)."""

    def __init__(self, client: MongoClient) -> None:
        self.client = client
        self._oplog_readable = True

    def read(self) -> LagReading:
        try:
            status = self.client.admin.command("replSetGetStatus")
        except PyMongoError as exc:
            return LagReading(error=f"replSetGetStatus failed: {exc}")
        members = status.get("members", [])
        primary = next((m for m in members if m.get("stateStr") == "PRIMARY"), None)
        if primary is None:
            return LagReading(error="the set has no primary")
        now = status["date"].replace(tzinfo=None)
        lags: dict[str, float] = {}
        unhealthy: dict[str, str] = {}
        for member in members:
            state = member.get("stateStr", "UNKNOWN")
            if not member.get("health", 1):
                unhealthy[member["name"]] = "unreachable" if state.startswith("(") else f"{state} (unreachable)"
                continue
            if state not in HEALTHY:
                unhealthy[member["name"]] = state
            if state != "SECONDARY":
                continue
            try:
                lags[member["name"]] = self._lag(member, primary, now)
            except PyMongoError as exc:
                return LagReading(error=f"reading the oplog failed: {exc}")
        return LagReading(lags, unhealthy=unhealthy)

    def _lag(self, member: dict[str, Any], primary: dict[str, Any], now: datetime) -> float:
        ts = member["optime"]["ts"]
        if ts >= primary["optime"]["ts"]:
            return 0.0
        if self._oplog_readable:
            try:
                entry = self.client.local["oplog.rs"].find_one({"ts": {"$gt": ts}}, {"ts": 1, "wall": 1})
            except OperationFailure as exc:
                if exc.code not in (13, 8000):  # Unauthorized / AtlasError: fall back
                    raise
                self._oplog_readable = False
            else:
                if entry is not None:
                    return max((now - _wall(entry)).total_seconds(), 0.0)
        behind = primary["optimeDate"] - member["optimeDate"]
        return max(behind.total_seconds(), 0.0)
