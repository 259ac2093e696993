"""Pure translation of one source change event into what the target set must do to keep its half in step.

No I/O here. Events may be dicts or `RawBSONDocument`s (the worker reads raw BSON: documents are written back
byte for byte, see issue 14 item 8). The rules (see `translate`):
- insert / replace: the document's key routes to the target -> InsertOne(doc) / ReplaceOne(_id, doc, upsert)
  ("applied"); an insert is the fast path, and the applier turns a duplicate `_id` (a replay) into the replace;
  it routes elsewhere -> DeleteOne(_id) for a replace (the key may have just moved out), nothing for an insert;
  no set claims it (missing / non-integer key) -> never written; "unclaimed".
- update (no `updateLookup`): the update description is applied to the target's copy *if that copy is in the
  target's half* (an update that does not touch the key cannot change the half, so this is exactly the target's
  documents). When the key (or something the description cannot express: truncated arrays, ambiguous paths)
  is touched, the translation asks for the current document instead (`lookup`), resolved by the worker.
- delete -> DeleteOne(_id); limited to the target's half only after the switch (`before_switch=False`): before
  it, a stale other-half copy on the target is only in the way (a unique index, issue 14 item 3).
- createIndexes / dropIndexes -> an IndexOp; drop / rename (within routed namespaces, which is also how `$out`
  lands) / dropDatabase -> a DdlOp (issue 14 item 7); a rename across the routing boundary and invalidate ->
  UnsupportedChange, unless the operator recorded `--skip-event` for it.
- anything on a namespace that is not routed, create and the like -> ignored ("skipped"); modify (collMod)
  and create with options are ignored with a note for the operator.
ReplaceOne(upsert), DeleteOne and $set/$unset of the description's final values are idempotent, and so is
InsertOne as the applier runs it (insert, or replace on a duplicate `_id`), which makes re-applying a batch after
a crash converge.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pymongo import DeleteOne, InsertOne, ReplaceOne, UpdateOne

from splitter.catchup.rawdoc import namespace, top_level
from splitter.errors import OperationalError
from splitter.routing import RoutedCollection, Routing

WriteOp = InsertOne | ReplaceOne | DeleteOne | UpdateOne
Outcome = Literal["applied", "skipped", "unclaimed", "index", "ddl"]

DOCUMENT_EVENTS = ("insert", "replace", "update")
INDEX_EVENTS = ("createIndexes", "dropIndexes")
DDL_EVENTS = ("drop", "rename", "dropDatabase", "invalidate")


class UnsupportedChange(OperationalError):
    """The source changed a routed namespace in a way the catch-up cannot replay (e.g. a rename out of the
    routed namespaces)."""


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


@dataclass(frozen=True)
class DdlOp:
    """drop (collection), dropDatabase, or rename `database.collection` to `to` (dropping `to` first)."""

    action: Literal["drop", "dropDatabase", "rename"]
    to: tuple[str, str] | None = None


@dataclass(frozen=True)
class Lookup:
    """The update needs the source's current document (the key may have moved): resolved by the worker with
    `resolve_lookup` against a read of the source by `_id`."""

    _id: Any
    key: str
    at: Any = None  # the event's clusterTime: the read must see at least this (a Timestamp; None in unit tests)


@dataclass(slots=True)  # one per event: slots make it cheaper to create
class Translation:
    """The result for one event: target writes for `database.collection`, or an index / DDL op, and its outcome."""

    database: str
    collection: str
    outcome: Outcome
    writes: list[WriteOp] = field(default_factory=list)
    index: IndexOp | None = None
    ddl: DdlOp | None = None
    lookup: Lookup | None = None
    fallback: Lookup | None = None  # for an update: what to read if its description cannot apply on the target
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


def _paths(desc: Mapping[str, Any]) -> list[str]:
    return [*(desc.get("updatedFields") or {}), *(desc.get("removedFields") or []),
            *(t.get("field", "") for t in desc.get("truncatedArrays") or [])]


def update_touches_key(event: Mapping[str, Any], key: str) -> bool:
    """True if an update event set, removed or truncated the key field (or a parent / child of it)."""
    return any(_touches(p, key) for p in _paths(event.get("updateDescription") or {}))


def by_id(_id: Any, key: str, half: Mapping[str, Any] | None) -> dict[str, Any]:
    """`_id` within `half` (None: any half). With the key on `_id` itself the two conditions go under $and."""
    if half is None:
        return {"_id": _id}
    return {"$and": [{"_id": _id}, dict(half)]} if key == "_id" else {"_id": _id, **half}


def delete_op(_id: Any, key: str, routing: Routing, target_set: str, before_switch: bool = True) -> DeleteOne:
    """Delete `_id` from the target: any copy before the switch (the other half's copies there are stale and
    only in the way), only the target's half after it (the other half's copies then belong to cleanup)."""
    return DeleteOne(by_id(_id, key, None if before_switch else routing.half_filter(key, target_set)))


def update_ops(_id: Any, key: str, half: Mapping[str, Any], desc: Mapping[str, Any]) -> list[WriteOp]:
    """The update description as target writes on the target's own copy (raw values are passed through)."""
    updated, removed = desc.get("updatedFields") or {}, list(desc.get("removedFields") or [])
    update: dict[str, Any] = {}
    if len(updated):
        update["$set"] = updated
    if removed:
        update["$unset"] = dict.fromkeys(removed, "")
    return [UpdateOne(by_id(_id, key, half), update)] if update else []


