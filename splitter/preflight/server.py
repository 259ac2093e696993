"""Server-wide facts: sharded-cluster members, index builds in progress, users and roles rs2 will copy."""

from __future__ import annotations

from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from splitter.preflight.findings import Finding, refuse, warn


def cluster_role(opts: dict[str, Any]) -> str | None:
    """'shardsvr' / 'configsvr' from getCmdLineOpts, else None."""
    return ((opts.get("parsed") or {}).get("sharding") or {}).get("clusterRole")


def index_builds(ops: list[dict[str, Any]]) -> list[str]:
    """'db.coll (index names)' for every createIndexes / index build in a $currentOp listing."""
    out = []
    for op in ops:
        cmd = op.get("command") or {}
        if "createIndexes" in cmd:
            db = str(op.get("ns", "")).split(".", 1)[0] or cmd.get("$db", "?")
            names = ", ".join(str(i.get("name", "?")) for i in cmd.get("indexes", []))
            out.append(f"{db}.{cmd['createIndexes']} ({names})")
    return sorted(set(out))


def server_findings(ctx) -> list[Finding]:  # type: ignore[no-untyped-def]
    findings: list[Finding] = []
    for host in ctx.keep_hosts + ctx.move_hosts:
        try:
            role = cluster_role(ctx.member(host).admin.command("getCmdLineOpts"))
        except PyMongoError as exc:
            findings.append(warn(f"{host}: cannot read its startup options ({exc}); not checked for --shardsvr",
                                 "grant clusterMonitor to the splitter user"))
            continue
        if role:
            findings.append(refuse(f"{host} runs with clusterRole {role}: it is part of a sharded cluster, whose "
                                   "config servers and mongos know nothing of a split replica set",
                                   "split a sharded cluster by adding a shard and moving chunks, not with splitter"))
    primary = ctx.member(ctx.source_primary())
    findings += _index_builds(primary)
    findings += _admin_copies(primary, ctx.target_name, ctx.source_name)
    return findings


def _index_builds(client: MongoClient) -> list[Finding]:
    try:
        ops = list(client.admin.aggregate([{"$currentOp": {"allUsers": True, "idleConnections": False}},
                                            {"$match": {"command.createIndexes": {"$exists": True}}}]))
    except PyMongoError as exc:
        return [warn(f"cannot list operations in progress ({exc}); index builds not checked",
                     "grant inprog (clusterMonitor) to the splitter user")]
    builds = index_builds(ops)
    if not builds:
        return []
    return [refuse(f"index builds in progress: {'; '.join(builds)}: a build that the moving nodes have not finished "
                   "when they stop is left half-done on rs2", "wait until the builds finish (db.currentOp() shows "
                   "them), then plan again")]


def _admin_copies(client: MongoClient, target: str, source: str) -> list[Finding]:
    """Users and roles live in `admin`, which is not routed: rs2 starts with a copy that nothing keeps in step."""
    try:
        users = [f"{u['user']}@{u['db']}" for u in client.admin.command("usersInfo", {"forAllDBs": True})["users"]]
        roles = [f"{r['role']}@{r['db']}" for r in client.admin.command("rolesInfo", 1)["roles"]]
    except PyMongoError as exc:
        return [warn(f"cannot list users and roles ({exc})", "grant viewUser/viewRole to the splitter user")]
    if not users and not roles:
        return []
    listing = ", ".join([*users[:5], *roles[:5]]) + (" ..." if len(users) > 5 or len(roles) > 5 else "")
    return [warn(f"{target} will hold a frozen copy of {len(users)} user(s) and {len(roles)} role(s) from {source} "
                 f"({listing}): changes made on one set after the split do not reach the other",
                 f"after the split, manage users and roles on {source} and {target} separately "
                 "(createUser/updateUser/dropUser on both)")]
