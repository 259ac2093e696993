"""The write fence: a validator on every routed collection of one set that rejects documents of the moving half.

Touches: `collMod` (validator, validationLevel, validationAction; w: majority) on each routed collection of the
fenced set, and nothing else. The original settings are returned as FenceRecords *before* any collMod (the
caller checkpoints them), so that `lift` restores them exactly even after a crash in the middle.

The fence validator is `{$nor: [<the moving half's filter>]}` (combined with `$and` with an existing validator),
with `validationLevel: strict` (updates of existing documents of that half are validated too, so they are
refused) and `validationAction: error`: a client that still writes such a document to the fenced set gets a
DocumentValidationFailure (code 121) it can see and retry against the set the routing document names.
Deletes are not validated by MongoDB: see protocol.py for how deletes of the moving half are handled.
Streams write through the fence with `bypassDocumentValidation` (only splitter's streams do that).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bson import json_util
from pymongo import MongoClient

from splitter.routing import Routing
from splitter.store.records import FenceRecord

FENCED_CODE = 121
MAJORITY = {"w": "majority", "wtimeout": 60_000}


def fence_filter(routing: Routing, key: str, half: str) -> dict[str, Any]:
    """Documents that are NOT in `half`: what the fenced set still accepts."""
    return {"$nor": [routing.half_filter(key, half)]}


def routed_collections(client: MongoClient, routing: Routing) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(database, collection, key, options) of the routed plain collections present on the set."""
    found = []
    for database in sorted(routing.databases):
        for info in client[database].list_collections(filter={"type": "collection"}):
            routed = routing.routed(database, info["name"])
            if routed is not None:
                found.append((database, info["name"], routed.key, dict(info.get("options") or {})))
    return found


def _fenced_validator(original: dict[str, Any] | None, fence: dict[str, Any]) -> dict[str, Any]:
    return fence if not original else {"$and": [original, fence]}


def _is_fenced(validator: dict[str, Any] | None, fence: dict[str, Any]) -> bool:
    if not validator:
        return False
    return validator == fence or (list(validator) == ["$and"] and bool(validator["$and"])
                                  and validator["$and"][-1] == fence)


def _dump(doc: dict[str, Any] | None) -> str | None:
    return None if doc is None else json_util.dumps(doc, json_options=json_util.CANONICAL_JSON_OPTIONS)


def put_up(client: MongoClient, set_name: str, routing: Routing, half: str, known: tuple[FenceRecord, ...],
           record: Callable[[tuple[FenceRecord, ...]], None]) -> int:
    """Fence every routed collection of `set_name` against `half` (idempotent). `record(all_records)` is called
    with the originals before the first collMod. Returns how many collections were changed now."""
    targets = []
    records = {r.namespace: r for r in known if r.set_name == set_name}
    for database, name, key, options in routed_collections(client, routing):
        fence = fence_filter(routing, key, half)
        validator = options.get("validator")
        if _is_fenced(validator, fence):
            continue
        namespace = f"{database}.{name}"
        records[namespace] = FenceRecord(set_name=set_name, namespace=namespace, validator=_dump(validator),
                                         level=options.get("validationLevel"), action=options.get("validationAction"))
        targets.append((database, name, _fenced_validator(validator, fence)))
    others = tuple(r for r in known if r.set_name != set_name)
    record(others + tuple(records[ns] for ns in sorted(records)))
    for database, name, validator in targets:
        client[database].command({"collMod": name, "validator": validator, "validationLevel": "strict",
                                  "validationAction": "error", "writeConcern": MAJORITY})
    return len(targets)


def lift(client: MongoClient, set_name: str, known: tuple[FenceRecord, ...]) -> tuple[FenceRecord, ...]:
    """Restore the recorded settings of `set_name`'s fenced collections; returns the records of the other sets."""
    existing = {f"{db}.{name}" for db, name, _k, _o in _all_collections(client, known, set_name)}
    for rec in known:
        if rec.set_name != set_name or rec.namespace not in existing:
            continue
        database, _, name = rec.namespace.partition(".")
        validator = json_util.loads(rec.validator) if rec.validator is not None else {}
        client[database].command({"collMod": name, "validator": validator,
                                  "validationLevel": rec.level or "strict",
                                  "validationAction": rec.action or "error", "writeConcern": MAJORITY})
    return tuple(r for r in known if r.set_name != set_name)


def _all_collections(client: MongoClient, known: tuple[FenceRecord, ...],
                     set_name: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    databases = sorted({r.namespace.partition(".")[0] for r in known if r.set_name == set_name})
    return [(db, info["name"], "", {}) for db in databases
            for info in client[db].list_collections(filter={"type": "collection"})]
