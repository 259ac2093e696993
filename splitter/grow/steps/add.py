"""Grow step 3: add each new member as priority 0 / votes 0 (one reconfig each); its initial sync starts then.

Touches: the set's replica-set config (replSetReconfig), the default write concern (setDefaultRWConcern).
"""

from __future__ import annotations

from splitter.grow.context import GrowContext
from splitter.steps import reconfig as rc
from splitter.steps.add_arbiter_rs1 import default_wc_is_explicit
from splitter.steps.base import Step


class AddNewMembers(Step):
    id = "grow-add-members"
    title = "Add the new members without votes (initial sync starts)"

    def describe(self, ctx: GrowContext) -> list[str]:  # type: ignore[override]
        wc = ctx.grow.planning.default_write_concern
        return [f"setDefaultRWConcern {{defaultWriteConcern: {wc}}} unless already set explicitly: giving the new "
                "members votes later must not change an implicit default (the server refuses such a reconfig)",
                *(rc.describe_change(ctx.source_name, f"add {{host: {h}, priority: 0, votes: 0}}")
                  for h in ctx.grow.new_hosts)]

    def apply(self, ctx: GrowContext) -> None:  # type: ignore[override]
        if not default_wc_is_explicit(ctx):
            ctx.applier.set_default_write_concern(ctx.rs1(), ctx.source_primary(),
                                                  ctx.grow.planning.default_write_concern)
        for host in ctx.grow.new_hosts:
            config = rc.live_config(ctx)
            if rc.member_doc(config, host) is None:
                rc.reconfig(ctx, rc.with_added(config, host, priority=0, votes=0), f"add {host} (priority 0, votes 0)")

    def verify(self, ctx: GrowContext) -> None:  # type: ignore[override]
        self.check(default_wc_is_explicit(ctx), "the default write concern is not set explicitly")
        config = ctx.inspector.config(ctx.source_primary())
        missing = [h for h in ctx.grow.new_hosts if config.by_host(h) is None]
        self.check(not missing, f"not members of {ctx.source_name}: {', '.join(missing)}")
