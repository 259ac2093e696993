"""Step 4: wait until nodes 3+4 hold the primary's optime, then shut them down cleanly."""

from __future__ import annotations

from splitter.cluster.shutdown import QUIESCE_SECS
from splitter.run_context import StepContext
from splitter.steps.base import Step


class StopMovingNodes(Step):
    id = "stop-moving-nodes"
    title = "Let the moving nodes catch up, then stop them cleanly"

    def describe(self, ctx: StepContext) -> list[str]:
        return [f"wait until {', '.join(ctx.move_hosts)} reach the primary's optime",
                f"shutdown {{timeoutSecs: 2}} on {', '.join(ctx.move_hosts)} (AutoReconnect = success)",
                f"playbook mongod_stop.yml on {', '.join(ctx.move_names)} (waits for each pid to exit)"]

    def apply(self, ctx: StepContext) -> None:
        primary = ctx.source_primary()
        target = ctx.inspector.status(primary).primary.optime  # type: ignore[union-attr]
        up = [h for h in ctx.move_hosts if ctx.inspector.reachable(h)]

        def caught_up() -> bool:
            status = ctx.inspector.status(primary)
            return all((m.optime or target) >= target for m in status.members if m.host in up)

        def lag() -> str:
            status = ctx.inspector.status(primary)
            return ", ".join(f"{m.host} at {m.optime.time if m.optime else '?'}" for m in status.members
                             if m.host in up) + f" / primary at {target.time}"

        if up:
            ctx.wait_for("the moving nodes to catch up", caught_up, timeout=300, describe=lag)
        for host in up:
            ctx.applier.shutdown(host, timeout_secs=QUIESCE_SECS)
        ctx.applier.playbook("mongod_stop.yml", ctx.move_names)

    def verify(self, ctx: StepContext) -> None:
        for host in ctx.move_hosts:
            self.check(not ctx.inspector.reachable(host), f"{host} still answers")
