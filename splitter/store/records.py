"""What steps hand each other across crashes, as typed, immutable records (no string keys into a dict).

Each record is written into the checkpoint by the step that learns it and read by the steps after it; the
point of no return is a record of its own, written before the first irreversible action.
"""

from __future__ import annotations

from typing import Any, Literal

from bson import Timestamp, json_util
from pydantic import BaseModel, ConfigDict, Field


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OpTime(Record):
    """An oplog position: BSON Timestamp (seconds `t`, increment `i`) and, where known, the election term."""

    t: int
    i: int
    term: int | None = None

    @property
    def ts(self) -> Timestamp:
        return Timestamp(self.t, self.i)

    @classmethod
    def of(cls, ts: Timestamp, term: int | None = None) -> OpTime:
        return cls(t=ts.time, i=ts.inc, term=term)

    def __str__(self) -> str:
        return f"{self.t}:{self.i}" + (f" (term {self.term})" if self.term is not None else "")


class MemberRecord(Record):
    """One member of a replica-set config, with everything rollback must put back."""

    id: int
    host: str
    priority: float = 1.0
    votes: int = 1
    arbiter: bool = False
    hidden: bool = False
    secondary_delay_secs: int = 0
    tags: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> MemberRecord:
        return cls(id=int(doc["_id"]), host=str(doc["host"]), priority=float(doc.get("priority", 1)),
                   votes=int(doc.get("votes", 1)), arbiter=bool(doc.get("arbiterOnly", False)),
                   hidden=bool(doc.get("hidden", False)),
                   secondary_delay_secs=int(doc.get("secondaryDelaySecs", doc.get("slaveDelay", 0)) or 0),
                   tags={str(k): str(v) for k, v in (doc.get("tags") or {}).items()})


class OriginalConfig(Record):
    """The source set's config before the split (preflight): rollback restores its members from it."""

    version: int
    members: tuple[MemberRecord, ...]

    def member(self, host: str) -> MemberRecord | None:
        return next((m for m in self.members if m.host == host), None)


class SplitPoint(Record):
    """Both moving nodes' last oplog entries while standalone; the larger is the split optime."""

    optime: OpTime
    oplog_ends: dict[str, OpTime]


class TargetConfig(Record):
    """The new set's config document, exactly as written to both moving nodes (canonical Extended JSON)."""

    document: str

    @classmethod
    def of(cls, doc: dict[str, Any]) -> TargetConfig:
        return cls(document=json_util.dumps(doc, json_options=json_util.CANONICAL_JSON_OPTIONS))

    def doc(self) -> dict[str, Any]:
        return json_util.loads(self.document)


class PointOfNoReturn(Record):
    """Recorded just before the first action that cannot be undone; rollback is refused from then on."""

    step: str
    at: str
    detail: str


class GatePass(Record):
    """A gate the run has passed, and what confirmed it."""

    at: str
    by: str


CutoverState = Literal["split", "switching", "switched", "reversing", "reversed", "final"]
SwitchPhase = Literal["started", "fenced", "drained", "published", "streaming", "verified"]


class FenceRecord(Record):
    """A collection's validator settings before splitter fenced it (canonical Extended JSON), restored exactly."""

    set_name: str
    namespace: str
    validator: str | None = None            # None: the collection had no validator
    level: str | None = None
    action: str | None = None


class SwitchRecord(Record):
    """One traffic switch of the moving residues from `from_set` to `to_set` (fence, drain, open, publish)."""

    epoch: int
    from_set: str
    to_set: str
    started_at: str
    fence_optime: OpTime | None = None      # from_set's last write once its fence was in place
    drain_optime: OpTime | None = None      # the stream from_set -> to_set applied everything up to here
    open_optime: OpTime | None = None       # to_set's last write just before its fence was lifted
    published_at: str | None = None
    verified: bool | None = None
    verify_summary: str | None = None
    phase: SwitchPhase = "started"          # the last postcondition reached (checkpointed after it)
    drain_stream: str | None = None         # the stream from_set -> to_set drained at this switch
    back_stream: str | None = None          # the stream to_set -> from_set started at this switch
    stray_deletes: tuple[str, ...] = ()     # deletes of the moving half that reached from_set after the switch


class CutoverRecord(Record):
    """Where the traffic of the moving residues stands: who owns it, who is fenced, every switch so far."""

    state: CutoverState = "split"
    epoch: int = 0
    owner: str
    fenced: tuple[str, ...] = ()
    switches: tuple[SwitchRecord, ...] = ()
    finalized_at: str | None = None
    fences: tuple[FenceRecord, ...] = ()    # the original validator settings of every fenced collection
    history_window: int | None = None       # minSnapshotHistoryWindowInSeconds before the verification raised it

    @property
    def last_switch(self) -> SwitchRecord | None:
        return self.switches[-1] if self.switches else None
