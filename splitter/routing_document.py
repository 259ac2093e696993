"""The routing document splitter publishes for applications: where each key's writes go now.

It lives in database `splitter`, collection `routing`, `_id: "routing"`, on every set of the split, written with
`w: majority`. An application polls (or watches) it on the sets it knows and follows the copy with the highest
`epoch`: `owners[str(key % modulus)]` names the set for a key (MongoDB's `$mod`: truncated toward zero, so a
negative key has a negative residue and no owner). While `fenced` is true a switch is in progress: writes of the
`moving` residues are refused (DocumentValidationFailure, code 121) until the next epoch names their new owner;
re-read the document and retry.

    {_id: "routing", epoch: 3, state: "switched", fenced: false, fenced_sets: ["rs1"], modulus: 2,
     owners: {"0": "rs1", "1": "rs2"}, moving: [1], key: "user_id", keys: {"app.orders": "customer_id"},
     databases: ["app"], exclude: ["app.settings"], sets: {"rs1": ["db1:27017", ...], "rs2": [...]},
     updated_at: ISODate(...)}
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from splitter.routing import Routing, server_residue

DATABASE = "splitter"
COLLECTION = "routing"
DOCUMENT_ID = "routing"
PublishedState = Literal["split", "switching", "switched", "reversing", "reversed", "final"]


class RoutingDocument(BaseModel):
    """One published routing: the owner of every residue now, and whether a switch is in progress."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    epoch: int = Field(ge=0)
    state: PublishedState
    fenced: bool = False
    fenced_sets: tuple[str, ...] = ()
    modulus: int = Field(ge=2)
    owners: dict[str, str]
    moving: tuple[int, ...] = ()
    key: str
    keys: dict[str, str] = Field(default_factory=dict)
    databases: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    sets: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    updated_at: datetime | None = None

    @classmethod
    def build(cls, routing: Routing, *, epoch: int, state: PublishedState, owners: dict[int, str],
              moving: tuple[int, ...], sets: dict[str, list[str]], fenced: bool = False,
              fenced_sets: tuple[str, ...] = ()) -> RoutingDocument:
        """The document for `routing` with the owners of this moment (during a split the source keeps the
        moving residues until the switch publishes their new owner)."""
        keys = {db: key for db, key in routing.databases.items() if key} | dict(routing.collections)
        return cls(epoch=epoch, state=state, fenced=fenced, fenced_sets=fenced_sets, modulus=routing.modulus,
                   owners={str(r): owners[r] for r in sorted(owners)}, moving=tuple(sorted(moving)),
                   key=routing.default_key, keys=keys, databases=tuple(sorted(routing.databases)),
                   exclude=tuple(sorted(routing.exclude)), sets={s: tuple(h) for s, h in sets.items()},
                   updated_at=datetime.now(timezone.utc))

    def to_bson(self) -> dict[str, Any]:
        doc = self.model_dump()
        doc.update(_id=DOCUMENT_ID, fenced_sets=list(self.fenced_sets), moving=list(self.moving),
                   databases=list(self.databases), exclude=list(self.exclude),
                   sets={s: list(h) for s, h in self.sets.items()})
        return doc

    @classmethod
    def from_bson(cls, doc: dict[str, Any]) -> RoutingDocument:
        return cls.model_validate({k: v for k, v in doc.items() if k != "_id"})

    # -- what an application asks -----------------------------------------------------------------------
    def key_for(self, database: str, collection: str) -> str:
        return self.keys.get(f"{database}.{collection}") or self.keys.get(database) or self.key

    def owner(self, value: Any) -> str | None:
        """The set that takes writes of a key value now (None: a missing, non-integer or negative key)."""
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        return self.owners.get(str(server_residue(value, self.modulus)))

    def is_moving(self, value: Any) -> bool:
        return (isinstance(value, int) and not isinstance(value, bool)
                and server_residue(value, self.modulus) in self.moving)


def newest(documents: list[RoutingDocument | None]) -> RoutingDocument | None:
    """The copy with the highest epoch (sets are written one after the other; the newer one wins)."""
    present = [d for d in documents if d is not None]
    return max(present, key=lambda d: (d.epoch, d.updated_at or datetime.min.replace(tzinfo=timezone.utc)),
               default=None)
