"""Typed, immutable snapshots of what the inspector read. Nothing here talks to a server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bson import Timestamp


@dataclass(frozen=True)
class MemberConfig:
    id: int
    host: str
    priority: float
    votes: int
    arbiter: bool

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> MemberConfig:
        return cls(id=int(doc["_id"]), host=str(doc["host"]), priority=float(doc.get("priority", 1)),
                   votes=int(doc.get("votes", 1)), arbiter=bool(doc.get("arbiterOnly", False)))


@dataclass(frozen=True)
class ReplSetConfig:
    name: str
    version: int
    term: int
    members: tuple[MemberConfig, ...]
    raw: dict[str, Any]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ReplSetConfig:
        return cls(name=str(doc["_id"]), version=int(doc["version"]), term=int(doc.get("term", -1)),
                   members=tuple(MemberConfig.from_doc(m) for m in doc["members"]), raw=dict(doc))

    def by_host(self, host: str) -> MemberConfig | None:
        return next((m for m in self.members if m.host == host), None)

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(m.host for m in self.members)


@dataclass(frozen=True)
class MemberStatus:
    host: str
    state: str
    health: bool
    optime: Timestamp | None
    is_self: bool = False


@dataclass(frozen=True)
class ReplSetStatus:
    name: str
    members: tuple[MemberStatus, ...]

    @property
    def primary(self) -> MemberStatus | None:
        return next((m for m in self.members if m.state == "PRIMARY"), None)

    def state_of(self, host: str) -> str | None:
        m = next((m for m in self.members if m.host == host), None)
        return m.state if m else None

    def states(self) -> dict[str, str]:
        return {m.host: m.state for m in self.members}


@dataclass(frozen=True)
class OplogEntry:
    ts: Timestamp
    term: int | None
    wall: Any

    def describe(self) -> str:
        return f"{self.ts.time}:{self.ts.inc} (term {self.term})"

    def as_json(self) -> dict[str, Any]:
        return {"t": self.ts.time, "i": self.ts.inc, "term": self.term}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OplogEntry:
        return cls(ts=Timestamp(data["t"], data["i"]), term=data.get("term"), wall=None)
