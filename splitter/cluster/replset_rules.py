"""Rules a replica-set config of a split set must meet, checked before it is installed (pure functions).

The server validates a config given to `replSetReconfig`, but rs2's config is written straight into
`local.system.replset`: nothing checks it until the nodes start, after the point of no return. So the same
rules are checked here, on rs1's config in preflight and on the built rs2 document before it is written.
"""

from __future__ import annotations

import copy
from typing import Any

from bson import ObjectId


def _delay(member: dict[str, Any]) -> int:
    return int(member.get("secondaryDelaySecs", member.get("slaveDelay", 0)) or 0)


def mover_problems(member: dict[str, Any], target_name: str) -> list[str]:
    """Why a member cannot become one of the two data nodes of the new set as it is configured."""
    host, problems = member["host"], []
    if _delay(member):
        problems.append(f"{host} is delayed (secondaryDelaySecs {_delay(member)}): in {target_name} it would be one "
                        "of two data nodes, each of which must be able to become primary with current data")
    if member.get("hidden"):
        problems.append(f"{host} is hidden: {target_name}'s clients could not see one of its two data nodes")
    return problems


def config_problems(doc: dict[str, Any]) -> list[str]:
    """What makes `doc` (a 2-data-node + arbiter set after the split) invalid or unable to elect a primary."""
    name, problems = doc["_id"], []
    data = [m for m in doc["members"] if not m.get("arbiterOnly")]
    arbiters = [m for m in doc["members"] if m.get("arbiterOnly")]
    for m in data:
        if _delay(m) and float(m.get("priority", 1)) > 0:
            problems.append(f"{name}: {m['host']} is delayed but has priority {m.get('priority', 1)} (must be 0)")
        if m.get("hidden") and float(m.get("priority", 1)) > 0:
            problems.append(f"{name}: {m['host']} is hidden but has priority {m.get('priority', 1)} (must be 0)")
        if m.get("votes", 1) not in (0, 1):
            problems.append(f"{name}: {m['host']} has votes {m.get('votes')} (0 or 1)")
    if not any(float(m.get("priority", 1)) > 0 and not m.get("hidden") and not _delay(m) for m in data):
        problems.append(f"{name}: no data node can become primary (all have priority 0, are hidden or delayed)")
    for m in arbiters:
        if m.get("tags"):
            problems.append(f"{name}: arbiter {m['host']} has tags (arbiters cannot)")
    problems += _write_mode_problems(name, data, (doc.get("settings") or {}).get("getLastErrorModes") or {})
    ids = [m["_id"] for m in doc["members"]]
    hosts = [m["host"] for m in doc["members"]]
    if len(set(ids)) != len(ids) or len(set(hosts)) != len(hosts):
        problems.append(f"{name}: member _ids and hosts must be unique")
    return problems


def _write_mode_problems(name: str, data: list[dict[str, Any]], modes: dict[str, Any]) -> list[str]:
    """A getLastErrorModes entry {tag: n} needs n distinct values of `tag` among the set's data nodes."""
    problems = []
    for mode, needs in modes.items():
        for tag, count in needs.items():
            values = {m["tags"][tag] for m in data if tag in (m.get("tags") or {})}
            if len(values) < int(count):
                problems.append(f"{name}: write concern mode {mode!r} needs {count} distinct values of tag {tag!r}, "
                                f"its data nodes have {len(values)} ({', '.join(sorted(values)) or 'none'})")
    return problems


def build_target_config(stored: dict[str, Any], target_name: str, move_hosts: list[str], arbiter_host: str,
                        original_priority: dict[str, float]) -> dict[str, Any]:
    """rs2's config from the rs1 doc the node holds: same term and settings, a fresh shared replicaSetId."""
    members = []
    for host in move_hosts:
        old = next(m for m in stored["members"] if m["host"] == host)
        member = copy.deepcopy(old)
        # hidden and secondaryDelaySecs are kept: validate_target_config refuses them before anything is written.
        member.update(priority=original_priority.get(host) or 1.0, votes=1, arbiterOnly=False)
        members.append(member)
    members.append({"_id": max(int(m["_id"]) for m in stored["members"]) + 1, "host": arbiter_host,
                    "arbiterOnly": True, "priority": 0, "votes": 1})
    doc = copy.deepcopy(stored)
    doc.update(_id=target_name, version=int(stored["version"]) + 1, members=members)
    doc["settings"] = {**stored.get("settings", {}), "replicaSetId": ObjectId()}
    return doc
