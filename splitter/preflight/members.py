"""Members rs2 cannot use as configured, and both sets' configs after the split checked before anything moves."""

from __future__ import annotations

import copy
from typing import Any

from splitter.cluster.replset_rules import build_target_config, config_problems, mover_problems
from splitter.preflight.findings import Finding, refuse, warn


def source_after_split(config: dict[str, Any], keep_hosts: list[str], arbiter_host: str) -> dict[str, Any]:
    """rs1 as it will be: the kept members as they are now plus arbiter 1."""
    doc = copy.deepcopy(config)
    doc["members"] = [m for m in doc["members"] if m["host"] in keep_hosts]
    doc["members"].append({"_id": max(int(m["_id"]) for m in config["members"]) + 1, "host": arbiter_host,
                           "arbiterOnly": True, "priority": 0, "votes": 1})
    return doc


def member_findings(ctx) -> list[Finding]:  # type: ignore[no-untyped-def]
    config = ctx.inspector.config(ctx.source_primary()).raw
    by_host = {m["host"]: m for m in config["members"]}
    findings = []
    for host in ctx.move_hosts:
        member = by_host.get(host)
        if member is None:
            continue
        for problem in mover_problems(member, ctx.target_name):
            findings.append(refuse(problem, f"make {host} an ordinary member first (replSetReconfig with "
                                            "secondaryDelaySecs 0, hidden false, priority > 0), wait until it has "
                                            "caught up, then plan again"))
        if float(member.get("priority", 1)) == 0 and not mover_problems(member, ctx.target_name):
            findings.append(warn(f"{host} has priority 0: in {ctx.target_name} it gets priority 1 (both data nodes "
                                 "must be able to become primary)", f"nothing to do, or set {host}'s priority "
                                 "yourself after the split"))
    if any(f.refuse for f in findings):
        return findings  # the configs below would only repeat these
    original = {h: float(m.get("priority", 1)) for h, m in by_host.items()}
    target = build_target_config(config, ctx.target_name, ctx.move_hosts, ctx.config.arbiters.target.host, original)
    source = source_after_split(config, ctx.keep_hosts, ctx.config.arbiters.source.host)
    for problem in config_problems(source) + config_problems(target):
        findings.append(refuse(problem, "change the members' tags/priorities or settings.getLastErrorModes on "
                                        f"{ctx.source_name} (replSetReconfig) so that both sets after the split "
                                        "satisfy them, then plan again"))
    return findings
