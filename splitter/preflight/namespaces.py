"""Routed databases: collections the catch-up cannot replay (time series, views), unique indexes that do not
contain the routing key, and `$out`/`$merge` writers preflight can see."""

from __future__ import annotations

from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from splitter.preflight.findings import Finding, refuse, warn
from splitter.routing import Routing

UNREPLAYED = {"timeseries": "a time-series collection", "view": "a view"}


def unique_without_key(indexes: list[dict[str, Any]], key: str) -> list[str]:
    """Names of unique indexes (not `_id_`) whose fields do not include the routing key."""
    return [i["name"] for i in indexes
            if i.get("unique") and i["name"] != "_id_" and key not in dict(i.get("key", {}))]


def stage_targets(pipeline: Any, database: str) -> list[str]:
    """'db.coll' written by the `$out`/`$merge` stages of one pipeline."""
    out = []
    for stage in pipeline if isinstance(pipeline, list) else []:
        for name in ("$out", "$merge"):
            target = stage.get(name) if isinstance(stage, dict) else None
            if isinstance(target, str):
                out.append(f"{database}.{target}")
            elif isinstance(target, dict):
                into = target.get("into", target)
                if isinstance(into, str):
                    out.append(f"{database}.{into}")
                elif isinstance(into, dict) and "coll" in into:
                    out.append(f"{into.get('db', database)}.{into['coll']}")
    return out


def namespace_findings(ctx) -> list[Finding]:  # type: ignore[no-untyped-def]
    client = ctx.member(ctx.source_primary())
    routing: Routing = ctx.config.routing
    acknowledged = set(ctx.config.acknowledge.unique_indexes)
    findings: list[Finding] = []
    for database in sorted(routing.databases):
        for info in client[database].list_collections():
            name, kind = info["name"], info.get("type", "collection")
            ns = f"{database}.{name}"
            if name.startswith("system.") or ns in routing.exclude:
                continue
            if kind in UNREPLAYED:
                findings.append(refuse(
                    f"{ns} is {UNREPLAYED[kind]}: change streams do not carry its writes, so the catch-up, verify "
                    "and cleanup would skip it silently", f"add '{ns}' to routing.exclude in split.yaml (both sets "
                    "keep the copy they hold at the split; move its data yourself) or drop it"))
                continue
            routed = routing.routed(database, name)
            if routed is None:
                continue
            for index in unique_without_key(list(client[database][name].list_indexes()), routed.key):
                tag = f"{ns}:{index}"
                what = (f"unique index {tag} does not contain the routing key {routed.key!r}: until cleanup removes "
                        "a set's stale copies of the other half, a value moved between halves can collide (E11000) "
                        "in the catch-up and in the application")
                if tag in acknowledged:
                    findings.append(warn(what + " (acknowledged in split.yaml)", "make the index include the key "
                                         "when you can"))
                else:
                    findings.append(refuse(what, f"add '{tag}' to acknowledge.unique_indexes in split.yaml once you "
                                                 "accept this, or make the index include the routing key"))
    findings += _out_merge(client, routing)
    return findings


def _out_merge(client: MongoClient, routing: Routing) -> list[Finding]:
    """`$out`/`$merge` into a routed database replace or merge whole collections; seen in operations running
    now and in the profiler (system.profile) of routed databases, if it is on."""
    seen: dict[str, str] = {}
    try:
        for op in client.admin.aggregate([{"$currentOp": {"allUsers": True}},
                                          {"$match": {"command.pipeline": {"$exists": True}}}]):
            db = str(op.get("ns", "")).split(".", 1)[0]
            for target in stage_targets(op["command"]["pipeline"], db):
                seen.setdefault(target, "running now")
        for database in routing.databases:
            if "system.profile" not in client[database].list_collection_names():
                continue
            for op in client[database]["system.profile"].find({"command.pipeline": {"$exists": True}}).limit(1000):
                for target in stage_targets(op["command"]["pipeline"], database):
                    seen.setdefault(target, "in the profiler")
    except PyMongoError as exc:
        return [warn(f"cannot look for $out/$merge writers ({exc})", "grant inprog (clusterMonitor) to the user")]
    routed = {t: w for t, w in seen.items() if routing.routed(*t.split(".", 1)) is not None}
    return [warn(f"$out/$merge into {target} ({where}): it rewrites the collection during the catch-up",
                 f"pause that job from `splitter run` to the cutover, or add '{target}' to routing.exclude")
            for target, where in sorted(routed.items())]