def _needs_lookup(desc: Mapping[str, Any], key: str) -> bool:
    return (any(_touches(p, key) for p in _paths(desc)) or bool(desc.get("truncatedArrays"))
            or bool(desc.get("disambiguatedPaths")))


def resolve_lookup(doc: Mapping[str, Any] | None, lookup: Lookup, routing: Routing, target_set: str,
                   before_switch: bool = True) -> tuple[Outcome, list[WriteOp]]:
    """The writes for an update whose key may have moved, given the source's current document (None: gone)."""
    if doc is None:
        return "applied", [delete_op(lookup._id, lookup.key, routing, target_set, before_switch)]
    owner = routing.owner(get_path(doc, lookup.key))
    if owner == target_set:
        return "applied", [ReplaceOne({"_id": lookup._id}, doc, upsert=True)]
    delete: list[WriteOp] = [delete_op(lookup._id, lookup.key, routing, target_set, before_switch)]
    return ("unclaimed" if owner is None else "applied"), delete


def _ddl(event: Mapping[str, Any], routing: Routing, db: str, coll: str) -> Translation | None:
    op = event["operationType"]
    if op == "invalidate":
        raise UnsupportedChange("catch-up: the change stream on the source was invalidated", hint=_SKIP_HINT)
    if op == "dropDatabase":
        return Translation(db, "", "ddl", ddl=DdlOp("dropDatabase")) if db in routing.databases else None
    to = event.get("to") or (event.get("operationDescription") or {}).get("to")
    source_routed = bool(coll) and routing.routed(db, coll) is not None
    if op == "drop":
        return Translation(db, coll, "ddl", ddl=DdlOp("drop")) if source_routed else None
    to_db, to_coll = namespace(to)
    target_routed = bool(to_coll) and routing.routed(to_db, to_coll) is not None
    if source_routed and target_routed:  # also `$out`: its temp collection (routed, replayed) renamed over the target
        return Translation(db, coll, "ddl", ddl=DdlOp("rename", (to_db, to_coll)))
    if source_routed or target_routed:
        raise UnsupportedChange(f"catch-up: {db}.{coll} was renamed to {to_db}.{to_coll} on the source, across the "
                                "routed namespaces; this cannot be replayed", hint=_SKIP_HINT)
    return None


_SKIP_HINT = ("repeat the change on the target by hand, then record it with `splitter catch-up -c CONFIG "
              "--skip-event TOKEN` (the token is in the error and the audit log) and rerun")


