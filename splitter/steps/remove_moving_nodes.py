"""Step 5: remove node 3, then node 4, from rs1 (one reconfig each); drop connections to them."""

from __future__ import annotations

from splitter.run_context import StepContext
from splitter.steps import reconfig as rc
from splitter.steps.base import Step


class RemoveMovingNodes(Step):
    id = "remove-moving-nodes"
    title = "Remove the moving nodes from rs1"

    def describe(self, ctx: StepContext) -> list[str]:
        return [rc.describe_change(ctx.source_name, f"remove {h}") for h in ctx.move_hosts] + [
            f"dropConnections to {', '.join(ctx.move_hosts)} on {', '.join(ctx.keep_hosts)}"]

    def apply(self, ctx: StepContext) -> None:
        for host in ctx.move_hosts:
            config = rc.live_config(ctx)
            if rc.member_doc(config, host) is not None:
                rc.reconfig(ctx, rc.without_member(config, host), f"remove {host}")
        for host in ctx.keep_hosts:
            ctx.applier.drop_connections(ctx.member(host), host, ctx.move_hosts)

    def verify(self, ctx: StepContext) -> None:
        primary = ctx.source_primary()
        config = ctx.inspector.config(primary)
        for host in ctx.move_hosts:
            self.check(config.by_host(host) is None, f"{host} is still in {ctx.source_name}'s config")
        states = sorted(ctx.inspector.status(primary).states().values())
        self.check(states == ["ARBITER", "PRIMARY", "SECONDARY"], f"{ctx.source_name} members are {states}")
