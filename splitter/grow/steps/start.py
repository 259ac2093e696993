"""Grow step 2: start the new members' mongod with the set's name (not yet members: they wait for a config)."""

from __future__ import annotations

from splitter.grow.context import GrowContext
from splitter.steps.base import Step


class StartNewMembers(Step):
    id = "grow-start"
    title = "Start mongod on the new members"

    def describe(self, ctx: GrowContext) -> list[str]:  # type: ignore[override]
        return [f"playbook mongod_start.yml on {', '.join(ctx.grow.new_names)} (mongod_mode=replset, "
                f"replset_name={ctx.source_name})"]

    def apply(self, ctx: GrowContext) -> None:  # type: ignore[override]
        ctx.applier.playbook("mongod_start.yml", ctx.grow.new_names, {"mongod_mode": "replset",
                                                                     "replset_name": ctx.source_name})
        ctx.wait_for("the new members to answer", lambda: all(ctx.inspector.reachable(h) for h in ctx.grow.new_hosts),
                     timeout=60)

    def verify(self, ctx: GrowContext) -> None:  # type: ignore[override]
        down = [h for h in ctx.grow.new_hosts if not ctx.inspector.reachable(h)]
        self.check(not down, f"not answering: {', '.join(down)}")
