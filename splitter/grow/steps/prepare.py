"""Grow step 1: empty dbpaths for the new members (the arbiters' step, for other hosts)."""

from __future__ import annotations

from splitter.run_context import StepContext
from splitter.steps.prepare_arbiters import PrepareArbiters


class PrepareNewMembers(PrepareArbiters):
    id = "grow-prepare-dbpaths"
    title = "Prepare empty dbpaths for the new members"

    def _names(self, ctx: StepContext) -> list[str]:
        return ctx.grow.new_names  # type: ignore[attr-defined]

    def describe(self, ctx: StepContext) -> list[str]:
        members = ctx.grow.new_members  # type: ignore[attr-defined]
        listing = " and ".join(f"{m.name} ({m.dbpath})" for m in members)
        return [f"playbook prepare_dbpath.yml on {listing}: create, mode 0700, refuse if not empty"]