def _document(event: Mapping[str, Any], routing: Routing, target_set: str, db: str, coll: str,
              key: str, before_switch: bool, inserts_filtered: bool = False) -> Translation:
    op = event["operationType"]
    if op == "insert":  # the hot path under a bulk writer: the document carries its `_id`, no key is read twice
        doc = event.get("fullDocument")
        if doc is None:
            owner = None
        elif inserts_filtered:  # the stream's own $match kept only this half: the key need not be read again
            owner = target_set
        else:
            owner = routing.owner(get_path(doc, key))
        if owner == target_set:
            return Translation(db, coll, "applied", [InsertOne(doc)])
        return Translation(db, coll, "unclaimed" if owner is None else "skipped")
    _id = event["documentKey"]["_id"]
    if op == "update":
        desc = event.get("updateDescription") or {}
        if _needs_lookup(desc, key):
            return Translation(db, coll, "applied", lookup=Lookup(_id, key, event.get("clusterTime")))
        return Translation(db, coll, "applied", update_ops(_id, key, routing.half_filter(key, target_set), desc),
                           fallback=Lookup(_id, key, event.get("clusterTime")))
    doc = event.get("fullDocument")
    owner = routing.owner(get_path(doc, key)) if doc is not None else None
    if doc is not None and owner == target_set:
        return Translation(db, coll, "applied", [ReplaceOne({"_id": _id}, doc, upsert=True)])
    # The document is not the target's: the replace may have just moved it out of the target's half.
    writes: list[WriteOp] = [delete_op(_id, key, routing, target_set, before_switch)]
    return Translation(db, coll, "unclaimed" if owner is None else "applied", writes)


def _index(event: Mapping[str, Any], db: str, coll: str) -> Translation:
    specs = tuple(dict(s) for s in (event.get("operationDescription") or {}).get("indexes") or ())
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


def translate(event: Mapping[str, Any], routing: Routing, target_set: str, before_switch: bool = True, *,
              routed_of: Callable[[str, str], RoutedCollection | None] | None = None,
              inserts_filtered: bool = False) -> Translation:
    """Turn one change event from the source into the target set's writes; raises UnsupportedChange when it
    cannot. `before_switch`: the target serves nothing yet, so its other-half copies may be deleted.
    `routed_of`: routing.routed, memoized by the caller (asked once per event). `inserts_filtered`: the stream's
    own `$match` (`source_filter`) let through only inserts of the target's half, by the same server-side half
    filter verify and cleanup use, so an insert needs no second look at its key."""
    event = top_level(event)
    op = event["operationType"]
    db, coll = namespace(event.get("ns"))
    if op in DDL_EVENTS:
        return _ddl(event, routing, db, coll) or Translation(db, coll, "skipped")
    routed = (routed_of or routing.routed)(db, coll) if coll else None
    if routed is None:
        return Translation(db, coll, "skipped")
    if op in DOCUMENT_EVENTS:
        return _document(event, routing, target_set, db, coll, routed.key, before_switch, inserts_filtered)
    if op == "delete":
        return Translation(db, coll, "applied", [delete_op(event["documentKey"]["_id"], routed.key, routing,
                                                           target_set, before_switch)])
    if op in INDEX_EVENTS:
        return _index(event, db, coll)
    if op == "modify" and is_fence_change(event):
        return Translation(db, coll, "skipped")  # splitter's own write fence (cutover/fence.py): not replayed
    if op == "modify":
        return Translation(db, coll, "skipped", note=f"collMod on {db}.{coll} during the split is not replayed; "
                           f"repeat it on {target_set}: {dict(event.get('operationDescription') or {})}")
    if op == "create" and set(event.get("operationDescription") or {}) - {"idIndex"}:
        return Translation(db, coll, "skipped", note=f"{db}.{coll} was created on the source with options that are "
                           f"not replayed; create it the same way on {target_set}")
    return Translation(db, coll, "skipped")  # plain create, shardCollection, ...: nothing to replay


def source_filter(routing: Routing, target_set: str) -> dict[str, Any]:
    """The change stream's own `$match`: the routed databases, minus inserts the target will never hold (the
    server drops them, so they are neither sent nor decoded). Other events carry no key the server could test."""
    clauses: list[dict[str, Any]] = []
    for db, _default in sorted(routing.databases.items()):
        overrides = sorted(ns.split(".", 1)[1] for ns in routing.collections if ns.split(".", 1)[0] == db)
        base: dict[str, Any] = {"operationType": "insert", "ns.db": db}
        key = routing.key_for(db, "\0")  # the database's key (no collection has that name)
        clauses.append({**base, **({"ns.coll": {"$nin": overrides}} if overrides else {}),
                        "$nor": [routing.half_filter(f"fullDocument.{key}", target_set)]})
        for coll in overrides:
            ckey = routing.key_for(db, coll)
            clauses.append({**base, "ns.coll": coll, "$nor": [routing.half_filter(f"fullDocument.{ckey}", target_set)]})
    return {"ns.db": {"$in": sorted(routing.databases)}, "$nor": clauses}
