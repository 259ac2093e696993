"""Anchoring the split optime in committed history: rs1's majority commit point before the point of no return
(item 4 of issue 14), rs2's data nodes and commit point before arbiter 2 may vote (item 5). Reads only."""

from __future__ import annotations

from typing import Any

from bson import Timestamp

from splitter.config import parse_duration
from splitter.errors import OperationalError
from splitter.run_context import StepContext


def commit_point(ctx: StepContext, host: str) -> Timestamp | None:
    """The majority commit point (`optimes.lastCommittedOpTime.ts`) as `host` knows it; None when unknown."""
    doc = ctx.member(host).admin.command("replSetGetStatus")
    ts = ((doc.get("optimes") or {}).get("lastCommittedOpTime") or {}).get("ts")
    return ts if isinstance(ts, Timestamp) and ts.time > 0 else None


def _show(ts: Timestamp | None) -> str:
    return f"{ts.time}:{ts.inc}" if ts else "none"


def wait_source_committed(ctx: StepContext, through: Timestamp) -> None:
    """Until rs1's majority commit point is at or past `through` (the moving nodes' oplog ends): only then is an
    entry they hold one that rs1 can no longer roll back."""
    timeout = parse_duration(ctx.config.planning.anchor_timeout)
    seen: dict[str, Any] = {}

    def committed() -> bool:
        seen["ts"] = commit_point(ctx, ctx.source_primary())
        return seen["ts"] is not None and seen["ts"] >= through

    try:
        ctx.wait_for(f"{ctx.source_name}'s majority commit point to reach {_show(through)}", committed,
                     timeout=timeout, describe=lambda: f"at {_show(seen.get('ts'))}")
    except OperationalError as exc:
        raise OperationalError(
            f"{ctx.source_name}'s majority commit point {_show(seen.get('ts'))} has not reached the moving nodes' "
            f"oplog end {_show(through)} in {timeout:.0f}s: {ctx.source_name} could still roll back entries they "
            "hold", hint=f"nothing was written; make {ctx.source_name}'s kept secondary replicate again (rs.status()),"
            f" then `splitter run`; or `splitter rollback`") from exc


def source_entry(ctx: StepContext, ts: Timestamp) -> dict[str, Any] | None:
    """rs1's own oplog entry at `ts`, read on its primary after the commit point passed it (so it is committed)."""
    return ctx.member(ctx.source_primary()).local["oplog.rs"].find_one({"ts": ts})


def target_synced(ctx: StepContext, split: Timestamp) -> tuple[bool, str]:
    """(every rs2 data node's optime and rs2's majority commit point are at or past `split`, what each is)."""
    optimes: dict[str, Timestamp | None] = {}
    point = None
    for host in ctx.move_hosts:
        if not ctx.inspector.reachable(host):
            optimes[host] = None
            continue
        status = ctx.inspector.status(host)
        optimes.update({m.host: m.optime for m in status.members if m.host in ctx.move_hosts})
        point = point or commit_point(ctx, host)
    ok = all(optimes.get(h) is not None and optimes[h] >= split for h in ctx.move_hosts) and \
        point is not None and point >= split
    shown = ", ".join(f"{h} at {_show(optimes.get(h))}" for h in ctx.move_hosts)
    return ok, f"{shown}; {ctx.target_name}'s majority commit point {_show(point)}; split optime {_show(split)}"
