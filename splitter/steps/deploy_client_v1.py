"""Step 3: gate (the app uses nodes 1+2 only), then demote nodes 3 and 4 to priority 0 / votes 0."""

from __future__ import annotations

from splitter.run_context import StepContext
from splitter.steps import reconfig as rc
from splitter.steps.base import GateSpec, Step


class DeployClientV1(Step):
    id = "deploy-client-v1"
    title = "Gate: app uses only the keep nodes; demote the moving nodes (priority 0, votes 0)"
    gate = GateSpec("deploy-client-v1", "Deploy the client version that connects to the keep nodes only "
                    "(seed list {keep}, replicaSet={source}). Reads must no longer go to {move}.")

    def describe(self, ctx: StepContext) -> list[str]:
        lines = [f"gate deploy-client-v1: app connects only to {', '.join(ctx.keep_hosts)}",
                 f"if the primary is {' or '.join(ctx.move_hosts)}: replSetFreeze the other moving node, "
                 "replSetStepDown the primary, wait for a keep-side primary"]
        lines += [rc.describe_change(ctx.source_name, f"{h}: priority 0, votes 0") for h in ctx.move_hosts]
        return lines

    def _ensure_primary_on_keep_side(self, ctx: StepContext) -> None:
        primary = ctx.source_primary()
        if primary in ctx.keep_hosts:
            return
        ctx.progress(f"primary {primary} is on the moving side: stepping it down")
        for other in ctx.move_hosts:
            if other != primary:
                ctx.applier.freeze(ctx.member(other), other, 120)
        ctx.applier.step_down(ctx.member(primary), primary, 120)
        ctx.wait_for("a primary on the keep side", lambda: ctx.source_primary() in ctx.keep_hosts, timeout=120)

    def apply(self, ctx: StepContext) -> None:
        self._ensure_primary_on_keep_side(ctx)
        for host in ctx.move_hosts:  # one voting change per reconfig
            config = rc.live_config(ctx)
            member = rc.member_doc(config, host)
            if member and (member.get("priority", 1) != 0 or member.get("votes", 1) != 0):
                rc.reconfig(ctx, rc.with_member(config, host, priority=0, votes=0), f"demote {host}")

    def verify(self, ctx: StepContext) -> None:
        config = ctx.inspector.config(ctx.source_primary())
        for host in ctx.move_hosts:
            member = config.by_host(host)
            self.check(member is not None and member.priority == 0 and member.votes == 0,
                       f"{host} still has priority/votes")
        self.check(ctx.source_primary() in ctx.keep_hosts, "the primary is not on the keep side")
