"""Pure translation of one rs1 change event into what the target set must do to keep its half in step.

No I/O here. The rules (see `translate`):
- insert / replace / update (the stream uses fullDocument=updateLookup):
  the document's key routes to the target -> ReplaceOne(_id, doc, upsert) ("applied");
  it routes to the other set -> DeleteOne(_id) if the key may have just moved out of the target's half
  (replace, or an update touching the key), otherwise nothing ("skipped");
  no set claims it (missing / non-integer key) -> never written to the target; DeleteOne(_id) if the key
  may have just moved out of the target's half ("unclaimed");
  update whose document is already gone (fullDocument None) -> DeleteOne(_id).
  Every DeleteOne also carries the target's half filter (see `delete_op`).
- delete -> DeleteOne(_id + the target's half filter) (no pre-image: the target's own copy tells the half).
- createIndexes / dropIndexes on a routed collection -> an IndexOp, applied as such.
- drop / rename / dropDatabase / invalidate touching a routed collection -> UnsupportedChange.
- anything on a namespace that is not routed, create and the like -> ignored ("skipped"); modify (collMod)
  and create with options are ignored with a note for the operator.
Both ReplaceOne(upsert) and DeleteOne are idempotent, which makes re-applying a batch after a crash safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pymongo import DeleteOne, ReplaceOne

from splitter.errors import OperationalError
from splitter.routing import Routing

WriteOp = ReplaceOne | DeleteOne
Outcome = Literal["applied", "skipped", "unclaimed", "index"]

DOCUMENT_EVENTS = ("insert", "replace", "update")
INDEX_EVENTS = ("createIndexes", "dropIndexes")
FATAL_EVENTS = ("drop", "rename", "dropDatabase", "invalidate")


class UnsupportedChange(OperationalError):
    """rs1 changed a routed namespace in a way the catch-up cannot replay (drop, rename, dropDatabase)."""


@dataclass(frozen=True)
class IndexOp:
    """Create (full index specs from the event) or drop (by name) indexes on the target collection."""

    action: Literal["create", "drop"]
    specs: tuple[dict[str, Any], ...]

    @property
    def names(self) -> list[str]:
        return [spec["name"] for spec in self.specs]

    def create_specs(self) -> list[dict[str, Any]]:
        return [dict(spec) for spec in self.specs]


@dataclass
class Translation:
    """The result for one event: target writes for `database.collection`, or an index op, and its outcome."""

    database: str
    collection: str
    outcome: Outcome
    writes: list[WriteOp] = field(default_factory=list)
    index: IndexOp | None = None
    note: str | None = None  # something the operator should know (a change that is not replayed)

    @property
    def namespace(self) -> tuple[str, str]:
        return self.database, self.collection


def get_path(doc: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or None when any part is missing or not a sub-document."""
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _touches(path: str, key: str) -> bool:
    return path == key or path.startswith(key + ".") or key.startswith(path + ".")


def update_touches_key(event: Mapping[str, Any], key: str) -> bool:
    """True if an update event set, removed or truncated the key field (or a parent / child of it)."""
    desc = event.get("updateDescription") or {}
    paths = [*desc.get("updatedFields", {}), *desc.get("removedFields", []),
             *(t.get("field", "") for t in desc.get("truncatedArrays", []))]
    return any(_touches(p, key) for p in paths)


def delete_op(_id: Any, key: str, routing: Routing, target_set: str) -> DeleteOne:
    """Delete `_id` from the target only if the target's copy is in the target's half.

    Every copy the target must lose is in its half (anything that became the target's was upserted first), so
    the filter changes nothing for the target's half; it leaves the other half's copies (still on the target
    until cleanup) alone, which keeps `deleted` counting only the target's documents.
    """
    half = routing.half_filter(key, target_set)
    return DeleteOne({"$and": [{"_id": _id}, half]} if key == "_id" else {"_id": _id, **half})


