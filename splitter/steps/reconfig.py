"""Building replica-set config documents for single-change reconfigs (pure functions + one apply helper)."""

from __future__ import annotations

import copy
from typing import Any

from splitter.run_context import StepContext


def live_config(ctx: StepContext) -> dict[str, Any]:
    """rs1's current config as its primary has it."""
    return ctx.inspector.config(ctx.source_primary()).raw


def member_doc(config: dict[str, Any], host: str) -> dict[str, Any] | None:
    return next((m for m in config["members"] if m["host"] == host), None)


def _next(config: dict[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(config)
    new["version"] = int(config["version"]) + 1
    new.pop("term", None)  # the primary sets the term itself
    return new


def with_member(config: dict[str, Any], host: str, **changes: Any) -> dict[str, Any]:
    new = _next(config)
    member_doc(new, host).update(changes)  # type: ignore[union-attr]
    return new


def without_member(config: dict[str, Any], host: str) -> dict[str, Any]:
    new = _next(config)
    new["members"] = [m for m in new["members"] if m["host"] != host]
    return new


def with_added(config: dict[str, Any], host: str, **fields: Any) -> dict[str, Any]:
    new = _next(config)
    next_id = max(int(m["_id"]) for m in new["members"]) + 1
    new["members"].append({"_id": next_id, "host": host, **fields})
    return new


def reconfig(ctx: StepContext, new_config: dict[str, Any], why: str) -> None:
    ctx.progress(f"reconfig {ctx.source_name} to version {new_config['version']}: {why}")
    ctx.applier.reconfig(ctx.rs1(), ctx.source_name, new_config, why)


def describe_change(host: str, change: str) -> str:
    return f"replSetReconfig on {host}'s set: {change} (version +1, one voting change)"