def _fatal(event: Mapping[str, Any], routing: Routing) -> UnsupportedChange | None:
    op = event["operationType"]
    ns = event.get("ns") or {}
    db, coll = ns.get("db"), ns.get("coll")
    if op == "invalidate":
        return UnsupportedChange("catch-up: the change stream on rs1 was invalidated (a watched namespace was "
                                 "dropped or renamed)", hint=_FATAL_HINT)
    if op == "dropDatabase":
        if db in routing.databases:
            return UnsupportedChange(f"catch-up: database {db!r} was dropped on rs1 during the split",
                                     hint=_FATAL_HINT)
        return None
    to = (event.get("to") or (event.get("operationDescription") or {}).get("to") or {})
    touched = [(db, coll)] + ([(to.get("db"), to.get("coll"))] if to else [])
    for tdb, tcoll in touched:
        if tdb and tcoll and routing.routed(tdb, tcoll) is not None:
            verb = "dropped" if op == "drop" else "renamed"
            target = f" to {to.get('db')}.{to.get('coll')}" if op == "rename" else ""
            return UnsupportedChange(f"catch-up: routed collection {db}.{coll} was {verb}{target} on rs1 during "
                                     "the split; this cannot be replayed", hint=_FATAL_HINT)
    return None


_FATAL_HINT = ("drop/rename of routed collections is not supported while a split is in progress: restore the "
               "namespace on rs1 and re-split, or repeat the change on rs2 by hand and remove the catch-up position")


def _document(event: Mapping[str, Any], routing: Routing, target_set: str, db: str, coll: str,
              key: str) -> Translation:
    op = event["operationType"]
    _id = event["documentKey"]["_id"]
    doc = event.get("fullDocument")
    if doc is None:  # update whose document was deleted before the lookup
        return Translation(db, coll, "applied", [delete_op(_id, key, routing, target_set)])
    owner = routing.owner(get_path(doc, key))
    if owner == target_set:
        return Translation(db, coll, "applied", [ReplaceOne({"_id": _id}, doc, upsert=True)])
    # The document is not the target's. It may have been until this event if the key just changed.
    maybe_moved = op == "replace" or (op == "update" and update_touches_key(event, key))
    writes: list[WriteOp] = [delete_op(_id, key, routing, target_set)] if maybe_moved else []
    if owner is None:
        return Translation(db, coll, "unclaimed", writes)
    return Translation(db, coll, "applied" if writes else "skipped", writes)


def _index(event: Mapping[str, Any], db: str, coll: str) -> Translation:
    specs = tuple((event.get("operationDescription") or {}).get("indexes") or ())
    action: Literal["create", "drop"] = "create" if event["operationType"] == "createIndexes" else "drop"
    if action == "drop":
        specs = tuple(s for s in specs if s.get("name") != "_id_")
    if not specs:
        return Translation(db, coll, "skipped")
    return Translation(db, coll, "index", index=IndexOp(action, specs))


def is_fence_change(event: Mapping[str, Any]) -> bool:
    """A collMod that puts splitter's write fence up: its validator is (or ends with) `{$nor: [<half>]}`."""
    validator = (event.get("operationDescription") or {}).get("validator")
    if not isinstance(validator, Mapping):
        return False
    if list(validator) == ["$and"] and validator["$and"]:
        validator = validator["$and"][-1]
    return isinstance(validator, Mapping) and list(validator) == ["$nor"] and len(validator["$nor"]) == 1


def translate(event: Mapping[str, Any], routing: Routing, target_set: str) -> Translation:
    """Turn one change event from rs1 into the target set's writes; raises UnsupportedChange when it cannot."""
    op = event["operationType"]
    fatal = _fatal(event, routing) if op in FATAL_EVENTS else None
    if fatal is not None:
        raise fatal
    ns = event.get("ns") or {}
    db, coll = ns.get("db", ""), ns.get("coll", "")
    routed = routing.routed(db, coll) if coll else None
    if routed is None:
        return Translation(db, coll, "skipped")
    if op in DOCUMENT_EVENTS:
        return _document(event, routing, target_set, db, coll, routed.key)
    if op == "delete":
        return Translation(db, coll, "applied", [delete_op(event["documentKey"]["_id"], routed.key,
                                                           routing, target_set)])
    if op in INDEX_EVENTS:
        return _index(event, db, coll)
    if op == "modify" and is_fence_change(event):
        return Translation(db, coll, "skipped")  # splitter's own write fence (cutover/fence.py): not replayed
    if op == "modify":
        return Translation(db, coll, "skipped", note=f"collMod on {db}.{coll} during the split is not replayed; "
                           f"repeat it on {target_set}: {dict(event.get('operationDescription') or {})}")
    if op == "create" and set(event.get("operationDescription") or {}) - {"idIndex"}:
        return Translation(db, coll, "skipped", note=f"{db}.{coll} was created on rs1 with options that are not "
                           f"replayed; create it the same way on {target_set}")
    return Translation(db, coll, "skipped")  # plain create, shardCollection, ...: nothing to replay
